// The PyTorch part of checkpoint pickles: the torch globals a state dict needs, how persistent
// ids name storages, and how tensors are written back so that torch.load rebuilds them.

import type { PickleGlobal } from './pickle_reader.js';
import type { PickleReduction } from './pickle_writer.js';
import {
  checkTensorView,
  contiguousStride,
  DTYPE_ITEM_SIZE,
  isContiguousTensorRecord,
  isDType,
  isStorageRecord,
  isTensorRecord,
  STORAGE_CLASS_NAME,
} from './tensor_record.js';
import type { DType, StorageRecord, TensorRecord } from './tensor_record.js';
import { describePyValue, OrderedDict, PyGlobal, PyTuple } from './values.js';

/** `torch.<Name>Storage` (and `torch.cuda.<Name>Storage` of older files) to dtype. */
const STORAGE_DTYPES = new Map<string, DType>();
for (const [dtype, name] of Object.entries(STORAGE_CLASS_NAME) as [DType, string][]) {
  STORAGE_DTYPES.set(`torch.${name}`, dtype);
  STORAGE_DTYPES.set(`torch.cuda.${name}`, dtype);
}
STORAGE_DTYPES.set('torch.UntypedStorage', 'uint8');

/** The dtype a storage class global stands for, e.g. torch.FloatStorage -> float32. */
export function storageDType(value: unknown): DType {
  const dtype = value instanceof PyGlobal ? STORAGE_DTYPES.get(value.qualifiedName) : undefined;
  if (!dtype) throw new Error(`expected a torch storage class, got ${describePyValue(value)}`);
  return dtype;
}

/** A string from a pid field, which Python 2 files hold as bytes. */
export function pidString(value: unknown, what: string): string {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('latin1');
  throw new Error(`the ${what} of a storage must be a string, got ${describePyValue(value)}`);
}

function intTuple(value: unknown, what: string): number[] {
  if (!Array.isArray(value)) throw new Error(`${what} must be a tuple, got ${describePyValue(value)}`);
  for (const item of value) {
    if (typeof item !== 'number' || !Number.isSafeInteger(item)) {
      throw new Error(`${what} must hold integers, got ${describePyValue(item)}`);
    }
  }
  return [...(value as number[])];
}

function checkNoHooks(hooks: unknown): void {
  if (hooks === null || hooks === undefined) return;
  if (!(hooks instanceof Map) || hooks.size > 0) {
    throw new Error('tensors with backward hooks cannot be loaded');
  }
}

function rebuildTensor(
  storageNumel: (storage: StorageRecord) => number,
  storage: unknown,
  storageOffset: unknown,
  size: unknown,
  stride: unknown,
  requiresGrad: unknown,
): TensorRecord {
  if (!isStorageRecord(storage)) throw new Error(`expected a storage, got ${describePyValue(storage)}`);
  const shape = intTuple(size, 'size');
  const strides = intTuple(stride, 'stride');
  checkTensorView(shape, strides, storageOffset, storageNumel(storage));
  if (typeof requiresGrad !== 'boolean') {
    throw new Error(`requires_grad must be a bool, got ${describePyValue(requiresGrad)}`);
  }
  return {
    kind: 'tensor',
    dtype: storage.dtype,
    shape,
    stride: strides,
    storageOffset: storageOffset as number,
    storage,
    requiresGrad,
  };
}

/** Elements of a storage whose bytes are known. */
export function storageNumelFromData(storage: StorageRecord): number {
  return Math.floor(storage.data.byteLength / DTYPE_ITEM_SIZE[storage.dtype]);
}

function asParameter(data: unknown, requiresGrad: unknown, hooks: unknown): TensorRecord {
  if (!isTensorRecord(data)) throw new Error(`expected a tensor, got ${describePyValue(data)}`);
  if (typeof requiresGrad !== 'boolean') {
    throw new Error(`requires_grad must be a bool, got ${describePyValue(requiresGrad)}`);
  }
  checkNoHooks(hooks);
  return { ...data, requiresGrad, parameter: true };
}

function checkEmptyState(state: unknown): void {
  if (state === null || (state instanceof Map && state.size === 0)) return;
  throw new Error('tensors with Python attributes cannot be loaded');
}

