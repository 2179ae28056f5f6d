import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError, IMAGENET_MEAN, checkConfig, configPurpose, resolvePrecision, validateEvalConfig,
  validatePretrainConfig,
} from '../src/config/index.js';

// a small but complete pretraining config, as a YAML file would parse
function pretrain(): Record<string, any> {
  const loader = (extra: Record<string, unknown>) => ({
    type: 'web_dataloader',
    args: { shards: 'x-{000000..000003}.tar', dataset_size: 1000, shuffle: 100, num_workers: 2,
      batch_size: 64, ...extra },
  });
  return {
    train_dataloader: loader({ transform_type: 'dino', n_augs: 2 }),
    valid_dataloader: [
      loader({ train: true, transform_type: 'linear_prob' }),
      loader({ train: false }),
    ],
    encoder: { type: 'RegularEncoder', args: { arch: 'resnet18' } },
    projection: { type: 'RegularProjection', args: { num_layers: 3, output_dim: 256 } },
    loss: { type: 'GroCo', args: { n_augs: 2, topk_neg: 10, steepness: 1 } },
    base_learning_rate: 0.75,
    warmup_epochs: 1,
    optimizer: { type: 'SGD', args: { momentum: 0.9, weight_decay: 1e-6 } },
    trainer: { epochs: 3 },
    evaluator: [
      { type: 'KNNEvaluator', args: { k: [20], num_classes: 10 } },
      { type: 'LinearProbingEvaluator', args: { hyperparams: [probe()] } },
    ],
  };
}

function probe(): Record<string, unknown> {
  return {
    log_name: '_regular', apply_evaluator_after_epochs: [2], epochs: 5, base_learning_rate: 0.1,
    batch_size: 64, optimizer: { type: 'SGD', args: { momentum: 0.9 } }, optimizer_use_larc: true,
    lr_scheduler: { type: 'CustomCosineSchedulerWithWarmup', args: { epochs: 5 } },
  };
}

function problemsOf(raw: unknown, purpose: 'pretrain' | 'eval' = 'pretrain'): string[] {
  const { config, problems } = checkConfig(raw, purpose);
  assert.equal(config, null, 'expected the config to be refused');
  return problems.map((p) => `${p.path.join('.')}: ${p.message}`);
}

test('a valid config comes back typed with every default filled in', () => {
  const config = validatePretrainConfig(pretrain());
  assert.equal(config.name, 'groco');
  assert.equal(config.learning_rate_scaling, 'linear');
  assert.equal(config.optimizer_use_larc, false);
  assert.equal(config.seed, null);
  assert.equal(config.save_dir, './output');
  assert.deepEqual(config.trainer, {
    epochs: 3, mixed_precision: false, init_val: false, save_latest: true, save_period: null,
    log_step: 50, clip_grad: null, max_steps: null,
  });
  assert.deepEqual(config.runtime,
    { device: 'cpu', threads: null, precision: 'auto', channels_last: false });
  assert.deepEqual(config.optimizer.args,
    { momentum: 0.9, weight_decay: 1e-6, dampening: 0, nesterov: false });
  assert.deepEqual(config.encoder.args,
    { arch: 'resnet18', small_images: false, in_channels: 3, width: 64 });

  const train = config.train_dataloader.args;
  assert.equal(train.train, true);
  assert.equal(train.image_size, 224);
  assert.equal(train.resize, 256);
  assert.equal(train.small_crop_size, 96);
  assert.equal(train.channels, 3);
  assert.deepEqual(train.mean, [...IMAGENET_MEAN]);
  assert.deepEqual(train.blur_sigma, [0.1, 2.0]);
  assert.equal(config.valid_dataloader[1].args.transform_type, 'val');
  assert.equal(config.valid_dataloader[1].args.n_augs, 1);

  assert.deepEqual(config.loss, {
    type: 'GroCo', args: { n_augs: 2, n_pos_augs: 2, topk_neg: 10, steepness: 1, stop_grad: true },
  });
  const knn = config.evaluator[0];
  assert.equal(knn.type, 'KNNEvaluator');
  if (knn.type === 'KNNEvaluator') {
    assert.equal(knn.args.temperature, 0.07);
    assert.equal(knn.args.max_feature_bank, null);
    assert.equal(knn.args.apply_evaluator_per_epoch, 1);
  }
});

test('an out-of-range value names its path, what was expected and what came', () => {
  const raw = pretrain();
  raw.loss.args.topk_neg = -1;
  assert.throws(() => validatePretrainConfig(raw, { source: 'my.yaml' }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.source, 'my.yaml');
    assert.deepEqual(error.problems.map((p) => p.path), [['loss', 'args', 'topk_neg']]);
    assert.match(error.message, /^invalid config my\.yaml \(1 problem\):/);
    assert.match(error.message, /my\.yaml: loss\.args\.topk_neg: expected an integer >= 1, got -1/);
    return true;
  });
});

