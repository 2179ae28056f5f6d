// Seeding, generators and random tensors. Every random op takes an optional generator; without
// one it uses libtorch's default CPU generator, seeded by `manualSeed`.
import { native, callOp, type GeneratorHandle } from './native.js';
import { Tensor, type CreateOptions, type Shape } from './tensor.js';
import { dtypeCode } from './dtype.js';

export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0) {
    throw new Error(`manualSeed: argument 'seed' expected a non-negative integer, got ${seed}`);
  }
  native.manualSeed(seed);
}

export class Generator {
  readonly handle: GeneratorHandle;

  constructor(seed?: number) {
    this.handle = seed === undefined ? native.defaultGenerator() : native.newGenerator(seed);
  }

  /** The libtorch default CPU generator (the one `manualSeed` seeds). */
  static default(): Generator {
    return new Generator();
  }

  manualSeed(seed: number): this {
    native.generatorSeed(this.handle, seed);
    return this;
  }

  /** The full state as a uint8 tensor, for checkpoints. */
  getState(): Tensor {
    return new Tensor(native.generatorGetState(this.handle));
  }

  setState(state: Tensor): void {
    native.generatorSetState(this.handle, state.handle);
  }
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

function factory(options: RandomOptions): unknown[] {
  return [dtypeCode(options.dtype ?? 'float32'), null, options.device ?? null, null];
}

function finish(t: Tensor, options: RandomOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}

export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  return finish(new Tensor(callOp('aten::rand.generator',
    [shape, options.generator?.handle ?? null, ...factory(options)]) as never), options);
}

export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  return finish(new Tensor(callOp('aten::randn.generator',
    [shape, options.generator?.handle ?? null, ...factory(options)]) as never), options);
}

/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  const o = { ...options, dtype: options.dtype ?? 'int64' };
  return finish(new Tensor(callOp('aten::randint.low_generator',
    [low, high, shape, options.generator?.handle ?? null, ...factory(o)]) as never), options);
}

export function randperm(n: number, options: RandomOptions = {}): Tensor {
  const o = { ...options, dtype: options.dtype ?? 'int64' };
  return finish(new Tensor(callOp('aten::randperm.generator',
    [n, options.generator?.handle ?? null, ...factory(o)]) as never), options);
}

/** In place: fills with N(mean, std). */
export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  callOp('aten::normal_', [t.handle, mean, std, generator?.handle ?? null], true);
  return t;
}

/** In place: fills with U(low, high). */
export function uniform_(t: Tensor, low = 0, high = 1, generator?: Generator): Tensor {
  callOp('aten::uniform_', [t.handle, low, high, generator?.handle ?? null], true);
  return t;
}

/** In place: Bernoulli(p) draws as 0/1 values of t's dtype. */
export function bernoulli_(t: Tensor, p: number, generator?: Generator): Tensor {
  callOp('aten::bernoulli_.float', [t.handle, p, generator?.handle ?? null], true);
  return t;
}
