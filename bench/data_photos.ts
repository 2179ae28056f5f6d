// Benchmark and documentation inputs from real photographs: Debian's mate-backgrounds
// package ships twelve nature photographs (/usr/share/backgrounds/mate/nature/*.jpg,
// 1920 px and up). From them we cut ImageNet-like JPEGs (random crops, longer side 500 px,
// quality 90) and pack them into WebDataset shards.

import { existsSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import sharp from 'sharp';

import { pickle } from '../src/data/pyd.js';
import { Rng } from '../src/data/rng.js';
import { TarWriter } from '../src/data/tar.js';

export const PHOTO_DIR = '/usr/share/backgrounds/mate/nature';

export function findPhotos(dir = PHOTO_DIR): string[] {
  if (!existsSync(dir)) {
    throw new Error(`no photographs in ${dir}: install Debian's mate-backgrounds package ` +
      '(apt-get install mate-backgrounds) or pass a folder of JPEG photographs');
  }
  const files = readdirSync(dir).filter((f) => /\.jpe?g$/i.test(f)).sort().map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`no JPEG files in ${dir}`);
  return files;
}

/** A random crop of a photograph as an ImageNet-like JPEG (longer side 500 px). */
export async function photoCrop(photo: string, rng: Rng): Promise<Buffer> {
  const meta = await sharp(photo).metadata();
  const W = meta.width!;
  const H = meta.height!;
  const area = W * H * rng.uniform(0.2, 0.9);
  const ratio = Math.exp(rng.uniform(Math.log(3 / 4), Math.log(4 / 3)));
  const w = Math.min(W, Math.round(Math.sqrt(area * ratio)));
  const h = Math.min(H, Math.round(Math.sqrt(area / ratio)));
  const left = rng.randint(0, W - w + 1);
  const top = rng.randint(0, H - h + 1);
  return sharp(photo)
    .extract({ left, top, width: w, height: h })
    .resize(w >= h ? 500 : undefined, w >= h ? undefined : 500)
    .jpeg({ quality: 90, mozjpeg: false })
    .toBuffer();
}

/**
 * Writes `count` photo crops into `shards` shards `photos-%06d.tar` under `dir` (samples
 * `<key>.jpg` + `<key>.cls`, class = source photograph). Existing shards are kept.
 */
export async function makePhotoShards(dir: string, count: number, shards: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const photos = findPhotos();
  const perShard = Math.ceil(count / shards);
  const paths: string[] = [];
  for (let s = 0; s < shards; s++) {
    const path = join(dir, `photos-${String(s).padStart(6, '0')}.tar`);
    paths.push(path);
    if (existsSync(path)) continue;
    const writer = await TarWriter.create(path);
    const rng = new Rng(2024, s);
    for (let i = s * perShard; i < Math.min(count, (s + 1) * perShard); i++) {
      const cls = i % photos.length;
      const key = `photo_${String(i).padStart(6, '0')}`;
      await writer.add(`${key}.jpg`, await photoCrop(photos[cls]!, rng));
      await writer.add(`${key}.cls`, Buffer.from(String(cls)));
      await writer.add(`${key}.metadata.pyd`, pickle({ cls, wnid: `photo${cls}` }));
    }
    await writer.close();
  }
  return paths;
}
