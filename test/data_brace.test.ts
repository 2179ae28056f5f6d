import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { braceExpand, expandShardList, resolveShards } from '../src/data/brace.js';
import { BrokenInputLog, DataError, type BrokenInput } from '../src/data/broken.js';
import { tempDir } from './data_helpers.js';

describe('brace expansion', () => {
  it('expands zero-padded numeric ranges as the reference configs write them', () => {
    const shards = braceExpand('imagenet-train-{000000..000639}.tar');
    assert.equal(shards.length, 640);
    assert.equal(shards[0], 'imagenet-train-000000.tar');
    assert.equal(shards[639], 'imagenet-train-000639.tar');
  });
  it('expands lists, steps, letters, nested groups and several groups', () => {
    assert.deepEqual(braceExpand('a{b,c}d'), ['abd', 'acd']);
    assert.deepEqual(braceExpand('{1..3}'), ['1', '2', '3']);
    assert.deepEqual(braceExpand('{0..10..5}'), ['0', '5', '10']);
    assert.deepEqual(braceExpand('{3..1}'), ['3', '2', '1']);
    assert.deepEqual(braceExpand('{a..c}'), ['a', 'b', 'c']);
    assert.deepEqual(braceExpand('x{a,{1..2}}'), ['xa', 'x1', 'x2']);
    assert.deepEqual(braceExpand('{a,b}-{0..1}'), ['a-0', 'a-1', 'b-0', 'b-1']);
    assert.deepEqual(braceExpand('{08..10}'), ['08', '09', '10']);
  });
  it('keeps single items and escaped braces literally', () => {
    assert.deepEqual(braceExpand('a{b}c'), ['a{b}c']);
    assert.deepEqual(braceExpand('a\\{1..2\\}'), ['a{1..2}']);
    assert.deepEqual(braceExpand('plain.tar'), ['plain.tar']);
  });
  it('takes lists of patterns: arrays, `::` and whitespace separated', () => {
    assert.deepEqual(expandShardList('a-{0..1}.tar::b.tar'), ['a-0.tar', 'a-1.tar', 'b.tar']);
    assert.deepEqual(expandShardList('a.tar b-{1..2}.tar'), ['a.tar', 'b-1.tar', 'b-2.tar']);
    assert.deepEqual(expandShardList(['x-{0..1}.tar', 'y.tar']), ['x-0.tar', 'x-1.tar', 'y.tar']);
  });
});

describe('resolving shard lists', () => {
  it('names a missing shard in the error, or warns and skips it when not strict', () => {
    const dir = tempDir('brace');
    try {
      writeFileSync(join(dir.path, 's-0.tar'), '');
      writeFileSync(join(dir.path, 's-2.tar'), '');
      const pattern = join(dir.path, 's-{0..2}.tar');
      assert.throws(() => resolveShards(pattern), (error: unknown) =>
        error instanceof DataError && error.kind === 'missingShard' && error.file.endsWith('s-1.tar'));

      const warnings: BrokenInput[] = [];
      const log = new BrokenInputLog({ onWarning: (w) => warnings.push(w) });
      const resolved = resolveShards(pattern, log);
      assert.deepEqual(resolved.shards.map((s) => s.slice(-7)), ['s-0.tar', 's-2.tar']);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!.file, /s-1\.tar$/);
      assert.equal(log.counts.missingShard, 1);
      assert.equal(warnings[0]!.message, 'shard file does not exist');

      // an unclosed brace is taken literally, as Python's braceexpand does: the warning says so
      resolveShards(join(dir.path, 's-{0..2.tar'), log);
      assert.match(warnings[1]!.message, /brace pattern that does not expand/);
    } finally {
      dir.remove();
    }
  });
});
