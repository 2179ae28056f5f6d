// A safe unpickler for the data that torch.save writes (pickle protocols 0 to 5).
//
// Nothing from the file is ever executed or imported: a pickle `GLOBAL` is only accepted when
// its `module.name` is on an allow-list, and each allowed global is implemented as a pure
// function of the data (python_globals.ts, or the caller's, like torch_pickle.ts). Every size the
// file declares is checked against the bytes that remain, and the work and memory are bounded
// by `PickleLimits`.

import { Buffer } from 'node:buffer';

import { SerializationError } from './errors.js';
import {
  decodeLong,
  decodeRawUnicodeEscape,
  decodeStringLiteral,
  parseTextFloat,
} from './pickle_literals.js';
import { BUILTIN_GLOBALS, checkHashable } from './python_globals.js';
import { checkTree } from './tree_check.js';
import {
  describePyValue,
  normalizeInt,
  NumpyDType,
  OrderedDict,
  PyGlobal,
  PyObject,
  PyTuple,
} from './values.js';

/** Bounds on what one pickle may make the reader do. */
export interface PickleLimits {
  /** Deepest nesting of containers (lists, tuples, dicts, sets) in the result. */
  maxDepth: number;
  /** Values the pickle may create, and entries its memo may hold. */
  maxObjects: number;
  /** Values on the unpickling stack at one time. */
  maxStack: number;
  /** Bytes of one arbitrary-precision integer. */
  maxIntBytes: number;
  /** Values in the result counted as a tree (a shared part is counted at each use). */
  maxTreeNodes: number;
}

export const DEFAULT_PICKLE_LIMITS: Readonly<PickleLimits> = Object.freeze({
  maxDepth: 1000,
  maxObjects: 5_000_000,
  maxStack: 2_000_000,
  maxIntBytes: 4096,
  maxTreeNodes: 20_000_000,
});

/**
 * The implementation of one allow-listed global. Throw a plain Error with a short message when
 * the arguments are not what the function accepts; the reader adds the file and position.
 */
export interface PickleGlobal {
  /** `f(*args)`: the REDUCE, INST and OBJ opcodes. */
  call?(args: PyTuple): unknown;
  /** `cls.__new__(cls, *args)`: the NEWOBJ opcodes. */
  construct?(args: PyTuple): unknown;
}

export interface UnpickleOptions {
  /** Name used at the start of error messages, usually the file name. */
  source: string;
  /** Byte offset where the pickle starts (default 0). */
  start?: number;
  /** Extra allow-listed globals, keyed by `module.name`. */
  globals?: ReadonlyMap<string, PickleGlobal>;
  /** Resolves a persistent id (BINPERSID / PERSID); without it they are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Applies BUILD state to objects the built-in rules do not know; returns false to refuse. */
  build?: (target: unknown, state: unknown) => boolean;
  limits?: Partial<PickleLimits>;
}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past the STOP opcode: where a following pickle would start. */
  end: number;
}

/** Reads one pickle from `bytes` and returns its value and where it ended. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): UnpickleResult {
  const limits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
  const reader = new Unpickler(bytes, options, limits);
  let value: unknown;
  try {
    value = reader.run();
  } catch (error) {
    throw reader.wrapError(error);
  }
  try {
    checkTree(value, limits);
  } catch (error) {
    throw new SerializationError(options.source, (error as Error).message);
  }
  return { value, end: reader.position };
}

/** An allow-listed global as it sits on the stack: a PyGlobal that knows its implementation. */
class AllowedGlobal extends PyGlobal {
  constructor(
    module: string,
    name: string,
    readonly impl: PickleGlobal,
  ) {
    super(module, name);
  }
}

// Names that Python 3 rewrites when it reads protocol 0-2 pickles written by Python 2.
const MODULE_ALIASES: ReadonlyMap<string, string> = new Map([
  ['__builtin__', 'builtins'],
  ['copy_reg', 'copyreg'],
  ['torch.tensor', 'torch._tensor'],
]);

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT',
  0x49: 'INT', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE',
  0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE', 0x53: 'STRING', 0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND', 0x62: 'BUILD',
  0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT',
  0x71: 'BINPUT', 0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS', 0x47: 'BINFLOAT', 0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2',
  0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x88: 'NEWTRUE',
  0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE',
  0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