test('a wrong type, a missing key and an unknown key each name their path', () => {
  let raw = pretrain();
  raw.trainer.epochs = 'ten';
  assert.deepEqual(problemsOf(raw), ['trainer.epochs: expected an integer >= 1, got "ten"']);

  raw = pretrain();
  delete raw.trainer.epochs;
  assert.deepEqual(problemsOf(raw), ['trainer.epochs: missing (required)']);

  raw = pretrain();
  delete raw.loss;
  assert.deepEqual(problemsOf(raw), ['loss: missing (required)']);

  raw = pretrain();
  raw.loss.args.topk_negs = 5;
  const [unknown] = problemsOf(raw);
  assert.match(unknown,
    /^loss\.args\.topk_negs: unknown key \(known keys here: n_augs, n_pos_augs, topk_neg,/);
  assert.match(unknown, /did you mean "topk_neg"\?$/);

  raw = pretrain();
  raw.valid_dataloader[1].args.batch_size = 0.5;
  assert.deepEqual(problemsOf(raw),
    ['valid_dataloader.1.args.batch_size: expected an integer >= 1, got 0.5']);

  raw = pretrain();
  raw.trainer = 'fast';
  assert.match(problemsOf(raw)[0],
    /^trainer: expected a mapping with keys epochs, .*, got "fast"$/);
});

test('an unknown type lists the known ones and suggests the closest', () => {
  const raw = pretrain();
  raw.loss.type = 'Groco';
  assert.deepEqual(problemsOf(raw), ['loss.type: expected one of GroCo, NT_Xent, '
    + 'NT_XentWithMoreNegatives, NT_XentAllCombinations, got "Groco"; did you mean "GroCo"?']);

  const other = pretrain();
  other.encoder.args.arch = 'resnet20';
  assert.match(problemsOf(other)[0],
    /^encoder\.args\.arch: expected one of "resnet18", .*"resnet152", got "resnet20"$/);
});

test('every problem is reported at once, rules across sections included', () => {
  const raw = pretrain();
  raw.trainer.epochs = 0;
  raw.train_dataloader.args.batchsize = 64;
  raw.optimizer.args.momentum = -0.9;
  raw.encoder.args.in_channels = 1;          // no loader gives one channel
  raw.seed = 'lucky';
  const problems = problemsOf(raw);
  assert.deepEqual(problems.sort(), [
    'optimizer.args.momentum: expected a number >= 0, got -0.9',
    'seed: expected an integer >= 0, got "lucky"',
    'train_dataloader.args.batchsize: unknown key (known keys here: shards, dataset_size, '
      + 'shuffle, batch_size, num_workers, train, transform_type, n_augs, image_size, resize, '
      + 'small_crop_size, channels, mean, std, blur_sigma); did you mean "batch_size"?',
    'trainer.epochs: expected an integer >= 1, got 0',
    'valid_dataloader.0.args.channels: expected 1 to match encoder.args.in_channels, got 3',
    'valid_dataloader.1.args.channels: expected 1 to match encoder.args.in_channels, got 3',
  ].sort());
});

test('views, losses and evaluators are checked against each other', () => {
  // each case: an edit of the valid config, the path it should be refused at, and why
  const cases: [(raw: Record<string, any>) => void, string, string][] = [
    [(r) => { r.loss.args.n_augs = 3; }, 'loss.args.n_augs',
      'expected 2 (train_dataloader.args.n_augs), got 3'],
    [(r) => { r.train_dataloader.args.n_augs = 5; r.loss.args.n_augs = 5; },
      'train_dataloader.args.n_augs', 'expected 2, 3, 4 for transform_type "dino", got 5'],
    [(r) => { r.train_dataloader.args.transform_type = 'dino_multicrop'; },
      'train_dataloader.args.n_augs', 'expected 8 for transform_type "dino_multicrop", got 2'],
    [(r) => { r.loss.args.topk_neg = 64; }, 'loss.args.topk_neg',
      'expected at most 63 (the negatives a batch of 64 leaves each anchor), got 64'],
    [(r) => { r.loss.args.n_pos_augs = 3; }, 'loss.args.n_pos_augs',
      'expected at most n_augs (2), got 3'],
    [(r) => { r.loss = { type: 'NT_Xent', args: {} }; r.train_dataloader.args.n_augs = 3; },
      'train_dataloader.args.n_augs',
      'expected 2: NT_Xent contrasts two views (NT_XentAllCombinations takes more), got 3'],
    [(r) => { r.evaluator[1].args.hyperparams[0].batch_size = 32; },
      'evaluator.1.args.hyperparams.0.batch_size',
      'expected 64 (valid_dataloader[0].args.batch_size), got 32'],
    [(r) => { r.valid_dataloader.pop(); }, 'valid_dataloader',
      'expected a list of 2 dataloaders (the training split for the evaluators, then the '
      + 'validation split), got 1'],
    [(r) => { r.train_dataloader.args.dataset_size = 10; }, 'train_dataloader.args.dataset_size',
      'expected at least batch_size (64) so that an epoch has a batch, got 10'],
    [(r) => { r.train_dataloader.args.batch_size = 1; r.loss.args.topk_neg = 1; },
      'train_dataloader.args.batch_size',
      'expected at least 2 (the losses contrast samples of a batch), got 1'],
    [(r) => { r.valid_dataloader[1].args.image_size = 32; r.valid_dataloader[1].args.resize = 28; },
      'valid_dataloader.1.args.resize', 'expected at least image_size (32), got 28'],
    [(r) => { r.train_dataloader.args.mean = [0.5]; }, 'train_dataloader.args.mean',
      'expected 3 value(s), one per channel, got 1'],
    [(r) => { r.train_dataloader.args.blur_sigma = [2, 0.1]; }, 'train_dataloader.args.blur_sigma',
      'expected [low, high] with 0 < low <= high, got [2, 0.1]'],
    [(r) => { r.optimizer.args.lr = 0.1; }, 'optimizer.args.lr',
      'not allowed: the learning rate comes from base_learning_rate and its scaling'],
    [(r) => { r.optimizer.args = { nesterov: true }; }, 'optimizer.args.nesterov',
      'needs momentum > 0 and dampening 0 (as torch.optim.SGD)'],
    [(r) => { r.runtime = { precision: 'float16' }; }, 'runtime.precision',
      'float16 needs a CUDA device; on CPU use bfloat16'],
    [(r) => { r.runtime = { device: 'gpu0' }; }, 'runtime.device',
      'expected "cpu", "cuda" or "cuda:<index>", got "gpu0"'],
    [(r) => {
      r.evaluator[1].args.hyperparams[0].lr_scheduler = {
        type: 'MultiStepLR', args: { milestones: [3, 2] },
      };
    }, 'evaluator.1.args.hyperparams.0.lr_scheduler.args.milestones',
    'expected increasing epochs, got [3, 2]'],
  ];
  for (const [edit, path, message] of cases) {
    const raw = pretrain();
    edit(raw);
    assert.deepEqual(problemsOf(raw), [`${path}: ${message}`]);
  }
});

test('the reference\'s conveniences: null n_pos_augs, a single hyper-parameter set', () => {
  const raw = pretrain();
  raw.loss.args = { n_augs: 2, n_pos_augs: null };
  raw.evaluator[1].args.hyperparams = probe();
  raw.runtime = null;
  const config = validatePretrainConfig(raw);
  assert.equal(config.loss.type === 'GroCo' && config.loss.args.n_pos_augs, 2);
  const linear = config.evaluator[1];
  assert.ok(linear.type === 'LinearProbingEvaluator' && linear.args.hyperparams.length === 1);
  assert.equal(config.runtime.device, 'cpu');
});

test('one-channel views default to ImageNet\'s statistics averaged over the channels', () => {
  const raw = pretrain();
  raw.encoder.args.in_channels = 1;
  for (const loader of [raw.train_dataloader, ...raw.valid_dataloader]) loader.args.channels = 1;
  const config = validatePretrainConfig(raw);
  assert.deepEqual(config.train_dataloader.args.mean, [(0.485 + 0.456 + 0.406) / 3]);
  assert.deepEqual(config.train_dataloader.args.std, [(0.229 + 0.224 + 0.225) / 3]);
});

test('an evaluation config needs only an encoder, the two loaders and an evaluator', () => {
  const full = pretrain();
  const raw = {
    encoder: full.encoder, valid_dataloader: full.valid_dataloader, evaluator: [full.evaluator[0]],
  };
  const config = validateEvalConfig(raw);
  assert.equal(config.loss, undefined);
  assert.equal('trainer' in config, false);
  assert.equal('learning_rate_scaling' in config, false);
  assert.equal(configPurpose(raw), 'eval');
  assert.equal(configPurpose(full), 'pretrain');

  assert.deepEqual(problemsOf({ ...raw, evaluator: [] }, 'eval'),
    ['evaluator: expected at least one KNNEvaluator or LinearProbingEvaluator, got none']);
  const withoutEncoder = { valid_dataloader: raw.valid_dataloader, evaluator: raw.evaluator };
  assert.deepEqual(problemsOf(withoutEncoder, 'eval'),
    ['encoder: missing (required)']);
  // training sections given to an evaluation are still checked
  assert.deepEqual(problemsOf({ ...raw, trainer: { epochs: -1 } }, 'eval'),
    ['trainer.epochs: expected an integer >= 1, got -1']);
});

test('the config must be a mapping', () => {
  assert.match(problemsOf([1, 2])[0],
    /^: expected a mapping with keys name, train_dataloader, .*, got a list of 2$/);
});

test('runtime.precision auto follows trainer.mixed_precision and the device', () => {
  const runtime = {
    device: 'cpu', threads: null, precision: 'auto', channels_last: false,
  } as const;
  assert.equal(resolvePrecision(runtime, false), 'float32');
  assert.equal(resolvePrecision(runtime, true), 'bfloat16');
  assert.equal(resolvePrecision({ ...runtime, device: 'cuda:1' }, true), 'float16');
  assert.equal(resolvePrecision({ ...runtime, precision: 'float32' }, true), 'float32');
  assert.equal(resolvePrecision({ ...runtime, precision: 'bfloat16' }, false), 'bfloat16');
});
