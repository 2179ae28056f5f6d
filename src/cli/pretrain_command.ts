// `groco pretrain`: builds everything a config describes and runs the pretraining loop.
import { loadConfig, writeConfigYaml, type PretrainConfig } from '../config/index.js';
import { createLoss } from '../losses/index.js';
import { createProjection, trainableParameters } from '../models/index.js';
import { optim, tensor, tidy } from '../torch/index.js';
import {
  averageGradients, broadcastModules, negativesFromAllRanks, synchronizeBatchNorm, type ProcessGroup,
} from '../distributed/index.js';
import { disposeCheckpoint, loadTrainingCheckpoint, type LoadedCheckpoint } from '../train/checkpoint.js';
import { pretrain, type PretrainResult } from '../train/pretrain.js';
import { RunDir } from '../train/run_dir.js';
import { batchesPerEpoch, pretrainSchedule } from '../train/schedule.js';
import { configOverrides, type PretrainOptions } from './args.js';
import { buildEncoder, checkpointConfig, joinGroup } from './common.js';
import { buildEvaluations } from './evaluators.js';
import { createLoader, trainData } from './loaders.js';
import { logger, setupRuntime } from './runtime.js';

export interface PretrainOutcome {
  result: PretrainResult;
  runDir: string | null;
  config: PretrainConfig;
}

export async function runPretrain(options: PretrainOptions, hooks: { log?: (line: string) => void } = {}):
  Promise<PretrainOutcome> {
  const group: ProcessGroup | null = joinGroup(options);
  const rank = group?.rank ?? 0;
  const world = group?.worldSize ?? 1;
  const isMain = rank === 0;
  const log = hooks.log ?? logger(isMain);

  let resume: LoadedCheckpoint | null = null;
  try {
    if (options.resume !== null) resume = await loadTrainingCheckpoint(options.resume);
    // a step budget is for one invocation's target: a resumed run does not inherit it
    const overrides = configOverrides(options);
    if (resume !== null && options.maxSteps === null) {
      overrides.push({ path: ['trainer', 'max_steps'], value: null, origin: '(resume)' });
    }
    const config = loadConfig('pretrain', {
      file: options.config, base: resume ? checkpointConfig(resume.config, resume.path) : null,
      overrides, name: options.name,
    });
    if (resume !== null) {
      const done = finishedBefore(resume, config);
      if (done !== null) {
        log(`${resume.path}: nothing to do: ${done.reason}; no run folder written`);
        const result: PretrainResult = {
          steps: resume.step, epochs: config.trainer.epochs, stoppedBy: done.stoppedBy,
          lastLoss: Number.NaN, evaluations: [], seconds: 0,
        };
        return { result, runDir: null, config };
      }
    }

    const runtime = setupRuntime(config, config.trainer.mixed_precision);
    const place = { rank, worldSize: world, seed: runtime.seed };

    // models, initialised from the seed (the same on every rank, then rank 0's are broadcast)
    const encoder = buildEncoder(config, runtime);
    const projection = createProjection(config.projection, encoder.featureDim);
    if (runtime.device !== 'cpu') projection.to(runtime.device);
    if (group !== null) {
      broadcastModules(group, [encoder, projection]);
      const synced = synchronizeBatchNorm(group, [encoder, projection]);
      log(`rank ${rank}/${world}: ${synced} batch-norm layers synchronised`);
    }

    const gatherNegatives = group === null ? undefined : negativesFromAllRanks(group);
    const loss = createLoss(config.loss.type, config.loss.args as unknown as Record<string, unknown>,
      { gatherNegatives });

    // the run folder first: a save_dir that cannot be written fails before any worker starts
    const run = isMain ? RunDir.create(config.save_dir, config.name) : null;
    if (run !== null) {
      writeConfigYaml(config, run.file('config.yaml'));
      log(`run folder: ${run.path}`);
    }

    const loader = createLoader(config.train_dataloader, place);
    // fashion_mnist_dataloader: dataset_size samples per epoch, drawn from the whole split
    const spec = config.train_dataloader;
    const cap = spec.type === 'fashion_mnist_dataloader' && spec.args.dataset_size !== null
      ? batchesPerEpoch(spec.args.dataset_size, spec.args.batch_size, world)
      : null;
    const data = trainData(loader, cap, isMain ? log : null);
    const schedule = pretrainSchedule({
      baseLearningRate: config.base_learning_rate, scaling: config.learning_rate_scaling,
      batchSize: config.train_dataloader.args.batch_size, epochs: config.trainer.epochs,
      warmupEpochs: config.warmup_epochs, stepsPerEpoch: data.stepsPerEpoch,
    });
    const parameters = trainableParameters(encoder, projection);
    const sgdArgs = config.optimizer.args;
    const sgd = new optim.SGD(parameters, {
      lr: schedule.initLr, momentum: sgdArgs.momentum, weightDecay: sgdArgs.weight_decay,
      dampening: sgdArgs.dampening, nesterov: sgdArgs.nesterov,
    });
    const optimizer = config.optimizer_use_larc ? new optim.LARC(sgd) : sgd;

    if (resume !== null) {
      encoder.loadStateDict(resume.encoder, { context: `${resume.path}: encoder` });
      if (resume.projection) projection.loadStateDict(resume.projection, { context: `${resume.path}: projection` });
      if (resume.optimizer) optimizer.loadStateDict(resume.optimizer, `${resume.path}: optimizer`);
      log(`resumed from ${resume.path} (epoch ${resume.epoch}, step ${resume.step}` +
        `${resume.batchInEpoch > 0 ? `, batch ${resume.batchInEpoch} of that epoch` : ''})`);
    }

    const evaluations = buildEvaluations({
      config, encoder, featureDim: encoder.featureDim, runtime, place, log, online: true, group,
    });
    try {
      const result = await pretrain({
        encoder, projection, loss: { compute: (views) => loss.forward(views) }, optimizer, parameters,
        schedule, data, run, epochs: config.trainer.epochs, device: runtime.device,
        precision: runtime.precision, channelsLast: runtime.channelsLast, logStep: config.trainer.log_step,
        clipGrad: config.trainer.clip_grad, saveLatest: config.trainer.save_latest,
        savePeriod: config.trainer.save_period, initVal: config.trainer.init_val,
        maxSteps: config.trainer.max_steps, evaluations, config, resume, log, isMain,
        afterBackward: group === null ? undefined : () => averageGradients(group, parameters),
        agreeToStop: group === null ? undefined : (requested) => anyRank(group, requested),
      });
      run?.writeJson('results.json', { ...result, evaluations: result.evaluations });
      return { result, runDir: run?.path ?? null, config };
    } finally {
      run?.close();
      await loader.close();
      loss.dispose();
      optimizer.dispose();
      encoder.dispose();
      projection.dispose();
    }
  } finally {
    if (resume !== null) disposeCheckpoint(resume);
    group?.destroy();
  }
}

