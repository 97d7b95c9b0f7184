// The CLI's one error: a stable `code` for tests and scripts, and a message that is one line a
// person can act on (the CLI prints `bulwark: <message>` and exits 1).

export const CliErrorCodes = {
  /** An option's value is not what it should be (`--input` that is not JSON, a bad `--limit`). */
  BAD_INPUT: 'BAD_INPUT',
  /** The server did not answer (not started, wrong `--url`). */
  UNREACHABLE: 'UNREACHABLE',
  /** The server answered with a problem (404, 401, 400...); the message is its `detail`. */
  API_ERROR: 'API_ERROR',
  /** The run stream ended before the run did, and reconnecting failed. */
  STREAM_LOST: 'STREAM_LOST',
} as const;
export type CliErrorCode = keyof typeof CliErrorCodes;

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: CliErrorCode,
    message: string,
    /** The HTTP status, for API_ERROR. */
    readonly status?: number,
  ) {
    super(message);
  }
}
