// The work of one loader worker for one epoch: read its share of the samples, decode them,
// render the views and pack them into batches. It runs inside a worker thread, or in the
// main thread when the loader has no workers; the loader merges what the workers produce.

import { readFile } from 'node:fs/promises';

import { BrokenInputLog, errorMessage, type BrokenInput } from './broken.js';
import { decodeImage, type Image8 } from './image.js';
import type { FolderItem } from './image_folder.js';
import { Rng } from './rng.js';
import { shuffleBuffer, type ItemBatch, type ShardAssignment } from './sampling.js';
import { ViewPipeline, type ViewOptions } from './views.js';
import { readShardSamples, sampleImage, sampleLabel, type RawSample } from './webdataset.js';

/** Where samples come from; sent once to every worker (structured-clone friendly). */
export type DatasetDescriptor =
  | { type: 'shards' }
  | { type: 'folder'; items: FolderItem[] }
  | {
      type: 'idx';
      images: SharedArrayBuffer;
      labels: SharedArrayBuffer;
      count: number;
      height: number;
      width: number;
    };

export interface ProducerConfig {
  dataset: DatasetDescriptor;
  views: ViewOptions;
  /** Samples per batch on this rank. */
  batchSize: number;
  seed: number;
  strict: boolean;
  /** Samples without a label are broken (`missingLabel`); when false their cls is -1. */
  requireLabel: boolean;
  /** Images decoded ahead of the one being rendered (overlaps decoding with rendering). */
  decodeAhead: number;
}

export type EpochPlan =
  | { kind: 'shards'; assignments: ShardAssignment[]; shuffle: number; streamSeed: number[] }
  | { kind: 'items'; batches: ItemBatch[] };

/** A batch as typed arrays: `count` samples, views (count, C, H, W) flattened. */
export interface PackedBatch {
  count: number;
  cls: Int32Array;
  views: Float32Array[];
}

export type ProducerMessage =
  | { type: 'batch'; batch: PackedBatch }
  | { type: 'tail'; batch: PackedBatch }
  | { type: 'warning'; problem: BrokenInput }
  | { type: 'done'; samples: number };

interface Pending {
  key: string;
  cls: number;
  image: Promise<Image8 | null>;
}

export class Producer {
  readonly pipeline: ViewPipeline;

  constructor(readonly config: ProducerConfig) {
    this.pipeline = new ViewPipeline(config.views);
  }

  newBatch(capacity = this.config.batchSize): PackedBatch {
    const views: Float32Array[] = [];
    for (let v = 0; v < this.pipeline.numViews; v++) {
      views.push(new Float32Array(capacity * this.pipeline.viewLength(v)));
    }
    return { count: 0, cls: new Int32Array(capacity), views };
  }

