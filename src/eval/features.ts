// Encoder features of a whole dataset (frozen encoder, eval mode, no gradients).
import { autocast, cat, keep, noGrad, tidy, type DType, type Tensor, type nn } from '../torch/index.js';
import { labelTensor, viewTensors, type PlainBatch } from '../train/batch.js';
import { ProgressBar } from '../train/progress.js';

export interface FeatureOptions {
  device: string;
  precision: DType;
  channelsLast: boolean;
  /** Stop after this many samples (the online k-NN bank cap). */
  limit?: number | null;
  label?: string;
  total?: number;
}

export interface Features {
  features: Tensor;   // (N, D) float32
  labels: Tensor;     // (N) int64
}

export async function extractFeatures(encoder: nn.Module, batches: AsyncIterable<PlainBatch>,
  o: FeatureOptions): Promise<Features> {
  const wasTraining = encoder.training;
  encoder.eval();
  const parts: Tensor[] = [];
  const labels: Tensor[] = [];
  let count = 0;
  const bar = new ProgressBar(o.label ?? 'features', o.total ?? 0);
  const autocastDevice = o.device.startsWith('cuda') ? 'cuda' : 'cpu';
  try {
    for await (const batch of batches) {
      const limit = o.limit ?? Infinity;
      if (count >= limit) break;
      const [f, l] = tidy(() => noGrad(() => {
        const [view] = viewTensors({ cls: batch.cls, views: [batch.views[0]!] }, o.channelsLast, o.device);
        let feats = autocast(autocastDevice, o.precision, () => encoder.forward(view!), o.precision !== 'float32')
          .float().to('cpu');
        let lab = labelTensor(batch);
        const room = limit - count;
        if (feats.size(0) > room) {
          feats = feats.narrow(0, 0, room);
          lab = lab.narrow(0, 0, room);
        }
        return keep([feats.contiguous(), lab.contiguous()]);
      }));
      parts.push(f!);
      labels.push(l!);
      count += f!.size(0);
      bar.tick(f!.size(0));
    }
    bar.finish();
    if (parts.length === 0) throw new Error(`${o.label ?? 'features'}: the dataset gave no samples`);
    return { features: cat(parts), labels: cat(labels) };
  } finally {
    for (const t of [...parts, ...labels]) t.dispose();
    if (wasTraining) encoder.train();
  }
}
