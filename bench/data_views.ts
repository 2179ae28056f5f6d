// Throughput of the `dino` 2-view pipeline at 224 px from JPEG shards of real photographs,
// ours (DataLoader, worker threads) against the PyTorch peer (PIL + torchvision in a
// DataLoader) with the same number of workers, alternating in one run.
//
//   node dist/bench/data_views.js [--images 1024] [--workers 2] [--batch 32] [--rounds 3]
//   node dist/bench/data_views.js --sweep [--images 256]   (ours only, 0 to 3 workers)
//
// Images per second are counted in the steady state: from the first batch to the last.

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DataLoader } from '../src/data/loader.js';
import { makePhotoShards } from './data_photos.js';

interface Run {
  images: number;
  seconds: number;
  steadyImages: number;
  steadySeconds: number;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function runOurs(shards: string[], workers: number, batch: number, epoch: number): Promise<Run> {
  const loader = new DataLoader({
    dataset: { type: 'shards', shards }, views: { transformType: 'dino', nAugs: 2 },
    batchSize: batch, numWorkers: workers, shuffle: 0, seed: epoch,
  });
  try {
    const start = performance.now();
    let first: [number, number] | null = null;
    let images = 0;
    for await (const b of loader.epoch(epoch)) {
      images += b.cls.length;
      first ??= [performance.now(), images];
    }
    const end = performance.now();
    return {
      images, seconds: (end - start) / 1000,
      steadyImages: images - first![1], steadySeconds: (end - first![0]) / 1000,
    };
  } finally {
    await loader.close();
  }
}

function runPeer(shards: string[], workers: number, batch: number): Run {
  const script = fileURLToPath(new URL('../../bench/data_views_peer.py', import.meta.url));
  const result = spawnSync('/usr/bin/python3', [script, '--workers', String(workers), '--batch', String(batch), ...shards],
    { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`peer failed: ${result.stderr}`);
  const out = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
  return {
    images: out.images!, seconds: out.seconds!, steadyImages: out.steady_images!, steadySeconds: out.steady_seconds!,
  };
}

async function main(): Promise<void> {
  const images = arg('images', 1024);
  const workers = arg('workers', 2);
  const batch = arg('batch', 32);
  const rounds = arg('rounds', 3);
  const dir = join('.bench', 'data_views');
  mkdirSync(dir, { recursive: true });
  const shards = await makePhotoShards(join(dir, `photos-${images}`), images, 8);

  if (process.argv.includes('--sweep')) {
    // where the work runs: 0 = the main thread (decoding still on libuv's pool), else threads
    for (const n of [0, 1, 2, 3]) {
      const runs: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const run = await runOurs(shards, n, batch, r);
        runs.push(run.steadyImages / run.steadySeconds);
      }
      console.log(`${n} workers: median ${median(runs).toFixed(1)} img/s ` +
        `(${runs.map((x) => x.toFixed(1)).join(', ')})`);
    }
    return;
  }
  const ours: number[] = [];
  const peer: number[] = [];
  console.log(`dino 2 views, 224 px, ${images} JPEGs (photo crops, longer side 500 px), ` +
    `${workers} workers, batch ${batch}, ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)}`);
  for (let r = 0; r < rounds; r++) {
    const a = await runOurs(shards, workers, batch, r);
    const b = runPeer(shards, workers, batch);
    ours.push(a.steadyImages / a.steadySeconds);
    peer.push(b.steadyImages / b.steadySeconds);
    console.log(`round ${r + 1}: ours ${ours.at(-1)!.toFixed(1)} img/s (${a.images} in ${a.seconds.toFixed(2)} s), ` +
      `peer ${peer.at(-1)!.toFixed(1)} img/s (${b.images} in ${b.seconds.toFixed(2)} s)`);
  }
  const result = {
    images, workers, batch, rounds, ours: median(ours), peer: median(peer), ratio: median(ours) / median(peer),
    oursRounds: ours, peerRounds: peer,
  };
  console.log(`median: ours ${result.ours.toFixed(1)} img/s, peer ${result.peer.toFixed(1)} img/s, ` +
    `ratio ${result.ratio.toFixed(2)} (load average ${loadavg()[0]!.toFixed(1)})`);
  writeFileSync(join('.bench', 'data_views.json'), JSON.stringify(result, null, 2));
}

await main();
