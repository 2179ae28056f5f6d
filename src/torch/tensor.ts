// The Tensor: a JS owner of one libtorch tensor, its methods, and memory scopes.
import { callOp, native, type Handle } from './native.js';
import {
  dtypeCode, dtypeName, dtypeOfTypedArray, typedArrayFor, type DType, type TypedArray,
} from './dtype.js';

export type Shape = number[];
export type Scalar = number | boolean;
export type NestedArray = number | boolean | NestedArray[];

// ---- scopes --------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

function track(t: Tensor): void {
  const top = scopes[scopes.length - 1];
  if (top !== undefined) top.add(t);
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) {
    into.add(value);
  } else if (Array.isArray(value)) {
    for (const item of value) collectTensors(item, into, depth + 1);
  } else if (value instanceof Map) {
    for (const item of value.values()) collectTensors(item, into, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) collectTensors(item, into, depth + 1);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except the tensors it returns (found in
 * the returned value, arrays, maps and plain objects) and those passed to `keep`. Synchronous
 * functions only: tensors made after an `await` would escape the scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  for (const t of scope) {
    if (!kept.has(t)) t.dispose();
  }
  for (const t of kept) {
    if (scope.has(t)) track(t);
  }
  return result;
}

/** Exempts tensors from the enclosing scopes' disposal. */
export function keep<T extends Tensor | Tensor[]>(value: T): T {
  const list = Array.isArray(value) ? value : [value];
  for (const t of list) {
    for (const scope of scopes) scope.delete(t);
  }
  return value;
}

/** Number of native tensors alive now (for leak tests). */
export function liveTensorCount(): number {
  return native.liveCount();
}

// ---- argument helpers ----------------------------------------------------------------------

function wrap(result: unknown): Tensor {
  return new Tensor(result as Handle);
}

function wrapList(result: unknown): Tensor[] {
  return (result as Handle[]).map((h) => new Tensor(h));
}

function isTensor(value: unknown): value is Tensor {
  return value instanceof Tensor;
}

export function describe(value: unknown): string {
  if (value instanceof Tensor) return `Tensor(${value.dtype}, [${value.shape.join(', ')}])`;
  if (Array.isArray(value)) return `array of ${value.length}`;
  if (typeof value === 'string') return `'${value}'`;
  return String(value);
}

export function expectTensor(op: string, name: string, value: unknown): Tensor {
  if (!isTensor(value)) throw new Error(`${op}: argument '${name}' expected a Tensor, got ${describe(value)}`);
  return value;
}

export function expectInt(op: string, name: string, value: unknown, min = -Infinity): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    const bound = min > -Infinity ? ` >= ${min}` : '';
    throw new Error(`${op}: argument '${name}' expected an integer${bound}, got ${describe(value)}`);
  }
  return value;
}

function binary(op: string, self: Tensor, other: Tensor | Scalar): Tensor {
  if (isTensor(other)) return wrap(callOp(`aten::${op}.Tensor`, [self.handle, other.handle]));
  if (typeof other !== 'number' && typeof other !== 'boolean') {
    throw new Error(`${op}: argument 'other' expected a Tensor or a number, got ${describe(other)}`);
  }
  return wrap(callOp(`aten::${op}.Scalar`, [self.handle, other]));
}

function inplace(op: string, self: Tensor, other: Tensor | Scalar): Tensor {
  if (isTensor(other)) callOp(`aten::${op}_.Tensor`, [self.handle, other.handle], true);
  else callOp(`aten::${op}_.Scalar`, [self.handle, other], true);
  return self;
}

function unary(op: string, self: Tensor): Tensor {
  return wrap(callOp(`aten::${op}`, [self.handle]));
}

function dimsArg(dim: number | number[] | undefined): number[] | null {
  if (dim === undefined) return null;
  return Array.isArray(dim) ? dim : [dim];
}

export interface ReduceOptions { keepdim?: boolean }

