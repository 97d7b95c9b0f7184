// Circuit breaker options, their defaults, and their one-time normalisation.
import { isTransient } from '../classify.ts';
import { type Clock, systemClock } from '../clock/clock.ts';
import { isLocalRejection } from '../errors.ts';
import {
  clockOption,
  fail,
  func,
  isRecord,
  knownKeys,
  num,
  oneOf,
  optionsObject,
  str,
} from '../internal/validate.ts';
import type { BreakerStateStore } from './store.ts';

export type BreakerWindowOptions =
  /** Opens after `failures` failures in a row (or as many slow calls in a row). */
  | { kind: 'consecutive'; failures: number }
  /** Judges the failure rate of the last `size` calls. */
  | { kind: 'count'; size: number }
  /**
   * Judges the calls of the last `ms`, kept in `buckets` buckets (@default 10): by their failure
   * rate or, when `failures` is given, by their number of failures ("5 failures in 30 s").
   */
  | { kind: 'time'; ms: number; buckets?: number; failures?: number };

export interface CircuitBreakerOptions {
  /** @default { kind: 'consecutive', failures: 5 } */
  window?: BreakerWindowOptions;
  /** Count and time windows: open when failures / calls is at or above this (above 0, at most 1). @default 0.5 */
  failureRate?: number;
  /** Count and time windows: judge the rates only once the window holds this many calls. @default 10 */
  minimumCalls?: number;
  /** Calls at or above `thresholdMs` are slow; open when the slow share reaches `rate`. @default off */
  slowCall?: { thresholdMs: number; rate: number };
  /** How long the circuit stays open before letting probes through. @default 30_000 */
  openMs?: number;
  /** Each reopening without a close in between multiplies the open time by `factor`, up to `maxMs`. @default off */
  openBackoff?: { factor: number; maxMs: number };
  halfOpen?: {
    /** Probes allowed in flight at once while half-open. @default 1 */
    probes?: number;
    /** Successful probes needed to close. @default 1 */
    successes?: number;
    /** `retryAfterMs` given to callers refused while the probes run. @default min(openMs, 1_000) */
    retryAfterMs?: number;
  };
  /**
   * Which failures count against the circuit; others are not recorded at all.
   * @default transient failures, except Bulwark's own local rejections (a full bulkhead, a rate
   * limit, another open breaker): those say the caller is overloaded, not that the dependency is sick.
   */
  shouldRecord?: (error: unknown) => boolean;
  /** Where state transitions are saved and loaded (for sharing them across processes). */
  store?: BreakerStateStore;
  /** @default systemClock */
  clock?: Clock;
  /** Names the breaker in events, statistics and its store. @default 'breaker' */
  name?: string;
}

/** @internal */
export interface NormalizedBreakerOptions {
  window:
    | { kind: 'consecutive'; failures: number }
    | { kind: 'count'; size: number }
    /** `failures` is absent when the rate decides. */
    | { kind: 'time'; ms: number; buckets: number; failures?: number };
  failureRate: number;
  minimumCalls: number;
  slowThresholdMs: number;
  slowRate: number;
  openMs: number;
  openFactor: number;
  openMaxMs: number;
  probes: number;
  successes: number;
  halfOpenRetryAfterMs: number;
  shouldRecord: (error: unknown) => boolean;
  store: BreakerStateStore | undefined;
  clock: Clock;
  name: string;
}

const KEYS = [
  'window',
  'failureRate',
  'minimumCalls',
  'slowCall',
  'openMs',
  'openBackoff',
  'halfOpen',
  'shouldRecord',
  'store',
  'clock',
  'name',
] as const;

/** @internal */
export function normalizeBreakerOptions(
  options: CircuitBreakerOptions | undefined,
): NormalizedBreakerOptions {
  // Breakers built with the defaults share one frozen copy of them.
  if (options === undefined) return (defaults ??= Object.freeze(normalize(undefined)));
  return normalize(options);
}

let defaults: NormalizedBreakerOptions | undefined;

