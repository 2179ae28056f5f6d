// Values and gradients of each op family against the PyTorch peer, in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { F, tidy, type Tensor } from '../src/torch/index.js';
import { peerAvailable, runPeer, type TensorJson } from './helpers/peer.js';
import { assertClose } from './helpers/close.js';

interface Case {
  name: string;
  inputs: Record<string, number[]>;       // shapes; values drawn N(0, 1) in float64
  positive?: string[];                    // inputs made positive (for log, sqrt, pow)
  ints?: Record<string, [number[], number]>;  // integer inputs: shape, upper bound
  ts: (x: Record<string, Tensor>) => Tensor;
  py: string;                             // python expression over the same names
  noGrad?: boolean;
}

const cases: Case[] = [
  { name: 'add broadcast', inputs: { a: [3, 4], b: [4] }, ts: (x) => x.a!.add(x.b!), py: 'a + b' },
  { name: 'add alpha', inputs: { a: [3, 4], b: [3, 4] }, ts: (x) => x.a!.add(x.b!, 0.5), py: 'torch.add(a, b, alpha=0.5)' },
  { name: 'sub scalar', inputs: { a: [5] }, ts: (x) => x.a!.sub(1.5), py: 'a - 1.5' },
  { name: 'mul div', inputs: { a: [2, 3], b: [2, 1] }, ts: (x) => x.a!.mul(x.b!).div(x.b!.abs().add(1)), py: 'a * b / (b.abs() + 1)' },
  { name: 'pow', inputs: { a: [6] }, positive: ['a'], ts: (x) => x.a!.pow(2.5), py: 'a ** 2.5' },
  { name: 'pow tensor', inputs: { a: [6], b: [6] }, positive: ['a'], ts: (x) => x.a!.pow(x.b!), py: 'a ** b' },
  { name: 'exp log sqrt', inputs: { a: [7] }, positive: ['a'], ts: (x) => x.a!.exp().add(x.a!.log()).add(x.a!.sqrt()), py: 'a.exp() + a.log() + a.sqrt()' },
  { name: 'abs sign atan erf', inputs: { a: [9] }, ts: (x) => x.a!.abs().add(x.a!.sign()).add(x.a!.atan()).add(x.a!.erf()), py: 'a.abs() + a.sign() + a.atan() + a.erf()' },
  { name: 'sigmoid relu clamp', inputs: { a: [9] }, ts: (x) => x.a!.sigmoid().add(x.a!.relu()).add(x.a!.clamp(-0.5, 0.3)), py: 'a.sigmoid() + a.relu() + a.clamp(-0.5, 0.3)' },
  { name: 'sum mean dims', inputs: { a: [3, 4, 5] }, ts: (x) => x.a!.sum(1, { keepdim: true }).add(x.a!.mean([0, 2]).reshape([1, 4, 1])), py: 'a.sum(1, keepdim=True) + a.mean((0, 2)).reshape(1, 4, 1)' },
  { name: 'max min dim', inputs: { a: [4, 6] }, ts: (x) => x.a!.max(1).add(x.a!.min(1)), py: 'a.max(1).values + a.min(1).values' },
  { name: 'argmax', inputs: { a: [4, 6] }, noGrad: true, ts: (x) => x.a!.argmax(1), py: 'a.argmax(1)' },
  { name: 'norm', inputs: { a: [4, 6] }, ts: (x) => x.a!.norm(2, 1), py: 'a.norm(2, 1)' },
  { name: 'matmul mm bmm', inputs: { a: [2, 3, 4], b: [2, 4, 5], c: [5, 2] }, ts: (x) => x.a!.bmm(x.b!).matmul(x.c!), py: 'torch.bmm(a, b) @ c' },
  { name: 'transpose permute flatten', inputs: { a: [2, 3, 4] }, ts: (x) => x.a!.transpose(0, 2).permute([2, 0, 1]).flatten(), py: 'a.transpose(0, 2).permute(2, 0, 1).flatten()' },
  { name: 'squeeze unsqueeze expand repeat', inputs: { a: [3, 1] }, ts: (x) => x.a!.squeeze(1).unsqueeze(0).expand([2, 3]).repeat([2, 1]), py: 'a.squeeze(1).unsqueeze(0).expand(2, 3).repeat(2, 1)' },
  { name: 'flip narrow slice', inputs: { a: [5, 6] }, ts: (x) => x.a!.flip([1]).narrow(0, 1, 3).slice(1, 0, 6, 2), py: 'a.flip(1).narrow(0, 1, 3)[:, 0:6:2]' },
  { name: 'indexSelect gather', inputs: { a: [5, 4] }, ints: { i: [[3], 5], j: [[5, 2], 4] }, ts: (x) => x.a!.indexSelect(0, x.i!).sum().add(x.a!.gather(1, x.j!)), py: 'a.index_select(0, i).sum() + a.gather(1, j)' },
  { name: 'scatter scatterAdd', inputs: { a: [3, 5], s: [3, 2] }, ints: { j: [[3, 2], 5] }, ts: (x) => x.a!.scatterAdd(1, x.j!, x.s!).add(x.a!.scatter(1, x.j!, 0)), py: 'a.scatter_add(1, j, s) + a.scatter(1, j, 0.0)' },
  { name: 'maskedFill where', inputs: { a: [4, 4], b: [4, 4] }, ts: (x) => T.where(x.a!.gt(0), x.a!, x.b!).maskedFill(x.b!.lt(0), 0.25), py: 'torch.where(a > 0, a, b).masked_fill(b < 0, 0.25)' },
  { name: 'cat stack', inputs: { a: [2, 3], b: [2, 3] }, ts: (x) => T.stack([T.cat([x.a!, x.b!], 1), T.cat([x.b!, x.a!], 1)]), py: 'torch.stack([torch.cat([a, b], 1), torch.cat([b, a], 1)])' },
  { name: 'topk sort', inputs: { a: [3, 7] }, ts: (x) => x.a!.topk(3, 1)[0].add(x.a!.sort(1)[0].narrow(1, 0, 3)), py: 'a.topk(3, 1).values + a.sort(1).values[:, :3]' },
  { name: 'argsort', inputs: { a: [3, 7] }, noGrad: true, ts: (x) => x.a!.argsort(1, { descending: true }), py: 'a.argsort(1, descending=True)' },
  { name: 'oneHot', inputs: {}, ints: { i: [[6], 4] }, noGrad: true, ts: (x) => T.oneHot(x.i!, 4), py: 'torch.nn.functional.one_hot(i, 4)' },
  { name: 'conv2d', inputs: { x: [2, 3, 7, 7], w: [4, 3, 3, 3], b: [4] }, ts: (v) => F.conv2d(v.x!, v.w!, v.b!, { stride: 2, padding: 1 }), py: 'torch.nn.functional.conv2d(x, w, b, stride=2, padding=1)' },
  { name: 'batchNorm train', inputs: { x: [4, 3, 5, 5], g: [3], b: [3] }, ts: (v) => F.batchNorm(v.x!, null, null, { weight: v.g!, bias: v.b!, training: true }), py: 'torch.nn.functional.batch_norm(x, None, None, g, b, training=True)' },
  { name: 'linear', inputs: { x: [5, 4], w: [3, 4], b: [3] }, ts: (v) => F.linear(v.x!, v.w!, v.b!), py: 'torch.nn.functional.linear(x, w, b)' },
  { name: 'maxPool2d', inputs: { x: [2, 2, 8, 8] }, ts: (v) => F.maxPool2d(v.x!, 3, { stride: 2, padding: 1 }), py: 'torch.nn.functional.max_pool2d(x, 3, 2, 1)' },
  { name: 'adaptiveAvgPool2d', inputs: { x: [2, 2, 7, 7] }, ts: (v) => F.adaptiveAvgPool2d(v.x!, 1), py: 'torch.nn.functional.adaptive_avg_pool2d(x, 1)' },
  { name: 'interpolate bilinear aa', inputs: { x: [1, 2, 16, 16] }, ts: (v) => F.interpolate(v.x!, { size: [7, 9], mode: 'bilinear', antialias: true }), py: "torch.nn.functional.interpolate(x, size=(7, 9), mode='bilinear', antialias=True)" },
  { name: 'interpolate bicubic', inputs: { x: [1, 2, 6, 6] }, ts: (v) => F.interpolate(v.x!, { size: [11, 10], mode: 'bicubic' }), py: "torch.nn.functional.interpolate(x, size=(11, 10), mode='bicubic')" },
  { name: 'softmax logSoftmax', inputs: { x: [3, 5] }, ts: (v) => F.softmax(v.x!, 1).add(F.logSoftmax(v.x!, 0)), py: 'x.softmax(1) + x.log_softmax(0)' },
  { name: 'crossEntropy', inputs: { x: [6, 4] }, ints: { y: [[6], 4] }, ts: (v) => F.crossEntropy(v.x!, v.y!), py: 'torch.nn.functional.cross_entropy(x, y)' },
  { name: 'binaryCrossEntropy', inputs: { x: [8], t: [8] }, ts: (v) => F.binaryCrossEntropy(v.x!.sigmoid(), v.t!.sigmoid()), py: 'torch.nn.functional.binary_cross_entropy(x.sigmoid(), t.sigmoid())' },
  { name: 'normalize cosineSimilarity', inputs: { a: [4, 6], b: [4, 6] }, ts: (v) => F.normalize(v.a!).sum(1).add(F.cosineSimilarity(v.a!, v.b!)), py: 'torch.nn.functional.normalize(a).sum(1) + torch.nn.functional.cosine_similarity(a, b)' },
];

