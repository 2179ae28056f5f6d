// Preprocessing into shards: ImageNet layout, any class folder tree, Fashion-MNIST; shards
// readable by Python's tarfile and pickle and by our loader; resuming after an interruption.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { BrokenInput } from '../src/data/broken.js';
import { fashionMnistFiles } from '../src/data/idx.js';
import { DataLoader } from '../src/data/loader.js';
import {
  preprocessFashionMnist, preprocessFolder, preprocessImageNet, type PreprocessProgress,
} from '../src/data/preprocess.js';
import { pythonHas, runPython, smallJpeg, tempDir } from './data_helpers.js';

const dir = tempDir('preprocess');
after(() => dir.remove());
const input = join(dir.path, 'imagenet');
const wnids = ['n01443537', 'n01440764', 'n01484850'];

before(async () => {
  for (const [w, wnid] of wnids.entries()) {
    for (const split of ['train', 'val']) {
      mkdirSync(join(input, split, wnid), { recursive: true });
      const n = split === 'train' ? 5 : 2;
      for (let i = 0; i < n; i++) {
        const name = split === 'train' ? `${wnid}_${i}.JPEG` : `ILSVRC2012_val_${w}${i}.JPEG`;
        writeFileSync(join(input, split, wnid, name), await smallJpeg(w * 10 + i, 40, 32));
      }
    }
  }
  writeFileSync(join(input, 'train', 'n01484850', 'broken.JPEG'), Buffer.from('not a jpeg at all'));
  writeFileSync(join(input, 'LOC_synset_mapping.txt'),
    'n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn01484850 great white shark\n');
});

async function loadAll(shards: string, channels: 1 | 3 = 3, size = 16): Promise<number[]> {
  const loader = new DataLoader({
    dataset: { type: 'shards', shards }, views: { transformType: 'val', size, resizeSize: size + 2, channels },
    batchSize: 4, numWorkers: 2, train: false, strict: true,
  });
  const cls: number[] = [];
  try {
    for await (const batch of loader.epoch(0)) cls.push(...batch.cls);
  } finally {
    await loader.close();
  }
  return cls.sort((a, b) => a - b);
}

