// The circuit breaker: stops calling a dependency that keeps failing, then probes it.
// All transitions happen on calls or reads (lazily, from the clock): no timers, ever.
import { BrokenCircuitError, IsolatedCircuitError, rejectSoon, withoutStack } from '../errors.ts';
import { fail, isRecord } from '../internal/validate.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import {
  type CircuitBreakerOptions,
  type NormalizedBreakerOptions,
  normalizeBreakerOptions,
} from './options.ts';
import type { BreakerSnapshot, CircuitState } from './store.ts';
import { ConsecutiveWindow, CountWindow, type OutcomeWindow, TimeWindow } from './window.ts';

export interface CircuitBreakerStats {
  state: CircuitState;
  /** Failures / calls in the current window (0 when empty). */
  failureRate: number;
  slowCallRate: number;
  /** Calls, failures and slow calls the window holds now. */
  bufferedCalls: number;
  bufferedFailures: number;
  bufferedSlowCalls: number;
  /** Since creation, by outcome (shaped like resilience4j's breaker metrics). */
  successful: number;
  failed: number;
  /** Failures the breaker does not handle (permanent errors, cancellations): not recorded. */
  ignored: number;
  /** Calls refused while open, isolated, or half-open with every probe taken. */
  notPermitted: number;
  /** While open: ms until probes are let through. 0 otherwise. */
  retryAfterMs: number;
}

type OpenReason =
  | 'failure-rate'
  | 'failure-count'
  | 'slow-call-rate'
  | 'consecutive-failures'
  | 'probe-failed';

