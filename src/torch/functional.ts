// Neural-network functions with PyTorch's semantics (torch.nn.functional).
import { callOp } from './native.js';
import { Tensor, expectTensor, describe } from './tensor.js';

function wrap(result: unknown): Tensor {
  return new Tensor(result as never);
}

function pair(op: string, name: string, value: number | [number, number]): [number, number] {
  const v: [number, number] = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(v) || v.length !== 2 || !v.every(Number.isInteger)) {
    throw new Error(`${op}: argument '${name}' expected an integer or two, got ${describe(value)}`);
  }
  return v;
}

function checkRank(op: string, name: string, t: Tensor, ranks: number[]): void {
  const ndim = t.ndim;
  if (!ranks.includes(ndim)) {
    throw new Error(`${op}: argument '${name}' expected rank ${ranks.join(' or ')}, got rank ${ndim} ` +
      `(shape [${t.shape.join(', ')}])`);
  }
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null,
  options: Conv2dOptions = {}): Tensor {
  expectTensor('conv2d', 'input', input);
  expectTensor('conv2d', 'weight', weight);
  checkRank('conv2d', 'input', input, [3, 4]);
  checkRank('conv2d', 'weight', weight, [4]);
  return wrap(callOp('aten::conv2d', [input.handle, weight.handle, bias?.handle ?? null,
    pair('conv2d', 'stride', options.stride ?? 1), pair('conv2d', 'padding', options.padding ?? 0),
    pair('conv2d', 'dilation', options.dilation ?? 1), options.groups ?? 1]));
}

