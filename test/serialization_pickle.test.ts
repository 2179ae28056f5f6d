// The pickle reader and writer: every protocol Python writes, the opcodes it rarely writes, the
// allow-list, and the writer's output read back by Python's own pickle.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  NumpyDType,
  OrderedDict,
  pickle,
  PyFloat,
  PyGlobal,
  PyObject,
  PyTuple,
  SerializationError,
  torchGlobals,
  tuple,
  unpickle,
} from '../src/torch/serialization/index.js';
import { describeValue, makeTempDir, peerSkipReason, runPeer } from './serialization_peer.js';
import type { Description } from './serialization_peer.js';

/** Assembles a pickle: numbers are bytes, strings are latin1 bytes, arrays are spliced in. */
function assemble(...parts: (number | string | Uint8Array | number[])[]): Uint8Array {
  const bytes: number[] = [];
  for (const part of parts) {
    if (typeof part === 'number') bytes.push(part);
    else if (typeof part === 'string') for (let i = 0; i < part.length; i++) bytes.push(part.charCodeAt(i));
    else for (const byte of part) bytes.push(byte);
  }
  return Uint8Array.from(bytes);
}

/** A SHORT_BINUNICODE string. */
function str(text: string): number[] {
  return [0x8c, text.length, ...[...text].map((ch) => ch.charCodeAt(0))];
}

