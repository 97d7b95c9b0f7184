// The chaos policy: injects faults, latency and replacement results at a rate, switchable at
// run time, so that the layers around a dependency can be tested against its misbehaviour.
import { rejectSoon } from '../errors.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import { type ChaosOptions, type NormalizedChaosOptions, normalizeChaosOptions } from './options.ts';

export interface ChaosStats {
  enabled: boolean;
  /** Calls failed with an injected fault. */
  faults: number;
  /** Calls delayed by injected latency (counted when the delay starts). */
  latencies: number;
  /** Calls answered with the replacement result. */
  results: number;
}

/** What a call gets instead of running, decided by one draw per configured kind. */
const NONE = 0;
const FAULT = 1;
const RESULT = 2;
type Injected = typeof NONE | typeof FAULT | typeof RESULT;

export class ChaosPolicy<R = never> extends PolicyBase<R> {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'chaos' {
    return 'chaos';
  }
  readonly #o: NormalizedChaosOptions;
  #enabled: boolean;
  #faults = 0;
  #latencies = 0;
  #results = 0;

  constructor(options?: ChaosOptions<R>) {
    const o = normalizeChaosOptions(options as ChaosOptions<unknown> | undefined);
    super(o.name);
    this.#o = o;
    this.#enabled = o.enabled;
  }

  /** Whether faults, latency and results are injected now. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** Starts injecting, from the next call on. */
  enable(): void {
    this.#enabled = true;
  }

  /** Stops injecting, from the next call on: calls pass through untouched (a delay under way runs out). */
  disable(): void {
    this.#enabled = false;
  }

  stats(): ChaosStats {
    return {
      enabled: this.#enabled,
      faults: this.#faults,
      latencies: this.#latencies,
      results: this.#results,
    };
  }

  describe(): PolicyDescription {
    const o = this.#o;
    return {
      kind: 'chaos',
      name: this.name,
      options: {
        enabled: this.#enabled,
        fault: o.fault === undefined ? false : { rate: o.fault.rate },
        latency: o.latency === undefined ? false : { ...o.latency },
        result: o.result === undefined ? false : { rate: o.result.rate },
      },
    };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    if (!this.#enabled) return next(scope);
    const o = this.#o;
    // Every draw is made up front, in a fixed order (latency, fault, then result unless a fault
    // was drawn), so that a seeded source gives the same injections whatever the timing.
    let delay: boolean;
    let injected: Injected = NONE;
    try {
      delay = o.latency !== undefined && o.random() < o.latency.rate;
      if (o.fault !== undefined && o.random() < o.fault.rate) injected = FAULT;
      else if (o.result !== undefined && o.random() < o.result.rate) injected = RESULT;
    } catch (thrown) {
      // A user's random source that throws must reject the call, not throw out of `execute`
      // (and out of every layer outside, leaving their slots and counts taken).
      return Promise.reject(thrown);
    }
    if (!delay) return this.#apply(scope, next, injected);
    this.#latencies++;
    this.#emit(scope, 'latency');
    const ms = o.latency!.ms;
    return o.clock.sleep(ms, scope.canAbort ? scope.signal : undefined).then(
      () => this.#apply(scope, next, injected),
      // The caller gave up during the delay: its reason, and the operation never starts.
      () => Promise.reject(scope.abortReason),
    );
  }

  #apply(scope: Scope, next: Next, injected: Injected): Promise<unknown> {
    if (injected === NONE) return next(scope);
    if (scope.aborted) return Promise.reject(scope.abortReason);
    if (injected === FAULT) {
      this.#faults++;
      this.#emit(scope, 'fault');
      let error: Error;
      try {
        error = this.#o.fault!.error(scope);
      } catch (thrown) {
        return Promise.reject(thrown);
      }
      return rejectSoon(error);
    }
    this.#results++;
    this.#emit(scope, 'result');
    return Promise.resolve(this.#o.result!.value);
  }

  #emit(scope: Scope, kind: 'fault' | 'latency' | 'result'): void {
    if (this.events.demand !== 0) {
      this.events.emit({ type: 'chaos:injected', policy: this.name, operation: scope.operation, kind });
    }
  }
}

/** A chaos policy. See {@link ChaosOptions}: nothing is injected for a kind that is not configured. */
export function chaos<R = never>(options?: ChaosOptions<R>): ChaosPolicy<R> {
  return new ChaosPolicy<R>(options);
}
