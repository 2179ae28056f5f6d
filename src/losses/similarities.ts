// The similarities GroCo ranks for one anchor view: to its positives, and to its k hardest
// negatives, with a gradient that costs k rows per anchor row instead of the batch.
//
// The reference takes topk of a differentiable (B, B') similarity product, so its backward is a
// second dense (B, B') x (B', D) product of which all but k entries per row are zero, and it
// differentiates the L2 normalisation through autograd's chain of norm, clamp and divide. Here
// the product runs once without recording (the anchors' block with themselves is symmetric, so
// only its upper blocks are multiplied), topk picks the columns, and on the CPU one function
// carries the whole backward: the picked key rows summed per anchor row (one weighted embedding
// bag), the positives added in place, and the normalisation's Jacobian applied in place.
import {
  Tensor, applyFunction, arange, callOp, empty, isGradEnabled, keep, noGrad, stack, tidy, zeros,
  type CustomFunction,
} from '../torch/index.js';
import { NORM_EPS, normalizeRows } from './common.js';

export interface AnchorSimilaritiesInput {
  /** The anchor view as it enters the loss (B, D), float32 or float64. */
  anchor: Tensor;
  /** Its rows L2-normalised, without a graph: `normalizeRows(anchor)` under noGrad. */
  rows: Tensor;
  /**
   * The negatives of all ranks (B', D), L2-normalised, holding `rows`' values at `offset`; with
   * a graph when their gradient is wanted (stop_grad off).
   */
  keys: Tensor;
  offset: number;
  /** Hardest negatives kept per anchor row. */
  k: number;
  /** The positive views' rows (B, D), L2-normalised; with a graph when their gradient is wanted. */
  positives: Tensor[];
  /** Scratch memory for the (B, B') similarities, reused between calls when its shape fits. */
  workspace?: Workspace;
}

/**
 * A reusable buffer: the similarity product is only read inside one call, so a loss can keep
 * one and spare the allocator (fresh pages) and the garbage collector (external memory) per call.
 */
export class Workspace {
  #buffer: Tensor | null = null;

  get(shape: number[], like: Tensor): Tensor {
    const b = this.#buffer;
    if (b === null || b.dtype !== like.dtype || b.device !== like.device ||
      b.shape.join() !== shape.join()) {
      b?.dispose();
      this.#buffer = keep(empty(shape, { dtype: like.dtype, device: like.device }));
    }
    return this.#buffer!;
  }

  dispose(): void {
    this.#buffer?.dispose();
    this.#buffer = null;
  }
}

export interface AnchorSimilarities {
  /** (B, k): similarities to the k hardest negatives, ascending. */
  negatives: Tensor;
  /** (B, p): cosine similarities to the positives, in the order given. */
  positives: Tensor;
}

export interface AnchorSimilaritiesOptions {
  /**
   * 'fused' (default on the CPU): one custom backward as described above; it needs CPU autograd.
   * 'autograd': the same values from differentiable ops (F.normalize, a gathered batched
   * product); any device.
   */
  backward?: 'fused' | 'autograd';
}

/** See the file's head. The anchor's gradient includes the normalisation's. */
export function anchorSimilarities(input: AnchorSimilaritiesInput,
  options: AnchorSimilaritiesOptions = {}): AnchorSimilarities {
  const { anchor, rows, keys, offset, k, positives, workspace } = input;
  const needed = isGradEnabled() &&
    (anchor.requiresGrad || keys.requiresGrad || positives.some((p) => p.requiresGrad));
  const mode = options.backward ?? (anchor.device === 'cpu' ? 'fused' : 'autograd');
  return tidy(() => {
    const [values, indices] = hardestColumns(rows, keys, offset, k, workspace);
    if (!needed) {
      const pos = noGrad(() => stack(positives.map((p) => rowDot(rows, p)), 1));
      return { negatives: values, positives: pos };
    }
    if (mode === 'fused') {
      const [negatives, pos] = applyFunction(fusedBackward,
        [anchor, rows, keys, values, indices, ...positives]);
      return { negatives: negatives!, positives: pos! };
    }

    // the same with autograd: the normalisation is differentiated again
    const [batch, dim] = anchor.shape as [number, number];
    const normalized = normalizeRows(anchor);
    const picked = keys.indexSelect(0, indices.flatten()).view([batch, k, dim]); // (B, k, D)
    const recomputed = picked.mul(normalized.unsqueeze(1)).sum(2); // (B, k)
    const negatives = recomputed.sub(recomputed.detach()).add(values);
    return { negatives, positives: stack(positives.map((p) => rowDot(normalized, p)), 1) };
  });
}

/** Row-wise dot products (B); the (B, D) product is freed at once so its memory is reused. */
function rowDot(a: Tensor, b: Tensor): Tensor {
  const product = a.mul(b);
  try {
    return product.sum(1);
  } finally {
    product.dispose(); // the graph keeps its own reference when it needs one
  }
}

/**
 * Without recording: the k largest of rows (B, D) x keys (B', D)^T per row, leaving out column
 * offset + i of row i, ascending, and their columns. Both (B, k).
 */
export function hardestColumns(rows: Tensor, keys: Tensor, offset: number, k: number,
  workspace?: Workspace): [Tensor, Tensor] {
  return noGrad(() => tidy(() => {
    const out = workspace?.get([rows.shape[0]!, keys.shape[0]!], rows);
    const sims = similarities(rows, keys, offset, out); // (B, B')
    sims.diagonal(offset, 0, 1).fill_(-Infinity); // the row itself is no negative
    const [top, at] = sims.topk(k, 1); // descending
    return [top.flip([1]), at.flip([1])] as [Tensor, Tensor];
  }));
}

