// Gaussian blur as PIL's `ImageFilter.GaussianBlur(radius=sigma)` computes it (Pillow's
// BoxBlur.c): three passes of an "extended" box blur per direction (horizontal first)
// whose fractional radius matches the variance sigma^2 (Gwosdek et al. 2011), 24-bit
// fixed-point weights, rounding to 8 bits after every pass. The reference applies blur
// through PIL with the sampled sigma as the radius, so this is PIL's blur, not
// torchvision's GaussianBlur kernel. Results are identical to Pillow's.
//
// Every pass runs along columns over whole rows (contiguous, JIT-friendly loops); the
// horizontal passes run on the transposed image.

import type { Image8 } from '../image.js';
import { simdKernels, type SimdKernels } from './simd.js';

const f32 = Math.fround;

/** PIL's `_gaussian_blur_radius` in single precision: box radius for one of `passes`. */
export function boxRadiusForSigma(sigma: number, passes = 3): number {
  const radius = f32(sigma);
  const sigma2 = f32(f32(radius * radius) / passes);
  const L = f32(Math.sqrt(12.0 * sigma2 + 1.0));
  const l = f32(Math.floor((L - 1.0) / 2.0));
  let a = f32(f32(f32(2 * l) + 1) * f32(f32(l * f32(l + 1)) - f32(3 * sigma2)));
  a = f32(a / f32(6 * f32(sigma2 - f32(f32(l + 1) * f32(l + 1)))));
  return f32(l + a);
}

/**
 * One extended-box pass along the rows axis of a (rows, rowLength) array: output row y is
 * the clamped box sum of rows [y - r, y + r] with weight ww plus rows y - r - 1 and
 * y + r + 1 with weight fw, rounded from 24-bit fixed point.
 */
function boxPassAlongRows(
  src: Uint8Array,
  dst: Uint8Array,
  rows: number,
  rowLength: number,
  radius: number,
  ww: number,
  fw: number,
  acc: Float64Array,
): void {
  const last = rows - 1;
  const clampRow = (y: number): number => (y < 0 ? 0 : y > last ? last : y) * rowLength;

  // the sum for the virtual row -1: rows [-r-1, r-1], clamped
  acc.fill(0);
  for (let y = -radius - 1; y <= radius - 1; y++) {
    const base = clampRow(y);
    for (let x = 0; x < rowLength; x++) acc[x] = acc[x]! + src[base + x]!;
  }
  for (let y = 0; y < rows; y++) {
    const sub = clampRow(y - radius - 1);
    const add = clampRow(y + radius);
    const far = clampRow(y + radius + 1);
    const out = y * rowLength;
    for (let x = 0; x < rowLength; x++) {
      const left = src[sub + x]!;
      const a = acc[x]! + src[add + x]! - left;
      acc[x] = a;
      dst[out + x] = (a * ww + (left + src[far + x]!) * fw + 8388608) >>> 24;
    }
  }
}

/** Transposes a (rows, cols, C) interleaved array into (cols, rows, C). */
function transpose(src: Uint8Array, dst: Uint8Array, rows: number, cols: number, C: number): void {
  if (C === 3) {
    for (let y = 0; y < rows; y++) {
      let s = y * cols * 3;
      for (let x = 0; x < cols; x++, s += 3) {
        const d = (x * rows + y) * 3;
        dst[d] = src[s]!;
        dst[d + 1] = src[s + 1]!;
        dst[d + 2] = src[s + 2]!;
      }
    }
  } else {
    for (let y = 0; y < rows; y++) {
      let s = y * cols;
      for (let x = 0; x < cols; x++, s++) dst[x * rows + y] = src[s]!;
    }
  }
}

/**
 * Blurs an image in place with PIL's GaussianBlur of the given radius (sigma); the line
 * passes run as WebAssembly SIMD when available (same integers, same result).
 */
export function gaussianBlurPil(image: Image8, sigma: number, passes = 3): Image8 {
  const kernels = simdKernels();
  if (kernels !== null) return gaussianBlurSimd(kernels, image, sigma, passes);
  return gaussianBlurPortable(image, sigma, passes);
}

