// The groco tensor library: libtorch's tensors, autograd and kernels from TypeScript.
export { native, callOp } from './native.js';
export * from './dtype.js';
export * from './tensor.js';
export * from './random.js';
export * from './autograd.js';
export * from './autocast.js';
export * as F from './functional.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';

import { native } from './native.js';

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`setNumThreads: argument 'n' expected a positive integer, got ${n}`);
  }
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export function cudaDeviceCount(): number {
  return native.builtWithCuda ? native.cudaDeviceCount() : 0;
}
