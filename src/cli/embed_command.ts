// `groco embed`: encoder features of a dataset as NumPy arrays, in the data's order.
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { EvalConfig, DataloaderSpec } from '../config/index.js';
import { DataLoader, scaledViewSizes } from '../data/index.js';
import { extractFeatures } from '../eval/features.js';
import { writeNpy } from '../eval/npy.js';
import { disposeCheckpoint, loadTrainingCheckpoint } from '../train/checkpoint.js';
import { loadConfig, readConfigFile, type ConfigOverride } from '../config/index.js';
import type { EmbedOptions } from './args.js';
import { buildEncoder, checkpointConfig } from './common.js';
import { logger, setupRuntime } from './runtime.js';
import { loaderOptions } from './loaders.js';

function dataSpec(path: string, reference: DataloaderSpec | undefined, o: EmbedOptions): DataloaderSpec {
  const isShards = /\.tar$/.test(path) || path.includes('{');
  if (!isShards && !(existsSync(path) && statSync(path).isDirectory())) {
    throw new Error(`--data: '${path}' is neither a folder of class subfolders nor a shard list (*.tar)`);
  }
  const base = reference?.args;
  const size = o.imageSize ?? base?.image_size ?? 224;
  const views = {
    transform_type: 'val' as const, n_augs: 1, image_size: size,
    resize: o.resize ?? (o.imageSize !== null ? scaledViewSizes(size).resizeSize : base?.resize ?? 256),
    small_crop_size: base?.small_crop_size ?? 96, channels: base?.channels ?? 3,
    mean: base?.mean ?? [0.485, 0.456, 0.406], std: base?.std ?? [0.229, 0.224, 0.225],
    blur_sigma: base?.blur_sigma ?? [0.1, 2] as [number, number],
    batch_size: o.batchSize ?? 256, num_workers: o.numWorkers ?? 2, train: false,
  };
  if (isShards) {
    return { type: 'web_dataloader', args: { ...views, shards: path, dataset_size: 0, shuffle: 0 } };
  }
  return { type: 'image_folder_dataloader', args: { ...views, root: path, shuffle: false, layout: 'classes' } };
}

export async function runEmbed(o: EmbedOptions): Promise<{ rows: number; dim: number }> {
  const log = logger(true);
  // before minutes of encoding: the folder the arrays go to must exist
  const folder = dirname(resolve(o.out));
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new Error(`--out: the folder ${folder} does not exist`);
  }
  const checkpoint = await loadTrainingCheckpoint(o.resume);
  try {
    const base = checkpointConfig(checkpoint.config, checkpoint.path);
    if (base === null && o.config === null) {
      throw new Error(`${o.resume}: the checkpoint carries no config; pass -c <config.yaml> for its encoder`);
    }
    // embed runs no evaluator and reads --data, but an eval config must name an evaluator and
    // its two loaders: supply them when absent (the views' statistics from train_dataloader)
    const values = [base?.value, o.config ? readConfigFile(o.config).value : undefined];
    const has = (key: string): boolean =>
      values.some((v) => Array.isArray(v?.[key]) && (v[key] as unknown[]).length > 0);
    const overrides: ConfigOverride[] = has('evaluator') ? [] : [{ path: ['evaluator'], origin: '(embed)',
      value: [{ type: 'KNNEvaluator', args: { k: [20] } }] }];
    const train = [...values].reverse().find((v) => v?.train_dataloader !== undefined)?.train_dataloader;
    if (!has('valid_dataloader') && train !== undefined) {
      overrides.push({ path: ['valid_dataloader'], origin: '(embed)', value: [train, train] });
    }
    const config: EvalConfig = loadConfig('eval', { file: o.config, base, overrides });
    const runtime = setupRuntime({ ...config, runtime: { ...config.runtime, device: o.device ?? config.runtime.device,
      threads: o.threads ?? config.runtime.threads } }, config.trainer?.mixed_precision ?? false);
    const encoder = buildEncoder(config, runtime);
    try {
      encoder.loadStateDict(checkpoint.encoder, { context: `${checkpoint.path}: encoder` });
      const spec = dataSpec(o.data, config.valid_dataloader[1] ?? config.train_dataloader, o);
      const loader = new DataLoader({ ...loaderOptions(spec, { rank: 0, worldSize: 1, seed: 0 }), shuffle: 0,
        datasetSize: undefined });
      try {
        const f = await extractFeatures(encoder, loader.epoch(0), {
          device: runtime.device, precision: runtime.precision, channelsLast: runtime.channelsLast, label: 'embed',
        });
        const [n, d] = f.features.shape as [number, number];
        writeNpy(o.out, f.features.data() as Float32Array, [n, d]);
        const labelsPath = o.out.replace(/\.npy$/, '') + '.labels.npy';
        writeNpy(labelsPath, f.labels.data() as BigInt64Array, [n]);
        f.features.dispose();
        f.labels.dispose();
        log(`wrote ${o.out} (${n} x ${d} float32) and ${labelsPath} (int64)`);
        return { rows: n, dim: d };
      } finally {
        await loader.close();
      }
    } finally {
      encoder.dispose();
    }
  } finally {
    disposeCheckpoint(checkpoint);
  }
}
