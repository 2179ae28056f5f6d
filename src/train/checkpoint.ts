// Training checkpoints in the reference's layout ({epoch, step, encoder, projection, optimizer,
// config}) plus what exact resumption needs (scaler, random state, position inside the epoch).
import { load, save } from '../torch/save.js';
import { Generator, Tensor, type nn } from '../torch/index.js';
import type { OptimizerStateDict } from '../torch/optim/index.js';

export interface TrainingState {
  /** The last epoch that was completed, or the epoch in progress when `batchInEpoch` > 0. */
  epoch: number;
  /** Optimisation steps taken so far. */
  step: number;
  /** Batches of `epoch` already trained on; 0 when the epoch is complete. */
  batchInEpoch: number;
  encoder: nn.Module;
  projection: nn.Module | null;
  optimizer: { stateDict(): OptimizerStateDict };
  scaler: Record<string, number> | null;
  config: unknown;
}

function optimizerToPlain(state: OptimizerStateDict): Map<string, unknown> {
  const groups = state.param_groups.map((g) => new Map(Object.entries(g)));
  return new Map<string, unknown>([['state', state.state], ['param_groups', groups]]);
}

/** Writes a checkpoint atomically (temporary file renamed into place). */
export async function saveTrainingCheckpoint(path: string, s: TrainingState): Promise<void> {
  const rng = Generator.default().getState();
  try {
    await save(path, new Map<string, unknown>([
      ['epoch', s.epoch],
      ['step', s.step],
      ['encoder', s.encoder.stateDict()],
      ['projection', s.projection?.stateDict() ?? new Map()],
      ['optimizer', optimizerToPlain(s.optimizer.stateDict())],
      ['config', s.config],
      ['groco', new Map<string, unknown>([
        ['batch_in_epoch', s.batchInEpoch],
        ['scaler', s.scaler === null ? null : new Map(Object.entries(s.scaler))],
        ['torch_rng_state', rng],
      ])],
    ]));
  } finally {
    rng.dispose();
  }
}

export interface LoadedCheckpoint {
  path: string;
  epoch: number;
  step: number;
  batchInEpoch: number;
  encoder: Map<string, Tensor>;
  projection: Map<string, Tensor> | null;
  optimizer: OptimizerStateDict | null;
  scaler: Record<string, number> | null;
  rngState: Tensor | null;
  config: unknown;
  /** Every tensor of the file, for disposal. */
  tensors: Tensor[];
}

function asMap(value: unknown, path: string, key: string): Map<unknown, unknown> {
  if (!(value instanceof Map)) throw new Error(`${path}: key '${key}' is not a dict`);
  return value;
}

function stateDictOf(value: unknown, path: string, key: string): Map<string, Tensor> {
  const map = asMap(value, path, key);
  const out = new Map<string, Tensor>();
  for (const [k, v] of map) {
    if (typeof k !== 'string' || !(v instanceof Tensor)) {
      throw new Error(`${path}: '${key}' should map parameter names to tensors; entry ` +
        `'${String(k)}' holds ${v instanceof Tensor ? 'a tensor under a non-string key' : typeof v}`);
    }
    out.set(k, v);
  }
  return out;
}

function collect(value: unknown, into: Tensor[]): void {
  if (value instanceof Tensor) into.push(value);
  else if (value instanceof Map) for (const v of value.values()) collect(v, into);
  else if (Array.isArray(value)) for (const v of value) collect(v, into);
}

function optimizerFrom(value: unknown, path: string): OptimizerStateDict {
  const map = asMap(value, path, 'optimizer');
  const state = new Map<number, Map<string, Tensor | number>>();
  for (const [k, v] of asMap(map.get('state') ?? new Map(), path, 'optimizer.state')) {
    state.set(Number(k), asMap(v, path, `optimizer.state.${String(k)}`) as Map<string, Tensor | number>);
  }
  const groups = map.get('param_groups');
  if (!Array.isArray(groups)) throw new Error(`${path}: 'optimizer.param_groups' is not a list`);
  const param_groups = groups.map((g, i) => {
    const entries = Object.fromEntries(asMap(g, path, `optimizer.param_groups[${i}]`));
    return entries as OptimizerStateDict['param_groups'][number];
  });
  return { state, param_groups };
}

/**
 * Reads a checkpoint of ours or of the reference (or any dict with an `encoder` state dict).
 * A bare state dict (parameter name -> tensor) is taken as the encoder.
 */
export async function loadTrainingCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const value = await load(path);
  const tensors: Tensor[] = [];
  collect(value, tensors);
  try {
    const root = asMap(value, path, '(top level)');
    if (!root.has('encoder')) {
      const allTensors = [...root.values()].every((v) => v instanceof Tensor);
      if (allTensors && root.size > 0) {
        return {
          path, epoch: -1, step: 0, batchInEpoch: 0, encoder: stateDictOf(root, path, '(top level)'),
          projection: null, optimizer: null, scaler: null, rngState: null, config: null, tensors,
        };
      }
      throw new Error(`${path}: no 'encoder' key (keys: ${[...root.keys()].map(String).join(', ')})`);
    }
    const groco = root.get('groco') instanceof Map ? (root.get('groco') as Map<string, unknown>) : null;
    const scaler = groco?.get('scaler');
    const rng = groco?.get('torch_rng_state');
    return {
      path,
      epoch: typeof root.get('epoch') === 'number' ? (root.get('epoch') as number) : -1,
      step: typeof root.get('step') === 'number' ? (root.get('step') as number) : 0,
      batchInEpoch: typeof groco?.get('batch_in_epoch') === 'number' ? (groco.get('batch_in_epoch') as number) : 0,
      encoder: stateDictOf(root.get('encoder'), path, 'encoder'),
      projection: root.has('projection') ? stateDictOf(root.get('projection'), path, 'projection') : null,
      optimizer: root.has('optimizer') ? optimizerFrom(root.get('optimizer'), path) : null,
      scaler: scaler instanceof Map ? (Object.fromEntries(scaler) as Record<string, number>) : null,
      rngState: rng instanceof Tensor ? rng : null,
      config: root.get('config') ?? null,
      tensors,
    };
  } catch (error) {
    for (const t of tensors) t.dispose();
    throw error;
  }
}

export function disposeCheckpoint(c: LoadedCheckpoint): void {
  for (const t of c.tensors) t.dispose();
}
