// The view pipelines of the spec (section 7, "Views"), with torchvision's semantics on
// 8-bit images as its PIL path computes them. Parameters are sampled first (`sample`),
// then applied (`render`), so tests can hand the same parameters to torchvision.

import { toChannels, type Image8 } from './image.js';
import type { Rng } from './rng.js';
import { gaussianBlurPil } from './transforms/blur.js';
import {
  adjustBrightness, adjustContrast, adjustHue, adjustSaturation, grayscale, solarize,
} from './transforms/color.js';
import {
  centerCropBox, randomResizedCropBox, shorterSideSize,
} from './transforms/geometry.js';
import { copyBox, resizedCrop, type Box, type Interpolation } from './transforms/resample.js';
import { IMAGENET_MEAN, IMAGENET_STD, normalizeTable, toNormalizedTensor } from './transforms/tensor.js';

export const TRANSFORM_TYPES = [
  'dino', 'dino_multicrop', 'simclr', 'linear_prob', 'val', 'val_bicubic_inter',
] as const;
export type TransformType = (typeof TRANSFORM_TYPES)[number];

export interface JitterSpec {
  p: number;
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** A randomly augmented view: RandomResizedCrop and what follows it. */
export interface RandomViewSpec {
  kind: 'random';
  size: number;
  scale: [number, number];
  ratio: [number, number];
  interpolation: Interpolation;
  flipP: number;
  jitter: JitterSpec | null;
  grayscaleP: number;
  blur: { p: number; sigma: [number, number] } | null;
  solarizeP: number;
}

/** Resize(resize) of the shorter side, then CenterCrop(crop). */
export interface CenterViewSpec {
  kind: 'center';
  resize: number;
  crop: number;
  interpolation: Interpolation;
}

export type ViewSpec = RandomViewSpec | CenterViewSpec;

export interface ViewOptions {
  transformType: TransformType;
  /** Number of views (`n_augs`): dino 2 to 4, dino_multicrop 8, simclr any, others 1. */
  nAugs?: number;
  /** Global crop size (224 for ImageNet). */
  size?: number;
  /** dino_multicrop local crop size (96 for ImageNet). */
  localSize?: number;
  /** val: the shorter side before the centre crop (256 for ImageNet). */
  resizeSize?: number;
  /** Output channels; images are converted as PIL's convert('L') / convert('RGB'). */
  channels?: 1 | 3;
  /** Normalisation; defaults to ImageNet's (averaged over the channels for one channel). */
  mean?: number[];
  std?: number[];
  /** Range of the blur radius (sigma). */
  blurSigma?: [number, number];
}

/**
 * View sizes scaled down from ImageNet's 224 / 96 / 256 for a dataset of `imageSize`
 * pixels (e.g. 28 for Fashion-MNIST gives 28 / 12 / 32).
 */
export function scaledViewSizes(imageSize: number): { size: number; localSize: number; resizeSize: number } {
  return {
    size: imageSize,
    localSize: Math.max(1, Math.round((imageSize * 96) / 224)),
    resizeSize: Math.round((imageSize * 256) / 224),
  };
}

const RATIO: [number, number] = [3 / 4, 4 / 3];
const DINO_JITTER: JitterSpec = { p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 };

/** The per-view specs of a pipeline, in view order. */
export function viewSpecs(options: ViewOptions): ViewSpec[] {
  const size = options.size ?? 224;
  const localSize = options.localSize ?? 96;
  const resizeSize = options.resizeSize ?? 256;
  const sigma = options.blurSigma ?? [0.1, 2.0];
  const type = options.transformType;
  const dino = (blurP: number, solarizeP: number, cropSize: number, scale: [number, number]): RandomViewSpec => ({
    kind: 'random', size: cropSize, scale, ratio: RATIO, interpolation: 'bicubic', flipP: 0.5,
    jitter: DINO_JITTER, grayscaleP: 0.2, blur: { p: blurP, sigma }, solarizeP,
  });
  switch (type) {
    case 'dino': {
      const n = options.nAugs ?? 2;
      const v1 = dino(1.0, 0, size, [0.14, 1]);
      const v2 = dino(0.1, 0.2, size, [0.14, 1]);
      if (n === 2) return [v1, v2];
      if (n === 3) return [v1, v2, v1];
      if (n === 4) return [v1, v2, v1, v2];
      throw new Error(`viewSpecs: dino takes nAugs 2, 3 or 4, got ${n}`);
    }
    case 'dino_multicrop': {
      const n = options.nAugs ?? 8;
      if (n !== 8) throw new Error(`viewSpecs: dino_multicrop has 8 views, got nAugs ${n}`);
      const local = dino(0.5, 0, localSize, [0.05, 0.14]);
      return [dino(1.0, 0, size, [0.14, 1]), dino(0.1, 0.2, size, [0.14, 1]), ...Array(6).fill(local)];
    }
    case 'simclr': {
      const spec: RandomViewSpec = {
        kind: 'random', size, scale: [0.08, 1], ratio: RATIO, interpolation: 'bilinear', flipP: 0.5,
        jitter: { p: 0.8, brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2 },
        grayscaleP: 0.2, blur: { p: 0.5, sigma }, solarizeP: 0,
      };
      return Array(options.nAugs ?? 2).fill(spec);
    }
    case 'linear_prob': {
      const spec: RandomViewSpec = {
        kind: 'random', size, scale: [0.08, 1], ratio: RATIO, interpolation: 'bilinear', flipP: 0.5,
        jitter: null, grayscaleP: 0, blur: null, solarizeP: 0,
      };
      return Array(options.nAugs ?? 1).fill(spec);
    }
    case 'val':
    case 'val_bicubic_inter': {
      const spec: CenterViewSpec = {
        kind: 'center', resize: resizeSize, crop: size,
        interpolation: type === 'val' ? 'bilinear' : 'bicubic',
      };
      return Array(options.nAugs ?? 1).fill(spec);
    }
    default:
      throw new Error(`viewSpecs: unknown transform_type ${JSON.stringify(type)}; ` +
        `expected one of ${TRANSFORM_TYPES.join(', ')}`);
  }
}

/** The random choices of one view. */
export interface ViewParams {
  box: Box;
  /** Output size of the resize (random views: size x size; centre views: the resized image). */
  resizeTo: [number, number];
  /** Centre views: the crop taken after the resize. */
  crop: Box | null;
  flip: boolean;
  /** Colour jitter: the order of its parts (0 brightness, 1 contrast, 2 saturation, 3 hue). */
  jitter: { order: number[]; brightness: number; contrast: number; saturation: number; hue: number } | null;
  grayscale: boolean;
  blurSigma: number | null;
  solarize: boolean;
}

export class ViewPipeline {
  readonly specs: ViewSpec[];
  readonly channels: 1 | 3;
  private readonly table: Float32Array;
  private readonly scratch = new Map<number, Uint8Array>();

