// Pretraining on Fashion-MNIST, groco against the reference implementation run by the PyTorch
// peer, with the settings of one groco config: the same network, batch, views, loss, optimiser
// and schedule, for the same number of epochs. Then the same weighted k-NN (all 60,000 training
// images as the bank, the 10,000 test images as queries) on each side's encoder.
//
//   node dist/bench/pretrain_epoch.js [--config configs/fashion_mnist/groco.yaml] [--epochs 1]
//     [--repeats 1] [--threads N] [--dataset-size N] [--float32] [--keep DIR] [--json out.json]
//
// groco runs as a user runs it: `groco pretrain` then `groco eval` with
// configs/fashion_mnist/eval_knn.yaml, as child processes; the step times come from the run's
// metrics.jsonl. The peer runs the reference's own encoder wrapper, projection, GroCo loss,
// schedule, SSLTrainer epoch loop and KNNEvaluator (bench/pretrain_epoch_peer.py). The sides
// take turns, one whole run each, alternating which goes first; with --repeats R the medians
// over the R runs are reported.
//
// groco follows the config's precision (bfloat16 autocast and channels-last for the
// Fashion-MNIST config); the reference's mixed precision is CUDA's autocast, which does nothing
// on a CPU, so the peer trains in float32 whatever the config says. --float32 turns groco's
// autocast and channels-last off too, for a comparison of the same arithmetic.
//
// GROCO_REFERENCE_REPO (required): a checkout of the reference repository; its `diffsort`
// dependency must be importable (e.g. PYTHONPATH=<diffsort checkout>) and its k-NN evaluator
// needs python3-tqdm. GROCO_PEER_PYTHON: the Python with torch (default /usr/bin/python3).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadConfig, parseOverride, readConfigFile, type FashionMnistDataloaderArgs, type KnnEvaluatorArgs,
  type PretrainConfig,
} from '../src/config/index.js';
import { scaledLearningRate } from '../src/train/schedule.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const PEER_SCRIPT = join(ROOT, 'bench/pretrain_epoch_peer.py');
const PEER_PYTHON = process.env.GROCO_PEER_PYTHON ?? '/usr/bin/python3';
const KNN_CONFIG = join(ROOT, 'configs/fashion_mnist/eval_knn.yaml');
const NAME = 'bench/pretrain_epoch';

interface Options {
  config: string;
  epochs: number;
  repeats: number;
  threads: number;
  datasetSize: number | null;
  float32: boolean;
  keep: string | null;
  json: string | null;
}

/** One side's run: the time of every optimisation step, the epochs' losses and the k-NN. */
interface SideRun {
  stepSeconds: number[];
  trainLoss: number[];
  knn: Record<string, number>;
  knnSeconds: number;
}

const USAGE = `usage: GROCO_REFERENCE_REPO=<reference checkout> PYTHONPATH=<diffsort checkout> \\
  node dist/bench/pretrain_epoch.js [--config FILE] [--epochs E] [--repeats R] [--threads N]
    [--dataset-size N] [--float32] [--keep DIR] [--json FILE]
One Fashion-MNIST pretraining run in groco and in the reference (PyTorch peer), then k-NN@20 of
both; see the header of bench/pretrain_epoch.ts.`;

function parseArgs(argv: string[]): Options {
  const options: Options = {
    config: join(ROOT, 'configs/fashion_mnist/groco.yaml'), epochs: 1, repeats: 1,
    threads: cpus().length, datasetSize: null, float32: false, keep: null, json: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    if (flag === '--float32') {
      options.float32 = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new Error(`${NAME}: ${flag} needs a value`);
    const count = (min: number): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min) {
        throw new Error(`${NAME}: ${flag} expected an integer >= ${min}, got '${value}'`);
      }
      return n;
    };
    if (flag === '--config') options.config = resolve(value);
    else if (flag === '--epochs') options.epochs = count(1);
    else if (flag === '--repeats') options.repeats = count(1);
    else if (flag === '--threads') options.threads = count(1);
    else if (flag === '--dataset-size') options.datasetSize = count(1);
    else if (flag === '--keep') options.keep = resolve(value);
    else if (flag === '--json') options.json = value;
    else {
      throw new Error(`${NAME}: unknown flag '${flag}' (known: --config, --epochs, --repeats, ` +
        '--threads, --dataset-size, --float32, --keep, --json)');
    }
  }
  return options;
}

