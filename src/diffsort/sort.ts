// The relaxed sort: runs a sorting network with relaxed comparators over a batch of rows and
// returns the soft-sorted rows and the relaxed permutation matrices (spec section 1).
//
// The diffsort package applies every layer as dense products with its four 0/1 matrices. Here
// the values run wire-major, (n, B): a layer gathers its wire pairs, computes alpha once per
// comparator and moves every wire with one row gather and one lerp. The permutation is not mixed
// column by column alongside: each layer's matrix M_l is symmetric, so P @ E = M_1 (... (M_L E))
// is applied afterwards, last layer first, to the rows of E (the identity for P, or a few group
// columns for `sortTimes`). Values and gradients are the same up to floating-point rounding.
// Forward + backward, B = 1024, n = 11, CPU ms on one thread: columns mixed per layer 27, rows
// gathered batch-major 18, this 10, and 4 for a product with two group columns.
import { Tensor, callOp, cat, eye, keep, noGrad, ones, tensor, tidy } from '../torch/index.js';
import {
  checkNetworkType, sortingNetwork, type NetworkType, type SortingNetwork,
} from './networks.js';
import {
  checkDistribution, relaxedAlpha, type Distribution, type RelaxationOptions,
} from './relaxations.js';

export interface DiffSortOptions {
  /** A network type (built for the row length) or a network. Default 'odd_even'. */
  network?: NetworkType | SortingNetwork;
  /** Default 'cauchy'. */
  distribution?: Distribution;
  /** Default 10, as the diffsort package. */
  steepness?: number;
  /** Exponent of `logistic_phi`. Default 0.25. */
  artLambda?: number;
}

export interface DiffSortResult {
  /** (B, n): the soft-sorted rows, ascending. */
  sorted: Tensor;
  /** (B, n, n): sorted = x @ permutation; entry (r, c) is how much of input r lands at rank c. */
  permutation: Tensor;
}

/** Index tensors of one layer, on one device. */
interface LayerPlan {
  /** (2k): wires a of the comparators, then wires b. */
  pairs: Tensor;
  /** (2n): for each output wire, the wire its lerp starts from, then the wire it moves towards. */
  sources: Tensor;
  /** (n): for each output wire, its weight's column in [alpha (k), one (1)]. */
  weightColumns: Tensor;
  comparators: number;
}

function checkFiniteNumber(name: string, value: unknown, positive: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || (positive && value <= 0)) {
    const bound = positive ? ' > 0' : '';
    throw new Error(`diffSort: argument '${name}' expected a finite number${bound}, ` +
      `got ${String(value)}`);
  }
  return value;
}

function lerp(start: Tensor, end: Tensor, weight: Tensor): Tensor {
  const result = callOp('aten::lerp.Tensor', [start.handle, end.handle, weight.handle]);
  return new Tensor(result as never);
}

/**
 * A relaxed sorter for rows of one length: holds the network and its index tensors. Reuse one
 * sorter for many calls; `dispose()` frees its index tensors.
 */
export class DiffSorter {
  readonly network: SortingNetwork;
  readonly relaxation: RelaxationOptions;
  readonly #plans = new Map<string, LayerPlan[]>();

  constructor(size: number, options: DiffSortOptions = {}) {
    const network = options.network ?? 'odd_even';
    this.network = typeof network === 'string'
      ? sortingNetwork(checkNetworkType(network), size)
      : network;
    if (this.network.size !== size) {
      throw new Error(`DiffSorter: argument 'network' has ${this.network.size} wires, ` +
        `expected ${size}`);
    }
    this.relaxation = {
      distribution: checkDistribution(options.distribution ?? 'cauchy'),
      steepness: checkFiniteNumber('steepness', options.steepness ?? 10, true),
      artLambda: checkFiniteNumber('artLambda', options.artLambda ?? 0.25, false),
    };
  }

  get size(): number {
    return this.network.size;
  }

