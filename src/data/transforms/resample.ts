// Resizing as PIL's `Image.resize` does it (Pillow's Resample.c): a separable convolution
// whose filter support widens with the reduction factor (antialiasing), coefficients in
// 22-bit fixed point, a horizontal pass into an 8-bit intermediate, then a vertical pass.
// The crop box is read in place, so `crop(...).resize(...)` costs no copy.

import type { Image8 } from '../image.js';
import { simdKernels, type SimdKernels } from './simd.js';

export type Interpolation = 'bilinear' | 'bicubic';

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);

interface Filter {
  support: number;
  weight: (x: number) => number;
}

const FILTERS: Record<Interpolation, Filter> = {
  bilinear: {
    support: 1,
    weight: (x) => {
      const a = x < 0 ? -x : x;
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const t = x < 0 ? -x : x;
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

/** Per output pixel: first input index and count, and fixed-point weights. */
interface Coefficients {
  ksize: number;
  bounds: Int32Array;
  weights: Int32Array;
}

function precompute(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      let w = x < xmax ? k[x]! : 0;
      if (x < xmax && ww !== 0) w /= ww;
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

/** A rectangle of an image: left, top, width, height. */
export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * The core of both passes: output line j = clip8(HALF + sum_k weights[j][k] * input line
 * (first[j] + k)), lines being runs of `length` bytes `stride` apart in `src`. Whole lines
 * are combined at once, four taps per sweep, so the loops run over contiguous memory.
 * Integer sums never leave int32 (Pillow relies on the same bound), so the result is
 * exactly Pillow's.
 */
function convolveLines(
  src: Uint8Array,
  srcOffset: number,
  stride: number,
  length: number,
  coeffs: Coefficients,
  outLines: number,
  dst: Uint8Array,
  acc: Int32Array,
): void {
  const { ksize, bounds, weights } = coeffs;
  for (let j = 0; j < outLines; j++) {
    const first = bounds[j * 2]!;
    const count = bounds[j * 2 + 1]!;
    const kb = j * ksize;
    const out = j * length;
    for (let k = 0; k < count; k += 4) {
      const n = count - k;
      const b0 = srcOffset + (first + k) * stride;
      const w0 = weights[kb + k]!;
      const b1 = n > 1 ? b0 + stride : b0;
      const w1 = n > 1 ? weights[kb + k + 1]! : 0;
      const b2 = n > 2 ? b1 + stride : b0;
      const w2 = n > 2 ? weights[kb + k + 2]! : 0;
      const b3 = n > 3 ? b2 + stride : b0;
      const w3 = n > 3 ? weights[kb + k + 3]! : 0;
      const isFirst = k === 0;
      const isLast = n <= 4;
      if (isFirst && isLast) {
        for (let x = 0; x < length; x++) {
          const s = (HALF + Math.imul(src[b0 + x]!, w0) + Math.imul(src[b1 + x]!, w1) +
            Math.imul(src[b2 + x]!, w2) + Math.imul(src[b3 + x]!, w3)) | 0;
          dst[out + x] = clip8(s);
        }
      } else if (isFirst) {
        for (let x = 0; x < length; x++) {
          acc[x] = (HALF + Math.imul(src[b0 + x]!, w0) + Math.imul(src[b1 + x]!, w1) +
            Math.imul(src[b2 + x]!, w2) + Math.imul(src[b3 + x]!, w3)) | 0;
        }
      } else if (isLast) {
        for (let x = 0; x < length; x++) {
          const s = (acc[x]! + Math.imul(src[b0 + x]!, w0) + Math.imul(src[b1 + x]!, w1) +
            Math.imul(src[b2 + x]!, w2) + Math.imul(src[b3 + x]!, w3)) | 0;
          dst[out + x] = clip8(s);
        }
      } else {
        for (let x = 0; x < length; x++) {
          acc[x] = (acc[x]! + Math.imul(src[b0 + x]!, w0) + Math.imul(src[b1 + x]!, w1) +
            Math.imul(src[b2 + x]!, w2) + Math.imul(src[b3 + x]!, w3)) | 0;
        }
      }
    }
  }
}

/** Transposes a (rows, cols) grid of C-byte pixels read at `offset` with row `stride`. */
function transposePixels(
  src: Uint8Array,
  offset: number,
  stride: number,
  rows: number,
  cols: number,
  C: number,
  dst: Uint8Array,
): void {
  if (C === 3) {
    for (let y = 0; y < rows; y++) {
      let s = offset + y * stride;
      let d = y * 3;
      const step = rows * 3;
      for (let x = 0; x < cols; x++, s += 3, d += step) {
        dst[d] = src[s]!;
        dst[d + 1] = src[s + 1]!;
        dst[d + 2] = src[s + 2]!;
      }
    }
  } else {
    for (let y = 0; y < rows; y++) {
      let s = offset + y * stride;
      for (let x = 0; x < cols; x++, s++) dst[x * rows + y] = src[s]!;
    }
  }
}

let scratch = new Uint8Array(0);
let scratch2 = new Uint8Array(0);
let accumulator = new Int32Array(0);

function grow(length: number): void {
  if (scratch.length < length) {
    scratch = new Uint8Array(length);
    scratch2 = new Uint8Array(length);
  }
}

/**
 * `image.crop(box).resize((outWidth, outHeight), filter)` as Pillow computes it. The result
 * goes to `out` when given (length outWidth * outHeight * channels). The horizontal pass
 * runs on the transposed crop, so that both passes combine whole contiguous lines; the
 * line combinations run as WebAssembly SIMD when available (same integers, same result).
 */
export function resizedCrop(
  image: Image8,
  box: Box,
  outWidth: number,
  outHeight: number,
  interpolation: Interpolation,
  out?: Uint8Array,
): Image8 {
  const kernels = simdKernels();
  if (kernels === null) return resizedCropPortable(image, box, outWidth, outHeight, interpolation, out);
  return resizedCropSimd(kernels, image, box, outWidth, outHeight, interpolation, out);
}

/** The same computation in plain TypeScript (the fallback, and the reference in tests). */
export function resizedCropPortable(
  image: Image8,
  box: Box,
  outWidth: number,
  outHeight: number,
  interpolation: Interpolation,
  out?: Uint8Array,
): Image8 {
  const C = image.channels;
  const dst = out ?? new Uint8Array(outWidth * outHeight * C);
  const result: Image8 = { data: dst, width: outWidth, height: outHeight, channels: C };
  const needHorizontal = outWidth !== box.width;
  const needVertical = outHeight !== box.height;
  const filter = FILTERS[interpolation];
  const srcStride = image.width * C;
  const boxOffset = box.top * srcStride + box.left * C;

  if (!needHorizontal && !needVertical) {
    copyBox(image, box, dst);
    return result;
  }
  const vertical = needVertical ? precompute(box.height, outHeight, filter) : null;
  let rowFirst = 0;
  let rowCount = box.height;
  if (vertical !== null) {
    const last = (outHeight - 1) * 2;
    rowFirst = vertical.bounds[0]!;
    rowCount = vertical.bounds[last]! + vertical.bounds[last + 1]! - rowFirst;
    for (let j = 0; j < outHeight; j++) vertical.bounds[j * 2] -= rowFirst;
  }
  const longest = Math.max(box.width, outWidth, rowCount) * Math.max(rowCount, outHeight) * C;
  grow(longest);
  if (accumulator.length < Math.max(rowCount, outWidth) * C) {
    accumulator = new Int32Array(Math.max(rowCount, outWidth, box.width) * C);
  }

  // horizontal pass on rows [rowFirst, rowFirst + rowCount): transpose, combine, transpose
  let mid: Uint8Array;
  let midOffset: number;
  let midStride: number;
  if (needHorizontal) {
    const horizontal = precompute(box.width, outWidth, filter);
    const lineLength = rowCount * C;
    transposePixels(image.data, boxOffset + rowFirst * srcStride, srcStride, rowCount, box.width, C, scratch);
    convolveLines(scratch, 0, lineLength, lineLength, horizontal, outWidth, scratch2, accumulator);
    mid = needVertical ? scratch : dst;
    transposePixels(scratch2, 0, lineLength, outWidth, rowCount, C, mid);
    midOffset = 0;
    midStride = outWidth * C;
    if (!needVertical) return result;
  } else {
    mid = image.data;
    midOffset = boxOffset + rowFirst * srcStride;
    midStride = srcStride;
  }

  // vertical pass
  convolveLines(mid, midOffset, midStride, outWidth * C, vertical!, outHeight, dst, accumulator);
  return result;
}

/** Copies a box out of an image (PIL's crop). */
export function copyBox(image: Image8, box: Box, out?: Uint8Array): Uint8Array {
  const C = image.channels;
  const dst = out ?? new Uint8Array(box.width * box.height * C);
  const rowLength = box.width * C;
  for (let y = 0; y < box.height; y++) {
    const start = ((box.top + y) * image.width + box.left) * C;
    dst.set(image.data.subarray(start, start + rowLength), y * rowLength);
  }
  return dst;
}

/** Whole-image resize, as `image.resize((width, height), filter)`. */
export function resize(image: Image8, width: number, height: number, interpolation: Interpolation): Image8 {
  return resizedCrop(image, { left: 0, top: 0, width: image.width, height: image.height },
    width, height, interpolation);
}

const PAD = 64;

/** Runs the line combination of `coeffs` with the SIMD kernels (addresses in wasm memory). */
function convolveLinesSimd(
  kernels: SimdKernels,
  src: number,
  stride: number,
  length: number,
  coeffs: Coefficients,
  outLines: number,
  dst: number,
  acc: number,
): void {
  const { ksize, bounds, weights } = coeffs;
  const combine = kernels.combine;
  for (let j = 0; j < outLines; j++) {
    const first = bounds[j * 2]!;
    const count = bounds[j * 2 + 1]!;
    const kb = j * ksize;
    const out = dst + j * length;
    for (let k = 0; k < count; k += 4) {
      const n = count - k;
      const b0 = src + (first + k) * stride;
      const b1 = n > 1 ? b0 + stride : b0;
      const b2 = n > 2 ? b1 + stride : b0;
      const b3 = n > 3 ? b2 + stride : b0;
      const variant = k === 0 ? (n <= 4 ? 0 : 1) : n <= 4 ? 3 : 2;
      combine[variant]!(b0, b1, b2, b3, weights[kb + k]!, n > 1 ? weights[kb + k + 1]! : 0,
        n > 2 ? weights[kb + k + 2]! : 0, n > 3 ? weights[kb + k + 3]! : 0, acc, out, length);
    }
  }
}

function resizedCropSimd(
  kernels: SimdKernels,
  image: Image8,
  box: Box,
  outWidth: number,
  outHeight: number,
  interpolation: Interpolation,
  out?: Uint8Array,
): Image8 {
  const C = image.channels;
  const dst = out ?? new Uint8Array(outWidth * outHeight * C);
  const result: Image8 = { data: dst, width: outWidth, height: outHeight, channels: C };
  const needHorizontal = outWidth !== box.width;
  const needVertical = outHeight !== box.height;
  if (!needHorizontal && !needVertical) {
    copyBox(image, box, dst);
    return result;
  }
  const filter = FILTERS[interpolation];
  const srcStride = image.width * C;
  const vertical = needVertical ? precompute(box.height, outHeight, filter) : null;
  let rowFirst = 0;
  let rowCount = box.height;
  if (vertical !== null) {
    const last = (outHeight - 1) * 2;
    rowFirst = vertical.bounds[0]!;
    rowCount = vertical.bounds[last]! + vertical.bounds[last + 1]! - rowFirst;
    for (let j = 0; j < outHeight; j++) vertical.bounds[j * 2] -= rowFirst;
  }

  // wasm memory: T (transposed crop), H (horizontal result), M (rows for the vertical
  // pass), D (result), acc; each followed by padding for the 8-byte loads and stores
  const sizeS = box.width * rowCount * C + PAD;
  const sizeT = box.width * rowCount * C + PAD;
  const sizeH = outWidth * rowCount * C + PAD;
  const sizeM = Math.max(outWidth, box.width) * rowCount * C + PAD;
  const sizeD = outWidth * outHeight * C + PAD;
  const S = PAD;
  const T = S + sizeS;
  const H = T + sizeT;
  const M = H + sizeH;
  const D = M + sizeM;
  const acc = Math.ceil((D + sizeD) / 16) * 16;
  const accBytes = (Math.max(rowCount, outWidth) * C + 16) * 4;
  let memory = kernels.ensure(acc + accBytes + PAD);
  const rowsOffset = (box.top + rowFirst) * srcStride + box.left * C;
  const rowLength = box.width * C;

  // the crop's rows, packed: S (horizontal pass first) or M (vertical pass only)
  const rowsAt = needHorizontal ? S : M;
  for (let y = 0; y < rowCount; y++) {
    const start = rowsOffset + y * srcStride;
    memory.set(image.data.subarray(start, start + rowLength), rowsAt + y * rowLength);
  }
  if (needHorizontal) {
    const horizontal = precompute(box.width, outWidth, filter);
    const lineLength = rowCount * C;
    const transpose = kernels.transpose[C === 3 ? 1 : 0];
    transpose(S, rowLength, rowCount, box.width, T);
    convolveLinesSimd(kernels, T, lineLength, lineLength, horizontal, outWidth, H, acc);
    transpose(H, lineLength, outWidth, rowCount, M);
    memory = new Uint8Array(kernels.memory.buffer);
  }
  if (vertical === null) {
    dst.set(memory.subarray(M, M + outWidth * outHeight * C));
    return result;
  }
  convolveLinesSimd(kernels, M, outWidth * C, outWidth * C, vertical, outHeight, D, acc);
  memory = new Uint8Array(kernels.memory.buffer);
  dst.set(memory.subarray(D, D + outWidth * outHeight * C));
  return result;
}