  /** Produces the messages of one epoch. `cancelled` is polled between samples. */
  async *run(epoch: number, plan: EpochPlan, cancelled: () => boolean): AsyncGenerator<ProducerMessage> {
    const warnings: BrokenInput[] = [];
    const log = new BrokenInputLog({
      strict: this.config.strict,
      onWarning: (problem) => warnings.push(problem),
    });
    const pending: Pending[] = [];
    let batch = this.newBatch();
    let samples = 0;

    const flushWarnings = function* (): Generator<ProducerMessage> {
      while (warnings.length > 0) yield { type: 'warning', problem: warnings.shift()! };
    };
    // Renders the oldest pending sample into the batch; true when the batch is full.
    const renderOne = async (): Promise<boolean> => {
      const next = pending.shift()!;
      const image = await next.image;
      if (image === null) return false;
      const prepared = this.pipeline.prepare(image);
      const rng = new Rng(this.config.seed, epoch, next.key);
      const params = this.pipeline.sample(prepared.width, prepared.height, rng);
      this.pipeline.renderAll(prepared, params, batch.views, batch.count);
      batch.cls[batch.count] = next.cls;
      batch.count++;
      samples++;
      return batch.count === this.config.batchSize;
    };

    if (plan.kind === 'shards') {
      const rng = new Rng(...plan.streamSeed);
      const stream = shuffleBuffer(this.shardSamples(plan.assignments, log), plan.shuffle, rng);
      for await (const raw of stream) {
        if (cancelled()) break;
        const item = this.startSample(raw, log);
        if (item !== null) pending.push(item);
        yield* flushWarnings();
        while (pending.length > this.config.decodeAhead) {
          if (await renderOne()) {
            yield { type: 'batch', batch };
            batch = this.newBatch();
          }
          yield* flushWarnings();
        }
      }
      while (pending.length > 0 && !cancelled()) {
        if (await renderOne()) {
          yield { type: 'batch', batch };
          batch = this.newBatch();
        }
        yield* flushWarnings();
      }
      if (batch.count > 0 && !cancelled()) yield { type: 'tail', batch };
    } else {
      for (const itemBatch of plan.batches) {
        if (cancelled()) break;
        for (const index of itemBatch.items) {
          pending.push(this.startItem(index, log));
          while (pending.length > this.config.decodeAhead) {
            await renderOne();
            yield* flushWarnings();
          }
        }
        while (pending.length > 0) await renderOne();
        yield* flushWarnings();
        // A batch shortened by broken samples is merged with the others' leftovers.
        yield { type: batch.count === this.config.batchSize ? 'batch' : 'tail', batch };
        batch = this.newBatch();
      }
    }
    yield* flushWarnings();
    yield { type: 'done', samples };
  }

  private async *shardSamples(
    assignments: ShardAssignment[],
    log: BrokenInputLog,
  ): AsyncGenerator<RawSample> {
    for (const a of assignments) yield* readShardSamples(a.shard, log, { mod: a.mod, rem: a.rem });
  }

  /** Checks a raw sample for an image and a label and starts decoding it. */
  private startSample(raw: RawSample, log: BrokenInputLog): Pending | null {
    const where = `${raw.source}:${raw.key}`;
    const image = sampleImage(raw);
    if (image === null) {
      log.report({ kind: 'missingImage', file: where, message: `no image field among ` +
        `[${[...raw.fields.keys()].join(', ')}]` });
      return null;
    }
    let cls = sampleLabel(raw);
    if (cls === null) {
      if (this.config.requireLabel) {
        log.report({ kind: 'missingLabel', file: where, message: 'no cls field and no cls in its metadata' });
        return null;
      }
      cls = -1;
    }
    return { key: raw.key, cls, image: quiet(this.decode(image.data, `${where}.${image.field}`, log)) };
  }

  private startItem(index: number, log: BrokenInputLog): Pending {
    const dataset = this.config.dataset;
    if (dataset.type === 'idx') {
      const size = dataset.height * dataset.width;
      const data = new Uint8Array(dataset.images, index * size, size).slice();
      const image: Image8 = { data, width: dataset.width, height: dataset.height, channels: 1 };
      const cls = new Uint8Array(dataset.labels)[index]!;
      return { key: String(index), cls, image: Promise.resolve(image) };
    }
    if (dataset.type !== 'folder') throw new Error(`Producer: item plans need a folder or IDX dataset`);
    const item = dataset.items[index]!;
    const image = readFile(item.path).then(
      (bytes) => this.decode(bytes, item.path, log),
      (error: unknown) => {
        log.report({ kind: 'unreadableFile', file: item.path, message: errorMessage(error) });
        return null;
      },
    );
    return { key: String(index), cls: item.cls, image: quiet(image) };
  }

  private async decode(bytes: Uint8Array, where: string, log: BrokenInputLog): Promise<Image8 | null> {
    try {
      return await decodeImage(bytes);
    } catch (error) {
      log.report({ kind: 'corruptImage', file: where, message: errorMessage(error) });
      return null;
    }
  }
}

/**
 * Marks a promise as handled so that an epoch cancelled before awaiting it does not raise
 * an unhandled rejection; whoever awaits it still sees the error.
 */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
