// A pickler for protocol 2, the protocol torch.save uses, for the values pickle_reader returns.

import { Buffer } from 'node:buffer';

import { SerializationError } from './errors.js';
import { OrderedDict, PyFloat, PyGlobal, PyObject, PyTuple } from './values.js';

export interface PickleReduction {
  callable: PyGlobal;
  args: PyTuple;
}

export interface PickleOptions {
  /** Name used at the start of error messages, usually the file being written. */
  source?: string;
  /** Like Python's `Pickler.persistent_id`: a pid to write instead of the value, or undefined. */
  persistentId?: (value: unknown) => unknown;
  /** Like `reducer_override`: how Python should rebuild a value, or undefined if not handled. */
  reduce?: (value: unknown) => PickleReduction | undefined;
  /** Deepest nesting of containers written (default 1000). */
  maxDepth?: number;
}

const BATCH = 1000; // items per APPENDS / SETITEMS, as CPython writes them

/** Pickles `value` with protocol 2. See values.ts for how JavaScript values map to Python. */
export function pickle(value: unknown, options: PickleOptions = {}): Uint8Array {
  const pickler = new Pickler(options);
  pickler.sink.byte(0x80);
  pickler.sink.byte(2);
  pickler.save(value, 0);
  pickler.sink.byte(0x2e); // STOP
  return pickler.sink.finish();
}

/** Collects output in 64 KiB blocks and joins them once at the end. */
class ByteSink {
  private readonly blocks: Uint8Array[] = [];
  private block = Buffer.allocUnsafe(1 << 16);
  private used = 0;

  private reserve(n: number): void {
    if (this.used + n <= this.block.length) return;
    this.blocks.push(this.block.subarray(0, this.used));
    this.block = Buffer.allocUnsafe(Math.max(1 << 16, n));
    this.used = 0;
  }

  byte(value: number): void {
    this.reserve(1);
    this.block[this.used++] = value;
  }

  u16(value: number): void {
    this.reserve(2);
    this.used = this.block.writeUInt16LE(value, this.used);
  }

  u32(value: number): void {
    this.reserve(4);
    this.used = this.block.writeUInt32LE(value, this.used);
  }

  i32(value: number): void {
    this.reserve(4);
    this.used = this.block.writeInt32LE(value, this.used);
  }

  f64be(value: number): void {
    this.reserve(8);
    this.used = this.block.writeDoubleBE(value, this.used);
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.block.set(data, this.used);
    this.used += data.length;
  }

  /** A length-prefixed UTF-8 string (the BINUNICODE layout). */
  utf8WithLength(text: string): void {
    const length = Buffer.byteLength(text, 'utf8');
    this.u32(length);
    this.reserve(length);
    this.used += this.block.write(text, this.used, 'utf8');
  }

  text(line: string): void {
    const data = Buffer.from(line, 'utf8');
    this.bytes(data);
  }

  finish(): Uint8Array {
    this.blocks.push(this.block.subarray(0, this.used));
    return new Uint8Array(Buffer.concat(this.blocks));
  }
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Minimal two's complement little-endian bytes of an integer, as Python's encode_long. */
function encodeLong(value: bigint): Buffer {
  if (value === 0n) return Buffer.alloc(0);
  const bytes: number[] = [];
  let rest = value;
  for (;;) {
    const byte = Number(rest & 0xffn);
    bytes.push(byte);
    rest >>= 8n;
    const signBitSet = (byte & 0x80) !== 0;
    if ((rest === 0n && !signBitSet) || (rest === -1n && signBitSet)) break;
  }
  return Buffer.from(bytes);
}

class Pickler {
  readonly sink = new ByteSink();
  private readonly memo = new Map<unknown, number>();
  private readonly strings = new Map<string, number>();
  private readonly globals = new Map<string, number>();
  private readonly inProgress = new Set<unknown>();
  private readonly path: string[] = [];
  private readonly maxDepth: number;

  constructor(private readonly options: PickleOptions) {
    this.maxDepth = options.maxDepth ?? 1000;
  }

  private fail(detail: string): never {
    const where = this.path.length > 0 ? `value at ${this.path.join('')}` : 'value';
    throw new SerializationError(this.options.source ?? 'pickle', `${where}: ${detail}`);
  }

