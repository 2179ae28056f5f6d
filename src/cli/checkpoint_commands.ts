// `groco inspect` and `groco export-torchvision`.
import { resolve } from 'node:path';
import { save } from '../torch/save.js';
import type { Tensor } from '../torch/index.js';
import {
  formatCheckpointSummary, readCheckpointFile, summarizeCheckpoint,
} from '../torch/serialization/index.js';
import { disposeCheckpoint, loadTrainingCheckpoint } from '../train/checkpoint.js';

/** What a checkpoint holds, read without turning its storages into tensors. */
export async function runInspect(file: string, json: boolean): Promise<void> {
  const summary = summarizeCheckpoint(await readCheckpointFile(file));
  if (json) {
    const replacer = (_key: string, v: unknown): unknown => {
      if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), x]));
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Uint8Array) return `<${v.length} bytes>`;
      if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
      return v;
    };
    process.stdout.write(JSON.stringify({ file, ...summary }, replacer) + '\n');
  } else {
    process.stdout.write(`${file}\n${formatCheckpointSummary(summary, Infinity)}\n`);
  }
}

/** Writes the encoder as a plain torchvision ResNet state dict (no `module.` / `encoder.`). */
export async function runExportTorchvision(checkpointPath: string, out: string): Promise<number> {
  if (resolve(out) === resolve(checkpointPath)) {
    throw new Error(`export-torchvision: <out.pth> '${out}' is the checkpoint itself; writing it would ` +
      'replace the training checkpoint with the bare encoder. Choose another file.');
  }
  const checkpoint = await loadTrainingCheckpoint(checkpointPath);
  try {
    const state = new Map<string, Tensor>();
    for (const [key, t] of checkpoint.encoder) {
      const name = key.replace(/^module\./, '').replace(/^encoder\./, '');
      if (name.startsWith('fc.')) continue;
      state.set(name, t.contiguous());
    }
    if (!state.has('conv1.weight')) {
      throw new Error(`${checkpointPath}: the encoder has no conv1.weight; is it a ResNet checkpoint?`);
    }
    await save(out, state);
    for (const t of state.values()) t.dispose();
    return state.size;
  } finally {
    disposeCheckpoint(checkpoint);
  }
}
