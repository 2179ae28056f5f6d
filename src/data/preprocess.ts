// Preprocessing into WebDataset shards, behind `groco preprocess imagenet | folder |
// fashion-mnist`. Shards are written atomically (a `.partial` file renamed into place), so a
// shard that exists is complete: an interrupted run restarts where it stopped, keeping the
// finished shards and rewriting the partial one. The sample order is a seeded shuffle, the
// same on every run, which is what makes resuming safe (metadata.json records the seed).
//
// Unlike the reference's script, the training split goes to `<output>/train/` as
// `imagenet-train-%06d.tar` (the reference writes it into the validation folder).

import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';

import sharp from 'sharp';

import {
  BrokenInputLog, emptyCounts, errorMessage, warnToStderr, type BrokenCounts, type WarningHandler,
} from './broken.js';
import { readIdxDataset } from './idx.js';
import { encodePng } from './image.js';
import { listImageFolder, type FolderItem } from './image_folder.js';
import { pickle } from './pyd.js';
import { Rng } from './rng.js';
import { listTar, TarWriter } from './tar.js';

export interface PreprocessProgress {
  split: string;
  shardsDone: number;
  shardsTotal: number;
  samplesDone: number;
  samplesTotal: number;
  /** The shard just finished (written or kept). */
  shard: string;
  kept: boolean;
}

export interface SplitSummary {
  split: string;
  folder: string;
  samples: number;
  shardsWritten: string[];
  /** Complete shards found from an earlier run and kept. */
  shardsKept: string[];
  /** Samples left out because their file was broken. */
  samplesSkipped: number;
}

export interface PreprocessSummary {
  output: string;
  splits: SplitSummary[];
  broken: BrokenCounts;
  seconds: number;
}

export interface PreprocessOptions {
  input: string;
  output: string;
  /** Seed of the sample shuffle (default 0). */
  seed?: number;
  strict?: boolean;
  onProgress?: (progress: PreprocessProgress) => void;
  onWarning?: WarningHandler;
  /** Member modification time written into the tars (default: now). */
  mtime?: number;
}

/** One sample to write: its key and its members (field -> bytes). */
interface SampleToWrite {
  key: string;
  members: [string, Uint8Array][];
}

interface SplitJob {
  split: string;
  folder: string;
  pattern: string;
  shardSize: number;
  count: number;
  /** Produces sample i (in shuffled order), or null when its input is broken. */
  sample: (i: number) => Promise<SampleToWrite | null>;
}

const READ_AHEAD = 8;

function shardName(pattern: string, index: number): string {
  return pattern.replace('%06d', String(index).padStart(6, '0'));
}

async function isCompleteShard(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  try {
    await listTar(path);
    return true;
  } catch {
    return false;
  }
}

async function writeSplit(
  job: SplitJob,
  options: PreprocessOptions,
  log: BrokenInputLog,
): Promise<SplitSummary> {
  await mkdir(job.folder, { recursive: true });
  const shards = Math.ceil(job.count / job.shardSize);
  const summary: SplitSummary = {
    split: job.split, folder: job.folder, samples: 0, shardsWritten: [], shardsKept: [], samplesSkipped: 0,
  };
  for (let s = 0; s < shards; s++) {
    const path = join(job.folder, shardName(job.pattern, s));
    const first = s * job.shardSize;
    const last = Math.min(job.count, first + job.shardSize);
    const report = (kept: boolean): void => options.onProgress?.({
      split: job.split, shardsDone: s + 1, shardsTotal: shards, samplesDone: last,
      samplesTotal: job.count, shard: path, kept,
    });
    if (await isCompleteShard(path)) {
      summary.shardsKept.push(path);
      report(true);
      continue;
    }
    await rm(`${path}.partial`, { force: true });
    const writer = await TarWriter.create(path, { mtime: options.mtime });
    try {
      const inFlight: Promise<SampleToWrite | null>[] = [];
      // a read ahead may fail (strict) before it is awaited: that is handled where it is awaited
      const start = (i: number): void => {
        const sample = job.sample(i);
        sample.catch(() => undefined);
        inFlight.push(sample);
      };
      for (let i = first; i < Math.min(last, first + READ_AHEAD); i++) start(i);
      for (let i = first; i < last; i++) {
        const sample = await inFlight.shift()!;
        if (i + READ_AHEAD < last) start(i + READ_AHEAD);
        if (sample === null) {
          summary.samplesSkipped++;
          continue;
        }
        for (const [field, data] of sample.members) await writer.add(`${sample.key}.${field}`, data);
        summary.samples++;
      }
      await writer.close();
    } catch (error) {
      await writer.abort();
      throw error;
    }
    summary.shardsWritten.push(path);
    report(false);
  }
  return summary;
}

/** Keys may not contain dots (the first dot starts the field); duplicates get a suffix. */
function uniqueKeys(names: string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((name) => {
    const base = name.replace(/[.\s/\\]/g, '_') || 'sample';
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  });
}