function toJson(t: Tensor): TensorJson {
  return { shape: t.shape, data: t.toFlatArray() };
}

test('op families match PyTorch in values and gradients (float64)', { skip: !peerAvailable() && 'no PyTorch peer' }, () => {
  T.manualSeed(1234);
  const prepared = cases.map((c) => tidy(() => {
    const inputs: Record<string, Tensor> = {};
    const json: Record<string, TensorJson & { dtype: string; grad: boolean }> = {};
    for (const [name, shape] of Object.entries(c.inputs)) {
      let t = T.randn(shape, { dtype: 'float64' });
      if (c.positive?.includes(name)) t = t.abs().add(0.5);
      inputs[name] = T.keep(t.detach().requiresGrad_(!c.noGrad));
      json[name] = { ...toJson(t), dtype: 'float64', grad: !c.noGrad };
    }
    for (const [name, [shape, high]] of Object.entries(c.ints ?? {})) {
      const t = T.randint(0, high, shape);
      inputs[name] = T.keep(t);
      json[name] = { ...toJson(t), dtype: 'int64', grad: false };
    }
    const out = c.ts(inputs);
    const result: { out: TensorJson; grads: Record<string, TensorJson>; gradOut?: TensorJson } = { out: toJson(out), grads: {} };
    if (!c.noGrad && T.isFloatingPoint(out.dtype)) {
      const g = T.randn(out.shape, { dtype: 'float64' });
      out.backward(g);
      result.gradOut = toJson(g);
      for (const [name, t] of Object.entries(inputs)) {
        const grad = t.grad;
        if (grad) result.grads[name] = toJson(grad);
      }
    }
    for (const t of Object.values(inputs)) t.dispose();
    return { c, json, result };
  }));

  const answers = runPeer<{ out: TensorJson; grads: Record<string, TensorJson> }[]>(`
res = []
for case in INPUT:
    env = {'torch': torch}
    for name, spec in case['inputs'].items():
        t = T(spec)
        if spec['grad']: t.requires_grad_(True)
        env[name] = t
    o = eval(case['py'], env)
    grads = {}
    if case.get('gradOut') is not None:
        o.backward(T(case['gradOut'], torch.float64))
        for name, spec in case['inputs'].items():
            if spec['grad'] and env[name].grad is not None: grads[name] = out(env[name].grad)
    res.append({'out': out(o), 'grads': grads})
print(json.dumps(res))
`, prepared.map((p) => ({ inputs: p.json, py: p.c.py, gradOut: p.result.gradOut ?? null })));

  prepared.forEach((p, i) => {
    const expected = answers[i]!;
    assert.deepEqual(p.result.out.shape, expected.out.shape, `${p.c.name}: shape`);
    assertClose(p.result.out.data, expected.out.data, 1e-9, `${p.c.name}: value`);
    for (const [name, g] of Object.entries(expected.grads)) {
      const ours = p.result.grads[name];
      assert.ok(ours, `${p.c.name}: no gradient for ${name}`);
      assertClose(ours.data, g.data, 1e-9, `${p.c.name}: d/d${name}`);
    }
  });
});

