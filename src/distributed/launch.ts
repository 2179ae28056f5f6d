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

  let signals = 0;
  const forward = (signal: NodeJS.Signals): void => {
    signals++;
    for (const c of children) if (!c.exited) c.child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);

  // After a forwarded signal, a rank that exits 130 or dies of the signal (one that came before
  // its handlers, or a second Ctrl-C) did as asked; after a second signal, so does one whose
  // collective broke as the others left.
  const asked = (code: number | null, signal: NodeJS.Signals | null): boolean =>
    signals >= 2 || (signals === 1 && (code === 130 || signal === 'SIGINT' || signal === 'SIGTERM'));

  let failure: { rank: number; code: number } | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  await Promise.all(children.map((c) => new Promise<void>((resolve) => {
    c.child.on('exit', (code, signal) => {
      c.exited = true;
      const failed = code !== 0 && !asked(code, signal);
      if (failed && failure === null) {
        failure = { rank: c.rank, code: code ?? 1 };
        log(`groco launch: rank ${c.rank} exited first, with ${signal ? `signal ${signal}` : `code ${code}`}; ` +
          'stopping the other ranks (each rank\'s own error is above: a broken collective is often ' +
          'the consequence of another rank\'s)');
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
  return signals > 0 ? 130 : 0;
}
