// The errors the built-in steps raise, each with a stable code. All are permanent: the same
// request, path or response would fail the same way again, so no retry is spent on them.

export const StepErrorCodes = {
  /** A response with a status outside the step's `expect`. */
  UNEXPECTED_STATUS: 'BULWARK_STEP_UNEXPECTED_STATUS',
  /** A response body longer than `maxBytes`. */
  TOO_LARGE: 'BULWARK_STEP_TOO_LARGE',
  /** A response that says it is JSON but does not parse. */
  BAD_JSON: 'BULWARK_STEP_BAD_JSON',
  /** A file path that is absolute, holds `..`, or leads out of the storage directory through a link. */
  PATH_ESCAPE: 'BULWARK_STEP_PATH_ESCAPE',
  /** A file path that names a directory or a link where a file was expected. */
  NOT_A_FILE: 'BULWARK_STEP_NOT_A_FILE',
} as const;

export type StepErrorCode = (typeof StepErrorCodes)[keyof typeof StepErrorCodes];

export class StepError extends Error {
  override readonly name = 'StepError';
  readonly code: StepErrorCode;
  /** Read by the classifier: never retried. */
  readonly transient = false;
  constructor(code: StepErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
