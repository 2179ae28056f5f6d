// The config's evaluators (KNNEvaluator, LinearProbingEvaluator) over an encoder.
import type { CommonConfig, EvaluatorSpec, LinearProbeHyperparams } from '../config/index.js';
import { knnAccuracy } from '../eval/knn.js';
import { extractFeatures, type Features } from '../eval/features.js';
import { linearProbe, type ProbeSettings } from '../eval/linear_probe.js';
import type { nn } from '../torch/index.js';
import { averageGradients, type ProcessGroup } from '../distributed/index.js';
import type { Evaluation } from '../train/pretrain.js';
import { createLoader, onePass, type Placement } from './loaders.js';
import type { Runtime } from './runtime.js';

export interface EvaluatorContext {
  config: CommonConfig;
  encoder: nn.Module;
  featureDim: number;
  runtime: Runtime;
  place: Placement;
  log: (line: string) => void;
  /** Online (during pretraining): the k-NN bank is capped at max_feature_bank. */
  online: boolean;
  /** Distributed: each rank reads its share; features are gathered, probe gradients averaged. */
  group: ProcessGroup | null;
}

function needLoaders(config: CommonConfig, what: string): void {
  if (config.valid_dataloader.length < 2) {
    throw new Error(`valid_dataloader: ${what} needs two loaders, [train split for the bank or ` +
      `probe, validation split]; the config has ${config.valid_dataloader.length}`);
  }
}

async function features(ctx: EvaluatorContext, index: 0 | 1, limit: number | null, label: string): Promise<Features> {
  const loader = createLoader(ctx.config.valid_dataloader[index]!, ctx.place, true);
  const world = ctx.group?.worldSize ?? 1;
  let local: Features;
  try {
    local = await extractFeatures(ctx.encoder, onePass(loader), {
      device: ctx.runtime.device, precision: ctx.runtime.precision, channelsLast: ctx.runtime.channelsLast,
      limit: limit === null ? null : Math.ceil(limit / world), label,
      total: loader.length === null ? 0 : loader.length * loader.batchSize,
    });
  } finally {
    await loader.close();
  }
  if (ctx.group === null) return local;
  const gathered = { features: ctx.group.allGatherRows(local.features), labels: ctx.group.allGatherRows(local.labels) };
  local.features.dispose();
  local.labels.dispose();
  return gathered;
}

function knnEvaluation(ctx: EvaluatorContext, spec: Extract<EvaluatorSpec, { type: 'KNNEvaluator' }>): Evaluation {
  const a = spec.args;
  return {
    every: a.apply_evaluator_per_epoch,
    run: async () => {
      needLoaders(ctx.config, 'KNNEvaluator');
      const bank = await features(ctx, 0, ctx.online ? a.max_feature_bank : null, 'k-NN bank');
      const queries = await features(ctx, 1, null, 'k-NN queries');
      try {
        const numClasses = a.num_classes ?? Math.max(...bank.labels.toFlatArray(), ...queries.labels.toFlatArray()) + 1;
        const acc = knnAccuracy(bank.features, bank.labels, queries.features, queries.labels, {
          k: a.k, temperature: a.temperature, numClasses, maxBlockBytes: a.max_block_bytes,
        });
        return Object.fromEntries(Object.entries(acc).map(([k, v]) => [`${k}${a.log_name}`, v]));
      } finally {
        for (const t of [bank.features, bank.labels, queries.features, queries.labels]) t.dispose();
      }
    },
  };
}

function probeSettings(h: LinearProbeHyperparams): ProbeSettings {
  const s = h.lr_scheduler;
  return {
    logName: h.log_name.replace(/^_/, ''), epochs: h.epochs, baseLearningRate: h.base_learning_rate,
    batchSize: h.batch_size, momentum: h.optimizer.args.momentum, weightDecay: h.optimizer.args.weight_decay,
    nesterov: h.optimizer.args.nesterov, useLarc: h.optimizer_use_larc,
    schedule: s.type === 'CustomCosineSchedulerWithWarmup'
      ? { type: 'cosine', warmupEpochs: s.args.warmup_epochs, lrMin: s.args.lr_min }
      : { type: 'multistep', milestones: s.args.milestones, gamma: s.args.gamma },
  };
}

function probeEvaluation(ctx: EvaluatorContext,
  spec: Extract<EvaluatorSpec, { type: 'LinearProbingEvaluator' }>, pretrainEpoch: () => number): Evaluation {
  return {
    every: 1,
    run: async () => {
      needLoaders(ctx.config, 'LinearProbingEvaluator');
      const epoch = pretrainEpoch();
      const hypers = spec.args.hyperparams.filter((h) => h.apply_evaluator_after_epochs === null ||
        h.apply_evaluator_after_epochs.includes(epoch));
      if (hypers.length === 0) return {};
      const val = await features(ctx, 1, null, 'probe validation');
      const loader = createLoader(ctx.config.valid_dataloader[0]!, ctx.place);
      try {
        const numClasses = Math.max(...val.labels.toFlatArray()) + 1;
        return await linearProbe(ctx.encoder, ctx.featureDim, (e) => loader.epoch(e), val,
          hypers.map(probeSettings), {
            device: ctx.runtime.device, precision: ctx.runtime.precision, channelsLast: ctx.runtime.channelsLast,
            numClasses: Math.max(numClasses, 2), log: ctx.log, stepsPerEpoch: loader.length ?? 0,
            syncGradients: ctx.group === null ? undefined : (params) => averageGradients(ctx.group!, params),
          });
      } finally {
        await loader.close();
        val.features.dispose();
        val.labels.dispose();
      }
    },
  };
}

export function buildEvaluations(ctx: EvaluatorContext): Evaluation[] {
  let lastEpoch = -1;
  return ctx.config.evaluator.map((spec) => {
    if (spec.type === 'KNNEvaluator') return knnEvaluation(ctx, spec);
    const e = probeEvaluation(ctx, spec, () => lastEpoch);
    return { every: e.every, run: async (epoch: number) => { lastEpoch = epoch; return e.run(epoch); } };
  });
}
