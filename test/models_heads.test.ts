// The projection head against the reference's module (PyTorch peer), the linear classifier, and
// the registry that turns a config's names into models.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  F, manualSeed, noGrad, optim, setNumThreads, tensor, tidy, type Tensor,
} from '../src/torch/index.js';
import {
  LinearClassifier, ProjectionHead, ResNet, architecture, architectureNames, createEncoder,
  createProjection, trainableParameters,
} from '../src/models/index.js';
import { disposeAll, readDump, relativeError, runModelsPeer } from './helpers/models_peer.js';

// Same kernels on both sides; results have come out bit-identical (the errors are printed).
const TOLERANCE = 1e-5;
const THREADS = 1;
setNumThreads(THREADS);

const SGD = { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 };
const STEPS = 3;
const root = mkdtempSync(join(tmpdir(), 'groco-heads-'));
after(() => rmSync(root, { recursive: true, force: true }));

const heads = [
  { numLayers: 3, outputDim: 16, batchNormFirst: false },
  { numLayers: 2, outputDim: 8, batchNormFirst: true },
];
const jobs = heads.map((h, i) => ({
  command: 'projection_run', dir: join(root, `head${i}`), seed: i, input_dim: 32,
  num_layers: h.numLayers, output_dim: h.outputDim, batch_norm_first: h.batchNormFirst, batch: 8,
  lr: SGD.lr, momentum: SGD.momentum, weight_decay: SGD.weightDecay, steps: STEPS,
  threads: THREADS,
}));
let answers: unknown[] | undefined;

function peer<T>(i: number): T {
  answers ??= runModelsPeer(jobs);
  return answers[i] as T;
}

function assertClose(name: string, ours: Tensor, theirs: Tensor): number {
  assert.deepEqual(ours.shape, theirs.shape, `${name}: shape`);
  const error = relativeError(ours, theirs);
  assert.ok(error <= TOLERANCE, `${name}: relative error ${error} > ${TOLERANCE}`);
  return error;
}

for (const [i, options] of heads.entries()) {
  test(`projection head ${JSON.stringify(options)} matches the reference's, 3 SGD steps`, () => {
    const answer = peer<{ losses: number[]; trainable: number }>(i);
    const dir = jobs[i]!.dir;
    const head = new ProjectionHead(32, options);
    const init = readDump(join(dir, 'init'));
    const ours = [...head.stateDict()].map(([k, t]) => [k, t.shape]);
    assert.deepEqual(ours, [...init].map(([k, t]) => [k, t.shape]), 'keys and shapes');
    head.loadStateDict(init);

    // the output bias exists, is frozen, and is not handed to the optimizer
    const bias = head.output.param('bias');
    assert.equal(bias.requiresGrad, false);
    const params = trainableParameters(head);
    assert.equal(params.length, answer.trainable);
    assert.ok(!params.includes(bias));

    const io = readDump(join(dir, 'io'));
    const optimizer = new optim.SGD(params, SGD);
    let worst = 0;
    for (let step = 0; step < STEPS; step++) {
      optimizer.zeroGrad();
      tidy(() => {
        const y = head.forward(io.get('x')!);
        worst = Math.max(worst, assertClose(`output ${step}`, y, io.get(`y${step}`)!));
        const loss = F.mseLoss(y, io.get('target')!);
        loss.backward();
        const error = Math.abs(loss.item() - answer.losses[step]!) / answer.losses[step]!;
        assert.ok(error <= TOLERANCE, `loss ${step}: ${loss.item()} vs ${answer.losses[step]}`);
      });
      optimizer.step();
    }
    assert.equal(head.output.param('bias').grad, null);

    const stepped = readDump(join(dir, 'after_steps'));
    const own = head.stateDict();
    for (const [key, theirs] of stepped) {
      if (theirs.dtype === 'int64') assert.equal(own.get(key)!.item(), theirs.item(), key);
      else worst = Math.max(worst, assertClose(key, own.get(key)!, theirs));
    }
    assert.ok(own.get(`projection.${options.batchNormFirst ? 4 : 6}.bias`)!
      .allclose(init.get(`projection.${options.batchNormFirst ? 4 : 6}.bias`)!, 0, 0));
    head.eval();
    tidy(() => {
      const y = noGrad(() => head.forward(io.get('x')!));
      worst = Math.max(worst, assertClose('eval output', y, io.get('y_eval')!));
    });
    console.log(`projection head ${i}: worst relative error ${worst}`);

    for (const m of [init, io, stepped]) disposeAll(m);
    optimizer.dispose();
    head.dispose();
  });
}

