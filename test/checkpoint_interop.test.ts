// Checkpoints across the two worlds: one shaped like the published GroCo checkpoints (legacy
// torch.save format, `module.encoder.`-prefixed ResNet-50) gives the same features in groco as
// in PyTorch; one groco writes loads into torchvision's ResNet and gives groco's features.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { noGrad, tidy } from '../src/torch/index.js';
import { createEncoder, createProjection } from '../src/models/index.js';
import { optim } from '../src/torch/index.js';
import { disposeCheckpoint, loadTrainingCheckpoint, saveTrainingCheckpoint } from '../src/train/checkpoint.js';
import { peerAvailable, runPeer, type TensorJson } from './helpers/peer.js';
import { assertClose } from './helpers/close.js';

const dir = mkdtempSync(join(tmpdir(), 'groco-interop-'));
const skip = !peerAvailable() && 'no PyTorch peer';

test('a published-shaped ResNet-50 checkpoint gives PyTorch\'s features', { skip, timeout: 300_000 }, async () => {
  const peer = runPeer<{ x: TensorJson; features: TensorJson }>(`
import torchvision, collections
torch.manual_seed(0)
m = torchvision.models.resnet50(zero_init_residual=True)
m.fc = torch.nn.Identity()
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.1, 0.1)
        mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5)
enc = collections.OrderedDict(('module.encoder.' + k, v) for k, v in m.state_dict().items())
proj = collections.OrderedDict([('module.projection.0.weight', torch.randn(4, 4))])
ckpt = {'epoch': 99, 'step': 125100, 'encoder': enc, 'projection': proj,
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1, 'momentum': 0.9, 'params': [0]}]},
        'config': {'encoder': {'type': 'RegularEncoder', 'args': {'arch': 'resnet50'}}}}
torch.save(ckpt, INPUT + '/published.pth', _use_new_zipfile_serialization=False)
m.eval()
x = torch.randn(2, 3, 64, 64)
print(json.dumps({'x': out(x), 'features': out(m(x))}))
`, dir);

  const checkpoint = await loadTrainingCheckpoint(join(dir, 'published.pth'));
  assert.equal(checkpoint.epoch, 99);
  const encoder = createEncoder({ type: 'RegularEncoder', args: { arch: 'resnet50' } });
  try {
    encoder.loadStateDict(checkpoint.encoder, { context: 'published.pth' });
    encoder.eval();
    // one thread, as the peer runs: float32 sums then happen in the same order on both sides
    const threads = T.getNumThreads();
    T.setNumThreads(1);
    const ours = tidy(() => noGrad(() =>
      encoder.forward(T.tensor(peer.x.data, { shape: peer.x.shape })).toFlatArray()));
    T.setNumThreads(threads);
    assertClose(ours, peer.features.data, 1e-6, 'ResNet-50 features');
  } finally {
    encoder.dispose();
    disposeCheckpoint(checkpoint);
  }
});

test('a checkpoint groco writes loads into torchvision and gives groco\'s features', { skip, timeout: 300_000 }, async () => {
  T.manualSeed(4);
  const encoder = createEncoder({ type: 'RegularEncoder', args: { arch: 'resnet18' } });
  const projection = createProjection({ type: 'RegularProjection', args: { num_layers: 2, output_dim: 16 } }, 512);
  const opt = new optim.LARC(new optim.SGD([...encoder.parameters(), ...projection.parameters()], { lr: 0.1, momentum: 0.9 }));
  const x = T.randn([2, 3, 48, 48]);
  try {
    // one training step so that running statistics and momentum buffers are not trivial
    tidy(() => {
      projection.forward(encoder.forward(x)).pow(2).mean().backward();
      opt.step();
    });
    encoder.eval();
    const ours = tidy(() => noGrad(() => encoder.forward(x).toFlatArray()));
    await saveTrainingCheckpoint(join(dir, 'ours.pth'), {
      epoch: 0, step: 1, batchInEpoch: 0, encoder, projection, optimizer: opt, scaler: null,
      config: { encoder: { type: 'RegularEncoder', args: { arch: 'resnet18' } } },
    });
    const peer = runPeer<{ features: TensorJson; keys: string[]; momentum: number }>(`
import torchvision
ck = torch.load(INPUT['file'])
m = torchvision.models.resnet18()
m.fc = torch.nn.Identity()
m.load_state_dict({k[len('encoder.'):]: v for k, v in ck['encoder'].items()})
m.eval()
x = T(INPUT['x'])
print(json.dumps({'features': out(m(x)), 'keys': sorted(ck.keys()),
                  'momentum': len(ck['optimizer']['state'])}))
`, { file: join(dir, 'ours.pth'), x: { shape: x.shape, data: x.toFlatArray() } });
    assertClose(peer.features.data, ours, 1e-4, 'features in torchvision');
    assert.deepEqual(peer.keys, ['config', 'encoder', 'epoch', 'groco', 'optimizer', 'projection', 'step']);
    assert.ok(peer.momentum > 0, 'optimizer state is in the checkpoint');
  } finally {
    encoder.dispose();
    projection.dispose();
    opt.dispose();
    x.dispose();
  }
});
