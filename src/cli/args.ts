// The `groco` command line turned into typed, checked options for each subcommand (their
// flags and help texts are in commands.ts). Anything that cannot run is a UsageError.

import { ConfigError, parseOverride } from '../config/index.js';
import type { ConfigOverride } from '../config/index.js';
import {
  COMMAND_SPECS, PREPROCESS_SPECS, generalHelp, commandHelp, preprocessHelp, unknownCommand,
  unknownDataset,
} from './commands.js';
import type { CommandName, PreprocessDataset } from './commands.js';
import { helpText, isHelpRequest, parseFlags } from './flags.js';
import type { ParsedFlags, ParsedValue } from './flags.js';
import { UsageError } from './usage_error.js';

export { UsageError } from './usage_error.js';
export { COMMANDS, PREPROCESS_DATASETS, commandHelp, generalHelp } from './commands.js';
export type { CommandName, PreprocessDataset } from './commands.js';

export interface DistributedOptions {
  /** Join a process group; rank and world come from torchrun's or SLURM's variables. */
  distributed: boolean;
  /** The reference's --world-size; null: from the environment. */
  worldSize: number | null;
  /** The reference's --dist-url (`env://`, or `tcp://host:port`). */
  distUrl: string;
  /** Seconds a rank waits for the others before failing; null: the default. */
  distTimeout: number | null;
}

export interface RuntimeOptions {
  /** `cpu`, `cuda` or `cuda:N` (from --device, or --gpu N); null: the config's. */
  device: string | null;
  threads: number | null;
}

export interface PretrainOptions extends DistributedOptions, RuntimeOptions {
  config: string | null;
  resume: string | null;
  name: string | null;
  epochs: number | null;
  initVal: boolean | null;
  seed: number | null;
  saveDir: string | null;
  maxSteps: number | null;
  /** --set key=value, in order. */
  set: ConfigOverride[];
}

export interface EvalOptions extends DistributedOptions, RuntimeOptions {
  config: string;
  resume: string;
  name: string | null;
  seed: number | null;
  saveDir: string | null;
  json: boolean;
  set: ConfigOverride[];
}

export interface EmbedOptions extends RuntimeOptions {
  resume: string;
  data: string;
  out: string;
  /** A config for the encoder and the view when the checkpoint carries none. */
  config: string | null;
  imageSize: number | null;
  resize: number | null;
  batchSize: number | null;
  numWorkers: number | null;
}

export interface DemoOptions extends RuntimeOptions {
  json: boolean;
  /** Folder of the Fashion-MNIST IDX files; null: where Debian's package puts them. */
  data: string | null;
  workDir: string | null;
  epochs: number | null;
  maxSteps: number | null;
  seed: number | null;
}

export interface InspectOptions {
  file: string;
  json: boolean;
}

export interface ExportTorchvisionOptions {
  checkpoint: string;
  out: string;
}

export interface PreprocessOptions {
  dataset: PreprocessDataset;
  /** null only for fashion-mnist: Debian's location. */
  input: string | null;
  output: string;
  /** Samples per shard; null: each dataset's default. */
  shardSize: number | null;
  seed: number;
  strict: boolean;
}

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** The command each process runs, as given, and as parsed. */
  argv: string[];
  command: Extract<ParsedArgs, { command: 'pretrain' | 'eval' }>;
}

export type ParsedArgs =
  | { command: 'help'; topic: string | null; text: string }
  | { command: 'version' }
  | { command: 'pretrain'; options: PretrainOptions }
  | { command: 'eval'; options: EvalOptions }
  | { command: 'embed'; options: EmbedOptions }
  | { command: 'demo'; options: DemoOptions }
  | { command: 'inspect'; options: InspectOptions }
  | { command: 'export-torchvision'; options: ExportTorchvisionOptions }
  | { command: 'preprocess'; options: PreprocessOptions }
  | { command: 'launch'; options: LaunchOptions };

// typed values

function str(parsed: ParsedFlags, name: string): string | null {
  const value = parsed.values.get(name);
  return value === undefined ? null : (value as string);
}

function int(parsed: ParsedFlags, name: string): number | null {
  const value = parsed.values.get(name);
  return value === undefined ? null : (value as number);
}

function bool(parsed: ParsedFlags, name: string): boolean {
  return parsed.values.get(name) === true;
}