/** The config overrides both sides run with, as `groco pretrain --set` takes them. */
function overrides(options: Options): string[] {
  const sets = [`trainer.epochs=${options.epochs}`, 'evaluator=[]', 'trainer.init_val=false'];
  if (options.datasetSize !== null) sets.push(`train_dataloader.args.dataset_size=${options.datasetSize}`);
  if (options.float32) sets.push('trainer.mixed_precision=false', 'runtime.channels_last=false');
  return sets;
}

/** Refuses what the peer cannot reproduce, naming the config key. */
function checkComparable(config: PretrainConfig, file: string): void {
  const require = (ok: boolean, key: string, what: string): void => {
    if (!ok) throw new Error(`${NAME}: ${file}: ${key}: the peer reproduces ${what} only`);
  };
  require(config.train_dataloader.type === 'fashion_mnist_dataloader', 'train_dataloader.type',
    'fashion_mnist_dataloader');
  require(config.train_dataloader.args.transform_type === 'dino',
    'train_dataloader.args.transform_type', "the 'dino' views");
  require(config.encoder.type === 'RegularEncoder', 'encoder.type', 'RegularEncoder');
  require(config.projection.type === 'RegularProjection', 'projection.type', 'RegularProjection');
  require(config.loss.type === 'GroCo', 'loss.type', 'the GroCo loss');
  require(config.optimizer.type === 'SGD', 'optimizer.type', 'SGD');
  require(!config.optimizer_use_larc, 'optimizer_use_larc', 'plain SGD (false)');
}

/** What the peer needs, taken from the validated config so that both sides read the same values. */
function peerSettings(config: PretrainConfig, knnArgs: KnnEvaluatorArgs,
  knnData: FashionMnistDataloaderArgs[], threads: number): Record<string, unknown> {
  const data = config.train_dataloader.args as FashionMnistDataloaderArgs;
  const view = (a: FashionMnistDataloaderArgs): Record<string, unknown> => ({
    root: a.root, train: a.train, batch_size: a.batch_size, num_workers: a.num_workers,
    transform_type: a.transform_type, n_augs: a.n_augs, image_size: a.image_size,
    resize: a.resize, mean: a.mean, std: a.std,
  });
  const encoder = config.encoder.args as unknown as Record<string, unknown>;
  const sgd = config.optimizer.args as unknown as Record<string, unknown>;
  return {
    threads,
    seed: config.seed ?? 0,
    train_data: { ...view(data), dataset_size: data.dataset_size ?? 60000 },
    encoder: {
      arch: encoder.arch, small_images: encoder.small_images, in_channels: encoder.in_channels,
      width: encoder.width,
    },
    projection: config.projection.args,
    loss: config.loss.args,
    sgd: {
      momentum: sgd.momentum, weight_decay: sgd.weight_decay, dampening: sgd.dampening,
      nesterov: sgd.nesterov,
    },
    learning_rate: scaledLearningRate(config.base_learning_rate, data.batch_size,
      config.learning_rate_scaling),
    warmup_epochs: config.warmup_epochs,
    epochs: config.trainer.epochs,
    log_step: config.trainer.log_step,
    clip_grad: config.trainer.clip_grad,
    mixed_precision: config.trainer.mixed_precision,
    knn_bank: view(knnData[0]!),
    knn_query: view(knnData[1]!),
    knn: {
      k: knnArgs.k, num_classes: knnArgs.num_classes ?? 10, temperature: knnArgs.temperature,
      use_weighting: knnArgs.use_weighting, max_feature_bank: knnArgs.max_feature_bank,
      log_name: knnArgs.log_name,
    },
  };
}

/** Runs a command, passing its stderr through, and returns its stdout. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, label: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let tail = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      process.stderr.write(text.replace(/^(?=.)/gm, `[${label}] `));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`${NAME}: ${label} exited with ${code}:\n${tail.split('\n').slice(-15).join('\n')}`));
    });
  });
}

function lastJsonLine(stdout: string, label: string): Record<string, unknown> {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`${NAME}: ${label} printed no JSON result line; its stdout ended with '${line}'`);
  }
}

function findFile(dir: string, name: string): string {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isFile() && entry.name === name) return path;
    if (entry.isDirectory()) {
      try {
        return findFile(path, name);
      } catch { /* not in this folder */ }
    }
  }
  throw new Error(`${NAME}: no ${name} under ${dir}`);
}

