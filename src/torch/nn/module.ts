// Module: named parameters, buffers and submodules, train/eval, and state dicts with PyTorch's
// key names and order (own parameters, own buffers, then submodules).
import { noGrad } from '../autograd.js';
import { Tensor, describe, keep } from '../tensor.js';
import type { DType } from '../dtype.js';

export type StateDict = Map<string, Tensor>;

export interface LoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
}

export class StateDictError extends Error {
  constructor(readonly report: LoadReport, context: string) {
    const lines: string[] = [];
    if (report.missing.length) lines.push(`missing keys (${report.missing.length}): ${report.missing.join(', ')}`);
    if (report.unexpected.length) {
      lines.push(`unexpected keys (${report.unexpected.length}): ${report.unexpected.join(', ')}`);
    }
    for (const m of report.mismatched) {
      lines.push(`shape mismatch for ${m.key}: the model has [${m.expected.join(', ')}], ` +
        `the state dict [${m.got.join(', ')}]`);
    }
    super(`${context}: state dict does not match the model:\n  ${lines.join('\n  ')}`);
    this.name = 'StateDictError';
  }
}

export abstract class Module {
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #persistent = new Set<string>();
  readonly #children = new Map<string, Module>();

  abstract forward(...inputs: Tensor[]): Tensor;

  protected registerParameter(name: string, value: Tensor | null): Tensor | null {
    if (value !== null) {
      keep(value);
      if (!value.requiresGrad) value.requiresGrad_(true);
    }
    this.#parameters.set(name, value);
    return value;
  }

  protected registerBuffer(name: string, value: Tensor | null, persistent = true): Tensor | null {
    if (value !== null) keep(value);
    this.#buffers.set(name, value);
    if (persistent) this.#persistent.add(name);
    return value;
  }

  registerModule<M extends Module>(name: string, module: M): M {
    if (name.includes('.') || name === '') {
      throw new Error(`registerModule: invalid module name '${name}'`);
    }
    this.#children.set(name, module);
    return module;
  }

  /** The parameter `name` of this module itself (not of a child). */
  param(name: string): Tensor {
    const t = this.#parameters.get(name);
    if (t === undefined || t === null) throw new Error(`${this.constructor.name}: no parameter '${name}'`);
    return t;
  }

  optionalParam(name: string): Tensor | null {
    return this.#parameters.get(name) ?? null;
  }

  buffer(name: string): Tensor | null {
    return this.#buffers.get(name) ?? null;
  }

  setBuffer(name: string, value: Tensor): void {
    if (!this.#buffers.has(name)) throw new Error(`${this.constructor.name}: no buffer '${name}'`);
    const old = this.#buffers.get(name);
    this.#buffers.set(name, keep(value));
    if (old && old !== value) old.dispose();
  }

  child(name: string): Module {
    const m = this.#children.get(name);
    if (m === undefined) throw new Error(`${this.constructor.name}: no submodule '${name}'`);
    return m;
  }

  *namedChildren(): Generator<[string, Module]> {
    yield* this.#children.entries();
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.#children) {
      yield* child.namedModules(prefix === '' ? name : `${prefix}.${name}`);
    }
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [modulePrefix, module] of this.namedModules(prefix)) {
      for (const [name, t] of module.#parameters) {
        if (t === null || seen.has(t)) continue;
        seen.add(t);
        yield [modulePrefix === '' ? name : `${modulePrefix}.${name}`, t];
      }
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  *namedBuffers(prefix = ''): Generator<[string, Tensor]> {
    for (const [modulePrefix, module] of this.namedModules(prefix)) {
      for (const [name, t] of module.#buffers) {
        if (t === null) continue;
        yield [modulePrefix === '' ? name : `${modulePrefix}.${name}`, t];
      }
    }
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) {
      const g = p.grad;
      if (g !== null) {
        g.dispose();
        p.grad = null;
      }
    }
  }