/** Why a resumed run has nothing left to train, or null when it has. */
function finishedBefore(resume: LoadedCheckpoint, config: PretrainConfig):
  { reason: string; stoppedBy: PretrainResult['stoppedBy'] } | null {
  const maxSteps = config.trainer.max_steps;
  const stoppedBy = maxSteps !== null && resume.step >= maxSteps ? 'max_steps' : 'finished';
  const nextEpoch = resume.batchInEpoch > 0 ? resume.epoch : resume.epoch + 1;
  if (nextEpoch >= config.trainer.epochs) {
    const epochs = (n: number): string => `${n} epoch${n === 1 ? '' : 's'}`;
    return { stoppedBy, reason: `${epochs(nextEpoch)} done, trainer.epochs asks for ` +
      `${epochs(config.trainer.epochs)} (raise --epochs to train on)` };
  }
  if (stoppedBy === 'max_steps') {
    return { stoppedBy, reason: `already at step ${resume.step}, not below --max-steps ${maxSteps}` };
  }
  return null;
}

/** True on every rank when it is true on any (an all-reduce of one number). */
function anyRank(group: ProcessGroup, value: boolean): boolean {
  return tidy(() => {
    const flag = tensor([value ? 1 : 0]);
    group.allReduce([flag], 'max');
    return flag.item() > 0;
  });
}
