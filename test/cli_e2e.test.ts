// The groco command end to end on a tiny Fashion-MNIST subset: pretrain, stop and resume (bit
// for bit), eval, embed, inspect, export, and the errors a user meets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng, fashionMnistFiles, readIdxDataset } from '../src/data/index.js';
import { load } from '../src/torch/save.js';
import { Tensor } from '../src/torch/index.js';
import { parse, stringify } from 'yaml';
import { peerAvailable, runPeer } from './helpers/peer.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'groco-e2e-'));
const source = fashionMnistFiles('train').images.replace(/\/[^/]+$/, '');
const haveData = existsSync(fashionMnistFiles('train').images);

function groco(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: work, encoding: 'utf8', env: { ...process.env, GROCO_NUM_THREADS: '2' }, timeout: 600_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

// IDX files with the first n images of each split, so a test epoch takes seconds.
function idx(magic: number, dims: number[], body: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, body]);
}

async function makeSubset(dir: string, train: number, test: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const [split, n, prefix] of [['train', train, 'train'], ['test', test, 't10k']] as const) {
    const files = fashionMnistFiles(split);
    const d = readIdxDataset(files.images, files.labels);
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), idx(0x803, [n, 28, 28], d.images.subarray(0, n * 784)));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), idx(0x801, [n], d.labels.subarray(0, n)));
  }
  // a class-per-folder copy of the test subset, for embed
  for (let i = 0; i < 12; i++) {
    const files = fashionMnistFiles('test');
    const d = readIdxDataset(files.images, files.labels);
    const cls = join(dir, 'folder', `class_${d.labels[i]}`);
    mkdirSync(cls, { recursive: true });
    const png = await encodePng({ data: d.images.subarray(i * 784, (i + 1) * 784), width: 28, height: 28, channels: 1 });
    writeFileSync(join(cls, `img_${String(i).padStart(3, '0')}.png`), png);
  }
}

function config(data: string): string {
  const loader = (train: boolean, transform: string, extra: Record<string, unknown> = {}) => ({
    type: 'fashion_mnist_dataloader',
    args: {
      root: data, train, shuffle: train, batch_size: 32, num_workers: train ? 1 : 0,
      transform_type: transform, image_size: 28, resize: 28, channels: 1, mean: [0.286], std: [0.353], ...extra,
    },
  });
  return stringify({
    train_dataloader: loader(true, 'dino', { n_augs: 2, dataset_size: 64 }),
    valid_dataloader: [loader(true, 'val'), loader(false, 'val')],
    encoder: { type: 'RegularEncoder', args: { arch: 'resnet18', small_images: true, in_channels: 1, width: 8 } },
    projection: { type: 'RegularProjection', args: { num_layers: 2, output_dim: 32 } },
    loss: { type: 'GroCo', args: { n_augs: 2, topk_neg: 5, steepness: 1 } },
    learning_rate_scaling: 'linear',
    base_learning_rate: 0.3,
    optimizer_use_larc: true,
    warmup_epochs: 0.5,
    optimizer: { type: 'SGD', args: { momentum: 0.9, weight_decay: 1e-6 } },
    trainer: { epochs: 2, mixed_precision: false, init_val: false, save_latest: true, save_period: 1,
      log_step: 1, clip_grad: 1e6 },
    seed: 3,
    save_dir: join(work, 'runs'),
    evaluator: [{ type: 'KNNEvaluator', args: { log_name: '', apply_evaluator_per_epoch: 2, k: [1, 5],
      num_classes: 10, temperature: 0.07, max_feature_bank: 1000 } }],
    runtime: { device: 'cpu', threads: 2, precision: 'float32', channels_last: false },
  });
}

function runFolders(name: string): string[] {
  const dir = join(work, 'runs', 'models', name);
  return existsSync(dir) ? readdirSync(dir).sort().map((d) => join(dir, d)) : [];
}

async function encoderState(file: string): Promise<Map<string, number[]>> {
  const value = await load(file) as Map<string, unknown>;
  const out = new Map<string, number[]>();
  for (const [k, t] of value.get('encoder') as Map<string, Tensor>) {
    out.set(k, t.toFlatArray());
    t.dispose();
  }
  return out;
}

