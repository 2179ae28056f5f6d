// Tensors: creation, dtypes, reading back, memory ownership, errors, autograd extensions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { F, tidy, tensor, type Tensor } from '../src/torch/index.js';

test('creation from numbers, nested arrays and typed arrays, read back', () => {
  tidy(() => {
    assert.deepEqual(tensor([[1, 2], [3, 4]]).toArray(), [[1, 2], [3, 4]]);
    assert.equal(tensor(2.5).item(), 2.5);
    assert.equal(tensor([true, false]).dtype, 'bool');
    assert.deepEqual(tensor([true, false]).toArray(), [true, false]);
    const i = tensor(new Int32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
    assert.equal(i.dtype, 'int32');
    assert.deepEqual(i.shape, [2, 3]);
    assert.deepEqual(Array.from(i.data() as Int32Array), [1, 2, 3, 4, 5, 6]);
    const l = tensor([5, 6], { dtype: 'int64' });
    assert.deepEqual(Array.from(l.data() as BigInt64Array), [5n, 6n]);
    for (const dtype of T.dtypes) {
      const t = tensor([1, 0, 1], { dtype });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.toFlatArray(), [1, 0, 1], dtype);
    }
    assert.deepEqual(tensor([0.1, 1.5], { dtype: 'bfloat16' }).toFlatArray(), [0.10009765625, 1.5]);
    assert.deepEqual(T.zeros([2]).toArray(), [0, 0]);
    assert.deepEqual(T.full([2], 3, { dtype: 'int32' }).toArray(), [3, 3]);
    assert.deepEqual(T.arange(4).toArray(), [0, 1, 2, 3]);
    assert.equal(T.arange(4).dtype, 'int64');
    assert.deepEqual(T.eye(2).toArray(), [[1, 0], [0, 1]]);
  });
});

test('ragged arrays and wrong shapes are refused with a clear message', () => {
  assert.throws(() => tensor([[1, 2], [3]]), /ragged nested array/);
  assert.throws(() => tensor(new Float32Array(5), { shape: [2, 3] }), /holds 6 values, the typed array 5/);
  assert.throws(() => tensor([1], { dtype: 'complex' as never }), /dtype: expected one of/);
});

test('tidy disposes intermediates, keeps results, live count returns to start', () => {
  const start = T.liveTensorCount();
  const kept = tidy(() => {
    const a = T.ones([3]);
    const b = a.mul(2).add(1);
    return { b, list: [b.sum()] };
  });
  assert.equal(T.liveTensorCount(), start + 2);
  assert.deepEqual(kept.b.toArray(), [3, 3, 3]);
  kept.b.dispose();
  kept.list[0]!.dispose();
  assert.equal(T.liveTensorCount(), start);
});

test('use after dispose throws; dispose is idempotent', () => {
  const t = T.ones([2]);
  t.dispose();
  t.dispose();
  assert.throws(() => t.sum(), /used after dispose/);
  assert.equal(t.isDisposed, true);
});

test('libtorch errors reach JS with the op name and libtorch message', () => {
  tidy(() => {
    assert.throws(() => T.ones([2, 3]).mm(T.ones([2, 3])), /^Error: mm: .*cannot be multiplied/);
    assert.throws(() => F.conv2d(T.ones([2, 2]), T.ones([1, 1, 1, 1])), /conv2d: argument 'input' expected rank 3 or 4, got rank 2/);
    assert.throws(() => T.ones([2]).add('x' as never), /add: argument 'other' expected a Tensor or a number, got 'x'/);
  });
});

test('integer scalars keep integer tensors integer; float scalars promote', () => {
  tidy(() => {
    assert.equal(T.arange(3).add(1).dtype, 'int64');
    assert.equal(T.arange(3).mul(0.5).dtype, 'float32');
    assert.equal(T.ones([2]).mul(2).dtype, 'float32');
  });
});

test('seeded generators reproduce; default generator state round-trips', () => {
  tidy(() => {
    const g1 = new T.Generator(42);
    const g2 = new T.Generator(42);
    assert.deepEqual(T.rand([4], { generator: g1 }).toArray(), T.rand([4], { generator: g2 }).toArray());
    T.manualSeed(3);
    const state = T.Generator.default().getState();
    const a = T.randn([5]).toArray();
    T.Generator.default().setState(state);
    assert.deepEqual(T.randn([5]).toArray(), a);
    const p = T.randperm(10).toFlatArray().sort((x, y) => x - y);
    assert.deepEqual(p, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

test('backward with an incoming gradient, noGrad, detach, autograd.grad', () => {
  tidy(() => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    x.mul(x).backward(tensor([1, 1, 2]));
    assert.deepEqual(x.grad!.toArray(), [2, 4, 12]);
    const y = T.noGrad(() => x.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(x.detach().requiresGrad, false);
    const [g] = T.grad([x.pow(3).sum()], [x]);
    assert.deepEqual(g!.toArray(), [3, 12, 27]);
  });
});

test('custom differentiable function: forward and backward in TypeScript', () => {
  tidy(() => {
    const double: T.CustomFunction = {
      forward: (ctx, [a]) => { ctx.saved.push(a!.mul(1)); return [a!.mul(2)]; },
      backward: (ctx, [g]) => [g!.mul(2).add(ctx.saved[0]!.mul(0))],
    };
    const x = tensor([1, 2], { requiresGrad: true });
    const [y] = T.applyFunction(double, [x]);
    assert.deepEqual(y!.toArray(), [2, 4]);
    y!.mul(tensor([1, 3])).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [2, 6]);
    const throwing: T.CustomFunction = {
      forward: (_ctx, [a]) => [a!.mul(1)],
      backward: () => { throw new Error('boom in backward'); },
    };
    const [z] = T.applyFunction(throwing, [x]);
    assert.throws(() => z!.sum().backward(), /boom in backward/);
  });
});

test('autocast runs convolutions in bfloat16 on CPU and restores float32 after', () => {
  tidy(() => {
    const x = T.randn([1, 2, 5, 5]);
    const w = T.randn([3, 2, 3, 3]);
    const inside = T.autocast('cpu', 'bfloat16', () => F.conv2d(x, w));
    assert.equal(inside.dtype, 'bfloat16');
    assert.equal(F.conv2d(x, w).dtype, 'float32');
  });
});

test('channels-last layout', () => {
  tidy(() => {
    const x = T.randn([2, 3, 4, 4]).contiguous('channels_last');
    assert.equal(x.isContiguous('channels_last'), true);
    assert.deepEqual(x.strides, [48, 1, 12, 3]);
  });
});

