// Training throughput of the ResNets (forward, backward and SGD step) and the overhead of tiny
// ops, against the PyTorch peer in the same run. The two sides take turns step by step, so a
// busy machine slows both alike; medians over the rounds are compared.
//
//   node dist/bench/models.js [--rounds 5] [--warmup 2] [--threads 2] [--only resnet18]
//     [--tiny-calls 10000] [--json out.json]
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  F, autocast, manualSeed, native, nn, ones, optim, randint, randn, setNumThreads, tidy,
  type Tensor,
} from '../src/torch/index.js';
import { resnet, type ResNetName } from '../src/models/index.js';

const PEER_SCRIPT = fileURLToPath(new URL('../../bench/models_peer.py', import.meta.url));
const PEER_PYTHON = process.env.GROCO_PEER_PYTHON ?? '/usr/bin/python3';

interface Options {
  rounds: number;
  warmup: number;
  threads: number;
  only: string | null;
  tinyCalls: number;
  json: string | null;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    rounds: 5, warmup: 2, threads: 2, only: null, tinyCalls: 10_000, json: null,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`bench/models: ${flag} needs a value`);
    const count = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) {
        throw new Error(`bench/models: ${flag} expected an integer >= 0, got '${value}'`);
      }
      return n;
    };
    if (flag === '--rounds') options.rounds = Math.max(1, count());
    else if (flag === '--warmup') options.warmup = count();
    else if (flag === '--threads') options.threads = Math.max(1, count());
    else if (flag === '--only') options.only = value;
    else if (flag === '--tiny-calls') options.tinyCalls = Math.max(1, count());
    else if (flag === '--json') options.json = value;
    else throw new Error(`bench/models: unknown flag '${flag}' (known: --rounds, --warmup, ` +
      '--threads, --only, --tiny-calls, --json)');
  }
  return options;
}

/** The PyTorch process: one JSON request per line, one JSON answer per line. */
class Peer {
  readonly #process: ChildProcessWithoutNullStreams;
  readonly #waiting: ((line: string) => void)[] = [];
  #stderr = '';

  constructor() {
    this.#process = spawn(PEER_PYTHON, [PEER_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#process.stderr.on('data', (chunk: Buffer) => { this.#stderr += chunk.toString(); });
    createInterface({ input: this.#process.stdout })
      .on('line', (line) => this.#waiting.shift()?.(line));
    this.#process.on('exit', (code) => {
      for (const reject of this.#waiting.splice(0)) {
        reject(JSON.stringify({ error: `the PyTorch peer exited (${code}):\n${this.#stderr}` }));
      }
    });
  }

  async request<T>(body: Record<string, unknown>): Promise<T> {
    const line = await new Promise<string>((resolve) => {
      this.#waiting.push(resolve);
      this.#process.stdin.write(`${JSON.stringify(body)}\n`);
    });
    const answer = JSON.parse(line) as T & { error?: string };
    if (answer.error !== undefined) throw new Error(`bench/models: ${answer.error}`);
    return answer;
  }

  close(): void {
    this.#process.stdin.end();
  }
}

interface StepTime { wall: number; cpu: number }

interface TrainConfig {
  arch: ResNetName;
  size: number;
  batch: number;
  precision: 'float32' | 'bfloat16';
  channelsLast: boolean;
}

function configName(c: TrainConfig): string {
  const layout = c.channelsLast ? ' channels-last' : '';
  return `${c.arch} ${c.size}px b${c.batch} ${c.precision}${layout}`;
}

const CONFIGS: TrainConfig[] = [];
for (const [arch, size, batch] of [['resnet50', 224, 16], ['resnet18', 96, 64]] as const) {
  for (const precision of ['float32', 'bfloat16'] as const) {
    for (const channelsLast of [false, true]) {
      CONFIGS.push({ arch, size, batch, precision, channelsLast });
    }
  }
}

/** Our side of a training benchmark: torchvision's model (encoder + 1000-way classifier). */
class OurTraining {
  readonly #encoder: nn.Module;
  readonly #classifier: nn.Linear;
  readonly #optimizer: optim.SGD;
  readonly #images: Tensor;
  readonly #labels: Tensor;