// ---- the tensor ----------------------------------------------------------------------------

export class Tensor {
  #handle: Handle | null;

  /** Takes ownership of a native handle. Use the creation functions instead. */
  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  get handle(): Handle {
    if (this.#handle === null) throw new Error('Tensor: used after dispose()');
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Frees the native tensor now. Safe to call twice. */
  dispose(): void {
    if (this.#handle === null) return;
    native.free(this.#handle);
    this.#handle = null;
  }

  get shape(): Shape { return native.shape(this.handle); }
  get dtype(): DType { return dtypeName(native.dtype(this.handle)); }
  get device(): string { return native.meta(this.handle)[2]; }
  get ndim(): number { return this.shape.length; }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  get strides(): number[] { return native.strides(this.handle); }
  size(dim: number): number {
    const shape = this.shape;
    const d = dim < 0 ? dim + shape.length : dim;
    if (d < 0 || d >= shape.length) {
      throw new Error(`size: dim ${dim} out of range for a tensor of ${shape.length} dims`);
    }
    return shape[d]!;
  }

  // ---- reading back
  /** A copy of the values as a typed array (float16/bfloat16 come back as float32). */
  data(): TypedArray {
    const dtype = this.dtype;
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const f = this.to('float32');
      try { return f.data(); } finally { f.dispose(); }
    }
    return typedArrayFor(dtype, native.toBuffer(this.handle));
  }

  /** Values as plain numbers (int64 converted with Number). */
  toFlatArray(): number[] {
    const values = this.data();
    return Array.from(values as ArrayLike<number | bigint>, (v) => Number(v));
  }

  toArray(): NestedArray {
    const flat = this.toFlatArray();
    const isBool = this.dtype === 'bool';
    const shape = this.shape;
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === shape.length) return isBool ? flat[offset] !== 0 : flat[offset]!;
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      const out: NestedArray[] = [];
      for (let i = 0; i < shape[dim]!; i++) out.push(build(dim + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  item(): number {
    const value = native.item(this.handle);
    return typeof value === 'boolean' ? Number(value) : value;
  }

  toString(): string { return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device})`; }

  // ---- autograd
  get requiresGrad(): boolean { return native.meta(this.handle)[3]; }
  requiresGrad_(value = true): this { native.setRequiresGrad(this.handle, value); return this; }
  get grad(): Tensor | null {
    const g = native.getGrad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(value: Tensor | null) { native.setGrad(this.handle, value === null ? null : value.handle); }
  get isLeaf(): boolean { return native.isLeaf(this.handle); }
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward([this.handle], gradient ? [gradient.handle] : null,
      options.retainGraph ?? false, options.createGraph ?? false);
  }
  detach(): Tensor { return unary('detach', this); }

  // ---- conversion
  to(target: DType | string, options: { copy?: boolean } = {}): Tensor {
    if (target.startsWith('cpu') || target.startsWith('cuda') || target.startsWith('mps')) {
      return wrap(callOp('aten::to.device', [this.handle, target, native.dtype(this.handle), false,
        options.copy ?? false]));
    }
    return wrap(callOp('aten::to.dtype', [this.handle, dtypeCode(target as DType), false,
      options.copy ?? false]));
  }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }
  clone(): Tensor { return unary('clone', this); }
  contiguous(memoryFormat: 'contiguous' | 'channels_last' = 'contiguous'): Tensor {
    return wrap(callOp('aten::contiguous', [this.handle, memoryFormatCode(memoryFormat)]));
  }
  isContiguous(memoryFormat: 'contiguous' | 'channels_last' = 'contiguous'): boolean {
    const shape = this.shape;
    const strides = this.strides;
    let order = shape.map((_, i) => i);
    if (memoryFormat === 'channels_last') {
      if (shape.length !== 4) return false;
      order = [0, 2, 3, 1];
    }
    let expected = 1;
    for (let k = order.length - 1; k >= 0; k--) {
      const d = order[k]!;
      if (shape[d] !== 1 && strides[d] !== expected) return false;
      expected *= shape[d]!;
    }
    return true;
  }

  // ---- arithmetic
  add(other: Tensor | Scalar, alpha?: number): Tensor {
    if (alpha !== undefined && isTensor(other)) {
      return wrap(callOp('aten::add.Tensor', [this.handle, other.handle, alpha]));
    }
    return binary('add', this, other);
  }
  sub(other: Tensor | Scalar): Tensor { return binary('sub', this, other); }
  mul(other: Tensor | Scalar): Tensor { return binary('mul', this, other); }
  div(other: Tensor | Scalar): Tensor { return binary('div', this, other); }
  rsub(other: Scalar): Tensor { return wrap(callOp('aten::rsub.Scalar', [this.handle, other])); }
  pow(exponent: Tensor | number): Tensor {
    if (isTensor(exponent)) return wrap(callOp('aten::pow.Tensor_Tensor', [this.handle, exponent.handle]));
    return wrap(callOp('aten::pow.Tensor_Scalar', [this.handle, exponent]));
  }
  neg(): Tensor { return unary('neg', this); }
  reciprocal(): Tensor { return unary('reciprocal', this); }
  exp(): Tensor { return unary('exp', this); }
  log(): Tensor { return unary('log', this); }
  log1p(): Tensor { return unary('log1p', this); }
  sqrt(): Tensor { return unary('sqrt', this); }
  rsqrt(): Tensor { return unary('rsqrt', this); }
  abs(): Tensor { return unary('abs', this); }
  sign(): Tensor { return unary('sign', this); }
  atan(): Tensor { return unary('atan', this); }
  erf(): Tensor { return unary('erf', this); }
  cos(): Tensor { return unary('cos', this); }
  sin(): Tensor { return unary('sin', this); }
  tanh(): Tensor { return unary('tanh', this); }
  sigmoid(): Tensor { return unary('sigmoid', this); }
  relu(): Tensor { return unary('relu', this); }
  floor(): Tensor { return unary('floor', this); }
  round(): Tensor { return unary('round', this); }
  square(): Tensor { return this.mul(this); }
  clamp(min?: number | null, max?: number | null): Tensor {
    return wrap(callOp('aten::clamp', [this.handle, min ?? null, max ?? null]));
  }
  clampMin(min: number): Tensor { return this.clamp(min, null); }
  clampMax(max: number): Tensor { return this.clamp(null, max); }

  // ---- comparisons and logic
  eq(other: Tensor | Scalar): Tensor { return binary('eq', this, other); }
  ne(other: Tensor | Scalar): Tensor { return binary('ne', this, other); }
  lt(other: Tensor | Scalar): Tensor { return binary('lt', this, other); }
  le(other: Tensor | Scalar): Tensor { return binary('le', this, other); }
  gt(other: Tensor | Scalar): Tensor { return binary('gt', this, other); }
  ge(other: Tensor | Scalar): Tensor { return binary('ge', this, other); }
  logicalNot(): Tensor { return unary('logical_not', this); }
  logicalAnd(other: Tensor): Tensor {
    return wrap(callOp('aten::logical_and', [this.handle, other.handle]));
  }
  logicalOr(other: Tensor): Tensor {
    return wrap(callOp('aten::logical_or', [this.handle, other.handle]));
  }
  isfinite(): Tensor { return unary('isfinite', this); }
  allclose(other: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return callOp('aten::allclose', [this.handle, other.handle, rtol, atol, false]) as boolean;
  }

  // ---- reductions
  sum(dim?: number | number[], options: ReduceOptions = {}): Tensor {
    if (dim === undefined) return wrap(callOp('aten::sum', [this.handle, null]));
    return wrap(callOp('aten::sum.dim_IntList', [this.handle, dimsArg(dim), options.keepdim ?? false]));
  }
  mean(dim?: number | number[], options: ReduceOptions = {}): Tensor {
    if (dim === undefined) return wrap(callOp('aten::mean', [this.handle, null]));
    return wrap(callOp('aten::mean.dim', [this.handle, dimsArg(dim), options.keepdim ?? false]));
  }
  /** Without `dim` the maximum element; with `dim` the values (see `maxWithIndices`). */
  max(dim?: number, options: ReduceOptions = {}): Tensor {
    if (dim === undefined) return unary('max', this);
    const [values, indices] = this.maxWithIndices(dim, options);
    indices.dispose();
    return values;
  }
  min(dim?: number, options: ReduceOptions = {}): Tensor {
    if (dim === undefined) return unary('min', this);
    const [values, indices] = this.minWithIndices(dim, options);
    indices.dispose();
    return values;
  }
  maxWithIndices(dim: number, options: ReduceOptions = {}): [Tensor, Tensor] {
    const [v, i] = wrapList(callOp('aten::max.dim', [this.handle, dim, options.keepdim ?? false]));
    return [v!, i!];
  }
  minWithIndices(dim: number, options: ReduceOptions = {}): [Tensor, Tensor] {
    const [v, i] = wrapList(callOp('aten::min.dim', [this.handle, dim, options.keepdim ?? false]));
    return [v!, i!];
  }
  maximum(other: Tensor): Tensor { return wrap(callOp('aten::maximum', [this.handle, other.handle])); }
  minimum(other: Tensor): Tensor { return wrap(callOp('aten::minimum', [this.handle, other.handle])); }
  argmax(dim?: number, options: ReduceOptions = {}): Tensor {
    return wrap(callOp('aten::argmax', [this.handle, dim ?? null, options.keepdim ?? false]));
  }
  argmin(dim?: number, options: ReduceOptions = {}): Tensor {
    return wrap(callOp('aten::argmin', [this.handle, dim ?? null, options.keepdim ?? false]));
  }
  norm(p = 2, dim?: number | number[], options: ReduceOptions = {}): Tensor {
    if (dim === undefined) return wrap(callOp('aten::norm.Scalar', [this.handle, p]));
    return wrap(callOp('aten::norm.ScalarOpt_dim', [this.handle, p, dimsArg(dim), options.keepdim ?? false]));
  }
  var(dim?: number | number[], options: ReduceOptions & { unbiased?: boolean } = {}): Tensor {
    return wrap(callOp('aten::var.dim', [this.handle, dimsArg(dim), options.unbiased ?? true,
      options.keepdim ?? false]));
  }
  any(): Tensor { return unary('any', this); }
  all(): Tensor { return unary('all', this); }
  cumsum(dim: number): Tensor { return wrap(callOp('aten::cumsum', [this.handle, dim, null])); }

  // ---- linear algebra
  matmul(other: Tensor): Tensor { return wrap(callOp('aten::matmul', [this.handle, other.handle])); }
  mm(other: Tensor): Tensor { return wrap(callOp('aten::mm', [this.handle, other.handle])); }
  bmm(other: Tensor): Tensor { return wrap(callOp('aten::bmm', [this.handle, other.handle])); }
  get T(): Tensor { return this.transpose(-2, -1); }

  // ---- shapes and views
  reshape(shape: Shape): Tensor { return wrap(callOp('aten::reshape', [this.handle, shape])); }
  view(shape: Shape): Tensor { return wrap(callOp('aten::view', [this.handle, shape])); }
  transpose(dim0: number, dim1: number): Tensor {
    return wrap(callOp('aten::transpose.int', [this.handle, dim0, dim1]));
  }
  permute(dims: number[]): Tensor { return wrap(callOp('aten::permute', [this.handle, dims])); }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(callOp('aten::flatten.using_ints', [this.handle, startDim, endDim]));
  }
  squeeze(dim?: number): Tensor {
    if (dim === undefined) return unary('squeeze', this);
    return wrap(callOp('aten::squeeze.dim', [this.handle, dim]));
  }
  unsqueeze(dim: number): Tensor { return wrap(callOp('aten::unsqueeze', [this.handle, dim])); }
  expand(shape: Shape): Tensor { return wrap(callOp('aten::expand', [this.handle, shape, false])); }
  expandAs(other: Tensor): Tensor { return this.expand(other.shape); }
  repeat(repeats: number[]): Tensor { return wrap(callOp('aten::repeat', [this.handle, repeats])); }
  flip(dims: number[]): Tensor { return wrap(callOp('aten::flip', [this.handle, dims])); }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(callOp('aten::narrow', [this.handle, dim, start, length]));
  }
  /** Python's `t[..., start:end:step, ...]` on one dim. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return wrap(callOp('aten::slice.Tensor', [this.handle, dim, start ?? null, end ?? null, step]));
  }
  /** Python's `t[i]` along `dim` (the dim is removed). */
  select(dim: number, index: number): Tensor {
    return wrap(callOp('aten::select.int', [this.handle, dim, index]));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapList(callOp('aten::chunk', [this.handle, chunks, dim]));
  }
  split(size: number | number[], dim = 0): Tensor[] {
    if (Array.isArray(size)) return wrapList(callOp('aten::split_with_sizes', [this.handle, size, dim]));
    return wrapList(callOp('aten::split.Tensor', [this.handle, size, dim]));
  }
  unbind(dim = 0): Tensor[] { return wrapList(callOp('aten::unbind.int', [this.handle, dim])); }

  // ---- indexing
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(callOp('aten::index_select', [this.handle, dim, index.handle]));
  }
  /** Advanced indexing `t[i0, i1, ...]` with index tensors (null = the whole dim). */
  index(indices: (Tensor | null)[]): Tensor {
    return wrap(callOp('aten::index.Tensor', [this.handle, indices.map((t) => t?.handle ?? null)]));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(callOp('aten::gather', [this.handle, dim, index.handle, false]));
  }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor {
    if (isTensor(src)) return wrap(callOp('aten::scatter.src', [this.handle, dim, index.handle, src.handle]));
    return wrap(callOp('aten::scatter.value', [this.handle, dim, index.handle, src]));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return wrap(callOp('aten::scatter_add', [this.handle, dim, index.handle, src.handle]));
  }
  maskedFill(mask: Tensor, value: number): Tensor {
    return wrap(callOp('aten::masked_fill.Scalar', [this.handle, mask.handle, value]));
  }
  topk(k: number, dim = -1, options: { largest?: boolean; sorted?: boolean } = {}): [Tensor, Tensor] {
    const [v, i] = wrapList(callOp('aten::topk', [this.handle, k, dim, options.largest ?? true,
      options.sorted ?? true]));
    return [v!, i!];
  }
  sort(dim = -1, options: { descending?: boolean; stable?: boolean } = {}): [Tensor, Tensor] {
    const [v, i] = wrapList(callOp('aten::sort.stable', [this.handle, options.stable ?? false, dim,
      options.descending ?? false]));
    return [v!, i!];
  }
  argsort(dim = -1, options: { descending?: boolean } = {}): Tensor {
    return wrap(callOp('aten::argsort', [this.handle, dim, options.descending ?? false]));
  }
  tril(diagonal = 0): Tensor { return wrap(callOp('aten::tril', [this.handle, diagonal])); }
  triu(diagonal = 0): Tensor { return wrap(callOp('aten::triu', [this.handle, diagonal])); }
  diagonal(offset = 0, dim1 = 0, dim2 = 1): Tensor {
    return wrap(callOp('aten::diagonal', [this.handle, offset, dim1, dim2]));
  }

  // ---- in place (for optimizers and buffers; not recorded when grad is off)
  add_(other: Tensor | Scalar, alpha?: number): this {
    if (alpha !== undefined && isTensor(other)) {
      callOp('aten::add_.Tensor', [this.handle, other.handle, alpha], true);
      return this;
    }
    inplace('add', this, other);
    return this;
  }
  sub_(other: Tensor | Scalar): this { inplace('sub', this, other); return this; }
  mul_(other: Tensor | Scalar): this { inplace('mul', this, other); return this; }
  div_(other: Tensor | Scalar): this { inplace('div', this, other); return this; }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    callOp('aten::addcmul_', [this.handle, a.handle, b.handle, value], true);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    callOp('aten::addcdiv_', [this.handle, a.handle, b.handle, value], true);
    return this;
  }
  copy_(src: Tensor): this { callOp('aten::copy_', [this.handle, src.handle, false], true); return this; }
  zero_(): this { callOp('aten::zero_', [this.handle], true); return this; }
  fill_(value: number): this { callOp('aten::fill_.Scalar', [this.handle, value], true); return this; }
  clamp_(min?: number | null, max?: number | null): this {
    callOp('aten::clamp_', [this.handle, min ?? null, max ?? null], true);
    return this;
  }
  maskedFill_(mask: Tensor, value: number): this {
    callOp('aten::masked_fill_.Scalar', [this.handle, mask.handle, value], true);
    return this;
  }
}

export function memoryFormatCode(format: 'contiguous' | 'channels_last' | 'preserve'): number {
  // c10::MemoryFormat: Contiguous = 0, Preserve = 1, ChannelsLast = 2
  if (format === 'contiguous') return 0;
  if (format === 'preserve') return 1;
  if (format === 'channels_last') return 2;
  throw new Error(`memory format: expected contiguous, channels_last or preserve, got '${String(format)}'`);
}

// ---- creation ------------------------------------------------------------------------------

export interface CreateOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}

function flatten(value: NestedArray, shape: number[], out: number[], dim: number): void {
  if (Array.isArray(value)) {
    if (shape.length <= dim) shape.push(value.length);
    else if (shape[dim] !== value.length) {
      throw new Error(`tensor: ragged nested array: expected ${shape[dim]} items at depth ${dim}, ` +
        `got ${value.length}`);
    }
    for (const item of value) flatten(item, shape, out, dim + 1);
  } else {
    if (dim !== shape.length) throw new Error('tensor: ragged nested array (a number beside arrays)');
    if (typeof value === 'boolean') out.push(value ? 1 : 0);
    else if (typeof value === 'number') out.push(value);
    else throw new Error(`tensor: expected numbers, got ${typeof value}`);
  }
}

function typedFromNumbers(values: number[], dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'float32': return Float32Array.from(values);
    case 'float64': return Float64Array.from(values);
    case 'int32': return Int32Array.from(values);
    case 'int16': return Int16Array.from(values);
    case 'int8': return Int8Array.from(values);
    case 'uint8': case 'bool': return Uint8Array.from(values);
    case 'int64': return BigInt64Array.from(values, (v) => BigInt(Math.trunc(v)));
    case 'float16': case 'bfloat16': return Float32Array.from(values);
  }
}

/**
 * Makes a tensor from a number, a nested array or a typed array (copied). The dtype defaults to
 * the typed array's, or float32 for numbers (bool for booleans).
 */
export function tensor(data: NestedArray | ArrayBufferView, options: CreateOptions & { shape?: Shape } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const natural = dtypeOfTypedArray(data);
    const count = data.byteLength / (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const shape = options.shape ?? [count];
    const product = shape.reduce((a, b) => a * b, 1);
    if (product !== count) {
      throw new Error(`tensor: shape [${shape.join(', ')}] holds ${product} values, the typed array ${count}`);
    }
    t = new Tensor(native.fromBuffer(data, dtypeCode(natural), shape));
    if (options.dtype !== undefined && options.dtype !== natural) {
      const converted = t.to(options.dtype);
      t.dispose();
      t = converted;
    }
  } else {
    const shape: number[] = [];
    const values: number[] = [];
    flatten(data, shape, values, 0);
    const isBool = typeof data === 'boolean' || (Array.isArray(data) && containsBoolean(data));
    const dtype = options.dtype ?? (isBool ? 'bool' : 'float32');
    const finalShape = options.shape ?? shape;
    const staged = dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype;
    t = new Tensor(native.fromBuffer(typedFromNumbers(values, staged), dtypeCode(staged), finalShape));
    if (staged !== dtype) {
      const converted = t.to(dtype);
      t.dispose();
      t = converted;
    }
  }
  if (options.device !== undefined && options.device !== 'cpu') {
    const moved = t.to(options.device);
    t.dispose();
    t = moved;
  }
  return finish(t, options);
}

function containsBoolean(value: NestedArray): boolean {
  if (Array.isArray(value)) return value.length > 0 && containsBoolean(value[0]!);
  return typeof value === 'boolean';
}

function factoryArgs(options: CreateOptions): unknown[] {
  return [dtypeCode(options.dtype ?? 'float32'), null, options.device ?? null, null];
}

export function zeros(shape: Shape, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::zeros', [shape, ...factoryArgs(options)])), options);
}

export function ones(shape: Shape, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::ones', [shape, ...factoryArgs(options)])), options);
}

export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::full', [shape, value, ...factoryArgs(options)])), options);
}

export function empty(shape: Shape, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::empty.memory_format', [shape, ...factoryArgs(options), null])), options);
}

export function eye(n: number, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::eye', [n, ...factoryArgs(options)])), options);
}

export function zerosLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::zeros_like', [t.handle,
    options.dtype ? dtypeCode(options.dtype) : null, null, options.device ?? null, null, null])), options);
}

export function onesLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::ones_like', [t.handle,
    options.dtype ? dtypeCode(options.dtype) : null, null, options.device ?? null, null, null])), options);
}

/** Python's `torch.arange`; integer arguments give int64 unless a dtype is set. */
export function arange(start: number, end?: number, step = 1, options: Omit<CreateOptions, 'dtype'> & { dtype?: DType } = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  const integral = Number.isInteger(from) && Number.isInteger(to) && Number.isInteger(step);
  const dtype = options.dtype ?? (integral ? 'int64' : 'float32');
  return finish(wrap(callOp('aten::arange.start_step', [from, to, step, dtypeCode(dtype), null,
    options.device ?? null, null])), options);
}

export function scalarTensor(value: number, options: CreateOptions = {}): Tensor {
  return finish(wrap(callOp('aten::scalar_tensor', [value, ...factoryArgs(options)])), options);
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('cat: expected a non-empty list of tensors');
  return wrap(callOp('aten::cat', [tensors.map((t) => expectTensor('cat', 'tensors', t).handle), dim]));
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('stack: expected a non-empty list of tensors');
  return wrap(callOp('aten::stack', [tensors.map((t) => expectTensor('stack', 'tensors', t).handle), dim]));
}

export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  if (isTensor(a) && isTensor(b)) return wrap(callOp('aten::where.self', [condition.handle, a.handle, b.handle]));
  if (isTensor(a)) return wrap(callOp('aten::where.ScalarOther', [condition.handle, a.handle, b]));
  if (isTensor(b)) return wrap(callOp('aten::where.ScalarSelf', [condition.handle, a, b.handle]));
  return wrap(callOp('aten::where.Scalar', [condition.handle, a, b]));
}

export function oneHot(indices: Tensor, numClasses = -1): Tensor {
  return wrap(callOp('aten::one_hot', [indices.handle, numClasses]));
}

export function fromHandle(h: Handle): Tensor {
  return new Tensor(h);
}
