// NT-Xent, NT-Xent with more negatives, NT-Xent over all view combinations and cross-entropy
// against the PyTorch peer running the formulas as the reference writes them (a broadcast
// cosine similarity, the diagonal removed by indexing), in float64; the registry; options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CrossEntropyLoss, LOSS_TYPES, NtXentAllCombinationsLoss, NtXentLoss, createLoss,
} from '../src/losses/index.js';
import {
  Generator, liveTensorCount, randint, randn, setNumThreads, tensor, tidy, type Tensor,
} from '../src/torch/index.js';
import { peerAvailable, runPeer, type TensorJson } from './helpers/peer.js';

setNumThreads(1);

const PEER_SCRIPT = String.raw`
import torch.nn.functional as F

def similarities(queries, keys, temperature):
    return F.cosine_similarity(queries.unsqueeze(1), keys.unsqueeze(0), dim=2) / temperature

def nt_xent(views, temperature, stop_grad=False, topk_neg=None):
    """Views 1 and 2 are the pair; views 3.. only add negatives (their same-sample rows removed)."""
    n, count = views[0].shape[0], len(views)
    queries = torch.cat(views[:2], 0)
    keys = torch.cat(views, 0)
    if stop_grad:
        keys = keys.detach()
    sim = similarities(queries, keys, temperature)                       # (2N, count N)
    row = torch.arange(2 * n)
    sample, view = row % n, row // n
    col = torch.arange(count * n)
    col_sample, col_view = col % n, col // n
    partner = 1 - view
    same = sample[:, None] == col_sample[None, :]
    keep = ~same | (col_view[None, :] == partner[:, None])                # drop self and 3rd+ views
    target_col = partner * n + sample
    logits = sim[keep].view(2 * n, -1)
    position = keep.long().cumsum(1)[row, target_col] - 1                 # the target after removal
    if topk_neg is None:
        return F.cross_entropy(logits, position, reduction='sum') / (2 * n)
    is_pos = torch.zeros_like(logits, dtype=torch.bool)
    is_pos[row, position] = True
    pos = logits[is_pos].view(2 * n, 1)
    negs = torch.topk(logits[~is_pos].view(2 * n, -1), topk_neg, dim=1)[0]
    picked = torch.cat((pos, negs), 1)
    return F.cross_entropy(picked, torch.zeros(2 * n, dtype=torch.long), reduction='sum') / (2 * n)

def all_combinations(views, temperature, n_pos_augs):
    total, count = 0, 0
    for a in range(n_pos_augs):
        for b in range(a + 1, len(views)):
            rest = [v for i, v in enumerate(views) if i not in (a, b)]
            total = total + nt_xent([views[a], views[b]] + rest, temperature)
            count += 1
    return total / count

results = []
for case in INPUT:
    views = [T(v, torch.float64).requires_grad_() for v in case['views']]
    kind = case['type']
    if kind == 'NT_Xent':
        loss = nt_xent(views[:2], case['temperature'], case.get('stop_grad', False),
                       case.get('topk_neg'))
    elif kind == 'NT_XentWithMoreNegatives':
        loss = nt_xent(views, case['temperature'])
    elif kind == 'NT_XentAllCombinations':
        loss = all_combinations(views, case['temperature'], case.get('n_pos_augs') or len(views))
    else:
        labels = torch.tensor(case['labels'])
        loss = F.cross_entropy(views[0], labels)
    loss.backward()
    grads = [v.grad if v.grad is not None else torch.zeros_like(v) for v in views]
    results.append({'loss': loss.item(), 'grads': [out(g) for g in grads]})
print(json.dumps(results))
`;

interface Case {
  type: string;
  args: Record<string, unknown>;
  views: number;
  batch: number;
  dim: number;
  classes?: number;
}

