// The GroCo loss (spec section 2): for every anchor view, its positives and its hardest
// negatives are ranked by a differentiable sorting network; the loss asks the relaxed permutation
// to keep every negative below every positive.
import { DiffSorter } from '../diffsort/index.js';
import {
  F, Tensor, cat, keep, noGrad, ones, tensor, tidy, zeros, type DType,
} from '../torch/index.js';
import {
  OptionChecker, apiNames, checkViews, configNames, gatherWith, lossPrecision, normalizeRows,
  type GatherNegatives, type Loss, type LossContext, type LossOutput, type OptionNamer,
} from './common.js';
import {
  Workspace, anchorSimilarities, type AnchorSimilaritiesOptions,
} from './similarities.js';

export interface GroCoOptions {
  /** Views per sample. */
  nAugs: number;
  /** Views 1 .. nPosAugs may serve as positives (the global crops of multi-crop). Default nAugs. */
  nPosAugs?: number;
  /** Hardest negatives ranked per anchor. Default 10. */
  topkNeg?: number;
  /** Steepness of the relaxed comparators (cauchy). Default 1. */
  steepness?: number;
  /** Detach the positives and the negatives (only the anchor gets a gradient). Default true. */
  stopGrad?: boolean;
  gatherNegatives?: GatherNegatives;
  /** How the similarities are differentiated (see `anchorSimilarities`); default by device. */
  backward?: AnchorSimilaritiesOptions['backward'];
}

const OPTION_KEYS = [
  'nAugs', 'nPosAugs', 'topkNeg', 'steepness', 'stopGrad', 'gatherNegatives', 'backward',
];

/** The network is fixed by the method: odd-even transposition with cauchy comparators. */
const SORTER_OPTIONS = { network: 'odd_even', distribution: 'cauchy', artLambda: 0.25 } as const;

export class GroCoLoss implements Loss {
  readonly type = 'GroCo';
  readonly nAugs: number;
  readonly nPosAugs: number;
  readonly topkNeg: number;
  readonly steepness: number;
  readonly stopGrad: boolean;
  readonly #gather: GatherNegatives | undefined;
  readonly #namer: OptionNamer;
  readonly #backward: AnchorSimilaritiesOptions['backward'];
  readonly #sorters = new Map<string, { sorter: DiffSorter; groups: Tensor }>();
  readonly #workspace = new Workspace();

  constructor(options: GroCoOptions, namer: OptionNamer = apiNames) {
    const check = new OptionChecker('GroCo', namer);
    if (options === null || typeof options !== 'object') {
      check.fail('nAugs', 'an options object', options);
    }
    check.known(options, OPTION_KEYS);
    this.nAugs = check.integer('nAugs', options.nAugs, 2);
    // every anchor needs a positive: a global view needs another global one
    this.nPosAugs = check.integer('nPosAugs', options.nPosAugs ?? this.nAugs, 2, this.nAugs);
    this.topkNeg = check.integer('topkNeg', options.topkNeg ?? 10, 1);
    this.steepness = check.positive('steepness', options.steepness ?? 1);
    this.stopGrad = check.boolean('stopGrad', options.stopGrad ?? true);
    if (options.gatherNegatives !== undefined && typeof options.gatherNegatives !== 'function') {
      check.fail('gatherNegatives', 'a function', options.gatherNegatives);
    }
    this.#gather = options.gatherNegatives;
    this.#namer = namer;
    const backward = options.backward;
    if (backward !== undefined && backward !== 'fused' && backward !== 'autograd') {
      check.fail('backward', "'fused' or 'autograd'", backward);
    }
    this.#backward = options.backward;
  }

  /** The loss over `nAugs` views (B, D); see the spec for the ranking it asks for. */
  forward(views: readonly Tensor[]): LossOutput {
    checkViews('GroCo', views, this.nAugs, true);
    let info: Record<string, number> = {};
    const loss = tidy(() => {
      const z = views.map(lossPrecision);
      // every view L2-normalised once, as constants; with a graph too when the positives and
      // negatives are not detached
      const rows = noGrad(() => z.map(normalizeRows));
      const tracked = this.stopGrad ? rows : z.map(normalizeRows);
      let total: Tensor | undefined;
      for (let a = 0; a < this.nAugs; a++) {
        const log = a === 0 ? (i: Record<string, number>) => { info = i; } : undefined;
        const anchorLoss = this.#anchorLoss(z[a]!, rows[a]!, tracked, a, log);
        total = total === undefined ? anchorLoss : total.add(anchorLoss);
      }
      return total!.div(this.nAugs);
    });
    return { loss, info };
  }

  dispose(): void {
    for (const { sorter, groups } of this.#sorters.values()) {
      sorter.dispose();
      groups.dispose();
    }
    this.#workspace.dispose();
    this.#sorters.clear();
  }

