// Data parallelism over a process group: the same weights everywhere at the start, gradients
// averaged in buckets after backward, batch-norm statistics over all ranks.
import { cat, noGrad, tidy, nn, type Tensor } from '../torch/index.js';
import { allReduceSumWithGradient } from './gather.js';
import type { ProcessGroup } from './process_group.js';

/** Copies rank 0's parameters and buffers to every rank. */
export function broadcastModules(group: ProcessGroup, modules: nn.Module[]): void {
  noGrad(() => {
    for (const m of modules) {
      // one tensor per call: Gloo's multi-tensor form is for equal-sized tensors on several devices
      for (const t of m.stateDict().values()) group.broadcast([t], 0);
    }
  });
}

/** Makes every BatchNorm in the modules compute its training statistics over all ranks. */
export function synchronizeBatchNorm(group: ProcessGroup, modules: nn.Module[]): number {
  let count = 0;
  for (const m of modules) {
    for (const [, child] of m.namedModules()) {
      if (child instanceof nn.BatchNormBase) {
        child.syncStats = (t: Tensor) => allReduceSumWithGradient(group, t);
        count++;
      }
    }
  }
  return count;
}

/**
 * Averages gradients over ranks. Gradients are flattened into buckets of about `bucketBytes`,
 * one all-reduce each, then copied back. Parameters without a gradient on this rank take part
 * with zeros so that every rank runs the same collectives.
 */
export function averageGradients(group: ProcessGroup, params: Tensor[], bucketBytes = 25 * 2 ** 20): void {
  if (group.worldSize === 1) return;
  noGrad(() => {
    let bucket: Tensor[] = [];
    let bytes = 0;
    const flush = (): void => {
      if (bucket.length === 0) return;
      tidy(() => {
        const grads = bucket.map((p) => {
          const g = p.grad;
          if (g !== null) return g;
          const zero = p.mul(0);
          p.grad = zero;
          return zero;
        });
        const flat = cat(grads.map((g) => g.flatten()));
        group.allReduce([flat], 'sum');
        flat.div_(group.worldSize);
        let offset = 0;
        for (const g of grads) {
          const n = g.numel;
          g.copy_(flat.narrow(0, offset, n).view(g.shape));
          offset += n;
        }
      });
      bucket = [];
      bytes = 0;
    };
    for (const p of params) {
      bucket.push(p);
      bytes += p.numel * 4;
      if (bytes >= bucketBytes) flush();
    }
    flush();
  });
}
