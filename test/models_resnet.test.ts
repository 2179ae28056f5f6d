// ResNets against torchvision (the PyTorch peer): seeded initialisation, state dicts, outputs in
// train and eval mode, batch-norm statistics, SGD steps, channels-last bfloat16, and memory.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  F, autocast, liveTensorCount, manualSeed, noGrad, optim, randn, setNumThreads, tidy,
  type Tensor,
} from '../src/torch/index.js';
import {
  resnet, resnet18, resnet50, resnetSpecs, type ResNet, type ResNetName,
} from '../src/models/index.js';
import {
  disposeAll, readDump, readDumpBytes, relativeError, runModelsPeer,
} from './helpers/models_peer.js';

// Both sides run the same libtorch kernels in the same order, so float32 results have come out
// bit-identical here (worst errors are printed); the tolerances leave room for another libtorch.
const OUTPUT_TOLERANCE = 1e-4;
const STATE_TOLERANCE = 1e-4;
const LOSS_TOLERANCE = 1e-5;
const BF16_TOLERANCE = 2e-2;

// One intra-op thread on both sides: fast on a busy machine and the same reduction order.
const THREADS = 1;
setNumThreads(THREADS);

const SGD = { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
const STEPS = 3;
const root = mkdtempSync(join(tmpdir(), 'groco-models-'));
after(() => rmSync(root, { recursive: true, force: true }));

function runJob(arch: ResNetName, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    command: 'resnet_run', dir: join(root, `${arch}${extra.small_images ? '_small' : ''}`), arch,
    seed: 0, zero_init_residual: false, input_shape: [2, 3, 64, 64], threads: THREADS,
    lr: SGD.lr, momentum: SGD.momentum, weight_decay: SGD.weightDecay, steps: STEPS, ...extra,
  };
}

const jobs = [
  runJob('resnet18', { bf16_channels_last: true }),
  runJob('resnet50'),
  { command: 'resnet_keys', archs: Object.keys(resnetSpecs) },
  runJob('resnet18',
    { small_images: true, in_channels: 1, input_shape: [2, 1, 28, 28], eval_only: true }),
];
let answers: unknown[] | undefined;

/** The peer's answer to job `i`; the peer runs once, on first use, for the whole file. */
function peer<T>(i: number): T {
  answers ??= runModelsPeer(jobs as never);
  return answers[i] as T;
}

function assertClose(name: string, ours: Tensor, theirs: Tensor, tolerance: number): number {
  assert.deepEqual(ours.shape, theirs.shape, `${name}: shape`);
  const error = relativeError(ours, theirs);
  assert.ok(error <= tolerance, `${name}: relative error ${error} > ${tolerance}`);
  return error;
}

function assertStateClose(label: string, model: ResNet, expected: Map<string, Tensor>): number {
  const own = model.stateDict();
  let worst = 0;
  for (const [key, theirs] of expected) {
    const ours = own.get(key);
    assert.ok(ours !== undefined, `${label}: our model has no '${key}'`);
    if (theirs.dtype === 'int64') {
      assert.equal(ours.item(), theirs.item(), `${label}: ${key}`);
      continue;
    }
    worst = Math.max(worst, assertClose(`${label}: ${key}`, ours, theirs, STATE_TOLERANCE));
  }
  return worst;
}

function assertRelative(name: string, ours: number, theirs: number, tolerance: number): number {
  const error = Math.abs(ours - theirs) / Math.max(Math.abs(theirs), 1e-12);
  assert.ok(error <= tolerance, `${name}: ours ${ours}, PyTorch ${theirs}`);
  return error;
}

/** Eval output, then a train forward and backward, channels-last under bfloat16 autocast. */
function checkBf16ChannelsLast(arch: ResNetName, init: Map<string, Tensor>, io: Map<string, Tensor>,
  peerLoss: number, errors: Record<string, number>): void {
  const model = resnet(arch);
  model.loadStateDict(init);
  model.toChannelsLast();
  tidy(() => {
    const x = io.get('x')!.contiguous('channels_last');
    model.eval();
    const y = noGrad(() => autocast('cpu', 'bfloat16', () => model.forward(x)));
    assert.equal(y.dtype, 'bfloat16');
    errors.bf16Eval = assertClose('bf16 eval output', y.float(), io.get('y_eval_bf16')!,
      BF16_TOLERANCE);

    model.train();
    const features = autocast('cpu', 'bfloat16', () => model.forward(x));
    const loss = F.mseLoss(features.float(), io.get('target')!);
    loss.backward();
    errors.bf16Loss = assertRelative('bf16 loss', loss.item(), peerLoss, BF16_TOLERANCE);
    const grad = model.conv1.param('weight').grad!;
    errors.bf16Grad = assertClose('bf16 conv1 gradient', grad.contiguous(),
      io.get('grad_conv1_bf16')!, BF16_TOLERANCE);
  });
  model.dispose();
}

