// Weighted k-nearest-neighbour classification (Wu et al. 2018): cosine similarity to a bank of
// L2-normalised features, the top max(k) neighbours vote for their class with weight
// exp(sim / T), prediction = arg max (ties go to the lower class index).
import { F, noGrad, tidy, keep, oneHot, type Tensor } from '../torch/index.js';

export interface KnnOptions {
  /** Neighbour counts to evaluate, e.g. [10, 20, 100, 200]. */
  k: number[];
  temperature?: number;
  numClasses: number;
  /** Upper bound of the similarity block in bytes; queries are processed in chunks to fit. */
  maxBlockBytes?: number;
  /** Normalise bank and queries here (false when they already are). */
  normalize?: boolean;
}

function check(options: KnnOptions, bankSize: number): void {
  if (!Array.isArray(options.k) || options.k.length === 0 ||
    options.k.some((k) => !Number.isInteger(k) || k < 1)) {
    throw new Error(`knn: 'k' expected a non-empty list of positive integers, got ${JSON.stringify(options.k)}`);
  }
  if (!Number.isInteger(options.numClasses) || options.numClasses < 1) {
    throw new Error(`knn: 'numClasses' expected a positive integer, got ${options.numClasses}`);
  }
  if (bankSize < 1) throw new Error('knn: the feature bank is empty');
  const t = options.temperature ?? 0.07;
  if (!(t > 0)) throw new Error(`knn: 'temperature' expected a number > 0, got ${t}`);
}

/**
 * Predicted class per query for every k. When k exceeds the bank size, all bank entries vote
 * (the result is then the same as for k = bank size).
 */
export function knnPredict(bank: Tensor, bankLabels: Tensor, queries: Tensor,
  options: KnnOptions): Map<number, Int32Array> {
  const n = bank.size(0);
  check(options, n);
  const temperature = options.temperature ?? 0.07;
  const kMax = Math.min(Math.max(...options.k), n);
  const q = queries.size(0);
  const rowsPerChunk = Math.max(1, Math.floor((options.maxBlockBytes ?? 256 * 2 ** 20) / (4 * n)));
  const out = new Map<number, Int32Array>(options.k.map((k) => [k, new Int32Array(q)]));

  noGrad(() => {
    const prepared = tidy(() => {
      const b = options.normalize ?? true ? F.normalize(bank.float(), { dim: 1 }) : bank.float();
      const labels = bankLabels.long();
      return keep([b, labels]);
    });
    const [b, labels] = prepared as [Tensor, Tensor];
    try {
      const [low, high] = tidy(() => [labels.min().item(), labels.max().item()]);
      if (low! < 0 || high! >= options.numClasses) {
        throw new Error(`knn: bank labels span ${low} to ${high}, outside 0 .. numClasses - 1 = ` +
          `${options.numClasses - 1}`);
      }
      for (let start = 0; start < q; start += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, q - start);
        tidy(() => {
          const chunk = queries.narrow(0, start, rows).float();
          const qn = options.normalize ?? true ? F.normalize(chunk, { dim: 1 }) : chunk;
          const sim = qn.mm(b.T);                                            // (rows, N)
          const [topSim, topIdx] = sim.topk(kMax, 1);                        // (rows, kMax)
          const weights = topSim.div(temperature).exp();
          const neighbourLabels = labels.index([topIdx]);                    // (rows, kMax)
          const votes = oneHot(neighbourLabels, options.numClasses).float()
            .mul(weights.unsqueeze(2));                                      // (rows, kMax, C)
          const cumulative = votes.cumsum(1);
          for (const k of options.k) {
            const kk = Math.min(k, kMax);
            const scores = cumulative.select(1, kk - 1);                     // (rows, C)
            const pred = firstArgmax(scores);
            out.get(k)!.set(pred, start);
          }
        });
      }
    } finally {
      b.dispose();
      labels.dispose();
    }
  });
  return out;
}

// Arg max of each row, the lowest index among equal maxima.
function firstArgmax(scores: Tensor): Int32Array {
  const [rows, cols] = scores.shape as [number, number];
  const data = scores.data() as Float32Array;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bestValue = data[r * cols]!;
    for (let c = 1; c < cols; c++) {
      const v = data[r * cols + c]!;
      if (v > bestValue) {
        best = c;
        bestValue = v;
      }
    }
    out[r] = best;
  }
  return out;
}

/** Number of correct predictions per k. */
export function knnCorrect(bank: Tensor, bankLabels: Tensor, queries: Tensor, queryLabels: Tensor,
  options: KnnOptions): Map<number, number> {
  const predictions = knnPredict(bank, bankLabels, queries, options);
  const truth = queryLabels.toFlatArray();
  const out = new Map<number, number>();
  for (const [k, pred] of predictions) {
    let correct = 0;
    for (let i = 0; i < pred.length; i++) if (pred[i] === truth[i]) correct++;
    out.set(k, correct);
  }
  return out;
}

/** Accuracy in percent per k, keyed as the reference logs it (`knn@20`). */
export function knnAccuracy(bank: Tensor, bankLabels: Tensor, queries: Tensor, queryLabels: Tensor,
  options: KnnOptions): Record<string, number> {
  const correct = knnCorrect(bank, bankLabels, queries, queryLabels, options);
  const total = queries.size(0);
  const out: Record<string, number> = {};
  for (const [k, c] of correct) out[`knn@${k}`] = (100 * c) / total;
  return out;
}

