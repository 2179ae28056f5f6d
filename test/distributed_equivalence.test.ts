// Two processes with batch B/2 each train exactly like one process with batch B: the gather of
// negatives with its gradient, synchronised batch norm and gradient averaging together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { assertClose } from './helpers/close.js';
import { freePort } from './helpers/ports.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'dp_worker.js');

interface Out { rank: number; losses: number[]; state: Record<string, number[]> }

function run(args: string[], env: Record<string, string>): Promise<Out> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, ...args], { env: { ...process.env, GROCO_NUM_THREADS: '1', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited ${code}: ${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Out);
    });
  });
}

async function compare(lossType: string, args: Record<string, unknown>): Promise<void> {
  const json = JSON.stringify(args);
  const single = await run([lossType, json], {});
  const port = String(await freePort());
  const ranks = await Promise.all([0, 1].map((r) => run([lossType, json], {
    RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port,
  })));
  // The model runs in float64 but the losses compute in float32 (as the spec requires), where
  // the two runs sum in different orders: agreement is to float32 rounding.
  for (const r of ranks) {
    assertClose(r.losses, single.losses, 1e-6, `${lossType} losses (rank ${r.rank})`);
    for (const [k, v] of Object.entries(single.state)) {
      assertClose(r.state[k]!, v, 1e-5, `${lossType} ${k} (rank ${r.rank})`);
    }
  }
}

test('GroCo: 2 ranks x B/2 equal 1 process x B (float64, synchronised BN)', async () => {
  await compare('GroCo', { n_augs: 2, topk_neg: 5, steepness: 1 });
});

test('GroCo without stop-grad: the gathered negatives carry the summed gradient', async () => {
  await compare('GroCo', { n_augs: 2, topk_neg: 5, steepness: 1, stop_grad: false });
});

test('NT-Xent without stop-grad: 2 ranks equal 1 process', async () => {
  await compare('NT_Xent', { temperature: 0.5, stop_grad: false });
});
