// View pipelines: the table of the spec (views, sizes, probabilities), shapes and value
// ranges, determinism, RandomResizedCrop's sampling.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Rng } from '../src/data/rng.js';
import { boxRadiusForSigma, gaussianBlurPil, gaussianBlurPortable } from '../src/data/transforms/blur.js';
import {
  adjustBrightness, adjustContrast, adjustHue, adjustHuePortable, adjustSaturation, hueShift,
} from '../src/data/transforms/color.js';
import { resizedCrop, resizedCropPortable } from '../src/data/transforms/resample.js';
import { simdKernels } from '../src/data/transforms/simd.js';
import {
  IMAGENET_MEAN, IMAGENET_STD, normalizeTable, toNormalizedTensor, toNormalizedTensorPortable,
} from '../src/data/transforms/tensor.js';
import { centerCropFallback, randomResizedCropBox, roundHalfEven } from '../src/data/transforms/geometry.js';
import {
  scaledViewSizes, TRANSFORM_TYPES, ViewPipeline, viewSpecs, type RandomViewSpec, type ViewOptions,
} from '../src/data/views.js';
import { pythonHas, runPython, syntheticImage } from './data_helpers.js';

const noPeer = pythonHas('torchvision') ? false : 'needs /usr/bin/python3 with torchvision';

function render(options: ViewOptions, seed: number, channels: 1 | 3 = 3): Float32Array[] {
  const pipeline = new ViewPipeline(options);
  const image = pipeline.prepare(syntheticImage(120, 90, channels, 4));
  const params = pipeline.sample(image.width, image.height, new Rng(seed));
  return params.map((p, v) => {
    const out = new Float32Array(pipeline.viewLength(v));
    pipeline.render(image, v, p, out, 0);
    return out;
  });
}

