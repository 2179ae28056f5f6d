// What each `groco` command accepts, and the help texts made from it.

import { helpText } from './flags.js';
import type { CommandSpec, FlagSpec, FlagValue } from './flags.js';
import { UsageError } from './usage_error.js';

export const COMMANDS = [
  'pretrain', 'eval', 'embed', 'demo', 'inspect', 'export-torchvision', 'preprocess', 'launch',
] as const;
export type CommandName = (typeof COMMANDS)[number];

export const PREPROCESS_DATASETS = ['imagenet', 'folder', 'fashion-mnist'] as const;
export type PreprocessDataset = (typeof PREPROCESS_DATASETS)[number];

// flag builders

const STRING: FlagValue = { kind: 'string' };
const atLeast = (min: number): FlagValue => ({ kind: 'int', min });

function valued(name: string, value: FlagValue, valueName: string, help: string,
  extra: Partial<FlagSpec> = {}): FlagSpec {
  return { name, value, valueName, help, ...extra };
}

function toggle(name: string, help: string): FlagSpec {
  return { name, help };
}

const ITS_DEFAULT = "(default: the config's)";
const DEBIAN_FASHION_MNIST = 'where the dataset-fashion-mnist package installs them';

const flag = {
  config: valued('config', STRING, 'FILE', 'config file (YAML)', { short: 'c' }),
  resume: valued('resume', STRING, 'FILE', 'checkpoint (.pth)', { short: 'r' }),
  name: valued('name', STRING, 'NAME',
    "run name, the folder under <save_dir>/models/ (default: the config file's name)"),
  device: valued('device', STRING, 'DEVICE',
    "cpu, cuda or cuda:N (default: the config's runtime.device, else cpu)"),
  gpu: valued('gpu', atLeast(0), 'N', 'the same as --device cuda:N'),
  threads: valued('threads', atLeast(1), 'N',
    "intra-op threads (default: the config's runtime.threads, else every core)"),
  seed: valued('seed', atLeast(0), 'S', "random seed (sets the config's seed)"),
  saveDir: valued('save-dir', STRING, 'DIR', 'where runs are written (sets save_dir)'),
  set: valued('set', STRING, 'KEY=VALUE', 'set any config key by its dotted path; the value is '
    + 'read as YAML (e.g. --set trainer.log_step=10 --set evaluator.0.args.k=[1,20])',
  { repeatable: true }),
  json: toggle('json', 'print the final results as one JSON object on the last line of stdout'),
  epochs: valued('epochs', atLeast(1), 'E', 'pretraining epochs (sets trainer.epochs)'),
  maxSteps: valued('max-steps', atLeast(1), 'N',
    'stop with a checkpoint after N optimisation steps (sets trainer.max_steps)'),
  distributed: toggle('distributed', 'run as one rank of a process group (see groco launch)'),
  worldSize: valued('world-size', atLeast(1), 'N',
    'number of processes (default: from the environment)'),
  distUrl: valued('dist-url', STRING, 'URL', 'rendezvous: env:// (default) or tcp://HOST:PORT'),
  distTimeout: valued('dist-timeout', atLeast(1), 'SECONDS', 'how long a rank waits for the '
    + 'others before failing with an error naming the missing rank'),
};

const distributedFlags = [flag.distributed, flag.worldSize, flag.distUrl, flag.distTimeout];

// the commands