/**
 * rows (B, D) x keys (B', D)^T without recording, where keys[offset .. offset + B] = rows: that
 * block is symmetric, so only its blocks on and above the diagonal are multiplied, straight
 * into place, and the others are copied from their transposes.
 */
export function similarities(rows: Tensor, keys: Tensor, offset: number, out?: Tensor): Tensor {
  return noGrad(() => tidy(() => {
    const batch = rows.shape[0]!;
    const total = keys.shape[0]!;
    const sims = out ?? empty([batch, total], { dtype: rows.dtype, device: rows.device });
    const into = (out: Tensor, a: Tensor, b: Tensor) => {
      callOp('aten::mm.out', [a.handle, b.T.handle, out.handle], true);
    };
    if (offset > 0) into(sims.narrow(1, 0, offset), rows, keys.narrow(0, 0, offset));
    const after = total - offset - batch;
    if (after > 0) {
      into(sims.narrow(1, offset + batch, after), rows, keys.narrow(0, offset + batch, after));
    }

    // row blocks of at least 512 rows, at most 4: smaller products run less efficiently (B =
    // 1024, one thread: whole product 46 ms, 2 blocks 36, 4 blocks 37)
    const blocks = Math.max(1, Math.min(4, Math.floor(batch / 512)));
    const size = Math.ceil(batch / blocks);
    const own = sims.narrow(1, offset, batch);
    for (let start = 0; start < batch; start += size) {
      const height = Math.min(size, batch - start);
      into(own.narrow(0, start, height).narrow(1, start, batch - start),
        rows.narrow(0, start, height), rows.narrow(0, start, batch - start));
      if (start > 0) {
        own.narrow(0, start, height).narrow(1, 0, start)
          .copy_(own.narrow(0, 0, start).narrow(1, start, height).T);
      }
    }
    return sims;
  }));
}

/**
 * Inputs: anchor (B, D), rows (B, D), keys (B', D), the picked negative similarities (B, k),
 * their key indices (B, k), then the positives (B, D) each. Outputs: the negative similarities
 * and the positive ones (B, p).
 */
const fusedBackward: CustomFunction = {
  forward(ctx, [anchor, rows, keys, values, indices, ...positives]) {
    const norm = anchor!.norm(2, 1, { keepdim: true }); // (B, 1)
    const inverse = norm.clampMin(NORM_EPS).reciprocal();
    // clamp's gradient passes where norm >= eps: only there does the norm depend on the anchor
    const unclamped = norm.ge(NORM_EPS).to(anchor!.dtype);
    const pos = stack(positives.map((p) => rowDot(rows!, p!)), 1);
    // the similarities are the dot products the backward needs: the picked values and `pos`
    ctx.saved.push(rows!, keys!, indices!, inverse, unclamped, values!, pos,
      ...(positives as Tensor[]));
    ctx.data.needs = [anchor!.requiresGrad, keys!.requiresGrad,
      ...positives.map((p) => p!.requiresGrad)];
    return [values!.clone(), pos];
  },

  backward(ctx, [gradNeg, gradPos]) {
    const [rows, keys, indices, inverse, unclamped, values, pos, ...positives] =
      ctx.saved as Tensor[];
    const [needAnchor, needKeys, ...needPositives] = ctx.data.needs as boolean[];
    const [batch, k] = indices!.shape as [number, number];
    const device = rows!.device === 'cpu' ? {} : { device: rows!.device };
    const gNeg = gradNeg ?? zeros([batch, k], { dtype: rows!.dtype, ...device });
    const gPos = gradPos ?? zeros([batch, positives.length], { dtype: rows!.dtype, ...device });

    // keys[idx[i, j]] += g[i, j] rows[i]; positive p += g[i, p] rows[i]
    let gradKeys: Tensor | null = null;
    if (needKeys) {
      gradKeys = zeros(keys!.shape, { dtype: keys!.dtype, ...device });
      for (let j = 0; j < k; j++) {
        callOp('aten::index_add_', [gradKeys.handle, 0, indices!.select(1, j).handle,
          rows!.mul(gNeg.select(1, j).unsqueeze(1)).handle, 1], true);
      }
    }
    const gradPositives = positives.map((_, p) =>
      (needPositives[p] ? rows!.mul(gPos.select(1, p).unsqueeze(1)) : null));

    // d rows = sum_j g[i, j] keys[idx[i, j]] + sum_p g[i, p] positive_p, then through the
    // normalisation: d anchor = (d rows - rows (d rows . rows)) / max(norm, eps), where
    // d rows . rows = sum_j g[i, j] sim[i, j] + sum_p g[i, p] pos[i, p] needs no pass over D
    let gradAnchor: Tensor | null = null;
    if (needAnchor) {
      const offsets = arange(0, batch * k, k, device);
      const bag = callOp('aten::embedding_bag', [keys!.handle, indices!.flatten().handle,
        offsets.handle, false, 0, false, gNeg.contiguous().flatten().handle, false]) as never[];
      const [grad, ...rest] = bag.map((h) => new Tensor(h));
      for (const t of rest) t.dispose();
      positives.forEach((positive, p) => {
        const weight = gPos.narrow(1, p, 1);
        callOp('aten::addcmul_', [grad!.handle, positive.handle, weight.handle, 1], true);
      });
      const along = gNeg.mul(values!).sum(1, { keepdim: true })
        .add(gPos.mul(pos!).sum(1, { keepdim: true })).mul(unclamped!); // (B, 1)
      callOp('aten::addcmul_', [grad!.handle, rows!.handle, along.handle, -1], true);
      gradAnchor = grad!.mul_(inverse!);
    }
    return [gradAnchor, null, gradKeys, null, null, ...gradPositives];
  },
};