describe('view pipelines', () => {
  it('follow the spec table', () => {
    const dino = viewSpecs({ transformType: 'dino' }) as RandomViewSpec[];
    assert.equal(dino.length, 2);
    assert.deepEqual([dino[0]!.blur!.p, dino[1]!.blur!.p, dino[0]!.solarizeP, dino[1]!.solarizeP], [1, 0.1, 0, 0.2]);
    assert.deepEqual(dino[0]!.scale, [0.14, 1]);
    assert.equal(dino[0]!.interpolation, 'bicubic');
    assert.deepEqual(dino[0]!.jitter, { p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 });
    const three = viewSpecs({ transformType: 'dino', nAugs: 3 });
    assert.equal(three[2], three[0]);
    const four = viewSpecs({ transformType: 'dino', nAugs: 4 });
    assert.deepEqual([four[2] === four[0], four[3] === four[1]], [true, true]);
    assert.throws(() => viewSpecs({ transformType: 'dino', nAugs: 5 }), /nAugs 2, 3 or 4/);

    const multi = viewSpecs({ transformType: 'dino_multicrop', nAugs: 8 }) as RandomViewSpec[];
    assert.deepEqual(multi.map((s) => s.size), [224, 224, 96, 96, 96, 96, 96, 96]);
    assert.deepEqual(multi[7]!.scale, [0.05, 0.14]);
    assert.equal(multi[7]!.blur!.p, 0.5);

    const simclr = viewSpecs({ transformType: 'simclr', nAugs: 3 }) as RandomViewSpec[];
    assert.equal(simclr.length, 3);
    assert.deepEqual(simclr[0]!.jitter, { p: 0.8, brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2 });
    assert.deepEqual([simclr[0]!.scale, simclr[0]!.blur!.p, simclr[0]!.grayscaleP], [[0.08, 1], 0.5, 0.2]);

    const probe = viewSpecs({ transformType: 'linear_prob' }) as RandomViewSpec[];
    assert.deepEqual([probe.length, probe[0]!.jitter, probe[0]!.blur, probe[0]!.interpolation],
      [1, null, null, 'bilinear']);
    assert.deepEqual(viewSpecs({ transformType: 'val' }),
      [{ kind: 'center', resize: 256, crop: 224, interpolation: 'bilinear' }]);
    assert.equal(viewSpecs({ transformType: 'val_bicubic_inter' })[0]!.interpolation, 'bicubic');
    assert.throws(() => viewSpecs({ transformType: 'nope' as never }), /unknown transform_type "nope"/);
  });

  it('scale sizes down for small images', () => {
    assert.deepEqual(scaledViewSizes(28), { size: 28, localSize: 12, resizeSize: 32 });
    assert.deepEqual(scaledViewSizes(224), { size: 224, localSize: 96, resizeSize: 256 });
  });

  it('render every pipeline with the right shapes, normalised ranges, one or three channels', () => {
    const lo = (0 - 0.485) / 0.229;
    const hi = (1 - 0.406) / 0.225;
    for (const type of TRANSFORM_TYPES) {
      for (const channels of [1, 3] as const) {
        const sizes = { size: 32, localSize: 16, resizeSize: 36 };
        const nAugs = type === 'dino_multicrop' ? 8 : type === 'dino' ? 4 : type === 'simclr' ? 3 : 1;
        const pipeline = new ViewPipeline({ transformType: type, nAugs, channels, ...sizes });
        const views = render({ transformType: type, nAugs, channels, ...sizes }, 9, channels);
        assert.equal(views.length, nAugs);
        views.forEach((view, v) => {
          const [c, h, w] = pipeline.viewShape(v);
          assert.equal(c, channels);
          assert.equal(h, w);
          assert.ok(h === 32 || (type === 'dino_multicrop' && v >= 2 && h === 16));
          assert.equal(view.length, c * h * w);
          let min = Infinity;
          let max = -Infinity;
          for (const x of view) {
            min = Math.min(min, x);
            max = Math.max(max, x);
          }
          assert.ok(min >= lo - 1e-5 && max <= hi + 1e-5, `${type} view ${v}: [${min}, ${max}]`);
          const local = type === 'dino_multicrop' && v >= 2; // tiny crops may fall in a flat area
          if (!local) assert.ok(max - min > 0.5, `${type} view ${v} is flat`);
        });
      }
    }
  });

  it('give one sample its views as separate (C, H, W) arrays', () => {
    const pipeline = new ViewPipeline({ transformType: 'dino', nAugs: 3, size: 40 });
    const views = pipeline.views(syntheticImage(90, 70, 3, 2), new Rng(4));
    assert.deepEqual(views.map((v) => v.length), [3 * 40 * 40, 3 * 40 * 40, 3 * 40 * 40]);
    assert.deepEqual(views, pipeline.views(syntheticImage(90, 70, 3, 2), new Rng(4)));
  });

  it('give the same views for the same seed and different ones otherwise', () => {
    const options: ViewOptions = { transformType: 'dino', nAugs: 2, size: 48 };
    assert.deepEqual(render(options, 1), render(options, 1));
    assert.notDeepEqual(render(options, 1), render(options, 2));
    const val: ViewOptions = { transformType: 'val', size: 48, resizeSize: 56 };
    assert.deepEqual(render(val, 1), render(val, 2), 'val views are not random');
  });

  it('apply each random step at its probability', () => {
    const pipeline = new ViewPipeline({ transformType: 'dino', nAugs: 2 });
    const rng = new Rng(3);
    const n = 4000;
    const counts = { flip: 0, jitter: 0, gray: 0, blur1: 0, blur2: 0, sol2: 0 };
    for (let i = 0; i < n; i++) {
      const [v1, v2] = pipeline.sample(400, 300, rng);
      counts.flip += Number(v1!.flip);
      counts.jitter += Number(v1!.jitter !== null);
      counts.gray += Number(v1!.grayscale);
      counts.blur1 += Number(v1!.blurSigma !== null);
      counts.blur2 += Number(v2!.blurSigma !== null);
      counts.sol2 += Number(v2!.solarize);
      if (v1!.jitter) {
        const j = v1!.jitter;
        assert.deepEqual([...j.order].sort(), [0, 1, 2, 3]);
        assert.ok(j.brightness >= 0.6 && j.brightness <= 1.4 && j.saturation >= 0.8 && j.saturation <= 1.2);
        assert.ok(Math.abs(j.hue) <= 0.1);
      }
    }
    const near = (count: number, p: number) => Math.abs(count / n - p) < 4 * Math.sqrt((p * (1 - p)) / n) + 1e-9;
    assert.ok(near(counts.flip, 0.5) && near(counts.jitter, 0.8) && near(counts.gray, 0.2), JSON.stringify(counts));
    assert.ok(near(counts.blur1, 1) && near(counts.blur2, 0.1) && near(counts.sol2, 0.2), JSON.stringify(counts));
  });
});