export const COMMAND_SPECS: Record<Exclude<CommandName, 'preprocess'>, CommandSpec> = {
  pretrain: {
    name: 'pretrain',
    summary: 'pretrain an encoder (GroCo or a SimCLR baseline) as a config describes',
    usage: 'groco pretrain -c <config.yaml> [-r <checkpoint>] [options]',
    description: 'Pretrain an encoder as the config describes, writing the run to '
      + '<save_dir>/models/<name>/<timestamp>/ (config.yaml, latest_model.pth, metrics.jsonl). '
      + 'With -r the run continues from a checkpoint, with the config.yaml beside it; a config '
      + 'given with -c then replaces its top-level sections.',
    flags: [
      flag.config, flag.resume, flag.name, flag.epochs,
      valued('init-val', { kind: 'choice', choices: ['0', '1', 'false', 'true'] }, '0|1',
        'evaluate once before training (sets trainer.init_val)'),
      flag.device, flag.gpu, flag.threads, flag.seed, flag.saveDir, flag.maxSteps, flag.set,
      ...distributedFlags,
    ],
    examples: [
      'groco pretrain -c configs/fashion_mnist/groco.yaml',
      'groco pretrain -c configs/2views_100ep.yaml --epochs 10 --device cuda:0',
      'groco pretrain -r output/models/groco/0101_120000/latest_model.pth',
    ],
  },
  eval: {
    name: 'eval',
    summary: "k-NN and/or linear-probe evaluation of a checkpoint's encoder",
    usage: 'groco eval -c <eval config.yaml> -r <checkpoint> [options]',
    description: 'Evaluate the encoder of a checkpoint (ours or the published ones) with the '
      + 'evaluators of the config. The config is laid over the one the checkpoint was trained '
      + 'with, so it needs only the sections it changes.',
    flags: [
      { ...flag.config, required: true }, { ...flag.resume, required: true }, flag.name,
      flag.device, flag.gpu, flag.threads, flag.seed, flag.saveDir, flag.json, flag.set,
      ...distributedFlags,
    ],
    examples: ['groco eval -c configs/eval_knn.yaml -r pretrained/2views_100ep/latest_model.pth'],
  },
  embed: {
    name: 'embed',
    summary: 'encoder features of a dataset as a float32 .npy file, labels beside it',
    usage: 'groco embed -r <checkpoint> --data <shards or folder> --out <file.npy> [options]',
    description: "Write the encoder features of every sample of a dataset, in the data's order "
      + '(for a folder: classes sorted, then files sorted), with the `val` view, to <file.npy> '
      + '(float32, N x D) and the labels to <file>.labels.npy (int64).',
    flags: [
      { ...flag.resume, required: true },
      valued('data', STRING, 'PATH', 'shards (a brace pattern such as '
        + 'train-{000000..000029}.tar) or a class-per-subfolder folder', { required: true }),
      valued('out', STRING, 'FILE', 'the .npy file to write', { required: true }),
      { ...flag.config, help: 'config for the encoder and the view when the checkpoint has none' },
      valued('image-size', atLeast(1), 'N', `crop size of the view ${ITS_DEFAULT}`),
      valued('resize', atLeast(1), 'N', `size before the centre crop ${ITS_DEFAULT}`),
      valued('batch-size', atLeast(1), 'N', 'images per forward pass'),
      valued('num-workers', atLeast(0), 'N', 'data loading workers'),
      flag.device, flag.gpu, flag.threads,
    ],
    examples: ['groco embed -r run/latest_model.pth --data test-{000000..000019}.tar --out t.npy'],
  },
  demo: {
    name: 'demo',
    summary: 'pretrain GroCo on Fashion-MNIST (about 11 minutes, 15 in all), report k-NN accuracy',
    usage: 'groco demo [options]',
    description: 'Convert Fashion-MNIST to shards (once), pretrain GroCo with a small ResNet, '
      + 'then report weighted k-NN accuracy (k = 20) on the 10,000 test images against the '
      + '60,000 training images, for the untrained and the pretrained encoder, and the time.',
    flags: [
      flag.json,
      valued('data', STRING, 'DIR',
        `folder of the Fashion-MNIST IDX files (default: ${DEBIAN_FASHION_MNIST})`),
      valued('work-dir', STRING, 'DIR', 'where shards and the run are written'),
      flag.epochs, flag.maxSteps, flag.seed, flag.device, flag.gpu, flag.threads,
    ],
    examples: ['groco demo', 'groco demo --max-steps 20 --json'],
  },
  inspect: {
    name: 'inspect',
    summary: 'what a checkpoint holds: keys, shapes, dtypes, epoch, step, config',
    usage: 'groco inspect <file.pth> [--json]',
    flags: [{ ...flag.json, help: 'print the description as JSON' }],
    positionals: [
      { name: 'file.pth', help: 'checkpoint written by groco or by torch.save', required: true },
    ],
  },
  'export-torchvision': {
    name: 'export-torchvision',
    summary: 'the encoder of a checkpoint as a plain torchvision state dict',
    usage: 'groco export-torchvision <checkpoint> <out.pth>',
    description: "Write the encoder of a checkpoint as a state dict that torchvision's ResNet "
      + 'loads with load_state_dict (the classifier weights are absent: load with strict=False).',
    flags: [],
    positionals: [
      { name: 'checkpoint', help: 'checkpoint to read', required: true },
      { name: 'out.pth', help: 'file to write', required: true },
    ],
  },
  launch: {
    name: 'launch',
    summary: 'start a pretrain or eval command as several processes, as torchrun does',
    usage: 'groco launch --nproc-per-node N [options] <pretrain|eval> [its options]',
    description: 'Start N processes on this machine, each running the given groco command with '
      + "--distributed and torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, "
      + 'MASTER_PORT) set. Across machines, run it once per machine with its --node-rank.',
    flags: [
      valued('nproc-per-node', atLeast(1), 'N', 'processes on this machine', { required: true }),
      valued('nnodes', atLeast(1), 'M', 'machines (default 1)'),
      valued('node-rank', atLeast(0), 'R', "this machine's index, 0 to M-1 (default 0)"),
      valued('master-addr', STRING, 'A', 'address of node 0 (default 127.0.0.1)'),
      valued('master-port', { kind: 'int', min: 1, max: 65535 }, 'P', 'its port (default 29500)'),
    ],
    restAfterPositional: true,
    examples: ['groco launch --nproc-per-node 2 pretrain -c configs/fashion_mnist/groco.yaml'],
  },
};

