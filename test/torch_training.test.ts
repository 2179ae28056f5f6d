// A small convnet trained side by side with PyTorch from the same weights and inputs; a leak run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { F, nn, optim, tidy, type Tensor } from '../src/torch/index.js';
import { peerAvailable, runPeer, type TensorJson } from './helpers/peer.js';
import { assertClose } from './helpers/close.js';

function smallNet(): nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 6, 3, { padding: 1, bias: false }), new nn.BatchNorm2d(6), new nn.ReLU(),
    new nn.MaxPool2d(2), new nn.Conv2d(6, 8, 3, { stride: 2 }), new nn.BatchNorm2d(8), new nn.ReLU(),
    new nn.AdaptiveAvgPool2d(1), new nn.Flatten(), new nn.Linear(8, 4));
}

const pyNet = `
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 6, 3, padding=1, bias=False), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
    torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4)).double()
sd = {k: T(v, torch.float64) if k.endswith('num_batches_tracked') is False else torch.tensor(int(v['data'][0])) for k, v in INPUT['state'].items()}
net.load_state_dict(sd)
`;

type Kind = 'sgd' | 'sgd_nesterov' | 'larc' | 'adam' | 'adamw';

function makeOptimizer(kind: Kind, params: Tensor[]): { step(): void; zeroGrad(): void } {
  switch (kind) {
    case 'sgd': return new optim.SGD(params, { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 });
    case 'sgd_nesterov': return new optim.SGD(params, { lr: 0.05, momentum: 0.9, nesterov: true, dampening: 0 });
    case 'larc': return new optim.LARC(new optim.SGD(params, { lr: 0.3, momentum: 0.9, weightDecay: 1e-4 }));
    case 'adam': return new optim.Adam(params, { lr: 1e-2, weightDecay: 1e-3 });
    case 'adamw': return new optim.AdamW(params, { lr: 1e-2 });
  }
}

const pyOptimizers: Record<Kind, string> = {
  sgd: 'torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)',
  sgd_nesterov: 'torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)',
  larc: 'LARC(torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-4))',
  adam: 'torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)',
  adamw: 'torch.optim.AdamW(net.parameters(), lr=1e-2)',
};

// LARC as the spec defines it (apex's formulation), written here for the peer.
const pyLarc = `
class LARC:
    def __init__(self, opt, trust=0.001, eps=1e-8):
        self.opt, self.trust, self.eps = opt, trust, eps
    def zero_grad(self): self.opt.zero_grad()
    def step(self):
        with torch.no_grad():
            wds = []
            for g in self.opt.param_groups:
                wd = g.get('weight_decay', 0); wds.append(wd); g['weight_decay'] = 0
                for p in g['params']:
                    if p.grad is None: continue
                    pn, gn = torch.norm(p.data), torch.norm(p.grad.data)
                    if pn != 0 and gn != 0:
                        lr = self.trust * pn / (gn + pn * wd + self.eps)
                        p.grad.data += wd * p.data
                        p.grad.data *= lr
        self.opt.step()
        for g, wd in zip(self.opt.param_groups, wds): g['weight_decay'] = wd
`;

function stateJson(net: nn.Module): Record<string, TensorJson> {
  const out: Record<string, TensorJson> = {};
  for (const [k, v] of net.stateDict()) out[k] = { shape: v.shape, data: v.toFlatArray() };
  return out;
}

for (const kind of ['sgd', 'sgd_nesterov', 'larc', 'adam', 'adamw'] as Kind[]) {
  test(`small convnet: 4 ${kind} steps match PyTorch (float64)`, { skip: !peerAvailable() && 'no PyTorch peer' }, () => {
    T.manualSeed(11);
    const net = smallNet().to('float64');
    const x = T.randn([6, 1, 12, 12], { dtype: 'float64' });
    const y = T.randint(0, 4, [6]);
    const initial = stateJson(net);
    const opt = makeOptimizer(kind, net.parameters());
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) {
      losses.push(tidy(() => {
        opt.zeroGrad();
        const loss = F.crossEntropy(net.forward(x), y);
        loss.backward();
        opt.step();
        return loss.item();
      }));
    }
    const eval_ = tidy(() => net.eval().forward(x).toFlatArray());
    const final = stateJson(net);

    const peer = runPeer<{ losses: number[]; state: Record<string, TensorJson>; eval: TensorJson }>(`
${pyLarc}
${pyNet}
x = T(INPUT['x'], torch.float64); y = T(INPUT['y'], torch.int64)
opt = ${pyOptimizers[kind]}
losses = []
for i in range(4):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward(); opt.step(); losses.append(loss.item())
net.eval()
print(json.dumps({'losses': losses, 'state': {k: out(v) for k, v in net.state_dict().items()}, 'eval': out(net(x))}))
`, { state: initial, x: { shape: x.shape, data: x.toFlatArray() }, y: { shape: y.shape, data: y.toFlatArray() } });

    assertClose(losses, peer.losses, 1e-10, `${kind} losses`);
    for (const [key, value] of Object.entries(peer.state)) {
      assertClose(final[key]!.data, value.data, 1e-9, `${kind} ${key}`);
    }
    assertClose(eval_, peer.eval.data, 1e-9, `${kind} eval output`);
    net.dispose();
    x.dispose();
    y.dispose();
    if ('dispose' in opt) (opt as { dispose(): void }).dispose();
  });
}

test('leak: 300 training steps leave the live-tensor count and resident memory flat', () => {
  T.manualSeed(5);
  const net = smallNet();
  const opt = new optim.LARC(new optim.SGD(net.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 }));
  const x = T.randn([16, 1, 16, 16]);
  const y = T.randint(0, 4, [16]);
  const step = (): void => tidy(() => {
    opt.zeroGrad();
    const loss = F.crossEntropy(net.forward(x), y);
    loss.backward();
    optim.clipGradNorm(net.parameters(), 1e6);
    opt.step();
  });
  for (let i = 0; i < 20; i++) step();
  const count = T.liveTensorCount();
  const rss = process.memoryUsage().rss;
  for (let i = 0; i < 300; i++) step();
  assert.equal(T.liveTensorCount(), count);
  const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
  assert.ok(grown < 40, `resident memory grew by ${grown.toFixed(1)} MiB`);
  net.dispose();
  opt.dispose();
  x.dispose();
  y.dispose();
});

test('state dict: strict loading reports missing, unexpected and mis-shaped keys', () => {
  tidy(() => {
    const net = smallNet();
    const sd = new Map(net.stateDict());
    sd.delete('9.bias');
    sd.set('extra.weight', T.ones([1]));
    sd.set('0.weight', T.ones([6, 1, 5, 5]));
    assert.throws(() => net.loadStateDict(sd, { context: 'model.pth' }),
      /model.pth: state dict does not match the model:[\s\S]*missing keys \(1\): 9.bias[\s\S]*unexpected keys \(1\): extra.weight[\s\S]*shape mismatch for 0.weight/);
    const prefixed = new Map([...net.stateDict()].map(([k, v]) => [`module.${k}`, v.clone()]));
    net.loadStateDict(prefixed);
    net.dispose();
  });
});
