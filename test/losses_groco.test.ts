// The GroCo loss beyond the fixtures: it is near its minimum when every positive sits far above
// every negative and rises when one positive drops below a negative; it does not depend on the
// order of the positives or of the negatives; its gradients match float64 finite differences;
// the fused and the autograd backward agree; the negatives hook; options; memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroCoLoss, createLoss, normalizeRows, type GroCoOptions } from '../src/losses/index.js';
import {
  Generator, setNumThreads, cat, liveTensorCount, noGrad, randn, tensor, tidy, type Tensor,
} from '../src/torch/index.js';

// One intra-op thread: these tensors are tiny, and a busy machine makes thread hand-offs slow.
setNumThreads(1);

function close(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance,
    `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);
}

/** Runs the loss once; returns its value, info and the gradient of each view. */
function evaluate(options: GroCoOptions, views: Tensor[]) {
  const loss = new GroCoLoss(options);
  try {
    return tidy(() => {
      const leaves = views.map((v) => v.detach().requiresGrad_());
      const out = loss.forward(leaves);
      out.loss.backward();
      const grads = leaves.map((v) => v.grad!.toFlatArray());
      return { value: out.loss.item(), info: out.info, grads };
    });
  } finally {
    loss.dispose();
  }
}

/** n views of B samples: each sample's views are its vector plus a little noise. */
function clusteredViews(batch: number, dim: number, views: number, noise: number, seed: number) {
  const generator = new Generator(seed);
  const centres = randn([batch, dim], { dtype: 'float64', generator });
  return Array.from({ length: views }, () =>
    centres.add(randn([batch, dim], { dtype: 'float64', generator }).mul(noise)));
}

test('positives far above every negative: the loss is near its minimum; one positive moved ' +
  'below a negative raises it', () => {
  tidy(() => {
    const options = { nAugs: 2, topkNeg: 4, steepness: 20 };
    // 64 dimensions: unrelated samples have similarities around 0, a sample's views about 1
    const views = clusteredViews(12, 64, 2, 0.05, 1);
    const good = evaluate(options, views);
    assert.ok(good.info.info_pos_min! > 0.9 && good.info.info_neg_max! < 0.6,
      JSON.stringify(good.info));

    // the ranking is right for every row, so the loss is what the relaxation leaves: at a
    // positive-negative gap of 1 cauchy's alpha with steepness 20 is 0.984
    assert.ok(good.value < 0.08, `loss ${good.value}`);

    // sample 0's second view becomes sample 1's: its positive is now below its hardest negative
    const moved = views.map((v) => v.clone());
    moved[1]!.select(0, 0).copy_(views[1]!.select(0, 1));
    const bad = evaluate(options, moved);
    assert.ok(bad.value > good.value + 0.01, `loss ${bad.value} after, ${good.value} before`);
  });
});

test('the loss falls as the positives move further above the negatives', () => {
  tidy(() => {
    const values = [1.0, 0.5, 0.2, 0.05].map((noise) =>
      evaluate({ nAugs: 2, topkNeg: 3, steepness: 5 }, clusteredViews(10, 32, 2, noise, 2)).value);
    for (let i = 1; i < values.length; i++) {
      assert.ok(values[i]! < values[i - 1]!, `losses ${values.join(', ')} should fall`);
    }
  });
});

test('invariant to the order of the samples (negatives) and of the views (positives)', () => {
  tidy(() => {
    const views = clusteredViews(10, 16, 4, 0.8, 3);
    const options = { nAugs: 4, topkNeg: 5, steepness: 2 };
    const base = evaluate(options, views);

    // the samples in another order, the same order in every view
    const order = tensor([3, 7, 0, 9, 1, 5, 2, 8, 6, 4], { dtype: 'int64' });
    const shuffled = evaluate(options, views.map((v) => v.indexSelect(0, order)));
    close(shuffled.value, base.value, 1e-12, 'samples reordered');

    // the positive views in another order
    const reordered = evaluate(options, [views[2]!, views[0]!, views[3]!, views[1]!]);
    close(reordered.value, base.value, 1e-12, 'views reordered');

    // multi-crop: the small crops (views 3 .. 6) in another order, and the two global views swapped
    const crops = clusteredViews(10, 16, 6, 0.8, 4);
    const multi = { nAugs: 6, nPosAugs: 2, topkNeg: 4, steepness: 1 };
    const a = evaluate(multi, crops).value;
    const b = evaluate(multi, [1, 0, 5, 3, 2, 4].map((v) => crops[v]!)).value;
    close(b, a, 1e-12, 'multi-crop views reordered');
  });
});

// With stop_grad the gradient deliberately ignores the positives' and negatives' dependence on
// the input, so only the loss without it is the derivative finite differences measure.
test('gradients match float64 finite differences (stop_grad off, 2 views and multi-crop)', () => {
  const cases: GroCoOptions[] = [
    { nAugs: 2, topkNeg: 3, steepness: 2, stopGrad: false },
    { nAugs: 4, nPosAugs: 2, topkNeg: 2, steepness: 1, stopGrad: false },
    { nAugs: 3, topkNeg: 4, steepness: 1, stopGrad: false, backward: 'autograd' },
  ];
  for (const options of cases) {
    tidy(() => {
      const views = clusteredViews(6, 5, options.nAugs, 0.7, 5);
      const { grads } = evaluate(options, views);
      const loss = new GroCoLoss(options);
      try {
        const at = (v: number, i: number, delta: number) => noGrad(() => tidy(() => {
          const shifted = views.map((t) => t.clone());
          const flat = shifted[v]!.view([-1]);
          flat.narrow(0, i, 1).add_(delta);
          return loss.forward(shifted).loss.item();
        }));
        const h = 1e-6;
        views.forEach((view, v) => {
          for (let i = 0; i < view.numel; i += 3) {
            const numeric = (at(v, i, h) - at(v, i, -h)) / (2 * h);
            close(grads[v]![i]!, numeric, 1e-7 + 1e-5 * Math.abs(numeric),
              `${JSON.stringify(options)} view ${v + 1} entry ${i}`);
          }
        });
      } finally {
        loss.dispose();
      }
    });
  }
});

test('the fused backward and the autograd backward give the same gradients', () => {
  for (const stopGrad of [true, false]) {
    tidy(() => {
      const views = clusteredViews(40, 24, 3, 0.6, 6).map((v) => v.float());
      const options = { nAugs: 3, topkNeg: 6, steepness: 1.5, stopGrad };
      const fused = evaluate({ ...options, backward: 'fused' }, views);
      const autograd = evaluate({ ...options, backward: 'autograd' }, views);
      close(fused.value, autograd.value, 0, `stop_grad ${stopGrad}: loss`);
      fused.grads.forEach((g, v) => g.forEach((x, i) =>
        close(x, autograd.grads[v]![i]!, 1e-8, `stop_grad ${stopGrad}: view ${v + 1} entry ${i}`)));
    });
  }
});

test('negatives gathered through the hook: two ranks give the loss of the whole batch', () => {
  tidy(() => {
    const views = clusteredViews(16, 12, 2, 0.7, 7);
    const options = { nAugs: 2, topkNeg: 5, steepness: 1 };
    const whole = evaluate(options, views).value;

    // each "rank" holds 8 samples; its hook returns both ranks' rows of the same view
    const halves = [0, 1].map((r) => views.map((v) => v.narrow(0, 8 * r, 8)));
    const rowsOf = (v: number) => cat(halves.map((h) => noGrad(() => normalizeRows(h[v]!))), 0);
    const perRank = [0, 1].map((rank) => {
      let call = 0;
      const loss = new GroCoLoss({
        ...options,
        gatherNegatives: (rows) => {
          assert.deepEqual(rows.shape, [8, 12]);
          return { all: rowsOf(call++ % 2), offset: 8 * rank };
        },
      });
      try {
        return loss.forward(halves[rank]!).loss.item();
      } finally {
        loss.dispose();
      }
    });
    close((perRank[0]! + perRank[1]!) / 2, whole, 1e-12, 'mean over ranks');
  });
});

test('float16 and bfloat16 views are computed in float32', () => {
  tidy(() => {
    const views = clusteredViews(12, 16, 2, 0.5, 8);
    const loss = new GroCoLoss({ nAugs: 2, topkNeg: 4 });
    try {
      for (const dtype of ['bfloat16', 'float16'] as const) {
        const low = views.map((v) => v.to(dtype));
        const out = loss.forward(low);
        assert.equal(out.loss.dtype, 'float32');
        const reference = loss.forward(low.map((v) => v.float())).loss.item();
        assert.equal(out.loss.item(), reference);
      }
    } finally {
      loss.dispose();
    }
  });
});

test('logged statistics are the reference\'s keys, for the first anchor', () => {
  tidy(() => {
    const { info } = evaluate({ nAugs: 3, topkNeg: 4 }, clusteredViews(12, 8, 3, 0.5, 9));
    assert.deepEqual(Object.keys(info).sort(), ['info_neg_max', 'info_neg_min', 'info_pos_max',
      'info_pos_min', 'info_pos_neg_dist', 'sorting']);
    assert.ok(info.info_pos_max! >= info.info_pos_min! && info.info_neg_max! >= info.info_neg_min!);
    close(info.info_pos_neg_dist!, info.info_pos_min! - info.info_neg_max!, 0, 'pos_neg_dist');
  });
});

test('options are checked up front, naming the option', () => {
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ n_augs: 2, topk_neg: 0 }, /GroCo: option 'topk_neg' expected an integer >= 1, got 0/],
    [{ n_augs: 1 }, /option 'n_augs' expected an integer >= 2, got 1/],
    [{ n_augs: 4, n_pos_augs: 1 }, /option 'n_pos_augs' expected an integer in \[2, 4\], got 1/],
    [{ n_augs: 2, n_pos_augs: 3 }, /option 'n_pos_augs' expected an integer in \[2, 2\], got 3/],
    [{ n_augs: 2, steepness: -1 }, /option 'steepness' expected a finite number > 0, got -1/],
    [{ n_augs: 2, stop_grad: 'yes' }, /option 'stop_grad' expected true or false, got 'yes'/],
    [{ n_augs: 2, topk: 3 }, /unknown option 'topk' \(known: n_augs, n_pos_augs/],
    [{}, /option 'n_augs' expected an integer >= 2, got undefined/],
  ];
  for (const [args, message] of refused) assert.throws(() => createLoss('GroCo', args), message);
  assert.throws(() => new GroCoLoss({ nAugs: 2, topkNeg: 2.5 }),
    /option 'topkNeg' expected an integer >= 1/);

  tidy(() => {
    const loss = createLoss('GroCo', { n_augs: 2, topk_neg: 8 });
    try {
      const small = clusteredViews(8, 4, 2, 0.5, 10);
      assert.throws(() => loss.forward(small),
        /option 'topk_neg' \(8\) expected at most the negatives of an anchor, batch x world - 1 = 7/
      );
      assert.throws(() => loss.forward(small.slice(0, 1)),
        /argument 'views' expected 2 projections \(one per view\), got 1/);
      assert.throws(() => loss.forward([small[0]!, small[1]!.narrow(0, 0, 6)]),
        /view 2 has shape \[6, 4\], view 1 \[8, 4\]/);
      assert.throws(() => loss.forward([small[0]!, small[1]!.to('int64')]),
        /view 2 expected a floating-point tensor, got int64/);
    } finally {
      loss.dispose();
    }
  });
});

for (const backward of ['autograd', 'fused'] as const) {
  test(`many loss evaluations leave no tensor behind (${backward} backward)`, () => {
    const loss = new GroCoLoss({ nAugs: 3, nPosAugs: 2, topkNeg: 5, stopGrad: false, backward });
    const generator = new Generator(11);
    const step = () => tidy(() => {
      const views = [0, 1, 2].map(() => randn([16, 8], { generator }).requiresGrad_());
      loss.forward(views).loss.backward();
    });
    step(); // the sorters' index tensors
    const before = liveTensorCount();
    for (let i = 0; i < 30; i++) step();
    tidy(() => {
      noGrad(() => loss.forward([0, 1, 2].map(() => randn([16, 8], { generator }))));
    });
    assert.equal(liveTensorCount() - before, 0, backward === 'fused'
      ? 'tensors left by the custom autograd function: is the addon built from the current ' +
        'native/src/autograd.cc (which releases the handles a JS function returns)?'
      : 'tensors left behind');
    loss.dispose();
  });
}
