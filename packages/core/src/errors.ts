// Typed errors of the core, with stable string codes declared in one place so that tests,
// logs and API responses can match on `code` rather than message text.

/** Every error code Bulwark's core raises. Codes are stable across releases. */
export const ErrorCodes = {
  TIMEOUT: 'BULWARK_TIMEOUT',
  BROKEN_CIRCUIT: 'BULWARK_BROKEN_CIRCUIT',
  ISOLATED_CIRCUIT: 'BULWARK_ISOLATED_CIRCUIT',
  BULKHEAD_REJECTED: 'BULWARK_BULKHEAD_REJECTED',
  RATE_LIMITED: 'BULWARK_RATE_LIMITED',
  RETRIES_EXHAUSTED: 'BULWARK_RETRIES_EXHAUSTED',
  INVALID_OPTIONS: 'BULWARK_INVALID_OPTIONS',
  CONCURRENCY_LIMITED: 'BULWARK_CONCURRENCY_LIMITED',
  HEDGE_LOST: 'BULWARK_HEDGE_LOST',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Base of every error Bulwark raises; `code` is stable, `message` is for people. */
export class BulwarkError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/**
 * Builds an error without capturing a stack trace. Fast-fail paths (an open breaker, a full
 * bulkhead) reject thousands of calls a second; a stack per rejection costs microseconds and
 * says nothing useful, because the rejection site is always the same.
 */
export function withoutStack<E extends Error>(create: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return create();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The operation did not settle within its time budget. */
export class TimeoutError extends BulwarkError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(ErrorCodes.TIMEOUT, `Operation timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** The circuit is open (or half-open with every probe taken); try again after `retryAfterMs`. */
export class BrokenCircuitError extends BulwarkError {
  readonly retryAfterMs: number;
  readonly breaker: string;
  constructor(breaker: string, retryAfterMs: number, state: 'open' | 'half-open') {
    super(
      ErrorCodes.BROKEN_CIRCUIT,
      state === 'open'
        ? `Circuit '${breaker}' is open; retry after ${retryAfterMs} ms`
        : `Circuit '${breaker}' is half-open and its probes are taken; retry after ${retryAfterMs} ms`,
    );
    this.retryAfterMs = retryAfterMs;
    this.breaker = breaker;
  }
}

/** The circuit was isolated by an operator and stays open until reset. */
export class IsolatedCircuitError extends BulwarkError {
  readonly breaker: string;
  constructor(breaker: string) {
    super(ErrorCodes.ISOLATED_CIRCUIT, `Circuit '${breaker}' is isolated`);
    this.breaker = breaker;
  }
}

/** The bulkhead had no free slot and its queue was full, or the wait in its queue timed out. */
export class BulkheadRejectedError extends BulwarkError {
  readonly reason: 'queue-full' | 'queue-timeout';
  readonly bulkhead: string;
  constructor(bulkhead: string, reason: 'queue-full' | 'queue-timeout') {
    super(
      ErrorCodes.BULKHEAD_REJECTED,
      reason === 'queue-full'
        ? `Bulkhead '${bulkhead}' is full and its queue is full`
        : `Bulkhead '${bulkhead}' queue wait timed out`,
    );
    this.reason = reason;
    this.bulkhead = bulkhead;
  }
}

/** A rate limiter refused the call; try again after `retryAfterMs`. */
export class RateLimitedError extends BulwarkError {
  /** `Infinity` when the call asks for more permits than the limit can ever grant at once. */
  readonly retryAfterMs: number;
  readonly limiter: string;
  constructor(limiter: string, retryAfterMs: number) {
    super(ErrorCodes.RATE_LIMITED, `Rate limit '${limiter}' exceeded; retry after ${retryAfterMs} ms`);
    this.retryAfterMs = retryAfterMs;
    this.limiter = limiter;
  }
}

/**
 * Every attempt the retry policy allowed failed. `cause` is the last error, or `lastResult`
 * the last result when a result was judged retryable (a bad result is never returned as good).
 */
export class RetriesExhaustedError extends BulwarkError {
  readonly attempts: number;
  readonly lastResult: unknown;
  constructor(attempts: number, cause: unknown, lastResult?: unknown) {
    const what =
      cause === undefined ? 'an unacceptable result' : cause instanceof Error ? cause.message : String(cause);
    super(ErrorCodes.RETRIES_EXHAUSTED, `Gave up after ${attempts} attempt(s): ${what}`, { cause });
    this.attempts = attempts;
    this.lastResult = lastResult;
  }
}

/**
 * The adaptive concurrency limit was reached and the call's priority partition had used its
 * guaranteed share; try again after `retryAfterMs` (an estimate from the smoothed latency).
 */
export class ConcurrencyLimitError extends BulwarkError {
  readonly retryAfterMs: number;
  readonly limiter: string;
  readonly partition: string;
  readonly limit: number;
  constructor(limiter: string, partition: string, limit: number, retryAfterMs: number) {
    super(
      ErrorCodes.CONCURRENCY_LIMITED,
      `Concurrency limit '${limiter}' (${limit}) reached for partition '${partition}'; retry after ${retryAfterMs} ms`,
    );
    this.retryAfterMs = retryAfterMs;
    this.limiter = limiter;
    this.partition = partition;
    this.limit = limit;
  }
}

/**
 * The reason a hedge policy aborts the signals of the attempts that lost: another attempt
 * (`winner`, 1 for the primary) succeeded first. Callers never see it; operations may.
 */
export class HedgeLostError extends BulwarkError {
  readonly winner: number;
  constructor(hedge: string, winner: number) {
    super(ErrorCodes.HEDGE_LOST, `Hedge '${hedge}': attempt ${winner} succeeded first`);
    this.winner = winner;
  }
}

/** Options given to a policy were invalid; `path` names the field (for example `retry.maxAttempts`). */
export class InvalidOptionsError extends BulwarkError {
  readonly path: string;
  constructor(path: string, message: string) {
    super(ErrorCodes.INVALID_OPTIONS, `${path}: ${message}`);
    this.path = path;
  }
}

/**
 * A promise rejected one microtask from now. By then the caller has attached its handler, so
 * Node's unhandled-rejection bookkeeping (about 0.5 µs for each `Promise.reject`) never runs.
 * For fast-fail paths that may reject thousands of calls a second.
 */
export function rejectSoon(reason: unknown): Promise<never> {
  return new Promise((_resolve, reject) => {
    queueMicrotask(() => reject(reason));
  });
}
