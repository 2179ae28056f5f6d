import assert from 'node:assert/strict';

/** Element-wise |a - e| <= tol * max(1, |e|); NaN matches NaN. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number,
  what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const scale = Math.max(1, Math.abs(e));
    if (!(Math.abs(a - e) <= tol * scale) && !(Number.isNaN(a) && Number.isNaN(e))) {
      assert.fail(`${what}: element ${i}: ${a} vs ${e} (tolerance ${tol})`);
    }
  }
}
