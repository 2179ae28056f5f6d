// The loader: deterministic batches for a seed, epoch length and last-batch rules, early
// exit, image folders and IDX datasets, worker threads and the in-thread mode.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';

import { DataLoader, type Batch, type LoaderOptions } from '../src/data/loader.js';
import { smallJpeg, tempDir, writeShard } from './data_helpers.js';

const dir = tempDir('loader');
after(() => dir.remove());
const shards: string[] = [];

before(async () => {
  let id = 0;
  for (let s = 0; s < 4; s++) {
    const samples = [];
    for (let i = 0; i < 10; i++, id++) {
      samples.push({ key: `k${id}`, members: { jpg: await smallJpeg(id, 40, 30), cls: String(id) } });
    }
    shards.push(await writeShard(join(dir.path, `train-${String(s).padStart(6, '0')}.tar`), samples));
  }
});

async function run(options: Partial<LoaderOptions>, epoch = 0): Promise<{ batches: Batch[]; loader: DataLoader }> {
  const loader = new DataLoader({
    dataset: { type: 'shards', shards: join(dir.path, 'train-{000000..000003}.tar') },
    views: { transformType: 'dino', nAugs: 2, size: 16, localSize: 8 },
    batchSize: 8,
    shuffle: 6,
    seed: 1,
    ...options,
  });
  const batches: Batch[] = [];
  try {
    for await (const batch of loader.epoch(epoch)) batches.push(batch);
  } finally {
    await loader.close();
  }
  return { batches, loader };
}

function fingerprint(batches: Batch[]): string {
  const sum = (data: Float32Array): string => data.reduce((a, x) => a + x, 0).toFixed(3);
  return batches.map((b) => `${[...b.cls].join(',')}|${b.views.map((v) => sum(v.data)).join(',')}`).join('\n');
}

