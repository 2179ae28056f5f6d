// Shared helpers of the data tests: temporary folders, synthetic images, the Python peer.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Image8 } from '../src/data/image.js';
import { Rng } from '../src/data/rng.js';

export const PYTHON = '/usr/bin/python3';

/** Whether the PyTorch peer (Debian's python3-torchvision) can be imported. */
export function pythonHas(...modules: string[]): boolean {
  const code = modules.map((m) => `import ${m}`).join('; ');
  return spawnSync(PYTHON, ['-c', code], { stdio: 'ignore' }).status === 0;
}

/** Runs the peer; throws with its stderr when it fails. */
export function runPython(args: string[], input?: string): string {
  const result = spawnSync(PYTHON, args, { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (result.status !== 0) {
    throw new Error(`python ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  }
  return result.stdout;
}

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `groco-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * A deterministic test image with smooth regions, sharp edges, saturated and grey areas
 * and noise, so that every colour operation and the resampling filters are exercised.
 */
export function syntheticImage(width: number, height: number, channels: 1 | 3, seed = 1): Image8 {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * channels);
  const rects = Array.from({ length: 12 }, () => ({
    x: rng.randint(0, width), y: rng.randint(0, height),
    w: rng.randint(4, width / 2), h: rng.randint(4, height / 2),
    c: [rng.randint(0, 256), rng.randint(0, 256), rng.randint(0, 256)],
  }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let rgb = [
        128 + 100 * Math.sin(x / 17 + y / 31),
        128 + 100 * Math.cos(x / 23 - y / 13),
        (x * 255) / width,
      ];
      for (const r of rects) {
        if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) rgb = r.c.slice();
      }
      const noise = rng.uniform(-12, 12);
      const p = (y * width + x) * channels;
      if (channels === 3) {
        for (let c = 0; c < 3; c++) data[p + c] = Math.max(0, Math.min(255, Math.round(rgb[c]! + noise)));
      } else {
        data[p] = Math.max(0, Math.min(255, Math.round((rgb[0]! + rgb[1]! + rgb[2]!) / 3 + noise)));
      }
    }
  }
  return { data, width, height, channels };
}

/** Writes a shard of samples, each a key and its members (field -> bytes or text). */
export async function writeShard(
  path: string,
  samples: { key: string; members: Record<string, Uint8Array | string> }[],
): Promise<string> {
  const { TarWriter } = await import('../src/data/tar.js');
  const writer = await TarWriter.create(path, { mtime: 1700000000 });
  for (const sample of samples) {
    for (const [field, data] of Object.entries(sample.members)) {
      await writer.add(`${sample.key}.${field}`, typeof data === 'string' ? Buffer.from(data) : data);
    }
  }
  await writer.close();
  return path;
}

/** A small JPEG of a synthetic image (sharp encodes it). */
export async function smallJpeg(seed: number, width = 48, height = 40): Promise<Buffer> {
  const { encodeJpeg } = await import('../src/data/image.js');
  return encodeJpeg(syntheticImage(width, height, 3, seed), 90);
}
