// Weighted k-NN: edge cases beyond the reference fixtures (which the fixture runner checks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { tidy, tensor } from '../src/torch/index.js';
import { knnAccuracy, knnPredict } from '../src/eval/knn.js';
import { topkAccuracy } from '../src/eval/linear_probe.js';

test('k larger than the bank uses every bank entry; tiny banks work', () => {
  tidy(() => {
    const bank = tensor([[1, 0], [0, 1]]);
    const labels = tensor([0, 1], { dtype: 'int64' });
    const queries = tensor([[1, 0.1], [0.1, 1]]);
    const pred = knnPredict(bank, labels, queries, { k: [1, 50], numClasses: 2 });
    assert.deepEqual(Array.from(pred.get(1)!), [0, 1]);
    assert.deepEqual(Array.from(pred.get(50)!), [0, 1]);
  });
});

test('chunked similarity blocks give the same answer as one block', () => {
  tidy(() => {
    T.manualSeed(3);
    const bank = T.randn([300, 8]);
    const labels = T.randint(0, 7, [300]);
    const queries = T.randn([101, 8]);
    const qLabels = T.randint(0, 7, [101]);
    const whole = knnAccuracy(bank, labels, queries, qLabels, { k: [5, 20], numClasses: 7 });
    const chunked = knnAccuracy(bank, labels, queries, qLabels, { k: [5, 20], numClasses: 7, maxBlockBytes: 4 * 300 * 7 });
    assert.deepEqual(chunked, whole);
  });
});

test('ties go to the lower class index', () => {
  tidy(() => {
    const bank = tensor([[1, 0], [1, 0]]);
    const labels = tensor([3, 1], { dtype: 'int64' });
    const pred = knnPredict(bank, labels, tensor([[1, 0]]), { k: [2], numClasses: 4 });
    assert.equal(pred.get(2)![0], 1);
  });
});

test('bad options name the option', () => {
  tidy(() => {
    const bank = tensor([[1, 0]]);
    const labels = tensor([0], { dtype: 'int64' });
    assert.throws(() => knnPredict(bank, labels, bank, { k: [0], numClasses: 2 }), /knn: 'k' expected a non-empty list/);
    assert.throws(() => knnPredict(bank, labels, bank, { k: [1], numClasses: 0 }), /knn: 'numClasses'/);
    assert.throws(() => knnPredict(bank, labels, bank, { k: [1], numClasses: 2, temperature: 0 }), /knn: 'temperature'/);
  });
});

test('top-1 and top-5 accuracy', () => {
  tidy(() => {
    const logits = tensor([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]]);
    const labels = tensor([5, 5], { dtype: 'int64' });
    assert.deepEqual(topkAccuracy(logits, labels, [1, 5]), [50, 50]);
    assert.deepEqual(topkAccuracy(logits, tensor([0, 0], { dtype: 'int64' }), [1, 5, 6]), [50, 50, 100]);
  });
});