describe('DataLoader', () => {
  it('gives the same batches for the same seed and epoch, others for another', async () => {
    const a = await run({ numWorkers: 2 });
    const b = await run({ numWorkers: 2 });
    const c = await run({ numWorkers: 2 }, 1);
    assert.equal(fingerprint(a.batches), fingerprint(b.batches));
    assert.notEqual(fingerprint(a.batches), fingerprint(c.batches));
    assert.deepEqual(a.batches[0]!.views.map((v) => v.shape), [[8, 3, 16, 16], [8, 3, 16, 16]]);
    assert.equal(a.batches[0]!.cls.length, 8);
  });

  it('renders the same views for a sample whatever the number of workers', async () => {
    const views = async (numWorkers: number) => {
      const { batches } = await run({ numWorkers, shuffle: 0, train: false });
      const bySample = new Map<number, number>();
      for (const b of batches) {
        const len = b.views[1]!.data.length / b.cls.length;
        b.cls.forEach((cls, i) => bySample.set(cls, b.views[1]!.data.subarray(i * len, (i + 1) * len)
          .reduce((s, x) => s + x, 0)));
      }
      return [...bySample.entries()].sort((x, y) => x[0] - y[0]);
    };
    assert.deepEqual(await views(0), await views(3));
  });

  it('stops at dataset_size // batch_size batches and drops the last partial batch', async () => {
    const capped = await run({ numWorkers: 2, datasetSize: 24 });
    assert.equal(capped.batches.length, 3);
    assert.equal(capped.loader.lastSummary!.expectedBatches, 3);

    const all = await run({ numWorkers: 3 }); // 40 samples, 3 workers: leftovers merged
    assert.equal(all.batches.length, 5);
    assert.ok(all.batches.every((b) => b.cls.length === 8));

    const partial = await run({ numWorkers: 3, batchSize: 6, train: false });
    assert.deepEqual(partial.batches.map((b) => b.cls.length), [6, 6, 6, 6, 6, 6, 4]);
    const trainRun = await run({ numWorkers: 3, batchSize: 6 });
    assert.equal(trainRun.batches.length, 6);
    assert.equal(trainRun.loader.lastSummary!.samples, 36);
  });

  it('per-rank sizes: batch and dataset size divided by the world size', async () => {
    const { batches, loader } = await run({ numWorkers: 1, batchSize: 8, worldSize: 2, rank: 1, datasetSize: 40 });
    assert.equal(loader.length, 5);
    assert.ok(batches.every((b) => b.cls.length === 4));
    assert.equal(batches.length, 5);
  });

  it('every rank takes the same number of batches when the shards split unevenly', async () => {
    // 3 shards of 10 over 2 ranks: one rank holds 20 samples, the other 10, and each must give
    // (30 / 2) // (6 / 2) = 5 batches of 3; the short rank reads its shard again
    const shardList = join(dir.path, 'train-{000000..000002}.tar');
    const options = (rank: number): Partial<LoaderOptions> => ({
      dataset: { type: 'shards', shards: shardList }, numWorkers: 2, batchSize: 6, worldSize: 2,
      rank, datasetSize: 30,
    });
    for (const rank of [0, 1]) {
      const { batches, loader } = await run(options(rank));
      assert.equal(batches.length, 5, `rank ${rank}`);
      assert.ok(batches.every((b) => b.cls.length === 3));
      assert.equal(loader.lastSummary!.samples, 15);
      const again = await run(options(rank));
      assert.equal(fingerprint(again.batches), fingerprint(batches), 'the passes are deterministic');
    }
  });

  it('a rank whose shards hold less than one batch is an error, not batches with repeats', async () => {
    // 1 shard of 10 over 2 ranks (5 samples each), batches of 8 per rank
    await assert.rejects(run({
      dataset: { type: 'shards', shards: shards[0]! }, numWorkers: 1, batchSize: 16, worldSize: 2,
      rank: 1, datasetSize: 32,
    }), /rank 1 reads holds 5 samples, fewer than one batch of 8/);
  });

  it('evaluation reads every sample once, whatever dataset_size says', async () => {
    const all = Array.from({ length: 40 }, (_, i) => i);
    for (const datasetSize of [80, 40, 20]) {
      // dataset_size is a count for the progress bar in evaluation, never a cap
      const { batches, loader } = await run({ numWorkers: 2, train: false, datasetSize, batchSize: 16 });
      assert.equal(loader.lastSummary!.samples, 40, `dataset_size ${datasetSize}`);
      assert.deepEqual(batches.flatMap((b) => [...b.cls]).sort((a, b) => a - b), all);
      assert.deepEqual(batches.map((b) => b.cls.length).sort((a, b) => b - a), [16, 16, 8]);
    }
  });

  it('an epoch of shards that hold nothing ends instead of reading them again forever', async () => {
    const { batches } = await run({
      dataset: { type: 'shards', shards: [join(dir.path, 'missing-000000.tar')] }, datasetSize: 16,
      onWarning: () => {},
    });
    assert.equal(batches.length, 0);
  });

  it('cancels the rest of an epoch on break, then runs the next one', async () => {
    const loader = new DataLoader({
      dataset: { type: 'shards', shards }, views: { transformType: 'linear_prob', size: 8 },
      batchSize: 4, numWorkers: 2, prefetch: 1, seed: 2,
    });
    try {
      let n = 0;
      for await (const batch of loader.epoch(0)) {
        assert.equal(batch.cls.length, 4);
        if (++n === 2) break;
      }
      let total = 0;
      for await (const batch of loader.epoch(1)) total += batch.cls.length;
      assert.equal(total, 40);
      assert.equal(loader.lastSummary!.epoch, 1);
    } finally {
      await loader.close();
    }
    await assert.rejects(async () => {
      for await (const _ of loader.epoch(2)) break;
    }, /closed/);
  });

  it('reads ImageNet-layout folders: class = sorted wnid position, files sorted', async () => {
    const root = join(dir.path, 'imagenet');
    const wnids = ['n02', 'n01', 'n03'];
    for (const [w, wnid] of wnids.entries()) {
      mkdirSync(join(root, 'val', wnid), { recursive: true });
      for (let i = 0; i < 3; i++) {
        writeFileSync(join(root, 'val', wnid, `ILSVRC_${w}${i}.JPEG`), await smallJpeg(w * 10 + i));
      }
    }
    const loader = new DataLoader({
      dataset: { type: 'imagenet', root, split: 'val' }, views: { transformType: 'val', size: 16, resizeSize: 18 },
      batchSize: 4, numWorkers: 2, train: false,
    });
    const cls: number[] = [];
    try {
      for await (const batch of loader.epoch(0)) {
        cls.push(...batch.cls);
        assert.deepEqual(batch.views[0]!.shape.slice(1), [3, 16, 16]);
      }
    } finally {
      await loader.close();
    }
    assert.deepEqual(loader.classes, ['n01', 'n02', 'n03']);
    assert.deepEqual(cls, [0, 0, 0, 1, 1, 1, 2, 2, 2]); // no shuffle: folder order
  });

  it('reads IDX files as one-channel images with scaled-down views', async () => {
    const n = 12;
    const images = Buffer.alloc(16 + n * 28 * 28);
    images.writeUInt32BE(0x00000803, 0);
    images.writeUInt32BE(n, 4);
    images.writeUInt32BE(28, 8);
    images.writeUInt32BE(28, 12);
    for (let i = 16; i < images.length; i++) images[i] = (i * 31) & 255;
    const labels = Buffer.alloc(8 + n);
    labels.writeUInt32BE(0x00000801, 0);
    labels.writeUInt32BE(n, 4);
    for (let i = 0; i < n; i++) labels[8 + i] = i % 10;
    writeFileSync(join(dir.path, 'img.idx.gz'), gzipSync(images));
    writeFileSync(join(dir.path, 'lab.idx'), labels);
    const loader = new DataLoader({
      dataset: { type: 'idx', images: join(dir.path, 'img.idx.gz'), labels: join(dir.path, 'lab.idx') },
      views: { transformType: 'dino_multicrop', nAugs: 8, size: 28, localSize: 12, channels: 1 },
      batchSize: 5, numWorkers: 2, shuffle: 1, train: true,
    });
    const cls: number[] = [];
    try {
      for await (const batch of loader.epoch(0)) {
        cls.push(...batch.cls);
        assert.deepEqual(batch.views.map((v) => v.shape[2]), [28, 28, 12, 12, 12, 12, 12, 12]);
        assert.equal(batch.views[0]!.shape[1], 1);
      }
    } finally {
      await loader.close();
    }
    assert.equal(cls.length, 10);
    assert.equal(new Set(cls.map((c, i) => `${c}-${i}`)).size, 10);
  });
});
