// The rate limiter: a token bucket or an exact sliding window, per key, that rejects calls over
// the limit or queues them first in first out.

import { InvalidOptionsError, RateLimitedError, rejectSoon, withoutStack } from '../errors.ts';
import { untilAborted } from '../internal/abort.ts';
import { Lru } from '../internal/lru.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import {
  type NormalizedRateLimiterOptions,
  normalizeRateLimiterOptions,
  type RateLimiterOptions,
} from './options.ts';
import { type LimitState, SlidingLogState, TokenBucketState, type WaiterNode } from './rules.ts';
import type { RateLimitDecision } from './store.ts';

export interface RateLimiterStats {
  /** Calls let through since creation (at once or after waiting). */
  admitted: number;
  /** Calls refused since creation. */
  rejected: number;
  /** Calls waiting now, over every key. */
  waiting: number;
  /** Whole permits free now in the default limit (calls without a key); `undefined` with a custom store. */
  available: number | undefined;
  /** Keyed limits held in memory now (the default limit not included). */
  keys: number;
}

/** A call waiting for permits. */
class Waiter implements WaiterNode {
  prev: WaiterNode | undefined;
  next: WaiterNode | undefined;
  projected = 0;
  signal: AbortSignal | undefined;
  constructor(
    readonly limiter: RateLimiterPolicy,
    readonly state: LimitState,
    readonly key: string | undefined,
    readonly permits: number,
    readonly since: number,
    readonly scope: Scope,
    readonly run: Next,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
  /** The caller aborted while waiting: leave the queue and reject with the caller's reason. */
  handleEvent(): void {
    this.limiter.abandon(this);
  }
}

export class RateLimiterPolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'rate-limiter' {
    return 'rate-limiter';
  }
  readonly #o: NormalizedRateLimiterOptions;
  /** The limit of calls without a key: outside the LRU, so it is never dropped. */
  readonly #default: LimitState | undefined;
  /** Keyed limits. A key with waiters is never evicted, which would strand them: it leaves once idle. */
  readonly #keyed: Lru<string, LimitState>;
  #admitted = 0;
  #rejected = 0;
  #waiting = 0;

  constructor(options: RateLimiterOptions) {
    const o = normalizeRateLimiterOptions(options);
    super(o.name);
    this.#o = o;
    this.#keyed = new Lru(o.maxKeys, isIdle);
    this.#default = o.rule === undefined ? undefined : this.#create(o.clock.now());
  }

  stats(): RateLimiterStats {
    return {
      admitted: this.#admitted,
      rejected: this.#rejected,
      waiting: this.#waiting,
      available: this.#default?.available(this.#o.clock.now()),
      keys: this.#keyed.size,
    };
  }

  describe(): PolicyDescription {
    const o = this.#o;
    const rule = o.rule;
    return {
      kind: 'rate-limiter',
      name: this.name,
      options: {
        ...(rule?.kind === 'token-bucket'
          ? { tokenBucket: { tokens: rule.tokens, perMs: rule.perMs, burst: rule.burst } }
          : rule?.kind === 'sliding-window'
            ? { slidingWindow: { limit: rule.limit, windowMs: rule.windowMs } }
            : { store: 'custom' }),
        mode: o.mode,
        maxWaitMs: o.maxWaitMs,
        keyed: o.key === undefined ? 'context.key' : 'key()',
        cost: o.cost === undefined ? 1 : 'cost()',
        ...(rule === undefined ? {} : { maxKeys: o.maxKeys }),
      },
    };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    const o = this.#o;
    let permits = 1;
    let key: string | undefined;
    try {
      if (o.cost !== undefined) permits = costOf(o.cost, scope);
      key = o.key === undefined ? scope.key : o.key(scope);
    } catch (error) {
      return Promise.reject(error);
    }
    const now = o.clock.now();
    if (o.store !== undefined) return this.#viaStore(scope, next, key, now, permits);
    const state = key === undefined ? this.#default! : this.#stateOf(key, now);
    if (state.head === undefined) {
      const wait = state.take(now, permits);
      if (wait === 0) {
        this.#admitted++;
        return next(scope);
      }
      if (o.mode === 'reject' || !(wait <= o.maxWaitMs && wait !== Number.POSITIVE_INFINITY)) {
        return this.#refuse(scope, key, wait);
      }
      return this.#enqueue(state, key, permits, now, scope, next, true, wait);
    }
    // Others wait already: join the end of the queue, even if a small call would fit now.
    const wait = state.project(now, permits);
    // A call that can never fit is refused even when the wait is unbounded.
    if (!(wait <= o.maxWaitMs && wait !== Number.POSITIVE_INFINITY)) return this.#refuse(scope, key, wait);
    return this.#enqueue(state, key, permits, now, scope, next, false, 0);
  }

