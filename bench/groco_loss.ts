// GroCo loss, forward + backward, against the reference formulation run by the PyTorch peer in
// the same run: B = 1024, D = 2048, 2 views with topk_neg 10, and 8-view multi-crop. The two
// sides take turns iteration by iteration on the same inputs, so a busy machine slows both
// alike; medians are compared.
//
//   node dist/bench/groco_loss.js [--batch 1024] [--dim 2048] [--rounds 7] [--warmup 1]
//     [--threads 2] [--only two_views|multi_crop] [--json out.json]
//
// Both sides get --threads intra-op threads; OpenBLAS reads OPENBLAS_NUM_THREADS when each
// process starts, and the peer inherits this process's environment.
//
// GROCO_REFERENCE_REPO: a checkout of the reference repository (with `diffsort` importable),
// whose GroCo module the peer then times; without it the peer times the dense formulation
// written in bench/groco_loss_peer.py, and the output says so.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GroCoLoss } from '../src/losses/index.js';
import {
  getNumThreads, manualSeed, randn, setNumThreads, tidy, type Tensor,
} from '../src/torch/index.js';

const PEER_SCRIPT = fileURLToPath(new URL('../../bench/groco_loss_peer.py', import.meta.url));
const PEER_PYTHON = process.env.GROCO_PEER_PYTHON ?? '/usr/bin/python3';

interface Options {
  batch: number;
  dim: number;
  rounds: number;
  warmup: number;
  threads: number;
  only: string | null;
  json: string | null;
}

interface Scenario {
  name: string;
  nAugs: number;
  nPosAugs: number;
  topkNeg: number;
  steepness: number;
}

const SCENARIOS: Scenario[] = [
  { name: 'two_views', nAugs: 2, nPosAugs: 2, topkNeg: 10, steepness: 1 },
  { name: 'multi_crop', nAugs: 8, nPosAugs: 2, topkNeg: 10, steepness: 1 },
];

function parseArgs(argv: string[]): Options {
  const options: Options = {
    batch: 1024, dim: 2048, rounds: 7, warmup: 1, threads: getNumThreads(), only: null, json: null,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`bench/groco_loss: ${flag} needs a value`);
    const count = (min: number): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min) {
        throw new Error(`bench/groco_loss: ${flag} expected an integer >= ${min}, got '${value}'`);
      }
      return n;
    };
    if (flag === '--batch') options.batch = count(12);
    else if (flag === '--dim') options.dim = count(1);
    else if (flag === '--rounds') options.rounds = count(1);
    else if (flag === '--warmup') options.warmup = count(0);
    else if (flag === '--threads') options.threads = count(1);
    else if (flag === '--json') options.json = value;
    else if (flag === '--only') {
      if (!SCENARIOS.some((s) => s.name === value)) {
        throw new Error(`bench/groco_loss: --only expected one of ` +
          `${SCENARIOS.map((s) => s.name).join(', ')}, got '${value}'`);
      }
      options.only = value;
    } else {
      throw new Error(`bench/groco_loss: unknown flag '${flag}' (known: --batch, --dim, ` +
        '--rounds, --warmup, --threads, --only, --json)');
    }
  }
  return options;
}

/** The PyTorch process: a config line in, then one "run" per line, one JSON answer per line. */
class Peer {
  readonly #process: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  #stderr = '';

  constructor(threads: number) {
    const env = { ...process.env, OMP_NUM_THREADS: String(threads) };
    this.#process = spawn(PEER_PYTHON, [PEER_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env });
    this.#process.stderr.on('data', (chunk: Buffer) => { this.#stderr += chunk.toString(); });
    this.#lines = createInterface({ input: this.#process.stdout })[Symbol.asyncIterator]();
  }

  async request(line: string): Promise<Record<string, unknown>> {
    this.#process.stdin.write(`${line}\n`);
    return this.read();
  }

  async read(): Promise<Record<string, unknown>> {
    const next = await this.#lines.next();
    if (next.done) {
      throw new Error(`PyTorch peer exited:\n${this.#stderr.split('\n').slice(-12).join('\n')}`);
    }
    return JSON.parse(next.value) as Record<string, unknown>;
  }