  constructor(readonly config: TrainConfig) {
    manualSeed(0);
    const encoder = resnet(config.arch);
    this.#classifier = new nn.Linear(encoder.featureDim, 1000);
    let images = randn([config.batch, 3, config.size, config.size]);
    if (config.channelsLast) {
      encoder.toChannelsLast();
      const cl = images.contiguous('channels_last');
      images.dispose();
      images = cl;
    }
    this.#encoder = encoder;
    this.#images = images;
    this.#labels = randint(0, 1000, [config.batch]);
    this.#optimizer = new optim.SGD([...encoder.parameters(), ...this.#classifier.parameters()],
      { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
  }

  /** One training step; returns its wall-clock and CPU (all threads) durations in seconds. */
  step(): StepTime {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    this.#optimizer.zeroGrad();
    tidy(() => {
      const loss = autocast('cpu', 'bfloat16', () => {
        const features = this.#encoder.forward(this.#images);
        return F.crossEntropy(this.#classifier.forward(features), this.#labels);
      }, this.config.precision === 'bfloat16');
      loss.backward();
    });
    this.#optimizer.step();
    const cpu = process.cpuUsage(cpuStart);
    return { wall: (performance.now() - start) / 1000, cpu: (cpu.user + cpu.system) / 1e6 };
  }

  dispose(): void {
    this.#optimizer.dispose();
    this.#encoder.zeroGrad();
    this.#classifier.zeroGrad();
    this.#encoder.dispose();
    this.#classifier.dispose();
    this.#images.dispose();
    this.#labels.dispose();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface TrainResult {
  config: string;
  oursImagesPerSecond: number;
  peerImagesPerSecond: number;
  ratio: number;
  /** From the fastest step of each side: the least disturbed by other load on the machine. */
  oursBestImagesPerSecond: number;
  peerBestImagesPerSecond: number;
  bestRatio: number;
  /** Median CPU seconds per step (all threads): less sensitive to other load than wall time. */
  oursCpuSeconds: number;
  peerCpuSeconds: number;
  cpuRatio: number;
  ours: StepTime[];
  peer: StepTime[];
}

async function benchTraining(peer: Peer, config: TrainConfig,
  options: Options): Promise<TrainResult> {
  const ours = new OurTraining(config);
  const request = {
    command: 'train', key: configName(config), arch: config.arch, size: config.size,
    batch: config.batch, precision: config.precision, channels_last: config.channelsLast,
  };
  for (let i = 0; i < options.warmup; i++) ours.step();
  await peer.request({ ...request, steps: options.warmup });

  const oursTimes: StepTime[] = [];
  const peerTimes: StepTime[] = [];
  for (let r = 0; r < options.rounds; r++) {
    oursTimes.push(ours.step());
    const answer = await peer.request<{ times: StepTime[] }>({ ...request, steps: 1 });
    peerTimes.push(...answer.times);
  }
  ours.dispose();
  const oursRate = config.batch / median(oursTimes.map((t) => t.wall));
  const peerRate = config.batch / median(peerTimes.map((t) => t.wall));
  const oursBest = config.batch / Math.min(...oursTimes.map((t) => t.wall));
  const peerBest = config.batch / Math.min(...peerTimes.map((t) => t.wall));
  const oursCpu = median(oursTimes.map((t) => t.cpu));
  const peerCpu = median(peerTimes.map((t) => t.cpu));
  return {
    config: configName(config), oursImagesPerSecond: oursRate, peerImagesPerSecond: peerRate,
    ratio: oursRate / peerRate, oursBestImagesPerSecond: oursBest,
    peerBestImagesPerSecond: peerBest, bestRatio: oursBest / peerBest,
    oursCpuSeconds: oursCpu, peerCpuSeconds: peerCpu, cpuRatio: peerCpu / oursCpu,
    ours: oursTimes, peer: peerTimes,
  };
}

interface TinyResult {
  op: string;
  oursMicroseconds: number;
  peerMicroseconds: number;
  ratio: number;
}

/** Seconds per call of `a + b`, `a.add_(b)` and `relu(a)` on 1-element tensors. */
function ourTinyOps(calls: number): Record<string, number> {
  const a = ones([1]);
  const b = ones([1]);
  const out: Record<string, number> = {};
  for (let i = 0; i < 1000; i++) {
    a.add(b).dispose();
    a.add_(b);
    a.relu().dispose();
  }
  let start = performance.now();
  for (let i = 0; i < calls; i++) a.add(b).dispose();
  out.add = (performance.now() - start) / 1000 / calls;
  start = performance.now();
  for (let i = 0; i < calls; i++) a.add_(b);
  out.add_ = (performance.now() - start) / 1000 / calls;
  start = performance.now();
  for (let i = 0; i < calls; i++) a.relu().dispose();
  out.relu = (performance.now() - start) / 1000 / calls;
  a.dispose();
  b.dispose();
  return out;
}

async function benchTinyOps(peer: Peer, options: Options): Promise<TinyResult[]> {
  const ours: Record<string, number[]> = {};
  const theirs: Record<string, number[]> = {};
  for (let r = 0; r < options.rounds; r++) {
    for (const [op, s] of Object.entries(ourTinyOps(options.tinyCalls))) (ours[op] ??= []).push(s);
    const answer = await peer.request<Record<string, number>>(
      { command: 'tiny', calls: options.tinyCalls });
    for (const [op, s] of Object.entries(answer)) (theirs[op] ??= []).push(s);
  }
  return Object.keys(ours).map((op) => {
    const o = median(ours[op]!) * 1e6;
    const p = median(theirs[op]!) * 1e6;
    // for overheads, a ratio above 1 means groco is faster, as for throughput
    return { op, oursMicroseconds: o, peerMicroseconds: p, ratio: p / o };
  });
}

const WIDTHS = [42, 11, 11, 7, 11, 11, 7, 11, 11, 7];

/** One table line: the first cell left-aligned, the others right-aligned. */
function row(cells: string[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(WIDTHS[i]!) : c.padStart(WIDTHS[i]!))).join('');
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  setNumThreads(options.threads);
  const peer = new Peer();
  try {
    const info = await peer.request<{ threads: number; torch: string }>(
      { command: 'threads', threads: options.threads });
    console.log(`groco on libtorch ${native.torchVersion} vs PyTorch ${info.torch}, ` +
      `${options.threads} threads each, ${options.rounds} alternating rounds after ` +
      `${options.warmup} warm-up steps; medians\n`);

    const training: TrainResult[] = [];
    console.log(row(['training step (fwd + bwd + SGD)', 'groco med', 'torch med', 'ratio',
      'groco best', 'torch best', 'ratio', 'groco cpu', 'torch cpu', 'ratio']));
    for (const config of CONFIGS) {
      if (options.only !== null && !configName(config).includes(options.only)) continue;
      const r = await benchTraining(peer, config, options);
      training.push(r);
      console.log(row([r.config, r.oursImagesPerSecond.toFixed(2), r.peerImagesPerSecond.toFixed(2),
        r.ratio.toFixed(3), r.oursBestImagesPerSecond.toFixed(2),
        r.peerBestImagesPerSecond.toFixed(2), r.bestRatio.toFixed(3), r.oursCpuSeconds.toFixed(3),
        r.peerCpuSeconds.toFixed(3), r.cpuRatio.toFixed(3)]));
    }

    const tiny = await benchTinyOps(peer, options);
    console.log(`\n${row([`tiny op (1-element, ${options.tinyCalls} calls)`, 'groco us',
      'PyTorch us', 'ratio'])}`);
    for (const t of tiny) {
      console.log(row([t.op, t.oursMicroseconds.toFixed(2), t.peerMicroseconds.toFixed(2),
        t.ratio.toFixed(3)]));
    }
    console.log('\nmed: images/s from the median step; best: from the fastest step; cpu: median ' +
      'CPU seconds per step, all threads.\nratio > 1: groco is faster (groco/PyTorch for ' +
      'throughput, PyTorch/groco for times).');
    if (options.json !== null) {
      writeFileSync(options.json, JSON.stringify({ options, training, tiny }, null, 2));
    }
  } finally {
    peer.close();
  }
}

await main();
