// The view operations against torchvision 0.14 / Pillow (the reference's stack) on the same
// crop and colour parameters. Tolerance: none. Every value must be identical (max |diff|
// = 0 in normalised float32), because each operation is a port of Pillow's integer and
// single-precision arithmetic. Hue is also compared over all 2^24 colours.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { decodeImage, encodePng } from '../src/data/image.js';
import { Rng } from '../src/data/rng.js';
import { adjustHue } from '../src/data/transforms/color.js';
import {
  ViewPipeline, type TransformType, type ViewOptions, type ViewParams,
} from '../src/data/views.js';
import { pythonHas, runPython, syntheticImage, tempDir } from './data_helpers.js';

const PEER = fileURLToPath(new URL('../../test/peers/data_views_peer.py', import.meta.url));
const hasPeer = pythonHas('torchvision', 'PIL', 'numpy');
const skip = hasPeer ? false : 'needs /usr/bin/python3 with torchvision, PIL and numpy';

interface Case {
  image: string;
  channels: 1 | 3;
  kind: 'random' | 'center';
  interpolation: string;
  size: number;
  resize: number;
  crop: number;
  params: ViewParams;
  mean: number[];
  std: number[];
}

interface Group {
  name: string;
  cases: Case[];
  ours: Float32Array[];
}

async function makeGroup(
  dir: string,
  type: TransformType,
  channels: 1 | 3,
  nImages: number,
  options: Partial<ViewOptions> = {},
): Promise<Group> {
  const pipeline = new ViewPipeline({ transformType: type, channels, ...options });
  const rng = new Rng(7, type, channels);
  const group: Group = { name: `${type} (${channels} channel)`, cases: [], ours: [] };
  const mean = channels === 3 ? [0.485, 0.456, 0.406] : [0.449];
  const std = channels === 3 ? [0.229, 0.224, 0.225] : [0.226];
  for (let i = 0; i < nImages; i++) {
    const w = 160 + rng.randint(0, 200);
    const h = 120 + rng.randint(0, 200);
    const file = join(dir, `${type}-${channels}-${i}.png`);
    writeFileSync(file, await encodePng(syntheticImage(w, h, channels, i + 1)));
    const image = pipeline.prepare(await decodeImage(readFileSync(file)));
    const params = pipeline.sample(image.width, image.height, rng);
    params.forEach((p, v) => {
      const spec = pipeline.specs[v]!;
      const out = new Float32Array(pipeline.viewLength(v));
      pipeline.render(image, v, p, out, 0);
      group.ours.push(out);
      group.cases.push({
        image: file, channels, kind: spec.kind, interpolation: spec.interpolation,
        size: spec.kind === 'random' ? spec.size : 0,
        resize: spec.kind === 'center' ? spec.resize : 0,
        crop: spec.kind === 'center' ? spec.crop : 0,
        params: p, mean, std,
      });
    });
  }
  return group;
}

describe('views against torchvision', { skip }, () => {
  const dir = tempDir('views-peer');
  after(() => dir.remove());
  const results = new Map<string, { group: Group; theirs: Float32Array[] }>();

  before(async () => {
    const groups = [
      await makeGroup(dir.path, 'dino', 3, 12),
      await makeGroup(dir.path, 'simclr', 3, 8),
      await makeGroup(dir.path, 'dino_multicrop', 3, 2),
      await makeGroup(dir.path, 'val', 3, 3),
      await makeGroup(dir.path, 'val_bicubic_inter', 3, 3),
      await makeGroup(dir.path, 'linear_prob', 3, 3),
      await makeGroup(dir.path, 'dino', 1, 6, { size: 28, localSize: 12, resizeSize: 32 }),
      await makeGroup(dir.path, 'val', 1, 2, { size: 28, resizeSize: 32 }),
    ];
    const cases = groups.flatMap((g) => g.cases);
    const casesFile = join(dir.path, 'cases.json');
    const outFile = join(dir.path, 'views.f32');
    writeFileSync(casesFile, JSON.stringify(cases));
    runPython([PEER, casesFile, outFile]);
    const all = new Float32Array(readFileSync(outFile).buffer.slice(0));
    let offset = 0;
    for (const group of groups) {
      const theirs = group.ours.map((view) => {
        const slice = all.subarray(offset, offset + view.length);
        offset += view.length;
        return slice;
      });
      results.set(group.name, { group, theirs });
    }
    assert.equal(offset, all.length, 'the peer returned a different number of values');
  });

  function check(name: string): number {
    const { group, theirs } = results.get(name)!;
    let maxDiff = 0;
    let operations = 0;
    group.ours.forEach((view, index) => {
      const other = theirs[index]!;
      for (let k = 0; k < view.length; k++) maxDiff = Math.max(maxDiff, Math.abs(view[k]! - other[k]!));
      const p = group.cases[index]!.params;
      operations += (p.jitter ? 4 : 0) + (p.blurSigma !== null ? 1 : 0) + (p.grayscale ? 1 : 0);
    });
    assert.equal(maxDiff, 0, `${name}: max |ours - torchvision| = ${maxDiff}`);
    return operations;
  }

  it('dino (2 views): bicubic crops, jitter, grayscale, blur, solarize are identical', () => {
    assert.ok(check('dino (3 channel)') > 20, 'the random cases exercised too few colour and blur operations');
  });
  it('simclr: bilinear crops and strong jitter are identical', () => {
    check('simclr (3 channel)');
  });
  it('dino_multicrop: 96 px local crops are identical', () => {
    check('dino_multicrop (3 channel)');
  });
  it('val and val_bicubic_inter: Resize(256) + CenterCrop(224) are identical', () => {
    check('val (3 channel)');
    check('val_bicubic_inter (3 channel)');
  });
  it('linear_prob and one-channel images with scaled-down sizes are identical', () => {
    check('linear_prob (3 channel)');
    check('dino (1 channel)');
    check('val (1 channel)');
  });

  it('hue shift matches torchvision over all 2^24 colours', () => {
    const hue = -0.07;
    const file = join(dir.path, 'hue.rgb');
    runPython([PEER, 'hue', file, String(hue)]);
    const theirs = readFileSync(file);
    const data = new Uint8Array(3 << 24);
    for (let code = 0, p = 0; code < 1 << 24; code++, p += 3) {
      data[p] = code >>> 16;
      data[p + 1] = (code >>> 8) & 255;
      data[p + 2] = code & 255;
    }
    adjustHue({ data, width: 4096, height: 4096, channels: 3 }, hue);
    let mismatches = 0;
    for (let i = 0; i < data.length; i++) if (data[i] !== theirs[i]) mismatches++;
    assert.equal(mismatches, 0, `hue ${hue}: ${mismatches} channel values differ`);
  });
});
