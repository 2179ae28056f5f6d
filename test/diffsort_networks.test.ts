// Sorting networks: they sort every input (checked on all 0/1 inputs, which suffices for
// comparator networks), their layers are disjoint, and bad arguments are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bitonicNetwork, hardSort, layerMatrices, oddEvenNetwork, sortingNetwork, type SortingNetwork,
} from '../src/diffsort/index.js';

const SIZES = [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16];

/** The 0/1 principle: a comparator network sorts everything iff it sorts every 0/1 input. */
function sortsEveryBinaryInput(network: SortingNetwork): boolean {
  const n = network.size;
  for (let bits = 0; bits < 2 ** n; bits++) {
    const input = Array.from({ length: n }, (_, w) => (bits >> w) & 1);
    const out = hardSort(network, input);
    for (let w = 1; w < n; w++) if (out[w - 1]! > out[w]!) return false;
  }
  return true;
}

for (const [name, build] of [['odd_even', oddEvenNetwork], ['bitonic', bitonicNetwork]] as const) {
  test(`${name} sorts every 0/1 input for n = 2 .. 16`, () => {
    for (const n of SIZES) assert.ok(sortsEveryBinaryInput(build(n)), `${name} n=${n}`);
  });

  test(`${name}: comparators of a layer are disjoint, in range, a < b`, () => {
    for (const n of SIZES) {
      for (const layer of build(n).layers) {
        const seen = new Set<number>();
        for (const { a, b } of layer) {
          assert.ok(a >= 0 && a < b && b < n, `${name} n=${n}: comparator (${a}, ${b})`);
          assert.ok(!seen.has(a) && !seen.has(b), `${name} n=${n}: wire used twice in a layer`);
          seen.add(a);
          seen.add(b);
        }
      }
    }
  });
}

test('odd_even has n layers, bitonic log2(N)(log2(N)+1)/2', () => {
  for (const n of SIZES) {
    assert.equal(oddEvenNetwork(n).layers.length, n);
    const blocks = Math.ceil(Math.log2(n));
    assert.equal(bitonicNetwork(n).layers.length, (blocks * (blocks + 1)) / 2);
  }
});

test('bitonic on a power of two has N/2 comparators per layer and reverses half of them', () => {
  const network = bitonicNetwork(8);
  for (const layer of network.layers) assert.equal(layer.length, 4);
  // the first layer compares (0,1), (2,3), (4,5), (6,7): blocks of 2, every other one descending
  assert.deepEqual(network.layers[0]!.map((c) => c.reversed), [false, true, false, true]);
  assert.ok(network.layers.at(-1)!.every((c) => !c.reversed));
});

test('hard sort sorts random numbers, also with ties', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const n of SIZES) {
    for (const type of ['odd_even', 'bitonic'] as const) {
      const values = Array.from({ length: n }, () => Math.floor(random() * 5) - 2.5);
      const expected = [...values].sort((x, y) => x - y);
      assert.deepEqual(hardSort(sortingNetwork(type, n), values), expected);
    }
  }
});

test('layer matrices: one 1 per row of the splits, min and max columns of each comparator', () => {
  const network = bitonicNetwork(5);
  const matrices = layerMatrices(network);
  assert.equal(matrices.length, network.layers.length);
  matrices.forEach((m, l) => {
    const k = network.layers[l]!.length;
    assert.equal(m.splitA.length, k);
    assert.ok(m.splitA.every((row) => row.length === 5 && row.reduce((s, v) => s + v) === 1));
    assert.ok(m.splitB.every((row) => row.reduce((s, v) => s + v) === 1));
    assert.equal(m.combineMin.length, 5);
    for (let c = 0; c < k; c++) {
      const { a, b, reversed } = network.layers[l]![c]!;
      assert.equal(m.combineMin[reversed ? b : a]![c], 1);
      assert.equal(m.combineMax[reversed ? a : b]![c], 1);
    }
  });
});

test('networks are cached and bad arguments are refused with their names', () => {
  assert.equal(sortingNetwork('odd_even', 9), sortingNetwork('odd_even', 9));
  assert.throws(() => oddEvenNetwork(1),
    /oddEvenNetwork: argument 'n' expected an integer >= 2, got 1/);
  assert.throws(() => bitonicNetwork(2.5), /argument 'n' expected an integer >= 2, got 2.5/);
  assert.throws(() => sortingNetwork('bubble' as never, 4),
    /expected one of odd_even, bitonic, got "bubble"/);
  assert.throws(() => hardSort(oddEvenNetwork(3), [1, 2]), /expected 3 numbers, got 2/);
});
