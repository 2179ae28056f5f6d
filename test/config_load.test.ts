import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ConfigError, applyOverrides, configFromValue, configToYaml, loadConfig, parseConfigText,
  parseOverride, readConfigFile, validatePretrainConfig, writeConfigYaml,
} from '../src/config/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const configs = join(root, 'configs');
const scratch = mkdtempSync(join(tmpdir(), 'groco-config-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(scratch, name);
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError');
}

const small = `train_dataloader:
  type: web_dataloader
  args:
    shards: s-{0..3}.tar
    dataset_size: 1000
    shuffle: 100
    num_workers: 0
    batch_size: 32
    transform_type: dino
    n_augs: 2
encoder:
  type: RegularEncoder
  args:
    arch: resnet18
projection:
  type: RegularProjection
  args: {}
loss:
  type: GroCo
  args:
    n_augs: 2
    topk_neg: 10
base_learning_rate: 0.75
warmup_epochs: 1
optimizer:
  type: SGD
  args:
    momentum: 0.9
trainer:
  epochs: 5
`;

test('YAML syntax errors name the file, line and column', () => {
  const file = write('broken.yaml', 'trainer:\n  epochs: [1, 2\nseed: 3\n');
  const error = configError(() => readConfigFile(file));
  assert.equal(error.problems.length, 1);
  assert.equal(error.problems[0].where, `${file}:3:1`);
  assert.match(error.message, new RegExp(`${file}:3:1: YAML syntax error: Flow sequence in block `
    + 'collection must be sufficiently indented and end with a \\]$', 'm'));

  const duplicate = write('duplicate.yaml', 'seed: 1\ntrainer:\n  epochs: 1\n  epochs: 2\n');
  const dup = configError(() => readConfigFile(duplicate));
  assert.equal(dup.problems[0].where, `${duplicate}:4:3`);
  assert.match(dup.message, /YAML syntax error: Map keys must be unique/);

  const tab = write('tab.yaml', 'trainer:\n\tepochs: 1\n');
  assert.match(configError(() => readConfigFile(tab)).problems[0].where, new RegExp(`^${tab}:2:`));
});

test('an empty file, a list, and a missing file are refused by name', () => {
  const empty = write('empty.yaml', '# nothing here\n');
  assert.match(configError(() => readConfigFile(empty)).message,
    new RegExp(`${empty}: expected a mapping of config sections, got an empty document`));
  const list = write('list.yaml', '- 1\n- 2\n');
  assert.match(configError(() => readConfigFile(list)).message, /got a list of 2/);
  const missing = join(scratch, 'nope.yaml');
  assert.match(configError(() => readConfigFile(missing)).message,
    new RegExp(`${missing}: cannot read the file \\(ENOENT\\)`));
});

test('validation problems point at the line of the offending key', () => {
  const file = write('bad.yaml', small.replace('topk_neg: 10', 'topk_neg: -1')
    .replace('    arch: resnet18', '    arch: resnet18\n    depth: 18')
    .replace('  epochs: 5\n', '  log_step: 10\n'));
  const error = configError(() => loadConfig('pretrain', { file }));
  const lines = error.message.split('\n').slice(1).map((l) => l.trim()).sort();
  assert.deepEqual(lines, [
    `${file}:15:5: encoder.args.depth: unknown key `
      + '(known keys here: arch, small_images, in_channels, width)',
    `${file}:23:5: loss.args.topk_neg: expected an integer >= 1, got -1`,
    // a missing key is placed at its parent
    `${file}:30:1: trainer.epochs: missing (required)`,
  ]);
  assert.match(error.message, new RegExp(`^invalid config ${file} \\(3 problems\\):`));
});

test('--set assignments: dotted paths, list indices, values read as YAML', () => {
  assert.deepEqual(parseOverride('trainer.epochs=10'),
    { path: ['trainer', 'epochs'], value: 10, origin: '--set trainer.epochs=10' });
  assert.deepEqual(parseOverride('evaluator.0.args.k=[1, 20]').path, ['evaluator', 0, 'args', 'k']);
  assert.deepEqual(parseOverride('evaluator.0.args.k=[1, 20]').value, [1, 20]);
  assert.equal(parseOverride('trainer.save_period=null').value, null);
  assert.equal(parseOverride('name=run=1').value, 'run=1');
  assert.equal(parseOverride('save_dir=').value, null);
  const refused = (text: string) => configError(() => parseOverride(text)).message;
  assert.match(refused('trainer.epochs'), /expected key\.path=value, got "trainer\.epochs"/);
  assert.match(refused('trainer..epochs=1'), /expected a dotted key/);
  assert.match(refused('k=[1, 2'), /cannot read the value as YAML/);
});

test('overrides apply to a copy, creating sections on the way', () => {
  const raw = { trainer: { epochs: 5 }, evaluator: [{ type: 'KNNEvaluator', args: { k: [20] } }] };
  const out = applyOverrides(raw, [
    parseOverride('trainer.epochs=2'),
    parseOverride('runtime.device=cuda:1'),
    parseOverride('evaluator.0.args.k=[1]'),
  ]);
  assert.deepEqual(out, {
    trainer: { epochs: 2 },
    runtime: { device: 'cuda:1' },
    evaluator: [{ type: 'KNNEvaluator', args: { k: [1] } }],
  });
  assert.equal(raw.trainer.epochs, 5);
  const refused = (text: string) =>
    configError(() => applyOverrides(raw, [parseOverride(text)])).message;
  assert.ok(refused('evaluator.3.args.k=[1]').includes(
    '--set evaluator.3.args.k=[1]: evaluator is a list of 1; expected an index below 1, got 3'));
  assert.match(refused('trainer.epochs.max=1'),
    /trainer\.epochs is 5, not a mapping or list to set a key in/);
});

test('loading applies overrides, and problems they cause name the flag', () => {
  const file = write('small.yaml', small);
  const config = loadConfig('pretrain', {
    file,
    overrides: [
      { path: ['trainer', 'epochs'], value: 2, origin: '--epochs' },
      parseOverride('trainer.log_step=7'),
      { path: ['runtime', 'threads'], value: 2, origin: '--threads' },
    ],
  });
  assert.equal(config.trainer.epochs, 2);
  assert.equal(config.trainer.log_step, 7);
  assert.equal(config.runtime.threads, 2);
  assert.equal(config.name, 'small');

  const error = configError(() => loadConfig('pretrain', {
    file, overrides: [{ path: ['trainer', 'epochs'], value: 0, origin: '--epochs' }],
  }));
  assert.match(error.message, /^ {2}--epochs: trainer\.epochs: expected an integer >= 1, got 0$/m);

  // a key that only the override brought in is the override's
  const unknown = configError(() => loadConfig('pretrain', {
    file, overrides: [parseOverride('nonexistent.key=3')],
  }));
  assert.match(unknown.message, /^ {2}--set nonexistent\.key=3: nonexistent: unknown key/m);
});

test('--name wins over the file name; a resumed run keeps its own name', () => {
  const file = write('named.yaml', small);
  assert.equal(loadConfig('pretrain', { file, name: 'run7' }).name, 'run7');
  const value = { ...parseConfigText(small, 'x').value, name: 'earlier' };
  const base = configFromValue(value, 'run/config.yaml');
  assert.equal(loadConfig('pretrain', { base }).name, 'earlier');
  assert.match(configError(() => loadConfig('pretrain', {})).message, /no config given/);
});

test('a config laid over a run\'s config replaces whole top-level sections', () => {
  const base = readConfigFile(join(configs, 'fashion_mnist', 'groco.yaml'));
  const file = join(configs, 'fashion_mnist', 'eval_knn.yaml');
  const config = loadConfig('eval', { file, base });
  assert.equal(config.name, 'eval_knn');
  assert.equal(config.encoder.args.width, 32);                  // from the run
  assert.equal(config.evaluator.length, 1);                     // the file's list, not both
  const knn = config.evaluator[0];
  assert.ok(knn.type === 'KNNEvaluator' && knn.args.log_name === '_final');
  assert.equal(config.valid_dataloader[0].args.shuffle, false);

  // a problem in the part that came from the run is placed in the run's file
  const broken = parseConfigText(readFileSync(join(configs, 'fashion_mnist', 'groco.yaml'), 'utf8')
    .replace('width: 32', 'width: -32'), 'run/config.yaml');
  const error = configError(() => loadConfig('eval', { file, base: broken }));
  assert.match(error.message,
    /^invalid config run\/config\.yaml \+ .*eval_knn\.yaml \(1 problem\):/);
  assert.match(error.message,
    /run\/config\.yaml:\d+:5: encoder\.args\.width: expected an integer >= 1, got -32/);
});

test('a checkpoint\'s config (dicts as Maps, big integers as bigint) lays under a file too', () => {
  const asPickled = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(asPickled);
    if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
    if (value !== null && typeof value === 'object') {
      return new Map(Object.entries(value).map(([k, v]) => [k, asPickled(v)]));
    }
    return value;
  };
  const run = readConfigFile(join(configs, 'fashion_mnist', 'groco.yaml'));
  const file = join(configs, 'fashion_mnist', 'eval_knn.yaml');
  const fromCheckpoint = configFromValue(asPickled(run.value), 'checkpoint.pth');
  assert.deepEqual(loadConfig('eval', { file, base: fromCheckpoint }),
    loadConfig('eval', { file, base: run }));

  const badKey = new Map<unknown, unknown>([['trainer', new Map([[1, 2]])]]);
  assert.match(configError(() => configFromValue(badKey, 'c.pth')).message,
    /c\.pth: trainer: expected string keys, got 1/);
  assert.match(configError(() => configFromValue([1], 'c.pth')).message,
    /c\.pth: expected a mapping of config sections, got a list of 1/);
});

test('the resolved config written as YAML loads back to the same config', () => {
  const config = loadConfig('pretrain', { file: join(configs, 'multicrop_800ep.yaml') });
  const text = configToYaml(config);
  assert.match(text, /^# Resolved by groco/);
  assert.match(text, /^ {6}k: \[20\]$/m);
  assert.deepEqual(validatePretrainConfig(parseConfigText(text, 'written').value), config);

  const out = join(scratch, 'config.yaml');
  writeConfigYaml(config, out);
  assert.equal(readFileSync(out, 'utf8'), text);
  assert.deepEqual(readdirSync(scratch).filter((f) => f.includes('.tmp-')), []);
  assert.deepEqual(loadConfig('pretrain', { base: readConfigFile(out) }), config);
});