  /** Parameters then persistent buffers per module, depth first, as PyTorch orders them. */
  stateDict(prefix = ''): StateDict {
    const out: StateDict = new Map();
    const visit = (module: Module, at: string): void => {
      for (const [name, t] of module.#parameters) if (t !== null) out.set(at + name, t);
      for (const [name, t] of module.#buffers) {
        if (t !== null && module.#persistent.has(name)) out.set(at + name, t);
      }
      for (const [name, child] of module.#children) visit(child, `${at}${name}.`);
    };
    visit(this, prefix);
    return out;
  }

  /**
   * Copies values from `state` into this module's parameters and buffers. Keys may carry a
   * `module.` prefix (data-parallel saves). Strict by default: any missing, unexpected or
   * mis-shaped key throws a StateDictError listing all of them, before anything is copied.
   */
  loadStateDict(state: StateDict | Record<string, Tensor>, options: { strict?: boolean; context?: string } = {}): LoadReport {
    const strict = options.strict ?? true;
    const given = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const ownKeys = new Set(own.keys());
    const normalized = new Map<string, Tensor>();
    const allPrefixed = given.size > 0 && [...given.keys()].every((k) => k.startsWith('module.'));
    for (const [key, value] of given) {
      if (!(value instanceof Tensor)) {
        throw new Error(`${options.context ?? 'loadStateDict'}: key '${key}' holds ${describe(value)}, not a tensor`);
      }
      const stripped = allPrefixed && !ownKeys.has(key) ? key.slice('module.'.length) : key;
      normalized.set(stripped, value);
    }

    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    for (const key of ownKeys) if (!normalized.has(key)) report.missing.push(key);
    for (const key of normalized.keys()) if (!ownKeys.has(key)) report.unexpected.push(key);
    for (const [key, target] of own) {
      const source = normalized.get(key);
      if (source === undefined) continue;
      const a = target.shape;
      const b = source.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
        report.mismatched.push({ key, expected: a, got: b });
      }
    }
    const failed = report.mismatched.length > 0 ||
      (strict && (report.missing.length > 0 || report.unexpected.length > 0));
    if (failed) throw new StateDictError(report, options.context ?? 'loadStateDict');

    noGrad(() => {
      for (const [key, target] of own) {
        const source = normalized.get(key);
        if (source !== undefined) target.copy_(source);
      }
    });
    return report;
  }

  /**
   * Replaces every parameter and buffer by `fn(t)` (parameters stay leaves; a frozen one stays
   * frozen).
   * Used for dtype, device and memory-format changes; make optimizers afterwards.
   */
  applyTensors(fn: (t: Tensor, isParameter: boolean) => Tensor): this {
    for (const [, module] of this.namedModules()) {
      for (const [name, t] of module.#parameters) {
        if (t === null) continue;
        const next = noGrad(() => fn(t, true));
        if (next === t) continue;
        next.requiresGrad_(t.requiresGrad);
        module.#parameters.set(name, keep(next));
        t.dispose();
      }
      for (const [name, t] of module.#buffers) {
        if (t === null) continue;
        const next = noGrad(() => fn(t, false));
        if (next === t) continue;
        module.#buffers.set(name, keep(next));
        t.dispose();
      }
    }
    return this;
  }

  /** Moves floating-point tensors to a dtype or device (`'float64'`, `'cuda:0'`). */
  to(target: DType | string): this {
    return this.applyTensors((t) => {
      const floating = ['float32', 'float64', 'float16', 'bfloat16'].includes(t.dtype);
      const isDevice = /^(cpu|cuda)/.test(target);
      if (!isDevice && !floating) return t;
      return t.to(target);
    });
  }

  /** Channels-last layout for 4-d parameters (convolution weights). */
  toChannelsLast(): this {
    return this.applyTensors((t) => (t.ndim === 4 ? t.contiguous('channels_last') : t));
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) t.dispose();
    for (const [, t] of this.namedBuffers()) t.dispose();
  }
}
