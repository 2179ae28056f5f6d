// A c10d process group (Gloo over a TCP store) and its collectives, from the environment that
// torchrun, SLURM or `groco launch` set.
import { native, type GroupHandle } from '../torch/native.js';
import { Tensor, cat, scalarTensor, tidy, zeros } from '../torch/index.js';

export interface DistributedEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
}

function intVar(env: NodeJS.ProcessEnv, name: string): number | null {
  const raw = env[name];
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`environment variable ${name}: expected a non-negative integer, got '${raw}'`);
  return n;
}

/** The first host of a SLURM node list such as `node[03-05,07],gpu1`. */
export function firstSlurmHost(nodeList: string): string {
  const first = /^([^,[]+)(\[([^\]]+)\])?/.exec(nodeList.trim());
  if (first === null) throw new Error(`SLURM_JOB_NODELIST: cannot read a host from '${nodeList}'`);
  const prefix = first[1]!;
  if (first[3] === undefined) return prefix;
  const range = first[3].split(',')[0]!.split('-')[0]!;
  return prefix + range;
}

/**
 * Reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), else
 * SLURM's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST; MASTER_PORT or 29500).
 */
export function distributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv {
  const rank = intVar(env, 'RANK') ?? intVar(env, 'SLURM_PROCID');
  const worldSize = intVar(env, 'WORLD_SIZE') ?? intVar(env, 'SLURM_NTASKS');
  if (rank === null || worldSize === null) {
    throw new Error('--distributed: set RANK and WORLD_SIZE (torchrun, `groco launch`) or run under ' +
      'SLURM (SLURM_PROCID, SLURM_NTASKS)');
  }
  if (worldSize < 1 || rank >= worldSize) {
    throw new Error(`--distributed: RANK ${rank} is not below WORLD_SIZE ${worldSize}`);
  }
  const localRank = intVar(env, 'LOCAL_RANK') ?? intVar(env, 'SLURM_LOCALID') ?? 0;
  let masterAddr = env.MASTER_ADDR;
  if (masterAddr === undefined || masterAddr === '') {
    masterAddr = env.SLURM_JOB_NODELIST ? firstSlurmHost(env.SLURM_JOB_NODELIST) : '127.0.0.1';
  }
  const masterPort = intVar(env, 'MASTER_PORT') ?? 29500;
  if (masterPort < 1 || masterPort > 65535) throw new Error(`MASTER_PORT: expected 1-65535, got ${masterPort}`);
  return { rank, worldSize, localRank, masterAddr, masterPort };
}

export class CollectiveError extends Error {}

export class ProcessGroup {
  readonly #handle: GroupHandle;

  private constructor(handle: GroupHandle, readonly rank: number, readonly worldSize: number,
    readonly timeoutMs: number) {
    this.#handle = handle;
  }

  /** Joins (rank 0 hosts the store). Fails after `timeoutMs` if the others do not come. */
  static init(env: DistributedEnv, timeoutMs = 300_000): ProcessGroup {
    try {
      const handle = native.newProcessGroup(env.masterAddr, env.masterPort, env.rank, env.worldSize, timeoutMs);
      return new ProcessGroup(handle, env.rank, env.worldSize, timeoutMs);
    } catch (error) {
      throw new CollectiveError(`rank ${env.rank}: cannot join the process group at ` +
        `${env.masterAddr}:${env.masterPort} (world size ${env.worldSize}) within ` +
        `${timeoutMs / 1000} s: ${(error as Error).message}`);
    }
  }

  #guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw new CollectiveError(`rank ${this.rank}: ${what} failed (a peer rank has probably ` +
        `exited or is stuck; timeout ${this.timeoutMs / 1000} s): ${(error as Error).message}`);
    }
  }

  /** In place: sum (or max, min, product) over ranks; one call per tensor. */
  allReduce(tensors: Tensor[], op: 'sum' | 'max' | 'min' | 'product' = 'sum'): void {
    this.#guard('all-reduce', () => {
      for (const t of tensors) native.allReduce(this.#handle, [t.handle], op, false);
    });
  }

  /** One tensor per rank, in rank order. */
  allGather(tensor: Tensor): Tensor[] {
    return this.#guard('all-gather', () =>
      native.allGather(this.#handle, tensor.handle).map((h) => new Tensor(h)));
  }

  /** All ranks' tensors concatenated along dim 0. */
  allGatherCat(tensor: Tensor): Tensor {
    return tidy(() => cat(this.allGather(tensor)));
  }

  /** Rows of every rank concatenated along dim 0; ranks may hold different numbers of rows. */
  allGatherRows(tensor: Tensor): Tensor {
    return tidy(() => {
      const counts = this.allGather(scalarTensor(tensor.size(0), { dtype: 'int64' }).reshape([1])).map((t) => t.item());
      const most = Math.max(...counts);
      const padded = tensor.size(0) === most ? tensor.contiguous()
        : cat([tensor, zeros([most - tensor.size(0), ...tensor.shape.slice(1)], { dtype: tensor.dtype })]);
      return cat(this.allGather(padded).map((t, r) => t.narrow(0, 0, counts[r]!)));
    });
  }

  broadcast(tensors: Tensor[], root = 0): void {
    this.#guard('broadcast', () => {
      for (const t of tensors) native.broadcast(this.#handle, [t.handle], root);
    });
  }

  barrier(): void {
    this.#guard('barrier', () => native.barrier(this.#handle));
  }

  /** A small string agreed through the store (rank 0 sets, the others wait for it). */
  shareString(key: string, value: string | null): string {
    return this.#guard('store exchange', () => {
      if (this.rank === 0) native.storeSet(this.#handle, key, value ?? '');
      return native.storeGet(this.#handle, key);
    });
  }

  destroy(): void {
    native.destroyProcessGroup(this.#handle);
  }
}