async function runGroco(options: Options, dir: string): Promise<SideRun> {
  const env = { ...process.env };
  const common = ['--threads', String(options.threads), '--save-dir', dir];
  await run(process.execPath, [CLI, 'pretrain', '-c', options.config, '--name', 'bench', ...common,
    ...overrides(options).flatMap((s) => ['--set', s])], env, 'groco');
  const checkpoint = findFile(join(dir, 'models', 'bench'), 'latest_model.pth');
  const metrics = readFileSync(findFile(join(dir, 'models', 'bench'), 'metrics.jsonl'), 'utf8')
    .trim().split('\n').map((line) => JSON.parse(line) as Record<string, number | string>)
    .filter((m) => m.type === 'train');

  const started = Date.now();
  const stdout = await run(process.execPath, [CLI, 'eval', '-c', KNN_CONFIG, '-r', checkpoint,
    '--name', 'bench_knn', '--json', ...common], env, 'groco');
  const knnSeconds = (Date.now() - started) / 1000;
  const results = lastJsonLine(stdout, 'groco eval');

  const lossByEpoch = new Map<number, number[]>();
  for (const m of metrics) {
    const losses = lossByEpoch.get(m.epoch as number) ?? [];
    losses.push(m.train_loss as number);
    lossByEpoch.set(m.epoch as number, losses);
  }
  return {
    stepSeconds: metrics.map((m) => (m.data_time as number) + (m.batch_time as number)),
    trainLoss: [...lossByEpoch.values()].map((l) => l.reduce((a, b) => a + b, 0) / l.length),
    knn: Object.fromEntries(Object.entries(results)
      .filter(([key]) => key.startsWith('knn@')).map(([k, v]) => [k, v as number])),
    knnSeconds,
  };
}

async function runPeer(settings: Record<string, unknown>, threads: number): Promise<SideRun> {
  const env = {
    ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads),
  };
  const stdout = await run(PEER_PYTHON, [PEER_SCRIPT, JSON.stringify(settings)], env, 'reference');
  const result = lastJsonLine(stdout, 'the peer');
  return {
    stepSeconds: result.step_seconds as number[],
    trainLoss: result.train_loss as number[],
    knn: result.knn as Record<string, number>,
    knnSeconds: result.knn_seconds as number,
  };
}