  /** Soft-sorts each row of x (B, n), float32 or float64; differentiable. */
  sort(x: Tensor): DiffSortResult {
    this.#checkInput(x);
    return tidy(() => {
      const { sorted, weights } = this.#forward(x);
      const identity = eye(this.size, { dtype: x.dtype, device: x.device });
      return { sorted, permutation: this.#times(weights, identity).contiguous() };
    });
  }

  /**
   * Soft-sorts each row of x (B, n) and returns `permutation @ basis` (B, n, g) for a constant
   * basis (n, g) without forming the permutation: for example the indicator columns of groups of
   * ranks, whose product is how much of each input lands in each group. Cheaper than `sort` by
   * about n / g in the permutation's share of the work; same values and gradients. The product
   * may be a strided view.
   */
  sortTimes(x: Tensor, basis: Tensor): { sorted: Tensor; product: Tensor } {
    this.#checkInput(x);
    if (!(basis instanceof Tensor) || basis.ndim !== 2 || basis.shape[0] !== this.size) {
      throw new Error(`sortTimes: argument 'basis' expected a Tensor (${this.size}, g), got ` +
        `${basis instanceof Tensor ? `[${basis.shape.join(', ')}]` : String(basis)}`);
    }
    return tidy(() => {
      const { sorted, weights } = this.#forward(x);
      return { sorted, product: this.#times(weights, basis.to(x.dtype)) };
    });
  }

  /**
   * The network on the values, wire-major (n, B) so that gathering wires copies whole rows.
   * Returns per layer the lerp weight of every output wire (n, B): output wire w of a layer is
   * lerp(input[start w], input[end w], weight w); a minimum is lerp(b, a, alpha) =
   * alpha a + (1 - alpha) b, a maximum lerp(a, b, alpha), an untouched wire lerp(w, w, 1).
   */
  #forward(x: Tensor): { sorted: Tensor; weights: Tensor[] } {
    const batch = x.shape[0]!;
    const n = this.size;
    const one = ones([1, 1], { dtype: x.dtype, device: x.device }).expand([1, batch]);
    const weights: Tensor[] = [];
    let values = x.T.contiguous(); // (n, B)
    for (const { pairs, sources, weightColumns, comparators: k } of this.#plansFor(x.device)) {
      // alpha of every comparator of the layer, from the values on its wires
      const ab = values.indexSelect(0, pairs); // (2k, B)
      const alpha = relaxedAlpha(ab.narrow(0, k, k).sub(ab.narrow(0, 0, k)), this.relaxation);

      const w = cat([alpha, one], 0).indexSelect(0, weightColumns); // (n, B)
      const moved = values.indexSelect(0, sources); // (2n, B)
      values = lerp(moved.narrow(0, 0, n), moved.narrow(0, n, n), w);
      weights.push(w);
    }
    return { sorted: values.T.contiguous(), weights };
  }

  /**
   * permutation @ basis = M_1 (M_2 (... (M_L basis))), where layer l maps the permutation's
   * columns as P <- P M_l. Each M_l is symmetric (a comparator mixes its two wires with the
   * same weights both ways), so it acts on the rows of the product exactly as the layer acts on
   * the values: gathered rows and one lerp, last layer first. Computed as (n, g, B).
   */
  #times(weights: Tensor[], basis: Tensor): Tensor {
    const batch = weights[0]?.shape[1] ?? 1;
    const [n, g] = basis.shape as [number, number];
    const plans = this.#plansFor(basis.device);
    let product = basis.unsqueeze(2).expand([n, g, batch]);
    for (let l = plans.length - 1; l >= 0; l--) {
      const moved = product.indexSelect(0, plans[l]!.sources); // (2n, g, B)
      product = lerp(moved.narrow(0, 0, n), moved.narrow(0, n, n), weights[l]!.unsqueeze(1));
    }
    return product.permute([2, 0, 1]); // (B, n, g)
  }

