// The data loader: per epoch, plans who reads what, runs the producers (worker threads, or
// the main thread when numWorkers is 0), and hands out batches in a deterministic order:
// round-robin over workers (as PyTorch's DataLoader does), then the workers' leftover
// samples merged into full batches. Broken input is warned about, skipped and counted.

import { Worker } from 'node:worker_threads';

import { resolveShards } from './brace.js';
import {
  addCounts, BrokenInputLog, DataError, emptyCounts, warnToStderr,
  type BrokenCounts, type BrokenKind, type WarningHandler,
} from './broken.js';
import { readIdxDataset } from './idx.js';
import { listImageFolder, listImageNet, type ImageFolder } from './image_folder.js';
import {
  Producer, type DatasetDescriptor, type EpochPlan, type PackedBatch, type ProducerConfig,
  type ProducerMessage,
} from './producer.js';
import { epochLength, planItems, planShards } from './sampling.js';
import type { ViewOptions } from './views.js';
import type { FromWorker, ToWorker } from './worker.js';

export type DatasetSpec =
  | { type: 'shards'; shards: string | string[] }
  | { type: 'imagenet'; root: string; split: 'train' | 'val' }
  | { type: 'folder'; root: string }
  | { type: 'idx'; images: string; labels: string };

export interface LoaderOptions {
  dataset: DatasetSpec;
  views: ViewOptions;
  /** Global batch size; each rank gets batchSize / worldSize. */
  batchSize: number;
  /** Worker threads decoding and augmenting (0: the main thread does it). */
  numWorkers?: number;
  /** Training: drop the last partial batch (default true). */
  train?: boolean;
  /**
   * Shards: the shuffle buffer size (0 = off). Folders and IDX: permute the order when true
   * or > 0 (the reference's configs write `shuffle: true` for folders).
   */
  shuffle?: number | boolean;
  /** Shards: the dataset size that fixes the epoch length (dataset_size // batch_size). */
  datasetSize?: number;
  seed?: number;
  rank?: number;
  worldSize?: number;
  /** Broken input is an error instead of a warning and a skip. */
  strict?: boolean;
  /** A sample without a label is broken (default true); otherwise its cls is -1. */
  requireLabel?: boolean;
  /** Batches each worker may have ready ahead of the consumer (default 2). */
  prefetch?: number;
  /** Images each worker decodes ahead of the one it renders (default 2). */
  decodeAhead?: number;
  onWarning?: WarningHandler;
}

/** One view of a batch: (B, C, H, W) floats. */
export interface ViewTensor {
  data: Float32Array;
  shape: [number, number, number, number];
}

export interface Batch {
  cls: Int32Array;
  views: ViewTensor[];
}

export interface EpochSummary {
  epoch: number;
  batches: number;
  samples: number;
  /** Batches the epoch should have had (null when not known in advance). */
  expectedBatches: number | null;
  broken: BrokenCounts;
  seconds: number;
}

type Event = (ProducerMessage & { epoch: number }) | Extract<FromWorker, { type: 'error' }>;

/** The loader's view of one producer (a thread, or the main thread). */
interface ProducerHandle {
  start(epoch: number, plan: EpochPlan, prefetch: number): void;
  next(): Promise<Event>;
  credit(): void;
  cancel(): void;
  close(): Promise<void>;
}

class ThreadHandle implements ProducerHandle {
  private readonly worker: Worker;
  private readonly queue: Event[] = [];
  private waiter: ((event: Event) => void) | null = null;
  private epoch = -1;
  private exited = false;

  constructor(config: ProducerConfig) {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: config });
    this.worker.on('message', (message: FromWorker) => {
      if (message.epoch === this.epoch) this.push(message);
    });
    this.worker.on('error', (error) => {
      this.push({ type: 'error', epoch: this.epoch, message: error.message, stack: error.stack });
    });
    this.worker.on('exit', (code) => {
      this.exited = true;
      if (code !== 0) {
        this.push({ type: 'error', epoch: this.epoch, message: `loader worker exited with code ${code}` });
      }
    });
  }

  private push(event: Event): void {
    if (this.waiter !== null) {
      const resolve = this.waiter;
      this.waiter = null;
      resolve(event);
    } else {
      this.queue.push(event);
    }
  }

  private send(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  start(epoch: number, plan: EpochPlan, prefetch: number): void {
    this.epoch = epoch;
    this.queue.length = 0;
    this.send({ type: 'epoch', epoch, plan, prefetch });
  }

  next(): Promise<Event> {
    const event = this.queue.shift();
    if (event !== undefined) return Promise.resolve(event);
    if (this.exited) {
      return Promise.resolve({ type: 'error', epoch: this.epoch, message: 'loader worker has exited' });
    }
    return new Promise((resolve) => (this.waiter = resolve));
  }

  credit(): void {
    this.send({ type: 'credit', epoch: this.epoch });
  }

  cancel(): void {
    this.send({ type: 'cancel', epoch: this.epoch });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.send({ type: 'close' });
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5000).unref());
    if ((await Promise.race([exited, timeout])) === 'timeout') await this.worker.terminate();
  }
}