const skip = !haveData && 'Fashion-MNIST is not installed (dataset-fashion-mnist)';

test('pretrain, stop and resume equals an unbroken run bit for bit; eval, embed, inspect, export', { skip, timeout: 900_000 }, async () => {
  const data = join(work, 'fmnist');
  await makeSubset(data, 96, 48);
  const cfg = join(work, 'tiny.yaml');
  writeFileSync(cfg, config(data));

  // an unbroken run of 3 steps (2 per epoch: it stops inside the second epoch)
  const full = groco(['pretrain', '-c', cfg, '--name', 'full', '--max-steps', '3']);
  assert.equal(full.code, 0, full.stderr);
  const [fullRun] = runFolders('full');
  assert.ok(fullRun, 'no run folder');
  for (const f of ['config.yaml', 'latest_model.pth', 'checkpoint-epoch0.pth', 'metrics.jsonl']) {
    assert.ok(existsSync(join(fullRun, f)), `missing ${f}`);
  }
  assert.ok(readdirSync(fullRun).some((f) => f.startsWith('events.out.tfevents.')), 'no event file');
  const metrics = readFileSync(join(fullRun, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const steps = metrics.filter((m) => m.type === 'train');
  assert.deepEqual(steps.map((m) => m.step), [1, 2, 3]);
  for (const key of ['train_loss', 'lr', 'epoch', 'train_loss_info_pos_max', 'train_loss_info_neg_max']) {
    assert.ok(key in steps[0]!, `metrics.jsonl lacks ${key}: ${Object.keys(steps[0]!).join(', ')}`);
  }

  // 1 step, stop, resume to step 3
  const first = groco(['pretrain', '-c', cfg, '--name', 'part', '--max-steps', '1']);
  assert.equal(first.code, 0, first.stderr);
  const [partRun] = runFolders('part');
  const resumed = groco(['pretrain', '-r', join(partRun!, 'latest_model.pth'), '--name', 'resumed', '--max-steps', '3']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const [resumedRun] = runFolders('resumed');
  const a = await encoderState(join(fullRun, 'latest_model.pth'));
  const b = await encoderState(join(resumedRun!, 'latest_model.pth'));
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [k, v] of a) assert.deepEqual(b.get(k), v, `${k} differs after resume`);

  // finish the run: 2 epochs, online k-NN after the last
  const rest = groco(['pretrain', '-r', join(resumedRun!, 'latest_model.pth'), '--name', 'done']);
  assert.equal(rest.code, 0, rest.stderr);
  const [doneRun] = runFolders('done');
  const results = JSON.parse(readFileSync(join(doneRun!, 'results.json'), 'utf8')) as { evaluations: Record<string, number>[] };
  assert.ok(results.evaluations.some((e) => typeof e['knn@5'] === 'number'), JSON.stringify(results));

  // resuming a finished run trains nothing and writes no run folder
  const again = groco(['pretrain', '-r', join(doneRun!, 'latest_model.pth'), '--name', 'again']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /nothing to do: 2 epochs done, trainer.epochs asks for 2 epochs/);
  assert.deepEqual(runFolders('again'), []);

  // offline evaluation, JSON on the last line
  const evalCfg = join(work, 'eval.yaml');
  writeFileSync(evalCfg, `evaluator:
- type: KNNEvaluator
  args: {log_name: _final, k: [1, 5], num_classes: 10, temperature: 0.07}
`);
  const ev = groco(['eval', '-c', evalCfg, '-r', join(doneRun!, 'latest_model.pth'), '--json']);
  assert.equal(ev.code, 0, ev.stderr);
  const last = JSON.parse(ev.stdout.trim().split('\n').pop()!) as Record<string, number>;
  assert.ok(last['knn@5_final']! >= 0 && last['knn@5_final']! <= 100, ev.stdout);

  // embed a folder: rows in folder order, labels beside
  const out = join(work, 'emb.npy');
  const em = groco(['embed', '-r', join(doneRun!, 'latest_model.pth'), '--data', join(data, 'folder'), '--out', out,
    '--image-size', '28', '--resize', '28']);
  assert.equal(em.code, 0, em.stderr);
  assert.ok(existsSync(out) && existsSync(join(work, 'emb.labels.npy')));

  // a checkpoint whose config has no validation loaders nor evaluators embeds all the same
  const bare = parse(config(data)) as Record<string, unknown>;
  delete bare.valid_dataloader;
  delete bare.evaluator;
  writeFileSync(join(work, 'bare.yaml'), stringify(bare));
  const bareRun = groco(['pretrain', '-c', join(work, 'bare.yaml'), '--name', 'bare', '--max-steps', '1']);
  assert.equal(bareRun.code, 0, bareRun.stderr);
  const bareEmbed = groco(['embed', '-r', join(runFolders('bare')[0]!, 'latest_model.pth'), '--data',
    join(data, 'folder'), '--out', join(work, 'bare.npy'), '--image-size', '28', '--resize', '28']);
  assert.equal(bareEmbed.code, 0, bareEmbed.stderr);

  // a folder to shards of --shard-size samples
  const pf = groco(['preprocess', 'folder', '--input', join(data, 'folder'), '--output', join(work, 'pf'),
    '--shard-size', '5']);
  assert.equal(pf.code, 0, pf.stderr);
  assert.deepEqual(readdirSync(join(work, 'pf')).filter((f) => f.endsWith('.tar')).length, 3);

  // training on those shards with one missing: warned, skipped, counted after the epoch
  const shardCfg = parse(config(data)) as Record<string, Record<string, unknown>>;
  shardCfg.train_dataloader = { type: 'web_dataloader', args: {
    ...(shardCfg.train_dataloader!.args as Record<string, unknown>), root: undefined, batch_size: 8,
    dataset_size: 8, shuffle: 0, shards: join(work, 'pf', 'shard-{000000..000003}.tar') } };
  writeFileSync(join(work, 'shards.yaml'), stringify(shardCfg));
  const onShards = groco(['pretrain', '-c', join(work, 'shards.yaml'), '--name', 'shards', '--epochs', '1',
    '--set', 'evaluator=[]']);
  assert.equal(onShards.code, 0, onShards.stderr);
  assert.match(onShards.stderr, /missingShard: .*shard-000003\.tar/);
  assert.match(onShards.stderr, /epoch 0: skipped broken input: missingShard 1/);

  // inspect and export to torchvision
  const ins = groco(['inspect', join(doneRun!, 'latest_model.pth'), '--json']);
  assert.equal(ins.code, 0, ins.stderr);
  assert.match(ins.stdout, /"epoch":1/);
  const exported = join(work, 'tv.pth');
  const ex = groco(['export-torchvision', join(doneRun!, 'latest_model.pth'), exported]);
  assert.equal(ex.code, 0, ex.stderr);

  if (peerAvailable()) {
    const got = runPeer<{ rows: number; dim: number; labels: number[]; keys: number }>(`
import numpy as np
f = np.load(INPUT + '/emb.npy'); l = np.load(INPUT + '/emb.labels.npy')
sd = torch.load(INPUT + '/tv.pth')
print(json.dumps({'rows': f.shape[0], 'dim': f.shape[1], 'labels': l.tolist(), 'keys': len(sd)}))
`, work);
    assert.equal(got.rows, 12);
    assert.equal(got.dim, 64);
    assert.deepEqual(got.labels, [...got.labels].sort((x, y) => x - y), 'rows follow the sorted class folders');
    assert.ok(got.keys > 100);
  }
});

test('usage errors exit 2, bad configs and files exit 1 naming the key or file', { skip }, () => {
  const usage = groco(['pretrain', '--epochs', 'many']);
  assert.equal(usage.code, 2, usage.stderr);
  assert.match(usage.stderr, /--epochs/);
  assert.equal(groco(['frobnicate']).code, 2);
  const bad = join(work, 'bad.yaml');
  writeFileSync(bad, config(join(work, 'fmnist')).replace('topk_neg: 5', 'topk_neg: -1'));
  const r = groco(['pretrain', '-c', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /loss\.args\.topk_neg: expected an integer >= 1, got -1/);
  const missing = groco(['eval', '-c', bad, '-r', join(work, 'nope.pth')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.pth/);
  assert.equal(groco(['demo', '--help']).code, 0);
  const onFile = groco(['preprocess', 'folder', '--input', work, '--output', bad]);
  assert.equal(onFile.code, 1);
  assert.match(onFile.stderr, /--output: .* exists and is not a folder/);
  const noFolder = groco(['embed', '-r', join(work, 'nope.pth'), '--data', work, '--out', join(work, 'no', 'e.npy')]);
  assert.equal(noFolder.code, 1);
  assert.match(noFolder.stderr, /--out: the folder .*no does not exist/);

  // shards that are all missing: an error, not a finished run with an untrained model
  const noShards = join(work, 'no-shards.yaml');
  const parsed = parse(config(join(work, 'fmnist'))) as Record<string, Record<string, unknown>>;
  parsed.train_dataloader = { type: 'web_dataloader', args: {
    ...(parsed.train_dataloader!.args as Record<string, unknown>), root: undefined,
    shards: join(work, 'absent-{000000..000001}.tar'), shuffle: 0 } };
  writeFileSync(noShards, stringify(parsed));
  const none = groco(['pretrain', '-c', noShards, '--name', 'no-shards']);
  assert.equal(none.code, 1, none.stderr);
  assert.match(none.stderr, /absent-000000\.tar/);
  assert.match(none.stderr, /train_dataloader: epoch 0 gave no batch of the 2 expected/);
  const [noRun] = runFolders('no-shards');
  assert.ok(!existsSync(join(noRun!, 'latest_model.pth')), 'a checkpoint of an untrained model');
});

/** Runs groco, sends SIGINT once its stderr shows step 2, and waits for its exit. */
async function interruptAtStep2(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: work, env: { ...process.env, GROCO_NUM_THREADS: '2' },
    });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && /step 2 /.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

test('SIGINT finishes the step, writes the checkpoint and exits 130', { skip, timeout: 300_000 }, async () => {
  const data = join(work, 'fmnist');
  if (!existsSync(data)) await makeSubset(data, 96, 48);
  const cfg = join(work, 'tiny-signal.yaml');
  writeFileSync(cfg, config(data));
  const { code } = await interruptAtStep2(['pretrain', '-c', cfg, '--name', 'signal', '--max-steps', '200',
    '--epochs', '100']);
  assert.equal(code, 130);
  const [run] = runFolders('signal');
  assert.ok(existsSync(join(run!, 'latest_model.pth')), 'no checkpoint after SIGINT');
  const steps = readFileSync(join(run!, 'metrics.jsonl'), 'utf8').trim().split('\n').length;
  assert.ok(steps < 50, `trained ${steps} steps after the signal`);
});

test('under groco launch, one SIGINT stops every rank after the same step with a checkpoint', { skip, timeout: 300_000 }, async () => {
  const data = join(work, 'fmnist');
  if (!existsSync(data)) await makeSubset(data, 96, 48);
  const cfg = join(work, 'tiny-launch-signal.yaml');
  writeFileSync(cfg, config(data));
  const { freePort } = await import('./helpers/ports.js');
  const port = await freePort();
  const { code, stderr } = await interruptAtStep2(['launch', '--nproc-per-node', '2', '--master-addr',
    '127.0.0.1', '--master-port', String(port), 'pretrain', '-c', cfg, '--name', 'launch-signal',
    '--epochs', '100', '--threads', '1']);
  assert.equal(code, 130, stderr);
  assert.doesNotMatch(stderr, /again: exiting now|stopping the other ranks|failed/);
  const [run] = runFolders('launch-signal');
  assert.ok(existsSync(join(run!, 'latest_model.pth')), 'no checkpoint after SIGINT');
  assert.ok(!readdirSync(run!).some((f) => f.endsWith('.tmp')));
});
