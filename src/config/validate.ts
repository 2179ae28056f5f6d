// Whole-config validation: the top-level keys for each purpose, then the rules that tie sections
// together (views against the loss, channels against the encoder, batch sizes against the
// evaluators). Every problem is collected and reported at once, each with its path.

import {
  At, INVALID, boolean, formatPath, listOf, optional, optionalSection, recordWith, required, text,
} from './rules.js';
import type { ConfigPath, ConfigProblem, FieldSpec, Rule } from './rules.js';
import {
  dataloader, encoder, evaluator, learningRateScaling, loss, nonNegativeNumber, optimizer,
  positiveNumber, projection, runtime, seed, trainer,
} from './sections.js';
import type {
  CommonConfig, ConfigPurpose, DataloaderSpec, EvalConfig, PretrainConfig, TrainingSections,
} from './schema.js';

/** A problem with where it was found: `file:line:col`, a command-line flag, or a file name. */
export interface LocatedProblem extends ConfigProblem {
  where: string;
}

export class ConfigError extends Error {
  constructor(
    /** What was being read: a file name, or several joined with " + ". */
    readonly source: string,
    readonly problems: LocatedProblem[],
  ) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    const lines = problems.map((p) => (p.path.length === 0
      ? `  ${p.where}: ${p.message}`
      : `  ${p.where}: ${formatPath(p.path)}: ${p.message}`));
    super(`invalid config ${source} (${count}):\n${lines.join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface ValidateOptions {
  /** Named in errors; default "config". */
  source?: string;
  /** Where a path sits (e.g. `file.yaml:12:5`); null falls back to `source`. */
  locate?: (path: ConfigPath) => string | null;
}

type PartialConfig = Partial<PretrainConfig & CommonConfig>;

const trainingRules: { [K in keyof TrainingSections]: Rule<TrainingSections[K]> } = {
  train_dataloader: dataloader,
  projection,
  loss,
  optimizer,
  learning_rate_scaling: learningRateScaling,
  base_learning_rate: positiveNumber,
  optimizer_use_larc: boolean,
  warmup_epochs: nonNegativeNumber,
  trainer,
};

// the reference reads these two with a default; every other training key is required
const trainingDefaults: Partial<TrainingSections> = {
  learning_rate_scaling: 'linear',
  optimizer_use_larc: false,
};

/** For an evaluation every training section is optional, checked only when present. */
function trainingField(key: keyof TrainingSections, purpose: ConfigPurpose): FieldSpec<unknown> {
  const rule = trainingRules[key] as Rule<unknown>;
  if (purpose === 'eval') return optional(rule, () => undefined);
  const fallback = trainingDefaults[key];
  return fallback === undefined ? required(rule) : optional(rule, fallback);
}

/** The top-level order follows the reference's files, so written configs read the same. */
function topLevel(purpose: ConfigPurpose): Rule<PartialConfig> {
  const training = (key: keyof TrainingSections) => trainingField(key, purpose);
  const fields: Record<keyof PretrainConfig, FieldSpec<unknown>> = {
    name: optional(text({ nonEmpty: true }), 'groco'),
    train_dataloader: training('train_dataloader'),
    valid_dataloader: optional(listOf(dataloader), []),
    encoder: required(encoder),
    projection: training('projection'),
    loss: training('loss'),
    learning_rate_scaling: training('learning_rate_scaling'),
    base_learning_rate: training('base_learning_rate'),
    optimizer_use_larc: training('optimizer_use_larc'),
    warmup_epochs: training('warmup_epochs'),
    optimizer: training('optimizer'),
    trainer: training('trainer'),
    seed: optional(seed, null),
    save_dir: optional(text({ nonEmpty: true }), './output'),
    evaluator: optional(listOf(evaluator), []),
    runtime: optionalSection(runtime),
  };
  return recordWith<PartialConfig>(fields as never,
    (config, at) => crossCheck(config, purpose, at));
}

// rules that span sections; each runs only when the sections it reads passed their own rules

function crossCheck(config: PartialConfig, purpose: ConfigPurpose, at: At): void {
  const loaders: [DataloaderSpec, ConfigPath][] = [];
  if (config.train_dataloader) loaders.push([config.train_dataloader, ['train_dataloader']]);
  config.valid_dataloader?.forEach((spec, i) => loaders.push([spec, ['valid_dataloader', i]]));
  const inChannels = config.encoder?.args.in_channels;
  for (const [spec, path] of loaders) {
    if (inChannels !== undefined && spec.args.channels !== inChannels) {
      at.failAt([...path, 'args', 'channels'],
        `expected ${inChannels} to match encoder.args.in_channels, got ${spec.args.channels}`);
    }
  }

  const evaluators = config.evaluator;
  if (evaluators !== undefined && (evaluators.length > 0 || purpose === 'eval')) {
    const count = config.valid_dataloader?.length;
    if (count !== undefined && count !== 2) {
      at.failAt('valid_dataloader', 'expected a list of 2 dataloaders (the training split for the '
        + `evaluators, then the validation split), got ${count}`);
    }
    if (evaluators.length === 0) {
      at.failAt('evaluator',
        'expected at least one KNNEvaluator or LinearProbingEvaluator, got none');
    }
  }
  checkProbeBatchSizes(config, at);
  checkTraining(config, at);
}

function checkProbeBatchSizes(config: PartialConfig, at: At): void {
  const probeLoader = config.valid_dataloader?.[0];
  if (probeLoader === undefined || config.evaluator === undefined) return;
  config.evaluator.forEach((spec, i) => {
    if (spec.type !== 'LinearProbingEvaluator') return;
    spec.args.hyperparams.forEach((hp, j) => {
      // one pass over the probe loader trains every classifier, so the batches must agree
      if (hp.batch_size !== probeLoader.args.batch_size) {
        at.failAt(['evaluator', i, 'args', 'hyperparams', j, 'batch_size'],
          `expected ${probeLoader.args.batch_size} (valid_dataloader[0].args.batch_size), `
          + `got ${hp.batch_size}`);
      }
    });
  });
}

function checkTraining(config: PartialConfig, at: At): void {
  if (config.train_dataloader === undefined) return;
  const train = config.train_dataloader.args;
  const views = train.n_augs;

  if (train.batch_size < 2) {
    at.failAt(['train_dataloader', 'args', 'batch_size'],
      `expected at least 2 (the losses contrast samples of a batch), got ${train.batch_size}`);
  }
  const samples = 'dataset_size' in train ? train.dataset_size : null;
  if (samples !== null && samples < train.batch_size) {
    at.failAt(['train_dataloader', 'args', 'dataset_size'],
      `expected at least batch_size (${train.batch_size}) so that an epoch has a batch, `
      + `got ${samples}`);
  }

  if (config.loss === undefined) return;
  const lossArgs = config.loss.args as unknown as Record<string, unknown>;
  if (config.loss.type === 'NT_Xent') {
    if (views !== 2) {
      at.failAt(['train_dataloader', 'args', 'n_augs'],
        'expected 2: NT_Xent contrasts two views (NT_XentAllCombinations takes more), '
        + `got ${views}`);
    }
  } else if (lossArgs.n_augs !== views) {
    at.failAt(['loss', 'args', 'n_augs'],
      `expected ${views} (train_dataloader.args.n_augs), got ${String(lossArgs.n_augs)}`);
  }

  // negatives per anchor: the other rows of the global batch (for NT-Xent: of both views)
  const negatives = config.loss.type === 'GroCo' ? train.batch_size - 1
    : config.loss.type === 'NT_Xent' ? 2 * train.batch_size - 2 : null;
  const topk = lossArgs.topk_neg;
  if (negatives !== null && train.batch_size >= 2 && typeof topk === 'number' && topk > negatives) {
    at.failAt(['loss', 'args', 'topk_neg'],
      `expected at most ${negatives} (the negatives a batch of ${train.batch_size} leaves each `
      + `anchor), got ${topk}`);
  }
}

// entry points

function problemsToError(problems: ConfigProblem[], options: ValidateOptions): ConfigError {
  const source = options.source ?? 'config';
  const located = problems.map((p) => ({ ...p, where: options.locate?.(p.path) ?? source }));
  return new ConfigError(source, located);
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Checks without throwing: the config when valid, and every problem found. */
type AnyValidConfig = PretrainConfig | EvalConfig;

export interface CheckResult<T> {
  config: T | null;
  problems: ConfigProblem[];
}

export function checkConfig(raw: unknown, purpose: 'pretrain'): CheckResult<PretrainConfig>;
export function checkConfig(raw: unknown, purpose: 'eval'): CheckResult<EvalConfig>;
export function checkConfig(raw: unknown, purpose: ConfigPurpose): CheckResult<AnyValidConfig>;
export function checkConfig(raw: unknown, purpose: ConfigPurpose): CheckResult<AnyValidConfig> {
  const problems: ConfigProblem[] = [];
  const checked = topLevel(purpose)(raw, At.root(problems));
  if (checked === INVALID || problems.length > 0) return { config: null, problems };
  return { config: withoutUndefined(checked) as unknown as PretrainConfig | EvalConfig, problems };
}

export function validatePretrainConfig(raw: unknown,
  options: ValidateOptions = {}): PretrainConfig {
  const { config, problems } = checkConfig(raw, 'pretrain');
  if (config === null) throw problemsToError(problems, options);
  return config;
}

export function validateEvalConfig(raw: unknown, options: ValidateOptions = {}): EvalConfig {
  const { config, problems } = checkConfig(raw, 'eval');
  if (config === null) throw problemsToError(problems, options);
  return config;
}

/** `pretrain` when the config has a training section, else `eval`. */
export function configPurpose(raw: unknown): ConfigPurpose {
  return typeof raw === 'object' && raw !== null && 'train_dataloader' in raw ? 'pretrain' : 'eval';
}