function runtimeOptions(parsed: ParsedFlags, command: string): RuntimeOptions {
  const device = str(parsed, 'device');
  const gpu = int(parsed, 'gpu');
  if (device !== null && gpu !== null) {
    throw new UsageError('--device and --gpu both name a device; give one', command, '--gpu');
  }
  if (device !== null && !/^(cpu|cuda(:\d+)?)$/.test(device)) {
    throw new UsageError(`--device: expected cpu, cuda or cuda:N, got ${JSON.stringify(device)}`,
      command, '--device');
  }
  return { device: gpu !== null ? `cuda:${gpu}` : device, threads: int(parsed, 'threads') };
}

function distributedOptions(parsed: ParsedFlags, command: string): DistributedOptions {
  const distUrl = str(parsed, 'dist-url') ?? 'env://';
  if (!/^(env:\/\/|tcp:\/\/[^:/]+:\d+)$/.test(distUrl)) {
    throw new UsageError(
      `--dist-url: expected env:// or tcp://HOST:PORT, got ${JSON.stringify(distUrl)}`,
      command, '--dist-url');
  }
  return {
    distributed: bool(parsed, 'distributed'),
    worldSize: int(parsed, 'world-size'),
    distUrl,
    distTimeout: int(parsed, 'dist-timeout'),
  };
}

function overrides(parsed: ParsedFlags, command: string): ConfigOverride[] {
  const assignments = (parsed.values.get('set') as ParsedValue[] | undefined) ?? [];
  return assignments.map((assignment) => {
    try {
      return parseOverride(String(assignment), `--set ${String(assignment)}`);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new UsageError(`--set: ${error.problems[0].message}`, command, '--set');
    }
  });
}

type SimpleCommand = Exclude<CommandName, 'preprocess' | 'launch'>;

function pretrainOptions(parsed: ParsedFlags): PretrainOptions {
  const command = 'pretrain';
  const config = str(parsed, 'config');
  const resume = str(parsed, 'resume');
  if (config === null && resume === null) {
    throw new UsageError(
      'expected a config (-c FILE) or a checkpoint to resume (-r FILE), got neither',
      command, '--config');
  }
  const initVal = str(parsed, 'init-val');
  return {
    config,
    resume,
    name: str(parsed, 'name'),
    epochs: int(parsed, 'epochs'),
    initVal: initVal === null ? null : initVal === '1' || initVal === 'true',
    seed: int(parsed, 'seed'),
    saveDir: str(parsed, 'save-dir'),
    maxSteps: int(parsed, 'max-steps'),
    set: overrides(parsed, command),
    ...runtimeOptions(parsed, command),
    ...distributedOptions(parsed, command),
  };
}

function embedOptions(parsed: ParsedFlags): EmbedOptions {
  const out = str(parsed, 'out') as string;
  if (!out.endsWith('.npy')) {
    throw new UsageError(`--out: expected a file name ending in .npy, got ${JSON.stringify(out)}`,
      'embed', '--out');
  }
  return {
    resume: str(parsed, 'resume') as string,
    data: str(parsed, 'data') as string,
    out,
    config: str(parsed, 'config'),
    imageSize: int(parsed, 'image-size'),
    resize: int(parsed, 'resize'),
    batchSize: int(parsed, 'batch-size'),
    numWorkers: int(parsed, 'num-workers'),
    ...runtimeOptions(parsed, 'embed'),
  };
}

function build(command: SimpleCommand, parsed: ParsedFlags): ParsedArgs {
  switch (command) {
    case 'pretrain':
      return { command, options: pretrainOptions(parsed) };
    case 'eval':
      return {
        command,
        options: {
          config: str(parsed, 'config') as string,
          resume: str(parsed, 'resume') as string,
          name: str(parsed, 'name'),
          seed: int(parsed, 'seed'),
          saveDir: str(parsed, 'save-dir'),
          json: bool(parsed, 'json'),
          set: overrides(parsed, command),
          ...runtimeOptions(parsed, command),
          ...distributedOptions(parsed, command),
        },
      };
    case 'embed':
      return { command, options: embedOptions(parsed) };
    case 'demo':
      return {
        command,
        options: {
          json: bool(parsed, 'json'),
          data: str(parsed, 'data'),
          workDir: str(parsed, 'work-dir'),
          epochs: int(parsed, 'epochs'),
          maxSteps: int(parsed, 'max-steps'),
          seed: int(parsed, 'seed'),
          ...runtimeOptions(parsed, command),
        },
      };
    case 'inspect':
      return { command, options: { file: parsed.positionals[0], json: bool(parsed, 'json') } };
    case 'export-torchvision': {
      const [checkpoint, out] = parsed.positionals;
      return { command, options: { checkpoint, out } };
    }
  }
}

