// The relaxed sort: relaxed permutations are doubly stochastic and reproduce the sorted values,
// large steepness approaches the hard sort, gradients match float64 finite differences for every
// distribution, the group product equals the permutation times the basis, and memory is freed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DISTRIBUTIONS, DiffSorter, bitonicNetwork, diffSort, relaxedAlpha, type Distribution,
} from '../src/diffsort/index.js';
import {
  Generator, setNumThreads, liveTensorCount, noGrad, randn, tensor, tidy, type Tensor,
} from '../src/torch/index.js';

// One intra-op thread: these tensors are tiny, and a busy machine makes thread hand-offs slow.
setNumThreads(1);

const NETWORKS = ['odd_even', 'bitonic'] as const;

function close(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance,
    `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);
}

test('every relaxed permutation is doubly stochastic, non-negative, and sorted = x @ P', () => {
  const generator = new Generator(1);
  for (const network of NETWORKS) {
    for (const distribution of DISTRIBUTIONS) {
      for (const n of [2, 5, 8, 11]) {
        tidy(() => {
          const x = randn([4, n], { dtype: 'float64', generator }).mul(3);
          const { sorted, permutation } = diffSort(x, { network, distribution, steepness: 2 });
          assert.deepEqual(permutation.shape, [4, n, n]);
          const what = `${network} ${distribution} n=${n}`;
          for (const sums of [permutation.sum(1), permutation.sum(2)]) {
            for (const s of sums.toFlatArray()) close(s, 1, 1e-12, `${what}: row/column sum`);
          }
          assert.ok(permutation.toFlatArray().every((p) => p >= -1e-15), `${what}: negative entry`);
          const product = x.unsqueeze(1).bmm(permutation).squeeze(1).toFlatArray();
          sorted.toFlatArray().forEach((v, i) => close(v, product[i]!, 1e-12, `${what}: x @ P`));
        });
      }
    }
  }
});

test('with a large steepness the relaxed sort is the hard sort', () => {
  const generator = new Generator(2);
  for (const network of NETWORKS) {
    for (const distribution of DISTRIBUTIONS) {
      tidy(() => {
        // well separated values: the relaxation's error shrinks with steepness x gap
        const x = randn([3, 7], { dtype: 'float64', generator }).argsort(1).to('float64');
        const { sorted, permutation } = diffSort(x, { network, distribution, steepness: 1e6 });
        const hard = x.sort(1)[0].toFlatArray();
        sorted.toFlatArray().forEach((v, i) => close(v, hard[i]!, 1e-4,
          `${network} ${distribution}`));
        for (const p of permutation.toFlatArray()) {
          assert.ok(p < 1e-4 || p > 1 - 1e-4, `${network} ${distribution}: entry ${p} is not 0/1`);
        }
      });
    }
  }
});

test('alpha: closed forms at a few points, and sigma(-v) = 1 - sigma(v)', () => {
  const v = tensor([-2, -0.3, -0.01, 0, 0.01, 0.3, 2], { dtype: 'float64' });
  const s = 3;
  const expected: Record<Distribution, (x: number) => number> = {
    logistic: (x) => 1 / (1 + Math.exp(-s * x)),
    logistic_phi: (x) => 1 / (1 + Math.exp(-(s * x) / (Math.abs(x) + 1e-10) ** 0.25)),
    gaussian: (x) => normalCdf(s * x),
    reciprocal: (x) => 0.5 * ((s * x) / (2 + Math.abs(s * x)) + 1),
    cauchy: (x) => Math.atan(s * x) / Math.PI + 0.5,
    optimal: (x) => {
      const u = s * x;
      const outside = u > 0.25 ? 1 : u < -0.25 ? -1 : 0;
      const clamped = Math.min(Math.max(u, -0.25), 0.25);
      return clamped + 0.5 + outside * (0.25 - 1 / (16 * (Math.abs(u) + 1e-10)));
    },
  };
  for (const distribution of DISTRIBUTIONS) {
    tidy(() => {
      const alpha = relaxedAlpha(v, { distribution, steepness: s, artLambda: 0.25 }).toFlatArray();
      v.toFlatArray().forEach((x, i) => {
        close(alpha[i]!, expected[distribution](x), 1e-7, `${distribution}(${x})`);
        close(alpha[i]! + alpha[alpha.length - 1 - i]!, 1, 1e-12, `${distribution} symmetry`);
      });
    });
  }
  v.dispose();
});

/** Abramowitz-Stegun 7.1.26 is too coarse; integrate erf's series instead. */
function normalCdf(x: number): number {
  const z = x / Math.SQRT2;
  let term = z;
  let sum = z;
  for (let n = 1; n < 200; n++) {
    term *= (-z * z) / n;
    sum += term / (2 * n + 1);
  }
  return 0.5 + sum / Math.sqrt(Math.PI);
}

test('gradients match float64 central finite differences for every distribution', () => {
  const generator = new Generator(3);
  for (const network of NETWORKS) {
    for (const distribution of DISTRIBUTIONS) {
      tidy(() => {
        const n = 5;
        const x0 = randn([2, n], { dtype: 'float64', generator });
        const weightsSorted = randn([2, n], { dtype: 'float64', generator });
        const weightsPerm = randn([2, n, n], { dtype: 'float64', generator });
        const sorter = new DiffSorter(n, { network, distribution, steepness: 1.5 });
        try {
          const objective = (x: Tensor) => tidy(() => {
            const { sorted, permutation } = sorter.sort(x);
            return sorted.mul(weightsSorted).sum().add(permutation.mul(weightsPerm).sum());
          });
          const x = x0.clone().requiresGrad_();
          objective(x).backward();
          const analytic = x.grad!.toFlatArray();
          const base = x0.toFlatArray();
          const h = 1e-6;
          base.forEach((_, i) => {
            const shifted = (delta: number) => noGrad(() => {
              const values = [...base];
              values[i]! += delta;
              return objective(tensor(Float64Array.from(values), { shape: [2, n] })).item();
            });
            const numeric = (shifted(h) - shifted(-h)) / (2 * h);
            close(analytic[i]!, numeric, 1e-6 * (1 + Math.abs(numeric)),
              `${network} ${distribution} d/dx${i}`);
          });
        } finally {
          sorter.dispose();
        }
      });
    }
  }
});

test('sortTimes equals the permutation times the basis, values and gradients', () => {
  const generator = new Generator(4);
  for (const network of NETWORKS) {
    tidy(() => {
      const n = 9;
      const sorter = new DiffSorter(n, { network, distribution: 'cauchy', steepness: 2 });
      try {
        const basis = randn([n, 3], { dtype: 'float64', generator });
        const weights = randn([5, n, 3], { dtype: 'float64', generator });
        const x = randn([5, n], { dtype: 'float64', generator }).requiresGrad_();
        const { permutation } = sorter.sort(x);
        const direct = permutation.matmul(basis);
        direct.mul(weights).sum().backward();
        const gradDirect = x.grad!.toFlatArray();
        x.grad = null;
        const { product } = sorter.sortTimes(x, basis);
        product.mul(weights).sum().backward();
        const expected = direct.toFlatArray();
        product.toFlatArray().forEach((v, i) => close(v, expected[i]!, 1e-12,
          `${network} product`));
        x.grad!.toFlatArray().forEach((g, i) => close(g, gradDirect[i]!, 1e-12,
          `${network} gradient`));
      } finally {
        sorter.dispose();
      }
    });
  }
});

test('float32 gives the float64 result to float32 precision', () => {
  tidy(() => {
    const x = randn([6, 12], { dtype: 'float64', generator: new Generator(5) });
    const a = diffSort(x, { network: 'bitonic', steepness: 3 });
    const b = diffSort(x.float(), { network: 'bitonic', steepness: 3 });
    assert.equal(b.permutation.dtype, 'float32');
    const expected = a.permutation.toFlatArray();
    b.permutation.toFlatArray().forEach((p, i) => close(p, expected[i]!, 1e-5,
      'float32 permutation'));
  });
});

test('a network given as an object is used as it is', () => {
  tidy(() => {
    const network = bitonicNetwork(6);
    const x = randn([2, 6], { dtype: 'float64', generator: new Generator(6) });
    const a = diffSort(x, { network, steepness: 4 }).sorted.toFlatArray();
    const b = diffSort(x, { network: 'bitonic', steepness: 4 }).sorted.toFlatArray();
    assert.deepEqual(a, b);
  });
});

test('bad arguments are refused, naming the argument', () => {
  tidy(() => {
    const x = randn([2, 4]);
    assert.throws(() => diffSort(x, { distribution: 'softmax' as never }),
      /argument 'distribution' expected one of logistic/);
    assert.throws(() => diffSort(x, { steepness: 0 }),
      /argument 'steepness' expected a finite number > 0, got 0/);
    assert.throws(() => diffSort(x, { network: 'bubble' as never }),
      /argument 'network' expected one of odd_even, bitonic/);
    assert.throws(() => diffSort(randn([2, 1])), /rows of length >= 2, got 1/);
    assert.throws(() => diffSort(randn([4])), /expected shape \(B, n\), got \[4\]/);
    assert.throws(() => diffSort(x.to('int64')), /expected float32 or float64, got int64/);
    assert.throws(() => new DiffSorter(4).sort(randn([2, 5])),
      /expected shape \(B, 4\), got \[2, 5\]/);
    assert.throws(() => new DiffSorter(5, { network: bitonicNetwork(4) }),
      /has 4 wires, expected 5/);
    assert.throws(() => new DiffSorter(4).sortTimes(x, randn([3, 2])),
      /'basis' expected a Tensor \(4, g\), got \[3, 2\]/);
  });
});

test('sorting many batches leaves no tensor behind', () => {
  const sorter = new DiffSorter(10, { network: 'odd_even', steepness: 2 });
  const run = () => tidy(() => {
    const x = randn([16, 10]).requiresGrad_();
    const { sorted, permutation } = sorter.sort(x);
    sorted.sum().add(permutation.select(2, 0).sum()).backward();
  });
  run(); // builds the sorter's index tensors
  const before = liveTensorCount();
  for (let i = 0; i < 50; i++) run();
  assert.equal(liveTensorCount(), before);
  sorter.dispose();
  assert.equal(liveTensorCount(), before - 3 * 10); // 3 index tensors per layer
});
