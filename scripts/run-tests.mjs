// Runs every compiled test file with Node's test runner, one file at a time (the machine is
// small and several tests start the PyTorch peer).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = join('dist', 'test');
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join(dir, f));
if (files.length === 0) {
  console.error('run-tests: no compiled tests under dist/test (run `npx tsc` first)');
  process.exit(1);
}
const result = spawnSync(process.execPath,
  ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
