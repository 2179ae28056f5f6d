// What a checkpoint holds, for people (`groco inspect`) and scripts (`--json`), and the key
// handling that state dicts saved from data-parallel wrappers need.

import { DTYPE_ITEM_SIZE, isTensorRecord, numelOf } from './tensor_record.js';
import type { DType, StorageRecord, TensorRecord } from './tensor_record.js';
import { NumpyDType, OrderedDict, PyFloat, PyGlobal, PyObject, PyTuple } from './values.js';

export interface TensorSummary {
  key: string;
  dtype: DType;
  shape: number[];
}

export interface StateDictSummary {
  /** Path of the dict in the checkpoint, e.g. 'encoder' or 'optimizer.state'. */
  path: string;
  /** The prefix every key shares up to a dot ('module.encoder.'), or ''. */
  keyPrefix: string;
  tensors: TensorSummary[];
  /** Elements over all tensors. */
  numel: number;
  /** Bytes of the storages the tensors use (shared storages counted once). */
  bytes: number;
}

export interface OptimizerSummary {
  path: string;
  /** Parameters that have per-parameter state (e.g. a momentum buffer). */
  parameters: number;
  /** Names of the per-parameter state entries, e.g. ['momentum_buffer']. */
  buffers: string[];
  bytes: number;
  /** The parameter groups' settings, with `params` replaced by its length. */
  paramGroups: Record<string, unknown>[];
}

export interface CheckpointSummary {
  epoch?: number;
  step?: number;
  /** Dicts whose values are all tensors: model state dicts and the like. */
  stateDicts: StateDictSummary[];
  /** Optimizer state dicts (`state` and `param_groups`). */
  optimizers: OptimizerSummary[];
  /** Every other entry at the top level, as JSON-friendly data (tensors summarised). */
  other: Record<string, unknown>;
  tensorCount: number;
  storageBytes: number;
}

/** The longest prefix ending in '.' that all keys share, or ''. */
export function commonKeyPrefix(keys: readonly string[]): string {
  if (keys.length === 0) return '';
  let prefix = keys[0].slice(0, keys[0].lastIndexOf('.') + 1);
  for (const key of keys) {
    while (prefix && !key.startsWith(prefix)) {
      prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('.') + 1);
    }
  }
  return prefix;
}

/**
 * A copy of a state dict with `prefix` removed from (or, with `add`, put before) every key that
 * lacks it; values are shared. Loading accepts `module.`-prefixed keys either way with this.
 */
export function renameStateDictKeys(
  stateDict: Map<unknown, unknown>,
  prefix: string,
  mode: 'strip' | 'add' = 'strip',
): OrderedDict<unknown, unknown> {
  const renamed = new OrderedDict<unknown, unknown>();
  for (const [key, value] of stateDict) {
    let name = key;
    if (typeof key === 'string') {
      if (mode === 'strip' && key.startsWith(prefix)) name = key.slice(prefix.length);
      if (mode === 'add' && !key.startsWith(prefix)) name = prefix + key;
    }
    if (renamed.has(name)) {
      throw new Error(`renameStateDictKeys: two keys become '${String(name)}'`);
    }
    renamed.set(name, value);
  }
  return renamed;
}

function isStateDict(value: unknown): value is Map<unknown, unknown> {
  if (!(value instanceof Map) || value.size === 0) return false;
  for (const [key, item] of value) {
    if (typeof key !== 'string' || !isTensorRecord(item)) return false;
  }
  return true;
}

function summarizeStateDict(path: string, dict: Map<unknown, unknown>): StateDictSummary {
  const tensors: TensorSummary[] = [];
  const storages = new Set<StorageRecord>();
  let numel = 0;
  for (const [key, value] of dict) {
    const tensor = value as TensorRecord;
    tensors.push({ key: key as string, dtype: tensor.dtype, shape: tensor.shape });
    storages.add(tensor.storage);
    numel += numelOf(tensor.shape);
  }
  let bytes = 0;
  for (const storage of storages) bytes += storage.data.byteLength;
  return { path, keyPrefix: commonKeyPrefix(tensors.map((t) => t.key)), tensors, numel, bytes };
}

function isOptimizerState(value: unknown): value is Map<unknown, unknown> {
  return (
    value instanceof Map && value.get('state') instanceof Map && Array.isArray(value.get('param_groups'))
  );
}

function summarizeOptimizer(
  path: string,
  optimizer: Map<unknown, unknown>,
  storages: Set<StorageRecord>,
): OptimizerSummary {
  const state = optimizer.get('state') as Map<unknown, unknown>;
  const buffers = new Set<string>();
  const own = new Set<StorageRecord>();
  for (const entry of state.values()) {
    if (!(entry instanceof Map)) continue;
    for (const [name, item] of entry) {
      buffers.add(String(name));
      if (isTensorRecord(item)) own.add(item.storage);
    }
  }
  let bytes = 0;
  for (const storage of own) {
    bytes += storage.data.byteLength;
    storages.add(storage);
  }
  const paramGroups = (optimizer.get('param_groups') as unknown[]).map((group) => {
    const settings = toJsonData(group) as Record<string, unknown>;
    if (Array.isArray(settings.params)) settings.params = settings.params.length;
    return settings;
  });
  return { path, parameters: state.size, buffers: [...buffers], bytes, paramGroups };
}

/**
 * Plain JSON data for any value read from a checkpoint: dicts become objects (keys as strings),
 * tuples and sets arrays, big ints and non-finite floats strings, tensors `{tensor: dtype, shape}`.
 */