  constructor(readonly options: ViewOptions) {
    this.specs = viewSpecs(options);
    this.channels = options.channels ?? 3;
    const mean = options.mean ?? (this.channels === 3 ? [...IMAGENET_MEAN] : [average(IMAGENET_MEAN)]);
    const std = options.std ?? (this.channels === 3 ? [...IMAGENET_STD] : [average(IMAGENET_STD)]);
    if (mean.length !== this.channels || std.length !== this.channels) {
      throw new Error(`ViewPipeline: mean and std need ${this.channels} values, got ` +
        `${mean.length} and ${std.length}`);
    }
    this.table = normalizeTable(mean, std);
  }

  get numViews(): number {
    return this.specs.length;
  }

  /** (C, H, W) of view v. */
  viewShape(v: number): [number, number, number] {
    const spec = this.specs[v]!;
    const side = spec.kind === 'random' ? spec.size : spec.crop;
    return [this.channels, side, side];
  }

  /** Floats per sample of view v. */
  viewLength(v: number): number {
    const [c, h, w] = this.viewShape(v);
    return c * h * w;
  }

  /** Converts a decoded image to the pipeline's channel count. */
  prepare(image: Image8): Image8 {
    return toChannels(image, this.channels);
  }

  /** Samples the random choices of every view for an image of this size. */
  sample(width: number, height: number, rng: Rng): ViewParams[] {
    return this.specs.map((spec) => sampleView(spec, width, height, rng));
  }

