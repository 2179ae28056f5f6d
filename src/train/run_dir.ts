// The run folder: save_dir/models/<name>/<timestamp>/ with config.yaml, checkpoints,
// metrics.jsonl, results JSON and TensorBoard event files.
import { appendFileSync, mkdirSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { EventWriter } from './tensorboard.js';

function timestamp(date = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(date.getMonth() + 1)}${p(date.getDate())}_${p(date.getHours())}${p(date.getMinutes())}` +
    `${p(date.getSeconds())}`;
}

export class RunDir {
  readonly events: EventWriter;

  private constructor(readonly path: string) {
    this.events = new EventWriter(path);
  }

  /** Creates `saveDir/models/<name>/<timestamp>` (a suffix keeps two runs in one second apart). */
  static create(saveDir: string, name: string): RunDir {
    let dir = join(saveDir, 'models', name, timestamp());
    for (let i = 1; existsSync(dir); i++) dir = join(saveDir, 'models', name, `${timestamp()}_${i}`);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      throw new Error(`save_dir: cannot create the run folder ${dir}: ${(error as Error).message}`);
    }
    return new RunDir(dir);
  }

  /** Continues in an existing folder (resume). */
  static reuse(dir: string): RunDir {
    mkdirSync(dir, { recursive: true });
    return new RunDir(dir);
  }

  file(name: string): string {
    return join(this.path, name);
  }

  /** Appends one JSON object per line; non-finite numbers are written as strings. */
  metric(record: Record<string, unknown>): void {
    const line = JSON.stringify(record, (_k, v: unknown) =>
      typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
    appendFileSync(this.file('metrics.jsonl'), line + '\n');
  }

  scalars(values: Record<string, number>, step: number, prefix = ''): void {
    for (const [k, v] of Object.entries(values)) this.events.scalar(prefix + k, v, step);
  }

  writeJson(name: string, value: unknown): void {
    const target = this.file(name);
    const temporary = `${target}.tmp`;
    writeFileSync(temporary, JSON.stringify(value, null, 2) + '\n');
    renameSync(temporary, target);
  }

  close(): void {
    this.events.close();
  }
}