/** The same computation in plain TypeScript (the fallback, and the reference in tests). */
export function gaussianBlurPortable(image: Image8, sigma: number, passes = 3): Image8 {
  const floatRadius = boxRadiusForSigma(sigma, passes);
  const radius = Math.trunc(floatRadius);
  const ww = Math.trunc(f32(16777216 / f32(floatRadius * 2 + 1)));
  const fw = Math.floor((16777216 - (radius * 2 + 1) * ww) / 2);
  const { width: W, height: H, channels: C, data } = image;
  let a: Uint8Array = new Uint8Array(data.length);
  let b: Uint8Array = new Uint8Array(data.length);
  const acc = new Float64Array(Math.max(W, H) * C);

  // horizontal passes, on the transposed image (W rows of H pixels)
  transpose(data, a, H, W, C);
  for (let p = 0; p < passes; p++) {
    boxPassAlongRows(a, b, W, H * C, radius, ww, fw, acc);
    [a, b] = [b, a];
  }
  transpose(a, b, W, H, C);
  // vertical passes
  [a, b] = [b, a];
  for (let p = 0; p < passes; p++) {
    const dst = p === passes - 1 ? data : b;
    boxPassAlongRows(a, dst, H, W * C, radius, ww, fw, acc);
    [a, b] = [dst, a];
  }
  return image;
}

const PAD = 64;

/** One pass along rows in wasm memory: src and dst are (rows, rowLength) byte arrays. */
function boxPassSimd(
  kernels: SimdKernels,
  src: number,
  dst: number,
  rows: number,
  rowLength: number,
  radius: number,
  ww: number,
  fw: number,
  acc: number,
): void {
  const last = rows - 1;
  const memory = new Uint8Array(kernels.memory.buffer);
  const sums = new Int32Array(kernels.memory.buffer, acc, rowLength);
  sums.fill(0);
  for (let y = -radius - 1; y <= radius - 1; y++) {
    const base = src + (y < 0 ? 0 : y > last ? last : y) * rowLength;
    for (let x = 0; x < rowLength; x++) sums[x] = sums[x]! + memory[base + x]!;
  }
  const wh = ww >>> 12;
  const wl = ww & 4095;
  const fh = fw >>> 12;
  const fl = fw & 4095;
  for (let y = 0; y < rows; y++) {
    const ys = y - radius - 1;
    const ya = y + radius;
    const yf = y + radius + 1;
    const sub = src + (ys < 0 ? 0 : ys) * rowLength;
    const add = src + (ya > last ? last : ya) * rowLength;
    const far = src + (yf > last ? last : yf) * rowLength;
    kernels.boxLine(sub, add, far, acc, dst + y * rowLength, rowLength, wh, wl, fh, fl);
  }
}

function gaussianBlurSimd(kernels: SimdKernels, image: Image8, sigma: number, passes: number): Image8 {
  const floatRadius = boxRadiusForSigma(sigma, passes);
  const radius = Math.trunc(floatRadius);
  const ww = Math.trunc(f32(16777216 / f32(floatRadius * 2 + 1)));
  const fw = Math.floor((16777216 - (radius * 2 + 1) * ww) / 2);
  const { width: W, height: H, channels: C, data } = image;
  const size = data.length + PAD;
  let a = PAD;
  let b = a + size;
  const acc = Math.ceil((b + size) / 16) * 16; // an Int32Array view needs alignment
  let memory = kernels.ensure(acc + (Math.max(W, H) * C + 16) * 4 + PAD);
  const transposeKernel = kernels.transpose[C === 3 ? 1 : 0];

  // horizontal passes on the transposed image
  memory.set(data, b);
  transposeKernel(b, W * C, H, W, a);
  for (let p = 0; p < passes; p++) {
    boxPassSimd(kernels, a, b, W, H * C, radius, ww, fw, acc);
    [a, b] = [b, a];
  }
  transposeKernel(a, H * C, W, H, b);
  [a, b] = [b, a];
  // vertical passes
  for (let p = 0; p < passes; p++) {
    boxPassSimd(kernels, a, b, H, W * C, radius, ww, fw, acc);
    [a, b] = [b, a];
  }
  memory = new Uint8Array(kernels.memory.buffer);
  data.set(memory.subarray(a, a + data.length));
  return image;
}
