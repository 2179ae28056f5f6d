// IDX files (the MNIST / Fashion-MNIST format), gzipped or raw: a magic number giving the
// element type and rank, the dimensions as big-endian uint32, then the data.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface IdxArray {
  /** Dimensions, e.g. [60000, 28, 28] for images, [60000] for labels. */
  shape: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<number, { name: string; size: number }> = {
  0x08: { name: 'uint8', size: 1 },
  0x09: { name: 'int8', size: 1 },
  0x0b: { name: 'int16', size: 2 },
  0x0c: { name: 'int32', size: 4 },
  0x0d: { name: 'float32', size: 4 },
  0x0e: { name: 'float64', size: 8 },
};

/** Parses IDX bytes (gunzipped first when they start with the gzip magic). */
export function parseIdx(bytes: Uint8Array, file = '<buffer>'): IdxArray {
  const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) {
    throw new Error(`parseIdx: ${file} is not an IDX file (expected magic 00 00 <type> <rank>)`);
  }
  const type = TYPES[raw[2]!];
  if (type === undefined) {
    throw new Error(`parseIdx: ${file} has unknown element type 0x${raw[2]!.toString(16)}`);
  }
  const rank = raw[3]!;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (raw.length < 4 + 4 * rank) throw new Error(`parseIdx: ${file} is truncated in its header`);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * rank;
  const expected = offset + count * type.size;
  if (raw.length < expected) {
    throw new Error(`parseIdx: ${file} is truncated: shape [${shape.join(', ')}] needs ` +
      `${expected} bytes, the file has ${raw.length}`);
  }
  let data: IdxArray['data'];
  if (type.size === 1) {
    const body = new Uint8Array(count);
    body.set(raw.subarray(offset, offset + count));
    data = type.name === 'uint8' ? body : new Int8Array(body.buffer);
  } else {
    const read = (i: number): number => {
      const at = offset + i * type.size;
      if (type.name === 'int16') return view.getInt16(at, false);
      if (type.name === 'int32') return view.getInt32(at, false);
      if (type.name === 'float32') return view.getFloat32(at, false);
      return view.getFloat64(at, false);
    };
    data = type.name === 'int16' ? new Int16Array(count) : type.name === 'int32'
      ? new Int32Array(count) : type.name === 'float32' ? new Float32Array(count) : new Float64Array(count);
    for (let i = 0; i < count; i++) data[i] = read(i);
  }
  return { shape, data };
}

export function readIdx(file: string): IdxArray {
  return parseIdx(readFileSync(file), file);
}

/** Images and labels of an IDX pair, checked against each other. */
export interface IdxDataset {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
}

export function readIdxDataset(imagesFile: string, labelsFile: string): IdxDataset {
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.shape.length !== 3 || !(images.data instanceof Uint8Array)) {
    throw new Error(`readIdxDataset: ${imagesFile} should hold uint8 images (N, H, W), ` +
      `got shape [${images.shape.join(', ')}]`);
  }
  if (labels.shape.length !== 1 || !(labels.data instanceof Uint8Array)) {
    throw new Error(`readIdxDataset: ${labelsFile} should hold uint8 labels (N), ` +
      `got shape [${labels.shape.join(', ')}]`);
  }
  if (labels.shape[0] !== images.shape[0]) {
    throw new Error(`readIdxDataset: ${imagesFile} has ${images.shape[0]} images but ` +
      `${labelsFile} has ${labels.shape[0]} labels`);
  }
  return {
    images: images.data,
    labels: labels.data,
    count: images.shape[0]!,
    height: images.shape[1]!,
    width: images.shape[2]!,
  };
}

/** Debian's dataset-fashion-mnist files: split 'train' (60000) or 'test' (10000). */
export function fashionMnistFiles(
  split: 'train' | 'test',
  root = '/usr/share/datasets/fashion-mnist',
): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  return {
    images: `${root}/${prefix}-images-idx3-ubyte.gz`,
    labels: `${root}/${prefix}-labels-idx1-ubyte.gz`,
  };
}