function compareWithTorchvision(arch: ResNetName, job: number): void {
  const answer = peer<{ losses: number[]; bf16_loss?: number }>(job);
  const dir = jobs[job]!.dir as string;

  // the same seed draws the same initial weights, bit for bit, in the same key order
  manualSeed(0);
  const seeded = resnet(arch, { zeroInitResidual: false });
  const initBytes = readDumpBytes(join(dir, 'init'));
  assert.deepEqual([...seeded.stateDict().keys()], [...initBytes.keys()]);
  for (const [key, t] of seeded.stateDict()) {
    const bytes = Buffer.from(t.data().buffer);
    assert.ok(bytes.equals(initBytes.get(key)!),
      `${arch}: initial '${key}' differs from torchvision`);
  }
  seeded.dispose();

  // torchvision's state dict loads into a model initialised otherwise
  manualSeed(1);
  const model = resnet(arch, { zeroInitResidual: true });
  const init = readDump(join(dir, 'init'));
  model.loadStateDict(init);
  const io = readDump(join(dir, 'io'));
  const x = io.get('x')!;
  const errors: Record<string, number> = {};
  if (answer.bf16_loss !== undefined) {
    checkBf16ChannelsLast(arch, init, io, answer.bf16_loss, errors);
  }
  disposeAll(init);

  model.eval();
  tidy(() => {
    errors.eval = assertClose('eval output', noGrad(() => model.forward(x)), io.get('y_eval')!,
      OUTPUT_TOLERANCE);
  });

  model.train();
  tidy(() => {
    const y = noGrad(() => model.forward(x));
    errors.train = assertClose('train output', y, io.get('y_train')!, OUTPUT_TOLERANCE);
  });
  const buffers = readDump(join(dir, 'after_train_forward'));
  errors.runningStats = assertStateClose('after a train forward', model, buffers);
  disposeAll(buffers);

  const optimizer = new optim.SGD(model.parameters(), SGD);
  for (let step = 0; step < STEPS; step++) {
    optimizer.zeroGrad();
    tidy(() => {
      const loss = F.mseLoss(model.forward(x), io.get('target')!);
      loss.backward();
      errors[`loss${step}`] = assertRelative(`loss ${step}`, loss.item(), answer.losses[step]!,
        LOSS_TOLERANCE);
    });
    optimizer.step();
  }
  const stepped = readDump(join(dir, 'after_steps'));
  errors.afterSteps = assertStateClose(`after ${STEPS} SGD steps`, model, stepped);
  disposeAll(stepped);

  model.eval();
  tidy(() => {
    errors.evalAfter = assertClose('eval output after the steps', noGrad(() => model.forward(x)),
      io.get('y_eval_after')!, OUTPUT_TOLERANCE);
  });
  console.log(`${arch}: worst relative errors ${JSON.stringify(errors)}`);

  optimizer.dispose();
  model.dispose();
  disposeAll(io);
}

test('resnet18: torchvision init and state dict, train/eval outputs, SGD steps, bf16', () => {
  compareWithTorchvision('resnet18', 0);
});

test('resnet50: torchvision init and state dict, train/eval outputs, SGD steps', () => {
  compareWithTorchvision('resnet50', 1);
});

test('keys and shapes equal torchvision for every depth', () => {
  const expected = peer<Record<string, [string, number[]][]>>(2);
  for (const arch of Object.keys(resnetSpecs) as ResNetName[]) {
    const model = resnet(arch);
    const ours = [...model.stateDict()].map(([k, t]) => [k, t.shape]);
    assert.deepEqual(ours, expected[arch], arch);
    assert.equal(model.featureDim, arch === 'resnet18' || arch === 'resnet34' ? 512 : 2048);
    model.dispose();
  }
});

