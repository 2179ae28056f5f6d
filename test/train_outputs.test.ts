// Files a run writes for other tools: TensorBoard event files and NumPy arrays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventWriter, crc32c } from '../src/train/tensorboard.js';
import { writeNpy } from '../src/eval/npy.js';
import { peerAvailable, runPeer } from './helpers/peer.js';

test('crc32c of a known vector', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('TensorBoard event files decode with an independent reader', { skip: !peerAvailable() && 'no python' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'groco-tb-'));
  const w = new EventWriter(dir);
  w.scalar('train_loss', 0.5, 1);
  w.scalar('train_loss', 0.25, 2);
  w.scalar('knn@20', 81.5, 3);
  w.close();
  const events = runPeer<[string, number, number][]>(`
import struct
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82f63b78 if crc & 1 else crc >> 1
    return crc ^ 0xffffffff
def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xa282ead8) & 0xffffffff
def varint(b, i):
    shift = v = 0
    while True:
        x = b[i]; i += 1; v |= (x & 0x7f) << shift; shift += 7
        if not x & 0x80: return v, i
def fields(b):
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i); f, t = key >> 3, key & 7
        if t == 0: v, i = varint(b, i)
        elif t == 1: v = b[i:i+8]; i += 8
        elif t == 5: v = b[i:i+4]; i += 4
        else: n, i = varint(b, i); v = b[i:i+n]; i += n
        out.append((f, v))
    return out
data = open(INPUT, 'rb').read()
i, res = 0, []
while i < len(data):
    n = struct.unpack('<Q', data[i:i+8])[0]
    assert struct.unpack('<I', data[i+8:i+12])[0] == masked(data[i:i+8])
    ev = data[i+12:i+12+n]
    assert struct.unpack('<I', data[i+12+n:i+16+n])[0] == masked(ev)
    i += 16 + n
    step = 0
    for f, v in fields(ev):
        if f == 2: step = v
        if f == 5:
            for _, val in fields(v):
                d = dict(fields(val))
                res.append([d[1].decode(), step, struct.unpack('<f', d[2])[0]])
print(json.dumps(res))
`, w.path);
  assert.deepEqual(events, [['train_loss', 1, 0.5], ['train_loss', 2, 0.25], ['knn@20', 3, 81.5]]);
});

test('.npy files load in NumPy with shape and dtype', { skip: !peerAvailable() && 'no python' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'groco-npy-'));
  writeNpy(join(dir, 'f.npy'), Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
  writeNpy(join(dir, 'l.npy'), BigInt64Array.from([7n, 8n]), [2]);
  const got = runPeer<{ f: number[][]; fd: string; l: number[]; ld: string }>(`
import numpy as np
f = np.load(INPUT + '/f.npy'); l = np.load(INPUT + '/l.npy')
print(json.dumps({'f': f.tolist(), 'fd': str(f.dtype), 'l': l.tolist(), 'ld': str(l.dtype)}))
`, dir);
  assert.deepEqual(got, { f: [[1, 2, 3], [4, 5, 6]], fd: 'float32', l: [7, 8], ld: 'int64' });
  assert.throws(() => writeNpy(join(dir, 'bad.npy'), Float32Array.from([1]), [2]), /shape \[2\] holds 2 values, the data 1/);
  assert.equal(existsSync(join(dir, 'bad.npy')), false);
  assert.deepEqual(readdirSync(dir).sort(), ['f.npy', 'l.npy']);
});
