// 8-bit images as plain typed arrays, decoded by sharp (libvips; its JPEG decoder gives the
// same pixels as PIL's on the images tested) and converted between one and three channels
// as PIL's `convert` does.

import sharp from 'sharp';

/** An 8-bit image, rows of interleaved channels (H, W, C), C = 1 or 3. */
export interface Image8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

export function createImage(width: number, height: number, channels: 1 | 3): Image8 {
  return { data: new Uint8Array(width * height * channels), width, height, channels };
}

let sharpConfigured = false;

/** One libvips thread per decode, no operation cache: the loader parallelises itself. */
function configureSharp(): void {
  if (sharpConfigured) return;
  sharp.concurrency(1);
  sharp.cache(false);
  sharpConfigured = true;
}

/**
 * Decodes JPEG, PNG or WebP bytes to 8-bit pixels. Alpha is dropped and grey images stay
 * one channel (as PIL's `convert('RGB')` / `convert('L')` are applied later by `toChannels`).
 */
export async function decodeImage(bytes: Uint8Array): Promise<Image8> {
  configureSharp();
  const { data, info } = await sharp(bytes, { failOn: 'error', sequentialRead: true })
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (info.channels === 1 || info.channels === 3) {
    return { data: pixels, width: info.width, height: info.height, channels: info.channels };
  }
  // Two-channel grey+alpha after removeAlpha should not happen; keep the first channel.
  const n = info.width * info.height;
  const grey = new Uint8Array(n);
  for (let i = 0; i < n; i++) grey[i] = pixels[i * info.channels]!;
  return { data: grey, width: info.width, height: info.height, channels: 1 };
}

/**
 * Converts to 1 or 3 channels like PIL: RGB to L with the ITU-R 601-2 luma transform
 * (L = (19595 R + 38470 G + 7471 B + 32768) >> 16), L to RGB by replication.
 */
export function toChannels(image: Image8, channels: 1 | 3): Image8 {
  if (image.channels === channels) return image;
  const n = image.width * image.height;
  const src = image.data;
  if (channels === 1) {
    const out = new Uint8Array(n);
    for (let i = 0, p = 0; i < n; i++, p += 3) {
      out[i] = (src[p]! * 19595 + src[p + 1]! * 38470 + src[p + 2]! * 7471 + 0x8000) >>> 16;
    }
    return { data: out, width: image.width, height: image.height, channels: 1 };
  }
  const out = new Uint8Array(n * 3);
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    const v = src[i]!;
    out[p] = v;
    out[p + 1] = v;
    out[p + 2] = v;
  }
  return { data: out, width: image.width, height: image.height, channels: 3 };
}

/** Encodes to PNG (lossless; used for Fashion-MNIST shards and the view grid). */
export async function encodePng(image: Image8): Promise<Buffer> {
  configureSharp();
  return sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: image.channels },
  })
    .png({ compressionLevel: 6 })
    .toBuffer();
}

/** Encodes to JPEG (used to build benchmark shards from photographs). */
export async function encodeJpeg(image: Image8, quality = 90): Promise<Buffer> {
  configureSharp();
  return sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: image.channels },
  })
    .jpeg({ quality, chromaSubsampling: '4:2:0', mozjpeg: false })
    .toBuffer();
}
