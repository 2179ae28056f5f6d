// `groco inspect` and `groco export-torchvision`.
import { load, save } from '../torch/save.js';
import { Tensor } from '../torch/index.js';
import { disposeCheckpoint, loadTrainingCheckpoint } from '../train/checkpoint.js';
import { plain } from './common.js';

interface Entry { key: string; dtype: string; shape: number[] }

function walk(value: unknown, prefix: string, tensors: Entry[], scalars: Record<string, unknown>, depth = 0): void {
  if (value instanceof Tensor) {
    tensors.push({ key: prefix, dtype: value.dtype, shape: value.shape });
  } else if (value instanceof Map) {
    if (prefix.endsWith('config') && depth > 0) {
      scalars[prefix] = plain(value);
      return;
    }
    for (const [k, v] of value) walk(v, prefix ? `${prefix}.${String(k)}` : String(k), tensors, scalars, depth + 1);
  } else if (Array.isArray(value) && value.some((v) => v instanceof Tensor || v instanceof Map)) {
    value.forEach((v, i) => walk(v, `${prefix}[${i}]`, tensors, scalars, depth + 1));
  } else {
    scalars[prefix] = value instanceof Uint8Array ? `<${value.length} bytes>` : plain(value);
  }
}

function disposeAll(value: unknown): void {
  if (value instanceof Tensor) value.dispose();
  else if (value instanceof Map) for (const v of value.values()) disposeAll(v);
  else if (Array.isArray(value)) for (const v of value) disposeAll(v);
}

export async function runInspect(file: string, json: boolean): Promise<void> {
  const value = await load(file);
  try {
    const tensors: Entry[] = [];
    const scalars: Record<string, unknown> = {};
    walk(value, '', tensors, scalars);
    const parameters = tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    if (json) {
      process.stdout.write(JSON.stringify({ file, values: scalars, tensors, tensor_count: tensors.length,
        elements: parameters }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
      return;
    }
    const out: string[] = [`${file}`];
    for (const [k, v] of Object.entries(scalars)) {
      if (k.endsWith('config') && typeof v === 'object') {
        out.push(`  ${k}:`);
        for (const line of JSON.stringify(v, null, 2).split('\n')) out.push(`    ${line}`);
      } else {
        out.push(`  ${k || '(value)'}: ${typeof v === 'bigint' ? v.toString() : JSON.stringify(v)}`);
      }
    }
    out.push(`  ${tensors.length} tensors, ${parameters.toLocaleString('en-US')} elements:`);
    const width = Math.min(70, Math.max(...tensors.map((t) => t.key.length), 10));
    for (const t of tensors) out.push(`    ${t.key.padEnd(width)}  ${t.dtype.padEnd(8)}  [${t.shape.join(', ')}]`);
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    disposeAll(value);
  }
}

/** Writes the encoder as a plain torchvision ResNet state dict (no `module.` / `encoder.`). */
export async function runExportTorchvision(checkpointPath: string, out: string): Promise<number> {
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
