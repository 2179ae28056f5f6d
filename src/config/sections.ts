// The rule for each config section: keys, types, bounds and defaults (the defaults are the
// reference's where it has the key). Checks that span sections live in validate.ts.

import {
  At, INVALID, boolean, integer, isMapping, listOf, listOrSingle, nullable, number, oneOf,
  optional, record, required, show, text, typed,
} from './rules.js';
import type { Rule } from './rules.js';
import { LEARNING_RATE_SCALINGS } from '../train/schedule.js';
import {
  ARCHITECTURES, DINO_VIEW_COUNTS, IMAGENET_MEAN, IMAGENET_STD, MULTICROP_VIEWS, PRECISIONS,
  TRANSFORM_TYPES,
} from './schema.js';
import type {
  DataloaderSpec, EncoderSpec, EvaluatorSpec, FashionMnistDataloaderArgs, GroCoArgs,
  ImageFolderDataloaderArgs, KnnEvaluatorArgs, LearningRateScaling, LinearProbeHyperparams,
  LinearProbeScheduler, LossSpec, NtXentAllCombinationsArgs, NtXentArgs, NtXentMoreNegativesArgs,
  OptimizerSpec, ProjectionSpec, RegularEncoderArgs, RegularProjectionArgs, RuntimeConfig,
  SgdArgs, TrainerConfig, ViewArgs, WebDataloaderArgs,
} from './schema.js';

const positiveInt = integer({ min: 1 });
const nonNegativeInt = integer({ min: 0 });
const positive = number({ min: 0, exclusiveMin: true });
const nonNegative = number({ min: 0 });

// views and dataloaders

const channelCount: Rule<1 | 3> = (value, at) => {
  if (value !== 1 && value !== 3) return at.fail(`expected 1 or 3, got ${show(value)}`);
  return value;
};

const sigmaRange: Rule<[number, number]> = (value, at) => {
  const pair = listOf(positive)(value, at);
  if (pair === INVALID) return INVALID;
  if (pair.length !== 2 || pair[0] > pair[1]) {
    return at.fail(`expected [low, high] with 0 < low <= high, got [${pair.join(', ')}]`);
  }
  return [pair[0], pair[1]];
};

const viewFields = {
  transform_type: optional(oneOf(TRANSFORM_TYPES), 'val'),
  n_augs: optional(positiveInt, 1),
  image_size: optional(positiveInt, 224),
  resize: optional(positiveInt, (o) => Math.round(((o.image_size as number) * 256) / 224)),
  small_crop_size: optional(positiveInt,
    (o) => Math.max(1, Math.round(((o.image_size as number) * 96) / 224))),
  channels: optional(channelCount, 3),
  mean: optional(listOf(number(), { minLength: 1 }),
    (o) => channelStatistics(IMAGENET_MEAN, o.channels)),
  std: optional(listOf(positive, { minLength: 1 }),
    (o) => channelStatistics(IMAGENET_STD, o.channels)),
  blur_sigma: optional<[number, number]>(sigmaRange, [0.1, 2.0]),
};

/** ImageNet's statistics, averaged over the channels for one-channel views. */
function channelStatistics(rgb: readonly number[], channels: unknown): number[] {
  return channels === 1 ? [(rgb[0] + rgb[1] + rgb[2]) / 3] : [...rgb];
}

function checkViews(args: ViewArgs, at: At): void {
  if (args.transform_type === 'dino' && !DINO_VIEW_COUNTS.includes(args.n_augs)) {
    at.failAt('n_augs',
      `expected ${DINO_VIEW_COUNTS.join(', ')} for transform_type "dino", got ${args.n_augs}`);
  }
  if (args.transform_type === 'dino_multicrop' && args.n_augs !== MULTICROP_VIEWS) {
    at.failAt('n_augs',
      `expected ${MULTICROP_VIEWS} for transform_type "dino_multicrop", got ${args.n_augs}`);
  }
  if (args.resize < args.image_size) {
    at.failAt('resize', `expected at least image_size (${args.image_size}), got ${args.resize}`);
  }
  for (const key of ['mean', 'std'] as const) {
    if (args[key].length !== args.channels) {
      at.failAt(key,
        `expected ${args.channels} value(s), one per channel, got ${args[key].length}`);
    }
  }
}

