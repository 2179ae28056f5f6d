// Weight initialisation as torch.nn.init does it, in place and without recording gradients.
import { noGrad } from '../autograd.js';
import { normal_, uniform_, type Generator } from '../random.js';
import type { Tensor } from '../tensor.js';

export type Nonlinearity = 'relu' | 'leaky_relu' | 'linear' | 'tanh' | 'sigmoid';

export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
  }
}

/** (fan_in, fan_out) of a weight of shape (out, in, ...kernel). */
export function fans(shape: number[]): [number, number] {
  if (shape.length < 2) {
    throw new Error(`init: fan in and fan out need at least 2 dims, got [${shape.join(', ')}]`);
  }
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return [shape[1]! * receptive, shape[0]! * receptive];
}

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
  generator?: Generator;
}

function kaimingStd(t: Tensor, options: KaimingOptions): number {
  const [fanIn, fanOut] = fans(t.shape);
  const fan = (options.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const gain = calculateGain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0);
  return gain / Math.sqrt(fan);
}

export function kaimingNormal_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const std = kaimingStd(t, options);
  return noGrad(() => normal_(t, 0, std, options.generator));
}

export function kaimingUniform_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, options);
  return noGrad(() => uniform_(t, -bound, bound, options.generator));
}

export function uniformInit_(t: Tensor, low: number, high: number, generator?: Generator): Tensor {
  return noGrad(() => uniform_(t, low, high, generator));
}

export function normalInit_(t: Tensor, mean: number, std: number, generator?: Generator): Tensor {
  return noGrad(() => normal_(t, mean, std, generator));
}

export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(value));
}
