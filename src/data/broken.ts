// Broken input: the kinds the pipeline recognises, the error strict mode throws, and the
// per-epoch tally. Non-strict runs warn (naming the file), skip the sample and go on.

export const BROKEN_KINDS = [
  'missingShard',
  'truncatedTar',
  'corruptImage',
  'missingImage',
  'missingLabel',
  'unreadableFolder',
  'unreadableFile',
] as const;

export type BrokenKind = (typeof BROKEN_KINDS)[number];

/** One skipped piece of input. `file` names the shard, folder or file (`shard.tar:key`). */
export interface BrokenInput {
  kind: BrokenKind;
  file: string;
  message: string;
}

/** Thrown in strict mode, and for input that cannot be skipped. */
export class DataError extends Error {
  readonly kind: BrokenKind;
  readonly file: string;
  readonly detail: string;

  constructor(problem: BrokenInput) {
    super(`${problem.kind}: ${problem.file}: ${problem.message}`);
    this.name = 'DataError';
    this.kind = problem.kind;
    this.file = problem.file;
    this.detail = problem.message;
  }
}

export type BrokenCounts = Record<BrokenKind, number>;

export function emptyCounts(): BrokenCounts {
  const counts = {} as BrokenCounts;
  for (const kind of BROKEN_KINDS) counts[kind] = 0;
  return counts;
}

export function addCounts(into: BrokenCounts, from: Partial<BrokenCounts>): BrokenCounts {
  for (const kind of BROKEN_KINDS) into[kind] += from[kind] ?? 0;
  return into;
}

export type WarningHandler = (problem: BrokenInput) => void;

/** The default warning channel: one line on stderr per skipped piece of input. */
export const warnToStderr: WarningHandler = (problem) => {
  process.stderr.write(`groco data warning: ${problem.kind}: ${problem.file}: ${problem.message}\n`);
};

/**
 * Collects broken input: counts it, and either reports it through `onWarning` or throws
 * a `DataError` when strict.
 */
export class BrokenInputLog {
  readonly counts: BrokenCounts = emptyCounts();
  readonly strict: boolean;
  private readonly onWarning: WarningHandler;

  constructor(options: { strict?: boolean; onWarning?: WarningHandler } = {}) {
    this.strict = options.strict ?? false;
    this.onWarning = options.onWarning ?? warnToStderr;
  }

  report(problem: BrokenInput): void {
    if (this.strict) throw new DataError(problem);
    this.counts[problem.kind] += 1;
    this.onWarning(problem);
  }

  /** Takes the counts gathered so far and resets them. */
  drain(): BrokenCounts {
    const out = { ...this.counts };
    for (const kind of BROKEN_KINDS) this.counts[kind] = 0;
    return out;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
