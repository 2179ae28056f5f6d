// Data parallelism on this machine: the all-reduce of ResNet-50's gradients over loopback, and
// the GroCo training step of the Fashion-MNIST network with a global batch of 256 as
// 1 process x 2 threads against 2 processes x 1 thread (batch 128 each, synchronised BN,
// gathered negatives, averaged gradients). Medians over the measured steps.
//
//   node dist/bench/distributed.js [--steps 8] [--warmup 2]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import * as T from '../src/torch/index.js';
import { optim, tidy } from '../src/torch/index.js';
import { createProjection, resnet50, trainableParameters } from '../src/models/index.js';
import { createEncoder } from '../src/models/index.js';
import { createLoss } from '../src/losses/index.js';
import {
  ProcessGroup, averageGradients, broadcastModules, distributedEnv, negativesFromAllRanks,
  synchronizeBatchNorm,
} from '../src/distributed/index.js';

const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const steps = flag('--steps', 8);
const warmup = flag('--warmup', 2);

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

function child(mode: string, env: Record<string, string>): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [self, '--worker', mode, '--steps', String(steps), '--warmup', String(warmup)],
      { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('exit', (code) => (code === 0
      ? resolve(JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>)
      : reject(new Error(`${mode} worker failed: ${err}`))));
  });
}

async function ranks(mode: string, world: number, threads: number): Promise<Record<string, number>[]> {
  const port = String(await freePort());
  return Promise.all(Array.from({ length: world }, (_, rank) => child(mode, {
    RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port,
    GROCO_NUM_THREADS: String(threads),
  })));
}

function allReduceWorker(group: ProcessGroup): Record<string, number> {
  const model = resnet50();
  const params = model.parameters();
  for (const p of params) p.grad = T.onesLike(p);
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const start = performance.now();
    averageGradients(group, params);
    if (i >= warmup) times.push(performance.now() - start);
  }
  const count = params.reduce((n, p) => n + p.numel, 0);
  return { ms: median(times), floats: count };
}

function stepWorker(group: ProcessGroup | null): Record<string, number> {
  const world = group?.worldSize ?? 1;
  const rank = group?.rank ?? 0;
  T.manualSeed(0);
  const encoder = createEncoder({ type: 'RegularEncoder', args: { arch: 'resnet18', small_images: true, in_channels: 1, width: 32 } });
  encoder.toChannelsLast();
  const projection = createProjection({ type: 'RegularProjection', args: { num_layers: 3, output_dim: 2048 } }, encoder.featureDim);
  if (group) {
    broadcastModules(group, [encoder, projection]);
    synchronizeBatchNorm(group, [encoder, projection]);
  }
  const loss = createLoss('GroCo', { n_augs: 2, topk_neg: 10 }, { gatherNegatives: group ? negativesFromAllRanks(group) : undefined });
  const params = trainableParameters(encoder, projection);
  const opt = new optim.SGD(params, { lr: 0.1, momentum: 0.9 });
  const batch = 256 / world;
  const views = [0, 1].map(() => T.randn([batch, 1, 28, 28]).contiguous('channels_last'));
  void rank;
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const start = performance.now();
    tidy(() => {
      opt.zeroGrad();
      const z = T.autocast('cpu', 'bfloat16', () => views.map((v) => projection.forward(encoder.forward(v))));
      loss.forward(z.map((t) => t.float())).loss.backward();
      if (group) averageGradients(group, params);
      opt.step();
    });
    if (i >= warmup) times.push(performance.now() - start);
  }
  return { ms: median(times) };
}

async function main(): Promise<void> {
  const w = args.indexOf('--worker');
  if (w >= 0) {
    const mode = args[w + 1]!;
    const group = process.env.WORLD_SIZE ? ProcessGroup.init(distributedEnv(), 120_000) : null;
    const result = mode === 'allreduce' ? allReduceWorker(group!) : stepWorker(group);
    group?.barrier();
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const [ar] = await ranks('allreduce', 2, 1);
  const single = await child('step', { GROCO_NUM_THREADS: '2' });
  const double = await ranks('step', 2, 1);
  const ddp = Math.max(...double.map((r) => r.ms!));
  console.log(`all-reduce of ResNet-50 gradients (${(ar!.floats! / 1e6).toFixed(1)} M floats, ` +
    `25 MiB buckets), 2 processes over loopback: ${ar!.ms!.toFixed(0)} ms (median of ${steps})`);
  console.log(`GroCo step, Fashion-MNIST network, global batch 256 x 2 views, bfloat16:`);
  console.log(`  1 process x 2 threads:  ${single.ms!.toFixed(0)} ms`);
  console.log(`  2 processes x 1 thread: ${ddp.toFixed(0)} ms (ratio ${(ddp / single.ms!).toFixed(2)})`);
}

await main();