describe('preprocess imagenet', () => {
  const output = join(dir.path, 'out');
  const warnings: BrokenInput[] = [];
  const progress: PreprocessProgress[] = [];
  const options = {
    input, output, seed: 5, trainShardSize: 4, valShardSize: 3, mtime: 1700000000,
    onWarning: (w: BrokenInput) => warnings.push(w), onProgress: (p: PreprocessProgress) => progress.push(p),
  };

  it('writes train and val shards in their own folders, and metadata.json', async () => {
    const summary = await preprocessImageNet(options);
    assert.deepEqual(readdirSync(join(output, 'train')).sort(),
      [0, 1, 2, 3].map((i) => `imagenet-train-00000${i}.tar`));
    assert.deepEqual(readdirSync(join(output, 'val')).sort(), ['imagenet-val-000000.tar', 'imagenet-val-000001.tar']);
    const [val, train] = summary.splits;
    assert.deepEqual([val!.samples, train!.samples, train!.samplesSkipped], [6, 15, 1]);
    assert.equal(summary.broken.corruptImage, 1);
    assert.match(warnings[0]!.file, /broken\.JPEG$/);
    assert.equal(progress.at(-1)!.shardsDone, 4);

    const metadata = JSON.parse(readFileSync(join(output, 'metadata.json'), 'utf8'));
    assert.deepEqual(metadata.wnids, ['n01440764', 'n01443537', 'n01484850']);
    assert.deepEqual(metadata.wnid_to_idx, { n01440764: 0, n01443537: 1, n01484850: 2 });
    assert.deepEqual(metadata.classes[0], ['tench', 'Tinca tinca']);
    assert.equal(metadata.class_to_idx.goldfish, 1);
  });

  const noPython = pythonHas('tarfile') ? false : 'needs /usr/bin/python3';
  it('produces shards that Python tarfile and pickle read as the reference writes them', { skip: noPython }, () => {
    const out = runPython(['-c', `
import glob, json, pickle, sys, tarfile
rows = []
for path in sorted(glob.glob(sys.argv[1] + '/train/*.tar')):
    with tarfile.open(path) as t:
        for m in t:
            data = t.extractfile(m).read()
            if m.name.endswith('.metadata.pyd'):
                rows.append([m.name, pickle.loads(data)])
            elif m.name.endswith('.image.jpg'):
                assert data[:2] == b'\\xff\\xd8', m.name
print(json.dumps(rows))
`, output]);
    const rows = JSON.parse(out) as [string, { cls: number; wnid: string }][];
    assert.equal(rows.length, 15);
    for (const [name, meta] of rows) {
      assert.equal(name, `${meta.wnid}_${name.split('_')[1]!.split('.')[0]}.metadata.pyd`);
      assert.equal(meta.cls, ['n01440764', 'n01443537', 'n01484850'].indexOf(meta.wnid));
    }
    const order = rows.map(([, meta]) => meta.cls);
    assert.notDeepEqual(order, [...order].sort(), 'samples are shuffled');
  });

  it('is read back by the loader with the right labels', async () => {
    const cls = await loadAll(join(output, 'train', 'imagenet-train-{000000..000003}.tar'));
    assert.deepEqual(cls, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    assert.deepEqual(await loadAll(join(output, 'val', 'imagenet-val-{000000..000001}.tar')), [0, 0, 1, 1, 2, 2]);
  });

  it('resumes: complete shards are kept, a missing or partial one is rewritten', async () => {
    const shard1 = join(output, 'train', 'imagenet-train-000001.tar');
    const before = readFileSync(shard1);
    rmSync(join(output, 'train', 'imagenet-train-000002.tar'));
    writeFileSync(join(output, 'train', 'imagenet-train-000002.tar.partial'), 'interrupted');
    const summary = await preprocessImageNet(options);
    const train = summary.splits[1]!;
    assert.deepEqual(train.shardsWritten.map((p) => p.slice(-25)), ['imagenet-train-000002.tar']);
    assert.equal(train.shardsKept.length, 3);
    assert.ok(!existsSync(join(output, 'train', 'imagenet-train-000002.tar.partial')));
    assert.ok(readFileSync(shard1).equals(before));
    assert.equal((await loadAll(join(output, 'train', 'imagenet-train-{000000..000003}.tar'))).length, 15);
    await assert.rejects(preprocessImageNet({ ...options, seed: 6 }), /different run/);
    await assert.rejects(preprocessImageNet({ ...options, trainShardSize: 5 }),
      /different run .*same seed, shard size and input/);
  });
});

describe('preprocess folder', () => {
  it('turns a class-per-subfolder tree into shards', async () => {
    const output = join(dir.path, 'folder-out');
    const summary = await preprocessFolder({
      input: join(input, 'val'), output, prefix: 'val', shardSize: 4, seed: 1, onWarning: () => {},
    });
    assert.deepEqual(summary.splits[0]!.shardsWritten.map((p) => p.slice(-14)), ['val-000000.tar', 'val-000001.tar']);
    assert.deepEqual(await loadAll(join(output, 'val-{000000..000001}.tar')), [0, 0, 1, 1, 2, 2]);
    const metadata = JSON.parse(readFileSync(join(output, 'metadata.json'), 'utf8'));
    assert.deepEqual(metadata.classes, ['n01440764', 'n01443537', 'n01484850']);
  });
});

describe('preprocess of nothing', () => {
  it('a folder without images is an error naming it, and writes nothing', async () => {
    const empty = join(dir.path, 'empty-in');
    mkdirSync(join(empty, 'class_a'), { recursive: true });
    const output = join(dir.path, 'empty-out');
    await assert.rejects(preprocessFolder({ input: empty, output }), /empty-in holds no images/);
    assert.ok(!existsSync(output));
  });
});

describe('preprocess --strict', () => {
  it('stops at a broken image with an error naming it, leaving no partial shard', async () => {
    const tree = join(dir.path, 'strict-in');
    for (const cls of ['a', 'b']) {
      mkdirSync(join(tree, cls), { recursive: true });
      for (let i = 0; i < 6; i++) writeFileSync(join(tree, cls, `${i}.jpg`), await smallJpeg(i));
    }
    writeFileSync(join(tree, 'a', '3x.jpg'), 'not a jpeg');
    const output = join(dir.path, 'strict-out');
    // the broken file is read ahead while an earlier sample is awaited
    await assert.rejects(preprocessFolder({ input: tree, output, shardSize: 13, strict: true }),
      /corruptImage: .*3x\.jpg/);
    assert.deepEqual(readdirSync(output).filter((f) => f.endsWith('.partial')), []);
  });
});

const noFashion = existsSync(fashionMnistFiles('test').images) ? false
  : 'Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)';

describe('preprocess fashion-mnist', { skip: noFashion }, () => {
  it('writes PNG + cls shards that load as one-channel 28 px views', async () => {
    const output = join(dir.path, 'fmnist');
    const root = fashionMnistFiles('test').images.replace(/\/[^/]+$/, '');
    const summary = await preprocessFashionMnist({ input: root, output, limit: 30, shardSize: 20, onWarning: () => {} });
    assert.deepEqual(summary.splits.map((s) => [s.split, s.samples, s.shardsWritten.length]),
      [['train', 30, 2], ['test', 30, 2]]);
    const cls = await loadAll(join(output, 'test', 'fashion-mnist-test-{000000..000001}.tar'), 1, 28);
    assert.equal(cls.length, 30);
    assert.ok(cls.every((c) => c >= 0 && c < 10));
  });
});
