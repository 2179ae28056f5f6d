// Python values that have no exact JavaScript counterpart, as the pickle reader returns them
// and the pickle writer accepts them.
//
// Mapping used throughout this folder:
//   None -> null, bool -> boolean, str -> string, float -> number,
//   int -> number when it is a safe integer, bigint otherwise,
//   bytes / bytearray -> Uint8Array, list -> Array, tuple -> PyTuple,
//   dict -> Map (insertion order kept, keys of any type: 0 and '0' stay distinct),
//   collections.OrderedDict -> OrderedDict (a Map), set / frozenset -> Set,
//   argparse.Namespace -> PyObject, a bare allow-listed class or function -> PyGlobal.

/** A Python tuple. It is an Array, so indexing and iteration work as usual. */
export class PyTuple<T = unknown> extends Array<T> {
  // map, filter and slice of a tuple give plain arrays (lists), not tuples
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
}

/** Makes a tuple from the given items (`tuple([1, 2])` is `(1, 2)` in Python). */
export function tuple<T>(items: Iterable<T> | ArrayLike<T>): PyTuple<T> {
  return PyTuple.from(items) as PyTuple<T>;
}

/**
 * A `collections.OrderedDict`. PyTorch state dicts are ordered dicts that also carry a
 * `_metadata` attribute (module versions), which is kept in `attributes`.
 */
export class OrderedDict<K = unknown, V = unknown> extends Map<K, V> {
  /** Instance attributes restored from the pickle (`BUILD`), e.g. `_metadata`. */
  attributes: Map<string, unknown> | undefined = undefined;
}

/** A plain Python object of an allow-listed class (today only `argparse.Namespace`). */
export class PyObject {
  constructor(
    readonly module: string,
    readonly name: string,
    /** The instance's attributes (`vars(obj)`). */
    readonly state: Map<string, unknown> = new Map(),
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A reference to a Python class or function, written as the pickle `GLOBAL` opcode. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * Forces a number to be written as a Python float. Plain JavaScript numbers that are integers
 * are written as Python ints (`1.0` would come back to Python as `1`); wrap them when the
 * float type matters.
 */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A numpy dtype (only reached when a pickle holds a bare dtype, e.g. a numpy scalar's). */
export class NumpyDType {
  /** Byte order: '<' little, '>' big, '|' not applicable, '=' native. */
  byteOrder = '=';

  constructor(
    /** The type code without byte order, e.g. 'f8', 'i4', 'b1'. */
    readonly code: string,
  ) {}
}

/** A Python int as a number when it is a safe integer, else as a bigint. */
export function normalizeInt(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

/** A short description of a value for error messages. */
export function describePyValue(value: unknown): string {
  if (value === null) return 'None';
  if (value instanceof PyGlobal) return `'${value.qualifiedName}'`;
  if (value instanceof PyTuple) return `a tuple of ${value.length}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Map) return 'a dict';
  if (value instanceof Set) return 'a set';
  if (value instanceof Uint8Array) return `bytes of length ${value.length}`;
  if (value instanceof PyObject) return `a ${value.qualifiedName}`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'object') {
    const kind = (value as { kind?: unknown }).kind;
    return typeof kind === 'string' ? `a ${kind}` : 'an object';
  }
  return `${typeof value} ${String(value)}`;
}
