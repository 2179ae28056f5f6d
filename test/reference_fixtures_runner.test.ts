// The fixture runner itself: pointed (GROCO_REFERENCE_FIXTURES) at a copy of the fixtures with
// one value off, one unknown key, one unparsable file and one unknown file, it must fail each of
// them, pass the rest, and say so on its last line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const fixtures = fileURLToPath(new URL('../../test/fixtures/reference', import.meta.url));
const runner = fileURLToPath(new URL('./reference_fixtures.test.js', import.meta.url));

test('the runner fails deviating, unrecognised and unparsable cases and counts them', () => {
  const folder = mkdtempSync(join(tmpdir(), 'groco-fixtures-'));
  try {
    cpSync(fixtures, folder, { recursive: true });

    // a permutation entry off by 1e-6 (the float64 tolerance is 1e-9)
    const diffsortPath = join(folder, 'diffsort.json');
    const diffsort = JSON.parse(readFileSync(diffsortPath, 'utf8'));
    diffsort.cases[7].permutation.data[3] += 1e-6;
    writeFileSync(diffsortPath, JSON.stringify(diffsort));

    // a loss option the project does not know
    const grocoPath = join(folder, 'groco.json');
    const groco = JSON.parse(readFileSync(grocoPath, 'utf8'));
    groco.cases[1].config.temperature = 0.5;
    writeFileSync(grocoPath, JSON.stringify(groco));

    writeFileSync(join(folder, 'nt_xent.json'), '{"kind": "nt_xent", "cases": [');
    writeFileSync(join(folder, 'ranking.json'), '{"kind": "ranking", "cases": []}');

    // NODE_TEST_CONTEXT would make the nested runner report to this one instead of running
    const env: NodeJS.ProcessEnv = { ...process.env, GROCO_REFERENCE_FIXTURES: folder };
    delete env.NODE_TEST_CONTEXT;
    const run = spawnSync(process.execPath, ['--test', runner],
      { env, encoding: 'utf8', timeout: 120_000 });
    const output = `${run.stdout}\n${run.stderr}`;
    assert.notEqual(run.status, 0, 'the runner passed a corrupted folder');
    const summary = /reference fixtures: (\d+) cases, (\d+) failed, (\d+) skipped/.exec(output);
    assert.ok(summary, `no summary line in:\n${output.slice(-2000)}`);
    // 20 networks, 60 diffsort, 6 groco, 2 knn, 2 schedule/larc; nt_xent and ranking one each
    assert.equal(Number(summary[1]), 92, summary[0]);
    assert.equal(Number(summary[2]), 4, `${summary[0]}\n${output.slice(-3000)}`);
    assert.match(output, /diffsort\.json case 7 permutation: entry 3/);
    assert.match(output, /groco\.json case 1 config: unrecognised keys temperature/);
    assert.match(output, /nt_xent\.json: unreadable/);
    assert.match(output, /ranking\.json: unrecognised fixture file/);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});
