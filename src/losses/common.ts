// What every loss shares: its interface, the negatives hook for data parallelism, option
// checking, and the similarity helpers.
import { Tensor, tidy } from '../torch/index.js';

/** A loss value and the statistics the reference logs beside it (named as it names them). */
export interface LossOutput {
  /** Scalar, float32 (float64 when the inputs are float64). */
  loss: Tensor;
  info: Record<string, number>;
}

export interface Loss {
  /** The reference's config name of the loss (`GroCo`, `NT_Xent`, ...). */
  readonly type: string;
  /**
   * `views`: the projections of views 1, 2, ... of one batch, each (B, D), rows aligned by
   * sample. `labels` (B) int64: only for cross-entropy.
   */
  forward(views: readonly Tensor[], labels?: Tensor): LossOutput;
  /** Frees the tensors the loss keeps between calls. */
  dispose(): void;
}

/**
 * Gathers the rows that serve as negatives from every rank. Receives this rank's rows (L, D)
 * (L2-normalised; detached when the loss stops their gradient) and returns the rows of all
 * ranks concatenated (L * world, D), with `offset`, the index of this rank's first row in it.
 * When the rows require a gradient, the gradient reaching this rank's rows must be the sum over
 * ranks (spec section 6). Default: no other rank, `{ all: rows, offset: 0 }`.
 */
export type GatherNegatives = (rows: Tensor) => { all: Tensor; offset: number };

export interface LossContext {
  gatherNegatives?: GatherNegatives;
}

/** Names options in messages: camelCase for the API, snake_case for configs. */
export type OptionNamer = (camelCase: string) => string;

export const apiNames: OptionNamer = (name) => name;
export const configNames: OptionNamer =
  (name) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export class OptionChecker {
  constructor(readonly owner: string, readonly namer: OptionNamer) {}

  fail(option: string, expected: string, got: unknown): never {
    throw new Error(`${this.owner}: option '${this.namer(option)}' expected ${expected}, ` +
      `got ${describeValue(got)}`);
  }

  integer(option: string, value: unknown, min: number, max = Infinity): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`;
      this.fail(option, `an integer ${range}`, value);
    }
    return value;
  }

  positive(option: string, value: unknown): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      this.fail(option, 'a finite number > 0', value);
    }
    return value;
  }

  boolean(option: string, value: unknown): boolean {
    if (typeof value !== 'boolean') this.fail(option, 'true or false', value);
    return value;
  }

  /** Rejects keys the loss does not know (a misspelt option would otherwise be ignored). */
  known(options: object, keys: readonly string[]): void {
    for (const key of Object.keys(options)) {
      if (!keys.includes(key)) {
        throw new Error(`${this.owner}: unknown option '${this.namer(key)}' (known: ` +
          `${keys.map(this.namer).join(', ') || 'none'})`);
      }
    }
  }
}

export function describeValue(value: unknown): string {
  if (value instanceof Tensor) return `Tensor(${value.dtype}, [${value.shape.join(', ')}])`;
  if (typeof value === 'string') return `'${value}'`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return String(value);
}

/**
 * Checks the views of one batch: at least `count` tensors (B, D) of one shape and floating type,
 * B >= 2. Returns [B, D].
 */
export function checkViews(owner: string, views: readonly Tensor[], count: number,
  exact: boolean): [number, number] {
  if (!Array.isArray(views) || (exact ? views.length !== count : views.length < count)) {
    const n = Array.isArray(views) ? views.length : describeValue(views);
    throw new Error(`${owner}: argument 'views' expected ${exact ? '' : 'at least '}${count} ` +
      `projections (one per view), got ${n}`);
  }
  let shape: number[] | undefined;
  views.slice(0, count).forEach((view, i) => {
    if (!(view instanceof Tensor)) {
      throw new Error(`${owner}: view ${i + 1} expected a Tensor (B, D), ` +
        `got ${describeValue(view)}`);
    }
    const s = view.shape;
    const dtype = view.dtype;
    if (s.length !== 2 || s[0]! < 2 || s[1]! < 1) {
      throw new Error(`${owner}: view ${i + 1} expected shape (B, D) with B >= 2, ` +
        `got [${s.join(', ')}]`);
    }
    if (!['float16', 'bfloat16', 'float32', 'float64'].includes(dtype)) {
      throw new Error(`${owner}: view ${i + 1} expected a floating-point tensor, got ${dtype}`);
    }
    if (shape === undefined) shape = s;
    else if (s[0] !== shape[0] || s[1] !== shape[1]) {
      throw new Error(`${owner}: view ${i + 1} has shape [${s.join(', ')}], view 1 ` +
        `[${shape.join(', ')}]; all views must have the same shape`);
    }
  });
  return shape as [number, number];
}

/** float16 and bfloat16 are computed in float32; float32 and float64 stay as they are. */
export function lossPrecision(view: Tensor): Tensor {
  const dtype = view.dtype;
  return dtype === 'float32' || dtype === 'float64' ? view : view.to('float32');
}

/** Rows are divided by max(norm, NORM_EPS), as torch.nn.CosineSimilarity(eps=1e-8) does. */
export const NORM_EPS = 1e-8;

/**
 * Rows divided by max(norm, 1e-8), as the reference's cosine similarities (F.normalize's values;
 * the (B, 1) norms broadcast instead of being expanded first).
 */
export function normalizeRows(z: Tensor): Tensor {
  return tidy(() => z.div(z.norm(2, 1, { keepdim: true }).clampMin(NORM_EPS)));
}

export function detachIf(z: Tensor, condition: boolean): Tensor {
  return condition ? z.detach() : z;
}

/** The default negatives: this process's rows only. */
export function gatherLocal(rows: Tensor): { all: Tensor; offset: number } {
  return { all: rows, offset: 0 };
}

export function gatherWith(owner: string, gather: GatherNegatives | undefined, rows: Tensor):
  { all: Tensor; offset: number } {
  if (gather === undefined) return gatherLocal(rows);
  const result = gather(rows);
  const all = result?.all;
  const offset = result?.offset;
  const [l, d] = rows.shape as [number, number];
  if (!(all instanceof Tensor) || all.ndim !== 2 || all.shape[1] !== d || all.shape[0]! % l !== 0) {
    throw new Error(`${owner}: gatherNegatives expected to return { all: (L * world, ${d}) }, ` +
      `got ${describeValue(all)}`);
  }
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 ||
    offset + l > all.shape[0]!) {
    throw new Error(`${owner}: gatherNegatives returned offset ${String(offset)}, expected an ` +
      `integer in [0, ${all.shape[0]! - l}]`);
  }
  return { all, offset };
}