test('the frozen bias stays frozen through dtype and layout changes', () => {
  const head = new ProjectionHead(16, { outputDim: 4 });
  head.to('float64');
  assert.equal(head.output.param('bias').dtype, 'float64');
  assert.equal(head.output.param('bias').requiresGrad, false);
  assert.equal(head.output.param('weight').requiresGrad, true);
  head.dispose();
  assert.throws(() => new ProjectionHead(16, { numLayers: 0 }),
    /ProjectionHead: argument 'numLayers' expected an integer >= 1, got 0/);
});

test('linear classifier: N(0, 0.01) weights, zero bias, the reference key names', () => {
  manualSeed(0);
  const classifier = new LinearClassifier(2048, 1000);
  const state = classifier.stateDict();
  assert.deepEqual([...state.keys()], ['projection.weight', 'projection.bias']);
  tidy(() => {
    const w = state.get('projection.weight')!;
    assert.deepEqual(w.shape, [1000, 2048]);
    const std = w.var().sqrt().item();
    assert.ok(Math.abs(std - 0.01) < 1e-4, `std ${std}`);
    assert.ok(Math.abs(w.mean().item()) < 1e-4);
    assert.ok(state.get('projection.bias')!.eq(0).all().item() === 1);
    const features = tensor(new Float32Array(2 * 2048), { shape: [2, 2048] });
    assert.deepEqual(classifier.forward(features).shape, [2, 1000]);
  });
  classifier.dispose();
});

test('registry: architecture names, config sections, unknown names list the known ones', () => {
  assert.deepEqual(architectureNames(),
    ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152']);
  const small = architecture('resnet18')({ width: 4 });
  assert.ok(small instanceof ResNet);
  assert.equal(small.featureDim, 32);
  small.dispose();
  assert.throws(() => architecture('vit_b_16'),
    /unknown architecture 'vit_b_16'; known: resnet18, resnet34, resnet50, resnet101, resnet152/);

  const section = {
    type: 'RegularEncoder',
    args: { arch: 'resnet18', small_images: true, in_channels: 1, width: 8 },
  };
  const encoder = createEncoder(section);
  assert.equal(encoder.featureDim, 64);
  const keys = [...encoder.stateDict().keys()];
  assert.equal(keys[0], 'encoder.conv1.weight');
  assert.deepEqual(encoder.stateDict().get('encoder.conv1.weight')!.shape, [8, 1, 3, 3]);

  // a data-parallel save (`module.encoder.*`) loads
  const saved = new Map([...encoder.stateDict()].map(([k, t]) => [`module.${k}`, t.clone()]));
  const twin = createEncoder(section);
  twin.loadStateDict(saved);
  assert.ok(twin.stateDict().get('encoder.layer4.1.conv2.weight')!
    .allclose(encoder.stateDict().get('encoder.layer4.1.conv2.weight')!, 0, 0));
  disposeAll(saved);
  twin.dispose();

  const projection = createProjection(
    { type: 'RegularProjection', args: { num_layers: 2, output_dim: 8 } }, encoder.featureDim);
  assert.deepEqual([...projection.stateDict().keys()], [
    'projection.0.weight', 'projection.1.weight', 'projection.1.bias', 'projection.1.running_mean',
    'projection.1.running_var', 'projection.1.num_batches_tracked', 'projection.3.weight',
    'projection.3.bias', 'projection.4.running_mean', 'projection.4.running_var',
    'projection.4.num_batches_tracked',
  ]);
  projection.dispose();
  encoder.dispose();

  assert.throws(() => createEncoder({ type: 'Encoder', args: { arch: 'resnet18' } }),
    /unknown encoder type 'Encoder'; known: RegularEncoder/);
  assert.throws(() => createEncoder({ type: 'RegularEncoder', args: { arch: 'resnet19' } }),
    /unknown architecture 'resnet19'; known: resnet18/);
  assert.throws(() => createProjection({ type: 'MLP', args: {} }, 8),
    /unknown projection type 'MLP'; known: RegularProjection/);
});