const loaderFields = {
  batch_size: required(positiveInt),
  num_workers: required(nonNegativeInt),
  train: optional(boolean, true),
};

const shardPattern = text({ nonEmpty: true });
const shardPatterns: Rule<string | string[]> = (value, at) => (Array.isArray(value)
  ? listOf(shardPattern, { minLength: 1 })(value, at)
  : shardPattern(value, at));

const webDataloaderArgs = record<WebDataloaderArgs>({
  shards: required(shardPatterns),
  dataset_size: required(positiveInt),
  shuffle: required(nonNegativeInt),
  ...loaderFields,
  ...viewFields,
}, checkViews);

const imageFolderDataloaderArgs = record<ImageFolderDataloaderArgs>({
  root: required(text({ nonEmpty: true })),
  shuffle: required(boolean),
  layout: optional(oneOf(['imagenet', 'classes'] as const), 'imagenet'),
  ...loaderFields,
  ...viewFields,
}, checkViews);

const fashionMnistDataloaderArgs = record<FashionMnistDataloaderArgs>({
  root: required(text({ nonEmpty: true })),
  ...loaderFields,
  num_workers: optional(nonNegativeInt, 0),
  // declared after `train`, whose value (given or default) it follows
  shuffle: optional(boolean, (o) => o.train as boolean),
  dataset_size: optional(nullable(positiveInt), null),
  ...viewFields,
}, checkViews);

export const dataloader: Rule<DataloaderSpec> = typed<DataloaderSpec>({
  web_dataloader: webDataloaderArgs,
  image_folder_dataloader: imageFolderDataloaderArgs,
  fashion_mnist_dataloader: fashionMnistDataloaderArgs,
});

// models

export const encoder: Rule<EncoderSpec> = typed<EncoderSpec>({
  RegularEncoder: record<RegularEncoderArgs>({
    arch: required(oneOf(ARCHITECTURES)),
    small_images: optional(boolean, false),
    in_channels: optional(positiveInt, 3),
    width: optional(positiveInt, 64),
  }),
});

export const projection: Rule<ProjectionSpec> = typed<ProjectionSpec>({
  RegularProjection: record<RegularProjectionArgs>({
    num_layers: optional(positiveInt, 3),
    output_dim: optional(positiveInt, 2048),
    batch_norm_first: optional(boolean, false),
  }),
});

// losses

const viewCount = integer({ min: 2 });

function checkPositiveViews(args: { n_augs: number; n_pos_augs: number }, at: At): void {
  if (args.n_pos_augs > args.n_augs) {
    at.failAt('n_pos_augs', `expected at most n_augs (${args.n_augs}), got ${args.n_pos_augs}`);
  }
}

export const loss: Rule<LossSpec> = typed<LossSpec>({
  GroCo: record<GroCoArgs>({
    n_augs: optional(viewCount, 2),
    // 2 at least: every anchor among the positive views needs another view as its positive
    n_pos_augs: optional(viewCount, (o) => o.n_augs as number, { nullTakesFallback: true }),
    topk_neg: optional(positiveInt, 10),
    steepness: optional(positive, 1),
    stop_grad: optional(boolean, true),
  }, checkPositiveViews),
  NT_Xent: record<NtXentArgs>({
    temperature: optional(positive, 0.5),
    stop_grad: optional(boolean, false),
    topk_neg: optional(nullable(positiveInt), null),
  }),
  NT_XentWithMoreNegatives: record<NtXentMoreNegativesArgs>({
    n_augs: required(viewCount),
    temperature: optional(positive, 0.5),
  }),
  NT_XentAllCombinations: record<NtXentAllCombinationsArgs>({
    n_augs: required(viewCount),
    n_pos_augs: optional(viewCount, (o) => o.n_augs as number, { nullTakesFallback: true }),
    temperature: optional(positive, 0.5),
  }, checkPositiveViews),
});

// optimisation

