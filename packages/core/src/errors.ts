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
  UNKNOWN_DEPENDENCY: 'BULWARK_UNKNOWN_DEPENDENCY',
  GROUP_UNAVAILABLE: 'BULWARK_GROUP_UNAVAILABLE',
  HTTP_STATUS: 'BULWARK_HTTP_STATUS',
  HTTP_AUTH: 'BULWARK_HTTP_AUTH',
  HTTP_CLIENT_CLOSED: 'BULWARK_HTTP_CLIENT_CLOSED',
  POOL_CLOSED: 'BULWARK_POOL_CLOSED',
  CONFIG_INVALID: 'BULWARK_CONFIG_INVALID',
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

/** The thread pool was closed: it takes no more tasks, and tasks still queued were dropped. */
export class PoolClosedError extends BulwarkError {
  readonly pool: string;
  /** Retrying against a pool that is shutting down cannot succeed. */
  readonly transient = false;
  constructor(pool: string) {
    super(ErrorCodes.POOL_CLOSED, `Thread pool '${pool}' is closed`);
    this.pool = pool;
  }
}

/**
 * An HTTP response with status 400 or above, from `HttpClient.fetch`. `classify` reads `status`
 * (408, 425, 429, 500, 502, 503, 504 transient; any other 4xx/5xx permanent) and the retry policy
 * reads `retryAfterMs`, from the response's `Retry-After`. `body` is the start of the response
 * body (at most the client's `maxErrorBodyBytes`), with the client's own secrets redacted.
 */
export class HttpStatusError extends BulwarkError {
  readonly status: number;
  readonly statusText: string;
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
  readonly body: string;
  readonly retryAfterMs?: number;
  /** The name of the client (the dependency) that made the call. */
  readonly client: string;
  constructor(init: {
    client: string;
    status: number;
    statusText: string;
    method: string;
    url: string;
    headers: Headers;
    body: string;
    retryAfterMs: number | undefined;
  }) {
    // The message leaves out the query string, where an API might carry a key.
    const url = URL.canParse(init.url) ? new URL(init.url) : undefined;
    const where = url === undefined ? init.url : `${url.origin}${url.pathname}`;
    super(
      ErrorCodes.HTTP_STATUS,
      `HTTP ${init.status}${init.statusText ? ` ${init.statusText}` : ''} from ${init.method} ${where} ('${init.client}')`,
    );
    this.status = init.status;
    this.statusText = init.statusText;
    this.method = init.method;
    this.url = init.url;
    this.headers = init.headers;
    this.body = init.body;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
    this.client = init.client;
  }
}

/**
 * An HTTP client could not get an OAuth2 access token. `status` is the token endpoint's status
 * when it answered (so a refused client is permanent, a 503 transient); never carries a secret.
 */
export class HttpAuthError extends BulwarkError {
  readonly client: string;
  readonly status: number | undefined;
  constructor(client: string, message: string, status?: number, cause?: unknown) {
    super(
      ErrorCodes.HTTP_AUTH,
      `HTTP client '${client}': ${message}`,
      cause === undefined ? undefined : { cause },
    );
    this.client = client;
    this.status = status;
  }
}

/** `fetch` was called on an HTTP client after `close()`. Permanent: retrying cannot help. */
export class HttpClientClosedError extends BulwarkError {
  readonly client: string;
  readonly transient = false;
  constructor(client: string) {
    super(ErrorCodes.HTTP_CLIENT_CLOSED, `HTTP client '${client}' is closed`);
    this.client = client;
  }
}

/**
 * Whether Bulwark refused the call itself (an open or isolated circuit, a full bulkhead, a rate
 * or concurrency limit): load shedding, which says the caller is overloaded rather than the
 * dependency sick. Breakers do not record it, the registry's retries do not retry it, and
 * statistics count it as a rejection. @internal
 */
export function isLocalRejection(error: unknown): boolean {
  return (
    error instanceof BrokenCircuitError ||
    error instanceof IsolatedCircuitError ||
    error instanceof BulkheadRejectedError ||
    error instanceof RateLimitedError ||
    error instanceof ConcurrencyLimitError
  );
}

/** A registry call named a dependency or group the registry does not have. */
export class UnknownDependencyError extends BulwarkError {
  readonly dependency: string;
  /** Calling it again cannot help. */
  readonly transient = false;
  constructor(dependency: string, suggestion: string | undefined) {
    super(
      ErrorCodes.UNKNOWN_DEPENDENCY,
      `No dependency or failover group named '${dependency}'${suggestion ? `; did you mean '${suggestion}'?` : ''}`,
    );
    this.dependency = dependency;
  }
}

/** Every provider of a failover group has its circuit open, and the group has no fallback. */
export class GroupUnavailableError extends BulwarkError {
  readonly group: string;
  /** The soonest any provider's circuit lets probes through. */
  readonly retryAfterMs: number;
  constructor(group: string, retryAfterMs: number) {
    super(
      ErrorCodes.GROUP_UNAVAILABLE,
      `Every provider of group '${group}' has its circuit open; retry after ${retryAfterMs} ms`,
    );
    this.group = group;
    this.retryAfterMs = retryAfterMs;
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
