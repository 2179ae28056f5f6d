// Seeded randomness for the data pipeline: xoshiro128** (Blackman and Vigna), seeded
// through a SplitMix32-style hash of integers and strings. Every random choice of the
// pipeline (shard order, shuffle buffer, views) comes from one of these generators.

/** 32-bit finaliser of MurmurHash3: a bijective mix of one word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a list of integers and strings into one 32-bit word (order matters). */
export function hashSeed(...parts: (number | string | bigint)[]): number {
  let h = 0x243f6a88;
  const mix = (word: number): void => {
    h = fmix32((h ^ (word >>> 0)) + 0x9e3779b9 + (h << 6) + (h >>> 2));
  };
  for (const part of parts) {
    if (typeof part === 'string') {
      mix(0x51ed270b ^ part.length);
      for (let i = 0; i < part.length; i++) mix(part.charCodeAt(i));
    } else {
      const big = typeof part === 'bigint' ? part : BigInt(Math.trunc(part));
      const low = Number(BigInt.asUintN(32, big));
      const high = Number(BigInt.asUintN(32, big >> 32n));
      mix(low);
      mix(high ^ 0x7f4a7c15);
    }
  }
  return h;
}

/** xoshiro128**: 128-bit state, period 2^128 - 1. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds from any list of integers and strings, e.g. `new Rng(seed, epoch, rank, worker)`. */
  constructor(...seedParts: (number | string | bigint)[]) {
    let x = hashSeed(...seedParts);
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      return fmix32(x);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform double in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.random();
  }

  /** Uniform integer in [low, high) (high exclusive, like torch.randint). */
  randint(low: number, high: number): number {
    return low + Math.floor(this.random() * (high - low));
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.random() < p;
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