function repeat(byte: number, count: number): Uint8Array {
  return new Uint8Array(count).fill(byte);
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

function load(bytes: Uint8Array, source = 'test.pkl'): unknown {
  return unpickle(bytes, { source }).value;
}

function refused(bytes: Uint8Array, pattern: RegExp, source = 'test.pkl'): void {
  assert.throws(
    () => unpickle(bytes, { source, globals: torchGlobals() }),
    (error: Error) => {
      assert.ok(error instanceof SerializationError, `not a SerializationError: ${error}`);
      assert.ok(error.message.startsWith(`${source}: `), error.message);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('pickles written by Python', { skip: peerSkipReason() }, () => {
  const temp = makeTempDir('groco-pickle-');
  before(() => runPeer(temp.dir, ['pickles', temp.dir]));
  after(() => temp.remove());

  test('every protocol from 0 to 5 reads to the same values', () => {
    const expected = JSON.parse(readFileSync(join(temp.dir, 'plain.json'), 'utf8')) as Description;
    for (let protocol = 0; protocol <= 5; protocol++) {
      const bytes = readFileSync(join(temp.dir, `plain.p${protocol}.pkl`));
      const { value, end } = unpickle(bytes, { source: `plain.p${protocol}.pkl` });
      assert.equal(end, bytes.length);
      assert.deepStrictEqual(describeValue(value), expected, `protocol ${protocol}`);
    }
  });

  test("the writer's output is read by Python's pickle", () => {
    const value = readPlain(temp.dir);
    const file = join(temp.dir, 'from_ts.pkl');
    writeFileSync(file, pickle(value));
    const loaded = JSON.parse(runPeer(temp.dir, ['load_pickles', file])) as Description[];
    assert.deepStrictEqual(loaded[0], describeValue(value));
  });
});

function readPlain(dir: string): unknown {
  return load(readFileSync(join(dir, 'plain.p2.pkl')));
}

describe('pickle reader', () => {
  test('rare opcodes: DUP, POP, POP_MARK, MEMOIZE, FRAME, text ints and floats', () => {
    const bytes = assemble(
      0x80, 4, 0x95, [9, 0, 0, 0, 0, 0, 0, 0], // FRAME of 9 bytes (not enforced)
      ']', 0x94, '2', // EMPTY_LIST, MEMOIZE, DUP
      'K', 1, 'a', '0', // APPEND 1 to the copy, POP the copy
      '(', 'K', 9, '1', // MARK 9 POP_MARK
      'K', 7, '0', // push 7, POP
      'K', 1, 'a',
      'I01\n', 'a', 'I-12\n', 'a', 'L123456789012345678901234567890L\n', 'a',
      'F-1.5e3\n', 'a', 'Fnan\n', 'a', '.',
    );
    const value = load(bytes) as unknown[];
    assert.equal(value.length, 7);
    assert.deepEqual(value.slice(0, 6), [1, 1, true, -12, 123456789012345678901234567890n, -1500]);
    assert.ok(Number.isNaN(value[6]));
  });

  test('Python 2 strings, protocol 4 and 5 containers and globals', () => {
    const value = load(
      assemble(
        0x80, 5, '}', '(',
        'U', 1, 'a', 'S', "'x\\n\\'y\\x41'\n", // SHORT_BINSTRING, STRING
        'T', u32(1), 'b', str('hi'), // BINSTRING, SHORT_BINUNICODE
        str('c'), 'C', 2, 'ok', // SHORT_BINBYTES
        str('d'), 0x8e, [1, 0, 0, 0, 0, 0, 0, 0], 'z', // BINBYTES8
        str('e'), 0x96, [1, 0, 0, 0, 0, 0, 0, 0], 'w', 0x98, // BYTEARRAY8, READONLY_BUFFER
        str('f'), 0x8f, '(', 'K', 1, 'K', 2, 0x90, // EMPTY_SET, ADDITEMS
        str('g'), '(', 'K', 3, 0x91, // FROZENSET
        str('h'), str('collections'), str('OrderedDict'), 0x93, ')', '}', 0x92, // NEWOBJ_EX
        str('i'), 'Vcaf\xe9 \\u2713\n', // UNICODE (raw-unicode-escape)
        'u', '.',
      ),
    ) as Map<string, unknown>;
    assert.deepEqual([...value.keys()], ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    assert.equal(value.get('a'), "x\n'yA");
    assert.equal(value.get('b'), 'hi');
    assert.deepEqual(value.get('c'), new TextEncoder().encode('ok'));
    assert.deepEqual(value.get('d'), Uint8Array.of(0x7a));
    assert.deepEqual(value.get('f'), new Set([1, 2]));
    assert.deepEqual(value.get('g'), new Set([3]));
    assert.ok(value.get('h') instanceof OrderedDict);
    assert.equal(value.get('i'), 'café ✓');
  });

  test('numpy scalars and argparse namespaces are read as data', () => {
    const value = load(
      assemble(
        0x80, 2, 'c', 'numpy.core.multiarray\nscalar\n',
        'c', 'numpy\ndtype\n', 'X', u32(2), 'i2', 0x89, 0x88, 0x87, 'R',
        '(', 'K', 3, 'X', u32(1), '>', 'N', 'N', 'N', 'J', u32(-1 >>> 0), 'J', u32(-1 >>> 0), 'K', 0,
        't', 'b', 'C', 2, [0xff, 0xfe], 0x86, 'R', // big-endian int16 0xfffe = -2
        'c', 'argparse\nNamespace\n', ')', 0x81, '}', 'X', u32(2), 'lr', 'G',
        [0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a], 's', 'b',
        0x86, '.',
      ),
    ) as PyTuple;
    assert.equal(value[0], -2);
    assert.ok(value[1] instanceof PyObject);
    assert.equal(value[1].qualifiedName, 'argparse.Namespace');
    assert.deepEqual([...value[1].state], [['lr', 0.1]]);
  });

  test('a numpy dtype beyond bool, int, uint and float is refused', () => {
    refused(
      assemble(0x80, 2, 'c', 'numpy\ndtype\n', 'X', u32(3), 'c16', 0x89, 0x88, 0x87, 'R', '.'),
      /numpy\.dtype: unsupported numpy dtype the string "c16"/,
    );
  });

  test('globals outside the allow-list are refused by name, before anything runs', () => {
    refused(assemble("cos\nsystem\n(S'touch pwned'\ntR."), /refusing to load pickle global 'os\.system'/);
    refused(assemble('cposix\nsystem\n.'), /'posix\.system'/);
    refused(assemble('c__builtin__\neval\n.'), /'builtins\.eval'/);
    refused(assemble('cbuiltins\ngetattr\n.'), /'builtins\.getattr'/);
    refused(assemble('csubprocess\nPopen\n.'), /'subprocess\.Popen'/);
    refused(assemble('ccopyreg\n_reconstructor\n.'), /'copyreg\._reconstructor'/);
    refused(assemble(0x80, 4, 0x8c, 2, 'os', 0x8c, 6, 'system', 0x93, '.'), /'os\.system'/);
    refused(assemble('(ios\nsystem\n.'), /'os\.system'/); // INST
    refused(
      assemble('ctorch.storage\n_load_from_bytes\n.'),
      /'torch\.storage\._load_from_bytes': it would run torch\.load/,
    );
    refused(assemble('ctorch.nn.modules.linear\nLinear\n.'), /save its state_dict\(\) instead/);
    refused(assemble('c__torch__.Model\nLinear\n.'), /TorchScript/);
  });

  test('allowed globals are only data: calling or building what they do not offer fails', () => {
    refused(assemble('ctorch\nFloatStorage\n)R.'), /cannot call 'torch\.FloatStorage'/);
    refused(assemble('c_codecs\nencode\n)\x81.'), /cannot create an instance of '_codecs\.encode'/);
    refused(assemble(']K\x01b.'), /cannot restore state \(BUILD\) of a list/);
    refused(assemble('K\x01)R.'), /cannot call number 1/);
    refused(assemble('ctorch._utils\n_rebuild_tensor_v2\nK\x01R.'), /must be a tuple/);
  });

  test('persistent ids need a loader; extension codes and out-of-band buffers are refused', () => {
    refused(assemble('K\x01Q.'), /persistent id found/);
    refused(assemble('P1\n.'), /persistent id found/);
    refused(assemble(0x82, 1, '.'), /extension registry/);
    refused(assemble(0x80, 5, 0x97, '.'), /out-of-band buffers/);
    refused(assemble(0x80, 6, '.'), /unsupported pickle protocol 6/);
    refused(assemble(0xff), /invalid pickle opcode 0xff/);
  });

  test('malformed input is reported with its position', () => {
    refused(assemble(0x80, 2), /truncated pickle: the data ends before the STOP opcode \(at byte 2\)/);
    refused(assemble(0x80, 2, 'J', 1, 2), /truncated pickle: 4 bytes needed at byte 3/);
    refused(assemble('a.'), /stack underflow \(at byte 0, opcode APPEND\)/);
    refused(assemble('K\x01(a.'), /stack underflow/); // the mark hides what is below it
    refused(assemble('1.'), /no MARK to pop to/);
    refused(assemble('h\x05.'), /memo entry 5 was never stored/);
    refused(assemble('}K\x01s.'), /stack underflow/);
    refused(assemble('}]K\x01s.'), /unhashable dict key or set item: a list of 0/);
    refused(assemble('}(K\x01u.'), /odd number of items/);
    refused(assemble('Inope\n.'), /invalid integer literal "nope"/);
    refused(assemble('F1e\n.'), /invalid float literal/);
    refused(assemble('S"abc\n.'), /STRING argument is not a quoted literal/);
    refused(assemble('cos'), /no terminating newline/);
  });

  test('nesting, cycles and sharing are bounded', () => {
    const deep = 100_000;
    const started = performance.now();
    // a stack of 100k lists appended into each other
    refused(
      assemble(0x80, 2, repeat(0x5d, deep), repeat(0x61, deep - 1), '.'),
      /nesting deeper than the limit of 1000/,
    );
    // 100k marks
    refused(
      assemble(0x80, 2, repeat(0x28, deep), '.'),
      /nesting deeper than the limit of 1000 \(at byte 1002/,
    );
    // constant stack: each new list goes into the previous one, which is then popped
    const step = [0x30, 0x68, 1, 0x5d, 0x71, 1, 0x61]; // POP, BINGET 1, EMPTY_LIST, BINPUT 1, APPEND
    const chain = new Uint8Array(step.length * deep);
    for (let i = 0; i < deep; i++) chain.set(step, i * step.length);
    refused(
      assemble(0x80, 2, 0x5d, 0x71, 0, 0x5d, 0x71, 1, 0x61, chain, 0x30, 0x68, 0, '.'),
      /nesting deeper than the limit of 1000/,
    );
    assert.ok(performance.now() - started < 2000);

    refused(assemble(']q\x00h\x00a.'), /contains itself \(a cycle\)/);
    refused(assemble('}q\x00K\x01h\x00s.'), /contains itself/);

    // 200 references to 200 references to ... : 200^5 values when counted as a tree
    const laughs: number[] = [0x5d, 0x71, 0];
    for (let level = 0; level < 5; level++) {
      laughs.push(0x28);
      for (let i = 0; i < 200; i++) laughs.push(0x68, level);
      laughs.push(0x6c, 0x71, level + 1);
    }
    refused(assemble(...laughs, '.'), /more than 20000000 values counting shared parts/);
    // the same within the limits is fine, and sharing is kept
    const shared = load(assemble(']q\x00(h\x00h\x00l.')) as unknown[][];
    assert.equal(shared[0], shared[1]);
  });

  test('declared sizes are checked against the bytes that remain', () => {
    refused(assemble('X', u32(0xfffffff0), 'abc.'), /string declares 4294967280 bytes, but only 4 remain/);
    refused(assemble(0x8d, [0, 0, 0, 0, 0, 0, 0, 0x40], '.'), /string declares 9007199254740991 bytes/);
    refused(assemble(0x8e, [0, 0, 0, 0, 0, 1, 0, 0], '.'), /bytes declares 1099511627776 bytes/);
    refused(assemble('T', [0, 0, 0, 0x80], '.'), /negative length/);
    refused(assemble(0x8b, u32(0x7fffffff), '.'), /integer of 2147483647 bytes exceeds the limit of 4096/);
    refused(assemble(0x8a, 200, 1, 2), /integer declares 200 bytes, but only 2 remain/);
    refused(assemble(0x95, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], '.'), /frame declares/);
  });

  test('limits can be lowered', () => {
    const bytes = assemble(']', '(', repeat(0x4e, 50), 'e', '.');
    assert.equal((load(bytes) as unknown[]).length, 50);
    assert.throws(
      () => unpickle(bytes, { source: 's', limits: { maxStack: 20 } }),
      /s: pickle: more than 20 values on the stack/,
    );
    assert.throws(
      () => unpickle(assemble('(', repeat(0x5d, 30), 'l.'), { source: 's', limits: { maxObjects: 10 } }),
      /more than 10 values \(limit maxObjects\)/,
    );
  });
});

describe('pickle writer', () => {
  test('values read back as written', () => {
    const inner = [1, 2];
    const value = new Map<unknown, unknown>([
      ['ints', [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1, -(2 ** 53) + 1]],
      ['bigints', [2n ** 64n, -(2n ** 64n), 0n, 127n, 128n, -128n, -129n, 2n ** 2100n]],
      ['floats', [0.5, -0, NaN, Infinity, -Infinity, 1e300, new PyFloat(2)]],
      ['strings', ['', 'a', 'ünïcødé ✓ 𝄞', 'x'.repeat(70_000), 'a']],
      ['bytes', [new Uint8Array(0), Uint8Array.of(0, 128, 255)]],
      ['tuples', [tuple([]), tuple([1]), tuple([1, 2]), tuple([1, 2, 3]), tuple([1, 2, 3, 4])]],
      [1, 'int key'],
      [tuple(['a', 1]), 'tuple key'],
      [null, 'None key'],
      ['shared', [inner, inner]],
      [
        'odict',
        Object.assign(new OrderedDict([['b', 1], ['a', 2]]), {
          attributes: new Map([['_metadata', new Map()]]),
        }),
      ],
      ['set', new Set(['x', 'y'])],
      ['namespace', new PyObject('argparse', 'Namespace', new Map([['lr', 0.1]]))],
      ['global', new PyGlobal('torch', 'FloatStorage')],
      ['long list', Array.from({ length: 2500 }, (_, i) => i)],
      ['long dict', new Map(Array.from({ length: 1500 }, (_, i) => [`k${i}`, i]))],
      ['dtype', 'unused'],
    ]);
    const back = unpickle(pickle(value), { source: 'w', globals: torchGlobals() })
      .value as Map<unknown, unknown>;
    const keys = [...back.keys()];
    assert.deepEqual(back.get('ints'), value.get('ints'));
    assert.deepEqual(back.get('bigints'), [2n ** 64n, -(2n ** 64n), 0, 127, 128, -128, -129, 2n ** 2100n]);
    const floats = back.get('floats') as number[];
    assert.ok(Object.is(floats[1], -0) && Number.isNaN(floats[2]));
    assert.deepEqual(floats.slice(3), [Infinity, -Infinity, 1e300, 2]);
    assert.deepEqual(back.get('strings'), value.get('strings'));
    assert.deepEqual(back.get('bytes'), value.get('bytes'));
    assert.ok((back.get('tuples') as unknown[]).every((t) => t instanceof PyTuple));
    assert.deepEqual(keys.slice(6, 9), [1, keys[7], null]);
    assert.deepEqual([...(keys[7] as PyTuple)], ['a', 1]);
    const shared = back.get('shared') as unknown[];
    assert.equal(shared[0], shared[1]);
    const odict = back.get('odict') as OrderedDict;
    assert.ok(odict instanceof OrderedDict);
    assert.deepEqual([...odict.keys()], ['b', 'a']);
    assert.deepEqual([...odict.attributes!.keys()], ['_metadata']);
    assert.deepEqual(back.get('set'), new Set(['x', 'y']));
    assert.equal((back.get('namespace') as PyObject).state.get('lr'), 0.1);
    assert.equal((back.get('global') as PyGlobal).qualifiedName, 'torch.FloatStorage');
    assert.deepEqual(back.get('long list'), value.get('long list'));
    assert.deepEqual(back.get('long dict'), value.get('long dict'));
  });

  test('what it cannot write is reported with the path to it', () => {
    const cases: [unknown, RegExp][] = [
      [new Map([['a', [1, undefined]]]), /out\.pth: value at \["a"\]\[1\]: cannot write undefined/],
      [{ f: () => 1 }, /value at \["f"\]: cannot write function/],
      [[Symbol('s')], /cannot write symbol/],
      [new Map([['t', new Float32Array(2)]]), /cannot write a Float32Array \(give tensors as tensor records\)/],
      [new Map([[[1], 2]]), /dict keys must be None, booleans, numbers, strings or tuples/],
      [new Date(0), /cannot write a Date/],
      [new PyObject('os', 'system'), /cannot write an object of class os\.system/],
      [new NumpyDType('f8'), /cannot write a NumpyDType/],
    ];
    for (const [value, pattern] of cases) {
      assert.throws(() => pickle(value, { source: 'out.pth' }), pattern);
    }
    const selfTuple: unknown[] = tuple([1]);
    selfTuple.push(selfTuple);
    assert.throws(() => pickle(selfTuple), /a tuple or reduced value contains itself/);
    let deep: unknown[] = [];
    for (let i = 0; i < 2000; i++) deep = [deep];
    assert.throws(() => pickle(deep), /nested deeper than 1000 levels/);
  });
});
