// `groco preprocess imagenet | folder | fashion-mnist`: datasets to WebDataset shards.
import {
  preprocessFashionMnist, preprocessFolder, preprocessImageNet, type PreprocessProgress,
  type PreprocessSummary,
} from '../data/index.js';
import { existsSync, statSync } from 'node:fs';
import { ProgressBar } from '../train/progress.js';
import type { PreprocessOptions } from './args.js';

export async function runPreprocess(o: PreprocessOptions): Promise<PreprocessSummary> {
  const bars = new Map<string, ProgressBar>();
  const onProgress = (p: PreprocessProgress): void => {
    let bar = bars.get(p.split);
    if (bar === undefined) {
      bar = new ProgressBar(`${p.split} shards`, p.shardsTotal);
      bars.set(p.split, bar);
    }
    bar.tick(1, p.kept ? `kept ${p.shard}` : p.shard);
    if (p.shardsDone === p.shardsTotal) bar.finish();
  };
  if (existsSync(o.output) && !statSync(o.output).isDirectory()) {
    throw new Error(`--output: ${o.output} exists and is not a folder`);
  }
  const common = { output: o.output, seed: o.seed, strict: o.strict, onProgress };
  let summary: PreprocessSummary;
  if (o.dataset === 'fashion-mnist') {
    summary = await preprocessFashionMnist({ ...common, input: o.input ?? '/usr/share/datasets/fashion-mnist',
      shardSize: o.shardSize ?? undefined });
  } else if (o.dataset === 'imagenet') {
    const size = o.shardSize ?? undefined;
    summary = await preprocessImageNet({ ...common, input: o.input!, trainShardSize: size, valShardSize: size });
  } else {
    summary = await preprocessFolder({ ...common, input: o.input!, shardSize: o.shardSize ?? undefined });
  }
  for (const s of summary.splits) {
    process.stdout.write(`${s.split}: ${s.samples} samples in ${s.folder}: ${s.shardsWritten.length} shards ` +
      `written, ${s.shardsKept.length} kept from an earlier run, ${s.samplesSkipped} samples skipped\n`);
  }
  const broken = Object.entries(summary.broken).filter(([, n]) => n > 0);
  if (broken.length > 0) process.stdout.write(`broken input: ${broken.map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
  process.stdout.write(`done in ${summary.seconds.toFixed(1)} s\n`);
  return summary;
}
