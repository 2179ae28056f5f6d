// Runs Python code in the PyTorch peer (Debian's python3-torch) and returns its JSON answer.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const peerPython = process.env.GROCO_PEER_PYTHON ?? '/usr/bin/python3';

export function peerAvailable(): boolean {
  if (!existsSync(peerPython)) return false;
  const r = spawnSync(peerPython, ['-c', 'import torch'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * Runs `script` with the JSON of `input` on stdin; the script prints one JSON value on its last
 * line of stdout. Common helpers (`T`, `out`) are predefined.
 */
export function runPeer<T = unknown>(script: string, input: unknown = null, timeoutMs = 120_000): T {
  const prelude = `
import json, sys, math
import torch
torch.set_num_threads(1)
INPUT = json.loads(sys.stdin.read())
def T(spec, dtype=None):
    if spec is None: return None
    dt = getattr(torch, spec.get('dtype', 'float32')) if dtype is None else dtype
    return torch.tensor(spec['data'], dtype=torch.float64).reshape(spec['shape']).to(dt)
def out(t):
    if t is None: return None
    if isinstance(t, (list, tuple)): return [out(x) for x in t]
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return {'shape': list(t.shape), 'data': t.double().flatten().tolist() if t.dtype != torch.bool else t.int().flatten().tolist()}
    return t
`;
  const r = spawnSync(peerPython, ['-c', prelude + '\n' + script], {
    input: JSON.stringify(input), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 30,
  });
  if (r.status !== 0) {
    throw new Error(`PyTorch peer failed (${r.status ?? r.signal}):\n${r.stderr}`);
  }
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export interface TensorJson { shape: number[]; data: number[] }