const CASES: Case[] = [
  { type: 'NT_Xent', args: { temperature: 0.5 }, views: 2, batch: 8, dim: 16 },
  {
    type: 'NT_Xent', args: { temperature: 0.2, stop_grad: true, topk_neg: 5 },
    views: 2, batch: 8, dim: 16,
  },
  { type: 'NT_Xent', args: { temperature: 0.1, topk_neg: 3 }, views: 2, batch: 6, dim: 8 },
  { type: 'NT_Xent', args: { temperature: 0.3, stop_grad: true }, views: 2, batch: 7, dim: 8 },
  {
    type: 'NT_XentWithMoreNegatives', args: { n_augs: 3, temperature: 0.5 },
    views: 3, batch: 6, dim: 8,
  },
  {
    type: 'NT_XentAllCombinations', args: { n_augs: 4, temperature: 0.2 },
    views: 4, batch: 5, dim: 8,
  },
  {
    type: 'NT_XentAllCombinations', args: { n_augs: 5, n_pos_augs: 2, temperature: 0.1 },
    views: 5, batch: 6, dim: 8,
  },
  { type: 'CrossEntropyLoss', args: {}, views: 1, batch: 9, dim: 5, classes: 5 },
];

const toJson = (t: Tensor): TensorJson => ({ shape: t.shape, data: t.toFlatArray() });

const noPeer = !peerAvailable() && 'no PyTorch peer';

test('every loss against the PyTorch peer: loss and gradients (float64)', { skip: noPeer }, () => {
  tidy(() => {
    const generator = new Generator(21);
    const inputs = CASES.map((c) => ({
      views: Array.from({ length: c.views },
        () => randn([c.batch, c.dim], { dtype: 'float64', generator })),
      labels: c.classes === undefined ? null : randint(0, c.classes, [c.batch], { generator }),
    }));
    const request = CASES.map((c, i) => ({
      type: c.type, ...c.args, views: inputs[i]!.views.map(toJson),
      labels: inputs[i]!.labels?.toFlatArray(),
    }));
    const answers = runPeer<{ loss: number; grads: TensorJson[] }[]>(PEER_SCRIPT, request);
    CASES.forEach((c, i) => {
      const what = `${c.type} ${JSON.stringify(c.args)}`;
      const loss = createLoss(c.type, c.args);
      try {
        const views = inputs[i]!.views.map((v) => v.clone().requiresGrad_());
        const out = loss.forward(views, inputs[i]!.labels ?? undefined);
        out.loss.backward();
        const expected = answers[i]!;
        const error = Math.abs(out.loss.item() - expected.loss);
        assert.ok(error <= 1e-10 * (1 + Math.abs(expected.loss)),
          `${what}: loss ${out.loss.item()}, peer ${expected.loss}`);
        views.forEach((v, j) => {
          const grad = v.grad?.toFlatArray() ?? new Array<number>(v.numel).fill(0);
          const want = expected.grads[j]!.data;
          grad.forEach((g, e) => assert.ok(Math.abs(g - want[e]!) <= 1e-10,
            `${what}: view ${j + 1} gradient entry ${e}: ${g} vs ${want[e]}`));
        });
        const keys = Object.keys(out.info);
        if (c.type === 'CrossEntropyLoss') assert.deepEqual(keys, ['cross_entropy']);
        else if (c.type === 'NT_XentAllCombinations') assert.equal(keys[1], 'simclr_comb2');
        else assert.deepEqual(keys, ['simclr']);
      } finally {
        loss.dispose();
      }
    });
  });
});

test('all combinations: one logged value per pair, their mean is the loss', () => {
  tidy(() => {
    const loss = new NtXentAllCombinationsLoss({ nAugs: 4, nPosAugs: 2, temperature: 0.5 });
    try {
      assert.deepEqual(loss.pairs.map((p) => [p.first + 1, p.second + 1]),
        [[1, 2], [1, 3], [1, 4], [2, 3], [2, 4]]);
      const generator = new Generator(22);
      const out = loss.forward([0, 1, 2, 3].map(() => randn([6, 4], { generator })));
      const values = Object.values(out.info);
      assert.deepEqual(Object.keys(out.info),
        ['simclr', 'simclr_comb2', 'simclr_comb3', 'simclr_comb4', 'simclr_comb5']);
      const mean = values.reduce((a, b) => a + b) / values.length;
      assert.ok(Math.abs(mean - out.loss.item()) < 1e-6, `${mean} vs ${out.loss.item()}`);
    } finally {
      loss.dispose();
    }
  });
});

