// Broken input, one kind at a time: a warning naming the file, the sample skipped, a count
// in the epoch summary, the run going on; with `strict`, an error naming the file.

import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DataError, type BrokenInput, type BrokenKind } from '../src/data/broken.js';
import { DataLoader, type DatasetSpec } from '../src/data/loader.js';
import { smallJpeg, tempDir, writeShard } from './data_helpers.js';

const dir = tempDir('broken');
after(() => dir.remove());
let jpeg: Buffer;

before(async () => {
  jpeg = await smallJpeg(3, 32, 24);
});

function good(id: number) {
  return { key: `k${id}`, members: { jpg: jpeg, cls: String(id) } as Record<string, Uint8Array | string> };
}

async function epoch(dataset: DatasetSpec, strict: boolean, numWorkers = 1) {
  const warnings: BrokenInput[] = [];
  const loader = new DataLoader({
    dataset, views: { transformType: 'linear_prob', size: 8 }, batchSize: 2, numWorkers, train: false,
    strict, onWarning: (w) => warnings.push(w),
  });
  const cls: number[] = [];
  try {
    for await (const batch of loader.epoch(0)) cls.push(...batch.cls);
  } finally {
    await loader.close();
  }
  return { cls: cls.sort((a, b) => a - b), warnings, summary: loader.lastSummary! };
}

async function expectKind(dataset: () => DatasetSpec, kind: BrokenKind, file: RegExp, kept: number[]) {
  for (const numWorkers of [0, 2]) {
    const result = await epoch(dataset(), false, numWorkers);
    assert.deepEqual(result.cls, kept, `samples kept (${numWorkers} workers)`);
    assert.equal(result.summary.broken[kind], 1, `summary count of ${kind}`);
    const others = Object.entries(result.summary.broken).filter(([k, v]) => k !== kind && v !== 0);
    assert.deepEqual(others, []);
    assert.equal(result.warnings.length, 1);
    assert.equal(result.warnings[0]!.kind, kind);
    assert.match(result.warnings[0]!.file, file);
  }
  await assert.rejects(() => epoch(dataset(), true, 2), (error: unknown) => {
    assert.ok(error instanceof DataError, `strict: expected a DataError, got ${String(error)}`);
    assert.equal(error.kind, kind);
    assert.match(error.file, file);
    return true;
  });
}

describe('broken input', () => {
  it('a corrupt image', async () => {
    const bad = { key: 'k1', members: { jpg: jpeg.subarray(0, 200), cls: '1' } };
    const shard = await writeShard(join(dir.path, 'corrupt.tar'), [good(0), bad, good(2)]);
    await expectKind(() => ({ type: 'shards', shards: shard }), 'corruptImage', /corrupt\.tar:k1\.jpg$/, [0, 2]);
  });

  it('a truncated tar', async () => {
    const shard = await writeShard(join(dir.path, 'cut.tar'), [good(0), good(1), good(2)]);
    const other = await writeShard(join(dir.path, 'whole.tar'), [good(3)]);
    const memberBytes = 512 + Math.ceil(jpeg.length / 512) * 512 + 1024;
    truncateSync(shard, memberBytes * 2 + 600); // inside the data of k2's first member
    await expectKind(() => ({ type: 'shards', shards: [shard, other] }), 'truncatedTar', /cut\.tar$/, [0, 1, 3]);
  });

  it('a missing shard', async () => {
    const shard = await writeShard(join(dir.path, 'present-0.tar'), [good(0), good(1)]);
    await expectKind(() => ({ type: 'shards', shards: join(dir.path, 'present-{0..1}.tar') }),
      'missingShard', /present-1\.tar$/, [0, 1]);
    void shard;
  });

  it('a sample without an image', async () => {
    const shard = await writeShard(join(dir.path, 'noimage.tar'),
      [good(0), { key: 'k1', members: { cls: '1', txt: 'caption' } }, good(2)]);
    await expectKind(() => ({ type: 'shards', shards: shard }), 'missingImage', /noimage\.tar:k1$/, [0, 2]);
  });

  it('a sample without a label', async () => {
    const shard = await writeShard(join(dir.path, 'nolabel.tar'),
      [good(0), { key: 'k1', members: { jpg: jpeg } }, good(2)]);
    await expectKind(() => ({ type: 'shards', shards: shard }), 'missingLabel', /nolabel\.tar:k1$/, [0, 2]);
  });

  it('an unreadable class folder (a link that loops)', async () => {
    const root = join(dir.path, 'folder-loop');
    for (const name of ['a', 'c']) {
      mkdirSync(join(root, name), { recursive: true });
      writeFileSync(join(root, name, 'x.jpg'), jpeg);
    }
    symlinkSync(join(root, 'b'), join(root, 'b')); // b -> b: ELOOP
    await expectKind(() => ({ type: 'folder', root }), 'unreadableFolder', /folder-loop\/b$/, [0, 1]);
  });

  it('an unreadable image file (a dangling link)', async () => {
    const root = join(dir.path, 'folder-dangling');
    mkdirSync(join(root, 'a'), { recursive: true });
    writeFileSync(join(root, 'a', '1.jpg'), jpeg);
    symlinkSync(join(root, 'nowhere.jpg'), join(root, 'a', '2.jpg'));
    writeFileSync(join(root, 'a', '3.jpg'), jpeg);
    await expectKind(() => ({ type: 'folder', root }), 'unreadableFile', /a\/2\.jpg$/, [0, 0]);
  });
});
