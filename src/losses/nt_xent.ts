// NT-Xent (SimCLR) and its two multi-view variants (spec section 3).
//
// Similarities are one product of L2-normalised rows, (queries, D) x (D, keys), where the
// reference broadcasts to (2N, 2N, D). For all view combinations the product of every view with
// every view is computed once and each pair of views reads its rows from it.
import { F, Tensor, cat, keep, noGrad, tensor, tidy, zeros } from '../torch/index.js';
import {
  OptionChecker, apiNames, checkViews, configNames, detachIf, gatherWith, lossPrecision,
  normalizeRows, type GatherNegatives, type Loss, type LossContext, type LossOutput,
  type OptionNamer,
} from './common.js';

export interface NtXentOptions {
  /** Softmax temperature. Default 0.5. */
  temperature?: number;
  /** Detach the keys (the side the queries are compared with). Default false. */
  stopGrad?: boolean;
  /** Keep the positive and only the k most similar negatives of each query. Default null: all. */
  topkNeg?: number | null;
  gatherNegatives?: GatherNegatives;
}

export interface NtXentMoreNegativesOptions {
  /** Views per sample: views 1 and 2 are the pair, the others only add negatives. */
  nAugs: number;
  temperature?: number;
  gatherNegatives?: GatherNegatives;
}

export interface NtXentAllCombinationsOptions {
  nAugs: number;
  /** Views 1 .. nPosAugs can be the first of a pair. Default nAugs. */
  nPosAugs?: number;
  temperature?: number;
  gatherNegatives?: GatherNegatives;
}

/** One pair of views (0-based) whose rows are queries; the pair's other view is the positive. */
interface Pair {
  first: number;
  second: number;
}

interface CoreOptions {
  owner: string;
  namer: OptionNamer;
  temperature: number;
  stopGrad: boolean;
  topkNeg: number | null;
  gather: GatherNegatives | undefined;
}

/** Masks and targets of one pair for one batch layout; built once and kept. */
interface PairLayout {
  /** (2N, K) true where a column is the query itself or the same sample in a third view. */
  excluded: Tensor;
  /** (2N) the column of each query's positive. */
  targets: Tensor;
}

/**
 * The shared computation: queries are the rows of the views named by the pairs, keys the rows
 * of all `views` (gathered across ranks). Returns one loss per pair.
 */
class ContrastiveCore {
  readonly #layouts = new Map<string, PairLayout>();

  constructor(readonly options: CoreOptions) {}

  pairLosses(views: Tensor[], pairs: readonly Pair[]): Tensor[] {
    const { owner, temperature, stopGrad, topkNeg } = this.options;
    const [n] = views[0]!.shape as [number, number];
    const used = [...new Set(pairs.flatMap((p) => [p.first, p.second]))].sort((x, y) => x - y);

    // similarities of the queries' views to every key: (|used| N, K) / temperature
    const normalized = views.map(normalizeRows);
    const local = cat(normalized, 0); // (V N, D)
    const { all, offset } = gatherWith(owner, this.options.gather, detachIf(local, stopGrad));
    const queries = used.length === views.length ? local : cat(used.map((v) => normalized[v]!), 0);
    const sims = queries.matmul(all.T).div(temperature);
    const keys = all.shape[0]!;
    const rowsOf = (view: number) => sims.narrow(0, used.indexOf(view) * n, n);

    return pairs.map((pair) => {
      const layout = this.#layout(n, views.length, keys, offset, pair, views[0]!.device);
      const logits = cat([rowsOf(pair.first), rowsOf(pair.second)], 0); // (2N, K)
      const masked = logits.maskedFill(layout.excluded, -Infinity);
      if (topkNeg === null) {
        return F.crossEntropy(masked, layout.targets, { reduction: 'sum' }).div(2 * n);
      }

      // the positive, then the k hardest negatives
      const negatives = keys - 1 - (views.length - 1);
      if (topkNeg > negatives) {
        const name = this.options.namer('topkNeg');
        throw new Error(`${owner}: option '${name}' (${topkNeg}) expected at most the negatives ` +
          `of a query, ${negatives} here`);
      }
      const column = layout.targets.unsqueeze(1);
      const positive = logits.gather(1, column);
      const [hardest] = masked.scatter(1, column, -Infinity).topk(topkNeg, 1);
      const picked = cat([positive, hardest!], 1); // (2N, 1 + k), the positive in column 0
      const first = zeros([2 * n], { dtype: 'int64', device: picked.device });
      return F.crossEntropy(picked, first, { reduction: 'sum' }).div(2 * n);
    });
  }

