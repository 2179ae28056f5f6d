// The standard layers, with PyTorch's parameter names, shapes and default initialisation.
import * as F from '../functional.js';
import { Tensor, cat, full, tidy, zeros, ones, empty, tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { Module } from './module.js';
import { fans, kaimingUniform_, uniformInit_ } from './init.js';
import type { Generator } from '../random.js';

export interface InitOptions { generator?: Generator }

function defaultInit(weight: Tensor, bias: Tensor | null, generator?: Generator): void {
  kaimingUniform_(weight, { a: Math.sqrt(5), generator });
  if (bias !== null) {
    const [fanIn] = fans(weight.shape);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniformInit_(bias, -bound, bound, generator);
  }
}

function checkPositive(layer: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${layer}: argument '${name}' expected a positive integer, got ${value}`);
  }
}

export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number,
    options: InitOptions & { bias?: boolean } = {}) {
    super();
    checkPositive('Linear', 'inFeatures', inFeatures);
    checkPositive('Linear', 'outFeatures', outFeatures);
    const weight = empty([outFeatures, inFeatures]);
    const bias = options.bias ?? true ? empty([outFeatures]) : null;
    defaultInit(weight, bias, options.generator);
    this.registerParameter('weight', weight);
    this.registerParameter('bias', bias);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.param('weight'), this.optionalParam('bias'));
  }
}

export interface Conv2dLayerOptions extends InitOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly options: Conv2dLayerOptions;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number,
    options: Conv2dLayerOptions = {}) {
    super();
    checkPositive('Conv2d', 'inChannels', inChannels);
    checkPositive('Conv2d', 'outChannels', outChannels);
    checkPositive('Conv2d', 'kernelSize', kernelSize);
    this.options = options;
    const groups = options.groups ?? 1;
    const weight = empty([outChannels, inChannels / groups, kernelSize, kernelSize]);
    const bias = options.bias ?? true ? empty([outChannels]) : null;
    defaultInit(weight, bias, options.generator);
    this.registerParameter('weight', weight);
    this.registerParameter('bias', bias);
  }

  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.param('weight'), this.optionalParam('bias'), {
      stride: this.options.stride ?? 1, padding: this.options.padding ?? 0,
      dilation: this.options.dilation ?? 1, groups: this.options.groups ?? 1,
    });
  }
}

export interface BatchNormLayerOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/** Sums a tensor over all processes, differentiably (set by the distributed layer). */
export type StatsReducer = (t: Tensor) => Tensor;

export class BatchNormBase extends Module {
  readonly eps: number;
  readonly momentum: number;
  /** When set, training statistics are computed over all processes (synchronised BN). */
  syncStats: StatsReducer | null = null;

  constructor(readonly numFeatures: number, readonly ranks: number[], options: BatchNormLayerOptions = {}) {
    super();
    checkPositive('BatchNorm', 'numFeatures', numFeatures);
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    const affine = options.affine ?? true;
    this.registerParameter('weight', affine ? ones([numFeatures]) : null);
    this.registerParameter('bias', affine ? zeros([numFeatures]) : null);
    if (options.trackRunningStats ?? true) {
      this.registerBuffer('running_mean', zeros([numFeatures]));
      this.registerBuffer('running_var', ones([numFeatures]));
      this.registerBuffer('num_batches_tracked', tensor(0, { dtype: 'int64' }));
    }
  }

  #syncForward(x: Tensor, reduce: StatsReducer): Tensor {
    return tidy(() => syncForward(this, x, reduce));
  }

  forward(x: Tensor): Tensor {
    if (!this.ranks.includes(x.ndim)) {
      throw new Error(`${this.constructor.name}: expected input of rank ${this.ranks.join(' or ')}, ` +
        `got shape [${x.shape.join(', ')}]`);
    }
    const runningMean = this.buffer('running_mean');
    const runningVar = this.buffer('running_var');
    const tracked = this.buffer('num_batches_tracked');
    if (this.training && tracked !== null) noGrad(() => tracked.add_(1));
    if (this.training && this.syncStats !== null) return this.#syncForward(x, this.syncStats);
    const useBatchStats = this.training || runningMean === null;
    return F.batchNorm(x, useBatchStats && !this.training ? null : runningMean,
      useBatchStats && !this.training ? null : runningVar, {
        weight: this.optionalParam('weight'), bias: this.optionalParam('bias'),
        training: useBatchStats, momentum: this.momentum, eps: this.eps,
      });
  }
}

// Statistics from the sums of x and x^2 over every process, as SyncBatchNorm; running statistics
// get the unbiased variance of the global batch.
function syncForward(bn: BatchNormBase, x: Tensor, reduce: StatsReducer): Tensor {
  const c = bn.numFeatures;
  const dims = [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2)];
  const shape = [1, c, ...Array.from({ length: x.ndim - 2 }, () => 1)];
  const xf = x.float();
  const localCount = xf.numel / c;
  const packed = cat([xf.sum(dims), xf.mul(xf).sum(dims), full([1], localCount)]);
  const global = reduce(packed);
  const count = global.narrow(0, 2 * c, 1);
  const mean = global.narrow(0, 0, c).div(count);
  const variance = global.narrow(0, c, c).div(count).sub(mean.mul(mean)).clampMin(0);
  const runningMean = bn.buffer('running_mean');
  const runningVar = bn.buffer('running_var');
  if (runningMean !== null && runningVar !== null) {
    noGrad(() => {
      const n = count.item();
      runningMean.mul_(1 - bn.momentum).add_(mean.to(runningMean.dtype), bn.momentum);
      const unbiased = variance.mul(n / Math.max(n - 1, 1));
      runningVar.mul_(1 - bn.momentum).add_(unbiased.to(runningVar.dtype), bn.momentum);
      unbiased.dispose();
    });
  }
  let y = xf.sub(mean.reshape(shape)).mul(variance.add(bn.eps).rsqrt().reshape(shape));
  const weight = bn.optionalParam('weight');
  const bias = bn.optionalParam('bias');
  if (weight !== null) y = y.mul(weight.float().reshape(shape));
  if (bias !== null) y = y.add(bias.float().reshape(shape));
  return y.to(x.dtype);
}

export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormLayerOptions = {}) {
    super(numFeatures, [2, 3], options);
  }
}

export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormLayerOptions = {}) {
    super(numFeatures, [4], options);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }

  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernelSize: number, readonly stride?: number, readonly padding = 0) {
    super();
  }

  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, { stride: this.stride ?? this.kernelSize, padding: this.padding });
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | [number, number]) {
    super();
  }

  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}

/**
 * Runs its children in order. Intermediate results are disposed as soon as the next layer has
 * consumed them (they stay alive in autograd's graph where backward needs them).
 */
export class Sequential extends Module {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((layer, i) => this.registerModule(String(i), layer));
  }

  forward(x: Tensor): Tensor {
    let current = x;
    for (const layer of this.layers) {
      const next = layer.forward(current);
      if (current !== x && next !== current) current.dispose();
      current = next;
    }
    return current;
  }
}
