import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS, UsageError, commandHelp, configOverrides, parseArgs } from '../src/cli/args.js';
import type { ParsedArgs } from '../src/cli/args.js';
import { loadConfig } from '../src/config/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

type OptionsOf = {
  [P in Extract<ParsedArgs, { options: unknown }> as P['command']]: P['options'];
};

/** Parses a command line written as one string (no quoting needed in these tests). */
function options<C extends keyof OptionsOf>(line: string, command: C): OptionsOf[C] {
  const parsed = parseArgs(line.split(' '));
  assert.equal(parsed.command, command, line);
  return (parsed as unknown as { options: OptionsOf[C] }).options;
}

function usageError(argv: string[]): UsageError {
  try {
    parseArgs(argv);
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail(`expected ${argv.join(' ')} to be refused`);
}

test('pretrain: the reference\'s flags and ours become typed options', () => {
  const o = options('pretrain -c a.yaml -r run/latest_model.pth --name n1 --epochs 10 '
    + '--init_val 1 --device=cuda:1 --seed 3 --save-dir out --max-steps 20 --threads 2 '
    + '--set trainer.log_step=5 --set seed=4 --distributed --world-size 4 '
    + '--dist-url tcp://10.0.0.1:23456 --dist-timeout 60', 'pretrain');
  assert.deepEqual({ ...o, set: o.set.map((s) => s.origin) }, {
    config: 'a.yaml', resume: 'run/latest_model.pth', name: 'n1', epochs: 10, initVal: true,
    device: 'cuda:1', seed: 3, saveDir: 'out', maxSteps: 20, threads: 2,
    set: ['--set trainer.log_step=5', '--set seed=4'],
    distributed: true, worldSize: 4, distUrl: 'tcp://10.0.0.1:23456', distTimeout: 60,
  });

  const bare = options('pretrain -r x.pth', 'pretrain');
  assert.equal(bare.config, null);
  assert.equal(bare.initVal, null);
  assert.equal(bare.distributed, false);
  assert.equal(bare.distUrl, 'env://');
  assert.equal(options('pretrain -c a --gpu 2', 'pretrain').device, 'cuda:2');
  assert.equal(options('pretrain -c a --init-val false', 'pretrain').initVal, false);
});

test('the other commands parse into their options', () => {
  assert.deepEqual(options('eval -c e.yaml -r m.pth --json', 'eval'), {
    config: 'e.yaml', resume: 'm.pth', name: null, seed: null, saveDir: null, json: true, set: [],
    device: null, threads: null,
    distributed: false, worldSize: null, distUrl: 'env://', distTimeout: null,
  });
  const embed = 'embed -r m.pth --data d/x-{0..3}.tar --out f.npy --image_size 28 --resize 28 '
    + '--batch-size 512';
  assert.deepEqual(options(embed, 'embed'), {
    resume: 'm.pth', data: 'd/x-{0..3}.tar', out: 'f.npy', config: null, imageSize: 28,
    resize: 28, batchSize: 512, numWorkers: null, device: null, threads: null,
  });
  assert.deepEqual(options('demo --json --max-steps 5', 'demo'), {
    json: true, data: null, workDir: null, epochs: null, maxSteps: 5, seed: null, device: null,
    threads: null,
  });
  assert.deepEqual(options('inspect m.pth --json', 'inspect'), { file: 'm.pth', json: true });
  assert.deepEqual(options('export-torchvision m.pth tv.pth', 'export-torchvision'),
    { checkpoint: 'm.pth', out: 'tv.pth' });
  assert.deepEqual(options('preprocess imagenet --input in --output out', 'preprocess'), {
    dataset: 'imagenet', input: 'in', output: 'out', shardSize: null, seed: 0, strict: false,
  });
  const fm = options('preprocess fashion-mnist --output o --strict --shard-size 1000',
    'preprocess');
  assert.equal(fm.input, null);
  assert.equal(fm.strict, true);
  assert.equal(fm.shardSize, 1000);
  assert.equal(options('preprocess folder --input i --output o', 'preprocess').dataset, 'folder');
  assert.deepEqual(parseArgs(['--version']), { command: 'version' });
});

test('launch takes torchrun\'s flags and hands the rest to a pretrain or eval command', () => {
  const o = options('launch --nproc_per_node 2 --nnodes 2 --node_rank 1 --master_addr 10.0.0.1 '
    + '--master_port 29600 pretrain -c a.yaml --epochs 3', 'launch');
  assert.equal(o.nprocPerNode, 2);
  assert.equal(o.nnodes, 2);
  assert.equal(o.nodeRank, 1);
  assert.equal(o.masterAddr, '10.0.0.1');
  assert.equal(o.masterPort, 29600);
  assert.deepEqual(o.argv, ['pretrain', '-c', 'a.yaml', '--epochs', '3']);
  assert.ok(o.command.command === 'pretrain' && o.command.options.epochs === 3);

  const dashed = options('launch --nproc-per-node 1 -- eval -c e -r m', 'launch');
  assert.deepEqual(dashed.argv, ['eval', '-c', 'e', '-r', 'm']);
  assert.equal(dashed.masterAddr, '127.0.0.1');
  assert.equal(dashed.masterPort, 29500);

  // --help after the inner command is that command's help
  const help = parseArgs(['launch', '--nproc-per-node', '2', 'pretrain', '--help']);
  assert.ok(help.command === 'help' && help.topic === 'pretrain');
});

test('--help gives each command\'s usage and every one of its flags', () => {
  const general = parseArgs(['--help']);
  assert.ok(general.command === 'help' && general.topic === null);
  for (const command of COMMANDS) assert.match(general.text, new RegExp(`^ {2}${command} `, 'm'));
  assert.deepEqual(parseArgs([]), general);

  const expectations: [string, string, string[]][] = [
    ['pretrain -h', 'groco pretrain', ['--config', '--resume', '--name', '--epochs', '--init-val',
      '--device', '--gpu', '--threads', '--seed', '--save-dir', '--max-steps', '--set',
      '--distributed', '--world-size', '--dist-url', '--dist-timeout', '--help']],
    ['eval --epochs x --help', 'groco eval', ['--config', '--resume', '--json', '--set']],
    ['embed --help', 'groco embed', ['--data', '--out', '--image-size', '--resize']],
    ['demo --help', 'groco demo', ['--json', '--data', '--work-dir', '--max-steps']],
    ['inspect --help', 'groco inspect', ['<file.pth>', '--json']],
    ['export-torchvision --help', 'groco export-torchvision', ['<checkpoint>', '<out.pth>']],
    ['preprocess --help', 'groco preprocess', ['imagenet', 'folder', 'fashion-mnist']],
    ['preprocess imagenet --help', 'groco preprocess imagenet',
      ['--input', '--output', '--strict']],
    ['preprocess fashion-mnist -h', 'groco preprocess fashion-mnist', ['--input', '--output']],
    ['launch --help', 'groco launch', ['--nproc-per-node', '--nnodes', '--node-rank',
      '--master-addr', '--master-port']],
    ['help pretrain', 'groco pretrain', ['--epochs']],
  ];
  for (const [line, usage, flags] of expectations) {
    const parsed = parseArgs(line.split(' '));
    assert.equal(parsed.command, 'help', line);
    const text = parsed.command === 'help' ? parsed.text : '';
    assert.ok(text.startsWith(`Usage: ${usage}`), text);
    for (const flag of flags) assert.ok(text.includes(flag), `${line}: ${flag}`);
    assert.ok(text.split('\n').every((l) => l.length <= 100), `${line}: a line over 100`);
  }
  const pretrainHelp = parseArgs(['pretrain', '--help']);
  assert.ok(pretrainHelp.command === 'help' && pretrainHelp.text === commandHelp('pretrain'));
});

test('usage errors name the command, the flag and what was expected', () => {
  // each case: the command line, the first line of the message, and the flag named
  const cases: [string, string, string | null][] = [
    ['pretrian', 'groco: unknown command "pretrian" (did you mean pretrain?)', 'pretrian'],
    ['--epochs 3', 'groco: expected a command before options, got "--epochs"', '--epochs'],
    ['pretrain -c a --epoch 3',
      'groco pretrain: unknown option --epoch (did you mean --epochs?)', '--epoch'],
    ['pretrain -c a -x', 'groco pretrain: unknown option -x', '-x'],
    ['pretrain -c a --epochs ten',
      'groco pretrain: --epochs: expected an integer >= 1, got "ten"', '--epochs'],
    ['pretrain -c a --epochs 0',
      'groco pretrain: --epochs: expected an integer >= 1, got "0"', '--epochs'],
    ['pretrain -c a --epochs',
      'groco pretrain: --epochs: expected an integer >= 1 after it, got nothing', '--epochs'],
    ['pretrain -c a --name --epochs 2',
      'groco pretrain: --name: expected a value after it, got nothing', '--name'],
    ['pretrain -c a --init_val 2',
      'groco pretrain: --init-val: expected one of 0, 1, false, true, got "2"', '--init-val'],
    ['pretrain -c a -c b', 'groco pretrain: -c given more than once', '-c'],
    ['pretrain --epochs 3', 'groco pretrain: expected a config (-c FILE) or a checkpoint to '
      + 'resume (-r FILE), got neither', '--config'],
    ['pretrain -c a b.yaml', 'groco pretrain: unexpected argument "b.yaml"', 'b.yaml'],
    ['pretrain -c a --distributed=yes',
      'groco pretrain: --distributed takes no value', '--distributed'],
    ['pretrain -c a --device gpu',
      'groco pretrain: --device: expected cpu, cuda or cuda:N, got "gpu"', '--device'],
    ['pretrain -c a --device cpu --gpu 0',
      'groco pretrain: --device and --gpu both name a device; give one', '--gpu'],
    ['pretrain -c a --dist-url http://x', 'groco pretrain: --dist-url: expected env:// or '
      + 'tcp://HOST:PORT, got "http://x"', '--dist-url'],
    ['pretrain -c a --set trainer.epochs',
      'groco pretrain: --set: expected key.path=value, got "trainer.epochs"', '--set'],
    ['eval -c e.yaml', 'groco eval: -r/--resume is required', '--resume'],
    ['embed -r m --data d --out f.txt',
      'groco embed: --out: expected a file name ending in .npy, got "f.txt"', '--out'],
    ['inspect', 'groco inspect: missing argument <file.pth>', 'file.pth'],
    ['export-torchvision a', 'groco export-torchvision: missing argument <out.pth>', 'out.pth'],
    ['preprocess', 'groco preprocess: expected a dataset, one of imagenet, folder, '
      + 'fashion-mnist, got nothing', null],
    ['preprocess cifar', 'groco preprocess: expected a dataset, one of imagenet, folder, '
      + 'fashion-mnist, got "cifar"', 'cifar'],
    ['preprocess folder --input i', 'groco preprocess folder: --output is required', '--output'],
    ['launch pretrain -c a', 'groco launch: --nproc-per-node is required', '--nproc-per-node'],
    ['launch --nproc-per-node 2', 'groco launch: expected the command to run (pretrain or eval) '
      + 'after the options, got nothing', null],
    ['launch --nproc-per-node 2 demo',
      'groco launch: expected pretrain or eval as the command to run, got "demo"', 'demo'],
    ['launch --nproc-per-node 2 --node-rank 2 pretrain -c a',
      'groco launch: --node-rank: expected below --nnodes (1), got 2', '--node-rank'],
    ['launch --nproc-per-node 2 --master-port 70000 eval', 'groco launch: --master-port: '
      + 'expected an integer >= 1 and <= 65535, got "70000"', '--master-port'],
    ['launch --nproc-per-node 2 pretrain --epochs x',
      'groco pretrain: --epochs: expected an integer >= 1, got "x"', '--epochs'],
    ['help train', 'groco: unknown command "train"', 'train'],
  ];
  for (const [line, message, flag] of cases) {
    const error = usageError(line.split(' '));
    const first = error.message.split('\n')[0].replace(/; commands: .*/, '');
    assert.equal(first, message, line);
    assert.match(error.message, /\n\(run 'groco( [a-z-]+)* --help' for usage\)$/);
    assert.equal(error.flag, flag, line);
  }
});

test('flags become config overrides that reach the loaded config', () => {
  const file = join(root, 'configs', 'fashion_mnist', 'groco.yaml');
  const parsed = parseArgs(['pretrain', '-c', file, ...('--epochs 1 --init_val 1 --max-steps 5 '
    + '--seed 9 --save-dir elsewhere --gpu 0 --threads 1 --set trainer.log_step=1 '
    + '--set trainer.epochs=7 --name smoke').split(' ')]);
  assert.ok(parsed.command === 'pretrain');
  const overrides = configOverrides(parsed.options);
  assert.deepEqual(overrides.map((o) => o.origin), [
    '--set trainer.log_step=1', '--set trainer.epochs=7', '--epochs', '--init_val', '--max-steps',
    '--seed', '--save-dir', '--device', '--threads',
  ]);

  const { config: path, name } = parsed.options;
  const config = loadConfig('pretrain', { file: path, overrides, name });
  assert.equal(config.name, 'smoke');
  assert.equal(config.trainer.epochs, 1);                 // the named flag wins over --set
  assert.equal(config.trainer.init_val, true);
  assert.equal(config.trainer.max_steps, 5);
  assert.equal(config.trainer.log_step, 1);
  assert.equal(config.seed, 9);
  assert.equal(config.save_dir, 'elsewhere');
  assert.equal(config.runtime.device, 'cuda:0');
  assert.equal(config.runtime.threads, 1);
  assert.equal(config.runtime.channels_last, true);       // the rest of the section stays

  const evalArgs = parseArgs(['eval', '-c', 'e.yaml', '-r', 'm.pth', '--device', 'cpu']);
  assert.ok(evalArgs.command === 'eval');
  assert.deepEqual(configOverrides(evalArgs.options),
    [{ path: ['runtime', 'device'], value: 'cpu', origin: '--device' }]);
});