  dispose(): void {
    for (const layout of this.#layouts.values()) {
      layout.excluded.dispose();
      layout.targets.dispose();
    }
    this.#layouts.clear();
  }

  #layout(n: number, viewCount: number, keys: number, offset: number, pair: Pair,
    device: string): PairLayout {
    const id = [n, viewCount, keys, offset, pair.first, pair.second, device].join(':');
    let layout = this.#layouts.get(id);
    if (layout === undefined) {
      layout = noGrad(() => buildLayout(n, viewCount, keys, offset, pair, device));
      keep([layout.excluded, layout.targets]);
      this.#layouts.set(id, layout);
    }
    return layout;
  }
}

function buildLayout(n: number, viewCount: number, keys: number, offset: number, pair: Pair,
  device: string): PairLayout {
  return tidy(() => {
    // for every key column: its sample and view when it is one of this rank's rows, else -1
    const columnSample = new Int32Array(keys).fill(-1);
    const columnView = new Int32Array(keys).fill(-1);
    for (let c = 0; c < viewCount * n; c++) {
      columnSample[offset + c] = c % n;
      columnView[offset + c] = Math.floor(c / n);
    }
    const rowSample = new Int32Array(2 * n);
    const rowPartner = new Int32Array(2 * n);
    const targets: number[] = [];
    for (let r = 0; r < 2 * n; r++) {
      const i = r % n;
      const partner = r < n ? pair.second : pair.first;
      rowSample[r] = i;
      rowPartner[r] = partner;
      targets.push(offset + partner * n + i);
    }
    const on = device === 'cpu' ? {} : { device };
    const t = (a: Int32Array) => tensor(a, on);
    const sameSample = t(rowSample).unsqueeze(1).eq(t(columnSample).unsqueeze(0));
    const notPartner = t(rowPartner).unsqueeze(1).ne(t(columnView).unsqueeze(0));
    return {
      excluded: sameSample.logicalAnd(notPartner),
      targets: tensor(targets, { dtype: 'int64', ...on }),
    };
  });
}

function checkTemperature(check: OptionChecker, value: unknown): number {
  return check.positive('temperature', value ?? 0.5);
}

function checkGather(check: OptionChecker, value: unknown): GatherNegatives | undefined {
  if (value !== undefined && typeof value !== 'function') {
    check.fail('gatherNegatives', 'a function', value);
  }
  return value as GatherNegatives | undefined;
}

/** NT-Xent over views 1 and 2 (further views are ignored, as in the reference). */
export class NtXentLoss implements Loss {
  readonly type: string = 'NT_Xent';
  readonly temperature: number;
  readonly stopGrad: boolean;
  readonly topkNeg: number | null;
  readonly #core: ContrastiveCore;

  constructor(options: NtXentOptions = {}, namer: OptionNamer = apiNames) {
    const check = new OptionChecker('NT_Xent', namer);
    check.known(options, ['temperature', 'stopGrad', 'topkNeg', 'gatherNegatives']);
    this.temperature = checkTemperature(check, options.temperature);
    this.stopGrad = check.boolean('stopGrad', options.stopGrad ?? false);
    this.topkNeg = options.topkNeg === null || options.topkNeg === undefined
      ? null : check.integer('topkNeg', options.topkNeg, 1);
    this.#core = new ContrastiveCore({
      owner: 'NT_Xent', namer, temperature: this.temperature, stopGrad: this.stopGrad,
      topkNeg: this.topkNeg, gather: checkGather(check, options.gatherNegatives),
    });
  }

  forward(views: readonly Tensor[]): LossOutput {
    checkViews(this.type, views, 2, false);
    const loss = tidy(() => {
      const z = views.slice(0, 2).map(lossPrecision);
      return this.#core.pairLosses(z, [{ first: 0, second: 1 }])[0]!;
    });
    return { loss, info: { simclr: loss.item() } };
  }

  dispose(): void {
    this.#core.dispose();
  }
}

/** NT-Xent over views 1 and 2 whose negatives also come from views 3 .. nAugs. */
export class NtXentMoreNegativesLoss implements Loss {
  readonly type: string = 'NT_XentWithMoreNegatives';
  readonly nAugs: number;
  readonly temperature: number;
  readonly #core: ContrastiveCore;

