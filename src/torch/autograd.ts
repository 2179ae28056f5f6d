// Grad mode, backward over several outputs, gradients of chosen inputs, and functions whose
// forward and backward are written in TypeScript.
import { callOp, native, type Handle } from './native.js';
import { Tensor, keep, tidy } from './tensor.js';

/** Runs `fn` with gradient recording off (PyTorch's `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` with gradient recording on, even inside `noGrad`. */
export function enableGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export function backward(outputs: Tensor[], grads?: (Tensor | null)[],
  options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
  native.backward(outputs.map((t) => t.handle), grads ? grads.map((g) => g?.handle ?? null) : null,
    options.retainGraph ?? false, options.createGraph ?? false);
}

/** Gradients of `outputs` with respect to `inputs` (PyTorch's `torch.autograd.grad`). */
export function grad(outputs: Tensor[], inputs: Tensor[], options: {
  gradOutputs?: (Tensor | null)[]; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean;
} = {}): (Tensor | null)[] {
  const result = native.autogradGrad(outputs.map((t) => t.handle), inputs.map((t) => t.handle),
    options.gradOutputs ? options.gradOutputs.map((g) => g?.handle ?? null) : null,
    options.retainGraph ?? false, options.createGraph ?? false, options.allowUnused ?? false);
  return result.map((h) => (h === null ? null : new Tensor(h)));
}

export interface FunctionContext {
  /** Tensors kept for backward; they are released when backward has run. */
  saved: Tensor[];
  /** Anything else backward needs. */
  data: Record<string, unknown>;
}

/**
 * A differentiable function defined in TypeScript (PyTorch's `torch.autograd.Function`).
 * `forward` runs without recording; `backward` receives one gradient per output (null where
 * none flows) and returns one per input (null for none). CPU autograd only.
 */
export interface CustomFunction {
  forward(ctx: FunctionContext, inputs: Tensor[]): Tensor[];
  backward(ctx: FunctionContext, gradOutputs: (Tensor | null)[]): (Tensor | null)[];
}

interface Pending {
  fn: CustomFunction;
  ctx: FunctionContext;
}

const pending = new Map<number, Pending>();
let nextId = 1;
let handlerInstalled = false;

function wrapAll(handles: (Handle | null)[]): (Tensor | null)[] {
  return handles.map((h) => (h === null ? null : new Tensor(h)));
}

function installHandler(): void {
  native.setFunctionHandler((kind, id, handles) => {
    const entry = pending.get(id);
    if (entry === undefined) throw new Error(`custom function ${id}: unknown or already released`);
    // The native side takes ownership of the returned handles (fresh aliases), so every JS
    // tensor made here can be disposed when the scope closes.
    return tidy(() => {
      const tensors = wrapAll(handles);
      if (kind === 'forward') {
        const outputs = entry.fn.forward(entry.ctx, tensors as Tensor[]);
        keep(entry.ctx.saved);
        return outputs.map((t) => callOp('aten::alias', [t.handle]) as Handle);
      }
      const grads = entry.fn.backward(entry.ctx, tensors);
      for (const t of entry.ctx.saved) t.dispose();
      pending.delete(id);
      return grads.map((g) => (g === null ? null : callOp('aten::alias', [g.handle]) as Handle));
    });
  });
  handlerInstalled = true;
}

// A finalization registry drops the JS side of a function whose graph was freed without a
// backward (evaluation, or a loss that was never differentiated).
const release = new FinalizationRegistry<number>((id) => {
  const entry = pending.get(id);
  if (entry === undefined) return;
  for (const t of entry.ctx.saved) t.dispose();
  pending.delete(id);
});

export function applyFunction(fn: CustomFunction, inputs: Tensor[]): Tensor[] {
  if (!handlerInstalled) installHandler();
  const id = nextId++;
  const ctx: FunctionContext = { saved: [], data: {} };
  pending.set(id, { fn, ctx });
  const outputs = native.applyFunction(id, inputs.map((t) => t.handle)).map((h) => new Tensor(h));
  const anyGrad = outputs.some((t) => t.requiresGrad);
  if (!anyGrad) {
    for (const t of ctx.saved) t.dispose();
    pending.delete(id);
  } else {
    release.register(outputs[0]!, id);
  }
  return outputs;
}