export class CircuitBreakerPolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'circuit-breaker' {
    return 'circuit-breaker';
  }
  readonly #o: NormalizedBreakerOptions;
  readonly #window: OutcomeWindow;
  readonly #timed: boolean;
  #state: CircuitState = 'closed';
  /** Bumped on every transition: results of calls started under an older state are stale. */
  #generation = 0;
  #openedAt = 0;
  #openForMs = 0;
  #openings = 0;
  #probesInFlight = 0;
  #probeSuccesses = 0;
  #successful = 0;
  #failed = 0;
  #ignored = 0;
  #notPermitted = 0;

  constructor(options?: CircuitBreakerOptions) {
    const o = normalizeBreakerOptions(options);
    super(o.name);
    this.#o = o;
    const w = o.window;
    this.#window =
      w.kind === 'consecutive'
        ? new ConsecutiveWindow()
        : w.kind === 'count'
          ? new CountWindow(w.size)
          : new TimeWindow(w.ms, w.buckets);
    this.#timed = w.kind === 'time' || o.slowThresholdMs !== Number.POSITIVE_INFINITY;
  }

  /** The current state; an open circuit whose open time has passed reads as half-open. */
  get state(): CircuitState {
    if (this.#state === 'open') this.#refresh(this.#o.clock.now());
    return this.#state;
  }

  stats(): CircuitBreakerStats {
    const now = this.#o.clock.now();
    const state = this.state;
    const c = this.#window.counts(now);
    return {
      state,
      failureRate: c.calls === 0 ? 0 : c.failures / c.calls,
      slowCallRate: c.calls === 0 ? 0 : c.slow / c.calls,
      bufferedCalls: c.calls,
      bufferedFailures: c.failures,
      bufferedSlowCalls: c.slow,
      successful: this.#successful,
      failed: this.#failed,
      ignored: this.#ignored,
      notPermitted: this.#notPermitted,
      retryAfterMs: state === 'open' ? this.#openedAt + this.#openForMs - now : 0,
    };
  }

  describe(): PolicyDescription {
    const o = this.#o;
    return {
      kind: 'circuit-breaker',
      name: this.name,
      options: {
        window: o.window,
        failureRate: o.failureRate,
        minimumCalls: o.minimumCalls,
        slowCall:
          o.slowThresholdMs === Number.POSITIVE_INFINITY
            ? false
            : { thresholdMs: o.slowThresholdMs, rate: o.slowRate },
        openMs: o.openMs,
        openBackoff: o.openFactor === 1 ? false : { factor: o.openFactor, maxMs: o.openMaxMs },
        halfOpen: { probes: o.probes, successes: o.successes, retryAfterMs: o.halfOpenRetryAfterMs },
      },
    };
  }

  /** Holds the circuit open until `reset()`; calls fail with `IsolatedCircuitError`. */
  isolate(): void {
    this.#transition('isolated');
    this.#emitSimple('breaker:isolated');
  }

  /** Closes the circuit with an empty window, whatever its state. */
  reset(): void {
    this.#close();
  }

  exportState(): BreakerSnapshot {
    const state = this.state;
    return {
      version: 1,
      state,
      openedAt: this.#openedAt,
      openForMs: this.#openForMs,
      openings: this.#openings,
      window: this.#window.export(),
    };
  }

  /** Restores state exported by `exportState()` (here or in another process). */
  importState(snapshot: BreakerSnapshot): void {
    if (!isRecord(snapshot) || snapshot.version !== 1) fail('breaker.state', 'expected a version 1 snapshot');
    if (!['closed', 'open', 'half-open', 'isolated'].includes(snapshot.state)) {
      fail('breaker.state.state', `unknown state ${JSON.stringify(snapshot.state)}`);
    }
    for (const key of ['openedAt', 'openForMs', 'openings'] as const) {
      if (typeof snapshot[key] !== 'number' || !Number.isFinite(snapshot[key])) {
        fail(`breaker.state.${key}`, `expected a finite number, got ${String(snapshot[key])}`);
      }
    }
    if (!isRecord(snapshot.window)) fail('breaker.state.window', 'expected the exported window');
    this.#window.import(snapshot.window);
    this.#state = snapshot.state;
    this.#openedAt = snapshot.openedAt;
    this.#openForMs = snapshot.openForMs;
    this.#openings = snapshot.openings;
    this.#generation++;
    this.#probesInFlight = 0;
    this.#probeSuccesses = 0;
  }

  /** Loads the state saved in the configured store, if there is any. */
  async hydrate(): Promise<void> {
    const store = this.#o.store;
    if (store === undefined) return;
    const snapshot = await store.load(this.name);
    if (snapshot !== undefined) this.importState(snapshot);
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    if (this.#state === 'closed') {
      return this.#run(scope, next, this.#generation, this.#timed ? this.#o.clock.now() : 0, false);
    }
    const now = this.#o.clock.now();
    this.#refresh(now);
    switch (this.#state) {
      case 'open':
        return this.#refuse(scope, 'open', this.#openedAt + this.#openForMs - now);
      case 'isolated':
        return this.#refuse(scope, 'isolated', 0);
      default:
        if (this.#probesInFlight >= this.#o.probes) {
          return this.#refuse(scope, 'half-open', this.#o.halfOpenRetryAfterMs);
        }
        this.#probesInFlight++;
        return this.#run(scope, next, this.#generation, now, true);
    }
  }

  #run(scope: Scope, next: Next, generation: number, startedAt: number, probe: boolean): Promise<unknown> {
    // Plain reactions rather than an async frame: this is on every call's path.
    return next(scope).then(
      (result) => {
        this.#onSuccess(scope.operation, generation, startedAt, probe);
        return result;
      },
      (error) => {
        this.#onFailure(scope, error, generation, startedAt, probe);
        throw error;
      },
    );
  }

  #onSuccess(operation: string | undefined, generation: number, startedAt: number, probe: boolean): void {
    this.#successful++;
    if (generation !== this.#generation) return;
    const now = this.#timed ? this.#o.clock.now() : 0;
    const slow = now - startedAt >= this.#o.slowThresholdMs;
    if (probe) {
      this.#probesInFlight--;
      if (slow) {
        this.#open('slow-call-rate', operation);
        return;
      }
      if (++this.#probeSuccesses >= this.#o.successes) this.#close();
      return;
    }
    this.#window.record(now, false, slow);
    // A success can trip the circuit too: it may bring the window up to `minimumCalls` while
    // the failure rate is at the threshold, or arrive when expired successes left it there.
    this.#judge(now, operation);
  }

  #onFailure(scope: Scope, error: unknown, generation: number, startedAt: number, probe: boolean): void {
    // A caller's cancellation, or a failure this breaker does not handle, says nothing about
    // the dependency's health: not recorded at all, and a probe gives its permit back.
    if (scope.aborted || !this.#o.shouldRecord(error)) {
      this.#ignored++;
      if (probe && generation === this.#generation) this.#probesInFlight--;
      return;
    }
    this.#failed++;
    if (generation !== this.#generation) return;
    const now = this.#o.clock.now();
    if (probe) {
      this.#probesInFlight--;
      this.#open('probe-failed', scope.operation);
      return;
    }
    this.#window.record(now, true, now - startedAt >= this.#o.slowThresholdMs);
    this.#judge(now, scope.operation);
  }

  /** Opens the circuit if the window's counts call for it. `now` is 0 for an untimed window. */
  #judge(now: number, operation: string | undefined): void {
    const o = this.#o;
    const c = this.#window.counts(now);
    if (o.window.kind === 'consecutive') {
      if (c.failures >= o.window.failures) this.#open('consecutive-failures', operation);
      else if (c.slow >= o.window.failures) this.#open('slow-call-rate', operation);
      return;
    }
    const countRule = o.window.kind === 'time' ? o.window.failures : undefined;
    if (countRule !== undefined && c.failures >= countRule) {
      this.#open('failure-count', operation);
      return;
    }
    if (c.calls < o.minimumCalls) return;
    if (countRule !== undefined) {
      // A failure count replaces the rate rule; slow calls are still judged by their rate.
      if (c.slow / c.calls >= o.slowRate) this.#open('slow-call-rate', operation);
      return;
    }
    if (c.failures / c.calls >= o.failureRate) this.#open('failure-rate', operation);
    else if (c.slow / c.calls >= o.slowRate) this.#open('slow-call-rate', operation);
  }

  #refresh(now: number): void {
    if (this.#state === 'open' && now >= this.#openedAt + this.#openForMs) {
      this.#transition('half-open');
      this.#emitSimple('breaker:half-opened');
    }
  }

  /** Opens the circuit now (read from the clock: callers may judge an untimed window at 0). */
  /** `operation` names the call whose outcome tripped the circuit. */
  #open(reason: OpenReason, operation: string | undefined): void {
    const o = this.#o;
    const now = o.clock.now();
    const c = this.#window.counts(now);
    this.#openings++;
    this.#openForMs = Math.min(o.openMaxMs, o.openMs * o.openFactor ** (this.#openings - 1));
    this.#openedAt = now;
    this.#transition('open');
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'breaker:opened',
        policy: this.name,
        operation,
        reason,
        openMs: this.#openForMs,
        failureRate: c.calls === 0 ? 1 : c.failures / c.calls,
        slowCallRate: c.calls === 0 ? 0 : c.slow / c.calls,
      });
    }
  }

  #close(): void {
    this.#openings = 0;
    this.#window.reset();
    this.#transition('closed');
    this.#emitSimple('breaker:closed');
  }

  #transition(state: CircuitState): void {
    this.#state = state;
    this.#generation++;
    this.#probesInFlight = 0;
    this.#probeSuccesses = 0;
    const store = this.#o.store;
    if (store !== undefined) {
      try {
        const saved = store.save(this.name, this.exportState());
        if (saved !== undefined) saved.catch((error) => warnStore(this.name, error));
      } catch (error) {
        warnStore(this.name, error);
      }
    }
  }

  #emitSimple(type: 'breaker:half-opened' | 'breaker:closed' | 'breaker:isolated'): void {
    if (this.events.demand !== 0) this.events.emit({ type, policy: this.name, operation: undefined });
  }

  #refuse(scope: Scope, state: 'open' | 'half-open' | 'isolated', retryAfterMs: number): Promise<never> {
    this.#notPermitted++;
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'breaker:rejected',
        policy: this.name,
        operation: scope.operation,
        state,
        retryAfterMs,
      });
    }
    const name = this.name;
    return rejectSoon(
      withoutStack(() =>
        state === 'isolated'
          ? new IsolatedCircuitError(name)
          : new BrokenCircuitError(name, retryAfterMs, state),
      ),
    );
  }
}

function warnStore(name: string, error: unknown): void {
  process.emitWarning(
    `Saving the state of breaker '${name}' failed: ${String(error)}`,
    'BulwarkStoreWarning',
  );
}

/** A circuit breaker. See {@link CircuitBreakerOptions} for the defaults. */
export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreakerPolicy {
  return new CircuitBreakerPolicy(options);
}
