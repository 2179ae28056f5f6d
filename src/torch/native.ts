// Loads the libtorch addon and types its surface. Everything native goes through this file.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An opaque handle to a native tensor (an N-API external). */
export type Handle = { readonly __brand: 'TensorHandle' };
export type GeneratorHandle = { readonly __brand: 'GeneratorHandle' };
export type GroupHandle = { readonly __brand: 'ProcessGroupHandle' };
export type WorkHandle = { readonly __brand: 'WorkHandle' };

export interface NativeAddon {
  torchVersion: string;
  builtWithCuda: boolean;

  fromBuffer(data: ArrayBufferView | ArrayBuffer, dtype: number, shape: number[],
    device?: string): Handle;
  toBuffer(h: Handle): ArrayBuffer;
  meta(h: Handle): [number, number[], string, boolean];
  shape(h: Handle): number[];
  strides(h: Handle): number[];
  storageOffset(h: Handle): number;
  dtype(h: Handle): number;
  item(h: Handle): number | boolean;
  free(h: Handle): void;
  liveCount(): number;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  cudaDeviceCount(): number;
  newGenerator(seed: number): GeneratorHandle;
  defaultGenerator(): GeneratorHandle;
  generatorGetState(g: GeneratorHandle): Handle;
  generatorSetState(g: GeneratorHandle, state: Handle): void;
  generatorSeed(g: GeneratorHandle, seed: number): void;

  resolveOp(name: string, overload: string): number;
  opSchema(id: number): string;
  callOp(id: number, args: unknown[], discard?: boolean): unknown;

  backward(outputs: Handle[], grads: (Handle | null)[] | null, retainGraph: boolean,
    createGraph: boolean): void;
  autogradGrad(outputs: Handle[], inputs: Handle[], gradOutputs: (Handle | null)[] | null,
    retainGraph: boolean, createGraph: boolean, allowUnused: boolean): (Handle | null)[];
  getGrad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  setRequiresGrad(h: Handle, value: boolean): void;
  isLeaf(h: Handle): boolean;
  setGradEnabled(value: boolean): boolean;
  isGradEnabled(): boolean;
  setAutocast(device: 'cpu' | 'cuda', enabled: boolean, dtype: number, entering: boolean):
    [boolean, number];
  setFunctionHandler(fn: (kind: 'forward' | 'backward', id: number, tensors: (Handle | null)[])
    => (Handle | null)[]): void;
  applyFunction(id: number, inputs: Handle[]): Handle[];

  newProcessGroup(host: string, port: number, rank: number, worldSize: number,
    timeoutMs: number): GroupHandle;
  destroyProcessGroup(g: GroupHandle): void;
  allReduce(g: GroupHandle, tensors: Handle[], op: string, async: boolean): WorkHandle | undefined;
  waitWork(w: WorkHandle): void;
  allGather(g: GroupHandle, tensor: Handle): Handle[];
  broadcast(g: GroupHandle, tensors: Handle[], root: number): void;
  barrier(g: GroupHandle): void;
  storeSet(g: GroupHandle, key: string, value: string): void;
  storeGet(g: GroupHandle, key: string): string;
}

function addonPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'build', 'Release', 'groco_native.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('groco: the native addon is not built (build/Release/groco_native.node is ' +
    'missing). Run the setup script (scripts/setup.sh) or `npm ci`, which builds it with node-gyp.');
}

function explainLoadFailure(error: Error): Error {
  const message = error.message;
  let fix = 'Run scripts/setup.sh to install the system packages and rebuild the addon.';
  if (/libtorch|libc10|libtorch_cpu/.test(message) && /cannot open shared object/.test(message)) {
    fix = 'libtorch was not found at run time. Install Debian\'s libtorch-dev (scripts/setup.sh ' +
      'does), or, for a libtorch of your own, rebuild with LIBTORCH=/path/to/libtorch npm ci ' +
      'and keep that folder in place.';
  } else if (/undefined symbol/.test(message)) {
    fix = 'The addon was built against a different libtorch than the one loaded (version or ' +
      'C++ ABI mismatch). Rebuild it against the libtorch you run with: `npm rebuild groco` or ' +
      '`LIBTORCH=/path npx node-gyp rebuild`.';
  } else if (/NODE_MODULE_VERSION/.test(message)) {
    fix = 'The addon was built for another Node.js version. Rebuild it: `npx node-gyp rebuild`.';
  }
  return new Error(`groco: cannot load the libtorch addon: ${message}\n${fix}`);
}

function load(): NativeAddon {
  const path = addonPath();
  const require = createRequire(import.meta.url);
  try {
    return require(path) as NativeAddon;
  } catch (error) {
    throw explainLoadFailure(error as Error);
  }
}

export const native: NativeAddon = load();

const opIds = new Map<string, number>();

/** Resolves `aten::name.overload` once and caches its id. */
export function opId(qualified: string): number {
  let id = opIds.get(qualified);
  if (id === undefined) {
    const dot = qualified.indexOf('.');
    const name = dot < 0 ? qualified : qualified.slice(0, dot);
    const overload = dot < 0 ? '' : qualified.slice(dot + 1);
    id = native.resolveOp(name, overload);
    opIds.set(qualified, id);
  }
  return id;
}

/** Calls an ATen operator; errors carry the operator's name and libtorch's message. */
export function callOp(qualified: string, args: unknown[], discard = false): unknown {
  const id = opId(qualified);
  try {
    return native.callOp(id, args, discard);
  } catch (error) {
    const message = (error as Error).message;
    const shortName = qualified.replace(/^aten::/, '');
    throw new Error(message.startsWith(qualified) ? message : `${shortName}: ${message}`);
  }
}

function defaultThreads(): number {
  const fromEnv = process.env.GROCO_NUM_THREADS ?? process.env.OMP_NUM_THREADS;
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`GROCO_NUM_THREADS: expected a positive integer, got '${fromEnv}'`);
    }
    return n;
  }
  return availableParallelism();
}

native.setNumThreads(defaultThreads());