  close(): void {
    this.#process.stdin.end();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Result {
  scenario: string;
  oursMs: number[];
  peerMs: number[];
  /** CPU time of the process (all its threads), less sensitive to a busy machine. */
  oursCpuMs: number[];
  peerCpuMs: number[];
  oursLoss: number;
  peerLoss: number;
  peerLabel: string;
}

async function runScenario(scenario: Scenario, options: Options, dir: string): Promise<Result> {
  const { batch, dim } = options;

  // the same inputs on both sides, through a raw float32 file
  manualSeed(0);
  const data = randn([scenario.nAugs, batch, dim]);
  const file = join(dir, `${scenario.name}.f32`);
  writeFileSync(file, new Uint8Array((data.data() as Float32Array).buffer));

  const peer = new Peer(options.threads);
  const loss = new GroCoLoss({
    nAugs: scenario.nAugs, nPosAugs: scenario.nPosAugs, topkNeg: scenario.topkNeg,
    steepness: scenario.steepness,
  });
  try {
    const ready = await peer.request(JSON.stringify({
      n_augs: scenario.nAugs, n_pos_augs: scenario.nPosAugs, topk_neg: scenario.topkNeg,
      steepness: scenario.steepness, batch, dim, threads: options.threads, inputs: file,
    }));
    const result: Result = {
      scenario: scenario.name, oursMs: [], peerMs: [], oursCpuMs: [], peerCpuMs: [],
      oursLoss: NaN, peerLoss: NaN,
      peerLabel: String(ready.label),
    };

    const ours = (): [number, number, number] => tidy(() => {
      const views: Tensor[] = [];
      for (let v = 0; v < scenario.nAugs; v++) {
        views.push(data.select(0, v).clone().requiresGrad_());
      }
      const cpuStart = process.cpuUsage();
      const start = performance.now();
      const out = loss.forward(views).loss;
      out.backward();
      const value = out.item();
      const cpu = process.cpuUsage(cpuStart);
      return [performance.now() - start, (cpu.user + cpu.system) / 1000, value];
    });

    for (let round = 0; round < options.warmup + options.rounds; round++) {
      const answer = await peer.request('run');
      const [ms, cpuMs, value] = ours();
      if (round < options.warmup) continue;
      result.peerMs.push(answer.ms as number);
      result.peerCpuMs.push(answer.cpu_ms as number);
      result.peerLoss = answer.loss as number;
      result.oursMs.push(ms);
      result.oursCpuMs.push(cpuMs);
      result.oursLoss = value;
    }
    return result;
  } finally {
    peer.close();
    loss.dispose();
    data.dispose();
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  setNumThreads(options.threads);
  const dir = mkdtempSync(join(tmpdir(), 'groco-bench-'));
  const results: Result[] = [];
  try {
    for (const scenario of SCENARIOS) {
      if (options.only !== null && options.only !== scenario.name) continue;
      results.push(await runScenario(scenario, options, dir));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`GroCo loss forward + backward, B = ${options.batch}, D = ${options.dim}, ` +
    `topk_neg 10, ${options.threads} threads each side, median of ${options.rounds} rounds ` +
    `(taking turns)`);
  console.log(`peer: ${results[0]?.peerLabel ?? '-'}`);
  console.log('scenario      wall ms: ours     peer  speed-up | cpu ms: ours     peer  ' +
    'speed-up | loss ours / peer');
  for (const r of results) {
    const cells = (ours: number, peer: number) => `${ours.toFixed(1).padStart(13)} ` +
      `${peer.toFixed(1).padStart(8)} ${(peer / ours).toFixed(2).padStart(8)}x`;
    console.log(`${r.scenario.padEnd(12)}${cells(median(r.oursMs), median(r.peerMs))} |` +
      `${cells(median(r.oursCpuMs), median(r.peerCpuMs))} | ` +
      `${r.oursLoss.toFixed(6)} / ${r.peerLoss.toFixed(6)}`);
  }
  if (options.json !== null) {
    writeFileSync(options.json, JSON.stringify({ options, results }, null, 2));
  }
}

main().catch((error: unknown) => {
  console.error((error as Error).message);
  process.exit(1);
});
