// The shape of a groco config, after validation with every default filled in. Key names and
// the `{type, args}` sections follow the reference's YAML files so that its ImageNet configs run
// as they are; the keys marked "groco" are this project's additions (small images, CPU runtime).
// configs/README.md describes every key for users.

import type { LearningRateScaling } from '../train/schedule.js';

export const ARCHITECTURES = [
  'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152',
] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

export const TRANSFORM_TYPES = [
  'dino', 'dino_multicrop', 'simclr', 'linear_prob', 'val', 'val_bicubic_inter',
] as const;
export type TransformType = (typeof TRANSFORM_TYPES)[number];

/** Views produced by `dino_multicrop`: two global crops, then six small ones. */
export const MULTICROP_VIEWS = 8;
/** View counts the `dino` pipeline defines (v1 v2, v1 v2 v1, v1 v2 v1 v2). */
export const DINO_VIEW_COUNTS: readonly number[] = [2, 3, 4];

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/** How images become views; shared by every dataloader type. */
export interface ViewArgs {
  transform_type: TransformType;
  /** Views per sample (`image_aug1..n`). */
  n_augs: number;
  /** groco: side of the (random or centre) crop; the reference's 224. */
  image_size: number;
  /** groco: the shorter side before the centre crop of `val`; default image_size * 256 / 224. */
  resize: number;
  /** groco: side of the six small crops of `dino_multicrop`; default image_size * 96 / 224. */
  small_crop_size: number;
  /** groco: channels of each view, 3 (RGB; grey images are repeated) or 1 (RGB is greyed). */
  channels: 1 | 3;
  /** groco: per-channel normalisation; ImageNet's by default (averaged for one channel). */
  mean: number[];
  std: number[];
  /** groco: range of the Gaussian blur's sigma in pixels; the reference's [0.1, 2.0]. */
  blur_sigma: [number, number];
}

export interface LoaderArgs {
  batch_size: number;
  num_workers: number;
  /** true: the training split (image folders) and the last partial batch dropped. */
  train: boolean;
}

/** WebDataset tar shards: `web_dataloader` in the reference. */
export interface WebDataloaderArgs extends LoaderArgs, ViewArgs {
  /** A brace-range pattern (`a-{000000..000639}.tar`) or a list of them. */
  shards: string | string[];
  /** Samples in the shards; an epoch is dataset_size // batch_size batches. */
  dataset_size: number;
  /** Size of the shuffle buffer; 0 keeps the shard order. */
  shuffle: number;
}

/** A folder of class subfolders: `image_folder_dataloader` in the reference. */
export interface ImageFolderDataloaderArgs extends LoaderArgs, ViewArgs {
  root: string;
  shuffle: boolean;
  /**
   * groco: `imagenet` reads root/train or root/val (by `train`) as the reference does;
   * `classes` reads root itself as one split.
   */
  layout: 'imagenet' | 'classes';
}

/** groco: Fashion-MNIST straight from its IDX files (gzipped or not). */
export interface FashionMnistDataloaderArgs extends LoaderArgs, ViewArgs {
  /** The folder holding train-images-idx3-ubyte(.gz) and the others. */
  root: string;
  shuffle: boolean;
  /** Samples per epoch, at most the split's size; null: the whole split. */
  dataset_size: number | null;
}

export type DataloaderSpec =
  | { type: 'web_dataloader'; args: WebDataloaderArgs }
  | { type: 'image_folder_dataloader'; args: ImageFolderDataloaderArgs }
  | { type: 'fashion_mnist_dataloader'; args: FashionMnistDataloaderArgs };
export type DataloaderType = DataloaderSpec['type'];

export interface RegularEncoderArgs {
  arch: Architecture;
  /** groco: 3x3 stride-1 first convolution and no max-pool, for 28-64 px images. */
  small_images: boolean;
  /** groco: channels of the input images. */
  in_channels: number;
  /** groco: channels of the first stage (torchvision: 64); later stages scale with it. */
  width: number;
}
export type EncoderSpec = { type: 'RegularEncoder'; args: RegularEncoderArgs };

export interface RegularProjectionArgs {
  num_layers: number;
  output_dim: number;
  batch_norm_first: boolean;
}
export type ProjectionSpec = { type: 'RegularProjection'; args: RegularProjectionArgs };

export interface GroCoArgs {
  n_augs: number;
  /** Views that may serve as positives (the global crops in multi-crop); default n_augs. */
  n_pos_augs: number;
  topk_neg: number;
  steepness: number;
  stop_grad: boolean;
}

export interface NtXentArgs {
  temperature: number;
  stop_grad: boolean;
  /** Keep only the k hardest negatives; null keeps all. */
  topk_neg: number | null;
}

export interface NtXentMoreNegativesArgs {
  n_augs: number;
  temperature: number;
}

export interface NtXentAllCombinationsArgs {
  n_augs: number;
  n_pos_augs: number;
  temperature: number;
}

