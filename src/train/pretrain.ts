// The pretraining loop: per-iteration schedule, SGD or LARC, mixed precision, logging,
// checkpoints written atomically, exact resumption, signals, and non-finite loss handling.
import {
  autocast, optim, tidy, Generator, type DType, type Tensor, type nn,
} from '../torch/index.js';
import { viewTensors, type PlainBatch } from './batch.js';
import { saveTrainingCheckpoint, type LoadedCheckpoint } from './checkpoint.js';
import { formatDuration, ProgressBar } from './progress.js';
import type { RunDir } from './run_dir.js';
import type { CosineWithWarmup } from './schedule.js';

export interface LossResult {
  loss: Tensor;
  info: Record<string, number>;
}

export interface LossModule {
  compute(projections: Tensor[]): LossResult;
}

export interface TrainData {
  stepsPerEpoch: number;
  /** Batches of one epoch, skipping the first `skip` (for resumption inside an epoch). */
  epoch(epoch: number, skip: number): AsyncIterable<PlainBatch>;
}

export interface Evaluation {
  /** Runs when (epoch + 1) is a multiple of `every`, and for init_val. */
  every: number;
  run(epoch: number): Promise<Record<string, number>>;
}

export interface PretrainOptions {
  encoder: nn.Module;
  projection: nn.Module;
  loss: LossModule;
  optimizer: optim.SGD | optim.LARC;
  parameters: Tensor[];
  schedule: CosineWithWarmup;
  data: TrainData;
  run: RunDir | null;
  epochs: number;
  device: string;
  precision: DType;
  channelsLast: boolean;
  logStep: number;
  clipGrad: number | null;
  saveLatest: boolean;
  savePeriod: number | null;
  initVal: boolean;
  maxSteps: number | null;
  evaluations: Evaluation[];
  config: unknown;
  resume: LoadedCheckpoint | null;
  log: (line: string) => void;
  /** Rank 0 writes files and logs; other ranks only compute. */
  isMain: boolean;
  /** Called after backward, before clipping and the step (gradient all-reduce). */
  afterBackward?: () => void;
  /**
   * Whether any rank was asked to stop, given whether this one was; called after every step on
   * every rank, so that all ranks stop after the same step.
   */
  agreeToStop?: (requested: boolean) => boolean;
}

export interface PretrainResult {
  steps: number;
  epochs: number;
  stoppedBy: 'finished' | 'max_steps' | 'signal';
  lastLoss: number;
  evaluations: Record<string, number>[];
  seconds: number;
}

