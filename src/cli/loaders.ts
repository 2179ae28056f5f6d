// Config dataloader sections to data loaders, and loaders to the trainer's data interface.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { DataLoader, fashionMnistFiles, type LoaderOptions } from '../data/index.js';
import type { DataloaderSpec } from '../config/index.js';
import type { TrainData } from '../train/pretrain.js';
import type { PlainBatch } from '../train/batch.js';

export interface Placement {
  rank: number;
  worldSize: number;
  seed: number;
}

/**
 * `evaluation`: every sample once (no last batch dropped) while `train` still picks the split,
 * as the feature bank of k-NN needs the whole training split.
 */
export function loaderOptions(spec: DataloaderSpec, place: Placement, evaluation = false): LoaderOptions {
  const a = spec.args;
  const views = {
    transformType: a.transform_type, nAugs: a.n_augs, size: a.image_size, localSize: a.small_crop_size,
    resizeSize: a.resize, channels: a.channels, mean: a.mean, std: a.std, blurSigma: a.blur_sigma,
  };
  const common = {
    views, batchSize: a.batch_size, numWorkers: a.num_workers, train: a.train && !evaluation, seed: place.seed,
    rank: place.rank, worldSize: place.worldSize,
  };
  switch (spec.type) {
    case 'web_dataloader':
      return { ...common, dataset: { type: 'shards', shards: spec.args.shards }, shuffle: spec.args.shuffle,
        datasetSize: spec.args.dataset_size };
    case 'image_folder_dataloader':
      return { ...common, shuffle: spec.args.shuffle ? 1 : 0,
        dataset: spec.args.layout === 'imagenet'
          ? { type: 'imagenet', root: spec.args.root, split: spec.args.train ? 'train' : 'val' }
          : { type: 'folder', root: spec.args.root } };
    case 'fashion_mnist_dataloader': {
      const files = fashionMnistFiles(spec.args.train ? 'train' : 'test', spec.args.root);
      const find = (gz: string): string => {
        if (existsSync(gz)) return gz;
        const raw = gz.replace(/\.gz$/, '');
        if (existsSync(raw)) return raw;
        throw new Error(`fashion_mnist_dataloader: root '${spec.args.root}' has no ${basename(raw)} ` +
          '(or .gz); install dataset-fashion-mnist or point root at the IDX files');
      };
      return { ...common, shuffle: spec.args.shuffle ? 1 : 0,
        dataset: { type: 'idx', images: find(files.images), labels: find(files.labels) } };
    }
  }
}

export function createLoader(spec: DataloaderSpec, place: Placement, evaluation = false): DataLoader {
  return new DataLoader(loaderOptions(spec, place, evaluation));
}

async function* skipping(batches: AsyncIterable<PlainBatch>, skip: number): AsyncGenerator<PlainBatch> {
  let index = 0;
  for await (const batch of batches) {
    if (index++ < skip) continue;
    yield batch;
  }
}

/**
 * The trainer's view of a loader. Resuming inside an epoch replays the epoch's batches and drops
 * the ones already trained on, so data order and views are exactly those of an unbroken run.
 */
export function trainData(loader: DataLoader, maxBatches: number | null = null,
  log: ((line: string) => void) | null = null): TrainData {
  const length = loader.length;
  if (length === null || length < 1) {
    throw new Error('train_dataloader: an epoch would have no full batch (check dataset_size and batch_size)');
  }
  const steps = maxBatches === null ? length : Math.min(length, maxBatches);
  return {
    stepsPerEpoch: steps,
    epoch: (epoch, skip) => reportBroken(limit(skipping(loader.epoch(epoch), skip), steps - skip),
      loader, epoch, log),
  };
}

/** After an epoch, one line counting the broken input that was skipped (each was warned about). */
async function* reportBroken(batches: AsyncIterable<PlainBatch>, loader: DataLoader, epoch: number,
  log: ((line: string) => void) | null): AsyncGenerator<PlainBatch> {
  yield* batches;
  const summary = loader.lastSummary;
  if (log === null || summary === null || summary.epoch !== epoch) return;
  const counts = Object.entries(summary.broken).filter(([, n]) => n > 0);
  if (counts.length > 0) {
    log(`epoch ${epoch}: skipped broken input: ${counts.map(([kind, n]) => `${kind} ${n}`).join(', ')} ` +
      '(each named in a warning above)');
  }
}

async function* limit(batches: AsyncIterable<PlainBatch>, count: number): AsyncGenerator<PlainBatch> {
  if (count <= 0) return;
  let n = 0;
  for await (const batch of batches) {
    yield batch;
    if (++n >= count) return;
  }
}

/** Every batch of one pass (evaluation). */
export function onePass(loader: DataLoader, epoch = 0): AsyncIterable<PlainBatch> {
  return loader.epoch(epoch);
}
