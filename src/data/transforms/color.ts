// Colour operations on 8-bit images, computed as torchvision's PIL path computes them:
// brightness, contrast and saturation are PIL ImageEnhance blends (single-precision
// `in1 + alpha * (in2 - in1)`, truncated and clipped); hue goes through PIL's RGB->HSV and
// HSV->RGB conversions with a wrapping uint8 shift of H; grayscale is PIL's `convert('L')`
// (ITU-R 601-2 luma) kept as three channels; solarize is PIL's ImageOps.solarize.
// All operate in place.

import type { Image8 } from '../image.js';
import { simdKernels } from './simd.js';

const f32 = Math.fround;

/** PIL's Image.blend of a constant-per-pixel degenerate with the image, one value. */
function blendValue(degenerate: number, value: number, alpha: number): number {
  const v = f32(degenerate + f32(alpha * (value - degenerate)));
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
}

const bits = new Float32Array(1);
const bitsInt = new Int32Array(bits.buffer);

/** float32 bits of x, for passing a float to the SIMD kernels as an i32. */
function float32Bits(x: number): number {
  bits[0] = x;
  return bitsInt[0]!;
}

/** Blend with a constant grey level: WebAssembly SIMD when available, else a table. */
function blendConstant(image: Image8, degenerate: number, factor: number): void {
  const kernels = simdKernels();
  if (kernels === null) {
    applyLut(image, blendLut(degenerate, factor));
    return;
  }
  const data = image.data;
  const at = 64;
  const memory = kernels.ensure(at + data.length + 64);
  memory.set(data, at);
  kernels.blendConstant(at, data.length, float32Bits(factor), degenerate);
  data.set(new Uint8Array(kernels.memory.buffer, at, data.length));
}

function applyLut(image: Image8, lut: Uint8Array): void {
  const data = image.data;
  for (let i = 0; i < data.length; i++) data[i] = lut[data[i]!]!;
}

function blendLut(degenerate: number, factor: number): Uint8Array {
  const alpha = f32(factor);
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = blendValue(degenerate, v, alpha);
  return lut;
}

/** ImageEnhance.Brightness: blend with black. */
export function adjustBrightness(image: Image8, factor: number): Image8 {
  if (f32(factor) === 1) return image;
  blendConstant(image, 0, factor);
  return image;
}

/** The PIL grey level of pixel i (ITU-R 601-2 luma, rounded). */
function luma(data: Uint8Array, p: number): number {
  return (data[p]! * 19595 + data[p + 1]! * 38470 + data[p + 2]! * 7471 + 0x8000) >>> 16;
}

/** ImageEnhance.Contrast: blend with the mean grey level, rounded to an integer. */
export function adjustContrast(image: Image8, factor: number): Image8 {
  const { data, channels } = image;
  const n = image.width * image.height;
  let sum = 0;
  if (channels === 3) for (let p = 0; p < data.length; p += 3) sum += luma(data, p);
  else for (let i = 0; i < n; i++) sum += data[i]!;
  const mean = Math.floor(sum / n + 0.5);
  if (f32(factor) === 1) return image;
  blendConstant(image, mean, factor);
  return image;
}

/** ImageEnhance.Color: blend each pixel with its own grey level. No-op on grey images. */
export function adjustSaturation(image: Image8, factor: number): Image8 {
  if (image.channels !== 3) return image;
  const alpha = f32(factor);
  if (alpha === 1) return image;
  const kernels = simdKernels();
  if (kernels !== null) {
    const data = image.data;
    const at = 64;
    const memory = kernels.ensure(at + data.length + 64);
    memory.set(data, at);
    kernels.blendLuma(at, data.length / 3, float32Bits(alpha));
    data.set(new Uint8Array(kernels.memory.buffer, at, data.length));
    return image;
  }
  const data = image.data;
  for (let p = 0; p < data.length; p += 3) {
    const l = luma(data, p);
    data[p] = blendValue(l, data[p]!, alpha);
    data[p + 1] = blendValue(l, data[p + 1]!, alpha);
    data[p + 2] = blendValue(l, data[p + 2]!, alpha);
  }
  return image;
}

/** torchvision's uint8 hue shift: `np.uint8(hue_factor * 255)`, wrapping. */
export function hueShift(hueFactor: number): number {
  return (Math.trunc(hueFactor * 255) + 256) & 255;
}

/** Tables shared by every hue shift: exact single-precision quotients and per-H/S terms. */
interface HueTables {
  /** quotient[n * 256 + d] = float32(n / d), as Pillow's float division computes it. */
  quotient: Float64Array;
  /** Per H: the sector i (mod 6) and the float32 remainder f of hsv2rgb. */
  sector: Int32Array;
  fraction: Float64Array;
  /** Per S: fs = float32(s / 255). */
  fs: Float64Array;
  /** p[s * 256 + v] = round(v * (1 - fs)), clipped. */
  p: Uint8Array;
}

let hueTables: HueTables | null = null;

function getHueTables(): HueTables {
  if (hueTables !== null) return hueTables;
  const quotient = new Float64Array(256 * 256);
  for (let n = 0; n < 256; n++) {
    for (let d = 1; d < 256; d++) quotient[n * 256 + d] = f32(n / d);
  }
  const sector = new Int32Array(256);
  const fraction = new Float64Array(256);
  for (let h = 0; h < 256; h++) {
    const i = Math.floor((h * 6.0) / 255.0);
    sector[h] = i % 6;
    fraction[h] = f32((h * 6.0) / 255.0 - i);
  }
  const fs = new Float64Array(256);
  for (let s = 0; s < 256; s++) fs[s] = f32(s / 255.0);
  const p = new Uint8Array(256 * 256);
  for (let s = 0; s < 256; s++) {
    for (let v = 0; v < 256; v++) p[s * 256 + v] = clip8(Math.round(v * (1.0 - fs[s]!)));
  }
  hueTables = { quotient, sector, fraction, fs, p };
  return hueTables;
}