const shardsOutput = valued('output', STRING, 'DIR', 'where to write the shards',
  { required: true });

const preprocessCommon: FlagSpec[] = [
  valued('shard-size', atLeast(1), 'N', 'samples per shard (default: imagenet 2000 for training '
    + 'and 500 for validation, folder 2000, fashion-mnist 5000)'),
  valued('seed', atLeast(0), 'S', 'seed of the shuffle (default 0)'),
  toggle('strict', 'stop at the first unreadable file instead of skipping it with a warning'),
];

export const PREPROCESS_SPECS: Record<PreprocessDataset, CommandSpec> = {
  imagenet: {
    name: 'preprocess imagenet',
    summary: 'the ImageNet folder to shuffled shards',
    usage: 'groco preprocess imagenet --input <folder> --output <folder> [options]',
    description: 'Read <input>/train/<wnid>/*.JPEG and <input>/val/<wnid>/* and write '
      + '<output>/train/imagenet-train-NNNNNN.tar and <output>/val/imagenet-val-NNNNNN.tar, '
      + 'shuffled, with metadata.json. Interrupted, it resumes where it stopped.',
    flags: [
      valued('input', STRING, 'DIR', 'the ImageNet folder', { required: true }),
      shardsOutput, ...preprocessCommon,
    ],
  },
  folder: {
    name: 'preprocess folder',
    summary: 'any class-per-subfolder tree to shards',
    usage: 'groco preprocess folder --input <folder> --output <folder> [options]',
    flags: [
      valued('input', STRING, 'DIR', 'a folder with one subfolder of images per class',
        { required: true }),
      shardsOutput, ...preprocessCommon,
    ],
  },
  'fashion-mnist': {
    name: 'preprocess fashion-mnist',
    summary: 'the Fashion-MNIST IDX files to shards of PNG images and labels',
    usage: 'groco preprocess fashion-mnist --output <folder> [--input <folder>] [options]',
    flags: [
      valued('input', STRING, 'DIR', `folder of the IDX files (default: ${DEBIAN_FASHION_MNIST})`),
      shardsOutput, ...preprocessCommon,
    ],
  },
};

// help texts

export function generalHelp(): string {
  const rows = COMMANDS.map((name) => [name, name === 'preprocess'
    ? 'datasets to shards: imagenet, folder or fashion-mnist'
    : COMMAND_SPECS[name].summary]);
  const width = Math.max(...rows.map(([name]) => name.length)) + 2;
  return [
    'Usage: groco <command> [options]',
    '',
    'Self-supervised representation learning by sorting (GroCo) on libtorch.',
    '',
    'Commands:',
    ...rows.map(([name, summary]) => `  ${name.padEnd(width)}${summary}`),
    '',
    "Run 'groco <command> --help' for a command's options. In option names '_' and '-' are the",
    'same (--init_val, --init-val). Exit codes: 0 success, 1 failure, 2 usage error.',
    '',
  ].join('\n');
}

export function preprocessHelp(): string {
  const rows = PREPROCESS_DATASETS.map((d) => `  ${d.padEnd(15)}${PREPROCESS_SPECS[d].summary}`);
  return ['Usage: groco preprocess <imagenet|folder|fashion-mnist> [options]', '', 'Datasets:',
    ...rows, '', "Run 'groco preprocess <dataset> --help' for its options.", ''].join('\n');
}

export function unknownCommand(name: string): UsageError {
  const guess = COMMANDS.find((c) => c.startsWith(name.slice(0, 3)));
  const hint = guess === undefined ? '' : ` (did you mean ${guess}?)`;
  return new UsageError(
    `unknown command ${JSON.stringify(name)}${hint}; commands: ${COMMANDS.join(', ')}`, null, name);
}

export function unknownDataset(name: string | undefined): UsageError {
  const got = name === undefined ? 'nothing' : JSON.stringify(name);
  return new UsageError(`expected a dataset, one of ${PREPROCESS_DATASETS.join(', ')}, got ${got}`,
    'preprocess', name ?? null);
}

/** The help text of a command (`pretrain`, `preprocess imagenet`), or the general one. */
export function commandHelp(topic: string | null): string {
  if (topic === null) return generalHelp();
  if (topic === 'preprocess') return preprocessHelp();
  const preprocess = /^preprocess (.+)$/.exec(topic);
  if (preprocess) {
    const spec = PREPROCESS_SPECS[preprocess[1] as PreprocessDataset];
    if (spec === undefined) throw unknownDataset(preprocess[1]);
    return helpText(spec);
  }
  const spec = COMMAND_SPECS[topic as keyof typeof COMMAND_SPECS];
  if (spec === undefined) throw unknownCommand(topic);
  return helpText(spec);
}