  constructor(options: NtXentMoreNegativesOptions, namer: OptionNamer = apiNames) {
    const check = new OptionChecker('NT_XentWithMoreNegatives', namer);
    check.known(options, ['nAugs', 'temperature', 'gatherNegatives']);
    this.nAugs = check.integer('nAugs', options.nAugs, 2);
    this.temperature = checkTemperature(check, options.temperature);
    this.#core = new ContrastiveCore({
      owner: this.type, namer, temperature: this.temperature, stopGrad: false, topkNeg: null,
      gather: checkGather(check, options.gatherNegatives),
    });
  }

  forward(views: readonly Tensor[]): LossOutput {
    checkViews(this.type, views, this.nAugs, true);
    const pair = { first: 0, second: 1 };
    const loss = tidy(() => this.#core.pairLosses(views.map(lossPrecision), [pair])[0]!);
    return { loss, info: { simclr: loss.item() } };
  }

  dispose(): void {
    this.#core.dispose();
  }
}

/**
 * The mean of NT-Xent with more negatives over every pair of views (n, m), n <= nPosAugs < ...,
 * m > n, the pair's views taking the places of views 1 and 2.
 */
export class NtXentAllCombinationsLoss implements Loss {
  readonly type: string = 'NT_XentAllCombinations';
  readonly nAugs: number;
  readonly nPosAugs: number;
  readonly temperature: number;
  readonly pairs: readonly Pair[];
  readonly #core: ContrastiveCore;

  constructor(options: NtXentAllCombinationsOptions, namer: OptionNamer = apiNames) {
    const check = new OptionChecker('NT_XentAllCombinations', namer);
    check.known(options, ['nAugs', 'nPosAugs', 'temperature', 'gatherNegatives']);
    this.nAugs = check.integer('nAugs', options.nAugs, 2);
    this.nPosAugs = check.integer('nPosAugs', options.nPosAugs ?? this.nAugs, 1, this.nAugs);
    this.temperature = checkTemperature(check, options.temperature);
    const pairs: Pair[] = [];
    for (let first = 0; first < this.nPosAugs; first++) {
      for (let second = first + 1; second < this.nAugs; second++) pairs.push({ first, second });
    }
    this.pairs = pairs;
    this.#core = new ContrastiveCore({
      owner: this.type, namer, temperature: this.temperature, stopGrad: false, topkNeg: null,
      gather: checkGather(check, options.gatherNegatives),
    });
  }

  forward(views: readonly Tensor[]): LossOutput {
    checkViews(this.type, views, this.nAugs, true);
    const info: Record<string, number> = {};
    const loss = tidy(() => {
      const losses = this.#core.pairLosses(views.map(lossPrecision), this.pairs);
      noGrad(() => losses.forEach((l, i) => {
        info[i === 0 ? 'simclr' : `simclr_comb${i + 1}`] = l.item();
      }));
      let total = losses[0]!;
      for (const l of losses.slice(1)) total = total.add(l);
      return total.div(losses.length);
    });
    return { loss, info };
  }

  dispose(): void {
    this.#core.dispose();
  }
}

export function ntXentFromConfig(args: Record<string, unknown>,
  context: LossContext = {}): NtXentLoss {
  const check = new OptionChecker('NT_Xent', configNames);
  check.known(args, ['temperature', 'stop_grad', 'topk_neg']);
  return new NtXentLoss({
    temperature: args.temperature as number | undefined,
    stopGrad: args.stop_grad as boolean | undefined,
    topkNeg: args.topk_neg as number | null | undefined,
    gatherNegatives: context.gatherNegatives,
  }, configNames);
}

export function ntXentMoreNegativesFromConfig(args: Record<string, unknown>,
  context: LossContext = {}): NtXentMoreNegativesLoss {
  const check = new OptionChecker('NT_XentWithMoreNegatives', configNames);
  check.known(args, ['n_augs', 'temperature']);
  return new NtXentMoreNegativesLoss({
    nAugs: args.n_augs as number,
    temperature: args.temperature as number | undefined,
    gatherNegatives: context.gatherNegatives,
  }, configNames);
}

export function ntXentAllCombinationsFromConfig(args: Record<string, unknown>,
  context: LossContext = {}): NtXentAllCombinationsLoss {
  const check = new OptionChecker('NT_XentAllCombinations', configNames);
  check.known(args, ['n_augs', 'n_pos_augs', 'temperature']);
  return new NtXentAllCombinationsLoss({
    nAugs: args.n_augs as number,
    nPosAugs: (args.n_pos_augs ?? undefined) as number | undefined,
    temperature: args.temperature as number | undefined,
    gatherNegatives: context.gatherNegatives,
  }, configNames);
}
