// Linear probing of a frozen encoder: several classifiers (one per hyper-parameter set) trained
// in the same pass over the training batches; top-1 and top-5 on precomputed validation features.
import { F, noGrad, optim, tidy, type Tensor, type nn, type DType, autocast } from '../torch/index.js';
import { LinearClassifier } from '../models/index.js';
import { CosineWithWarmup, linearProbeLearningRate, multiStepLr } from '../train/schedule.js';
import { labelTensor, viewTensors, type PlainBatch } from '../train/batch.js';
import { ProgressBar } from '../train/progress.js';
import type { Features } from './features.js';

export interface ProbeSettings {
  logName: string;
  epochs: number;
  baseLearningRate: number;
  batchSize: number;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
  useLarc: boolean;
  schedule: { type: 'cosine'; warmupEpochs: number; lrMin: number } |
    { type: 'multistep'; milestones: number[]; gamma: number };
}

export interface ProbeOptions {
  device: string;
  precision: DType;
  channelsLast: boolean;
  numClasses: number;
  seedGenerator?: import('../torch/index.js').Generator;
  log?: (line: string) => void;
  stepsPerEpoch?: number;
  /** Averages the classifiers' gradients over processes (distributed probing). */
  syncGradients?: (params: Tensor[]) => void;
}

interface Probe {
  settings: ProbeSettings;
  classifier: LinearClassifier;
  optimizer: optim.SGD | optim.LARC;
  lrAt: (epoch: number) => number;
}

/** Top-k accuracies (percent) of logits against labels. */
export function topkAccuracy(logits: Tensor, labels: Tensor, ks: number[]): number[] {
  return tidy(() => {
    const maxK = Math.min(Math.max(...ks), logits.size(1));
    const [, idx] = logits.topk(maxK, 1);
    const hits = idx.eq(labels.unsqueeze(1).expand(idx.shape));
    return ks.map((k) => (100 * hits.narrow(1, 0, Math.min(k, maxK)).float().sum().item()) /
      labels.size(0));
  });
}

export async function linearProbe(encoder: nn.Module, featureDim: number,
  trainEpoch: (epoch: number) => AsyncIterable<PlainBatch>, val: Features, settings: ProbeSettings[],
  o: ProbeOptions): Promise<Record<string, number>> {
  const probes: Probe[] = settings.map((s) => {
    const classifier = new LinearClassifier(featureDim, o.numClasses, { generator: o.seedGenerator });
    if (o.device !== 'cpu') classifier.to(o.device);
    const lr0 = linearProbeLearningRate(s.baseLearningRate, s.batchSize);
    const sgd = new optim.SGD(classifier.parameters(), {
      lr: lr0, momentum: s.momentum, weightDecay: s.weightDecay, nesterov: s.nesterov,
    });
    const schedule = s.schedule;
    const lrAt = schedule.type === 'cosine'
      ? ((c) => (e: number) => c.lrAt(e))(new CosineWithWarmup({
        initLr: lr0, total: s.epochs, warmup: schedule.warmupEpochs, lrMin: schedule.lrMin }))
      : (e: number) => multiStepLr(e, { initLr: lr0, milestones: schedule.milestones, gamma: schedule.gamma });
    return { settings: s, classifier, optimizer: s.useLarc ? new optim.LARC(sgd) : sgd, lrAt };
  });
  const epochs = Math.max(...settings.map((s) => s.epochs));
  const autocastDevice = o.device.startsWith('cuda') ? 'cuda' : 'cpu';
  encoder.eval();

  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const active = probes.filter((p) => epoch < p.settings.epochs);
      for (const p of active) p.optimizer.setLr(p.lrAt(epoch));
      for (const p of active) p.classifier.train();
      const bar = new ProgressBar(`linear probe epoch ${epoch}`, o.stepsPerEpoch ?? 0);
      for await (const batch of trainEpoch(epoch)) {
        tidy(() => {
          const feats = noGrad(() => {
            const [view] = viewTensors({ cls: batch.cls, views: [batch.views[0]!] }, o.channelsLast, o.device);
            return autocast(autocastDevice, o.precision, () => encoder.forward(view!), o.precision !== 'float32').float();
          });
          const labels = labelTensor(batch).to(o.device);
          for (const p of active) {
            p.optimizer.zeroGrad();
            F.crossEntropy(p.classifier.forward(feats), labels).backward();
            o.syncGradients?.(p.classifier.parameters());
            p.optimizer.step();
          }
        });
        bar.tick();
      }
      bar.finish();
    }

    const out: Record<string, number> = {};
    for (const p of probes) {
      p.classifier.eval();
      const [top1, top5] = tidy(() => noGrad(() =>
        topkAccuracy(p.classifier.forward(val.features.to(o.device)), val.labels.to(o.device), [1, 5])));
      out[`linear_prob_${p.settings.logName}_val_top_1`] = top1!;
      out[`linear_prob_${p.settings.logName}_val_top_5`] = top5!;
      o.log?.(`linear probe ${p.settings.logName}: top-1 ${top1!.toFixed(2)} top-5 ${top5!.toFixed(2)}`);
    }
    return out;
  } finally {
    for (const p of probes) {
      p.classifier.dispose();
      p.optimizer.dispose();
    }
  }
}

