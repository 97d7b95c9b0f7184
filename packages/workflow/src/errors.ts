// The workflow engine's errors, with stable codes declared in one place (the core's are in
// @bulwark/core's errors.ts; these belong to this package alone).

export const WorkflowErrorCodes = {
  NON_DETERMINISTIC: 'BULWARK_WORKFLOW_NON_DETERMINISTIC',
  CANCELLED: 'BULWARK_WORKFLOW_CANCELLED',
  UNKNOWN_WORKFLOW: 'BULWARK_WORKFLOW_UNKNOWN',
  VERSION_GONE: 'BULWARK_WORKFLOW_VERSION_GONE',
  DUPLICATE_STEP: 'BULWARK_WORKFLOW_DUPLICATE_STEP',
  WAIT_TIMEOUT: 'BULWARK_WORKFLOW_WAIT_TIMEOUT',
  RUN_FAILED: 'BULWARK_WORKFLOW_RUN_FAILED',
  DEADLINE: 'BULWARK_WORKFLOW_DEADLINE',
  NOT_SERIALIZABLE: 'BULWARK_WORKFLOW_NOT_SERIALIZABLE',
  UNKNOWN_RUN: 'BULWARK_WORKFLOW_UNKNOWN_RUN',
  STORE_CLOSED: 'BULWARK_WORKFLOW_STORE_CLOSED',
  RUN_NOT_RETRYABLE: 'BULWARK_WORKFLOW_RUN_NOT_RETRYABLE',
  SHUTDOWN: 'BULWARK_WORKFLOW_SHUTDOWN',
} as const;

export type WorkflowErrorCode = (typeof WorkflowErrorCodes)[keyof typeof WorkflowErrorCodes];

/** Base of the engine's errors; `code` is stable, and none of them is worth retrying. */
export class WorkflowError extends Error {
  readonly code: WorkflowErrorCode;
  readonly transient = false;
  constructor(code: WorkflowErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/** A replay asked for a step the history does not have where it has others not yet replayed. */
export class NonDeterminismError extends WorkflowError {
  constructor(runId: string, requested: string, expected: readonly string[]) {
    super(
      WorkflowErrorCodes.NON_DETERMINISTIC,
      `Run ${runId} replayed differently from its history: it asked for step '${requested}' while ` +
        `recorded step(s) ${expected.map((s) => `'${s}'`).join(', ')} had not been reached. ` +
        'Workflow code must make the same step calls, in the same order, on every replay.',
    );
  }
}

/** The run was cancelled (`engine.cancel`, or a parent it depended on failed). */
export class RunCancelledError extends WorkflowError {
  readonly reason: string;
  constructor(reason: string) {
    super(WorkflowErrorCodes.CANCELLED, `Run cancelled: ${reason}`);
    this.reason = reason;
  }
}

/** `waitForEvent` ran out of time. */
export class WaitTimeoutError extends WorkflowError {
  constructor(event: string, timeoutMs: number) {
    super(WorkflowErrorCodes.WAIT_TIMEOUT, `No '${event}' event within ${timeoutMs} ms`);
  }
}

/** Awaiting a run's result: it ended in failure, cancellation or compensation. */
export class RunFailedError extends WorkflowError {
  readonly runId: string;
  readonly status: string;
  constructor(runId: string, status: string, message: string) {
    super(WorkflowErrorCodes.RUN_FAILED, `Run ${runId} ${status}: ${message}`);
    this.runId = runId;
    this.status = status;
  }
}

/** A run named by id does not exist (a `dependsOn` parent given to `enqueue`, for example). */
export class UnknownRunError extends WorkflowError {
  readonly runId: string;
  constructor(runId: string) {
    super(WorkflowErrorCodes.UNKNOWN_RUN, `No workflow run with id '${runId}'`);
    this.runId = runId;
  }
}

/** `engine.retry` of a run that is not `failed`, `compensated` or `cancelled`. */
export class RunNotRetryableError extends WorkflowError {
  readonly runId: string;
  readonly status: string;
  constructor(runId: string, status: string) {
    super(
      WorkflowErrorCodes.RUN_NOT_RETRYABLE,
      `Run ${runId} is ${status}: only a failed, compensated or cancelled run can be retried`,
    );
    this.runId = runId;
    this.status = status;
  }
}

/** The store was closed; nothing more can be read or written through it. */
export class StoreClosedError extends WorkflowError {
  constructor(dialect: string) {
    super(WorkflowErrorCodes.STORE_CLOSED, `The ${dialect} workflow store is closed`);
  }
}

/**
 * The reason a step's signal aborts when its worker stops (`engine.stop({ drain: 'step' })`)
 * and the grace period ends: the step is not recorded as failed, and runs again on the next start.
 */
export class WorkerStoppedError extends WorkflowError {
  constructor(graceMs: number) {
    super(
      WorkflowErrorCodes.SHUTDOWN,
      `The worker stopped and its ${graceMs} ms grace period ended; the step will run again`,
    );
  }
}
