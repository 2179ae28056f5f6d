// The optimizer base: parameter groups, per-parameter state, and state dicts in PyTorch's layout
// ({state: {index: {...}}, param_groups: [{...hyper-parameters, params: [indices]}]}).
import { Tensor, keep } from '../tensor.js';

export type GroupOptions = { [option: string]: number | boolean | number[] };

export interface ParamGroup {
  params: Tensor[];
  options: GroupOptions;
}

export interface OptimizerStateDict {
  state: Map<number, Map<string, Tensor | number>>;
  param_groups: (GroupOptions & { params: number[] })[];
}

export type ParamsInput = Tensor[] | { params: Tensor[]; [option: string]: unknown }[];

export abstract class Optimizer {
  readonly paramGroups: ParamGroup[];
  readonly state = new Map<Tensor, Map<string, Tensor | number>>();

  constructor(params: ParamsInput, defaults: GroupOptions) {
    const groups = params.length > 0 && !(params[0] instanceof Tensor)
      ? (params as { params: Tensor[]; [option: string]: unknown }[])
      : [{ params: params as Tensor[] }];
    this.paramGroups = groups.map((g, i) => {
      const { params: list, ...rest } = g;
      if (!Array.isArray(list) || list.some((p) => !(p instanceof Tensor))) {
        throw new Error(`${this.constructor.name}: param group ${i}: 'params' must be an array of tensors`);
      }
      const options: GroupOptions = { ...defaults };
      for (const [key, value] of Object.entries(rest)) {
        if (!(key in defaults)) {
          throw new Error(`${this.constructor.name}: param group ${i}: unknown option '${key}'`);
        }
        options[key] = value as number | boolean;
      }
      return { params: list, options };
    });
    const seen = new Set<Tensor>();
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        if (seen.has(p)) throw new Error(`${this.constructor.name}: a parameter appears in two groups`);
        seen.add(p);
      }
    }
  }

  abstract step(): void;

  zeroGrad(): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        const g = p.grad;
        if (g !== null) {
          g.dispose();
          p.grad = null;
        }
      }
    }
  }

  get lr(): number {
    return this.paramGroups[0]!.options.lr as number;
  }

  setLr(lr: number): void {
    for (const group of this.paramGroups) group.options.lr = lr;
  }

  /** State as PyTorch's `optimizer.state_dict()`; tensors are the live state (not copies). */
  stateDict(): OptimizerStateDict {
    const index = new Map<Tensor, number>();
    let next = 0;
    const param_groups = this.paramGroups.map((g): GroupOptions & { params: number[] } => ({
      ...g.options,
      params: g.params.map((p) => {
        index.set(p, next);
        return next++;
      }),
    }));
    const state = new Map<number, Map<string, Tensor | number>>();
    for (const [p, s] of this.state) {
      const i = index.get(p);
      if (i !== undefined) state.set(i, s);
    }
    return { state, param_groups };
  }

  loadStateDict(dict: OptimizerStateDict, context = 'optimizer'): void {
    if (dict.param_groups.length !== this.paramGroups.length) {
      throw new Error(`${context}: the state has ${dict.param_groups.length} parameter groups, ` +
        `the optimizer ${this.paramGroups.length}`);
    }
    const byIndex = new Map<number, Tensor>();
    dict.param_groups.forEach((saved, gi) => {
      const group = this.paramGroups[gi]!;
      if (saved.params.length !== group.params.length) {
        throw new Error(`${context}: parameter group ${gi} has ${saved.params.length} parameters in ` +
          `the state and ${group.params.length} in the optimizer`);
      }
      saved.params.forEach((id, k) => byIndex.set(id, group.params[k]!));
    });
    dict.param_groups.forEach((saved, gi) => {
      const group = this.paramGroups[gi]!;
      for (const [key, value] of Object.entries(saved)) {
        if (key !== 'params' && (typeof value === 'number' || typeof value === 'boolean')) {
          group.options[key] = value;
        }
      }
    });
    for (const [id, entries] of dict.state) {
      const p = byIndex.get(Number(id));
      if (p === undefined) throw new Error(`${context}: state for unknown parameter index ${id}`);
      const own = new Map<string, Tensor | number>();
      for (const [key, value] of entries) {
        if (value instanceof Tensor) {
          const shapeOk = key === 'step' || value.shape.join() === p.shape.join();
          if (!shapeOk) {
            throw new Error(`${context}: state '${key}' of parameter ${id} has shape ` +
              `[${value.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`);
          }
          own.set(key, keep(value.to(key === 'step' ? value.dtype : p.dtype, { copy: true })));
        } else {
          own.set(key, value);
        }
      }
      const old = this.state.get(p);
      if (old) for (const v of old.values()) if (v instanceof Tensor) v.dispose();
      this.state.set(p, own);
    }
  }

  protected stateOf(p: Tensor): Map<string, Tensor | number> {
    let s = this.state.get(p);
    if (s === undefined) {
      s = new Map();
      this.state.set(p, s);
    }
    return s;
  }

  dispose(): void {
    for (const s of this.state.values()) {
      for (const v of s.values()) if (v instanceof Tensor) v.dispose();
    }
    this.state.clear();
  }
}
