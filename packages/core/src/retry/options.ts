// Retry options, their defaults, and their one-time normalisation.
import { isTransient, retryAfterOf } from '../classify.ts';
import { type Clock, systemClock } from '../clock/clock.ts';
import {
  clockOption,
  fail,
  func,
  isRecord,
  knownKeys,
  num,
  optionsObject,
  str,
} from '../internal/validate.ts';
import { type Backoff, exponential, isBackoff } from './backoff.ts';
import { RetryBudget } from './budget.ts';

export interface RetryOptions {
  /** Every call counts, the first included: `maxAttempts: 3` makes at most 3 calls. @default 3 */
  maxAttempts?: number;
  /** No retry starts if it would begin later than this after the first call began. @default Infinity */
  maxDurationMs?: number;
  /** @default exponential({ baseMs: 200, maxMs: 30_000, jitter: 0.2 }) */
  backoff?: Backoff;
  /** Whether a failure is worth another attempt. @default isTransient */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  /** Whether a successful result should be retried (for example a 503 response object). @default never */
  shouldRetryResult?: (result: unknown, attempt: number) => boolean;
  /**
   * Honour retry-after hints (a `Retry-After` header, an open breaker's `retryAfterMs`), read from
   * the error or from a result that `shouldRetryResult` rejected: wait the longer of the backoff
   * and the hint. A hint longer than `maxMs` ends the retries at once (`RetriesExhaustedError`),
   * since an earlier try would only be refused again. `false` ignores hints.
   * @default { maxMs: 30_000 }
   */
  retryAfter?: { maxMs: number } | false;
  /**
   * A budget shared with other retry policies: each call is deposited in it, and each retry
   * must be granted by it; a refused retry ends the call with `RetriesExhaustedError`.
   * @default none (no budget)
   */
  budget?: RetryBudget;
  /** Source of randomness for jitter, for deterministic tests. @default Math.random */
  random?: () => number;
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events and statistics. @default 'retry' */
  name?: string;
}

/** @internal */
export interface NormalizedRetryOptions {
  maxAttempts: number;
  maxDurationMs: number;
  backoff: Backoff;
  shouldRetry: (error: unknown, attempt: number) => boolean;
  shouldRetryResult: ((result: unknown, attempt: number) => boolean) | undefined;
  retryAfterMaxMs: number;
  readHint: ((error: unknown, nowMs: number) => number | undefined) | undefined;
  budget: RetryBudget | undefined;
  random: () => number;
  clock: Clock;
  name: string;
}

const KEYS = [
  'maxAttempts',
  'maxDurationMs',
  'backoff',
  'shouldRetry',
  'shouldRetryResult',
  'retryAfter',
  'budget',
  'random',
  'clock',
  'name',
] as const;

/** @internal */
export function normalizeRetryOptions(options: RetryOptions | undefined): NormalizedRetryOptions {
  const o = optionsObject('retry', options);
  knownKeys('retry', o, KEYS);
  if (o.backoff !== undefined && !isBackoff(o.backoff)) {
    fail('retry.backoff', 'expected a backoff such as exponential({ baseMs: 200 })');
  }
  if (o.budget !== undefined && !(o.budget instanceof RetryBudget)) {
    fail('retry.budget', 'expected a budget made by retryBudget()');
  }
  let retryAfterMaxMs = 30_000;
  let readHint: NormalizedRetryOptions['readHint'] = retryAfterOf;
  if (o.retryAfter === false) {
    readHint = undefined;
    retryAfterMaxMs = 0;
  } else if (o.retryAfter !== undefined) {
    if (!isRecord(o.retryAfter)) fail('retry.retryAfter', 'expected { maxMs } or false');
    knownKeys('retry.retryAfter', o.retryAfter, ['maxMs']);
    retryAfterMaxMs = num('retry.retryAfter.maxMs', o.retryAfter.maxMs, 30_000, { min: 0, infinite: true });
  }
  const clock = clockOption('retry.clock', o.clock, systemClock);
  // A budget counts calls in its own window: on another clock than the retry it would
  // silently measure real time while the retry runs on virtual time (or the reverse).
  if (o.budget !== undefined && (o.budget as RetryBudget).clock !== clock) {
    fail('retry.budget', "runs on another clock than the retry: give both the same 'clock'");
  }
  return {
    maxAttempts: num('retry.maxAttempts', o.maxAttempts, 3, { min: 1, integer: true, infinite: true }),
    maxDurationMs: num('retry.maxDurationMs', o.maxDurationMs, Number.POSITIVE_INFINITY, {
      min: 0,
      infinite: true,
    }),
    backoff: (o.backoff as Backoff | undefined) ?? exponential({ baseMs: 200, maxMs: 30_000, jitter: 0.2 }),
    shouldRetry: func('retry.shouldRetry', o.shouldRetry, isTransient),
    shouldRetryResult: func('retry.shouldRetryResult', o.shouldRetryResult),
    retryAfterMaxMs,
    readHint,
    budget: o.budget as RetryBudget | undefined,
    random: func('retry.random', o.random, Math.random),
    clock,
    name: str('retry.name', o.name, 'retry'),
  };
}