function normalize(options: CircuitBreakerOptions | undefined): NormalizedBreakerOptions {
  const o = optionsObject('circuitBreaker', options);
  knownKeys('circuitBreaker', o, KEYS);
  const window = normalizeWindow(o.window);
  const openMs = num('circuitBreaker.openMs', o.openMs, 30_000, { min: 1 });
  let openFactor = 1;
  let openMaxMs = openMs;
  if (o.openBackoff !== undefined) {
    const b = optionsObject('circuitBreaker.openBackoff', o.openBackoff);
    knownKeys('circuitBreaker.openBackoff', b, ['factor', 'maxMs']);
    openFactor = num('circuitBreaker.openBackoff.factor', b.factor, 2, { min: 1 });
    openMaxMs = num('circuitBreaker.openBackoff.maxMs', b.maxMs, openMs * 10, { min: openMs });
  }
  let slowThresholdMs = Number.POSITIVE_INFINITY;
  let slowRate = Number.POSITIVE_INFINITY;
  if (o.slowCall !== undefined) {
    const s = optionsObject('circuitBreaker.slowCall', o.slowCall);
    knownKeys('circuitBreaker.slowCall', s, ['thresholdMs', 'rate']);
    if (s.thresholdMs === undefined) fail('circuitBreaker.slowCall.thresholdMs', 'is required');
    slowThresholdMs = num('circuitBreaker.slowCall.thresholdMs', s.thresholdMs, 0, { min: 0 });
    slowRate = rate('circuitBreaker.slowCall.rate', s.rate, 1);
  }
  const h = optionsObject('circuitBreaker.halfOpen', o.halfOpen);
  knownKeys('circuitBreaker.halfOpen', h, ['probes', 'successes', 'retryAfterMs']);
  const probes = num('circuitBreaker.halfOpen.probes', h.probes, 1, { min: 1, integer: true });
  const maxMinimum = window.kind === 'count' ? window.size : Number.POSITIVE_INFINITY;
  return {
    window,
    failureRate: rate('circuitBreaker.failureRate', o.failureRate, 0.5),
    minimumCalls: Math.min(
      maxMinimum,
      num('circuitBreaker.minimumCalls', o.minimumCalls, 10, { min: 1, integer: true }),
    ),
    slowThresholdMs,
    slowRate,
    openMs,
    openFactor,
    openMaxMs,
    probes,
    successes: num('circuitBreaker.halfOpen.successes', h.successes, 1, { min: 1, integer: true }),
    halfOpenRetryAfterMs: num(
      'circuitBreaker.halfOpen.retryAfterMs',
      h.retryAfterMs,
      Math.min(openMs, 1_000),
      {
        min: 0,
      },
    ),
    shouldRecord: func('circuitBreaker.shouldRecord', o.shouldRecord, recordsByDefault),
    store: normalizeStore(o.store),
    clock: clockOption('circuitBreaker.clock', o.clock, systemClock),
    name: str('circuitBreaker.name', o.name, 'breaker'),
  };
}

/**
 * A rate threshold in (0, 1]. Every outcome is judged, so a threshold of 0 ("at or above 0%")
 * would open the circuit on the minimumCalls-th call even if every call succeeded.
 */
function rate(path: string, value: unknown, fallback: number): number {
  const r = num(path, value, fallback, { min: 0, max: 1 });
  if (r === 0) fail(path, 'must be above 0 (a rate of 0 would open the circuit on successes)');
  return r;
}

function normalizeWindow(value: unknown): NormalizedBreakerOptions['window'] {
  if (value === undefined) return { kind: 'consecutive', failures: 5 };
  if (!isRecord(value))
    fail('circuitBreaker.window', "expected { kind: 'consecutive' | 'count' | 'time', ... }");
  const kind = oneOf(
    'circuitBreaker.window.kind',
    value.kind,
    ['consecutive', 'count', 'time'],
    'consecutive',
  );
  if (kind === 'consecutive') {
    knownKeys('circuitBreaker.window', value, ['kind', 'failures']);
    return {
      kind,
      failures: num('circuitBreaker.window.failures', value.failures, 5, { min: 1, integer: true }),
    };
  }
  if (kind === 'count') {
    knownKeys('circuitBreaker.window', value, ['kind', 'size']);
    if (value.size === undefined) fail('circuitBreaker.window.size', 'is required');
    return {
      kind,
      size: num('circuitBreaker.window.size', value.size, 100, { min: 1, max: 1_000_000, integer: true }),
    };
  }
  knownKeys('circuitBreaker.window', value, ['kind', 'ms', 'buckets', 'failures']);
  if (value.ms === undefined) fail('circuitBreaker.window.ms', 'is required');
  return {
    kind,
    ms: num('circuitBreaker.window.ms', value.ms, 60_000, { min: 1 }),
    buckets: num('circuitBreaker.window.buckets', value.buckets, 10, { min: 1, max: 1_000, integer: true }),
    // Absent unless given, so that `describe()` shows the window as it was configured.
    ...(value.failures === undefined
      ? {}
      : { failures: num('circuitBreaker.window.failures', value.failures, 1, { min: 1, integer: true }) }),
  };
}

function normalizeStore(value: unknown): BreakerStateStore | undefined {
  if (value === undefined) return undefined;
  const s = value as BreakerStateStore;
  if (typeof s !== 'object' || s === null || typeof s.load !== 'function' || typeof s.save !== 'function') {
    fail('circuitBreaker.store', 'expected a store with load(name) and save(name, state)');
  }
  return s;
}

/** The default of `shouldRecord`. */
function recordsByDefault(error: unknown): boolean {
  return !isLocalRejection(error) && isTransient(error);
}