describe('RandomResizedCrop sampling', () => {
  it('samples crops distributed as torchvision samples them', { skip: noPeer }, () => {
    const rng = new Rng(8);
    const n = 20000;
    let logRatio = 0;
    let area = 0;
    for (let i = 0; i < n; i++) {
      const box = randomResizedCropBox(500, 375, [0.14, 1], [3 / 4, 4 / 3], rng);
      assert.ok(box.left >= 0 && box.top >= 0 && box.left + box.width <= 500 && box.top + box.height <= 375);
      logRatio += Math.log(box.width / box.height) / n;
      area += (box.width * box.height) / (500 * 375) / n;
    }
    const [theirArea, theirLogRatio] = JSON.parse(runPython(['-c', `
import math, torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop
torch.manual_seed(0)
img, n, a, r = Image.new('RGB', (500, 375)), 20000, 0.0, 0.0
for _ in range(n):
    i, j, h, w = RandomResizedCrop.get_params(img, [0.14, 1.0], [3 / 4, 4 / 3])
    a += w * h / (500 * 375) / n
    r += math.log(w / h) / n
print([a, r])
`])) as [number, number];
    // standard errors at n = 20000: about 0.002 (area) and 0.001 (log ratio)
    assert.ok(Math.abs(area - theirArea) < 0.01, `mean area ${area} vs torchvision ${theirArea}`);
    assert.ok(Math.abs(logRatio - theirLogRatio) < 0.006, `mean log ratio ${logRatio} vs ${theirLogRatio}`);
  });

  it('falls back to a centre crop within the ratio range', () => {
    assert.deepEqual(centerCropFallback(1000, 100, [3 / 4, 4 / 3]), { left: 433, top: 0, width: 133, height: 100 });
    assert.deepEqual(centerCropFallback(100, 1000, [3 / 4, 4 / 3]), { left: 0, top: 433, width: 100, height: 133 });
    assert.deepEqual(centerCropFallback(100, 90, [3 / 4, 4 / 3]), { left: 0, top: 0, width: 100, height: 90 });
    // a 1 x 1000 strip never fits 10 tries of the scale range: the fallback is used
    const box = randomResizedCropBox(1000, 1, [0.5, 1], [3 / 4, 4 / 3], new Rng(1));
    assert.deepEqual(box, { left: 499, top: 0, width: 1, height: 1 });
  });

  it('rounds half to even like Python', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, 2, 3]);
  });

  it('uses Pillow box radii for the blur sigma', () => {
    // Gwosdek et al.'s extended box for sigma 2 in 3 passes: l = 1, a = 0.375
    assert.equal(boxRadiusForSigma(2), 1.375);
    assert.ok(boxRadiusForSigma(0.1) > 0 && boxRadiusForSigma(0.1) < 0.01);
  });
});