const TENSOR_CLASSES = new Set(['torch._tensor.Tensor', 'torch.Tensor', 'torch.nn.parameter.Parameter']);

/**
 * The torch globals that checkpoints of state dicts and optimizer states use. Tensor views are
 * checked against `storageNumel`: the legacy format knows a storage's size from its persistent
 * id before its bytes are read.
 */
export function torchGlobals(
  storageNumel: (storage: StorageRecord) => number = storageNumelFromData,
): Map<string, PickleGlobal> {
  const globals = new Map<string, PickleGlobal>();
  for (const name of STORAGE_DTYPES.keys()) globals.set(name, {}); // only referenced in pids
  for (const name of TENSOR_CLASSES) globals.set(name, {}); // only a type tag

  const rebuildV2: PickleGlobal = {
    call: (args) => {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (args.length < 6 || args.length > 7) throw new Error('expected 6 or 7 arguments');
      checkNoHooks(args[5]);
      return rebuildTensor(storageNumel, args[0], args[1], args[2], args[3], args[4]);
    },
  };
  globals.set('torch._utils._rebuild_tensor_v2', rebuildV2);
  globals.set('torch._utils._rebuild_tensor', {
    call: (args) => {
      if (args.length !== 4) throw new Error('expected 4 arguments');
      return rebuildTensor(storageNumel, args[0], args[1], args[2], args[3], false);
    },
  });
  globals.set('torch._utils._rebuild_parameter', {
    call: (args) => {
      if (args.length !== 3) throw new Error('expected 3 arguments');
      return asParameter(args[0], args[1], args[2]);
    },
  });
  globals.set('torch._utils._rebuild_parameter_with_state', {
    call: (args) => {
      if (args.length !== 4) throw new Error('expected 4 arguments');
      checkEmptyState(args[3]);
      return asParameter(args[0], args[1], args[2]);
    },
  });
  globals.set('torch._tensor._rebuild_from_type_v2', {
    call: (args) => {
      // (func, new_type, args, state): a tensor subclass; only Tensor and Parameter are known
      const [func, type, funcArgs, state] = args;
      if (args.length !== 4 || !(func instanceof PyGlobal) || !(type instanceof PyGlobal)) {
        throw new Error('expected (function, type, arguments, state)');
      }
      const impl = globals.get(func.qualifiedName);
      if (!impl?.call || !TENSOR_CLASSES.has(type.qualifiedName)) {
        throw new Error(`cannot rebuild a ${type.qualifiedName} with ${func.qualifiedName}`);
      }
      if (!(funcArgs instanceof PyTuple)) throw new Error('expected a tuple of arguments');
      checkEmptyState(state);
      const tensor = impl.call(funcArgs);
      if (type.qualifiedName === 'torch.nn.parameter.Parameter' && isTensorRecord(tensor)) {
        return { ...tensor, parameter: true };
      }
      return tensor;
    },
  });
  globals.set('torch.Size', {
    call: (args) => {
      if (args.length > 1) throw new Error('expected one sequence of sizes');
      return PyTuple.from(intTuple(args[0] ?? [], 'torch.Size'));
    },
  });
  globals.set('torch.device', {
    call: (args) => {
      // torch.device('cuda', 0), torch.device('cpu') or torch.device('cuda:0'): kept as a string
      const [type, index] = args;
      if (typeof type !== 'string' || args.length > 2) throw new Error('expected (type[, index])');
      if (index === undefined || index === null) return type;
      if (typeof index !== 'number' || !Number.isSafeInteger(index)) {
        throw new Error('a device index must be an integer');
      }
      return `${type}:${index}`;
    },
  });
  return globals;
}

// writing

const REBUILD_TENSOR = new PyGlobal('torch._utils', '_rebuild_tensor_v2');
const REBUILD_PARAMETER = new PyGlobal('torch._utils', '_rebuild_parameter');

/**
 * Gives storages their keys while a checkpoint is pickled, and turns tensor records into the
 * reductions torch.load expects. Storages are keyed '0', '1', ... in order of first use.
 */
