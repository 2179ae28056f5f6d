// Checkpoints both ways with the PyTorch peer: torch.save (zip, legacy, protocol 4, deflated)
// read here, and checkpoints written here read by torch.load.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import {
  OrderedDict,
  PyFloat,
  readCheckpoint,
  readCheckpointFile,
  SerializationError,
  tensorBytes,
  tuple,
  writeCheckpoint,
  writeCheckpointFile,
} from '../src/torch/serialization/index.js';
import type { DType, TensorRecord } from '../src/torch/serialization/index.js';
import {
  describeValue,
  describeWithPeer,
  makeTempDir,
  peerSkipReason,
  runPeer,
} from './serialization_peer.js';
import type { Description } from './serialization_peer.js';

const skip = peerSkipReason();

function expected(dir: string, name: string): Description {
  return JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as Description;
}

function asMap(value: unknown): Map<unknown, unknown> {
  assert.ok(value instanceof Map, 'expected a dict');
  return value;
}

describe('checkpoints written by torch.save', { skip }, () => {
  const temp = makeTempDir('groco-ckpt-');
  let names: string[] = [];

  before(() => {
    names = JSON.parse(runPeer(temp.dir, ['make', temp.dir])) as string[];
  });
  after(() => temp.remove());

  for (const format of ['zip', 'legacy', 'p4']) {
    test(`${format} files read as torch.load reads them`, async () => {
      assert.deepEqual(names, ['dtypes', 'views', 'parameters', 'python', 'training']);
      for (const name of names) {
        const value = await readCheckpointFile(join(temp.dir, `${name}.${format}.pth`));
        assert.deepStrictEqual(describeValue(value), expected(temp.dir, name), name);
      }
    });
  }

  test('legacy storages are aligned by a copy, or in place when the buffer may change', () => {
    for (const name of names) {
      const bytes = readFileSync(join(temp.dir, `${name}.legacy.pth`));
      const copied = readCheckpoint(bytes, name);
      const untouched = Buffer.from(bytes);
      assert.deepStrictEqual(describeValue(copied), expected(temp.dir, name));
      assert.deepEqual(bytes, untouched);
      const inPlace = readCheckpoint(bytes, name, { mayModifyInput: true });
      assert.deepStrictEqual(describeValue(inPlace), expected(temp.dir, name));
    }
  });

  test('a zip checkpoint with deflated records reads the same', async () => {
    const value = await readCheckpointFile(join(temp.dir, 'python.deflated.pth'));
    assert.deepStrictEqual(describeValue(value), expected(temp.dir, 'python'));
  });

  test('views of one storage share one StorageRecord and keep offsets and strides', async () => {
    for (const format of ['zip', 'legacy']) {
      const views = asMap(await readCheckpointFile(join(temp.dir, `views.${format}.pth`)));
      const whole = views.get('whole') as TensorRecord;
      const strided = views.get('strided') as TensorRecord;
      assert.equal(strided.storage, whole.storage);
      assert.deepEqual([strided.shape, strided.stride, strided.storageOffset], [[3, 3], [10, 3], 31]);
      const values = new Float32Array(tensorBytes(strided).slice().buffer);
      assert.deepEqual([...values], [31, 34, 37, 41, 44, 47, 51, 54, 57]);
      // typed-array views of storage bytes need aligned offsets, in both formats
      assert.equal(whole.storage.data.byteOffset % 4, 0);
    }
  });

  test('optimizer state keeps int keys and param groups', async () => {
    const training = asMap(await readCheckpointFile(join(temp.dir, 'training.legacy.pth')));
    const optimizer = asMap(training.get('optimizer'));
    const state = asMap(optimizer.get('state'));
    assert.deepEqual([...state.keys()], [0, 1, 2, 3, 4, 5]);
    const buffer = asMap(state.get(0)).get('momentum_buffer') as TensorRecord;
    assert.deepEqual([buffer.dtype, buffer.shape], ['float32', [3, 4]]);
    const group = asMap((optimizer.get('param_groups') as unknown[])[0]);
    assert.deepEqual(
      [group.get('lr'), group.get('momentum'), group.get('nesterov'), group.get('params')],
      [0.1, 0.9, false, [0, 1, 2, 3, 4, 5]],
    );
  });

  test('what is read here is written back so that torch.load gives the same', async () => {
    const out = join(temp.dir, 'roundtrip');
    mkdirSync(out);
    const files: string[] = [];
    const descriptions: Description[] = [];
    for (const name of names) {
      for (const format of ['zip', 'legacy']) {
        const value = await readCheckpointFile(join(temp.dir, `${name}.${format}.pth`));
        const file = join(out, `${name}.${format}.pth`);
        await writeCheckpointFile(file, value);
        files.push(file);
        descriptions.push(expected(temp.dir, name));
      }
    }
    const loaded = describeWithPeer(temp.dir, files).descriptions;
    loaded.forEach((description, i) => assert.deepStrictEqual(description, descriptions[i], files[i]));
  });
});