test('gradients match float64 finite differences', () => {
  T.manualSeed(7);
  const fns: [string, (x: Tensor) => Tensor][] = [
    ['composite', (x) => x.sigmoid().mul(x.atan()).sum()],
    ['softmax', (x) => F.softmax(x.reshape([2, 3]), 1).pow(2).sum()],
    ['normalize', (x) => F.normalize(x.reshape([2, 3])).mul(x.reshape([2, 3])).sum()],
  ];
  for (const [name, fn] of fns) {
    tidy(() => {
      const x = T.randn([6], { dtype: 'float64', requiresGrad: true });
      fn(x).backward();
      const analytic = x.grad!.toFlatArray();
      const values = x.toFlatArray();
      const eps = 1e-6;
      values.forEach((_, i) => {
        const plus = values.slice(); plus[i]! += eps;
        const minus = values.slice(); minus[i]! -= eps;
        const fp = T.noGrad(() => fn(T.tensor(plus, { dtype: 'float64' })).item());
        const fm = T.noGrad(() => fn(T.tensor(minus, { dtype: 'float64' })).item());
        const numeric = (fp - fm) / (2 * eps);
        assert.ok(Math.abs(numeric - analytic[i]!) < 1e-7, `${name}[${i}]: ${numeric} vs ${analytic[i]}`);
      });
    });
  }
});
