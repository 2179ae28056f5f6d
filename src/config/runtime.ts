// What the `runtime` section means once a device is known.

import type { Precision, RuntimeConfig } from './schema.js';

export type ComputePrecision = Exclude<Precision, 'auto'>;

/**
 * The precision the model runs in: an explicit `runtime.precision`, else the reference's
 * `trainer.mixed_precision` (float16 autocast on CUDA, bfloat16 on CPU, which is what CPU
 * autocast supports), else float32.
 */
export function resolvePrecision(runtime: RuntimeConfig,
  mixedPrecision: boolean): ComputePrecision {
  if (runtime.precision !== 'auto') return runtime.precision;
  if (!mixedPrecision) return 'float32';
  return runtime.device.startsWith('cuda') ? 'float16' : 'bfloat16';
}