  /**
   * Renders view v of `image` (already `prepare`d) with `params`, writing its normalised
   * (C, H, W) floats at `out[index * viewLength(v)...]`.
   */
  render(image: Image8, v: number, params: ViewParams, out: Float32Array, index: number): void {
    const spec = this.specs[v]!;
    const [outW, outH] = params.resizeTo;
    let view = resizedCrop(image, params.box, outW, outH, spec.interpolation,
      this.buffer(outW * outH * image.channels));
    if (params.crop !== null) {
      view = cropImage(view, params.crop, this.buffer(params.crop.width * params.crop.height * image.channels, 1));
    }
    if (params.jitter !== null) {
      const j = params.jitter;
      for (const part of j.order) {
        if (part === 0) adjustBrightness(view, j.brightness);
        else if (part === 1) adjustContrast(view, j.contrast);
        else if (part === 2) adjustSaturation(view, j.saturation);
        else adjustHue(view, j.hue);
      }
    }
    if (params.grayscale) grayscale(view);
    if (params.blurSigma !== null) gaussianBlurPil(view, params.blurSigma);
    if (params.solarize) solarize(view, 128);
    // The flip is folded into the tensor conversion: every step after it in torchvision's
    // order (colour, grayscale, PIL's symmetric box blur, solarize) commutes with it.
    toNormalizedTensor(view, this.table, out, index * this.viewLength(v), params.flip);
  }

  /** One sample's views as separate (C, H, W) arrays, parameters drawn from `rng`. */
  views(image: Image8, rng: Rng): Float32Array[] {
    const prepared = this.prepare(image);
    const params = this.sample(prepared.width, prepared.height, rng);
    return params.map((p, v) => {
      const out = new Float32Array(this.viewLength(v));
      this.render(prepared, v, p, out, 0);
      return out;
    });
  }

  /** Renders all views of one image into per-view outputs at position `index`. */
  renderAll(image: Image8, params: ViewParams[], outs: Float32Array[], index: number): void {
    for (let v = 0; v < params.length; v++) this.render(image, v, params[v]!, outs[v]!, index);
  }

  private buffer(length: number, slot = 0): Uint8Array {
    const key = length * 2 + slot;
    let buf = this.scratch.get(key);
    if (buf === undefined) {
      buf = new Uint8Array(length);
      this.scratch.set(key, buf);
    }
    return buf;
  }
}

function sampleView(spec: ViewSpec, width: number, height: number, rng: Rng): ViewParams {
  if (spec.kind === 'center') {
    const [w, h] = shorterSideSize(width, height, spec.resize);
    const full: Box = { left: 0, top: 0, width, height };
    const crop = centerCropBox(w, h, spec.crop, spec.crop);
    return {
      box: full, resizeTo: [w, h], crop, flip: false, jitter: null,
      grayscale: false, blurSigma: null, solarize: false,
    };
  }
  const box = randomResizedCropBox(width, height, spec.scale, spec.ratio, rng);
  const flip = rng.random() < spec.flipP;
  let jitter: ViewParams['jitter'] = null;
  if (spec.jitter !== null && rng.random() < spec.jitter.p) {
    const j = spec.jitter;
    const order = rng.permutation(4);
    const factor = (amount: number): number => rng.uniform(Math.max(0, 1 - amount), 1 + amount);
    jitter = {
      order,
      brightness: j.brightness > 0 ? factor(j.brightness) : 1,
      contrast: j.contrast > 0 ? factor(j.contrast) : 1,
      saturation: j.saturation > 0 ? factor(j.saturation) : 1,
      hue: j.hue > 0 ? rng.uniform(-j.hue, j.hue) : 0,
    };
  }
  const gray = spec.grayscaleP > 0 && rng.random() < spec.grayscaleP;
  let blurSigma: number | null = null;
  if (spec.blur !== null && rng.random() < spec.blur.p) {
    blurSigma = rng.uniform(spec.blur.sigma[0], spec.blur.sigma[1]);
  }
  const sol = spec.solarizeP > 0 && rng.random() < spec.solarizeP;
  return {
    box, resizeTo: [spec.size, spec.size], crop: null, flip, jitter,
    grayscale: gray, blurSigma, solarize: sol,
  };
}

function cropImage(image: Image8, box: Box, out: Uint8Array): Image8 {
  const C = image.channels;
  const inside = box.left >= 0 && box.top >= 0 && box.left + box.width <= image.width &&
    box.top + box.height <= image.height;
  if (inside) {
    copyBox(image, box, out);
    return { data: out, width: box.width, height: box.height, channels: C };
  }
  // Pad with zeros where the crop leaves the image (torchvision pads in CenterCrop).
  out.fill(0);
  for (let y = 0; y < box.height; y++) {
    const sy = box.top + y;
    if (sy < 0 || sy >= image.height) continue;
    for (let x = 0; x < box.width; x++) {
      const sx = box.left + x;
      if (sx < 0 || sx >= image.width) continue;
      const s = (sy * image.width + sx) * C;
      const d = (y * box.width + x) * C;
      for (let c = 0; c < C; c++) out[d + c] = image.data[s + c]!;
    }
  }
  return { data: out, width: box.width, height: box.height, channels: C };
}

function average(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
