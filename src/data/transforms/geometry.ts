// Crop geometry with torchvision's semantics: RandomResizedCrop's parameter sampling,
// Resize(size) of the shorter side, CenterCrop offsets. Python's round() is half-to-even.

import type { Rng } from '../rng.js';
import type { Box } from './resample.js';

/** Python 3 round(): nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  if (Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

/**
 * torchvision RandomResizedCrop.get_params: area uniform in `scale` times the image area,
 * log aspect ratio uniform in log(`ratio`), 10 tries, then a centre crop clamped to the
 * ratio range.
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  rng: Rng,
): Box {
  const area = height * width;
  const logRatio0 = Math.log(ratio[0]);
  const logRatio1 = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio0, logRatio1));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.randint(0, height - h + 1);
      const left = rng.randint(0, width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  return centerCropFallback(width, height, ratio);
}

/** The fallback of RandomResizedCrop after 10 failed tries. */
export function centerCropFallback(width: number, height: number, ratio: readonly [number, number]): Box {
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** torchvision Resize(size) with an int: the shorter side becomes `size`. [width, height]. */
export function shorterSideSize(width: number, height: number, size: number): [number, number] {
  if (width <= height) return [size, Math.trunc((size * height) / width)];
  return [Math.trunc((size * width) / height), size];
}

/** torchvision CenterCrop offsets (the image must be at least the crop size). */
export function centerCropBox(width: number, height: number, cropWidth: number, cropHeight: number): Box {
  return {
    left: roundHalfEven((width - cropWidth) / 2),
    top: roundHalfEven((height - cropHeight) / 2),
    width: cropWidth,
    height: cropHeight,
  };
}