function parsePreprocess(argv: readonly string[]): ParsedArgs {
  const [dataset, ...rest] = argv;
  if (dataset === '-h' || dataset === '--help') {
    return { command: 'help', topic: 'preprocess', text: preprocessHelp() };
  }
  const spec = dataset === undefined ? undefined : PREPROCESS_SPECS[dataset as PreprocessDataset];
  if (spec === undefined) throw unknownDataset(dataset);
  if (isHelpRequest(spec, rest)) return { command: 'help', topic: spec.name, text: helpText(spec) };

  const parsed = parseFlags(spec, rest);
  return {
    command: 'preprocess',
    options: {
      dataset: dataset as PreprocessDataset,
      input: str(parsed, 'input'),
      output: str(parsed, 'output') as string,
      shardSize: int(parsed, 'shard-size'),
      seed: int(parsed, 'seed') ?? 0,
      strict: bool(parsed, 'strict'),
    },
  };
}

function parseLaunch(parsed: ParsedFlags): ParsedArgs {
  const nnodes = int(parsed, 'nnodes') ?? 1;
  const nodeRank = int(parsed, 'node-rank') ?? 0;
  if (nodeRank >= nnodes) {
    throw new UsageError(`--node-rank: expected below --nnodes (${nnodes}), got ${nodeRank}`,
      'launch', '--node-rank');
  }

  const argv = parsed.rest;
  if (argv.length === 0) {
    throw new UsageError(
      'expected the command to run (pretrain or eval) after the options, got nothing',
      'launch', null);
  }
  if (argv[0] !== 'pretrain' && argv[0] !== 'eval') {
    throw new UsageError(
      `expected pretrain or eval as the command to run, got ${JSON.stringify(argv[0])}`,
      'launch', argv[0]);
  }
  const command = parseArgs(argv);
  if (command.command === 'help') return command;
  if (command.command !== 'pretrain' && command.command !== 'eval') {
    throw new UsageError(`expected a pretrain or eval command line, got ${argv.join(' ')}`,
      'launch', argv[0]);
  }

  return {
    command: 'launch',
    options: {
      nprocPerNode: int(parsed, 'nproc-per-node') as number,
      nnodes,
      nodeRank,
      masterAddr: str(parsed, 'master-addr') ?? '127.0.0.1',
      masterPort: int(parsed, 'master-port') ?? 29500,
      argv: [...argv],
      command,
    },
  };
}

export const VERSION_FLAGS: readonly string[] = ['-V', '--version'];

/**
 * Parses the arguments after `groco` (process.argv.slice(2)). Throws UsageError for anything
 * that cannot run; `--help` among a command's options returns its help text instead.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help') {
    return { command: 'help', topic: null, text: generalHelp() };
  }
  if (VERSION_FLAGS.includes(first)) return { command: 'version' };
  if (first === 'help') {
    const topic = rest.length === 0 ? null : rest.join(' ');
    return { command: 'help', topic, text: commandHelp(topic) };
  }
  if (first.startsWith('-')) {
    throw new UsageError(`expected a command before options, got ${JSON.stringify(first)}`,
      null, first);
  }
  if (first === 'preprocess') return parsePreprocess(rest);

  const spec = COMMAND_SPECS[first as keyof typeof COMMAND_SPECS];
  if (spec === undefined) throw unknownCommand(first);
  if (isHelpRequest(spec, rest)) return { command: 'help', topic: spec.name, text: helpText(spec) };
  const parsed = parseFlags(spec, rest);
  if (first === 'launch') return parseLaunch(parsed);
  return build(first as SimpleCommand, parsed);
}

/**
 * The config overrides a pretrain or eval command line asks for: --set first, in order, then
 * the named flags (the reference's --epochs and --init_val, and ours), which win.
 */
export function configOverrides(options: PretrainOptions | EvalOptions): ConfigOverride[] {
  const out: ConfigOverride[] = [...options.set];
  const add = (path: string[], value: unknown, origin: string) => {
    if (value !== null && value !== undefined) out.push({ path, value, origin });
  };
  if ('epochs' in options) {
    add(['trainer', 'epochs'], options.epochs, '--epochs');
    add(['trainer', 'init_val'], options.initVal, '--init_val');
    add(['trainer', 'max_steps'], options.maxSteps, '--max-steps');
  }
  add(['seed'], options.seed, '--seed');
  add(['save_dir'], options.saveDir, '--save-dir');
  add(['runtime', 'device'], options.device, '--device');
  add(['runtime', 'threads'], options.threads, '--threads');
  return out;
}