test('the registry knows the reference\'s config names', () => {
  assert.deepEqual([...LOSS_TYPES].sort(), ['CrossEntropyLoss', 'GroCo', 'NT_Xent',
    'NT_XentAllCombinations', 'NT_XentWithMoreNegatives']);
  const simclr = createLoss('NT_Xent', { temperature: 0.5, topk_neg: 10, stop_grad: true });
  assert.ok(simclr instanceof NtXentLoss);
  assert.throws(() => createLoss('SimCLR'), /loss: type expected one of GroCo, NT_Xent/);
  assert.throws(() => createLoss('NT_Xent', [] as never), /args of NT_Xent expected a mapping/);
});

test('options and inputs are checked, naming the option', () => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['NT_Xent', { temperature: 0 },
      /NT_Xent: option 'temperature' expected a finite number > 0, got 0/],
    ['NT_Xent', { topk_neg: 0 }, /option 'topk_neg' expected an integer >= 1, got 0/],
    ['NT_Xent', { n_augs: 2 },
      /unknown option 'n_augs' \(known: temperature, stop_grad, topk_neg\)/],
    ['NT_XentWithMoreNegatives', { temperature: 0.5 },
      /option 'n_augs' expected an integer >= 2, got undefined/],
    ['NT_XentAllCombinations', { n_augs: 3, n_pos_augs: 4 },
      /option 'n_pos_augs' expected an integer in \[1, 3\], got 4/],
    ['CrossEntropyLoss', { weight: 1 }, /CrossEntropyLoss: unknown option 'weight'/],
  ];
  for (const [type, args, message] of refused) assert.throws(() => createLoss(type, args), message);

  tidy(() => {
    const generator = new Generator(23);
    const loss = new NtXentLoss({ topkNeg: 7 });
    try {
      // 4 samples, 2 views: each query has 2N - 2 = 6 negatives
      const views = [0, 1].map(() => randn([4, 3], { generator }));
      assert.throws(() => loss.forward(views),
        /option 'topkNeg' \(7\) expected at most the negatives of a query, 6 here/);
      assert.throws(() => loss.forward(views.slice(0, 1)), /expected at least 2 projections/);
    } finally {
      loss.dispose();
    }
    const ce = new CrossEntropyLoss();
    const logits = randn([3, 4], { generator });
    assert.throws(() => ce.forward([logits]),
      /argument 'labels' expected an int64 Tensor \(3\), got undefined/);
    assert.throws(() => ce.forward([logits], tensor([0, 4, 1], { dtype: 'int64' })),
      /classes in \[0, 3\], got values in \[0, 4\]/);
  });
});

test('many evaluations leave no tensor behind', () => {
  const losses = [
    createLoss('NT_Xent', { temperature: 0.5, topk_neg: 4, stop_grad: true }),
    createLoss('NT_XentAllCombinations', { n_augs: 3, temperature: 0.2 }),
  ];
  const generator = new Generator(24);
  const step = () => tidy(() => {
    for (const loss of losses) {
      const views = [0, 1, 2].map(() => randn([8, 6], { generator }).requiresGrad_());
      loss.forward(views).loss.backward();
    }
  });
  step(); // masks kept for the batch layout
  const before = liveTensorCount();
  for (let i = 0; i < 20; i++) step();
  assert.equal(liveTensorCount(), before);
  for (const loss of losses) loss.dispose();
  assert.ok(liveTensorCount() < before);
});