export function linear(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  expectTensor('linear', 'input', input);
  expectTensor('linear', 'weight', weight);
  return wrap(callOp('aten::linear', [input.handle, weight.handle, bias?.handle ?? null]));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/**
 * Batch normalisation over dim 1. In training the running statistics (when given) are updated in
 * place with `momentum`, using the unbiased batch variance, as PyTorch does.
 */
export function batchNorm(input: Tensor, runningMean: Tensor | null, runningVar: Tensor | null,
  options: BatchNormOptions = {}): Tensor {
  expectTensor('batchNorm', 'input', input);
  return wrap(callOp('aten::batch_norm', [input.handle, options.weight?.handle ?? null,
    options.bias?.handle ?? null, runningMean?.handle ?? null, runningVar?.handle ?? null,
    options.training ?? false, options.momentum ?? 0.1, options.eps ?? 1e-5, true]));
}

export function relu(input: Tensor): Tensor {
  return input.relu();
}

export function maxPool2d(input: Tensor, kernelSize: number | [number, number],
  options: { stride?: number | [number, number]; padding?: number | [number, number];
    dilation?: number | [number, number]; ceilMode?: boolean } = {}): Tensor {
  checkRank('maxPool2d', 'input', input, [3, 4]);
  const kernel = pair('maxPool2d', 'kernelSize', kernelSize);
  return wrap(callOp('aten::max_pool2d', [input.handle, kernel,
    pair('maxPool2d', 'stride', options.stride ?? kernel), pair('maxPool2d', 'padding', options.padding ?? 0),
    pair('maxPool2d', 'dilation', options.dilation ?? 1), options.ceilMode ?? false]));
}

export function avgPool2d(input: Tensor, kernelSize: number | [number, number],
  stride?: number | [number, number]): Tensor {
  const kernel = pair('avgPool2d', 'kernelSize', kernelSize);
  return wrap(callOp('aten::avg_pool2d', [input.handle, kernel,
    pair('avgPool2d', 'stride', stride ?? kernel), [0, 0], false, true, null]));
}

export function adaptiveAvgPool2d(input: Tensor, outputSize: number | [number, number]): Tensor {
  checkRank('adaptiveAvgPool2d', 'input', input, [3, 4]);
  return wrap(callOp('aten::adaptive_avg_pool2d',
    [input.handle, pair('adaptiveAvgPool2d', 'outputSize', outputSize)]));
}

export interface InterpolateOptions {
  size: [number, number];
  mode?: 'bilinear' | 'bicubic' | 'nearest';
  alignCorners?: boolean;
  antialias?: boolean;
}

/** Resizes (N, C, H, W) images; antialias as torchvision's tensor resize does when downscaling. */
export function interpolate(input: Tensor, options: InterpolateOptions): Tensor {
  checkRank('interpolate', 'input', input, [4]);
  const size = pair('interpolate', 'size', options.size);
  const mode = options.mode ?? 'bilinear';
  const align = options.alignCorners ?? false;
  if (mode === 'nearest') {
    if (options.antialias) throw new Error("interpolate: antialias needs mode 'bilinear' or 'bicubic'");
    return wrap(callOp('aten::upsample_nearest2d', [input.handle, size, null, null]));
  }
  if (mode !== 'bilinear' && mode !== 'bicubic') {
    throw new Error(`interpolate: argument 'mode' expected bilinear, bicubic or nearest, got '${String(mode)}'`);
  }
  const name = options.antialias ? `aten::_upsample_${mode}2d_aa` : `aten::upsample_${mode}2d`;
  return wrap(callOp(name, [input.handle, size, align, null, null]));
}

export function softmax(input: Tensor, dim: number): Tensor {
  return wrap(callOp('aten::softmax.int', [input.handle, dim, null]));
}

export function logSoftmax(input: Tensor, dim: number): Tensor {
  return wrap(callOp('aten::log_softmax.int', [input.handle, dim, null]));
}

const reductions = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof reductions;

function reductionCode(op: string, reduction: Reduction): number {
  const code = reductions[reduction];
  if (code === undefined) {
    throw new Error(`${op}: argument 'reduction' expected none, mean or sum, got '${String(reduction)}'`);
  }
  return code;
}

/** Cross-entropy of logits (N, C) against class indices (N) (int64). */
export function crossEntropy(logits: Tensor, target: Tensor,
  options: { reduction?: Reduction; labelSmoothing?: number; ignoreIndex?: number } = {}): Tensor {
  expectTensor('crossEntropy', 'logits', logits);
  expectTensor('crossEntropy', 'target', target);
  return wrap(callOp('aten::cross_entropy_loss', [logits.handle, target.handle, null,
    reductionCode('crossEntropy', options.reduction ?? 'mean'), options.ignoreIndex ?? -100,
    options.labelSmoothing ?? 0]));
}

/** Binary cross-entropy of probabilities; log is clamped at -100 as in PyTorch. */
export function binaryCrossEntropy(input: Tensor, target: Tensor,
  options: { weight?: Tensor; reduction?: Reduction } = {}): Tensor {
  expectTensor('binaryCrossEntropy', 'input', input);
  expectTensor('binaryCrossEntropy', 'target', target);
  return wrap(callOp('aten::binary_cross_entropy', [input.handle, target.handle,
    options.weight?.handle ?? null, reductionCode('binaryCrossEntropy', options.reduction ?? 'mean')]));
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return wrap(callOp('aten::mse_loss', [input.handle, target.handle, reductionCode('mseLoss', reduction)]));
}

/** `x / max(||x||_p, eps)` along `dim` (torch.nn.functional.normalize). */
export function normalize(input: Tensor, options: { p?: number; dim?: number; eps?: number } = {}): Tensor {
  const norm = input.norm(options.p ?? 2, options.dim ?? 1, { keepdim: true });
  const denom = norm.clampMin(options.eps ?? 1e-12);
  norm.dispose();
  const expanded = denom.expandAs(input);
  denom.dispose();
  const out = input.div(expanded);
  expanded.dispose();
  return out;
}

export function cosineSimilarity(a: Tensor, b: Tensor, options: { dim?: number; eps?: number } = {}): Tensor {
  return wrap(callOp('aten::cosine_similarity', [a.handle, b.handle, options.dim ?? 1, options.eps ?? 1e-8]));
}

export function dropout(input: Tensor, p: number, training: boolean): Tensor {
  return wrap(callOp('aten::dropout', [input.handle, p, training]));
}

/** Pads the last dims: `pad` = [left, right, top, bottom, ...] as torch.nn.functional.pad. */
export function pad(input: Tensor, padding: number[], mode: 'constant' | 'reflect' | 'replicate' = 'constant',
  value = 0): Tensor {
  if (mode === 'constant') return wrap(callOp('aten::constant_pad_nd', [input.handle, padding, value]));
  if (mode === 'reflect') return wrap(callOp('aten::reflection_pad2d', [input.handle, padding]));
  return wrap(callOp('aten::replication_pad2d', [input.handle, padding]));
}
