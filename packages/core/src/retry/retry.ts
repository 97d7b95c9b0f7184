// The retry policy: runs the inner layers again after transient failures, with backoff.
import { RetriesExhaustedError } from '../errors.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import type { BackoffMemo } from './backoff.ts';
import { type NormalizedRetryOptions, normalizeRetryOptions, type RetryOptions } from './options.ts';

/** Counters by outcome, shaped like resilience4j's retry metrics. */
export interface RetryStats {
  successfulWithoutRetry: number;
  successfulWithRetry: number;
  failedWithoutRetry: number;
  failedWithRetry: number;
}

export class RetryPolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'retry' {
    return 'retry';
  }
  readonly #o: NormalizedRetryOptions;
  /** No result check and no duration bound: the first attempt needs no bookkeeping. */
  readonly #fast: boolean;
  #successWithout = 0;
  #successWith = 0;
  #failedWithout = 0;
  #failedWith = 0;

  constructor(options?: RetryOptions) {
    const o = normalizeRetryOptions(options);
    super(o.name);
    this.#o = o;
    this.#fast = o.shouldRetryResult === undefined && o.maxDurationMs === Number.POSITIVE_INFINITY;
  }

  stats(): RetryStats {
    return {
      successfulWithoutRetry: this.#successWithout,
      successfulWithRetry: this.#successWith,
      failedWithoutRetry: this.#failedWithout,
      failedWithRetry: this.#failedWith,
    };
  }

  describe(): PolicyDescription {
    const o = this.#o;
    return {
      kind: 'retry',
      name: this.name,
      options: {
        maxAttempts: o.maxAttempts,
        maxDurationMs: o.maxDurationMs,
        backoff: o.backoff.describe(),
        retryAfterMaxMs: o.readHint ? o.retryAfterMaxMs : false,
        ...(o.budget !== undefined && { budget: o.budget.describe() }),
      },
    };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    const o = this.#o;
    scope.attempt = 1;
    scope.root.attempt = 1;
    // Every execution is a call the budget earns retries from, the fast path's included.
    if (o.budget !== undefined) o.budget.deposit();
    if (this.#fast && this.events.demand === 0) {
      // Most calls succeed at once: no loop state, no result check, one shared handler.
      return next(scope).then(this.#succeededAtOnce, (error) =>
        this.#continue(scope, next, Number.NaN, 1, true, error, undefined),
      );
    }
    const startedAt = o.clock.now();
    return next(scope).then(
      (result) => this.#continue(scope, next, startedAt, 1, false, undefined, result),
      (error) => this.#continue(scope, next, startedAt, 1, true, error, undefined),
    );
  }

  readonly #succeededAtOnce = (result: unknown) => {
    this.#successWithout++;
    return result;
  };

  /** Decides on the outcome of `attempt`, then backs off and tries again until done. */
  async #continue(
    scope: Scope,
    next: Next,
    startedAt: number,
    attempt: number,
    failed: boolean,
    error: unknown,
    result: unknown,
  ): Promise<unknown> {
    const o = this.#o;
    const bounded = o.maxDurationMs !== Number.POSITIVE_INFINITY;
    let memo: BackoffMemo | undefined;
    let attemptStartedAt = startedAt;
    for (;;) {
      // Judged once: a user's predicate may be costly or count its calls.
      const badResult = !failed && o.shouldRetryResult !== undefined && o.shouldRetryResult(result, attempt);
      // NaN: the attempt began on the fast path, untimed, because nobody was listening then.
      if (this.events.demand !== 0 && !Number.isNaN(attemptStartedAt)) {
        this.#emitAttempt(scope, attempt, attemptStartedAt, failed || badResult, error);
      }
      if (!failed) {
        if (!badResult) {
          if (attempt === 1) this.#successWithout++;
          else this.#successWith++;
          return result;
        }
      } else if (scope.aborted) {
        // The caller (or a timeout around this retry) gave up: surface its reason, never retry.
        this.#countFailure(attempt);
        throw scope.abortReason;
      } else if (!o.shouldRetry(error, attempt)) {
        this.#countFailure(attempt);
        throw error;
      }
      let delay = 0;
      let give = attempt >= o.maxAttempts;
      if (!give) {
        memo ??= { prev: 0 };
        delay = o.backoff.delayMs(attempt, o.random, memo);
        if (o.readHint !== undefined) {
          // A retryable result can carry the hint too (a 429 or 503 response with Retry-After).
          const hint = o.readHint(failed ? error : result, o.clock.now());
          // A hint past the cap means "not within any wait we accept": retrying sooner would only
          // be refused again (an open breaker, a server asking for minutes), so give up now.
          if (hint !== undefined) {
            if (hint > o.retryAfterMaxMs) give = true;
            else delay = Math.max(delay, hint);
          }
        }
        if (bounded && o.clock.now() + delay - startedAt > o.maxDurationMs) give = true;
      }
      // Asked last, so that a retry refused for another reason spends nothing of the budget.
      let refused = false;
      if (!give && o.budget !== undefined && !o.budget.tryRetry()) give = refused = true;
      if (give) {
        this.#countFailure(attempt);
        if (this.events.demand !== 0) {
          if (refused) {
            this.events.emit({
              type: 'retry:budget-exhausted',
              policy: this.name,
              operation: scope.operation,
              attempts: attempt,
              error,
            });
          }
          this.events.emit({
            type: 'retry:exhausted',
            policy: this.name,
            operation: scope.operation,
            attempts: attempt,
            error,
          });
        }
        throw new RetriesExhaustedError(attempt, error, failed ? undefined : result);
      }
      if (this.events.demand !== 0) {
        this.events.emit({
          type: 'retry:scheduled',
          policy: this.name,
          operation: scope.operation,
          attempt,
          delayMs: delay,
          error,
          result: failed ? undefined : result,
        });
      }
      if (delay > 0) {
        try {
          await o.clock.sleep(delay, scope.canAbort ? scope.signal : undefined);
        } catch (reason) {
          this.#countFailure(attempt);
          throw reason;
        }
      } else if (scope.aborted) {
        this.#countFailure(attempt);
        throw scope.abortReason;
      }
      attempt++;
      scope.attempt = attempt;
      scope.root.attempt = attempt;
      // A fallback inside may have answered an earlier attempt; this attempt starts undegraded.
      scope.root.degraded = false;
      failed = false;
      error = undefined;
      attemptStartedAt = o.clock.now();
      try {
        result = await next(scope);
      } catch (e) {
        error = e;
        failed = true;
      }
    }
  }

  #emitAttempt(scope: Scope, attempt: number, startedAt: number, failed: boolean, error: unknown): void {
    this.events.emit({
      type: 'retry:attempt',
      policy: this.name,
      operation: scope.operation,
      attempt,
      durationMs: this.#o.clock.now() - startedAt,
      outcome: failed ? 'failure' : 'success',
      error,
    });
  }

  #countFailure(attempt: number): void {
    if (attempt === 1) this.#failedWithout++;
    else this.#failedWith++;
  }
}

/** A retry policy. See {@link RetryOptions} for the defaults. */
export function retry(options?: RetryOptions): RetryPolicy {
  return new RetryPolicy(options);
}
