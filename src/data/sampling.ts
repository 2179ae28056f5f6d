// Who reads what in an epoch. Shards: the list is shuffled by (seed, epoch), split over
// ranks, then over loader workers; when there are fewer shards than readers, readers share
// a shard and take every k-th sample of it, so each sample is still read exactly once.
// Indexed datasets (folders, IDX): a permutation by (seed, epoch), strided over ranks, cut
// into batches dealt round-robin to workers. Plus webdataset's shuffle buffer.

import { Rng } from './rng.js';

/** A shard, or a strided part of one: the samples i with i % mod === rem. */
export interface ShardAssignment {
  shard: string;
  mod: number;
  rem: number;
}

/** Splits assignments into `parts`; part `index` gets its share. */
export function splitAssignments(
  assignments: readonly ShardAssignment[],
  parts: number,
  index: number,
): ShardAssignment[] {
  if (parts <= 1) return [...assignments];
  if (assignments.length >= parts) return assignments.filter((_, i) => i % parts === index);
  if (assignments.length === 0) return [];
  // Fewer assignments than parts: parts index, index + n, ... share assignment index % n.
  const n = assignments.length;
  const a = assignments[index % n]!;
  const sharing = Math.floor((parts - 1 - (index % n)) / n) + 1;
  const position = Math.floor(index / n);
  return [{ shard: a.shard, mod: a.mod * sharing, rem: a.rem + a.mod * position }];
}

export interface ShardPlanOptions {
  seed: number;
  epoch: number;
  rank: number;
  worldSize: number;
  numWorkers: number;
  /** Shuffle the shard order by (seed, epoch) (default true). */
  shuffleShards?: boolean;
  /** A repeated reading of the shards within the epoch (0, the default: the first). */
  pass?: number;
}

/** The assignments of every worker of this rank for one epoch. */
export function planShards(shards: readonly string[], options: ShardPlanOptions): ShardAssignment[][] {
  const order = [...shards];
  const pass = options.pass ?? 0;
  if (options.shuffleShards ?? true) {
    new Rng(options.seed, 'shards', options.epoch, ...(pass > 0 ? [pass] : [])).shuffle(order);
  }
  const all = order.map((shard) => ({ shard, mod: 1, rem: 0 }));
  const mine = splitAssignments(all, options.worldSize, options.rank);
  const workers = Math.max(1, options.numWorkers);
  return Array.from({ length: workers }, (_, w) => splitAssignments(mine, workers, w));
}

export interface ItemPlanOptions extends ShardPlanOptions {
  /** Per-rank batch size. */
  batchSize: number;
  shuffle: boolean;
  dropLast: boolean;
}

/** One batch of item indices and its position in the rank's epoch. */
export interface ItemBatch {
  index: number;
  items: number[];
}

/** The batches of every worker of this rank for one epoch (batch b goes to worker b % W). */
export function planItems(count: number, options: ItemPlanOptions): ItemBatch[][] {
  const order = Array.from({ length: count }, (_, i) => i);
  if (options.shuffle) new Rng(options.seed, 'items', options.epoch).shuffle(order);
  const mine = order.filter((_, i) => i % options.worldSize === options.rank);
  const workers = Math.max(1, options.numWorkers);
  const plan: ItemBatch[][] = Array.from({ length: workers }, () => []);
  for (let start = 0, b = 0; start < mine.length; start += options.batchSize, b++) {
    const items = mine.slice(start, start + options.batchSize);
    if (items.length < options.batchSize && options.dropLast) break;
    plan[b % workers]!.push({ index: b, items });
  }
  return plan;
}

/**
 * Batches per epoch and rank: `dataset_size // batch_size`, both divided by the world size
 * (as the reference does with int()).
 */
export function epochLength(datasetSize: number, batchSize: number, worldSize: number): number {
  const perRankSize = Math.trunc(datasetSize / worldSize);
  const perRankBatch = Math.trunc(batchSize / worldSize);
  if (perRankBatch < 1) {
    throw new Error(`epochLength: batch size ${batchSize} is smaller than the world size ${worldSize}`);
  }
  return Math.floor(perRankSize / perRankBatch);
}

/**
 * A shuffle buffer in the manner of webdataset's: holds up to `size` items; once full, each
 * incoming item releases a uniformly chosen held one; at the end the rest drain in random
 * order. `size` 0 or 1 passes items through in order. Memory: at most `size` items.
 */
export async function* shuffleBuffer<T>(source: AsyncIterable<T>, size: number, rng: Rng): AsyncGenerator<T> {
  if (size <= 1) {
    yield* source;
    return;
  }
  const buffer: T[] = [];
  const pick = (): T => {
    const k = rng.randint(0, buffer.length);
    const item = buffer[k]!;
    buffer[k] = buffer[buffer.length - 1]!;
    buffer.pop();
    return item;
  };
  for await (const item of source) {
    buffer.push(item);
    if (buffer.length >= size) yield pick();
  }
  while (buffer.length > 0) yield pick();
}
