// A checkpoint shaped like the published GroCo ones, made by the PyTorch peer: a dict with epoch,
// step, a `module.encoder.`-prefixed torchvision ResNet-50 state dict, the projection head, SGD
// state with momentum and the config, saved in the legacy format. About 300 MB.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  formatCheckpointSummary,
  readCheckpointFile,
  renameStateDictKeys,
  summarizeCheckpoint,
  writeCheckpointFile,
} from '../src/torch/serialization/index.js';
import type { TensorRecord } from '../src/torch/serialization/index.js';
import { describeValue, makeTempDir, peerSkipReason, runPeer } from './serialization_peer.js';
import type { Description } from './serialization_peer.js';

const skip = peerSkipReason();

function asMap(value: unknown): Map<unknown, unknown> {
  assert.ok(value instanceof Map, 'expected a dict');
  return value;
}

function expected(dir: string): Description {
  return JSON.parse(readFileSync(join(dir, 'groco_resnet50.json'), 'utf8')) as Description;
}

describe('a checkpoint shaped like the published GroCo ones (legacy, ResNet-50)', { skip }, () => {
  const temp = makeTempDir('groco-resnet50-');
  before(() => runPeer(temp.dir, ['groco', temp.dir], 300_000));
  after(() => temp.remove());

  test('reads with every tensor, the optimizer state and the config', async () => {
    const file = join(temp.dir, 'groco_resnet50.pth');
    const started = performance.now();
    const checkpoint = asMap(await readCheckpointFile(file));
    const seconds = (performance.now() - started) / 1000;
    assert.deepStrictEqual(describeValue(checkpoint), expected(temp.dir));
    assert.ok(seconds < 10, `reading took ${seconds.toFixed(2)} s`);

    assert.deepEqual([...checkpoint.keys()], ['epoch', 'step', 'encoder', 'projection', 'optimizer', 'config']);
    const encoder = asMap(checkpoint.get('encoder'));
    assert.equal(encoder.size, 318); // torchvision ResNet-50 without fc
    assert.ok([...encoder.keys()].every((k) => String(k).startsWith('module.encoder.')));
    const conv1 = encoder.get('module.encoder.conv1.weight') as TensorRecord;
    assert.deepEqual([conv1.dtype, conv1.shape, conv1.storage.location], ['float32', [64, 3, 7, 7], 'cpu']);
    const config = asMap(checkpoint.get('config'));
    assert.equal(asMap(asMap(config.get('encoder')).get('args')).get('arch'), 'resnet50');

    const summary = summarizeCheckpoint(checkpoint);
    assert.deepEqual([summary.epoch, summary.step], [99, 500400]);
    assert.deepEqual(
      summary.stateDicts.map((d) => [d.path, d.keyPrefix, d.tensors.length]),
      [['encoder', 'module.encoder.', 318], ['projection', 'module.', 17]],
    );
    // sizes as PyTorch counts them: sum(v.numel()) over the state dict, and its parameters
    assert.equal(summary.stateDicts[0].numel, 23_561_205);
    assert.deepEqual(
      summary.optimizers.map((o) => [o.path, o.parameters, o.buffers, o.paramGroups[0].params]),
      [['optimizer', 159 + 8, ['momentum_buffer'], 159 + 8]],
    );
    assert.deepEqual(Object.keys(summary.other), ['config']);
    assert.match(formatCheckpointSummary(summary), /encoder: 318 tensors, 23,561,205 elements, 89\.9 MiB, keys prefixed 'module\.encoder\.'/);

    // written back in PyTorch's zip format it describes the same; the encoder, without its
    // 'module.encoder.' prefix, loads strictly into torchvision's ResNet-50
    const out = join(temp.dir, 'rewritten.pth');
    const exported = join(temp.dir, 'torchvision.pth');
    await writeCheckpointFile(out, checkpoint);
    await writeCheckpointFile(exported, renameStateDictKeys(encoder, 'module.encoder.'));
    const check = JSON.parse(runPeer(temp.dir, ['torchvision', out, exported], 300_000)) as {
      description: Description;
      loaded: boolean;
      equal: boolean;
    };
    assert.deepStrictEqual(check.description, expected(temp.dir));
    assert.deepEqual([check.loaded, check.equal], [true, true]);
  });
});

