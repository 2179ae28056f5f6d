/** A command line that cannot be run as given; the `groco` command exits with code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;

  constructor(
    message: string,
    /** The command being parsed (`pretrain`, `preprocess imagenet`), null before one is known. */
    readonly command: string | null = null,
    /** The flag or argument at fault, as the user wrote it, when there is one. */
    readonly flag: string | null = null,
  ) {
    const prefix = command === null ? 'groco' : `groco ${command}`;
    const hint = command === null ? "run 'groco --help'" : `run '${prefix} --help'`;
    super(`${prefix}: ${message}\n(${hint} for usage)`);
    this.name = 'UsageError';
  }
}
