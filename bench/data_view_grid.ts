// Draws docs/views.png: views of real photographs (Debian's mate-backgrounds) through the
// pipelines of the spec. Each row is one photograph: the centre crop (`val`), four `dino`
// views (v1 v2 v1 v2), two 96 px local crops of `dino_multicrop`, two `simclr` views.
//
//   node dist/bench/data_view_grid.js [output.png]

import sharp from 'sharp';

import { decodeImage } from '../src/data/image.js';
import { Rng } from '../src/data/rng.js';
import { ViewPipeline, type ViewOptions } from '../src/data/views.js';
import { findPhotos, photoCrop } from './data_photos.js';

const TILE = 224;
const GAP = 6;
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** Normalised (3, H, W) floats back to 8-bit RGB. */
function toRgb(view: Float32Array, side: number): Buffer {
  const out = Buffer.alloc(side * side * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < side * side; i++) {
      const v = (view[c * side * side + i]! * STD[c]! + MEAN[c]!) * 255;
      out[i * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return out;
}

async function views(bytes: Buffer, options: ViewOptions, seed: number, pick: number[]): Promise<[Buffer, number][]> {
  const pipeline = new ViewPipeline(options);
  const image = pipeline.prepare(await decodeImage(bytes));
  const params = pipeline.sample(image.width, image.height, new Rng(seed, options.transformType));
  return pick.map((v) => {
    const side = pipeline.viewShape(v)[1];
    const out = new Float32Array(pipeline.viewLength(v));
    pipeline.render(image, v, params[v]!, out, 0);
    return [toRgb(out, side), side];
  });
}

async function main(): Promise<void> {
  const output = process.argv[2] ?? 'docs/views.png';
  const photos = findPhotos();
  const chosen = [photos[1]!, photos[4]!, photos[6]!, photos[11]!];
  const rows: [Buffer, number][][] = [];
  for (const [i, photo] of chosen.entries()) {
    const bytes = await photoCrop(photo, new Rng(99, i));
    rows.push([
      ...(await views(bytes, { transformType: 'val' }, i, [0])),
      ...(await views(bytes, { transformType: 'dino', nAugs: 4 }, i, [0, 1, 2, 3])),
      ...(await views(bytes, { transformType: 'dino_multicrop', nAugs: 8 }, i, [2, 3])),
      ...(await views(bytes, { transformType: 'simclr', nAugs: 2 }, i, [0, 1])),
    ]);
  }
  const columns = rows[0]!.length;
  const width = columns * TILE + (columns + 1) * GAP;
  const height = rows.length * TILE + (rows.length + 1) * GAP;
  const composites = rows.flatMap((row, r) => row.map(([rgb, side], c) => ({
    input: rgb,
    raw: { width: side, height: side, channels: 3 as const },
    left: GAP + c * (TILE + GAP) + (TILE - side) / 2,
    top: GAP + r * (TILE + GAP) + (TILE - side) / 2,
  })));
  await sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(composites)
    .png()
    .toFile(output);
  console.log(`wrote ${output} (${width}x${height}) from ${chosen.length} photographs`);
}

await main();
