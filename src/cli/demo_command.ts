// `groco demo`: the main job. Fashion-MNIST to shards (once), GroCo pretraining of a small
// ResNet for about ten minutes on two cores, then weighted k-NN (k = 20) of the 10,000 test
// images against the 60,000 training images, before and after pretraining.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { loadConfig, readConfigFile, type DataloaderSpec, type PretrainConfig } from '../config/index.js';
import { preprocessFashionMnist } from '../data/index.js';
import { knnAccuracy } from '../eval/knn.js';
import { extractFeatures } from '../eval/features.js';
import { disposeCheckpoint, loadTrainingCheckpoint } from '../train/checkpoint.js';
import { formatDuration } from '../train/progress.js';
import type { nn } from '../torch/index.js';
import type { DemoOptions } from './args.js';
import { buildEncoder } from './common.js';
import { createLoader, onePass } from './loaders.js';
import { runPretrain } from './pretrain_command.js';
import { setupRuntime, type Runtime } from './runtime.js';

const DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';
const FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
  't10k-labels-idx1-ubyte'];

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'configs', 'fashion_mnist', 'groco.yaml'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('demo: configs/fashion_mnist/groco.yaml not found beside the program');
    dir = up;
  }
  return dir;
}

function checkData(root: string): void {
  const missing = FILES.filter((f) => !existsSync(join(root, f)) && !existsSync(join(root, `${f}.gz`)));
  if (missing.length > 0) {
    throw new Error(`demo: Fashion-MNIST is not in ${root} (missing ${missing.join(', ')}). On Debian, ` +
      '`apt-get install dataset-fashion-mnist` puts it in ' + DEBIAN_FASHION_MNIST + ' (scripts/setup.sh ' +
      'does this); elsewhere download the four IDX files and pass --data <folder>.');
  }
}

async function ensureShards(data: string, out: string, log: (line: string) => void): Promise<void> {
  const complete = (split: string, n: number): boolean => existsSync(join(out, split)) &&
    readdirSync(join(out, split)).filter((f) => f.endsWith('.tar')).length === n;
  if (complete('train', 12) && complete('test', 2) && existsSync(join(out, 'metadata.json'))) return;
  log(`demo: converting Fashion-MNIST to shards in ${out} (once)`);
  const summary = await preprocessFashionMnist({ input: data, output: out, seed: 0, shardSize: 5000 });
  log(`demo: ${summary.splits.map((s) => `${s.split} ${s.samples} samples`).join(', ')} ` +
    `in ${summary.seconds.toFixed(1)} s`);
}

async function knn20(encoder: nn.Module, config: PretrainConfig, runtime: Runtime, label: string): Promise<number> {
  const place = { rank: 0, worldSize: 1, seed: runtime.seed };
  const extract = async (spec: DataloaderSpec, what: string) => {
    const loader = createLoader(spec, place, true);
    try {
      return await extractFeatures(encoder, onePass(loader), {
        device: runtime.device, precision: runtime.precision, channelsLast: runtime.channelsLast,
        label: `${label}: ${what}`, total: (loader.length ?? 0) * loader.batchSize,
      });
    } finally {
      await loader.close();
    }
  };
  const bank = await extract(config.valid_dataloader[0]!, 'features of the 60,000 training images');
  const queries = await extract(config.valid_dataloader[1]!, 'features of the 10,000 test images');
  try {
    const acc = knnAccuracy(bank.features, bank.labels, queries.features, queries.labels,
      { k: [20], numClasses: 10, temperature: 0.07 });
    return acc['knn@20']!;
  } finally {
    for (const t of [bank.features, bank.labels, queries.features, queries.labels]) t.dispose();
  }
}

export interface DemoResult {
  'knn@20_untrained': number;
  'knn@20_final': number;
  seconds: number;
  pretrain_seconds: number;
  steps: number;
  run_dir: string | null;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const log = (line: string): void => { process.stderr.write(line + '\n'); };
  const data = resolve(o.data ?? DEBIAN_FASHION_MNIST);
  checkData(data);
  const work = resolve(o.workDir ?? join('runs', 'demo'));
  mkdirSync(work, { recursive: true });
  const shards = join(work, 'shards');
  await ensureShards(data, shards, log);