class LocalHandle implements ProducerHandle {
  private iterator: AsyncGenerator<ProducerMessage> | null = null;
  private epoch = -1;
  private cancelled = false;

  constructor(private readonly producer: Producer) {}

  start(epoch: number, plan: EpochPlan): void {
    this.epoch = epoch;
    this.cancelled = false;
    this.iterator = this.producer.run(epoch, plan, () => this.cancelled);
  }

  async next(): Promise<Event> {
    if (this.iterator === null) throw new Error('LocalHandle.next: no epoch started');
    try {
      const { value, done } = await this.iterator.next();
      if (done) return { type: 'done', epoch: this.epoch, samples: 0 };
      return { ...value, epoch: this.epoch };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      return {
        type: 'error', epoch: this.epoch, message: e.message, stack: e.stack,
        ...(e instanceof DataError ? { kind: e.kind, file: e.file, detail: e.detail } : {}),
      };
    }
  }

  credit(): void {}

  cancel(): void {
    this.cancelled = true;
  }

  async close(): Promise<void> {
    this.cancelled = true;
    await this.iterator?.return(undefined);
  }
}

export class DataLoader {
  readonly options: LoaderOptions;
  readonly batchSize: number;
  readonly numWorkers: number;
  readonly dropLast: boolean;
  readonly seed: number;
  readonly rank: number;
  readonly worldSize: number;
  /** Class names of folder datasets (sorted folder names), else null. */
  readonly classes: string[] | null = null;
  lastSummary: EpochSummary | null = null;
  private readonly onWarning: WarningHandler;
  private readonly descriptor: DatasetDescriptor;
  private readonly shards: string[] = [];
  private readonly itemCount: number = 0;
  private readonly listingCounts: BrokenCounts = emptyCounts();
  private readonly handles: ProducerHandle[];
  private readonly producer: Producer;
  private running = false;
  private closed = false;

  constructor(options: LoaderOptions) {
    this.options = options;
    this.worldSize = options.worldSize ?? 1;
    this.rank = options.rank ?? 0;
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new Error(`DataLoader: rank must be in [0, ${this.worldSize}), got ${this.rank}`);
    }
    this.batchSize = Math.trunc(options.batchSize / this.worldSize);
    if (!(this.batchSize >= 1)) {
      throw new Error(`DataLoader: batchSize ${options.batchSize} over ${this.worldSize} ranks ` +
        'leaves no sample per rank');
    }
    this.numWorkers = options.numWorkers ?? 0;
    this.dropLast = options.train ?? true;
    this.seed = options.seed ?? 0;
    this.onWarning = options.onWarning ?? warnToStderr;
    const strict = options.strict ?? false;
    const listingLog = new BrokenInputLog({
      strict,
      onWarning: (problem) => {
        this.listingCounts[problem.kind] += 1;
        this.onWarning(problem);
      },
    });

    const dataset = options.dataset;
    if (dataset.type === 'shards' && typeof options.shuffle === 'boolean') {
      throw new Error(`DataLoader: for shards, shuffle is the buffer size (a number, 0 = off), ` +
        `got ${options.shuffle}`);
    }
    if (dataset.type === 'shards') {
      // Strict: a missing shard fails now. Otherwise every epoch reports it when reading.
      const resolved = resolveShards(dataset.shards, new BrokenInputLog({ strict, onWarning: () => {} }));
      this.shards = [...resolved.shards, ...resolved.missing];
      this.descriptor = { type: 'shards' };
    } else if (dataset.type === 'idx') {
      const idx = readIdxDataset(dataset.images, dataset.labels);
      const images = new SharedArrayBuffer(idx.images.length);
      new Uint8Array(images).set(idx.images);
      const labels = new SharedArrayBuffer(idx.labels.length);
      new Uint8Array(labels).set(idx.labels);
      this.descriptor = {
        type: 'idx', images, labels, count: idx.count, height: idx.height, width: idx.width,
      };
      this.itemCount = idx.count;
    } else {
      const folder: ImageFolder = dataset.type === 'imagenet'
        ? listImageNet(dataset.root, dataset.split, listingLog)
        : listImageFolder(dataset.root, listingLog);
      this.classes = folder.classes;
      this.descriptor = { type: 'folder', items: folder.items };
      this.itemCount = folder.items.length;
    }

