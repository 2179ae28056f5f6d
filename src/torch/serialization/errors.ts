/**
 * Any failure to read or write a checkpoint or pickle. The message starts with the file (or
 * source) name, then says what was expected and what was found.
 */
export class SerializationError extends Error {
  constructor(
    /** The file or source name the failure is about. */
    readonly file: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${detail}`, options);
    this.name = 'SerializationError';
  }
}