export function toJsonData(value: unknown, depth = 0): unknown {
  if (depth > 1000) throw new Error('toJsonData: nested deeper than 1000 levels');
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof PyFloat) return toJsonData(value.value);
  if (isTensorRecord(value)) return { tensor: value.dtype, shape: value.shape };
  if (value instanceof Uint8Array) return { bytes: value.byteLength };
  if (Array.isArray(value) || value instanceof Set) {
    return [...value].map((item) => toJsonData(item, depth + 1));
  }
  if (value instanceof Map || value instanceof PyObject) {
    const entries = value instanceof PyObject ? value.state : value;
    const out: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      const name = key instanceof PyTuple ? JSON.stringify(toJsonData(key)) : String(key);
      out[name] = toJsonData(item, depth + 1);
    }
    return out;
  }
  if (value instanceof PyGlobal) return { global: value.qualifiedName };
  if (value instanceof NumpyDType) return { numpyDType: value.code };
  if (typeof value === 'object' && (value as { kind?: unknown }).kind === 'storage') {
    const storage = value as StorageRecord;
    return { storage: storage.dtype, numel: storage.data.byteLength / DTYPE_ITEM_SIZE[storage.dtype] };
  }
  return String(value);
}

/** Summarises a checkpoint: its state dicts (found at any depth), epoch, step and the rest. */
export function summarizeCheckpoint(checkpoint: unknown): CheckpointSummary {
  const stateDicts: StateDictSummary[] = [];
  const optimizers: OptimizerSummary[] = [];
  const other: Record<string, unknown> = {};
  const storages = new Set<StorageRecord>();
  let tensorCount = 0;

  // tensors anywhere count; dicts of tensors are listed as state dicts
  const visit = (value: unknown, path: string, depth: number): void => {
    if (depth > 1000) throw new Error('summarizeCheckpoint: nested deeper than 1000 levels');
    if (isTensorRecord(value)) {
      tensorCount++;
      storages.add(value.storage);
    } else if (isOptimizerState(value)) {
      const optimizer = summarizeOptimizer(path, value, storages);
      optimizers.push(optimizer);
      for (const entry of (value.get('state') as Map<unknown, unknown>).values()) {
        if (entry instanceof Map) tensorCount += [...entry.values()].filter(isTensorRecord).length;
      }
    } else if (isStateDict(value)) {
      stateDicts.push(summarizeStateDict(path, value));
      for (const tensor of value.values()) visit(tensor, path, depth + 1);
    } else if (value instanceof Map) {
      for (const [key, item] of value) {
        visit(item, path ? `${path}.${String(key)}` : String(key), depth + 1);
      }
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => visit(item, `${path}[${i}]`, depth + 1));
    }
  };
  visit(checkpoint, '', 0);

  const top = checkpoint instanceof Map ? checkpoint : new Map<unknown, unknown>();
  const epoch = top.get('epoch');
  const step = top.get('step');
  for (const [key, value] of top) {
    if (key === 'epoch' || key === 'step' || isStateDict(value) || isOptimizerState(value)) continue;
    other[String(key)] = toJsonData(value);
  }
  if (!(checkpoint instanceof Map)) other[''] = toJsonData(checkpoint);

  let storageBytes = 0;
  for (const storage of storages) storageBytes += storage.data.byteLength;
  return {
    ...(typeof epoch === 'number' ? { epoch } : {}),
    ...(typeof step === 'number' ? { step } : {}),
    stateDicts,
    optimizers,
    other,
    tensorCount,
    storageBytes,
  };
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** The summary as text for a person; `maxTensors` tensors are listed per state dict. */
export function formatCheckpointSummary(summary: CheckpointSummary, maxTensors = 20): string {
  const lines: string[] = [];
  if (summary.epoch !== undefined || summary.step !== undefined) {
    lines.push(`epoch ${summary.epoch ?? '-'}, step ${summary.step ?? '-'}`);
  }
  lines.push(`${summary.tensorCount} tensors in ${formatBytes(summary.storageBytes)} of storage`);

  for (const dict of summary.stateDicts) {
    const prefix = dict.keyPrefix ? `, keys prefixed '${dict.keyPrefix}'` : '';
    lines.push('');
    lines.push(
      `${dict.path || '(top level)'}: ${dict.tensors.length} tensors, ` +
        `${dict.numel.toLocaleString('en-US')} elements, ${formatBytes(dict.bytes)}${prefix}`,
    );
    const width = Math.max(...dict.tensors.slice(0, maxTensors).map((t) => t.key.length));
    for (const tensor of dict.tensors.slice(0, maxTensors)) {
      const shape = `[${tensor.shape.join(', ')}]`;
      lines.push(`  ${tensor.key.padEnd(width)}  ${tensor.dtype.padEnd(8)}  ${shape}`);
    }
    if (dict.tensors.length > maxTensors) lines.push(`  ... ${dict.tensors.length - maxTensors} more`);
  }

  for (const optimizer of summary.optimizers) {
    lines.push('');
    const buffers = optimizer.buffers.length > 0 ? ` (${optimizer.buffers.join(', ')})` : '';
    lines.push(
      `${optimizer.path || '(top level)'}: optimizer state for ${optimizer.parameters} ` +
        `parameters${buffers}, ${formatBytes(optimizer.bytes)}`,
    );
    optimizer.paramGroups.forEach((group, i) => {
      const settings = Object.entries(group).map(([k, v]) => `${k} ${JSON.stringify(v)}`);
      lines.push(`  group ${i}: ${settings.join(', ')}`);
    });
  }

  for (const [key, value] of Object.entries(summary.other)) {
    lines.push('');
    lines.push(`${key}: ${JSON.stringify(value, null, 2)}`);
  }
  return lines.join('\n');
}
