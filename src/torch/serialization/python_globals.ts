// The built-in allow-list of pickle globals: the few Python classes and functions whose effect
// is plain data (ordered dicts, sets, bytes, argparse namespaces, numpy scalars), each done here
// as a pure function of its arguments.

import { Buffer } from 'node:buffer';

import type { PickleGlobal } from './pickle_reader.js';
import { describePyValue, normalizeInt, NumpyDType, OrderedDict, PyObject, PyTuple } from './values.js';

/** Refuses what Python could not use as a dict key or set item. */
export function checkHashable(key: unknown): unknown {
  if ((Array.isArray(key) && !(key instanceof PyTuple)) || key instanceof Map || key instanceof Set) {
    throw new Error(`unhashable dict key or set item: ${describePyValue(key)}`);
  }
  return key;
}

function encodeText(text: unknown, encoding: unknown): Uint8Array {
  if (typeof text !== 'string') throw new Error(`expected a string, got ${describePyValue(text)}`);
  const name = typeof encoding === 'string' ? encoding.toLowerCase().replace(/_/g, '-') : 'utf-8';
  if (['latin1', 'latin-1', 'iso-8859-1', 'iso8859-1', 'l1', 'ascii'].includes(name)) {
    const limit = name === 'ascii' ? 0x7f : 0xff;
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code > limit) throw new Error(`character U+${code.toString(16)} is not ${name}`);
      out[i] = code;
    }
    return out;
  }
  if (name === 'utf-8' || name === 'utf8') return new Uint8Array(Buffer.from(text, 'utf8'));
  throw new Error(`unsupported encoding ${JSON.stringify(String(encoding))}`);
}

function bytesFromArgs(args: PyTuple): Uint8Array {
  if (args.length === 0) return new Uint8Array(0);
  const [first, encoding] = args;
  if (first instanceof Uint8Array && args.length === 1) return first.slice();
  if (Array.isArray(first) && args.length === 1) {
    const out = new Uint8Array(first.length);
    first.forEach((b, i) => {
      if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) {
        throw new Error('byte values must be integers in 0..255');
      }
      out[i] = b;
    });
    return out;
  }
  if (typeof first === 'string' && args.length <= 2) return encodeText(first, encoding);
  throw new Error('unsupported arguments');
}

function collectionItems(args: PyTuple): Iterable<unknown> {
  if (args.length === 0) return [];
  const [items] = args;
  if (args.length === 1 && (Array.isArray(items) || items instanceof Set)) return items;
  throw new Error('expected no arguments or one list');
}

const NUMPY_CODE = /^([<>|=]?)([biuf])(\d+)$/;

function numpyScalar(args: PyTuple): number | bigint | boolean {
  const [dtype, data] = args;
  if (!(dtype instanceof NumpyDType) || args.length !== 2) {
    throw new Error('expected (dtype, bytes)');
  }
  const bytes = typeof data === 'string' ? encodeText(data, 'latin1') : data;
  const match = NUMPY_CODE.exec(dtype.code);
  if (!(bytes instanceof Uint8Array) || !match) throw new Error('expected (dtype, bytes)');
  const [, , kind, sizeText] = match;
  const size = Number(sizeText);
  if (bytes.length !== size) throw new Error(`a ${dtype.code} scalar needs ${size} bytes`);
  const buf = Buffer.from(bytes);
  if (dtype.byteOrder === '>' && size > 1) buf.reverse();
  if (kind === 'b') return buf[0] !== 0;
  if (kind === 'f') {
    if (size === 2) return halfToNumber(buf.readUInt16LE(0));
    return size === 4 ? buf.readFloatLE(0) : buf.readDoubleLE(0);
  }
  if (size === 8) return normalizeInt(kind === 'i' ? buf.readBigInt64LE(0) : buf.readBigUInt64LE(0));
  return kind === 'i' ? buf.readIntLE(0, size) : buf.readUIntLE(0, size);
}

function numpyDType(args: PyTuple): NumpyDType {
  const [code] = args;
  const match = typeof code === 'string' ? NUMPY_CODE.exec(code) : null;
  const size = match ? Number(match[3]) : 0;
  const sizes: Record<string, number[]> = { b: [1], i: [1, 2, 4, 8], u: [1, 2, 4, 8], f: [2, 4, 8] };
  if (!match || !sizes[match[2]].includes(size)) {
    throw new Error(`unsupported numpy dtype ${describePyValue(code)} (only bool, int, uint, float)`);
  }
  const dtype = new NumpyDType(match[2] + match[3]);
  if (match[1]) dtype.byteOrder = match[1];
  return dtype;
}

/** IEEE 754 half precision bits to a number. */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const setGlobal: PickleGlobal = {
  call: (args) => new Set(collectionItems(args)),
  construct: () => new Set(),
};
const bytesGlobal: PickleGlobal = { call: bytesFromArgs };
const namespaceGlobal: PickleGlobal = {
  call: (args) => {
    if (args.length > 0) throw new Error('expected no positional arguments');
    return new PyObject('argparse', 'Namespace');
  },
  construct: () => new PyObject('argparse', 'Namespace'),
};
const numpyScalarGlobal: PickleGlobal = { call: numpyScalar };

export const BUILTIN_GLOBALS: ReadonlyMap<string, PickleGlobal> = new Map<string, PickleGlobal>([
  [
    'collections.OrderedDict',
    {
      call: (args) => {
        const dict = new OrderedDict();
        for (const pair of collectionItems(args)) {
          if (!Array.isArray(pair) || pair.length !== 2) throw new Error('expected (key, value) pairs');
          dict.set(checkHashable(pair[0]), pair[1]);
        }
        return dict;
      },
      construct: () => new OrderedDict(),
    },
  ],
  ['builtins.set', setGlobal],
  ['builtins.frozenset', setGlobal],
  ['builtins.bytes', bytesGlobal],
  ['builtins.bytearray', bytesGlobal],
  ['_codecs.encode', { call: (args) => encodeText(args[0], args[1]) }],
  ['argparse.Namespace', namespaceGlobal],
  ['numpy.dtype', { call: numpyDType }],
  ['numpy.core.multiarray.scalar', numpyScalarGlobal],
  ['numpy._core.multiarray.scalar', numpyScalarGlobal],
]);

/** The `module.name` of every global the reader accepts without caller-supplied ones. */
export const BUILTIN_GLOBAL_NAMES: readonly string[] = [...BUILTIN_GLOBALS.keys()];