  // the Fashion-MNIST GroCo config, reading the training images from the shards
  const base = readConfigFile(join(packageRoot(), 'configs', 'fashion_mnist', 'groco.yaml')).value;
  const train = base.train_dataloader as { args: Record<string, unknown> };
  const value: Record<string, unknown> = {
    ...base,
    train_dataloader: {
      type: 'web_dataloader',
      args: {
        ...Object.fromEntries(Object.entries(train.args).filter(([k]) => !['root', 'shuffle'].includes(k))),
        shards: join(shards, 'train', 'fashion-mnist-train-{000000..000011}.tar'),
        shuffle: 10000,
      },
    },
    valid_dataloader: (base.valid_dataloader as { type: string; args: Record<string, unknown> }[]).map((d) => ({
      ...d, args: { ...d.args, root: data, shuffle: false },
    })),
    evaluator: [],
    save_dir: work,
  };
  const configFile = join(work, 'demo_groco.yaml');
  writeFileSync(configFile, '# written by groco demo from configs/fashion_mnist/groco.yaml\n' + stringify(value));
  const overrides = [
    ...(o.epochs !== null ? [{ path: ['trainer', 'epochs'], value: o.epochs, origin: '--epochs' }] : []),
    ...(o.maxSteps !== null ? [{ path: ['trainer', 'max_steps'], value: o.maxSteps, origin: '--max-steps' }] : []),
    ...(o.seed !== null ? [{ path: ['seed'], value: o.seed, origin: '--seed' }] : []),
    ...(o.device !== null ? [{ path: ['runtime', 'device'], value: o.device, origin: '--device' }] : []),
    ...(o.threads !== null ? [{ path: ['runtime', 'threads'], value: o.threads, origin: '--threads' }] : []),
  ];
  const config = loadConfig('pretrain', { file: configFile, overrides, name: 'demo' });

  // the same encoder before pretraining: the seed fixes its initial weights
  const runtime = setupRuntime(config, config.trainer.mixed_precision);
  const untrainedEncoder = buildEncoder(config, runtime);
  let untrained: number;
  try {
    untrained = await knn20(untrainedEncoder, config, runtime, 'untrained');
  } finally {
    untrainedEncoder.dispose();
  }
  log(`demo: k-NN@20 of the untrained encoder: ${untrained.toFixed(2)} %`);

  const outcome = await runPretrain({
    config: configFile, resume: null, name: 'demo', epochs: o.epochs, initVal: null, seed: o.seed,
    saveDir: work, maxSteps: o.maxSteps, set: [], distributed: false, worldSize: null, distUrl: 'env://',
    distTimeout: null, device: o.device, threads: o.threads,
  });
  if (outcome.runDir === null) throw new Error('demo: pretraining wrote no run folder');

  const checkpoint = await loadTrainingCheckpoint(join(outcome.runDir, 'latest_model.pth'));
  const trainedEncoder = buildEncoder(config, runtime);
  let final: number;
  try {
    trainedEncoder.loadStateDict(checkpoint.encoder, { context: checkpoint.path });
    final = await knn20(trainedEncoder, config, runtime, 'pretrained');
  } finally {
    trainedEncoder.dispose();
    disposeCheckpoint(checkpoint);
  }

  const seconds = (Date.now() - started) / 1000;
  const result: DemoResult = {
    'knn@20_untrained': untrained, 'knn@20_final': final, seconds,
    pretrain_seconds: outcome.result.seconds, steps: outcome.result.steps, run_dir: outcome.runDir,
  };
  const rows = [
    ['encoder', 'k-NN@20 (10,000 test images, 60,000 in the bank)'],
    ['untrained', `${untrained.toFixed(2)} %`],
    [`GroCo, ${outcome.result.steps} steps`, `${final.toFixed(2)} %`],
    ['pretraining time', formatDuration(outcome.result.seconds)],
    ['total time', formatDuration(seconds)],
  ];
  const width = Math.max(...rows.map((r) => r[0]!.length));
  process.stdout.write('\nGroCo on Fashion-MNIST (' + config.encoder.args.arch + ', small-image stem, width ' +
    `${config.encoder.args.width}, ${config.train_dataloader.args.image_size} px)\n\n`);
  for (const [a, b] of rows) process.stdout.write(`  ${a!.padEnd(width)}  ${b}\n`);
  process.stdout.write(`\nRun folder: ${outcome.runDir}\n` +
    'Longer runs: groco pretrain -c configs/fashion_mnist/groco.yaml --epochs 50, then\n' +
    `  groco eval -c configs/fashion_mnist/eval_knn.yaml -r <run folder>/latest_model.pth;\n` +
    '  ImageNet: groco preprocess imagenet --input <folder> --output <shards>, edit the paths in\n' +
    '  configs/2views_100ep.yaml, then groco pretrain -c configs/2views_100ep.yaml (see README).\n');
  return result;
}
