// A one-line progress bar with rate and ETA for long loops, drawn on a TTY only.
export class ProgressBar {
  readonly #start = Date.now();
  #last = 0;
  #done = 0;

  constructor(readonly label: string, readonly total: number,
    readonly stream: NodeJS.WriteStream = process.stderr, readonly enabled = stream.isTTY === true) {}

  tick(count = 1, suffix = ''): void {
    this.#done += count;
    const now = Date.now();
    if (!this.enabled || (now - this.#last < 200 && this.#done < this.total)) return;
    this.#last = now;
    const seconds = (now - this.#start) / 1000;
    const rate = this.#done / Math.max(seconds, 1e-3);
    const eta = rate > 0 ? (this.total - this.#done) / rate : 0;
    const width = 24;
    const filled = Math.round((width * this.#done) / Math.max(this.total, 1));
    const bar = '#'.repeat(Math.min(filled, width)).padEnd(width, '.');
    this.stream.write(`\r${this.label} [${bar}] ${this.#done}/${this.total} ` +
      `${rate.toFixed(1)}/s ETA ${formatDuration(eta)} ${suffix}`.padEnd(100).slice(0, 140));
  }

  finish(): void {
    if (this.enabled) this.stream.write('\n');
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(r).padStart(2, '0')}s`;
}
