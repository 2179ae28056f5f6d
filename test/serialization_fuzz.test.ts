// Seeded mutations of the corpus: whatever the bytes, reading returns a value whose tensors lie
// inside their storages, or throws a SerializationError naming the file, in bounded time.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  readCheckpoint,
  SerializationError,
  tensorBytes,
  torchGlobals,
  unpickle,
  writeCheckpoint,
} from '../src/torch/serialization/index.js';
import type { TensorRecord } from '../src/torch/serialization/index.js';
import { CORPUS_DIR, random } from './serialization_peer.js';

const ITERATIONS = Number(process.env.GROCO_FUZZ_ITERATIONS ?? 4000);
const INTERESTING = [0, 1, 0x7f, 0x80, 0xff];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffff0, 64];

interface Seed {
  name: string;
  bytes: Uint8Array;
}

function seeds(): Seed[] {
  const list: Seed[] = readdirSync(CORPUS_DIR)
    .filter((name) => !name.endsWith('.py') && !name.endsWith('.md'))
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(CORPUS_DIR, name))) }));
  const data = new Uint8Array(new Float64Array([1, 2, 3, 4]).buffer);
  list.push({
    name: 'written_here.pth',
    bytes: writeCheckpoint(new Map([['t', { kind: 'tensor', dtype: 'float64', shape: [2, 2], data }]])),
  });
  return list;
}

function mutate(input: Uint8Array, next: () => number, others: Seed[]): Uint8Array {
  const pick = (n: number) => Math.floor(next() * n);
  let bytes = Uint8Array.from(input);
  const rounds = 1 + pick(3);
  for (let round = 0; round < rounds; round++) {
    const at = pick(bytes.length + 1);
    switch (pick(8)) {
      case 0: // flip bits
        if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)] ^= 1 << pick(8);
        break;
      case 1: // an interesting byte
        if (bytes.length > 0) {
          bytes[Math.min(at, bytes.length - 1)] = INTERESTING[pick(INTERESTING.length)];
        }
        break;
      case 2: // an interesting 32-bit little-endian value, where sizes and offsets live
        if (at + 4 <= bytes.length) {
          const value = INTERESTING_32[pick(INTERESTING_32.length)];
          Buffer.from(bytes.buffer, bytes.byteOffset).writeUInt32LE(value, at);
        }
        break;
      case 3: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 4: // delete a range
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1 + pick(16))]);
        break;
      case 5: // duplicate a range
        bytes = Uint8Array.from([
          ...bytes.subarray(0, at),
          ...bytes.subarray(at, at + 1 + pick(32)),
          ...bytes.subarray(at),
        ]);
        break;
      case 6: // insert random bytes
        bytes = Uint8Array.from([
          ...bytes.subarray(0, at),
          ...Array.from({ length: 1 + pick(8) }, () => pick(256)),
          ...bytes.subarray(at),
        ]);
        break;
      default: {
        // splice in part of another seed
        const other = others[pick(others.length)].bytes;
        const from = pick(other.length);
        const piece = other.subarray(from, from + 1 + pick(64));
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...piece]);
      }
    }
  }
  return bytes;
}

function tensorsOf(value: unknown, out: TensorRecord[] = [], depth = 0): TensorRecord[] {
  if (depth > 1000) return out;
  if (value instanceof Map) for (const v of value.values()) tensorsOf(v, out, depth + 1);
  else if (Array.isArray(value)) for (const v of value) tensorsOf(v, out, depth + 1);
  else if (typeof value === 'object' && value !== null && (value as TensorRecord).kind === 'tensor') {
    out.push(value as TensorRecord);
  }
  return out;
}

test(`${ITERATIONS} seeded mutations of the corpus only give values or SerializationErrors`, () => {
  const all = seeds();
  const next = random(Number(process.env.GROCO_FUZZ_SEED ?? 20240601));
  let slowest = 0;
  const outcomes = { read: 0, refused: 0 };
  const started = performance.now();

  for (let i = 0; i < ITERATIONS; i++) {
    const seed = all[i % all.length];
    const bytes = mutate(seed.bytes, next, all);
    const name = `fuzz-${i}-${seed.name}`;
    const t0 = performance.now();
    try {
      const value = seed.name.endsWith('.pkl')
        ? unpickle(bytes, { source: name, globals: torchGlobals() }).value
        : readCheckpoint(bytes, name);
      // what reads must be usable: every tensor's elements lie inside its storage
      for (const tensor of tensorsOf(value)) tensorBytes(tensor);
      outcomes.read++;
    } catch (error) {
      const ok = error instanceof SerializationError && error.message.startsWith(`${name}: `);
      assert.ok(ok, `${name}: ${String(error)}\ninput (base64): ${Buffer.from(bytes).toString('base64')}`);
      outcomes.refused++;
    }
    slowest = Math.max(slowest, performance.now() - t0);
  }

  const seconds = (performance.now() - started) / 1000;
  assert.ok(slowest < 500, `slowest input took ${slowest.toFixed(1)} ms`);
  assert.ok(seconds < 30, `took ${seconds.toFixed(1)} s`);
  // both outcomes occur, so the mutations neither always break nor never touch the files
  assert.ok(outcomes.read > 50 && outcomes.refused > 1000, JSON.stringify(outcomes));
});
