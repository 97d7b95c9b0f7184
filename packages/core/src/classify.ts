// The one place that decides whether a failure is worth retrying (transient) or not (permanent),
// and reads retry-after hints from errors. Retry and the breaker both default to it.
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  InvalidOptionsError,
  IsolatedCircuitError,
  RateLimitedError,
  TimeoutError,
} from './errors.ts';

export type FailureKind = 'transient' | 'permanent';

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * Classifies a failure. In order:
 * 1. an explicit `transient: boolean` property on the error wins;
 * 2. aborts (`AbortError`), isolated circuits and invalid options are permanent; Bulwark's
 *    timeout, open-circuit, bulkhead and rate-limit rejections are transient;
 * 3. an HTTP status (`status`, `statusCode` or `response.status`): 408, 425, 429 and 5xx gateway
 *    statuses 500/502/503/504 are transient, any other 4xx/5xx is permanent;
 * 4. a network error code (`code`, or the `cause`'s code, as undici's "fetch failed" carries):
 *    ECONNRESET, ECONNREFUSED, ETIMEDOUT, EPIPE, EAI_AGAIN, undici socket and timeout errors;
 * 5. validation errors and programming errors (TypeError, RangeError, ReferenceError, SyntaxError)
 *    are permanent;
 * 6. anything else is transient, so an unknown failure gets the benefit of a retry.
 */
export function classify(error: unknown): FailureKind {
  if (typeof error !== 'object' || error === null) return 'transient';
  const e = error as Record<string, unknown>;
  if (typeof e.transient === 'boolean') return e.transient ? 'transient' : 'permanent';
  if (
    error instanceof TimeoutError ||
    error instanceof BrokenCircuitError ||
    error instanceof BulkheadRejectedError ||
    error instanceof RateLimitedError
  ) {
    return 'transient';
  }
  if (
    error instanceof IsolatedCircuitError ||
    error instanceof InvalidOptionsError ||
    e.name === 'AbortError'
  ) {
    return 'permanent';
  }
  if (e.code === 'BULWARK_RETRIES_EXHAUSTED') return classify(e.cause);
  const status = statusOf(e);
  if (status !== undefined) {
    if (TRANSIENT_STATUS.has(status)) return 'transient';
    if (status >= 400) return 'permanent';
  }
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return 'transient';
  const cause = e.cause as Record<string, unknown> | undefined;
  if (typeof cause === 'object' && cause !== null && typeof cause.code === 'string') {
    if (TRANSIENT_CODES.has(cause.code)) return 'transient';
  }
  if (e.name === 'ValidationError' || e.name === 'ZodError') return 'permanent';
  if (
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof ReferenceError ||
    error instanceof SyntaxError
  ) {
    return 'permanent';
  }
  return 'transient';
}

export function isTransient(error: unknown): boolean {
  return classify(error) === 'transient';
}

function statusOf(e: Record<string, unknown>): number | undefined {
  if (typeof e.status === 'number') return e.status;
  if (typeof e.statusCode === 'number') return e.statusCode;
  const response = e.response as Record<string, unknown> | undefined;
  if (typeof response === 'object' && response !== null && typeof response.status === 'number') {
    return response.status;
  }
  return undefined;
}

/**
 * The delay a failure asks for before the next try, in ms, if it carries one: a
 * `retryAfterMs` property (Bulwark's own errors), or a `Retry-After` header in seconds or as an
 * HTTP date (on `headers` or `response.headers`, a plain object or a `Headers`).
 */
export function retryAfterOf(error: unknown, nowMs: number = Date.now()): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as Record<string, unknown>;
  if (typeof e.retryAfterMs === 'number' && e.retryAfterMs >= 0) return e.retryAfterMs;
  const header =
    headerOf(e.headers) ?? headerOf((e.response as Record<string, unknown> | undefined)?.headers);
  return header === undefined ? undefined : parseRetryAfter(header, nowMs);
}

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d{2}:\\d{2}:\\d{2}';
/** The three HTTP-date forms of RFC 9110 §5.6.7; the last (asctime) carries no zone but means GMT. */
const IMF_FIXDATE = new RegExp(`^${DAY}, \\d{1,2} ${MONTH} \\d{4} ${TIME} GMT$`, 'i');
const RFC850_DATE = new RegExp(`^${LONG_DAY}, \\d{1,2}-${MONTH}-\\d{2} ${TIME} GMT$`, 'i');
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} +\\d{1,2} ${TIME} \\d{4}$`, 'i');

/**
 * Parses a `Retry-After` header value (delta-seconds or HTTP-date) into milliseconds from `nowMs`.
 * Anything else is `undefined`: `Date.parse` alone would read "-5" or "soon 1" as dates in 2001.
 */
export function parseRetryAfter(value: string, nowMs: number): number | undefined {
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  let at: number;
  if (IMF_FIXDATE.test(trimmed) || RFC850_DATE.test(trimmed)) at = Date.parse(trimmed);
  else if (ASCTIME_DATE.test(trimmed)) at = Date.parse(`${trimmed} GMT`);
  else return undefined;
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

function headerOf(headers: unknown): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  const h = headers as { get?: unknown } & Record<string, unknown>;
  if (typeof h.get === 'function') {
    const v = (h.get as (name: string) => unknown).call(headers, 'retry-after');
    return typeof v === 'string' ? v : undefined;
  }
  const v = h['retry-after'] ?? h['Retry-After'];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}