function clip8(x: number): number {
  return x < 0 ? 0 : x > 255 ? 255 : x;
}

/**
 * torchvision's adjust_hue for PIL images: RGB -> HSV (Pillow), H += shift (mod 256),
 * HSV -> RGB (Pillow). No-op on grey images. The float and double arithmetic of Pillow's
 * Convert.c is reproduced exactly (the tests compare all 2^24 colours).
 */
export function adjustHue(image: Image8, hueFactor: number): Image8 {
  if (image.channels !== 3) return image;
  const shift = hueShift(hueFactor);
  const kernels = simdKernels();
  if (kernels !== null) {
    // the same arithmetic, four pixels at a time in WebAssembly SIMD
    const data = image.data;
    const at = 64;
    const memory = kernels.ensure(at + data.length + 64);
    memory.set(data, at);
    kernels.hue(at, data.length / 3, shift);
    data.set(new Uint8Array(kernels.memory.buffer, at, data.length));
    return image;
  }
  return adjustHuePortable(image, shift);
}

/** adjustHue in plain TypeScript (the fallback, and the reference in tests). */
export function adjustHuePortable(image: Image8, shift: number): Image8 {
  if (image.channels !== 3) return image;
  const { quotient, sector, fraction, fs: fsTable, p: pTable } = getHueTables();
  const data = image.data;
  for (let p = 0; p < data.length; p += 3) {
    const r = data[p]!;
    const g = data[p + 1]!;
    const b = data[p + 2]!;
    const maxc = r > g ? (r > b ? r : b) : g > b ? g : b;
    const minc = r < g ? (r < b ? r : b) : g < b ? g : b;
    if (maxc === minc) continue; // s = 0: the round trip returns v, v, v = the input

    // rgb2hsv
    const cr = maxc - minc;
    const s = quotient[cr * 256 + maxc]!;
    let h: number;
    if (r === maxc) h = f32(quotient[(maxc - b) * 256 + cr]! - quotient[(maxc - g) * 256 + cr]!);
    else if (g === maxc) h = f32(2.0 + quotient[(maxc - r) * 256 + cr]! - quotient[(maxc - b) * 256 + cr]!);
    else h = f32(4.0 + quotient[(maxc - g) * 256 + cr]! - quotient[(maxc - r) * 256 + cr]!);
    const wrapped = h / 6.0 + 1.0; // fmod(., 1) of a value in [0, 2): an exact subtraction
    // no clipping needed: h is in [0, 1), s in (0, 1], the products below in [0, v]
    const uh = (f32(wrapped - Math.floor(wrapped)) * 255.0) | 0;
    const us = (s * 255.0) | 0;

    // hsv2rgb of the shifted hue
    const v = maxc;
    if (us === 0) {
      data[p] = v;
      data[p + 1] = v;
      data[p + 2] = v;
      continue;
    }
    const hh = (uh + shift) & 255;
    const f = fraction[hh]!;
    const fs = fsTable[us]!;
    const up = pTable[us * 256 + v]!;
    const uq = Math.round(v * (1.0 - f32(fs * f)));
    const ut = Math.round(v * (1.0 - fs * (1.0 - f)));
    const sec = sector[hh]!;
    if (sec === 0) {
      data[p] = v;
      data[p + 1] = ut;
      data[p + 2] = up;
    } else if (sec === 1) {
      data[p] = uq;
      data[p + 1] = v;
      data[p + 2] = up;
    } else if (sec === 2) {
      data[p] = up;
      data[p + 1] = v;
      data[p + 2] = ut;
    } else if (sec === 3) {
      data[p] = up;
      data[p + 1] = uq;
      data[p + 2] = v;
    } else if (sec === 4) {
      data[p] = ut;
      data[p + 1] = up;
      data[p + 2] = v;
    } else {
      data[p] = v;
      data[p + 1] = up;
      data[p + 2] = uq;
    }
  }
  return image;
}

/** PIL RGB -> HSV for one pixel (exported for tests). */
export function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  if (maxc === minc) return [0, 0, maxc];
  const cr = maxc - minc;
  const s = f32(cr / maxc);
  const rc = f32((maxc - r) / cr);
  const gc = f32((maxc - g) / cr);
  const bc = f32((maxc - b) / cr);
  let h: number;
  if (r === maxc) h = f32(bc - gc);
  else if (g === maxc) h = f32(2.0 + rc - bc);
  else h = f32(4.0 + gc - rc);
  const wrapped = h / 6.0 + 1.0;
  h = f32(wrapped - Math.floor(wrapped));
  return [clip8(Math.trunc(h * 255.0)), clip8(Math.trunc(s * 255.0)), maxc];
}

/** torchvision rgb_to_grayscale(num_output_channels=3) on PIL: L replicated. */
export function grayscale(image: Image8): Image8 {
  if (image.channels !== 3) return image;
  const data = image.data;
  for (let p = 0; p < data.length; p += 3) {
    const l = luma(data, p);
    data[p] = l;
    data[p + 1] = l;
    data[p + 2] = l;
  }
  return image;
}

/** ImageOps.solarize: values >= threshold are inverted. */
export function solarize(image: Image8, threshold = 128): Image8 {
  const data = image.data;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v >= threshold) data[i] = 255 - v;
  }
  return image;
}
