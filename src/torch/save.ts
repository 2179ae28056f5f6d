// torch.save / torch.load for groco tensors: converts between Tensors and the checkpoint
// reader's plain records, recursively through maps, arrays and plain objects.
import { callOp, native } from './native.js';
import { dtypeCode } from './dtype.js';
import { Tensor } from './tensor.js';
import {
  checkTensorView, readCheckpointFile, writeCheckpointFile, isTensorRecord, DTYPE_ITEM_SIZE,
  type ContiguousTensorRecord,
  type StorageRecord, type TensorRecord,
} from './serialization/index.js';

const MAX_DEPTH = 256;

function storageNumel(storage: StorageRecord): number {
  return Math.floor(storage.data.byteLength / DTYPE_ITEM_SIZE[storage.dtype]);
}

function storageTensor(storage: StorageRecord, cache: Map<StorageRecord, Tensor>): Tensor {
  let base = cache.get(storage);
  if (base === undefined) {
    base = new Tensor(native.fromBuffer(storage.data, dtypeCode(storage.dtype), [storageNumel(storage)]));
    cache.set(storage, base);
  }
  return base;
}

function recordToTensor(record: TensorRecord, cache: Map<StorageRecord, Tensor>, where: string): Tensor {
  try {
    checkTensorView(record.shape, record.stride, record.storageOffset, storageNumel(record.storage));
  } catch (error) {
    throw new Error(`${where}: ${(error as Error).message}`);
  }
  const base = storageTensor(record.storage, cache);
  const view = new Tensor(callOp('aten::as_strided', [base.handle, record.shape, record.stride,
    record.storageOffset]) as never);
  if (record.requiresGrad) view.requiresGrad_(true);
  return view;
}

function toTensors(value: unknown, cache: Map<StorageRecord, Tensor>, where: string, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new Error(`${where}: nesting deeper than ${MAX_DEPTH}`);
  if (isTensorRecord(value)) return recordToTensor(value, cache, where);
  if (value instanceof Map) {
    const out = new (value.constructor as MapConstructor)();
    for (const [k, v] of value) out.set(k, toTensors(v, cache, `${where}[${String(k)}]`, depth + 1));
    if ('attributes' in value) (out as unknown as { attributes: unknown }).attributes = value.attributes;
    return out;
  }
  if (Array.isArray(value)) {
    const out = value.map((v, i) => toTensors(v, cache, `${where}[${i}]`, depth + 1));
    return Object.setPrototypeOf(out, Object.getPrototypeOf(value)) as unknown[];
  }
  return value;
}

/**
 * Reads a `.pth` file written by torch.save (zip or legacy format) or by `save`. Tensors come
 * back as Tensors (views that share storages where the file shared them); dicts as Maps.
 * Errors start with the path.
 */
export async function load(path: string): Promise<unknown> {
  const raw = await readCheckpointFile(path);
  const cache = new Map<StorageRecord, Tensor>();
  try {
    return toTensors(raw, cache, path, 0);
  } finally {
    for (const base of cache.values()) base.dispose();
  }
}

function toRecords(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new Error(`save: nesting deeper than ${MAX_DEPTH}`);
  if (value instanceof Tensor) {
    const contiguous = value.detach().contiguous().to('cpu');
    const bytes = new Uint8Array(native.toBuffer(contiguous.handle));
    const record: ContiguousTensorRecord = {
      kind: 'tensor', dtype: value.dtype, shape: value.shape, data: bytes,
      requiresGrad: false,
    };
    contiguous.dispose();
    return record;
  }
  if (value instanceof Map) {
    const out = new (value.constructor as MapConstructor)();
    for (const [k, v] of value) out.set(k, toRecords(v, depth + 1));
    return out;
  }
  if (Array.isArray(value)) {
    const out = value.map((v) => toRecords(v, depth + 1));
    return Object.setPrototypeOf(out, Object.getPrototypeOf(value)) as unknown[];
  }
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out = new Map<string, unknown>();
    for (const [k, v] of Object.entries(value)) out.set(k, toRecords(v, depth + 1));
    return out;
  }
  return value;
}

/**
 * Writes `value` as a PyTorch zip checkpoint that torch.load reads: Tensors, Maps and plain
 * objects (as dicts), arrays (lists), numbers, strings, booleans, null. Atomic: a temporary file
 * renamed into place.
 */
export async function save(path: string, value: unknown): Promise<void> {
  await writeCheckpointFile(path, toRecords(value, 0));
}
