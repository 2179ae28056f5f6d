// Who reads what: every sample exactly once per epoch across ranks and loader workers
// (more workers than shards included), the shuffle buffer, epoch lengths.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { BrokenInputLog } from '../src/data/broken.js';
import { DataLoader } from '../src/data/loader.js';
import { Rng } from '../src/data/rng.js';
import { epochLength, planItems, planShards, shuffleBuffer } from '../src/data/sampling.js';
import { readShardSamples, sampleLabel } from '../src/data/webdataset.js';
import { smallJpeg, tempDir, writeShard } from './data_helpers.js';

const dir = tempDir('sampling');
after(() => dir.remove());

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe('splitting an epoch', () => {
  const sizes = [7, 5, 9, 1, 4, 6];
  const shards: string[] = [];
  let jpeg: Buffer;
  before(async () => {
    jpeg = await smallJpeg(1, 16, 12);
    let id = 0;
    for (const [s, size] of sizes.entries()) {
      const samples = Array.from({ length: size }, () => {
        const cls = id++;
        return { key: `s${cls}`, members: { jpg: jpeg, cls: String(cls) } };
      });
      shards.push(await writeShard(join(dir.path, `shard-${s}.tar`), samples));
    }
  });

  it('plans every sample exactly once for any ranks x workers, shards or not', async () => {
    const log = new BrokenInputLog({ strict: true });
    for (const nShards of [1, 2, 3, 6]) {
      const list = shards.slice(0, nShards);
      const total = sizes.slice(0, nShards).reduce((a, b) => a + b, 0);
      for (const world of [1, 2, 3]) {
        for (const workers of [1, 2, 5]) {
          const seen: number[] = [];
          for (let rank = 0; rank < world; rank++) {
            const plan = planShards(list, { seed: 3, epoch: 1, rank, worldSize: world, numWorkers: workers });
            for (const assignments of plan) {
              for (const a of assignments) {
                for await (const s of readShardSamples(a.shard, log, a)) seen.push(sampleLabel(s)!);
              }
            }
          }
          seen.sort((a, b) => a - b);
          assert.deepEqual(seen, Array.from({ length: total }, (_, i) => i),
            `${nShards} shards, world ${world}, ${workers} workers`);
        }
      }
    }
  });

  it('the loader delivers every sample once across 2 ranks x 4 workers over 3 shards', async () => {
    const seen: number[] = [];
    for (let rank = 0; rank < 2; rank++) {
      const loader = new DataLoader({
        dataset: { type: 'shards', shards: shards.slice(0, 3) },
        views: { transformType: 'linear_prob', size: 8 },
        batchSize: 4, numWorkers: 4, train: false, shuffle: 5, seed: 11, rank, worldSize: 2,
      });
      try {
        for await (const batch of loader.epoch(2)) {
          seen.push(...batch.cls);
          assert.deepEqual(batch.views[0]!.shape.slice(1), [3, 8, 8]);
        }
      } finally {
        await loader.close();
      }
    }
    seen.sort((a, b) => a - b);
    assert.deepEqual(seen, Array.from({ length: 21 }, (_, i) => i));
  });

  it('shuffles the shard order by (seed, epoch), the same on every rank', () => {
    const names = Array.from({ length: 20 }, (_, i) => `s${i}`);
    const order = (seed: number, epoch: number) =>
      planShards(names, { seed, epoch, rank: 0, worldSize: 1, numWorkers: 1 })[0]!.map((a) => a.shard);
    assert.deepEqual(order(1, 0), order(1, 0));
    assert.notDeepEqual(order(1, 0), order(1, 1));
    assert.notDeepEqual(order(1, 0), order(2, 0));
    assert.deepEqual([...order(1, 3)].sort(), [...names].sort());
  });

  it('indexed datasets: batches strided over ranks, dealt round-robin to workers', () => {
    for (const dropLast of [true, false]) {
      const seen: number[] = [];
      for (let rank = 0; rank < 3; rank++) {
        const plan = planItems(50, {
          seed: 1, epoch: 0, rank, worldSize: 3, numWorkers: 2, batchSize: 4, shuffle: true, dropLast,
        });
        plan.forEach((batches, w) => batches.forEach((b) => assert.equal(b.index % 2, w)));
        for (const b of plan.flat()) {
          if (dropLast) assert.equal(b.items.length, 4);
          seen.push(...b.items);
        }
      }
      assert.equal(new Set(seen).size, seen.length, 'no duplicates');
      // 50 items over 3 ranks: 17, 17, 16; with drop_last 16, 16, 16 in batches of 4
      assert.equal(seen.length, dropLast ? 48 : 50);
    }
  });
});

describe('shuffle buffer', () => {
  async function* numbers(n: number): AsyncGenerator<number> {
    for (let i = 0; i < n; i++) yield i;
  }

  it('is a permutation, deterministic for a seed, and mixes within its size', async () => {
    const a = await collect(shuffleBuffer(numbers(1000), 100, new Rng(5)));
    const b = await collect(shuffleBuffer(numbers(1000), 100, new Rng(5)));
    const c = await collect(shuffleBuffer(numbers(1000), 100, new Rng(6)));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
    // an item leaves the buffer no earlier than (index - size + 1)
    a.forEach((value, position) => assert.ok(value <= position + 99, `${value} at ${position}`));
    assert.ok(a.filter((v, i) => v !== i).length > 900, 'order is mixed');
  });

  it('passes items through in order when its size is 0', async () => {
    assert.deepEqual(await collect(shuffleBuffer(numbers(10), 0, new Rng(1))), Array.from({ length: 10 }, (_, i) => i));
  });
});

describe('epoch length', () => {
  it('is dataset_size // batch_size per rank, sizes divided by the world size', () => {
    assert.equal(epochLength(1280000, 1024, 1), 1250);
    assert.equal(epochLength(1280000, 1024, 8), 1250);
    assert.equal(epochLength(50000, 4096, 16), 12);
    assert.equal(epochLength(1000, 64, 3), 15); // int(1000 / 3) // int(64 / 3) = 333 // 21
    assert.throws(() => epochLength(100, 2, 4), /smaller than the world size/);
  });
});