  /**
   * `anchor`: view a as it enters the loss; `rows`: its normalised rows without a graph;
   * `tracked`: every view's normalised rows, with a graph unless stop_grad.
   */
  #anchorLoss(anchor: Tensor, rows: Tensor, tracked: Tensor[], a: number,
    log?: (info: Record<string, number>) => void): Tensor {
    const k = this.topkNeg;
    const { all, offset } = gatherWith('GroCo', this.#gather, tracked[a]!);
    const available = all.shape[0]! - 1;
    if (k > available) {
      throw new Error(`GroCo: option '${this.#namer('topkNeg')}' (${k}) expected at most the ` +
        `negatives of an anchor, batch x world - 1 = ${available}`);
    }

    // cosine similarities to the positives (each vector divided by max(norm, 1e-8), as
    // torch.nn.CosineSimilarity) and to the k hardest negatives, both ascending
    const positives = tracked.slice(0, this.nPosAugs).filter((_, p) => p !== a);
    const similarities = anchorSimilarities({
      anchor, rows, keys: all, offset, k, positives, workspace: this.#workspace,
    }, { backward: this.#backward });
    const [pos] = similarities.positives.sort(1); // (B, p)
    const neg = similarities.negatives; // (B, k)

    // relaxed ranking of [negatives, positives]; ground truth: negatives first. The permutation
    // is only needed summed over the ranks of each group: P @ [negative ranks, positive ranks]
    const sims = cat([neg, pos!], 1); // (B, m)
    const m = sims.shape[1]!;
    const { sorter, groups } = this.#sorter(m, sims.dtype);
    const mass = sorter.sortTimes(sims, groups).product; // (B, m, 2)
    const qNeg = mass.select(2, 0).clamp(0, 1); // (B, m)
    const qPos = mass.select(2, 1).clamp(0, 1);
    const [tNeg, tPos] = groupTargets(sims.shape[0]!, m, k, sims.dtype);
    const loss = F.binaryCrossEntropy(qPos, tPos).add(F.binaryCrossEntropy(qNeg, tNeg)).div(2);

    if (log !== undefined) log(noGrad(() => groCoInfo(pos!, neg, loss)));
    return loss;
  }

  /** The sorter for m values and the indicator columns (m, 2) of negative and positive ranks. */
  #sorter(m: number, dtype: DType): { sorter: DiffSorter; groups: Tensor } {
    const key = `${m}:${dtype}`;
    let entry = this.#sorters.get(key);
    if (entry === undefined) {
      const k = this.topkNeg;
      const rows = Array.from({ length: m }, (_, rank) => (rank < k ? [1, 0] : [0, 1]));
      entry = {
        sorter: new DiffSorter(m, { ...SORTER_OPTIONS, steepness: this.steepness }),
        groups: keep(tensor(rows, { dtype })),
      };
      this.#sorters.set(key, entry);
    }
    return entry;
  }
}

/** Targets per input row: t_neg = 1 for the k negatives, t_pos = 1 - t_neg. */
function groupTargets(batch: number, m: number, k: number, dtype: 'float32' | 'float64' | string):
  [Tensor, Tensor] {
  const options = { dtype: dtype as 'float32' | 'float64' };
  const neg = cat([ones([batch, k], options), zeros([batch, m - k], options)], 1);
  return [neg, neg.rsub(1)];
}

/** The reference's logged statistics of the first anchor, batch means. */
function groCoInfo(pos: Tensor, neg: Tensor, loss: Tensor): Record<string, number> {
  const meanOf = (t: Tensor, column: number) => tidy(() => t.select(1, column).mean().item());
  const info = {
    info_pos_max: meanOf(pos, pos.shape[1]! - 1),
    info_pos_min: meanOf(pos, 0),
    info_neg_max: meanOf(neg, neg.shape[1]! - 1),
    info_neg_min: meanOf(neg, 0),
    info_pos_neg_dist: 0,
    sorting: loss.item(),
  };
  info.info_pos_neg_dist = info.info_pos_min - info.info_neg_max;
  return info;
}

/** Builds the loss from the reference's config args (`n_augs`, `topk_neg`, ...). */
export function groCoFromConfig(args: Record<string, unknown>,
  context: LossContext = {}): GroCoLoss {
  const check = new OptionChecker('GroCo', configNames);
  check.known(args, ['n_augs', 'n_pos_augs', 'topk_neg', 'steepness', 'stop_grad']);
  if (args.n_augs === undefined) check.fail('nAugs', 'an integer >= 2', undefined);
  return new GroCoLoss({
    nAugs: args.n_augs as number,
    nPosAugs: (args.n_pos_augs ?? undefined) as number | undefined,
    topkNeg: args.topk_neg as number | undefined,
    steepness: args.steepness as number | undefined,
    stopGrad: args.stop_grad as boolean | undefined,
    gatherNegatives: context.gatherNegatives,
  }, configNames);
}