// values made here, for torch.load to read

function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function madeHere(): Map<string, unknown> {
  const storage = {
    kind: 'storage' as const,
    key: 'ignored',
    dtype: 'float32' as DType,
    data: bytesOf(Float32Array.from({ length: 24 }, (_, i) => i * 0.5)),
    location: 'cuda:0',
  };
  const view = (shape: number[], stride: number[], storageOffset: number): TensorRecord => ({
    kind: 'tensor',
    dtype: 'float32',
    shape,
    stride,
    storageOffset,
    storage,
    requiresGrad: false,
  });
  const contiguous = (dtype: DType, shape: number[], data: ArrayBufferView) => ({
    kind: 'tensor' as const,
    dtype,
    shape,
    data: bytesOf(data),
  });

  const tensors = new OrderedDict<string, unknown>([
    ['float32', contiguous('float32', [2, 2], Float32Array.of(1, -2, 3.5, NaN))],
    ['float64', contiguous('float64', [3], Float64Array.of(0.1, -0, Infinity))],
    ['float16', contiguous('float16', [2], Uint16Array.of(0x3c00, 0xc000))],
    ['bfloat16', contiguous('bfloat16', [2], Uint16Array.of(0x3f80, 0x4049))],
    ['int64', contiguous('int64', [2], BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n))],
    ['int32', contiguous('int32', [1, 2], Int32Array.of(-7, 7))],
    ['int16', contiguous('int16', [2], Int16Array.of(-300, 300))],
    ['int8', contiguous('int8', [2], Int8Array.of(-128, 127))],
    ['uint8', contiguous('uint8', [3], Uint8Array.of(0, 128, 255))],
    ['bool', contiguous('bool', [2], Uint8Array.of(1, 0))],
    ['scalar', contiguous('float64', [], Float64Array.of(2.5))],
    ['empty', contiguous('float32', [0, 4], new Float32Array(0))],
  ]);
  tensors.attributes = new Map([['_metadata', new OrderedDict([['', new Map([['version', 1]])]])]]);

  return new Map<string, unknown>([
    ['tensors', tensors],
    [
      'views',
      new Map<string, unknown>([
        ['whole', view([24], [1], 0)],
        ['matrix', view([4, 5], [5, 1], 4)],
        ['transposed', view([5, 4], [1, 5], 4)],
        ['strided', view([2, 2], [10, 3], 5)],
        ['broadcast', view([3, 2], [0, 1], 22)],
      ]),
    ],
    [
      'parameter',
      { ...contiguous('float32', [2], Float32Array.of(1, 2)), requiresGrad: true, parameter: true },
    ],
    ['epoch', 12],
    ['step', 2 ** 40],
    ['big', 2n ** 80n],
    ['lr', new PyFloat(1)],
    ['ratio', 0.25],
    ['name', 'résumé ✓'],
    ['flags', [true, false, null]],
    ['betas', tuple([0.9, 0.999])],
    ['raw', Uint8Array.of(0, 255, 10)],
    ['set', new Set([3, 1])],
  ]);
}