  save(value: unknown, depth: number): void {
    if (depth > this.maxDepth) this.fail(`nested deeper than ${this.maxDepth} levels`);

    const pid = this.hook(() => this.options.persistentId?.(value));
    if (pid !== undefined) {
      this.save(pid, depth + 1);
      this.sink.byte(0x51); // BINPERSID
      return;
    }

    switch (typeof value) {
      case 'boolean':
        this.sink.byte(value ? 0x88 : 0x89);
        return;
      case 'number':
        this.saveNumber(value);
        return;
      case 'bigint':
        this.saveLong(value);
        return;
      case 'string':
        this.saveString(value);
        return;
      case 'object':
        if (value === null) {
          this.sink.byte(0x4e); // NONE
          return;
        }
        break;
      default:
        this.fail(`cannot write ${typeof value} (only data: see values.ts)`);
    }

    const object = value as object;
    const memoIndex = this.memo.get(object);
    if (memoIndex !== undefined) {
      this.get(memoIndex);
      return;
    }
    if (this.inProgress.has(object)) this.fail('a tuple or reduced value contains itself');

    const reduction = this.hook(() => this.options.reduce?.(object));
    if (reduction) {
      this.inProgress.add(object);
      this.saveGlobal(reduction.callable);
      this.save(reduction.args, depth + 1);
      this.sink.byte(0x52); // REDUCE
      this.inProgress.delete(object);
      this.put(object);
      return;
    }

    if (object instanceof PyFloat) {
      this.sink.byte(0x47); // BINFLOAT
      this.sink.f64be(object.value);
    } else if (object instanceof PyGlobal) {
      this.saveGlobal(object);
    } else if (object instanceof PyTuple) {
      this.saveTuple(object, depth);
    } else if (Array.isArray(object)) {
      this.sink.byte(0x5d); // EMPTY_LIST
      this.put(object);
      this.saveItems(object, depth);
    } else if (object instanceof OrderedDict) {
      this.saveGlobal(new PyGlobal('collections', 'OrderedDict'));
      this.sink.byte(0x29); // EMPTY_TUPLE
      this.sink.byte(0x52); // REDUCE
      this.put(object);
      this.saveEntries(object.entries(), object.size, depth);
      if (object.attributes && object.attributes.size > 0) {
        this.withPath('.attributes', () => this.save(object.attributes, depth + 1));
        this.sink.byte(0x62); // BUILD
      }
    } else if (object instanceof Map) {
      this.sink.byte(0x7d); // EMPTY_DICT
      this.put(object);
      this.saveEntries(object.entries(), object.size, depth);
    } else if (object instanceof Set) {
      // protocol 2 has no set opcodes: set([items])
      this.inProgress.add(object);
      this.saveGlobal(new PyGlobal('__builtin__', 'set'));
      this.sink.byte(0x5d); // EMPTY_LIST
      this.saveItems([...object], depth);
      this.sink.byte(0x85); // TUPLE1
      this.sink.byte(0x52); // REDUCE
      this.inProgress.delete(object);
      this.put(object);
    } else if (object instanceof Uint8Array) {
      this.saveBytes(object);
    } else if (object instanceof PyObject) {
      if (object.qualifiedName !== 'argparse.Namespace') {
        this.fail(`cannot write an object of class ${object.qualifiedName}`);
      }
      this.saveGlobal(new PyGlobal(object.module, object.name));
      this.sink.byte(0x29); // EMPTY_TUPLE
      this.sink.byte(0x81); // NEWOBJ
      this.put(object);
      this.withPath('.state', () => this.save(object.state, depth + 1));
      this.sink.byte(0x62); // BUILD
    } else if (isPlainObject(object)) {
      // a plain JavaScript object is written as a dict of its own enumerable properties
      this.sink.byte(0x7d); // EMPTY_DICT
      this.put(object);
      const entries = Object.entries(object);
      this.saveEntries(entries.values(), entries.length, depth);
    } else {
      const name = (object as { constructor?: { name?: string } }).constructor?.name ?? 'object';
      const hint = ArrayBuffer.isView(object) ? ' (give tensors as tensor records)' : '';
      this.fail(`cannot write a ${name}${hint}`);
    }
  }

  /** Runs a caller's hook, giving its errors this value's path. */
  private hook<T>(run: () => T): T {
    try {
      return run();
    } catch (error) {
      if (error instanceof SerializationError) throw error;
      return this.fail((error as Error).message);
    }
  }

  private withPath(segment: string, write: () => void): void {
    this.path.push(segment);
    write();
    this.path.pop();
  }

  private saveNumber(value: number): void {
    if (Number.isInteger(value) && !Object.is(value, -0)) {
      if (value >= 0 && value < 0x100) {
        this.sink.byte(0x4b); // BININT1
        this.sink.byte(value);
      } else if (value >= 0 && value < 0x10000) {
        this.sink.byte(0x4d); // BININT2
        this.sink.u16(value);
      } else if (value >= -0x80000000 && value <= 0x7fffffff) {
        this.sink.byte(0x4a); // BININT
        this.sink.i32(value);
      } else if (Number.isSafeInteger(value)) {
        this.saveLong(BigInt(value));
      } else {
        // integers beyond 2^53 are already rounded; they stay floats, as they came
        this.sink.byte(0x47);
        this.sink.f64be(value);
      }
      return;
    }
    this.sink.byte(0x47); // BINFLOAT
    this.sink.f64be(value);
  }

