// Mixed precision: autocast regions (bfloat16 on CPU, float16 on CUDA) and the gradient scaler.
import { native } from './native.js';
import { dtypeCode, type DType } from './dtype.js';

/** Runs `fn` with autocast on `device` ('cpu' or 'cuda') to `dtype`. */
export function autocast<T>(device: 'cpu' | 'cuda', dtype: DType, fn: () => T, enabled = true): T {
  if (!enabled) return fn();
  const [wasEnabled, previousDtype] = native.setAutocast(device, true, dtypeCode(dtype), true);
  try {
    return fn();
  } finally {
    native.setAutocast(device, wasEnabled, previousDtype, false);
  }
}
