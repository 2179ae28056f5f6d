// Summaries of checkpoints and the handling of `module.` key prefixes.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  commonKeyPrefix,
  formatCheckpointSummary,
  OrderedDict,
  readCheckpoint,
  renameStateDictKeys,
  summarizeCheckpoint,
  tensorFromBytes,
  toJsonData,
  tuple,
} from '../src/torch/serialization/index.js';
import { CORPUS_DIR } from './serialization_peer.js';

test('common key prefixes end at a dot', () => {
  assert.equal(commonKeyPrefix(['module.encoder.conv1.weight', 'module.encoder.bn1.bias']), 'module.encoder.');
  assert.equal(commonKeyPrefix(['module.a', 'modules.b']), '');
  assert.equal(commonKeyPrefix(['layer1.0.conv1.weight']), 'layer1.0.conv1.');
  assert.equal(commonKeyPrefix([]), '');
});

test('module. prefixes are removed or added, and collisions are errors', () => {
  const weight = tensorFromBytes('float32', [1], new Uint8Array(4));
  const dict = new Map<unknown, unknown>([['module.fc.weight', weight], ['module.fc.bias', weight]]);
  const plain = renameStateDictKeys(dict, 'module.');
  assert.deepEqual([...plain.keys()], ['fc.weight', 'fc.bias']);
  assert.equal(plain.get('fc.weight'), weight);
  assert.deepEqual([...renameStateDictKeys(plain, 'module.', 'add').keys()], [...dict.keys()]);
  assert.deepEqual([...renameStateDictKeys(dict, 'module.', 'add').keys()], [...dict.keys()]);
  assert.throws(
    () => renameStateDictKeys(new Map([['module.a', 1], ['a', 2]]), 'module.'),
    /renameStateDictKeys: two keys become 'a'/,
  );
});

test('a summary lists state dicts, optimizer state and the rest', () => {
  const name = 'zip_state_dict.pth';
  const checkpoint = readCheckpoint(readFileSync(join(CORPUS_DIR, name)), name);
  const summary = summarizeCheckpoint(checkpoint);
  assert.equal(summary.epoch, 1);
  assert.equal(summary.tensorCount, 7 + 4);
  assert.deepEqual(summary.stateDicts.map((d) => [d.path, d.tensors.length, d.numel]), [['model', 7, 15]]);
  assert.deepEqual(summary.optimizers[0].paramGroups[0].params, 4);
  const text = formatCheckpointSummary(summary, 2);
  assert.match(text, /^epoch 1, step -\n11 tensors in 104 B of storage\n/);
  assert.ok(
    text.includes(
      'model: 7 tensors, 15 elements, 64 B\n' +
        '  0.weight  float32   [2, 2]\n' +
        '  0.bias    float32   [2]\n' +
        '  ... 5 more',
    ),
    text,
  );
  assert.match(text, /optimizer: optimizer state for 4 parameters \(momentum_buffer\), 40 B\n {2}group 0: lr 0\.1, momentum 0\.9/);
  assert.doesNotThrow(() => JSON.stringify(summary));
});

test('any value becomes JSON data', () => {
  const value = new OrderedDict<unknown, unknown>([
    ['big', 2n ** 70n],
    ['nan', NaN],
    [1, tuple([1, 'a'])],
    ['set', new Set([1])],
    [tuple([1, 2]), new Uint8Array(3)],
    ['t', tensorFromBytes('int8', [3], new Uint8Array(3))],
  ]);
  assert.deepEqual(toJsonData(value), {
    big: '1180591620717411303424',
    nan: 'NaN',
    1: [1, 'a'],
    set: [1],
    '[1,2]': { bytes: 3 },
    t: { tensor: 'int8', shape: [3] },
  });
});