export class NonFiniteLossError extends Error {}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const started = Date.now();
  const autocastDevice = o.device.startsWith('cuda') ? 'cuda' : 'cpu';
  const useAutocast = o.precision !== 'float32';
  const scaler = new optim.GradScaler({ enabled: o.precision === 'float16' });

  let step = 0;
  let startEpoch = 0;
  let skip = 0;
  if (o.resume !== null) {
    step = o.resume.step;
    if (o.resume.batchInEpoch > 0) {
      startEpoch = o.resume.epoch;
      skip = o.resume.batchInEpoch;
    } else {
      startEpoch = o.resume.epoch + 1;
    }
    if (o.resume.scaler) scaler.loadStateDict(o.resume.scaler);
    if (o.resume.rngState) Generator.default().setState(o.resume.rngState);
  }

  // signals: the first finishes the step and checkpoints; the second exits at once
  let stopRequested = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopRequested) {
      o.log(`\n${signal} again: exiting now; checkpoints already written are intact`);
      process.exit(130);
    }
    stopRequested = true;
    o.log(`\n${signal}: finishing this step, then writing a checkpoint (again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const checkpoint = async (name: string, epoch: number, batchInEpoch: number): Promise<void> => {
    if (!o.isMain || o.run === null) return;
    await saveTrainingCheckpoint(o.run.file(name), {
      epoch, step, batchInEpoch, encoder: o.encoder, projection: o.projection, optimizer: o.optimizer,
      scaler: o.precision === 'float16' ? scaler.stateDict() : null, config: o.config,
    });
  };

  const evaluations: Record<string, number>[] = [];
  const evaluate = async (epoch: number, force: boolean): Promise<void> => {
    for (const e of o.evaluations) {
      if (!force && (epoch + 1) % e.every !== 0) continue;
      const values = await e.run(epoch);
      evaluations.push({ epoch, ...values });
      if (o.isMain) {
        o.run?.metric({ type: 'evaluation', epoch, step, ...values });
        o.run?.scalars(values, epoch);
        o.log(`epoch ${epoch} evaluation: ${Object.entries(values)
          .map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
      }
    }
  };

  let lastLoss = Number.NaN;
  let stoppedBy: PretrainResult['stoppedBy'] = 'finished';
  if (o.maxSteps !== null && step >= o.maxSteps) {
    o.log(`already at step ${step}, not below --max-steps ${o.maxSteps}: nothing to do`);
    startEpoch = o.epochs;
    stoppedBy = 'max_steps';
  }
  try {
    if (o.initVal && o.resume === null) await evaluate(-1, true);

    epochs: for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
      o.encoder.train();
      o.projection.train();
      const bar = o.isMain ? new ProgressBar(`epoch ${epoch}`, o.data.stepsPerEpoch) : null;
      bar?.tick(skip);
      let batchIndex = skip;
      let dataStart = Date.now();
      for await (const batch of o.data.epoch(epoch, skip)) {
        // prefetched batches resolve as microtasks; yield once so that signals get handled
        await new Promise<void>((resolve) => setImmediate(resolve));
        const dataTime = (Date.now() - dataStart) / 1000;
        const batchStart = Date.now();
        const lr = o.schedule.lrAt(step);
        o.optimizer.setLr(lr);

        const result = tidy(() => {
          o.optimizer.zeroGrad();
          const views = viewTensors(batch, o.channelsLast, o.device);
          const projections = autocast(autocastDevice, o.precision, () =>
            views.map((v) => o.projection.forward(o.encoder.forward(v))), useAutocast);
          const { loss, info } = o.loss.compute(projections.map((p) => p.float()));
          const value = loss.item();
          if (!Number.isFinite(value)) return { value, info, gradNorm: null as number | null };
          scaler.scaleLoss(loss).backward();
          o.afterBackward?.();
          let finite = true;
          if (scaler.enabled) finite = scaler.unscaleAndCheck(o.parameters);
          const gradNorm = o.clipGrad !== null ? optim.clipGradNorm(o.parameters, o.clipGrad) : null;
          if (finite) o.optimizer.step();
          scaler.update(finite);
          return { value, info, gradNorm };
        });

        if (!Number.isFinite(result.value)) {
          throw new NonFiniteLossError(`the loss is ${result.value} at step ${step} (epoch ${epoch}, ` +
            `batch ${batchIndex}); the run stops here. The last good checkpoint is ` +
            `${o.run ? o.run.file('latest_model.pth') : '(none written)'} if one was written; ` +
            'lower base_learning_rate or turn mixed precision off.');
        }

        lastLoss = result.value;
        step++;
        batchIndex++;
        const batchTime = (Date.now() - batchStart) / 1000;
        const images = batch.views.reduce((n, v) => n + v.shape[0]!, 0);
        if (o.isMain) {
          const record: Record<string, number> = {
            step, epoch, train_loss: result.value, lr, data_time: dataTime, batch_time: batchTime,
            ...Object.fromEntries(Object.entries(result.info).map(([k, v]) => [`train_loss_${k}`, v])),
          };
          if (result.gradNorm !== null) record.train_loss_info_grad_norm = result.gradNorm;
          o.run?.metric({ type: 'train', ...record });
          o.run?.scalars({ train_loss: result.value, lr_param_group_0: lr, data_time: dataTime,
            batch_time: batchTime }, step);
          if ((batchIndex - 1) % o.logStep === 0) {
            o.log(`epoch ${epoch} step ${step} batch ${batchIndex}/${o.data.stepsPerEpoch} ` +
              `loss ${result.value.toFixed(4)} lr ${lr.toExponential(3)} data ${dataTime.toFixed(3)}s ` +
              `batch ${batchTime.toFixed(3)}s ${(images / Math.max(batchTime + dataTime, 1e-6)).toFixed(1)} img/s`);
          }
          bar?.tick(1, `loss ${result.value.toFixed(4)}`);
        }

        if (o.maxSteps !== null && step >= o.maxSteps) {
          stoppedBy = 'max_steps';
        } else if (o.agreeToStop ? o.agreeToStop(stopRequested) : stopRequested) {
          stoppedBy = 'signal';
        }
        if (stoppedBy !== 'finished') {
          bar?.finish();
          const complete = batchIndex >= o.data.stepsPerEpoch;
          await checkpoint('latest_model.pth', epoch, complete ? 0 : batchIndex);
          o.log(`stopped after step ${step} (${stoppedBy === 'signal' ? 'signal' : '--max-steps'}); ` +
            `resume with -r ${o.run?.file('latest_model.pth') ?? '(no run folder)'}`);
          break epochs;
        }
        dataStart = Date.now();
      }
      bar?.finish();
      if (batchIndex === skip && skip < o.data.stepsPerEpoch) {
        throw new Error(`train_dataloader: epoch ${epoch} gave no batch of the ${o.data.stepsPerEpoch} ` +
          'expected, so nothing was trained: are the shards or files there (see the warnings above), ' +
          'and does the shard pattern expand as meant?');
      }
      skip = 0;

      if (o.saveLatest) await checkpoint('latest_model.pth', epoch, 0);
      if (o.savePeriod !== null && (epoch + 1) % o.savePeriod === 0) {
        await checkpoint(`checkpoint-epoch${epoch}.pth`, epoch, 0);
      }
      await evaluate(epoch, false);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const seconds = (Date.now() - started) / 1000;
  if (o.isMain) o.log(`pretraining done: ${step} steps in ${formatDuration(seconds)}`);
  return { steps: step, epochs: o.epochs, stoppedBy, lastLoss, evaluations, seconds };
}

