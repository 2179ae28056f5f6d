// `groco launch`: starts one process per rank on this node with torchrun's variables, watches
// them, and when one fails says which rank and why, then stops the others.
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface LaunchSpec {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** The groco command to run in each process, e.g. ['pretrain', '-c', 'x.yaml']. */
  command: string[];
  /** The script that runs a groco command (the CLI entry point). */
  entry: string;
  /** Seconds to wait for the others after one rank failed, before killing them. */
  graceSeconds?: number;
  log?: (line: string) => void;
}

export async function launch(spec: LaunchSpec): Promise<number> {
  const log = spec.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const world = spec.nprocPerNode * spec.nnodes;
  const threads = process.env.GROCO_NUM_THREADS ??
    String(Math.max(1, Math.floor(availableParallelism() / spec.nprocPerNode)));
  const children: { rank: number; child: ChildProcess; exited: boolean }[] = [];

  const args = spec.command.includes('--distributed') ? spec.command : [...spec.command, '--distributed'];
  for (let local = 0; local < spec.nprocPerNode; local++) {
    const rank = spec.nodeRank * spec.nprocPerNode + local;
    const env = {
      ...process.env, RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(spec.nprocPerNode), MASTER_ADDR: spec.masterAddr,
      MASTER_PORT: String(spec.masterPort), GROCO_NUM_THREADS: threads,
    };
    // Each rank in its own process group, so that a terminal's Ctrl-C reaches the launcher alone
    // and every rank gets exactly one signal per Ctrl-C (a second one means: exit now). The IPC
    // channel lets a rank notice that the launcher is gone.
    const child = spawn(process.execPath, [spec.entry, ...args], {
      env, stdio: ['inherit', 'inherit', 'inherit', 'ipc'], detached: true,
    });
    children.push({ rank, child, exited: false });
  }

  let signalled = false;
  const forward = (signal: NodeJS.Signals): void => {
    signalled = true;
    for (const c of children) if (!c.exited) c.child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);

  let failure: { rank: number; code: number } | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  await Promise.all(children.map((c) => new Promise<void>((resolve) => {
    c.child.on('exit', (code, signal) => {
      c.exited = true;
      // 130: a rank that stopped on the signal forwarded to it, as all of them do
      const failed = code !== 0 && !(signalled && code === 130);
      if (failed && failure === null) {
        failure = { rank: c.rank, code: code ?? 1 };
        log(`groco launch: rank ${c.rank} exited with ${signal ? `signal ${signal}` : `code ${code}`}; ` +
          'stopping the other ranks');
        for (const other of children) if (!other.exited) other.child.kill('SIGTERM');
        killTimer = setTimeout(() => {
          for (const other of children) if (!other.exited) other.child.kill('SIGKILL');
        }, (spec.graceSeconds ?? 30) * 1000);
        killTimer.unref();
      }
      resolve();
    });
  })));
  if (killTimer !== null) clearTimeout(killTimer);
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  if (failure !== null) return (failure as { code: number }).code || 1;
  return children.some((c) => c.child.exitCode === 130) ? 130 : 0;
}
