import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CosineWithWarmup, batchesPerEpoch, linearProbeLearningRate, multiStepLr, pretrainSchedule,
  scaledLearningRate,
} from '../src/train/schedule.js';

const fixtures = process.env.GROCO_REFERENCE_FIXTURES
  ?? fileURLToPath(new URL('../../test/fixtures/reference/', import.meta.url));

interface CosineCase {
  init_lr: number;
  epochs: number;
  warmup_epochs: number;
  lr_by_step: [number, number][];
}

function close(actual: number, expected: number, what: string): void {
  // float64 on both sides; the only differences are in the last bits of cos and the divisions
  assert.ok(Math.abs(actual - expected) <= 1e-12 * Math.max(1, Math.abs(expected)),
    `${what}: got ${actual}, the reference ${expected}`);
}

test('the cosine schedule with warm-up matches the reference scheduler step by step', () => {
  const fixture = JSON.parse(readFileSync(join(fixtures, 'schedule_larc.json'), 'utf8'));
  const reference: CosineCase = fixture.cosine_with_warmup;
  const schedule = new CosineWithWarmup({
    initLr: reference.init_lr, total: reference.epochs, warmup: reference.warmup_epochs,
  });
  assert.ok(reference.lr_by_step.length > 10);
  const pastTheEnd = reference.lr_by_step.filter(([step]) => step >= reference.epochs);
  assert.ok(pastTheEnd.length > 0, 'the fixture covers the wrap');
  for (const [step, lr] of reference.lr_by_step) close(schedule.lrAt(step), lr, `step ${step}`);
});

test('learning-rate scaling: linear, sqrt and none', () => {
  // the reference ImageNet configs: 0.75 linear at batch 1024, 0.075 sqrt at batch 1024
  assert.equal(scaledLearningRate(0.75, 1024, 'linear'), 24);
  assert.equal(scaledLearningRate(0.75, 256, 'linear'), 6);
  close(scaledLearningRate(0.075, 1024, 'sqrt'), 2.4, 'sqrt');
  close(scaledLearningRate(0.1875, 1024, 'sqrt'), 6, 'sqrt');
  assert.equal(scaledLearningRate(0.3, 4096, 'none'), 0.3);
  assert.equal(linearProbeLearningRate(0.1, 4096), 1.6);
  assert.equal(linearProbeLearningRate(0.1, 256), 0.1);
});

test('schedule edge cases: no warm-up, warm-up longer than the run, the wrap', () => {
  const plain = new CosineWithWarmup({ initLr: 2, total: 10 });
  assert.equal(plain.lrAt(0), 2);
  close(plain.lrAt(5), 1, 'half way');
  assert.equal(plain.lrAt(10), 2);
  assert.equal(plain.lrAt(13), plain.lrAt(3));

  const warm = new CosineWithWarmup({ initLr: 1, total: 4, warmup: 10 });
  assert.deepEqual([0, 1, 2, 3, 4].map((s) => warm.lrAt(s)), [0, 0.1, 0.2, 0.3, 0]);

  const fractional = new CosineWithWarmup({ initLr: 1, total: 100, warmup: 2.5 });
  assert.equal(fractional.lrAt(2), 0.8);
  close(fractional.lrAt(3), 0.5 * (1 + Math.cos((Math.PI * 0.5) / 97.5)), 'after warm-up');

  const floor = new CosineWithWarmup({ initLr: 1, total: 10, lrMin: 0.1 });
  close(floor.lrAt(5), 0.55, 'with lr_min');
});

test('multi-step decay as torch.optim.lr_scheduler.MultiStepLR', () => {
  const options = { initLr: 1, milestones: [3, 6], gamma: 0.1 };
  assert.deepEqual([0, 2, 3, 5, 6, 9].map((e) => multiStepLr(e, options)),
    [1, 1, 0.1, 0.1, 0.1 ** 2, 0.1 ** 2]);
});

test('batches per epoch divide batch and dataset over ranks and drop the partial batch', () => {
  assert.equal(batchesPerEpoch(1280000, 1024), 1250);
  assert.equal(batchesPerEpoch(1280000, 1024, 8), 1250);
  assert.equal(batchesPerEpoch(50000, 4096, 3), 12);           // 16666 samples, batches of 1365
  assert.equal(batchesPerEpoch(40000, 256), 156);
  assert.equal(batchesPerEpoch(100, 256), 0);
});

test('the pretraining schedule counts epochs and warm-up in steps', () => {
  const schedule = pretrainSchedule({
    baseLearningRate: 0.75, scaling: 'linear', batchSize: 1024, epochs: 100, warmupEpochs: 1,
    stepsPerEpoch: 1250,
  });
  assert.equal(schedule.initLr, 24);
  assert.equal(schedule.total, 125000);
  assert.equal(schedule.warmup, 1250);
  assert.equal(schedule.lrAt(625), 12);
  assert.equal(schedule.lrAt(1250), 24);
});

test('bad arguments name the function, the argument and the value', () => {
  const cases: [() => unknown, RegExp][] = [
    [() => scaledLearningRate(0, 10, 'linear'),
      /^RangeError: scaledLearningRate: base: expected a number > 0, got 0$/],
    [() => scaledLearningRate(1, 2.5, 'sqrt'),
      /scaledLearningRate: batchSize: expected an integer >= 1, got 2.5/],
    [() => scaledLearningRate(1, 2, 'cube' as never),
      /scaledLearningRate: scaling: expected one of linear, sqrt, none, got cube/],
    [() => new CosineWithWarmup({ initLr: 1, total: 0 }),
      /CosineWithWarmup: total: expected an integer >= 1, got 0/],
    [() => new CosineWithWarmup({ initLr: 1, total: 5, warmup: -1 }),
      /CosineWithWarmup: warmup: expected a number >= 0, got -1/],
    [() => new CosineWithWarmup({ initLr: 1, total: 5 }).lrAt(-1),
      /CosineWithWarmup\.lrAt: step: expected an integer >= 0, got -1/],
    [() => batchesPerEpoch(100, 2, 4),
      /batchesPerEpoch: batchSize: expected an integer >= worldSize \(4\), got 2/],
    [() => pretrainSchedule({
      baseLearningRate: 1, scaling: 'none', batchSize: 8, epochs: 1, warmupEpochs: 0,
      stepsPerEpoch: 0,
    }), /pretrainSchedule: stepsPerEpoch: expected an integer >= 1, got 0/],
  ];
  for (const [fn, message] of cases) assert.throws(fn, message);
});