const sgdFields = record<SgdArgs>({
  momentum: optional(nonNegative, 0),
  weight_decay: optional(nonNegative, 0),
  dampening: optional(nonNegative, 0),
  nesterov: optional(boolean, false),
}, (args, at) => {
  if (args.nesterov && (args.momentum === 0 || args.dampening !== 0)) {
    at.failAt('nesterov', 'needs momentum > 0 and dampening 0 (as torch.optim.SGD)');
  }
});

const sgdArgs: Rule<SgdArgs> = (value, at) => {
  if (isMapping(value) && 'lr' in value) {
    at.failAt('lr', 'not allowed: the learning rate comes from base_learning_rate and its scaling');
    return INVALID;
  }
  return sgdFields(value, at);
};

export const optimizer: Rule<OptimizerSpec> = typed<OptimizerSpec>({ SGD: sgdArgs });

export const learningRateScaling: Rule<LearningRateScaling> = oneOf(LEARNING_RATE_SCALINGS);

export const trainer: Rule<TrainerConfig> = record<TrainerConfig>({
  epochs: required(positiveInt),
  mixed_precision: optional(boolean, false),
  init_val: optional(boolean, false),
  save_latest: optional(boolean, true),
  save_period: optional(nullable(positiveInt), null),
  log_step: optional(positiveInt, 50),
  clip_grad: optional(nullable(positive), null),
  max_steps: optional(nullable(positiveInt), null),
});

// evaluators

const knnArgs = record<KnnEvaluatorArgs>({
  log_name: optional(text(), ''),
  k: optional(listOf(positiveInt, { minLength: 1 }), [1, 10, 20]),
  num_classes: optional(nullable(integer({ min: 2 })), null),
  temperature: optional(positive, 0.07),
  use_weighting: optional(boolean, true),
  max_feature_bank: optional(nullable(positiveInt), null),
  apply_evaluator_per_epoch: optional(positiveInt, 1),
  compute_sim_on_cpu: optional(boolean, false),
  mute_tqdm: optional(boolean, true),
  max_block_bytes: optional(positiveInt, 256 * 2 ** 20),
});

const probeScheduler: Rule<LinearProbeScheduler> = typed<LinearProbeScheduler>({
  CustomCosineSchedulerWithWarmup: record({
    epochs: required(positiveInt),
    warmup_epochs: optional(nonNegative, 0),
    lr_min: optional(nonNegative, 0),
  }),
  MultiStepLR: record({
    milestones: required(listOf(nonNegativeInt)),
    gamma: optional(positive, 0.1),
  }, (args, at) => {
    if (args.milestones.some((m, i) => i > 0 && m <= args.milestones[i - 1])) {
      at.failAt('milestones', `expected increasing epochs, got [${args.milestones.join(', ')}]`);
    }
  }),
});

const probeHyperparams = record<LinearProbeHyperparams>({
  log_name: required(text()),
  apply_evaluator_after_epochs: required(nullable(listOf(nonNegativeInt))),
  epochs: required(positiveInt),
  base_learning_rate: required(positive),
  batch_size: required(positiveInt),
  optimizer: required(optimizer),
  optimizer_use_larc: required(boolean),
  lr_scheduler: required(probeScheduler),
});

export const evaluator: Rule<EvaluatorSpec> = typed<EvaluatorSpec>({
  KNNEvaluator: knnArgs,
  LinearProbingEvaluator: record({ hyperparams: required(listOrSingle(probeHyperparams)) }),
});

// runtime

const device: Rule<string> = (value, at) => {
  if (typeof value !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(value)) {
    return at.fail(`expected "cpu", "cuda" or "cuda:<index>", got ${show(value)}`);
  }
  return value;
};

export const runtime: Rule<RuntimeConfig> = record<RuntimeConfig>({
  device: optional(device, 'cpu'),
  threads: optional(nullable(positiveInt), null),
  precision: optional(oneOf(PRECISIONS), 'auto'),
  channels_last: optional(boolean, false),
}, (config, at) => {
  if (config.precision === 'float16' && config.device === 'cpu') {
    at.failAt('precision', 'float16 needs a CUDA device; on CPU use bfloat16');
  }
});

export const seed: Rule<number | null> = nullable(nonNegativeInt);
export const positiveNumber = positive;
export const nonNegativeNumber = nonNegative;