class Unpickler {
  position: number;
  private opcodePosition = -1;
  private readonly buf: Buffer;
  private readonly end: number;
  private readonly stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly resolved = new Map<string, AllowedGlobal>();
  private created = 0;

  constructor(
    bytes: Uint8Array,
    private readonly options: UnpickleOptions,
    private readonly limits: PickleLimits,
  ) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.byteLength;
    this.position = options.start ?? 0;
  }

  wrapError(error: unknown): SerializationError {
    if (error instanceof SerializationError) return error;
    const detail = error instanceof Error ? error.message : String(error);
    const at = this.opcodePosition;
    const op = at >= 0 && at < this.end ? this.buf[at] : undefined;
    const where =
      op === undefined
        ? `at byte ${at}`
        : `at byte ${at}, opcode ${OPCODE_NAMES[op] ?? '0x' + op.toString(16)}`;
    return new SerializationError(this.options.source, `pickle: ${detail} (${where})`, {
      cause: error,
    });
  }

  run(): unknown {
    for (;;) {
      this.opcodePosition = this.position;
      if (this.position >= this.end) {
        throw new Error('truncated pickle: the data ends before the STOP opcode');
      }
      const op = this.buf[this.position++];
      switch (op) {
        case 0x2e: // STOP
          return this.pop();
        case 0x80: { // PROTO
          const protocol = this.u8();
          if (protocol > 5) throw new Error(`unsupported pickle protocol ${protocol} (at most 5)`);
          break;
        }
        case 0x95: // FRAME: frames only group opcodes; the length is checked, then ignored
          this.checkAvailable(this.u64(), 'frame');
          break;

        // constants and numbers
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x4a: { // BININT
          this.need(4);
          this.push(this.buf.readInt32LE(this.position));
          this.position += 4;
          break;
        }
        case 0x8a: this.push(this.readLong(this.u8())); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.u32();
          if (n > this.limits.maxIntBytes) {
            throw new Error(`integer of ${n} bytes exceeds the limit of ${this.limits.maxIntBytes}`);
          }
          this.push(this.readLong(n));
          break;
        }
        case 0x47: { // BINFLOAT
          this.need(8);
          this.push(this.buf.readDoubleBE(this.position));
          this.position += 8;
          break;
        }
        case 0x49: this.push(this.parseTextInt(this.readLine(), true)); break; // INT
        case 0x4c: this.push(this.parseTextInt(this.readLine().replace(/L$/, ''), false)); break;
        case 0x46: this.push(parseTextFloat(this.readLine())); break; // FLOAT

        // strings and bytes
        case 0x58: this.pushString(this.u32()); break; // BINUNICODE
        case 0x8c: this.pushString(this.u8()); break; // SHORT_BINUNICODE
        case 0x8d: this.pushString(this.u64()); break; // BINUNICODE8
        case 0x55: this.pushString(this.u8()); break; // SHORT_BINSTRING (Python 2 str)
        case 0x54: this.pushString(this.i32Length()); break; // BINSTRING
        case 0x43: this.pushBytes(this.u8()); break; // SHORT_BINBYTES
        case 0x42: this.pushBytes(this.u32()); break; // BINBYTES
        case 0x8e: this.pushBytes(this.u64()); break; // BINBYTES8
        case 0x96: this.pushBytes(this.u64()); break; // BYTEARRAY8
        case 0x53: // STRING
          this.allocate();
          this.push(decodeStringLiteral(this.readLine('latin1')));
          break;
        case 0x56: // UNICODE
          this.allocate();
          this.push(decodeRawUnicodeEscape(this.readLine('latin1')));
          break;

        // containers
        case 0x29: this.allocate(); this.push(new PyTuple()); break; // EMPTY_TUPLE
        case 0x85: this.pushTuple(1); break; // TUPLE1
        case 0x86: this.pushTuple(2); break; // TUPLE2
        case 0x87: this.pushTuple(3); break; // TUPLE3
        case 0x74: this.allocate(); this.push(PyTuple.from(this.popMark())); break; // TUPLE
        case 0x5d: this.allocate(); this.push([]); break; // EMPTY_LIST
        case 0x6c: this.allocate(); this.push(this.popMark()); break; // LIST
        case 0x7d: this.allocate(); this.push(new Map()); break; // EMPTY_DICT
        case 0x64: { // DICT
          const items = this.popMark();
          this.allocate();
          const dict = new Map<unknown, unknown>();
          this.setItems(dict, items);
          this.push(dict);
          break;
        }
        case 0x8f: this.allocate(); this.push(new Set()); break; // EMPTY_SET
        case 0x91: this.allocate(); this.push(new Set(this.popMark())); break; // FROZENSET
        case 0x61: { // APPEND
          const value = this.pop();
          this.listOnTop().push(value);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          const list = this.listOnTop();
          for (const item of items) list.push(item);
          break;
        }
        case 0x73: { // SETITEM
          const value = this.pop();
          const key = this.pop();
          this.setItems(this.dictOnTop(), [key, value]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.dictOnTop(), items);
          break;
        }
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof Set)) {
            throw new Error(`ADDITEMS expects a set, got ${describePyValue(set)}`);
          }
          for (const item of items) set.add(checkHashable(item));
          break;
        }

        // stack and memo
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          if (this.marks.length > this.limits.maxDepth) {
            throw new Error(`nesting deeper than the limit of ${this.limits.maxDepth}`);
          }
          break;
        case 0x30: // POP
          if (this.stack.length > this.base()) this.stack.pop();
          else this.popMark();
          break;
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.push(this.top()); break; // DUP
        case 0x68: this.push(this.memoGet(this.u8())); break; // BINGET
        case 0x6a: this.push(this.memoGet(this.u32())); break; // LONG_BINGET
        case 0x67: this.push(this.memoGet(this.parseMemoIndex(this.readLine()))); break; // GET
        case 0x71: this.memoPut(this.u8()); break; // BINPUT
        case 0x72: this.memoPut(this.u32()); break; // LONG_BINPUT
        case 0x70: this.memoPut(this.parseMemoIndex(this.readLine())); break; // PUT
        case 0x94: this.memoPut(this.memo.size); break; // MEMOIZE

        // globals and object construction: only allow-listed globals get here
        case 0x63: { // GLOBAL
          const module = this.readLine();
          const name = this.readLine();
          this.push(this.findGlobal(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') {
            throw new Error('STACK_GLOBAL expects two strings (module and name)');
          }
          this.push(this.findGlobal(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const callable = this.pop();
          this.push(this.call(callable, args));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          this.push(this.construct(cls, args));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          if (!(kwargs instanceof Map) || kwargs.size > 0) {
            throw new Error('NEWOBJ_EX with keyword arguments is not supported');
          }
          this.push(this.construct(cls, args));
          break;
        }
        case 0x69: { // INST
          const module = this.readLine();
          const name = this.readLine();
          const args = PyTuple.from(this.popMark());
          this.push(this.call(this.findGlobal(module, name), args));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.popMark();
          if (items.length === 0) throw new Error('OBJ needs a class after the MARK');
          this.push(this.call(items[0], PyTuple.from(items.slice(1))));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          this.build(this.top(), state);
          break;
        }
        case 0x51: this.push(this.persistentLoad(this.pop())); break; // BINPERSID
        case 0x50: this.push(this.persistentLoad(this.readLine())); break; // PERSID

        case 0x82:
        case 0x83:
        case 0x84:
          throw new Error('pickle extension registry codes (EXT1/2/4) are not supported');
        case 0x97:
          throw new Error('out-of-band buffers (protocol 5 NEXT_BUFFER) are not supported');
        case 0x98: // READONLY_BUFFER: only marks a buffer read-only
          this.top();
          break;
        default:
          throw new Error(`invalid pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }

  // reading the input

  private need(n: number): void {
    if (n > this.end - this.position) {
      throw new Error(
        `truncated pickle: ${n} bytes needed at byte ${this.position}, ` +
          `but the data ends at byte ${this.end}`,
      );
    }
  }

  private checkAvailable(n: number, what: string): void {
    if (n > this.end - this.position) {
      throw new Error(
        `${what} declares ${n} bytes, but only ${this.end - this.position} remain`,
      );
    }
  }

  private u8(): number {
    this.need(1);
    return this.buf[this.position++];
  }

  private u16(): number {
    this.need(2);
    const value = this.buf.readUInt16LE(this.position);
    this.position += 2;
    return value;
  }

  private u32(): number {
    this.need(4);
    const value = this.buf.readUInt32LE(this.position);
    this.position += 4;
    return value;
  }

  private u64(): number {
    this.need(8);
    const low = this.buf.readUInt32LE(this.position);
    const high = this.buf.readUInt32LE(this.position + 4);
    this.position += 8;
    // anything above 2^53 is far more than any input can hold; report it as such
    return high >= 0x200000 ? Number.MAX_SAFE_INTEGER : high * 0x100000000 + low;
  }

  private i32Length(): number {
    this.need(4);
    const n = this.buf.readInt32LE(this.position);
    this.position += 4;
    if (n < 0) throw new Error(`negative length ${n}`);
    return n;
  }

  /** A text argument up to its newline; latin1 keeps raw bytes for the escape decoders. */
  private readLine(encoding: 'utf8' | 'latin1' = 'utf8'): string {
    const newline = this.buf.indexOf(0x0a, this.position);
    if (newline < 0 || newline >= this.end) {
      throw new Error('truncated pickle: a text argument has no terminating newline');
    }
    const line = this.buf.toString(encoding, this.position, newline);
    this.position = newline + 1;
    return line;
  }

  private readLong(n: number): number | bigint {
    this.checkAvailable(n, 'integer');
    this.allocate();
    const value = decodeLong(this.buf, this.position, n);
    this.position += n;
    return value;
  }

  private parseTextInt(line: string, boolCodes: boolean): number | bigint | boolean {
    if (boolCodes && line === '00') return false;
    if (boolCodes && line === '01') return true;
    if (!/^[+-]?\d+$/.test(line) || line.length > this.limits.maxIntBytes * 3) {
      throw new Error(`invalid integer literal ${JSON.stringify(line.slice(0, 40))}`);
    }
    this.allocate();
    return normalizeInt(BigInt(line));
  }

  private parseMemoIndex(line: string): number {
    if (!/^\d{1,15}$/.test(line)) {
      throw new Error(`invalid memo index ${JSON.stringify(line.slice(0, 40))}`);
    }
    return Number(line);
  }

  private pushString(n: number): void {
    this.checkAvailable(n, 'string');
    this.allocate();
    this.push(this.buf.toString('utf8', this.position, this.position + n));
    this.position += n;
  }

  private pushBytes(n: number): void {
    this.checkAvailable(n, 'bytes');
    this.allocate();
    this.push(new Uint8Array(this.buf.subarray(this.position, this.position + n)));
    this.position += n;
  }

  // the stack

  private allocate(): void {
    if (++this.created > this.limits.maxObjects) {
      throw new Error(`more than ${this.limits.maxObjects} values (limit maxObjects)`);
    }
  }

  private base(): number {
    return this.marks.length > 0 ? this.marks[this.marks.length - 1] : 0;
  }

  private push(value: unknown): void {
    if (this.stack.length >= this.limits.maxStack) {
      throw new Error(`more than ${this.limits.maxStack} values on the stack (limit maxStack)`);
    }
    this.stack.push(value);
  }

  private pop(): unknown {
    if (this.stack.length <= this.base()) throw new Error('stack underflow');
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length <= this.base()) throw new Error('stack underflow');
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) throw new Error('no MARK to pop to');
    return this.stack.splice(mark);
  }

  private pushTuple(n: number): void {
    if (this.stack.length - this.base() < n) throw new Error('stack underflow');
    this.allocate();
    this.push(PyTuple.from(this.stack.splice(this.stack.length - n, n)));
  }

  private listOnTop(): unknown[] {
    const list = this.top();
    if (!Array.isArray(list) || list instanceof PyTuple) {
      throw new Error(`cannot append to ${describePyValue(list)}`);
    }
    return list;
  }

  private dictOnTop(): Map<unknown, unknown> {
    const dict = this.top();
    if (!(dict instanceof Map)) throw new Error(`cannot set items on ${describePyValue(dict)}`);
    return dict;
  }

  private setItems(dict: Map<unknown, unknown>, items: unknown[]): void {
    if (items.length % 2 !== 0) throw new Error('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) dict.set(checkHashable(items[i]), items[i + 1]);
  }

  private memoGet(index: number): unknown {
    if (!this.memo.has(index)) throw new Error(`memo entry ${index} was never stored`);
    return this.memo.get(index);
  }

  private memoPut(index: number): void {
    this.memo.set(index, this.top());
    if (this.memo.size > this.limits.maxObjects) {
      throw new Error(`more than ${this.limits.maxObjects} memo entries (limit maxObjects)`);
    }
  }

  // globals

  private findGlobal(rawModule: string, name: string): AllowedGlobal {
    const module = MODULE_ALIASES.get(rawModule) ?? rawModule;
    const qualifiedName = `${module}.${name}`;
    const cached = this.resolved.get(qualifiedName);
    if (cached) return cached;

    const impl = this.options.globals?.get(qualifiedName) ?? BUILTIN_GLOBALS.get(qualifiedName);
    if (!impl) {
      throw new SerializationError(this.options.source, refusalMessage(module, name));
    }
    const allowed = new AllowedGlobal(module, name, impl);
    this.resolved.set(qualifiedName, allowed);
    return allowed;
  }

  private call(callable: unknown, args: unknown): unknown {
    if (!(callable instanceof AllowedGlobal) || !callable.impl.call) {
      throw new Error(`cannot call ${describePyValue(callable)}`);
    }
    if (!(args instanceof PyTuple)) {
      throw new Error(
        `arguments to ${callable.qualifiedName} must be a tuple, got ${describePyValue(args)}`,
      );
    }
    this.allocate();
    try {
      return callable.impl.call(args);
    } catch (error) {
      if (error instanceof SerializationError) throw error;
      throw new Error(`${callable.qualifiedName}: ${(error as Error).message}`, { cause: error });
    }
  }

  private construct(cls: unknown, args: unknown): unknown {
    if (!(cls instanceof AllowedGlobal) || !cls.impl.construct) {
      throw new Error(`cannot create an instance of ${describePyValue(cls)}`);
    }
    if (!(args instanceof PyTuple)) {
      throw new Error(
        `arguments to ${cls.qualifiedName} must be a tuple, got ${describePyValue(args)}`,
      );
    }
    this.allocate();
    try {
      return cls.impl.construct(args);
    } catch (error) {
      if (error instanceof SerializationError) throw error;
      throw new Error(`${cls.qualifiedName}: ${(error as Error).message}`, { cause: error });
    }
  }

  private build(target: unknown, state: unknown): void {
    if (target instanceof OrderedDict) {
      target.attributes = mergeAttributes(target.attributes ?? new Map(), state);
    } else if (target instanceof PyObject) {
      mergeAttributes(target.state, state);
    } else if (target instanceof NumpyDType) {
      // numpy's dtype state: (version, byte order, subarray, names, fields, ...)
      const order = state instanceof PyTuple ? state[1] : undefined;
      if (typeof order !== 'string' || !'<>|='.includes(order) || order.length !== 1) {
        throw new Error('numpy dtype state has no byte order');
      }
      target.byteOrder = order;
    } else if (!this.options.build?.(target, state)) {
      throw new Error(`cannot restore state (BUILD) of ${describePyValue(target)}`);
    }
  }

  private persistentLoad(pid: unknown): unknown {
    if (!this.options.persistentLoad) {
      throw new Error('persistent id found, but this pickle may not reference external data');
    }
    return this.options.persistentLoad(pid);
  }
}

function refusalMessage(module: string, name: string): string {
  const qualifiedName = `${module}.${name}`;
  let hint =
    'only plain data (numbers, strings, lists, tuples, dicts), tensors and storages can be ' +
    'read, and reading never runs code from the file';
  if (module.startsWith('__torch__')) {
    hint = 'this looks like a TorchScript archive (torch.jit.save), which is not a checkpoint';
  } else if (qualifiedName === 'torch.storage._load_from_bytes') {
    hint =
      'it would run torch.load on bytes embedded in the file (tensors pickled with plain ' +
      'pickle instead of torch.save)';
  } else if (/^torch\.nn\.modules\.|^torch\.nn\.parallel\./.test(module)) {
    hint = 'the file holds a whole pickled model; save its state_dict() instead';
  }
  return `refusing to load pickle global '${qualifiedName}': ${hint}`;
}

function mergeAttributes(into: Map<string, unknown>, state: unknown): Map<string, unknown> {
  // state is either a dict, or a (dict, slots dict) pair; either part may be None
  const parts = state instanceof PyTuple && state.length === 2 ? [...state] : [state];
  for (const part of parts) {
    if (part === null) continue;
    if (!(part instanceof Map)) {
      throw new Error(`object state must be a dict, got ${describePyValue(part)}`);
    }
    for (const [key, value] of part) {
      if (typeof key !== 'string') throw new Error('attribute names must be strings');
      into.set(key, value);
    }
  }
  return into;
}
