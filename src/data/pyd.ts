// A small, safe reader and writer for the pickled metadata of webdataset samples (`.pyd`,
// e.g. `{'cls': 3, 'wnid': 'n01440764'}`), protocols 2 to 5. Only plain data is accepted:
// dict, list, tuple, str, bytes, int, float, bool, None. Any opcode that would import or
// call Python code (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ, EXT, PERSID)
// is refused. The checkpoint reader in src/torch/serialization/ is the full unpickler.

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | { [key: string]: PyValue };

export class UnpicklingError extends Error {
  constructor(message: string) {
    super(`unpickle: ${message}`);
    this.name = 'UnpicklingError';
  }
}

const REFUSED: Record<number, string> = {
  0x63: 'GLOBAL',
  0x93: 'STACK_GLOBAL',
  0x52: 'REDUCE',
  0x62: 'BUILD',
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
};

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/** Reads one pickled value of plain data. */
export function unpickle(bytes: Uint8Array): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;

  const need = (n: number): void => {
    if (pos + n > bytes.length) throw new UnpicklingError(`truncated data at byte ${pos}`);
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++]!;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnpicklingError('length too large');
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw new UnpicklingError('stack underflow');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw new UnpicklingError('stack underflow');
    return v;
  };
  const popMark = (): PyValue[] => {
    const items: PyValue[] = [];
    for (;;) {
      const v = stack.pop();
      if (v === undefined) throw new UnpicklingError('MARK not found');
      if (v === MARK) return items.reverse();
      items.push(v);
    }
  };
  const setItems = (dict: PyValue, items: PyValue[]): void => {
    if (!isDict(dict)) throw new UnpicklingError('SETITEM(S) on a non-dict');
    for (let i = 0; i + 1 < items.length; i += 2) dict[dictKey(items[i]!)] = items[i + 1]!;
  };
  const asList = (v: PyValue): PyValue[] => {
    if (!Array.isArray(v)) throw new UnpicklingError('APPEND(S) on a non-list');
    return v;
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw new UnpicklingError('unsupported protocol');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push({});
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const value = pop();
        asList(top()).push(value);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        asList(top()).push(...items);
        break;
      }
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(view.getUint16(pos, true));
        pos += 2;
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(take(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(decodeLong(take(u32())));
        break;
      case 0x47: // BINFLOAT
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(decoder.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(decoder.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(decoder.decode(take(u64())));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        stack.push(latin1(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(Uint8Array.from(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(Uint8Array.from(take(u32())));
        break;
      case 0x8e: // BINBYTES8
        stack.push(Uint8Array.from(take(u64())));
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const index = op === 0x68 ? u8() : u32();
        const value = memo.get(index);
        if (value === undefined) throw new UnpicklingError(`memo entry ${index} missing`);
        stack.push(value);
        break;
      }
      default: {
        const name = REFUSED[op];
        if (name !== undefined) {
          throw new UnpicklingError(`refusing opcode ${name}: only plain data (dict, list, ` +
            'tuple, str, int, float, bool, None) may be loaded');
        }
        throw new UnpicklingError(`unsupported opcode 0x${op.toString(16)} at byte ${pos - 1}`);
      }
    }
  }
}

/** Pickles plain data with protocol 4 (what Python 3.8+ writes by default). */
export function pickle(value: PyValue): Uint8Array {
  const parts: number[] = [];
  const bytes = (data: ArrayLike<number>): void => {
    for (let i = 0; i < data.length; i++) parts.push(data[i]!);
  };
  const uint = (v: number, width: number): void => {
    for (let i = 0; i < width; i++) parts.push(Math.floor(v / 256 ** i) % 256);
  };
  const encoder = new TextEncoder();

  const write = (v: PyValue): void => {
    if (v === null) parts.push(0x4e);
    else if (v === true) parts.push(0x88);
    else if (v === false) parts.push(0x89);
    else if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))) {
      const big = BigInt(v);
      if (big >= 0n && big < 256n) parts.push(0x4b, Number(big));
      else if (big >= 0n && big < 65536n) {
        parts.push(0x4d);
        uint(Number(big), 2);
      } else if (big >= -(2n ** 31n) && big < 2n ** 31n) {
        parts.push(0x4a);
        uint(Number(BigInt.asUintN(32, big)), 4);
      } else {
        const encoded = encodeLong(big);
        parts.push(0x8a, encoded.length);
        bytes(encoded);
      }
    } else if (typeof v === 'number') {
      const buf = new DataView(new ArrayBuffer(8));
      buf.setFloat64(0, v, false);
      parts.push(0x47);
      bytes(new Uint8Array(buf.buffer));
    } else if (typeof v === 'string') {
      const encoded = encoder.encode(v);
      if (encoded.length < 256) parts.push(0x8c, encoded.length);
      else {
        parts.push(0x58);
        uint(encoded.length, 4);
      }
      bytes(encoded);
    } else if (v instanceof Uint8Array) {
      if (v.length < 256) parts.push(0x43, v.length);
      else {
        parts.push(0x42);
        uint(v.length, 4);
      }
      bytes(v);
    } else if (Array.isArray(v)) {
      parts.push(0x5d);
      if (v.length > 0) {
        parts.push(0x28);
        for (const item of v) write(item);
        parts.push(0x65);
      }
    } else {
      parts.push(0x7d);
      const entries = Object.entries(v);
      if (entries.length > 0) {
        parts.push(0x28);
        for (const [key, item] of entries) {
          write(key);
          write(item);
        }
        parts.push(0x75);
      }
    }
  };

  write(value);
  parts.push(0x2e);
  const body = Uint8Array.from(parts);
  const out = new Uint8Array(2 + 9 + body.length);
  out.set([0x80, 4, 0x95]);
  new DataView(out.buffer).setBigUint64(3, BigInt(body.length), true);
  out.set(body, 11);
  return out;
}

function isDict(v: PyValue): v is { [key: string]: PyValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function dictKey(key: PyValue): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'number' || typeof key === 'bigint' || typeof key === 'boolean') {
    return String(key);
  }
  if (key === null) return 'None';
  throw new UnpicklingError('only str, int, bool and None dict keys are supported');
}

function latin1(data: Uint8Array): string {
  let out = '';
  for (let i = 0; i < data.length; i++) out += String.fromCharCode(data[i]!);
  return out;
}

function decodeLong(data: Uint8Array): number | bigint {
  if (data.length === 0) return 0;
  let value = 0n;
  for (let i = data.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(data[i]!);
  if (data[data.length - 1]! & 0x80) value -= 1n << BigInt(8 * data.length);
  const safe = value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER);
  return safe ? Number(value) : value;
}

function encodeLong(value: bigint): number[] {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = Number(BigInt.asUintN(8, v));
    out.push(byte);
    v >>= 8n;
    const signBit = (byte & 0x80) !== 0;
    if ((v === 0n && !signBit) || (v === -1n && signBit)) return out;
  }
}