  #create(now: number): LimitState {
    const rule = this.#o.rule!;
    return rule.kind === 'token-bucket' ? new TokenBucketState(rule, now) : new SlidingLogState(rule);
  }

  /** The key's limit, made most recently used; a new key may push out the least recently used idle ones. */
  #stateOf(key: string, now: number): LimitState {
    let state = this.#keyed.get(key);
    if (state === undefined) {
      state = this.#create(now);
      this.#keyed.set(key, state);
    }
    return state;
  }

  #enqueue(
    state: LimitState,
    key: string | undefined,
    permits: number,
    now: number,
    scope: Scope,
    next: Next,
    first: boolean,
    wait: number,
  ): Promise<unknown> {
    if (scope.aborted) return Promise.reject(scope.abortReason);
    return new Promise((resolve, reject) => {
      const waiter = new Waiter(this, state, key, permits, now, scope, next, resolve, reject);
      state.enqueue(waiter);
      this.#waiting++;
      if (first) this.#arm(state, wait);
      if (scope.canAbort) {
        waiter.signal = scope.signal;
        waiter.signal.addEventListener('abort', waiter, { once: true });
      }
    });
  }

  /** One timer per key with waiters, for its head waiter only. */
  #arm(state: LimitState, ms: number): void {
    // A drain may run inside another (an admitted call aborting or starting a call on this key
    // synchronously): the head's new timer replaces any armed meanwhile, so one stays.
    if (state.timer !== undefined) this.#o.clock.clearTimeout(state.timer);
    state.wake ??= () => {
      state.timer = undefined;
      this.#drain(state);
    };
    state.timer = this.#o.clock.setTimeout(state.wake, ms);
  }

  /** Admits waiters from the head while their permits are free, then waits for the next one. */
  #drain(state: LimitState): void {
    const now = this.#o.clock.now();
    for (let w = state.head as Waiter | undefined; w !== undefined; w = state.head as Waiter | undefined) {
      const wait = state.take(now, w.permits);
      if (wait !== 0) {
        this.#arm(state, wait);
        return;
      }
      this.#leave(w);
      this.#admitted++;
      if (this.events.demand !== 0) {
        this.events.emit({
          type: 'ratelimit:waited',
          policy: this.name,
          operation: w.scope.operation,
          key: w.key,
          waitMs: now - w.since,
        });
      }
      w.run(w.scope).then(w.resolve, w.reject);
    }
  }

  #leave(waiter: Waiter): boolean {
    if (!waiter.state.remove(waiter)) return false;
    this.#waiting--;
    waiter.signal?.removeEventListener('abort', waiter);
    return true;
  }

  /** A waiter's caller aborted. @internal */
  abandon(waiter: Waiter): void {
    const state = waiter.state;
    const wasHead = state.head === waiter;
    if (!this.#leave(waiter)) return;
    waiter.reject(waiter.signal!.reason);
    if (wasHead) {
      // The next waiter may need fewer permits than the one that left: it may go now.
      if (state.timer !== undefined) this.#o.clock.clearTimeout(state.timer);
      state.timer = undefined;
      this.#drain(state);
    }
  }

  #viaStore(
    scope: Scope,
    next: Next,
    key: string | undefined,
    now: number,
    permits: number,
  ): Promise<unknown> {
    try {
      const decision = this.#o.store!.acquire(key, now, permits);
      if (typeof (decision as Partial<PromiseLike<unknown>> | undefined)?.then !== 'function') {
        return this.#decide(decision as RateLimitDecision, scope, next, key);
      }
      const decided = Promise.resolve(decision).then((d) => this.#decide(d, scope, next, key));
      return scope.canAbort ? untilAborted(scope, decided) : decided;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #decide(decision: RateLimitDecision, scope: Scope, next: Next, key: string | undefined): Promise<unknown> {
    // The caller left while the store answered: run nothing for it.
    if (scope.aborted) return Promise.reject(scope.abortReason);
    if (!decision.admitted) return this.#refuse(scope, key, decision.retryAfterMs);
    this.#admitted++;
    return next(scope);
  }

  #refuse(scope: Scope, key: string | undefined, retryAfterMs: number): Promise<never> {
    this.#rejected++;
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'ratelimit:rejected',
        policy: this.name,
        operation: scope.operation,
        key,
        retryAfterMs,
      });
    }
    return rejectSoon(withoutStack(() => new RateLimitedError(this.name, retryAfterMs)));
  }
}

function isIdle(state: LimitState): boolean {
  return state.head === undefined;
}

/** The permits a call asks for, from the `cost` option; a wrong value is a programming error. */
function costOf(cost: (context: Scope) => number, scope: Scope): number {
  const permits = cost(scope);
  if (!Number.isInteger(permits) || permits < 0) {
    throw new InvalidOptionsError(
      'rateLimiter.cost',
      `returned ${String(permits)}; expected a whole number ≥ 0`,
    );
  }
  return permits;
}

/** A rate limiter. See {@link RateLimiterOptions} for the defaults. */
export function rateLimiter(options: RateLimiterOptions): RateLimiterPolicy {
  return new RateLimiterPolicy(options);
}
