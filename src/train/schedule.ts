// Learning-rate arithmetic: scaling by batch size, the cosine schedule with warm-up, and the
// step schedule the linear probe may use instead.
import { epochLength } from '../data/sampling.js';

export const LEARNING_RATE_SCALINGS = ['linear', 'sqrt', 'none'] as const;
export type LearningRateScaling = (typeof LEARNING_RATE_SCALINGS)[number];

function expect(ok: boolean, fn: string, argument: string, expected: string, got: unknown): void {
  if (!ok) throw new RangeError(`${fn}: ${argument}: expected ${expected}, got ${String(got)}`);
}

function isCount(value: number, min: number): boolean {
  return Number.isInteger(value) && value >= min;
}

/**
 * The pretraining rate from the configured base rate and the global batch size:
 * `linear`: base * 32 * batch / 1024; `sqrt`: base * sqrt(batch); `none`: base.
 */
export function scaledLearningRate(base: number, batchSize: number,
  scaling: LearningRateScaling): number {
  expect(Number.isFinite(base) && base > 0, 'scaledLearningRate', 'base', 'a number > 0', base);
  expect(isCount(batchSize, 1), 'scaledLearningRate', 'batchSize', 'an integer >= 1', batchSize);
  switch (scaling) {
    case 'linear':
      return (base * 32 * batchSize) / 1024;
    case 'sqrt':
      return base * Math.sqrt(batchSize);
    case 'none':
      return base;
    default:
      throw new RangeError(`scaledLearningRate: scaling: expected one of `
        + `${LEARNING_RATE_SCALINGS.join(', ')}, got ${String(scaling)}`);
  }
}

/** The linear probe's initial rate: base * batch / 256. */
export function linearProbeLearningRate(base: number, batchSize: number): number {
  const fn = 'linearProbeLearningRate';
  expect(Number.isFinite(base) && base > 0, fn, 'base', 'a number > 0', base);
  expect(isCount(batchSize, 1), fn, 'batchSize', 'an integer >= 1', batchSize);
  return (base * batchSize) / 256;
}

export interface CosineScheduleOptions {
  /** The rate reached at the end of warm-up (lr0). */
  initLr: number;
  /** Length of one cycle in steps (iterations in pretraining, epochs in the linear probe). */
  total: number;
  /** Warm-up length in the same unit; may be fractional. Default 0. */
  warmup?: number;
  /** Default 0. */
  lrMin?: number;
}

/** A checked schedule: call `lrAt(step)` for any step >= 0. */
export class CosineWithWarmup {
  readonly initLr: number;
  readonly total: number;
  readonly warmup: number;
  readonly lrMin: number;

  constructor(options: CosineScheduleOptions) {
    const { initLr, total, warmup = 0, lrMin = 0 } = options;
    const fn = 'CosineWithWarmup';
    expect(Number.isFinite(initLr) && initLr >= 0, fn, 'initLr', 'a number >= 0', initLr);
    expect(isCount(total, 1), fn, 'total', 'an integer >= 1', total);
    expect(Number.isFinite(warmup) && warmup >= 0, fn, 'warmup', 'a number >= 0', warmup);
    expect(Number.isFinite(lrMin) && lrMin >= 0, fn, 'lrMin', 'a number >= 0', lrMin);
    this.initLr = initLr;
    this.total = total;
    this.warmup = warmup;
    this.lrMin = lrMin;
  }

  /**
   * With e = step mod total (a step past the end starts a new cycle, as the reference's
   * scheduler does): e / warmup * lr0 during warm-up, then half a cosine from lr0 to lrMin.
   */
  lrAt(step: number): number {
    expect(isCount(step, 0), 'CosineWithWarmup.lrAt', 'step', 'an integer >= 0', step);
    const e = step % this.total;
    if (e < this.warmup) return (e / this.warmup) * this.initLr;
    const progress = (e - this.warmup) / (this.total - this.warmup);
    return this.lrMin + (this.initLr - this.lrMin) * 0.5 * (1 + Math.cos(Math.PI * progress));
  }
}

export interface MultiStepOptions {
  initLr: number;
  /** Epochs at which the rate is multiplied by gamma, increasing. */
  milestones: readonly number[];
  gamma: number;
}

/** torch.optim.lr_scheduler.MultiStepLR's rate at an epoch. */
export function multiStepLr(epoch: number, options: MultiStepOptions): number {
  expect(isCount(epoch, 0), 'multiStepLr', 'epoch', 'an integer >= 0', epoch);
  const passed = options.milestones.filter((m) => m <= epoch).length;
  return options.initLr * options.gamma ** passed;
}

/**
 * Batches in one pretraining epoch on each rank: the batch and the dataset are divided by the
 * world size (rounding down, as the reference does), then the last partial batch is dropped.
 */
export function batchesPerEpoch(datasetSize: number, batchSize: number, worldSize = 1): number {
  const fn = 'batchesPerEpoch';
  expect(isCount(datasetSize, 0), fn, 'datasetSize', 'an integer >= 0', datasetSize);
  expect(isCount(worldSize, 1), fn, 'worldSize', 'an integer >= 1', worldSize);
  expect(isCount(batchSize, worldSize), fn, 'batchSize',
    `an integer >= worldSize (${worldSize})`, batchSize);
  return epochLength(datasetSize, batchSize, worldSize);
}

export interface PretrainScheduleOptions {
  baseLearningRate: number;
  scaling: LearningRateScaling;
  /** The global batch size (before division over ranks), as the reference scales by it. */
  batchSize: number;
  epochs: number;
  warmupEpochs: number;
  stepsPerEpoch: number;
}

/** The per-iteration schedule of pretraining: epochs and warm-up counted in steps. */
export function pretrainSchedule(options: PretrainScheduleOptions): CosineWithWarmup {
  const fn = 'pretrainSchedule';
  expect(isCount(options.epochs, 1), fn, 'epochs', 'an integer >= 1', options.epochs);
  const steps = options.stepsPerEpoch;
  expect(isCount(steps, 1), fn, 'stepsPerEpoch', 'an integer >= 1', steps);
  return new CosineWithWarmup({
    initLr: scaledLearningRate(options.baseLearningRate, options.batchSize, options.scaling),
    total: options.epochs * options.stepsPerEpoch,
    warmup: options.warmupEpochs * options.stepsPerEpoch,
  });
}