/** Reads an image file and checks its header; null (and a warning) when broken. */
async function readImageFile(path: string, log: BrokenInputLog): Promise<Uint8Array | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    log.report({ kind: 'unreadableFile', file: path, message: errorMessage(error) });
    return null;
  }
  try {
    const meta = await sharp(bytes).metadata();
    if (!meta.width || !meta.height) throw new Error('no image dimensions in the header');
  } catch (error) {
    log.report({ kind: 'corruptImage', file: path, message: errorMessage(error) });
    return null;
  }
  return bytes;
}

function imageField(path: string): string {
  const ext = extname(path).toLowerCase().replace('.', '');
  return `image.${ext === 'jpeg' ? 'jpg' : ext}`;
}

/** Checks the resume record in metadata.json and writes the new one. */
async function writeMetadata(output: string, metadata: Record<string, unknown>, resume: object): Promise<void> {
  const file = join(output, 'metadata.json');
  if (existsSync(file)) {
    let previous: { groco?: unknown } = {};
    try {
      previous = JSON.parse(readFileSync(file, 'utf8')) as { groco?: unknown };
    } catch {
      previous = {};
    }
    // a record from before a key existed matches on that key
    const recorded = typeof previous.groco === 'object' && previous.groco !== null
      ? { ...resume, ...previous.groco } : previous.groco;
    if (recorded !== undefined && JSON.stringify(recorded) !== JSON.stringify(resume)) {
      throw new Error(`preprocess: ${output} holds shards of a different run ` +
        `(${JSON.stringify(previous.groco)}, now ${JSON.stringify(resume)}); ` +
        'use the same seed, shard size and input to resume, or an empty output folder');
    }
  }
  await mkdir(output, { recursive: true });
  await writeFile(`${file}.partial`, JSON.stringify({ ...metadata, groco: resume }));
  await rename(`${file}.partial`, file);
}

function folderSplit(
  items: FolderItem[],
  options: PreprocessOptions,
  split: string,
  extra: (item: FolderItem) => Record<string, string | number>,
  log: BrokenInputLog,
): Omit<SplitJob, 'folder' | 'pattern' | 'shardSize'> {
  const order = new Rng(options.seed ?? 0, 'preprocess', split).permutation(items.length);
  const keys = uniqueKeys(items.map((item) => basename(item.path, extname(item.path))));
  return {
    split,
    count: items.length,
    sample: async (i) => {
      const index = order[i]!;
      const item = items[index]!;
      const bytes = await readImageFile(item.path, log);
      if (bytes === null) return null;
      const meta = { cls: item.cls, ...extra(item) };
      return {
        key: keys[index]!,
        members: [
          [imageField(item.path), bytes],
          ['cls', Buffer.from(String(item.cls))],
          ['metadata.pyd', pickle(meta)],
        ],
      };
    },
  };
}

/** Class names per wnid from `LOC_synset_mapping.txt` (`n01440764 tench, Tinca tinca`). */
function readSynsets(input: string, wnids: string[]): string[][] {
  const file = join(input, 'LOC_synset_mapping.txt');
  const names = new Map<string, string[]>();
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const match = /^(\S+)\s+(.*)$/.exec(line.trim());
      if (match) names.set(match[1]!, match[2]!.split(',').map((s) => s.trim()));
    }
  }
  return wnids.map((wnid) => names.get(wnid) ?? [wnid]);
}

function makeLog(options: PreprocessOptions, counts: BrokenCounts): BrokenInputLog {
  const onWarning = options.onWarning ?? warnToStderr;
  return new BrokenInputLog({
    strict: options.strict,
    onWarning: (problem) => {
      counts[problem.kind] += 1;
      onWarning(problem);
    },
  });
}

/**
 * ImageNet folder (`input/train/<wnid>/*.JPEG`, `input/val/<wnid>/*`) to shards:
 * `output/train/imagenet-train-%06d.tar` (2000 samples each), `output/val/imagenet-val-%06d.tar`
 * (500 each), each sample `<key>.image.jpg`, `<key>.cls`, `<key>.metadata.pyd`
 * ({'cls', 'wnid'}), and `output/metadata.json` with the wnid and class tables.
 */