/** Both sides log with the k-NN config's log_name, `_final`. */
function knn20(side: SideRun): number {
  return side.knn['knn@20_final'] ?? Number.NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Images (views) per second: per step, its median after the first step, and over the whole run. */
function rates(side: SideRun, imagesPerStep: number): { step: number; run: number; seconds: number } {
  const seconds = side.stepSeconds.reduce((a, b) => a + b, 0);
  const steady = side.stepSeconds.length > 1 ? side.stepSeconds.slice(1) : side.stepSeconds;
  return {
    step: imagesPerStep / median(steady),
    run: (imagesPerStep * side.stepSeconds.length) / seconds,
    seconds,
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (!process.env.GROCO_REFERENCE_REPO) {
    throw new Error(`${NAME}: set GROCO_REFERENCE_REPO to a checkout of the reference ` +
      'repository (with diffsort importable, e.g. PYTHONPATH=<diffsort checkout>)');
  }
  if (!existsSync(CLI)) throw new Error(`${NAME}: ${CLI} is missing: build first (npm run build)`);
  // the reference must import before groco spends minutes training
  await run(PEER_PYTHON, [PEER_SCRIPT, '--check'], process.env, 'reference');

  const config = loadConfig('pretrain', {
    file: options.config, overrides: overrides(options).map((s) => parseOverride(s)),
  });
  checkComparable(config, options.config);
  // laid over the pretraining config, as `groco eval` lays it over a checkpoint's
  const knnConfig = loadConfig('eval', { file: KNN_CONFIG, base: readConfigFile(options.config) });
  const knnEvaluator = knnConfig.evaluator.find((e) => e.type === 'KNNEvaluator');
  if (knnEvaluator === undefined) throw new Error(`${NAME}: ${KNN_CONFIG} has no KNNEvaluator`);
  const knnData = knnConfig.valid_dataloader.map((d) => d.args as FashionMnistDataloaderArgs);
  const settings = peerSettings(config, knnEvaluator.args as KnnEvaluatorArgs, knnData,
    options.threads);

  const data = config.train_dataloader.args as FashionMnistDataloaderArgs;
  const samples = data.dataset_size ?? 60000;
  const steps = Math.floor(samples / data.batch_size);
  const imagesPerStep = data.batch_size * data.n_augs;
  const precision = config.trainer.mixed_precision && !options.float32
    ? `bfloat16 autocast${config.runtime.channels_last ? ', channels-last' : ''}` : 'float32';
  console.log(`${NAME}: ${options.config}, ${options.epochs} epoch(s) of ${samples} samples ` +
    `(${steps} steps of ${data.batch_size} x ${data.n_augs} views), ${options.threads} threads, ` +
    `${options.repeats} repeat(s); groco in ${precision}, the reference in float32`);

  const base = options.keep ?? mkdtempSync(join(tmpdir(), 'groco-bench-pretrain-'));
  const ours: SideRun[] = [];
  const peer: SideRun[] = [];
  try {
    for (let r = 0; r < options.repeats; r++) {
      const order = r % 2 === 0 ? ['groco', 'reference'] : ['reference', 'groco'];
      for (const side of order) {
        if (side === 'groco') ours.push(await runGroco(options, join(base, `groco-${r}`)));
        else peer.push(await runPeer(settings, options.threads));
      }
    }
  } finally {
    if (options.keep === null) rmSync(base, { recursive: true, force: true });
  }

  const summary = (runs: SideRun[]) => {
    const r = runs.map((s) => rates(s, imagesPerStep));
    return {
      imagesPerSecondStep: median(r.map((x) => x.step)),
      imagesPerSecondRun: median(r.map((x) => x.run)),
      trainSeconds: median(r.map((x) => x.seconds)),
      knnSeconds: median(runs.map((s) => s.knnSeconds)),
      knn20: median(runs.map(knn20)),
      knn20Runs: runs.map(knn20),
      lastEpochLoss: median(runs.map((s) => s.trainLoss.at(-1) ?? Number.NaN)),
    };
  };
  const a = summary(ours);
  const b = summary(peer);
  const row = (label: string, x: number, y: number, digits: number, ratio: string): string =>
    `${label.padEnd(34)}${x.toFixed(digits).padStart(12)}${y.toFixed(digits).padStart(14)}` +
    `${ratio.padStart(10)}`;
  console.log(`\n${''.padEnd(34)}${'groco'.padStart(12)}${'reference'.padStart(14)}` +
    `${'ratio'.padStart(10)}`);
  console.log(row('images/s, median step', a.imagesPerSecondStep, b.imagesPerSecondStep, 1,
    (a.imagesPerSecondStep / b.imagesPerSecondStep).toFixed(2)));
  console.log(row('images/s, whole run', a.imagesPerSecondRun, b.imagesPerSecondRun, 1,
    (a.imagesPerSecondRun / b.imagesPerSecondRun).toFixed(2)));
  console.log(row('pretraining seconds', a.trainSeconds, b.trainSeconds, 1,
    (b.trainSeconds / a.trainSeconds).toFixed(2)));
  console.log(row('k-NN evaluation seconds', a.knnSeconds, b.knnSeconds, 1,
    (b.knnSeconds / a.knnSeconds).toFixed(2)));
  console.log(row('train loss, last epoch mean', a.lastEpochLoss, b.lastEpochLoss, 4, ''));
  console.log(row('k-NN@20 (%)', a.knn20, b.knn20, 2,
    `${a.knn20 - b.knn20 >= 0 ? '+' : ''}${(a.knn20 - b.knn20).toFixed(2)}`));
  console.log('(ratios: groco over the reference for rates, the reference over groco for ' +
    'seconds; k-NN: the difference in points)');

  if (options.json !== null) {
    writeFileSync(options.json, JSON.stringify({
      config: options.config, epochs: options.epochs, samples, steps, threads: options.threads,
      repeats: options.repeats, precision, groco: { ...a, runs: ours }, reference: { ...b, runs: peer },
    }, null, 1));
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