describe('WebAssembly SIMD kernels', () => {
  const kernels = simdKernels();
  const skipSimd = kernels === null ? 'WebAssembly SIMD is not available here' : false;

  it('resize exactly as the TypeScript loops do', { skip: skipSimd }, () => {
    const rng = new Rng(21);
    for (let trial = 0; trial < 40; trial++) {
      const channels = trial % 3 === 0 ? 1 : 3;
      const image = syntheticImage(20 + rng.randint(0, 300), 20 + rng.randint(0, 300), channels, trial);
      const w = 1 + rng.randint(0, image.width);
      const h = 1 + rng.randint(0, image.height);
      const box = { left: rng.randint(0, image.width - w + 1), top: rng.randint(0, image.height - h + 1), width: w, height: h };
      const outW = [w, 1 + rng.randint(0, 300)][trial % 2]!;
      const outH = [h, 1 + rng.randint(0, 300)][(trial >> 1) % 2]!;
      const filter = trial % 4 < 2 ? 'bicubic' : 'bilinear';
      const a = resizedCrop(image, box, outW, outH, filter).data;
      const b = resizedCropPortable(image, box, outW, outH, filter).data;
      assert.ok(Buffer.from(a).equals(Buffer.from(b)), `trial ${trial}: ${JSON.stringify(box)} -> ${outW}x${outH}`);
    }
  });

  it('blur exactly as the TypeScript loops do', { skip: skipSimd }, () => {
    const rng = new Rng(22);
    for (let trial = 0; trial < 20; trial++) {
      const channels = trial % 3 === 0 ? 1 : 3;
      const image = syntheticImage(3 + rng.randint(0, 200), 3 + rng.randint(0, 200), channels, trial);
      const sigma = rng.uniform(0.1, 6);
      const a = gaussianBlurPil({ ...image, data: image.data.slice() }, sigma).data;
      const b = gaussianBlurPortable({ ...image, data: image.data.slice() }, sigma).data;
      assert.ok(Buffer.from(a).equals(Buffer.from(b)), `trial ${trial}: sigma ${sigma}`);
    }
  });

  it('normalise (and mirror) exactly as the tables do', { skip: skipSimd }, () => {
    const rng = new Rng(23);
    for (let trial = 0; trial < 24; trial++) {
      const channels = trial % 2 === 0 ? 1 : 3;
      const image = syntheticImage(4 + rng.randint(0, 100), 1 + rng.randint(0, 60), channels, trial);
      const table = channels === 3 ? normalizeTable(IMAGENET_MEAN, IMAGENET_STD) : normalizeTable([0.449], [0.226]);
      const length = image.width * image.height * channels;
      const a = new Float32Array(length + 7);
      const b = new Float32Array(length + 7);
      const flip = trial % 4 < 2;
      toNormalizedTensor(image, table, a, 7, flip);
      toNormalizedTensorPortable(image, table, b, 7, flip);
      assert.deepEqual(a, b, `trial ${trial}: ${image.width}x${image.height}x${channels}`);
    }
  });

  it('shift hue exactly as the TypeScript loop does, for every colour', { skip: skipSimd }, () => {
    const data = new Uint8Array(3 << 24);
    for (let code = 0, p = 0; code < 1 << 24; code++, p += 3) {
      data[p] = code >>> 16;
      data[p + 1] = (code >>> 8) & 255;
      data[p + 2] = code & 255;
    }
    for (const hue of [0.31, -0.5]) {
      const a = adjustHue({ data: data.slice(), width: 4096, height: 4096, channels: 3 }, hue).data;
      const b = adjustHuePortable({ data: data.slice(), width: 4096, height: 4096, channels: 3 }, hueShift(hue)).data;
      assert.ok(Buffer.from(a).equals(Buffer.from(b)), `hue ${hue}`);
    }
  });
});

describe('colour blends', () => {
  // Pillow's Image.blend on uint8: float(d + float(alpha * (x - d))), truncated and clipped
  const blend = (d: number, x: number, alpha: number): number => {
    const v = Math.fround(d + Math.fround(alpha * (x - d)));
    return v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  };
  const luma = (data: Uint8Array, p: number): number =>
    (data[p]! * 19595 + data[p + 1]! * 38470 + data[p + 2]! * 7471 + 0x8000) >>> 16;

  it('brightness, contrast and saturation follow Pillow on any length and factor', () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 90; trial++) {
      const n = 1 + rng.randint(0, 2000);
      const data = new Uint8Array(n * 3).map(() => rng.randint(0, 256));
      const factor = rng.uniform(0, 2.5);
      const alpha = Math.fround(factor);
      const image = { data: data.slice(), width: n, height: 1, channels: 3 as const };
      const kind = trial % 3;
      if (kind === 0) adjustBrightness(image, factor);
      else if (kind === 1) adjustContrast(image, factor);
      else adjustSaturation(image, factor);
      let sum = 0;
      for (let p = 0; p < data.length; p += 3) sum += luma(data, p);
      const mean = Math.floor(sum / n + 0.5);
      for (let p = 0; p < data.length; p++) {
        const d = kind === 0 ? 0 : kind === 1 ? mean : luma(data, p - (p % 3));
        assert.equal(image.data[p], blend(d, data[p]!, alpha), `kind ${kind}, factor ${factor}, byte ${p}`);
      }
    }
  });
});
