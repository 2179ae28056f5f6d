// Runs test/peers/models_peer.py and reads the tensors it writes (raw files plus a manifest).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tensor, type DType, type Tensor } from '../../src/torch/index.js';
import { peerPython } from './peer.js';

const SCRIPT = fileURLToPath(new URL('../../../test/peers/models_peer.py', import.meta.url));

export interface PeerJob { command: string; [field: string]: unknown }

/** Runs `jobs` in one Python process (importing torch takes seconds); one answer per job. */
export function runModelsPeer(jobs: PeerJob[], timeoutMs = 300_000): unknown[] {
  const r = spawnSync(peerPython, [SCRIPT], {
    input: JSON.stringify(jobs), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`models peer failed (${r.status ?? r.signal}):\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as unknown[];
}

interface ManifestEntry { key: string; shape: number[]; dtype: string; file: string }

function readManifest(folder: string): ManifestEntry[] {
  return JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as ManifestEntry[];
}

/** The tensors a peer dumped into `folder`, in its order. */
export function readDump(folder: string): Map<string, Tensor> {
  const manifest = readManifest(folder);
  const out = new Map<string, Tensor>();
  for (const entry of manifest) {
    const bytes = readFileSync(join(folder, entry.file));
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    let data: ArrayBufferView;
    if (entry.dtype === 'float32') data = new Float32Array(buffer);
    else if (entry.dtype === 'int64') data = new BigInt64Array(buffer);
    else throw new Error(`readDump: ${entry.key}: unexpected dtype ${entry.dtype}`);
    out.set(entry.key, tensor(data, { shape: entry.shape, dtype: entry.dtype as DType }));
  }
  return out;
}

/** Raw bytes of each dumped tensor, for exact comparisons. */
export function readDumpBytes(folder: string): Map<string, Buffer> {
  const manifest = readManifest(folder);
  return new Map(manifest.map((e) => [e.key, readFileSync(join(folder, e.file))]));
}

export function disposeAll(tensors: Map<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}

/** max |a - b| / max(max |b|, 1e-12): a relative error for a whole tensor. */
export function relativeError(a: Tensor, b: Tensor): number {
  const x = a.data() as Float32Array;
  const y = b.data() as Float32Array;
  if (x.length !== y.length) throw new Error(`relativeError: ${x.length} vs ${y.length} values`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}