export type LossSpec =
  | { type: 'GroCo'; args: GroCoArgs }
  | { type: 'NT_Xent'; args: NtXentArgs }
  | { type: 'NT_XentWithMoreNegatives'; args: NtXentMoreNegativesArgs }
  | { type: 'NT_XentAllCombinations'; args: NtXentAllCombinationsArgs };
export type LossType = LossSpec['type'];

/** torch.optim.SGD's options; the learning rate comes from the schedule. */
export interface SgdArgs {
  momentum: number;
  weight_decay: number;
  dampening: number;
  nesterov: boolean;
}
export type OptimizerSpec = { type: 'SGD'; args: SgdArgs };

export { LEARNING_RATE_SCALINGS } from '../train/schedule.js';
export type { LearningRateScaling } from '../train/schedule.js';

export interface TrainerConfig {
  epochs: number;
  mixed_precision: boolean;
  /** Evaluate once before the first epoch. */
  init_val: boolean;
  /** Write latest_model.pth after every epoch. */
  save_latest: boolean;
  /** Write checkpoint-epoch<N>.pth every this many epochs; null: never. */
  save_period: number | null;
  log_step: number;
  /** Gradient-norm clipping threshold; null: no clipping and no norm logged. */
  clip_grad: number | null;
  /** groco: stop (with a checkpoint) after this many optimisation steps; null: run all epochs. */
  max_steps: number | null;
}

export interface KnnEvaluatorArgs {
  log_name: string;
  k: number[];
  /** null: one more than the largest label seen in the feature bank. */
  num_classes: number | null;
  temperature: number;
  use_weighting: boolean;
  /** Training images kept in the bank during online evaluation; null: all. */
  max_feature_bank: number | null;
  /** Evaluate after every this many epochs during pretraining. */
  apply_evaluator_per_epoch: number;
  /** Keep the bank and similarity blocks in host memory when running on an accelerator. */
  compute_sim_on_cpu: boolean;
  mute_tqdm: boolean;
  /** groco: the most bytes one query-by-bank similarity block may take (bounds memory). */
  max_block_bytes: number;
}

export type LinearProbeScheduler =
  | {
    type: 'CustomCosineSchedulerWithWarmup';
    args: { epochs: number; warmup_epochs: number; lr_min: number };
  }
  | { type: 'MultiStepLR'; args: { milestones: number[]; gamma: number } };

export interface LinearProbeHyperparams {
  log_name: string;
  /** Pretraining epochs (0-based) after which to probe; null: whenever evaluated. */
  apply_evaluator_after_epochs: number[] | null;
  epochs: number;
  /** The initial rate is base_learning_rate * batch_size / 256. */
  base_learning_rate: number;
  batch_size: number;
  optimizer: OptimizerSpec;
  optimizer_use_larc: boolean;
  lr_scheduler: LinearProbeScheduler;
}

export interface LinearProbingEvaluatorArgs {
  /** Several hyper-parameter sets are trained in one pass over the data. */
  hyperparams: LinearProbeHyperparams[];
}

export type EvaluatorSpec =
  | { type: 'KNNEvaluator'; args: KnnEvaluatorArgs }
  | { type: 'LinearProbingEvaluator'; args: LinearProbingEvaluatorArgs };

export const PRECISIONS = ['auto', 'float32', 'bfloat16', 'float16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** groco: where and how the computation runs. */
export interface RuntimeConfig {
  /** `cpu`, `cuda` or `cuda:<index>`. */
  device: string;
  /** Intra-op threads; null: every available core. */
  threads: number | null;
  /**
   * `auto` follows trainer.mixed_precision (float16 on CUDA, bfloat16 on CPU when on, float32
   * when off); any other value is used as given. The losses always run in float32.
   */
  precision: Precision;
  /** Keep image tensors channels-last (NHWC), usually faster on CPU. */
  channels_last: boolean;
}

/** Keys every config has once validated, whatever it is for. */
export interface CommonConfig {
  /** The run's name: --name, else the config file's base name. */
  name: string;
  /** [train split for evaluation, validation split]; empty when there is no evaluator. */
  valid_dataloader: DataloaderSpec[];
  encoder: EncoderSpec;
  evaluator: EvaluatorSpec[];
  seed: number | null;
  save_dir: string;
  runtime: RuntimeConfig;
}

export interface TrainingSections {
  train_dataloader: DataloaderSpec;
  projection: ProjectionSpec;
  loss: LossSpec;
  optimizer: OptimizerSpec;
  learning_rate_scaling: LearningRateScaling;
  base_learning_rate: number;
  optimizer_use_larc: boolean;
  warmup_epochs: number;
  trainer: TrainerConfig;
}

/** A config for `groco pretrain`. */
export interface PretrainConfig extends CommonConfig, TrainingSections {}

/**
 * A config for `groco eval`: the training sections are optional (present when the evaluation
 * config was laid over a run's config, as the reference does on resume).
 */
export interface EvalConfig extends CommonConfig, Partial<TrainingSections> {}

export type ConfigPurpose = 'pretrain' | 'eval';
