// ToTensor + Normalize: uint8 (H, W, C) to float32 (C, H, W), `(v / 255 - mean) / std`
// in single precision exactly as torch computes it, through one 256-entry table per
// channel. A horizontal flip can be folded in (it commutes with every later step).

import type { Image8 } from '../image.js';
import { simdKernels } from './simd.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

const f32 = Math.fround;

/** The parameters each table was built from (the SIMD path computes instead of looking up). */
const tableParams = new WeakMap<Float32Array, { mean: number[]; std: number[] }>();

/** Per-channel tables: table[c * 256 + v] = normalised value of v in channel c. */
export function normalizeTable(mean: readonly number[], std: readonly number[]): Float32Array {
  if (mean.length !== std.length) {
    throw new Error(`normalizeTable: mean has ${mean.length} values but std has ${std.length}`);
  }
  const table = new Float32Array(mean.length * 256);
  tableParams.set(table, { mean: [...mean], std: [...std] });
  for (let c = 0; c < mean.length; c++) {
    const m = f32(mean[c]!);
    const s = f32(std[c]!);
    for (let v = 0; v < 256; v++) table[c * 256 + v] = f32(f32(f32(v / 255) - m) / s);
  }
  return table;
}

const bits = new Float32Array(1);
const bitsInt = new Int32Array(bits.buffer);

function float32Bits(x: number): number {
  bits[0] = x;
  return bitsInt[0]!;
}

/**
 * Writes the normalised (C, H, W) floats of `image` at `out[offset...]`, mirrored
 * left-right when `flip`. With WebAssembly SIMD the same float32 operations run four
 * pixels at a time (mean and std are taken from `table`'s parameters).
 */
export function toNormalizedTensor(
  image: Image8,
  table: Float32Array,
  out: Float32Array,
  offset: number,
  flip: boolean,
): void {
  const kernels = simdKernels();
  const params = tableParams.get(table);
  if (kernels === null || params === undefined || image.width < 4) {
    toNormalizedTensorPortable(image, table, out, offset, flip);
    return;
  }
  const { width: W, height: H, channels: C, data } = image;
  const src = 64;
  const dst = Math.ceil((src + data.length + 64) / 16) * 16;
  kernels.ensure(dst + C * W * H * 4 + 64).set(data, src);
  const m = params.mean.map(float32Bits);
  const s = params.std.map(float32Bits);
  const plane = W * H * 4;
  for (let y = 0; y < H; y++) {
    const row = dst + y * W * 4;
    if (C === 3) {
      kernels.normalizeRow3(src + y * W * 3, W, row, row + plane, row + 2 * plane, flip ? 1 : 0,
        m[0]!, m[1]!, m[2]!, s[0]!, s[1]!, s[2]!);
    } else {
      kernels.normalizeRow1(src + y * W, W, row, flip ? 1 : 0, m[0]!, s[0]!);
    }
  }
  out.set(new Float32Array(kernels.memory.buffer, dst, C * W * H), offset);
}

/** The same conversion in plain TypeScript, through the tables. */
export function toNormalizedTensorPortable(
  image: Image8,
  table: Float32Array,
  out: Float32Array,
  offset: number,
  flip: boolean,
): void {
  const { width: W, height: H, channels: C, data } = image;
  if (table.length !== C * 256) {
    throw new Error(`toNormalizedTensor: table is for ${table.length / 256} channels, image has ${C}`);
  }
  const plane = W * H;
  if (C === 3) {
    const t0 = table.subarray(0, 256);
    const t1 = table.subarray(256, 512);
    const t2 = table.subarray(512, 768);
    for (let y = 0; y < H; y++) {
      let p = y * W * 3;
      const row = offset + y * W;
      // one pass over the interleaved row, writing the three planes
      for (let x = 0; x < W; x++, p += 3) {
        const o = flip ? row + W - 1 - x : row + x;
        out[o] = t0[data[p]!]!;
        out[o + plane] = t1[data[p + 1]!]!;
        out[o + 2 * plane] = t2[data[p + 2]!]!;
      }
    }
    return;
  }
  for (let y = 0; y < H; y++) {
    let p = y * W;
    const row = offset + y * W;
    for (let x = 0; x < W; x++, p++) out[flip ? row + W - 1 - x : row + x] = table[data[p]!]!;
  }
}
