// The relaxed comparator: how much of the first input a soft minimum takes, alpha = sigma(b - a),
// for the six distributions of Petersen et al. (spec section 1, "Relaxed comparator").
import { Tensor, tidy } from '../torch/index.js';

export const DISTRIBUTIONS = [
  'logistic', 'logistic_phi', 'gaussian', 'reciprocal', 'cauchy', 'optimal',
] as const;
export type Distribution = (typeof DISTRIBUTIONS)[number];

export interface RelaxationOptions {
  distribution: Distribution;
  /** Inverse temperature s: larger is closer to a hard sort. */
  steepness: number;
  /** Exponent lambda of `logistic_phi`; ignored by the others. */
  artLambda: number;
}

export function checkDistribution(value: unknown, argument = 'distribution'): Distribution {
  if (typeof value !== 'string' || !(DISTRIBUTIONS as readonly string[]).includes(value)) {
    throw new Error(`diffSort: argument '${argument}' expected one of ` +
      `${DISTRIBUTIONS.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as Distribution;
}

/**
 * alpha = sigma(v) for v = b - a, elementwise and differentiable; then
 * min = alpha a + (1 - alpha) b and max = (1 - alpha) a + alpha b. Every sigma here satisfies
 * sigma(-v) = 1 - sigma(v).
 */
export function relaxedAlpha(v: Tensor, options: RelaxationOptions): Tensor {
  const { distribution, steepness: s } = options;
  return tidy(() => {
    switch (distribution) {
      case 'logistic':
        return v.mul(s).sigmoid();

      case 'logistic_phi':
        return v.mul(s).div(v.abs().add(1e-10).pow(options.artLambda)).sigmoid();

      case 'gaussian':
        // the standard normal CDF of s v
        return v.mul(s / Math.SQRT2).erf().mul(0.5).add(0.5);

      case 'reciprocal': {
        const u = v.mul(s);
        return u.div(u.abs().add(2)).add(1).mul(0.5);
      }

      case 'cauchy':
        return v.mul(s).atan().mul(1 / Math.PI).add(0.5);

      case 'optimal': {
        // clamp(u, -1/4, 1/4) + 1/2 + sign_outside(u) (1/4 - 1 / (16 (|u| + 1e-10)))
        const u = v.mul(s);
        const outside = u.gt(0.25).to(u.dtype).sub(u.lt(-0.25).to(u.dtype));
        const tail = u.abs().add(1e-10).mul(16).reciprocal().rsub(0.25);
        return u.clamp(-0.25, 0.25).add(0.5).add(outside.mul(tail));
      }

      default:
        throw new Error(`diffSort: argument 'distribution' expected one of ` +
          `${DISTRIBUTIONS.join(', ')}, got ${JSON.stringify(distribution)}`);
    }
  });
}