export async function preprocessImageNet(
  options: PreprocessOptions & { trainShardSize?: number; valShardSize?: number },
): Promise<PreprocessSummary> {
  const started = performance.now();
  const broken = emptyCounts();
  const log = makeLog(options, broken);
  const val = listImageFolder(join(options.input, 'val'), log);
  const train = listImageFolder(join(options.input, 'train'), log);
  if (JSON.stringify(val.classes) !== JSON.stringify(train.classes)) {
    throw new Error(`preprocessImageNet: train has ${train.classes.length} class folders and val ` +
      `${val.classes.length}, and they differ; both splits need the same wnid folders`);
  }
  if (train.items.length === 0) {
    throw new Error(`preprocessImageNet: ${join(options.input, 'train')} holds no images ` +
      '(expected <wnid> folders of image files)');
  }
  const wnids = train.classes;
  const trainShardSize = options.trainShardSize ?? 2000;
  const valShardSize = options.valShardSize ?? 500;
  const classes = readSynsets(options.input, wnids);
  const classToIdx: Record<string, number> = {};
  classes.forEach((names, idx) => names.forEach((name) => (classToIdx[name] = idx)));
  await writeMetadata(options.output, {
    wnids,
    classes,
    wnid_to_idx: Object.fromEntries(wnids.map((w, i) => [w, i])),
    class_to_idx: classToIdx,
  }, {
    seed: options.seed ?? 0, train: train.items.length, val: val.items.length,
    train_shard_size: trainShardSize, val_shard_size: valShardSize,
  });

  const splits: SplitSummary[] = [];
  for (const [split, folder, size] of [
    ['val', val, valShardSize],
    ['train', train, trainShardSize],
  ] as const) {
    const job = folderSplit(folder.items, options, split, (item) => ({ wnid: wnids[item.cls]! }), log);
    splits.push(await writeSplit({
      ...job, folder: join(options.output, split), pattern: `imagenet-${split}-%06d.tar`, shardSize: size,
    }, options, log));
  }
  return { output: options.output, splits, broken, seconds: (performance.now() - started) / 1000 };
}

/**
 * Any folder of class subfolders to shards `output/<prefix>-%06d.tar` (`shardSize` samples
 * each, default 2000), samples as for ImageNet ({'cls', 'class'} in the metadata).
 */
export async function preprocessFolder(
  options: PreprocessOptions & { prefix?: string; shardSize?: number },
): Promise<PreprocessSummary> {
  const started = performance.now();
  const broken = emptyCounts();
  const log = makeLog(options, broken);
  const folder = listImageFolder(options.input, log);
  const shardSize = options.shardSize ?? 2000;
  if (folder.items.length === 0) {
    throw new Error(`preprocessFolder: ${options.input} holds no images (expected class folders of image files)`);
  }
  await writeMetadata(options.output, {
    classes: folder.classes,
    class_to_idx: Object.fromEntries(folder.classes.map((c, i) => [c, i])),
  }, { seed: options.seed ?? 0, samples: folder.items.length, shard_size: shardSize });
  const prefix = options.prefix ?? 'shard';
  const job = folderSplit(folder.items, options, 'all', (item) => ({ class: folder.classes[item.cls]! }), log);
  const split = await writeSplit({
    ...job, folder: options.output, pattern: `${prefix}-%06d.tar`, shardSize,
  }, options, log);
  return { output: options.output, splits: [split], broken, seconds: (performance.now() - started) / 1000 };
}

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

/**
 * Fashion-MNIST IDX files (`input/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`) to
 * `output/train/fashion-mnist-train-%06d.tar` and `output/test/fashion-mnist-test-%06d.tar`
 * (`shardSize` samples each, default 5000), samples `<key>.image.png` (28x28 grey) and
 * `<key>.cls`. `limit` keeps only the first n images of each split (for quick runs).
 */
export async function preprocessFashionMnist(
  options: PreprocessOptions & { shardSize?: number; limit?: number },
): Promise<PreprocessSummary> {
  const started = performance.now();
  const broken = emptyCounts();
  const log = makeLog(options, broken);
  const shardSize = options.shardSize ?? 5000;
  const find = (name: string): string => {
    const gz = join(options.input, `${name}.gz`);
    return existsSync(gz) ? gz : join(options.input, name);
  };
  const splits: SplitSummary[] = [];
  const counts: Record<string, number> = {};
  const data = (['train', 'test'] as const).map((split) => {
    const prefix = split === 'train' ? 'train' : 't10k';
    const idx = readIdxDataset(find(`${prefix}-images-idx3-ubyte`), find(`${prefix}-labels-idx1-ubyte`));
    const count = Math.min(idx.count, options.limit ?? idx.count);
    counts[split] = count;
    return { split, idx, count };
  });
  await writeMetadata(options.output, {
    classes: FASHION_MNIST_CLASSES,
    class_to_idx: Object.fromEntries(FASHION_MNIST_CLASSES.map((c, i) => [c, i])),
  }, { seed: options.seed ?? 0, ...counts, shard_size: shardSize });

  for (const { split, idx, count } of data) {
    const order = new Rng(options.seed ?? 0, 'preprocess', split).permutation(count);
    const size = idx.height * idx.width;
    splits.push(await writeSplit({
      split,
      count,
      folder: join(options.output, split),
      pattern: `fashion-mnist-${split}-%06d.tar`,
      shardSize,
      sample: async (i) => {
        const index = order[i]!;
        const pixels = idx.images.subarray(index * size, (index + 1) * size);
        const png = await encodePng({ data: pixels, width: idx.width, height: idx.height, channels: 1 });
        return {
          key: `${split}_${String(index).padStart(6, '0')}`,
          members: [['image.png', png], ['cls', Buffer.from(String(idx.labels[index]!))]],
        };
      },
    }, options, log));
  }
  return { output: options.output, splits, broken, seconds: (performance.now() - started) / 1000 };
}
