// Tensors and storages as plain data: what a checkpoint holds, without any tensor library.

/** The tensor element types a checkpoint may hold. */
export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** Bytes per element of each dtype. */
export const DTYPE_ITEM_SIZE: Readonly<Record<DType, number>> = Object.freeze({
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
});

export const DTYPES: readonly DType[] = Object.freeze(Object.keys(DTYPE_ITEM_SIZE) as DType[]);

/** The PyTorch storage class (`torch.<name>`) that stands for each dtype in a pickle. */
export const STORAGE_CLASS_NAME: Readonly<Record<DType, string>> = Object.freeze({
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  int16: 'ShortStorage',
  int8: 'CharStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
});

/** A storage: one flat buffer of elements that tensors view. */
export interface StorageRecord {
  kind: 'storage';
  /** The key it had in the file (rewritten when a checkpoint is written). */
  key: string;
  dtype: DType;
  /**
   * All of the storage's bytes, little-endian. On reading, `data.byteOffset` is a multiple of
   * the item size, so typed-array views over it are always possible.
   */
  data: Uint8Array;
  /** Where it lived when saved ('cpu', 'cuda:0'); written back as 'cpu'. */
  location: string;
}

/**
 * A tensor: a view (shape, strides in elements, offset in elements) of a storage. Tensors that
 * shared a storage in the file share the same StorageRecord object.
 */
export interface TensorRecord {
  kind: 'tensor';
  dtype: DType;
  shape: number[];
  stride: number[];
  storageOffset: number;
  storage: StorageRecord;
  requiresGrad: boolean;
  /** True when it was saved as a torch.nn.Parameter. */
  parameter?: boolean;
}

/** A tensor given for writing as contiguous row-major bytes. */
export interface ContiguousTensorRecord {
  kind: 'tensor';
  dtype: DType;
  shape: number[];
  /** numel * item size bytes, little-endian, row-major. */
  data: Uint8Array;
  requiresGrad?: boolean;
  parameter?: boolean;
}

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(DTYPE_ITEM_SIZE, value);
}

export function isStorageRecord(value: unknown): value is StorageRecord {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as StorageRecord).kind === 'storage' &&
    (value as StorageRecord).data instanceof Uint8Array
  );
}

export function isTensorRecord(value: unknown): value is TensorRecord {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as TensorRecord).kind === 'tensor' &&
    isStorageRecord((value as TensorRecord).storage)
  );
}

export function isContiguousTensorRecord(value: unknown): value is ContiguousTensorRecord {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as ContiguousTensorRecord).kind === 'tensor' &&
    (value as ContiguousTensorRecord).data instanceof Uint8Array
  );
}

/** Number of elements of a shape (1 for a scalar, shape []). */
export function numelOf(shape: readonly number[]): number {
  let numel = 1;
  for (const size of shape) numel *= size;
  return numel;
}

/** Row-major strides, as PyTorch gives a contiguous tensor. */
export function contiguousStride(shape: readonly number[]): number[] {
  const stride = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    stride[i] = step;
    step *= Math.max(shape[i], 1);
  }
  return stride;
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks that a view lies inside a storage of `storageNumel` elements. Throws an Error saying
 * what is wrong; returns the number of elements of the view.
 */
export function checkTensorView(
  shape: readonly unknown[],
  stride: readonly unknown[],
  storageOffset: unknown,
  storageNumel: number,
): number {
  if (shape.length !== stride.length) {
    throw new Error(`shape has ${shape.length} dims but stride has ${stride.length}`);
  }
  if (!shape.every(isIndex) || !stride.every(isIndex) || !isIndex(storageOffset)) {
    throw new Error(
      `shape, stride and offset must be non-negative integers, got shape ` +
        `[${shape.join(', ')}], stride [${stride.join(', ')}], offset ${String(storageOffset)}`,
    );
  }
  let numel = 1;
  let last = storageOffset;
  for (let i = 0; i < shape.length; i++) {
    numel *= shape[i];
    if (shape[i] > 0) last += (shape[i] - 1) * stride[i];
  }
  if (numel === 0) return 0;
  if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(last) || last >= storageNumel) {
    throw new Error(
      `view (shape [${shape.join(', ')}], stride [${stride.join(', ')}], offset ` +
        `${storageOffset}) reaches past the end of its storage of ${storageNumel} elements`,
    );
  }
  return numel;
}

/** Whether the tensor's elements are one row-major run in its storage. */
export function isContiguous(tensor: TensorRecord): boolean {
  let expected = 1;
  for (let i = tensor.shape.length - 1; i >= 0; i--) {
    const size = tensor.shape[i];
    if (size === 0) return true;
    if (size !== 1 && tensor.stride[i] !== expected) return false;
    expected *= size;
  }
  return true;
}

/**
 * The tensor's elements as contiguous row-major bytes: a view of the storage when the tensor is
 * contiguous, otherwise a copy gathered element by element.
 */
export function tensorBytes(tensor: TensorRecord): Uint8Array {
  const itemSize = DTYPE_ITEM_SIZE[tensor.dtype];
  const storageNumel = Math.floor(tensor.storage.data.byteLength / itemSize);
  const numel = checkTensorView(tensor.shape, tensor.stride, tensor.storageOffset, storageNumel);
  const src = tensor.storage.data;
  if (isContiguous(tensor)) {
    const start = tensor.storageOffset * itemSize;
    return src.subarray(start, start + numel * itemSize);
  }

  const out = new Uint8Array(numel * itemSize);
  const rank = tensor.shape.length;
  const innerSize = tensor.shape[rank - 1];
  const innerStride = tensor.stride[rank - 1];
  const index = new Array<number>(rank - 1).fill(0);
  let written = 0;
  while (written < out.length) {
    let offset = tensor.storageOffset;
    for (let d = 0; d < rank - 1; d++) offset += index[d] * tensor.stride[d];

    if (innerStride === 1) {
      out.set(src.subarray(offset * itemSize, (offset + innerSize) * itemSize), written);
      written += innerSize * itemSize;
    } else {
      for (let i = 0; i < innerSize; i++) {
        const from = (offset + i * innerStride) * itemSize;
        out.set(src.subarray(from, from + itemSize), written);
        written += itemSize;
      }
    }

    // next index of the outer dimensions, last one fastest
    for (let d = rank - 2; d >= 0; d--) {
      if (++index[d] < tensor.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

/** A tensor record over contiguous bytes, with a storage of its own. */
export function tensorFromBytes(
  dtype: DType,
  shape: readonly number[],
  data: Uint8Array,
  options: { requiresGrad?: boolean; parameter?: boolean } = {},
): TensorRecord {
  const expected = numelOf(shape) * DTYPE_ITEM_SIZE[dtype];
  if (data.byteLength !== expected) {
    throw new Error(
      `tensorFromBytes: a ${dtype} tensor of shape [${shape.join(', ')}] needs ${expected} ` +
        `bytes, got ${data.byteLength}`,
    );
  }
  const record: TensorRecord = {
    kind: 'tensor',
    dtype,
    shape: [...shape],
    stride: contiguousStride(shape),
    storageOffset: 0,
    storage: { kind: 'storage', key: '0', dtype, data, location: 'cpu' },
    requiresGrad: options.requiresGrad ?? false,
  };
  if (options.parameter) record.parameter = true;
  return record;
}