describe('checkpoints written here', { skip }, () => {
  const temp = makeTempDir('groco-ckpt-out-');
  after(() => temp.remove());

  test('torch.load reads every value kind, dtype and view', async () => {
    // plain JavaScript objects are written as dicts
    const value = new Map([...madeHere(), ['plain', { a: 1, nested: { b: [2] } }]]);
    const reference = describeValue(
      new Map([
        ...madeHere(),
        ['plain', new Map<string, unknown>([['a', 1], ['nested', new Map([['b', [2]]])]])],
      ]),
    );
    const files = [join(temp.dir, 'made.pth'), join(temp.dir, 'made64.pth')];
    await writeCheckpointFile(files[0], value);
    writeFileSync(files[1], writeCheckpoint(value, { forceZip64: true, archiveName: 'made64' }));

    const loaded = describeWithPeer(temp.dir, files);
    for (const description of loaded.descriptions) assert.deepStrictEqual(description, reference);

    const types = loaded.types[0];
    assert.deepEqual(
      [types.epoch, types.step, types.big, types.lr, types.ratio, types.betas, types.raw, types.set],
      ['int', 'int', 'int', 'float', 'float', 'tuple', 'bytes', 'set'],
    );
  });

  test('what is written here reads back identically here', () => {
    const value = madeHere();
    const back = readCheckpoint(writeCheckpoint(value), 'made.pth');
    assert.deepStrictEqual(describeValue(back), describeValue(value));
  });
});

describe('checkpoint files are replaced atomically', () => {
  const temp = makeTempDir('groco-atomic-');
  after(() => temp.remove());
  const value = new Map([['epoch', 1]]);

  test('a value that cannot be written leaves the old file and no temporary file', async () => {
    const file = join(temp.dir, 'latest_model.pth');
    await writeCheckpointFile(file, value);
    const before = readFileSync(file);

    const bad = new Map<string, unknown>([['encoder', new Map([['w', () => 1]])]]);
    await assert.rejects(writeCheckpointFile(file, bad), (error: Error) => {
      assert.ok(error instanceof SerializationError);
      assert.ok(error.message.startsWith(`${file}: value at ["encoder"]["w"]: cannot write function`));
      return true;
    });
    assert.deepEqual(readFileSync(file), before);
    assert.deepEqual(readdirSync(temp.dir), ['latest_model.pth']);
    assert.deepEqual(asMap(await readCheckpointFile(file)).get('epoch'), 1);
  });

  test('a failing rename leaves what was there and no temporary file', async () => {
    const folder = join(temp.dir, 'occupied');
    mkdirSync(join(folder, 'checkpoint.pth'), { recursive: true });
    writeFileSync(join(folder, 'checkpoint.pth', 'keep'), 'x');
    await assert.rejects(writeCheckpointFile(join(folder, 'checkpoint.pth'), value), (error: Error) =>
      error.message.startsWith(join(folder, 'checkpoint.pth') + ': cannot write the checkpoint'),
    );
    assert.deepEqual(readdirSync(folder), ['checkpoint.pth']);
    assert.deepEqual(readdirSync(join(folder, 'checkpoint.pth')), ['keep']);
  });

  test('a process that exits in the middle of a write leaves no temporary file', async () => {
    const folder = join(temp.dir, 'interrupted');
    mkdirSync(folder);
    const file = join(folder, 'latest_model.pth');
    await writeCheckpointFile(file, value);
    const before = readFileSync(file);

    // 256 MiB of zeros; exits (as a second Ctrl-C does) once the temporary file exists
    const torch = fileURLToPath(new URL('../src/torch/index.js', import.meta.url));
    const saving = fileURLToPath(new URL('../src/torch/save.js', import.meta.url));
    const script = `
      import { readdirSync } from 'node:fs';
      const { zeros } = await import(${JSON.stringify(torch)});
      const { save } = await import(${JSON.stringify(saving)});
      const [folder, file] = process.argv.slice(1);
      setInterval(() => {
        if (readdirSync(folder).some((f) => f.endsWith('.tmp'))) process.exit(130);
      }, 1);
      await save(file, { w: zeros([64 * 1024 * 1024]) });
      process.exit(0);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, folder, file],
      { encoding: 'utf8' });
    assert.equal(child.status, 130, `the write was not interrupted: ${child.stderr}`);
    assert.deepEqual(readdirSync(folder), ['latest_model.pth']);
    assert.deepEqual(readFileSync(file), before);
  });

  test('a missing folder is reported with the path', async () => {
    const file = join(temp.dir, 'missing', 'x.pth');
    await assert.rejects(writeCheckpointFile(file, value), (error: Error) =>
      error.message.startsWith(`${file}: cannot write the checkpoint`),
    );
    await assert.rejects(readCheckpointFile(file), (error: Error) =>
      error.message.startsWith(`${file}: cannot read the file`),
    );
  });
});
