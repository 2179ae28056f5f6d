// Element types: names as PyTorch spells them, codes as c10::ScalarType numbers them.
export type DType = 'uint8' | 'int8' | 'int16' | 'int32' | 'int64' | 'float16' | 'float32' |
  'float64' | 'bool' | 'bfloat16';

const codes: Record<DType, number> = {
  uint8: 0, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, float32: 6, float64: 7,
  bool: 11, bfloat16: 15,
};

const names = new Map<number, DType>(Object.entries(codes).map(([k, v]) => [v, k as DType]));

export const dtypes = Object.keys(codes) as DType[];

export function dtypeCode(dtype: DType): number {
  const code = codes[dtype];
  if (code === undefined) {
    throw new Error(`dtype: expected one of ${dtypes.join(', ')}, got '${String(dtype)}'`);
  }
  return code;
}

export function dtypeName(code: number): DType {
  const name = names.get(code);
  if (name === undefined) throw new Error(`dtype: unsupported scalar type code ${code}`);
  return name;
}

export function isFloatingPoint(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16';
}

export function elementSize(dtype: DType): number {
  switch (dtype) {
    case 'uint8': case 'int8': case 'bool': return 1;
    case 'int16': case 'float16': case 'bfloat16': return 2;
    case 'int32': case 'float32': return 4;
    default: return 8;
  }
}

export type TypedArray = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array |
  Uint8Array | BigInt64Array | Uint16Array;

/** The typed array that holds a dtype's values as JS reads them back. */
export function typedArrayFor(dtype: DType, buffer: ArrayBuffer): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer);
    case 'float64': return new Float64Array(buffer);
    case 'int32': return new Int32Array(buffer);
    case 'int16': return new Int16Array(buffer);
    case 'int8': return new Int8Array(buffer);
    case 'uint8': case 'bool': return new Uint8Array(buffer);
    case 'int64': return new BigInt64Array(buffer);
    case 'float16': case 'bfloat16': return new Uint16Array(buffer);
  }
}

/** The dtype a typed array stands for when a tensor is made from it. */
export function dtypeOfTypedArray(data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  if (data instanceof BigInt64Array) return 'int64';
  throw new Error(`tensor: unsupported typed array ${data.constructor.name}`);
}
