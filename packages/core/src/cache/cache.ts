// The cache policy: answers repeated calls from stored results and coalesces concurrent calls
// with the same key into one execution (single-flight); expiry is checked on read, no timers.

import { rejectSoon } from '../errors.ts';
import { untilAborted } from '../internal/abort.ts';
import { PolicyBase } from '../pipeline/base.ts';
import { Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import { type CacheOptions, type NormalizedCacheOptions, normalizeCacheOptions } from './options.ts';
import type { CacheEntry } from './store.ts';

export interface CacheStats {
  /** Calls answered from a fresh entry. */
  hits: number;
  /** Calls that found nothing usable and started an execution. */
  misses: number;
  /** Calls that joined an execution already in flight for their key. */
  coalesced: number;
  /** Calls answered with an expired entry (stale-while-revalidate or stale-if-error). */
  staleServed: number;
  /** Background refreshes started by stale-while-revalidate. */
  revalidations: number;
  /** Executions in flight now. */
  inFlight: number;
  /** Entries in the store, when the store reports it (the memory store does). */
  size: number | undefined;
}

/** One shared execution and the callers waiting for it. */
class Flight {
  waiters = 0;
  settled = false;
  /** Every waiter left before it settled, and it was aborted. */
  abandoned = false;
  /** The outcome is a substitute: a fallback inside answered, or a stale entry did. */
  degraded = false;
  work!: Promise<unknown>;
  promise!: Promise<unknown>;
  constructor(
    readonly key: string,
    readonly scope: Scope,
    /** An expired entry still usable if the execution fails (stale-if-error). */
    readonly stale: CacheEntry | undefined,
    /** A stale-while-revalidate refresh: nobody waits for it, so nobody leaving aborts it. */
    readonly background: boolean,
  ) {}
}

const ignore = () => {};

export class CachePolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'cache' {
    return 'cache';
  }
  readonly #o: NormalizedCacheOptions;
  readonly #inFlight = new Map<string, Flight>();
  #hits = 0;
  #misses = 0;
  #coalesced = 0;
  #staleServed = 0;
  #revalidations = 0;

  constructor(options: CacheOptions) {
    const o = normalizeCacheOptions(options);
    super(o.name);
    this.#o = o;
  }

  stats(): CacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      coalesced: this.#coalesced,
      staleServed: this.#staleServed,
      revalidations: this.#revalidations,
      inFlight: this.#inFlight.size,
      size: this.#o.store.size,
    };
  }

  describe(): PolicyDescription {
    const o = this.#o;
    return {
      kind: 'cache',
      name: this.name,
      options: {
        ttlMs: o.ttlMs,
        maxEntries: o.maxEntries,
        cacheErrors: o.errorTtlMs < 0 ? false : { ttlMs: o.errorTtlMs },
        staleWhileRevalidate: o.revalidateMs < 0 ? false : { maxStaleMs: o.revalidateMs },
        staleIfError: o.staleIfErrorMs < 0 ? false : { maxStaleMs: o.staleIfErrorMs },
        store: o.store.constructor.name,
      },
    };
  }

  /** Removes the entry of `key` (an execution in flight for it is not affected). */
  async invalidate(key: string): Promise<void> {
    await this.#o.store.delete(key);
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    let key: string | undefined;
    try {
      key = this.#o.key(scope);
    } catch (error) {
      return Promise.reject(error);
    }
    if (key === undefined) return next(scope);
    let found: ReturnType<NormalizedCacheOptions['store']['get']>;
    try {
      found = this.#o.store.get(key);
    } catch (error) {
      warnStore(this.name, 'reading', error);
      found = undefined;
    }
    if (found !== undefined && typeof (found as PromiseLike<unknown>).then === 'function') {
      const looked = Promise.resolve(found).then(
        (entry) => this.#lookup(scope, next, key, entry),
        (error: unknown) => {
          // A store that cannot answer must not fail the call: run it as a miss.
          warnStore(this.name, 'reading', error);
          return this.#lookup(scope, next, key, undefined);
        },
      );
      // A slow store must not hold a caller who aborts: it leaves at once with its reason.
      return scope.canAbort ? untilAborted(scope, looked) : looked;
    }
    return this.#lookup(scope, next, key, found as CacheEntry | undefined);
  }

  #lookup(scope: Scope, next: Next, key: string, entry: CacheEntry | undefined): Promise<unknown> {
    const o = this.#o;
    let stale: CacheEntry | undefined;
    if (entry !== undefined) {
      const now = o.clock.now();
      if (now < entry.expiresAt) {
        this.#hits++;
        if (this.events.demand !== 0) {
          this.events.emit({ type: 'cache:hit', policy: this.name, operation: scope.operation, key });
        }
        return entry.ok ? Promise.resolve(entry.value) : rejectSoon(entry.value);
      }
      if (entry.ok && now < entry.staleUntil) {
        if (now < entry.expiresAt + o.revalidateMs) {
          this.#staleServed++;
          this.#emitStale(scope.operation, key, 'revalidate', now - entry.expiresAt);
          if (!this.#inFlight.has(key)) {
            this.#revalidations++;
            this.#start(scope, next, key, undefined, true).promise.then(undefined, ignore);
          }
          return Promise.resolve(entry.value);
        }
        stale = entry;
      } else {
        this.#delete(key);
      }
    }
    const flight = this.#inFlight.get(key);
    if (flight !== undefined) {
      this.#coalesced++;
      if (this.events.demand !== 0) {
        this.events.emit({ type: 'cache:coalesced', policy: this.name, operation: scope.operation, key });
      }
      return this.#join(scope, flight);
    }
    // Aborted while an asynchronous store answered: start nothing for a caller who left.
    if (scope.aborted) return Promise.reject(scope.abortReason);
    this.#misses++;
    if (this.events.demand !== 0) {
      this.events.emit({ type: 'cache:miss', policy: this.name, operation: scope.operation, key });
    }
    return this.#join(scope, this.#start(scope, next, key, stale, false));
  }

  /**
   * Starts the shared execution in a scope of its own, which no caller's signal reaches: one
   * caller giving up must not cancel the work the others wait for.
   */
  #start(scope: Scope, next: Next, key: string, stale: CacheEntry | undefined, background: boolean): Flight {
    const own = new Scope(
      scope.fn,
      { operation: scope.operation, key: scope.key, priority: scope.priority },
      undefined,
      true,
    );
    const flight = new Flight(key, own, stale, background);
    this.#inFlight.set(key, flight);
    flight.work = next(own);
    flight.promise = flight.work.then(
      (value) => this.#succeeded(flight, value),
      (error: unknown) => this.#failed(flight, error),
    );
    return flight;
  }

  #succeeded(flight: Flight, value: unknown): unknown {
    this.#settle(flight);
    // A substitute (a fallback inside answered) is shared with the waiters but never stored.
    if (flight.scope.degraded) flight.degraded = true;
    // Every caller left and the work was aborted: its late result is wanted by nobody, and a
    // newer execution for the key may already have stored a fresher one.
    else if (this.#o.ttlMs > 0 && !flight.abandoned) {
      const now = this.#o.clock.now();
      const expiresAt = now + this.#o.ttlMs;
      this.#set(flight.key, { ok: true, value, expiresAt, staleUntil: expiresAt + this.#o.keepStaleMs });
    }
    return value;
  }

  #failed(flight: Flight, error: unknown): unknown {
    this.#settle(flight);
    // An abandoned execution failed because it was aborted: nothing to store or to answer.
    if (flight.abandoned) throw error;
    const o = this.#o;
    const now = o.clock.now();
    const stale = flight.stale;
    if (stale !== undefined && now < stale.expiresAt + o.staleIfErrorMs) {
      flight.degraded = true;
      this.#staleServed += flight.waiters;
      this.#emitStale(flight.scope.operation, flight.key, 'error', now - stale.expiresAt);
      return stale.value;
    }
    // A failed background refresh leaves the stale entry in place rather than caching the failure.
    if (o.errorTtlMs > 0 && !flight.background) {
      const expiresAt = now + o.errorTtlMs;
      this.#set(flight.key, { ok: false, value: error, expiresAt, staleUntil: expiresAt });
    }
    throw error;
  }

  #settle(flight: Flight): void {
    flight.settled = true;
    if (this.#inFlight.get(flight.key) === flight) this.#inFlight.delete(flight.key);
  }

  /** A caller waits for a shared execution; if it can abort, it can leave alone. */
  #join(scope: Scope, flight: Flight): Promise<unknown> {
    flight.waiters++;
    if (!scope.canAbort) {
      return flight.promise.then((value) => {
        if (flight.degraded) scope.root.degraded = true;
        return value;
      });
    }
    if (scope.aborted) {
      this.#leave(flight, scope);
      return Promise.reject(scope.abortReason);
    }
    return new Promise((resolve, reject) => {
      const signal = scope.signal;
      const onAbort = () => {
        this.#leave(flight, scope);
        reject(scope.abortReason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          if (flight.degraded) scope.root.degraded = true;
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  /**
   * A caller gave up. The execution goes on for the others; when the last one leaves, nobody
   * wants the outcome, so it is aborted like a lone caller's call would be. Work that ignores
   * its signal stays counted by the bulkheads around the caller until it settles.
   */
  #leave(flight: Flight, scope: Scope): void {
    flight.waiters--;
    if (flight.waiters !== 0 || flight.background || flight.settled) return;
    flight.abandoned = true;
    if (this.#inFlight.get(flight.key) === flight) this.#inFlight.delete(flight.key);
    for (let lease = scope.lease; lease !== undefined; lease = lease.outer) lease.hold(flight.work);
    flight.scope.abort(scope.abortReason);
  }

  #emitStale(
    operation: string | undefined,
    key: string,
    reason: 'revalidate' | 'error',
    staleMs: number,
  ): void {
    if (this.events.demand !== 0) {
      this.events.emit({ type: 'cache:stale', policy: this.name, operation, key, reason, staleMs });
    }
  }

  #set(key: string, entry: CacheEntry): void {
    try {
      const done = this.#o.store.set(key, entry);
      if (done !== undefined)
        Promise.resolve(done).then(undefined, (error: unknown) => warnStore(this.name, 'writing', error));
    } catch (error) {
      warnStore(this.name, 'writing', error);
    }
  }

  #delete(key: string): void {
    try {
      const done = this.#o.store.delete(key);
      if (done !== undefined)
        Promise.resolve(done).then(undefined, (error: unknown) => warnStore(this.name, 'deleting', error));
    } catch (error) {
      warnStore(this.name, 'deleting', error);
    }
  }
}

function warnStore(name: string, what: string, error: unknown): void {
  process.emitWarning(
    `The store of cache '${name}' failed ${what} an entry: ${String(error)}`,
    'BulwarkStoreWarning',
  );
}

/** A cache with single-flight. See {@link CacheOptions} for the defaults. */
export function cache(options: CacheOptions): CachePolicy {
  return new CachePolicy(options);
}