test('small-image variant: a 3x3 stride-1 stem, no max-pool, any input channels', () => {
  const dir = jobs[3]!.dir as string;
  peer(3);
  const model = resnet18({ smallImages: true, inChannels: 1 });
  assert.deepEqual(model.conv1.param('weight').shape, [64, 1, 3, 3]);
  assert.equal(model.maxpool, null);
  const init = readDump(join(dir, 'init'));
  model.loadStateDict(init);
  disposeAll(init);
  const io = readDump(join(dir, 'io'));
  model.eval();
  tidy(() => {
    const y = noGrad(() => model.forward(io.get('x')!));
    console.log(`small resnet18: eval error ${assertClose('small eval', y, io.get('y_eval')!,
      OUTPUT_TOLERANCE)}`);
  });
  disposeAll(io);
  model.dispose();

  tidy(() => {
    const narrow = resnet18({ smallImages: true, inChannels: 1, width: 16 });
    assert.equal(narrow.featureDim, 128);
    assert.deepEqual(narrow.conv1.param('weight').shape, [16, 1, 3, 3]);
    assert.deepEqual(narrow.forward(randn([2, 1, 28, 28])).shape, [2, 128]);
    assert.deepEqual(narrow.forward(randn([2, 1, 64, 64])).shape, [2, 128]);
    narrow.dispose();

    const wide = resnet50({ smallImages: true, width: 8 });
    assert.equal(wide.featureDim, 256);
    assert.deepEqual(wide.stateDict().get('layer4.0.conv3.weight')!.shape, [256, 64, 1, 1]);
    assert.deepEqual(wide.forward(randn([3, 3, 32, 32])).shape, [3, 256]);
    wide.dispose();
  });
});

test('zero_init_residual zeroes the last batch norm of every residual branch', () => {
  const model = resnet50({ width: 8 });
  for (const [key, t] of model.stateDict()) {
    if (!/\.bn\d\.weight$|downsample\.1\.weight$/.test(key)) continue;
    const expected = key.endsWith('bn3.weight') ? 0 : 1;
    assert.ok(t.toFlatArray().every((v) => v === expected), key);
  }
  model.dispose();
  const basic = resnet18({ width: 8, zeroInitResidual: false });
  assert.ok(basic.stateDict().get('layer1.0.bn2.weight')!.toFlatArray().every((v) => v === 1));
  basic.dispose();
});

test('bad inputs and options are refused with clear messages', () => {
  const model = resnet18({ width: 4 });
  tidy(() => {
    assert.throws(() => model.forward(randn([2, 1, 32, 32])), /expected images with 3 channels/);
    assert.throws(() => model.forward(randn([3, 32, 32])),
      /expected images of shape \(N, C, H, W\)/);
  });
  model.dispose();
  assert.throws(() => resnet18({ width: 0 }), /option 'width' expected an integer >= 1, got 0/);
  assert.throws(() => resnet('resnet51' as ResNetName),
    /unknown architecture 'resnet51'; known: resnet18/);
});

test('forward frees its intermediates; training steps keep the live-tensor count', () => {
  manualSeed(0);
  const before = liveTensorCount();
  const model = resnet18({ smallImages: true, width: 8 });
  const optimizer = new optim.SGD(model.parameters(), SGD);
  const x = randn([4, 3, 32, 32]);
  const target = randn([4, 64]);

  // no scope here: whatever the forward leaves behind would show in the count
  const step = (): void => {
    optimizer.zeroGrad();
    const start = liveTensorCount();
    const y = model.forward(x);
    assert.equal(liveTensorCount(), start + 1, 'only the output of a forward stays alive');
    const loss = F.mseLoss(y, target);
    loss.backward();
    y.dispose();
    loss.dispose();
    optimizer.step();
  };
  step();
  const start = liveTensorCount();
  for (let i = 0; i < 4; i++) step();
  assert.equal(liveTensorCount(), start, 'float32 steps');
  optimizer.dispose();

  // channels-last parameters are new tensors: a new optimizer
  model.toChannelsLast();
  const xcl = x.contiguous('channels_last');
  const clOptimizer = new optim.SGD(model.parameters(), SGD);
  const clStep = (): void => {
    clOptimizer.zeroGrad();
    tidy(() => {
      const y = autocast('cpu', 'bfloat16', () => model.forward(xcl));
      F.mseLoss(y.float(), target).backward();
    });
    clOptimizer.step();
  };
  clStep();
  const startCl = liveTensorCount();
  for (let i = 0; i < 3; i++) clStep();
  assert.equal(liveTensorCount(), startCl, 'channels-last bfloat16 steps');

  model.zeroGrad();
  clOptimizer.dispose();
  model.dispose();
  for (const t of [x, xcl, target]) t.dispose();
  assert.equal(liveTensorCount(), before, 'everything freed');
});
