// Differentiable all-gather: every rank gets all rows; the gradient of the local rows is the
// sum over ranks of the gradients each rank computed for them (the reference returned only the
// local slice of its own gradient, which is wrong when the gathered rows are not detached).
import { applyFunction, type CustomFunction, type Tensor } from '../torch/index.js';
import type { ProcessGroup } from './process_group.js';

export function gatherWithGradient(group: ProcessGroup, local: Tensor): Tensor {
  const rows = local.size(0);
  const fn: CustomFunction = {
    forward: (_ctx, [x]) => [group.allGatherCat(x!.contiguous())],
    backward: (_ctx, [g]) => {
      if (g === null) return [null];
      const summed = g.contiguous().clone();
      group.allReduce([summed], 'sum');
      return [summed.narrow(0, group.rank * rows, rows)];
    },
  };
  return applyFunction(fn, [local])[0]!;
}

/** Differentiable sum over ranks (its gradient is summed over ranks too), for SyncBatchNorm. */
export function allReduceSumWithGradient(group: ProcessGroup, x: Tensor): Tensor {
  const fn: CustomFunction = {
    forward: (_ctx, [t]) => {
      const out = t!.contiguous().clone();
      group.allReduce([out], 'sum');
      return [out];
    },
    backward: (_ctx, [g]) => {
      if (g === null) return [null];
      const out = g.contiguous().clone();
      group.allReduce([out], 'sum');
      return [out];
    },
  };
  return applyFunction(fn, [x])[0]!;
}

/** The losses' hook for negatives from every rank (rows are this rank's, in rank order). */
export function negativesFromAllRanks(group: ProcessGroup): (rows: Tensor) => { all: Tensor; offset: number } {
  return (rows) => ({
    all: rows.requiresGrad ? gatherWithGradient(group, rows) : group.allGatherCat(rows),
    offset: group.rank * rows.size(0),
  });
}