export class StorageWriter {
  /** Storages to write, in key order. */
  readonly storages: StorageRecord[] = [];
  private readonly keys = new Map<StorageRecord, string>();
  private readonly contiguous = new Map<Uint8Array, StorageRecord>();

  readonly persistentId = (value: unknown): unknown => {
    if (!isStorageRecord(value)) return undefined;
    const dtype = value.dtype;
    if (!isDType(dtype)) throw new Error(`unknown storage dtype ${describePyValue(dtype)}`);
    const itemSize = DTYPE_ITEM_SIZE[dtype];
    if (value.data.byteLength % itemSize !== 0) {
      throw new Error(
        `a ${dtype} storage needs a multiple of ${itemSize} bytes, got ${value.data.byteLength}`,
      );
    }
    return PyTuple.of<unknown>(
      'storage',
      new PyGlobal('torch', STORAGE_CLASS_NAME[dtype]),
      this.keyOf(value),
      'cpu',
      value.data.byteLength / itemSize,
    );
  };

  readonly reduce = (value: unknown): PickleReduction | undefined => {
    if (typeof value !== 'object' || value === null || (value as TensorRecord).kind !== 'tensor') {
      return undefined;
    }
    const tensor = this.asTensorRecord(value);
    if (tensor.parameter) {
      const data: TensorRecord = { ...tensor, requiresGrad: false, parameter: false };
      return {
        callable: REBUILD_PARAMETER,
        args: PyTuple.of<unknown>(data, tensor.requiresGrad, new OrderedDict()),
      };
    }
    return this.tensorReduction(tensor);
  };

  private tensorReduction(tensor: TensorRecord): PickleReduction {
    return {
      callable: REBUILD_TENSOR,
      args: PyTuple.of<unknown>(
        tensor.storage,
        tensor.storageOffset,
        PyTuple.from(tensor.shape),
        PyTuple.from(tensor.stride),
        tensor.requiresGrad,
        new OrderedDict(),
      ),
    };
  }

  private keyOf(storage: StorageRecord): string {
    let key = this.keys.get(storage);
    if (key === undefined) {
      key = String(this.storages.length);
      this.keys.set(storage, key);
      this.storages.push(storage);
    }
    return key;
  }

  private asTensorRecord(value: object): TensorRecord {
    let tensor: TensorRecord;
    if (isTensorRecord(value)) {
      tensor = value;
      if (tensor.dtype !== tensor.storage.dtype) {
        throw new Error(
          `tensor dtype ${tensor.dtype} differs from its storage's ${tensor.storage.dtype}`,
        );
      }
    } else if (isContiguousTensorRecord(value)) {
      if (!isDType(value.dtype)) throw new Error(`unknown tensor dtype ${describePyValue(value.dtype)}`);
      const shape = intTuple(value.shape, 'shape');
      let storage = this.contiguous.get(value.data);
      if (!storage) {
        storage = { kind: 'storage', key: '', dtype: value.dtype, data: value.data, location: 'cpu' };
        this.contiguous.set(value.data, storage);
      } else if (storage.dtype !== value.dtype) {
        throw new Error('the same data is given as tensors of two dtypes');
      }
      tensor = {
        kind: 'tensor',
        dtype: value.dtype,
        shape,
        stride: contiguousStride(shape),
        storageOffset: 0,
        storage,
        requiresGrad: value.requiresGrad ?? false,
        parameter: value.parameter,
      };
      const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_ITEM_SIZE[value.dtype];
      if (value.data.byteLength !== expected) {
        throw new Error(
          `a ${value.dtype} tensor of shape [${shape.join(', ')}] needs ${expected} bytes, ` +
            `got ${value.data.byteLength}`,
        );
      }
    } else {
      throw new Error('a tensor record needs either a storage or data');
    }

    if (!isDType(tensor.dtype)) throw new Error(`unknown tensor dtype ${describePyValue(tensor.dtype)}`);
    const storageNumel = storageNumelFromData(tensor.storage);
    checkTensorView(tensor.shape, tensor.stride, tensor.storageOffset, storageNumel);
    if (typeof tensor.requiresGrad !== 'boolean') {
      throw new Error(`requiresGrad must be a boolean, got ${describePyValue(tensor.requiresGrad)}`);
    }
    return tensor;
  }
}