  dispose(): void {
    for (const plans of this.#plans.values()) {
      for (const plan of plans) {
        plan.pairs.dispose();
        plan.sources.dispose();
        plan.weightColumns.dispose();
      }
    }
    this.#plans.clear();
  }

  #checkInput(x: Tensor): void {
    if (!(x instanceof Tensor)) {
      throw new Error(`diffSort: argument 'x' expected a Tensor (B, ${this.size}), ` +
        `got ${String(x)}`);
    }
    const shape = x.shape;
    if (shape.length !== 2 || shape[1] !== this.size) {
      throw new Error(`diffSort: argument 'x' expected shape (B, ${this.size}), got ` +
        `[${shape.join(', ')}]`);
    }
    const dtype = x.dtype;
    if (dtype !== 'float32' && dtype !== 'float64') {
      throw new Error(`diffSort: argument 'x' expected float32 or float64, got ${dtype}`);
    }
  }

  #plansFor(device: string): LayerPlan[] {
    let plans = this.#plans.get(device);
    if (plans === undefined) {
      plans = noGrad(() => buildPlans(this.network, device));
      this.#plans.set(device, plans);
    }
    return plans;
  }
}

function buildPlans(network: SortingNetwork, device: string): LayerPlan[] {
  const n = network.size;
  const plans: LayerPlan[] = [];
  for (const layer of network.layers) {
    const k = layer.length;
    if (k === 0) continue;
    const pairs: number[] = [...layer.map((c) => c.a), ...layer.map((c) => c.b)];
    const start = Array.from({ length: n }, (_, w) => w);
    const end = Array.from({ length: n }, (_, w) => w);
    const weights = new Array<number>(n).fill(k);
    layer.forEach(({ a, b, reversed }, c) => {
      const minWire = reversed ? b : a;
      const maxWire = reversed ? a : b;
      start[minWire] = b;
      end[minWire] = a;
      weights[minWire] = c;
      start[maxWire] = a;
      end[maxWire] = b;
      weights[maxWire] = c;
    });
    const make = (values: number[]) =>
      keep(tensor(values, { dtype: 'int64', device: device === 'cpu' ? undefined : device }));
    plans.push({
      pairs: make(pairs), sources: make([...start, ...end]), weightColumns: make(weights),
      comparators: k,
    });
  }
  return plans;
}

const sorters = new Map<string, DiffSorter>();

/**
 * Soft-sorts each row of x (B, n) ascending with a relaxed sorting network. Returns the sorted
 * rows and the permutation matrices, both differentiable. Sorters are cached per network size
 * and options; use `DiffSorter` directly to control their lifetime.
 */
export function diffSort(x: Tensor, options: DiffSortOptions = {}): DiffSortResult {
  if (!(x instanceof Tensor)) {
    throw new Error(`diffSort: argument 'x' expected a Tensor (B, n), got ${String(x)}`);
  }
  if (x.ndim !== 2) {
    throw new Error(`diffSort: argument 'x' expected shape (B, n), got [${x.shape.join(', ')}]`);
  }
  const n = x.shape[1]!;
  if (n < 2) throw new Error(`diffSort: argument 'x' expected rows of length >= 2, got ${n}`);
  const network = options.network ?? 'odd_even';
  if (typeof network !== 'string') return withSorter(new DiffSorter(n, options), x);
  const key = JSON.stringify([network, n, options.distribution ?? 'cauchy',
    options.steepness ?? 10, options.artLambda ?? 0.25]);
  let sorter = sorters.get(key);
  if (sorter === undefined) {
    sorter = new DiffSorter(n, options);
    sorters.set(key, sorter);
  }
  return sorter.sort(x);
}

function withSorter(sorter: DiffSorter, x: Tensor): DiffSortResult {
  try {
    return sorter.sort(x);
  } finally {
    sorter.dispose();
  }
}
