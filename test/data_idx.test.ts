// IDX files: the real Fashion-MNIST as Debian's dataset-fashion-mnist installs it, and the
// format's error cases.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';

import { fashionMnistFiles, parseIdx, readIdxDataset } from '../src/data/idx.js';

const installed = existsSync(fashionMnistFiles('train').images);
const skip = installed ? false : 'Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)';

describe('Fashion-MNIST from its IDX files', { skip }, () => {
  for (const [split, count, perClass] of [['train', 60000, 6000], ['test', 10000, 1000]] as const) {
    it(`${split}: ${count} images of 28x28, ${perClass} per class`, () => {
      const files = fashionMnistFiles(split);
      const data = readIdxDataset(files.images, files.labels);
      assert.equal(data.count, count);
      assert.equal(data.height, 28);
      assert.equal(data.width, 28);
      assert.equal(data.images.length, count * 28 * 28);
      const perLabel = new Array<number>(10).fill(0);
      for (const label of data.labels) perLabel[label]! += 1;
      assert.deepEqual(perLabel, new Array(10).fill(perClass));
      // real images: dark background, bright garments
      let sum = 0;
      for (const v of data.images.subarray(0, 784 * 100)) sum += v;
      const mean = sum / (784 * 100);
      assert.ok(mean > 40 && mean < 110, `mean pixel ${mean}`);
    });
  }
});

describe('IDX format', () => {
  const header = (type: number, dims: number[]) => {
    const b = Buffer.alloc(4 + 4 * dims.length);
    b[2] = type;
    b[3] = dims.length;
    dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
    return b;
  };
  it('reads raw and gzipped files of any element type', () => {
    const raw = Buffer.concat([header(0x08, [2, 3]), Buffer.from([1, 2, 3, 4, 5, 6])]);
    assert.deepEqual(parseIdx(raw).shape, [2, 3]);
    assert.deepEqual([...parseIdx(gzipSync(raw)).data], [1, 2, 3, 4, 5, 6]);
    const ints = Buffer.concat([header(0x0c, [2]), Buffer.from([0, 0, 1, 0, 0xff, 0xff, 0xff, 0xfe])]);
    assert.deepEqual([...parseIdx(ints).data], [256, -2]);
  });
  it('names the file and what is wrong', () => {
    assert.throws(() => parseIdx(Buffer.from('PK\x03\x04'), 'x.idx'), /x\.idx is not an IDX file/);
    assert.throws(() => parseIdx(Buffer.concat([header(0x08, [10]), Buffer.alloc(3)]), 'y.idx'),
      /y\.idx is truncated: shape \[10\] needs 18 bytes, the file has 11/);
    assert.throws(() => parseIdx(header(0x07, [1]), 'z.idx'), /unknown element type 0x7/);
  });
});