  private saveLong(value: bigint): void {
    const bytes = encodeLong(value);
    if (bytes.length < 256) {
      this.sink.byte(0x8a); // LONG1
      this.sink.byte(bytes.length);
    } else {
      this.sink.byte(0x8b); // LONG4
      this.sink.u32(bytes.length);
    }
    this.sink.bytes(bytes);
  }

  private saveString(value: string): void {
    const index = this.strings.get(value);
    if (index !== undefined) {
      this.get(index);
      return;
    }
    this.sink.byte(0x58); // BINUNICODE
    this.sink.utf8WithLength(value);
    this.strings.set(value, this.putNext());
  }

  private saveBytes(value: Uint8Array): void {
    // protocol 2 has no bytes opcode; CPython writes _codecs.encode(latin-1 text, 'latin1')
    if (value.length === 0) {
      this.saveGlobal(new PyGlobal('__builtin__', 'bytes'));
      this.sink.byte(0x29); // EMPTY_TUPLE
    } else {
      this.saveGlobal(new PyGlobal('_codecs', 'encode'));
      this.sink.byte(0x58);
      this.sink.utf8WithLength(Buffer.from(value).toString('latin1'));
      this.saveString('latin1');
      this.sink.byte(0x86); // TUPLE2
    }
    this.sink.byte(0x52); // REDUCE
    this.put(value);
  }

  private saveGlobal(global: PyGlobal): void {
    const index = this.globals.get(global.qualifiedName);
    if (index !== undefined) {
      this.get(index);
      return;
    }
    if (/[\n]/.test(global.module + global.name)) this.fail('global names may not contain newlines');
    this.sink.byte(0x63); // GLOBAL
    this.sink.text(`${global.module}\n${global.name}\n`);
    this.globals.set(global.qualifiedName, this.putNext());
  }

  private saveTuple(value: PyTuple, depth: number): void {
    this.inProgress.add(value);
    if (value.length === 0) {
      this.sink.byte(0x29); // EMPTY_TUPLE
    } else if (value.length <= 3) {
      value.forEach((item, i) => this.withPath(`[${i}]`, () => this.save(item, depth + 1)));
      this.sink.byte(0x84 + value.length); // TUPLE1, TUPLE2, TUPLE3
    } else {
      this.sink.byte(0x28); // MARK
      value.forEach((item, i) => this.withPath(`[${i}]`, () => this.save(item, depth + 1)));
      this.sink.byte(0x74); // TUPLE
    }
    this.inProgress.delete(value);
    this.put(value);
  }

  private saveItems(items: readonly unknown[], depth: number): void {
    for (let start = 0; start < items.length; start += BATCH) {
      const end = Math.min(items.length, start + BATCH);
      if (end - start > 1) this.sink.byte(0x28); // MARK
      for (let i = start; i < end; i++) {
        this.withPath(`[${i}]`, () => this.save(items[i], depth + 1));
      }
      this.sink.byte(end - start > 1 ? 0x65 : 0x61); // APPENDS or APPEND
    }
  }

  private saveEntries(
    entries: IterableIterator<[unknown, unknown]>,
    count: number,
    depth: number,
  ): void {
    let left = count;
    while (left > 0) {
      const batch = Math.min(left, BATCH);
      if (batch > 1) this.sink.byte(0x28); // MARK
      for (let i = 0; i < batch; i++) {
        const [key, item] = entries.next().value as [unknown, unknown];
        const segment = `[${typeof key === 'string' ? JSON.stringify(key) : String(key)}]`;
        this.withPath(segment, () => {
          const hashable = key === null || key instanceof PyTuple || typeof key !== 'object';
          if (key === undefined || !hashable) {
            this.fail('dict keys must be None, booleans, numbers, strings or tuples');
          }
          this.save(key, depth + 1);
          this.save(item, depth + 1);
        });
      }
      this.sink.byte(batch > 1 ? 0x75 : 0x73); // SETITEMS or SETITEM
      left -= batch;
    }
  }

  private get(index: number): void {
    if (index < 0x100) {
      this.sink.byte(0x68); // BINGET
      this.sink.byte(index);
    } else {
      this.sink.byte(0x6a); // LONG_BINGET
      this.sink.u32(index);
    }
  }

  private putNext(): number {
    const index = this.memo.size + this.strings.size + this.globals.size;
    if (index < 0x100) {
      this.sink.byte(0x71); // BINPUT
      this.sink.byte(index);
    } else {
      this.sink.byte(0x72); // LONG_BINPUT
      this.sink.u32(index);
    }
    return index;
  }

  private put(object: unknown): void {
    this.memo.set(object, this.putNext());
  }
}