    const config: ProducerConfig = {
      dataset: this.descriptor,
      views: options.views,
      batchSize: this.batchSize,
      seed: this.seed,
      strict,
      requireLabel: options.requireLabel ?? true,
      decodeAhead: options.decodeAhead ?? 2,
    };
    this.producer = new Producer(config);
    this.handles = this.numWorkers === 0
      ? [new LocalHandle(this.producer)]
      : Array.from({ length: this.numWorkers }, () => new ThreadHandle(config));
  }

  /**
   * Batches per epoch on this rank, when known in advance. Shards in training: exactly
   * `dataset_size // batch_size` (sizes per rank); in evaluation every sample is read, and this
   * is only the expected count (the last batch may be partial).
   */
  get length(): number | null {
    if (this.descriptor.type === 'shards') {
      const size = this.options.datasetSize;
      if (size === undefined) return null;
      if (this.dropLast) return epochLength(size, this.options.batchSize, this.worldSize);
      return Math.ceil(Math.trunc(size / this.worldSize) / this.batchSize);
    }
    const perRank = Math.ceil((this.itemCount - this.rank) / this.worldSize);
    return this.dropLast ? Math.floor(perRank / this.batchSize) : Math.ceil(perRank / this.batchSize);
  }

  /** (C, H, W) of each view. */
  get viewShapes(): [number, number, number][] {
    return this.producer.pipeline.specs.map((_, v) => this.producer.pipeline.viewShape(v));
  }

  /** The batches of one epoch. Breaking out of the loop cancels the rest of the epoch. */
  async *epoch(epoch: number): AsyncGenerator<Batch, EpochSummary> {
    if (this.closed) throw new Error('DataLoader.epoch: the loader is closed');
    if (this.running) throw new Error('DataLoader.epoch: the previous epoch is still being iterated');
    this.running = true;
    const started = performance.now();
    const broken = addCounts(emptyCounts(), this.listingCounts);
    // shards in evaluation: no cap, whatever dataset_size says
    const cap = this.descriptor.type === 'shards' && !this.dropLast ? null : this.length;
    const workers = this.handles.length;
    const finished = new Array<boolean>(workers).fill(false);
    const tails: PackedBatch[][] = Array.from({ length: workers }, () => []);
    let batches = 0;
    let samples = 0;

    const prefetch = this.options.prefetch ?? 2;
    const handle = (event: Event, w: number): void => {
      if (event.type === 'warning') {
        broken[event.problem.kind] += 1;
        this.onWarning(event.problem);
      } else if (event.type === 'tail') {
        tails[w]!.push(event.batch);
      } else if (event.type === 'done') {
        finished[w] = true;
      } else if (event.type === 'error') {
        finished[w] = true;
        if (event.kind !== undefined) {
          throw new DataError({
            kind: event.kind as BrokenKind, file: event.file ?? '?', message: event.detail ?? event.message,
          });
        }
        const error = new Error(`data loader worker ${w}: ${event.message}`);
        if (event.stack !== undefined) error.stack = event.stack;
        throw error;
      }
    };

    try {
      // A training epoch of shards is `length` batches on every rank, so that ranks step together:
      // a rank whose shards run out first reads them again, in a new order (another pass). A
      // batch never spans two passes, so no sample is in a batch twice. Evaluation reads every
      // sample once.
      for (let pass = 0; ; pass++) {
        const batchesBefore = batches;
        let read = 0;
        finished.fill(false);
        const plans = this.plan(epoch, pass);
        this.handles.forEach((h, w) => h.start(epoch, plans[w]!, prefetch));

        // round-robin over the workers' full batches
        let cursor = 0;
        while (finished.includes(false) && (cap === null || batches < cap)) {
          const w = cursor % workers;
          if (finished[w]) {
            cursor++;
            continue;
          }
          const event = await this.handles[w]!.next();
          if (event.type === 'batch') {
            this.handles[w]!.credit();
            batches++;
            samples += event.batch.count;
            read += event.batch.count;
            cursor++;
            yield this.toBatch(event.batch);
            continue;
          }
          handle(event, w);
          if (event.type === 'done') cursor++;
        }

        // the leftovers, merged in worker order
        const leftovers = tails.flat();
        read += leftovers.reduce((n, b) => n + b.count, 0);
        const merged = mergeTails(leftovers, this.batchSize, (n) => this.producer.newBatch(n));
        tails.forEach((t) => { t.length = 0; });
        for (const batch of merged) {
          if (cap !== null && batches >= cap) break;
          if (batch.count < this.batchSize && this.dropLast) break;
          batches++;
          samples += batch.count;
          yield this.toBatch(batch);
        }

        const another = this.dropLast && this.descriptor.type === 'shards' && cap !== null &&
          batches < cap && !finished.includes(false) && read > 0;
        if (!another) break;
        if (batches === batchesBefore) {
          throw new Error(`shards: the part of the ${this.shards.length} shards that rank ` +
            `${this.rank} reads holds ${read} samples, fewer than one batch of ${this.batchSize}: ` +
            'use fewer ranks, a smaller batch or more shards');
        }
        if (pass === 0) {
          process.stderr.write(`groco data: rank ${this.rank}: its shards gave ${batches} of the ` +
            `epoch's ${cap} batches; reading them again to complete the epoch\n`);
        }
      }
    } finally {
      await this.stopAll(finished, broken);
      this.running = false;
      // also when the consumer stopped early (its break ends the epoch here)
      this.lastSummary = {
        epoch, batches, samples, expectedBatches: cap, broken,
        seconds: (performance.now() - started) / 1000,
      };
    }
    return this.lastSummary;
  }

  /** Stops the workers (after the current epoch, if one is running). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.handles.map((h) => h.close()));
  }

  /** Who reads what; `pass` > 0 is a shard rank's repeated reading within one epoch. */
  private plan(epoch: number, pass = 0): EpochPlan[] {
    const common = {
      seed: this.seed, epoch, rank: this.rank, worldSize: this.worldSize, numWorkers: this.handles.length,
    };
    if (this.descriptor.type === 'shards') {
      const assignments = planShards(this.shards, { ...common, pass });
      return assignments.map((a, w) => ({
        kind: 'shards', assignments: a, shuffle: Number(this.options.shuffle ?? 0),
        streamSeed: pass === 0 ? [this.seed, epoch, this.rank, w] : [this.seed, epoch, this.rank, w, pass],
      }));
    }
    const batches = planItems(this.itemCount, {
      ...common, batchSize: this.batchSize, shuffle: Number(this.options.shuffle ?? 0) > 0,
      dropLast: this.dropLast,
    });
    return batches.map((b) => ({ kind: 'items', batches: b }));
  }

  /** Cancels unfinished producers and drains them until they confirm; counts late warnings. */
  private async stopAll(finished: boolean[], broken: BrokenCounts): Promise<void> {
    await Promise.all(this.handles.map(async (h, w) => {
      if (finished[w]) return;
      h.cancel();
      for (;;) {
        const event = await h.next();
        if (event.type === 'batch') h.credit();
        if (event.type === 'warning') broken[event.problem.kind] += 1;
        if (event.type === 'done' || event.type === 'error') return;
      }
    }));
  }

  private toBatch(batch: PackedBatch): Batch {
    const pipeline = this.producer.pipeline;
    const n = batch.count;
    const views = batch.views.map((data, v): ViewTensor => {
      const [c, h, w] = pipeline.viewShape(v);
      const length = n * c * h * w;
      return { data: data.length === length ? data : data.subarray(0, length), shape: [n, c, h, w] };
    });
    return { cls: batch.cls.length === n ? batch.cls : batch.cls.subarray(0, n), views };
  }
}

/** Concatenates partial batches and cuts them into batches of `size` (the last may be short). */
function mergeTails(
  parts: PackedBatch[],
  size: number,
  allocate: (capacity: number) => PackedBatch,
): PackedBatch[] {
  const out: PackedBatch[] = [];
  let current: PackedBatch | null = null;
  for (const part of parts) {
    for (let i = 0; i < part.count; i++) {
      current ??= allocate(size);
      copySample(part, i, current);
      if (current.count === size) {
        out.push(current);
        current = null;
      }
    }
  }
  if (current !== null && current.count > 0) out.push(current);
  return out;
}

function copySample(from: PackedBatch, index: number, to: PackedBatch): void {
  const at = to.count;
  to.cls[at] = from.cls[index]!;
  for (let v = 0; v < from.views.length; v++) {
    const length = to.views[v]!.length / to.cls.length;
    to.views[v]!.set(from.views[v]!.subarray(index * length, (index + 1) * length), at * length);
  }
  to.count++;
}
