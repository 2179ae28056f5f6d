import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  checkConfig, configToYaml, loadConfig, parseConfigText, readConfigFile,
} from '../src/config/index.js';
import type { PretrainConfig } from '../src/config/index.js';
import { batchesPerEpoch } from '../src/train/schedule.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const configDir = join(root, 'configs');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return name.endsWith('.yaml') || name.endsWith('.yml') ? [path] : [];
  });
}

const files = yamlFiles(configDir);
const isEval = (file: string) => basename(file).startsWith('eval_');

/** The pretraining config an evaluation config is laid over: one from the same folder. */
function baseFor(file: string): string {
  return file.includes(`${join('configs', 'fashion_mnist')}`)
    ? join(configDir, 'fashion_mnist', 'groco.yaml')
    : join(configDir, '2views_100ep.yaml');
}

const REFERENCE_CONFIGS = [
  '2views_100ep.yaml', '2views_100ep_bs256.yaml', '2views_100ep_bs512.yaml', '2views_200ep.yaml',
  '2views_400ep.yaml', '2views_800ep.yaml', '3views_100ep.yaml', '4views_100ep.yaml',
  '4views_200ep.yaml', '4views_400ep.yaml', 'multicrop_100ep.yaml', 'multicrop_200ep.yaml',
  'multicrop_400ep.yaml', 'multicrop_800ep.yaml', 'baselines/simclr_2views_100ep.yaml',
  'baselines/simclr_2views_top10neg_stop_grad.yaml', 'baselines/simclr_3views_100ep.yaml',
  'baselines/simclr_4views_100ep.yaml', 'eval_knn.yaml', 'eval_linear_probing.yaml',
  'examples/example.yaml', 'examples/imagenet_folder.yaml',
];

test('configs/ holds every config of the reference and the Fashion-MNIST ones', () => {
  const present = new Set(files.map((f) => relative(configDir, f).split('\\').join('/')));
  for (const name of [...REFERENCE_CONFIGS, 'fashion_mnist/groco.yaml', 'fashion_mnist/simclr.yaml',
    'fashion_mnist/eval_knn.yaml', 'fashion_mnist/eval_linear_probing.yaml']) {
    assert.ok(present.has(name), `configs/${name} is missing`);
  }
});

test('every pretraining config in configs/ validates', () => {
  const pretraining = files.filter((f) => !isEval(f));
  assert.ok(pretraining.length >= 20);
  for (const file of pretraining) {
    const config = loadConfig('pretrain', { file });
    assert.equal(config.name, basename(file, '.yaml'));
  }
});

test('every evaluation config validates laid over the config it evaluates', () => {
  const evaluations = files.filter(isEval);
  assert.equal(evaluations.length, 4);
  for (const file of evaluations) {
    const config = loadConfig('eval', { file, base: readConfigFile(baseFor(file)) });
    assert.ok(config.evaluator.length > 0, file);
    const alone = checkConfig(readConfigFile(file).value, 'eval');
    assert.deepEqual(alone.problems.map((p) => p.message), ['missing (required)'], file);
    assert.deepEqual(alone.problems.map((p) => p.path), [['encoder']], file);
  }
});

test('the reference configs keep the reference\'s values', () => {
  const load = (name: string) => loadConfig('pretrain', { file: join(configDir, name) });

  const multicrop = load('multicrop_800ep.yaml');
  assert.equal(multicrop.learning_rate_scaling, 'sqrt');
  assert.equal(multicrop.base_learning_rate, 0.1875);
  assert.equal(multicrop.optimizer.args.weight_decay, 2e-6);
  assert.deepEqual(multicrop.loss.args,
    { n_augs: 8, n_pos_augs: 2, topk_neg: 10, steepness: 1, stop_grad: true });
  assert.equal(multicrop.train_dataloader.args.transform_type, 'dino_multicrop');
  const probe = multicrop.evaluator[1];
  assert.ok(probe.type === 'LinearProbingEvaluator');
  assert.deepEqual(probe.args.hyperparams[0].apply_evaluator_after_epochs, [799]);

  const simclr = load('baselines/simclr_2views_top10neg_stop_grad.yaml');
  assert.deepEqual(simclr.loss,
    { type: 'NT_Xent', args: { temperature: 0.5, stop_grad: true, topk_neg: 10 } });
  assert.equal(simclr.optimizer_use_larc, true);
  assert.equal(simclr.projection.args.output_dim, 128);

  const base = load('2views_100ep.yaml');
  assert.equal(base.trainer.save_period, null);
  assert.equal(base.trainer.clip_grad, 1e6);
  assert.equal(base.trainer.mixed_precision, true);
  assert.equal(base.warmup_epochs, 1);
  assert.equal(base.train_dataloader.type, 'web_dataloader');

  const folder = load('examples/imagenet_folder.yaml');
  assert.ok(folder.train_dataloader.type === 'image_folder_dataloader');
  assert.equal(folder.train_dataloader.args.layout, 'imagenet');
});

test('the ImageNet configs carry placeholder paths that say what to replace', () => {
  for (const name of REFERENCE_CONFIGS) {
    const text = readFileSync(join(configDir, name), 'utf8');
    const value = parseConfigText(text, name).value;
    const loaders = [value.train_dataloader, ...((value.valid_dataloader as unknown[]) ?? [])]
      .filter((l) => l !== undefined) as { args: { shards?: string; root?: string } }[];
    for (const loader of loaders) {
      const path = loader.args.shards ?? loader.args.root ?? '';
      assert.match(path, /^\/path\/to\/imagenet/, `${name}: ${path}`);
    }
    assert.match(text, /^# Replace \/path\/to\/imagenet(-shards)? with /m, name);
  }
});

test('the Fashion-MNIST pretraining configs match the budget their comments state', () => {
  for (const [name, epochs] of [['groco.yaml', 3], ['simclr.yaml', 2]] as const) {
    const file = join(configDir, 'fashion_mnist', name);
    const config: PretrainConfig = loadConfig('pretrain', { file });
    const train = config.train_dataloader;
    assert.ok(train.type === 'fashion_mnist_dataloader' && train.args.dataset_size !== null);
    const perEpoch = batchesPerEpoch(train.args.dataset_size, train.args.batch_size);
    const steps = perEpoch * config.trainer.epochs;
    assert.equal(steps, 156 * epochs, name);
    assert.equal(train.args.dataset_size * config.trainer.epochs, 40000 * epochs, name);
    assert.deepEqual(config.encoder.args,
      { arch: 'resnet18', small_images: true, in_channels: 1, width: 32 });
    assert.equal(config.runtime.channels_last, true);
    assert.equal(train.args.image_size, 28);
  }
  assert.match(readFileSync(join(configDir, 'fashion_mnist', 'groco.yaml'), 'utf8'),
    /three epochs of 40,000 samples \(468 steps of 256\)/);
});

test('every config written back as YAML loads to the same config', () => {
  for (const file of files) {
    const purpose = isEval(file) ? 'eval' : 'pretrain';
    const base = purpose === 'eval' ? readConfigFile(baseFor(file)) : null;
    const config = loadConfig(purpose, { file, base });
    const again = loadConfig(purpose, { base: parseConfigText(configToYaml(config), 'written') });
    assert.deepEqual(again, config, file);
  }
  assert.ok(existsSync(join(configDir, 'README.md')));
});
