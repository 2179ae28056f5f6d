// Sorting networks as layers of disjoint comparators: odd-even transposition and bitonic, for
// any number of wires n >= 2 (spec section 1).

export const NETWORK_TYPES = ['odd_even', 'bitonic'] as const;
export type NetworkType = (typeof NETWORK_TYPES)[number];

/**
 * One comparator. It reads wires `a < b`; the smaller value goes to wire `a` and the larger to
 * wire `b`, or the other way round when `reversed` (the descending halves of a bitonic network).
 */
export interface Comparator {
  readonly a: number;
  readonly b: number;
  readonly reversed: boolean;
}

/** The comparators of one layer touch each wire at most once. */
export type Layer = readonly Comparator[];

export interface SortingNetwork {
  readonly type: NetworkType;
  /** Number of wires. */
  readonly size: number;
  /** Layers in order; a layer may be empty (odd-even on 2 wires has one). */
  readonly layers: readonly Layer[];
}

export function checkNetworkType(value: unknown, argument = 'network'): NetworkType {
  if (typeof value !== 'string' || !(NETWORK_TYPES as readonly string[]).includes(value)) {
    throw new Error(`sortingNetwork: argument '${argument}' expected one of ` +
      `${NETWORK_TYPES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as NetworkType;
}

function checkSize(fn: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 2) {
    throw new Error(`${fn}: argument 'n' expected an integer >= 2, got ${String(n)}`);
  }
  return n;
}

/** Odd-even transposition: n layers; layer l compares (i, i+1) for i = l mod 2, l mod 2 + 2, ... */
export function oddEvenNetwork(n: number): SortingNetwork {
  checkSize('oddEvenNetwork', n);
  const layers: Layer[] = [];
  for (let l = 0; l < n; l++) {
    const layer: Comparator[] = [];
    for (let i = l % 2; i + 1 < n; i += 2) layer.push({ a: i, b: i + 1, reversed: false });
    layers.push(layer);
  }
  return { type: 'odd_even', size: n, layers };
}

/**
 * Bitonic sorter on N = 2^ceil(log2 n) wires whose first N - n wires are virtual: a comparator
 * that touches a virtual wire leaves its real wire as it is and is left out; wires are then
 * numbered from the first real one.
 */
export function bitonicNetwork(n: number): SortingNetwork {
  checkSize('bitonicNetwork', n);
  const blocks = Math.ceil(Math.log2(n));
  const padded = 2 ** blocks;
  const virtual = padded - n;
  const layers: Layer[] = [];
  for (let block = 0; block < blocks; block++) {
    for (let step = 0; step <= block; step++) {
      const m = 2 ** (block - step);
      const layer: Comparator[] = [];
      for (let i = 0; i < padded; i += 2 * m) {
        for (let j = 0; j < m; j++) {
          const ix = i + j;
          if (ix < virtual) continue; // touches a virtual wire (ix < ix + m)
          const reversed = Math.floor(ix / 2 ** (block + 1)) % 2 === 1;
          layer.push({ a: ix - virtual, b: ix + m - virtual, reversed });
        }
      }
      layers.push(layer);
    }
  }
  return { type: 'bitonic', size: n, layers };
}

const cache = new Map<string, SortingNetwork>();

/** The network of a type and size (built once, then shared; treat it as read-only). */
export function sortingNetwork(type: NetworkType, n: number): SortingNetwork {
  checkNetworkType(type, 'type');
  const key = `${type}:${n}`;
  let network = cache.get(key);
  if (network === undefined) {
    network = type === 'odd_even' ? oddEvenNetwork(n) : bitonicNetwork(n);
    cache.set(key, network);
  }
  return network;
}

/** Runs the network with hard comparators on plain numbers (ascending result). */
export function hardSort(network: SortingNetwork, values: readonly number[]): number[] {
  if (values.length !== network.size) {
    throw new Error(`hardSort: argument 'values' expected ${network.size} numbers, got ` +
      `${values.length}`);
  }
  const wires = [...values];
  for (const layer of network.layers) {
    for (const { a, b, reversed } of layer) {
      const lo = Math.min(wires[a]!, wires[b]!);
      const hi = Math.max(wires[a]!, wires[b]!);
      wires[a] = reversed ? hi : lo;
      wires[b] = reversed ? lo : hi;
    }
  }
  return wires;
}

/** A layer in the dense layout of the diffsort package (row-major number[][] matrices). */
export interface LayerMatrices {
  /** (k, n): comparator c reads its first value from wire w where splitA[c][w] = 1. */
  splitA: number[][];
  /** (k, n): and its second value where splitB[c][w] = 1. */
  splitB: number[][];
  /** (n, k): the minimum of comparator c goes to wire w where combineMin[w][c] = 1. */
  combineMin: number[][];
  /** (n, k): and the maximum where combineMax[w][c] = 1. */
  combineMax: number[][];
}

/**
 * The four 0/1 matrices per layer, comparators in layer order. The diffsort package also adds
 * identity comparators (weight 0.5) on wires a layer leaves alone; they change nothing and are
 * not produced here.
 */
export function layerMatrices(network: SortingNetwork): LayerMatrices[] {
  const n = network.size;
  const zeros = (rows: number, cols: number) =>
    Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
  return network.layers.map((layer) => {
    const k = layer.length;
    const m: LayerMatrices = {
      splitA: zeros(k, n), splitB: zeros(k, n), combineMin: zeros(n, k), combineMax: zeros(n, k),
    };
    layer.forEach(({ a, b, reversed }, c) => {
      m.splitA[c]![a] = 1;
      m.splitB[c]![b] = 1;
      m.combineMin[reversed ? b : a]![c] = 1;
      m.combineMax[reversed ? a : b]![c] = 1;
    });
    return m;
  });
}
