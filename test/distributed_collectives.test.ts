// Collectives, the gather gradient and synchronised batch norm over two processes on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { freePort } from './helpers/ports.js';
import { assertClose } from './helpers/close.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'dist_worker.js');

async function runRanks(mode: string, world = 2, timeoutMs = 20000):
  Promise<{ code: number | null; out: Record<string, unknown> | null; stderr: string }[]> {
  const port = await freePort();
  return Promise.all(Array.from({ length: world }, (_, rank) => new Promise<{
    code: number | null; out: Record<string, unknown> | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [worker, mode], {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port), GROCO_NUM_THREADS: '1', GROCO_TEST_TIMEOUT_MS: String(timeoutMs) },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => {
      const line = stdout.trim().split('\n').pop();
      let out: Record<string, unknown> | null = null;
      try { out = line ? JSON.parse(line) as Record<string, unknown> : null; } catch { out = null; }
      resolve({ code, out, stderr });
    });
  })));
}

test('all-reduce, all-gather, gather gradient and synchronised batch norm on 2 ranks', async () => {
  const results = await runRanks('collectives');
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  for (const { out } of results) {
    assert.deepEqual(out!.allReduce, [3, 3, 3]);
    assert.deepEqual(out!.allGather, [0, 0, 1, 1]);
    // d/dx of sum over ranks r of (r + 1) * sum(gathered) = 1 + 2
    assert.deepEqual(out!.gatherGrad, [3, 3]);
    assertClose(out!.bnOut as number[], out!.refOut as number[], 1e-5, 'sync BN output');
    assertClose(out!.bnWeightGrad as number[], out!.refWeightGrad as number[], 1e-4, 'sync BN weight grad');
    assertClose(out!.runningVar as number[], out!.refRunningVar as number[], 1e-5, 'sync BN running var');
  }
});

test('a rank that dies makes the other fail with a message naming its rank, not hang', async () => {
  const started = Date.now();
  const results = await runRanks('die', 2, 5000);
  assert.equal(results[1]!.code, 3);
  const survivor = results[0]!;
  const message = String(survivor.out?.error ?? survivor.stderr);
  assert.match(message, /rank 0: (all-reduce|barrier|store exchange) failed|rank 0: cannot join/);
  assert.ok(Date.now() - started < 30000, 'took too long');
});

test('a rank that never joins makes the others fail within the timeout', async () => {
  const port = await freePort();
  const started = Date.now();
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [worker, 'collectives'], {
      env: { ...process.env, RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
        GROCO_NUM_THREADS: '1', GROCO_TEST_TIMEOUT_MS: '3000' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /rank 0: cannot join the process group at 127\.0\.0\.1:\d+ \(world size 2\) within 3 s/);
  assert.ok(Date.now() - started < 20000, `took ${Date.now() - started} ms`);
});
