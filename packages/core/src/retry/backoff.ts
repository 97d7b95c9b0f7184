// Backoff strategies: how long to wait before retry n. Each is validated once when built.
import { fail, knownKeys, num, optionsObject } from '../internal/validate.ts';

/** Per-call memory of a backoff sequence (decorrelated jitter needs the previous value). @internal */
export interface BackoffMemo {
  prev: number;
}

export interface Backoff {
  readonly kind: 'constant' | 'linear' | 'exponential' | 'decorrelated-jitter';
  /**
   * Delay before retry `retry` (1 before the first retry). `random` returns [0, 1).
   * @internal
   */
  delayMs(retry: number, random: () => number, memo: BackoffMemo): number;
  describe(): Readonly<Record<string, unknown>>;
}

export interface ConstantBackoffOptions {
  /** Delay before every retry. */
  ms: number;
  /** ±fraction of randomness, from 0 to 1. @default 0 */
  jitter?: number;
}

export interface LinearBackoffOptions {
  /** Delay before the first retry. */
  baseMs: number;
  /** Added for each further retry. @default baseMs */
  stepMs?: number;
  /** Cap on any delay. @default Infinity */
  maxMs?: number;
  /** ±fraction of randomness, from 0 to 1. @default 0 */
  jitter?: number;
}

export interface ExponentialBackoffOptions {
  /** Delay before the first retry. */
  baseMs: number;
  /** Growth per retry. @default 2 */
  factor?: number;
  /** Cap on any delay, jitter included. @default 30_000 */
  maxMs?: number;
  /** ±fraction of randomness, from 0 to 1. @default 0 */
  jitter?: number;
}

export interface DecorrelatedJitterOptions {
  /** The median delay of the first retry. */
  baseMs: number;
  /** Cap on any delay. @default 30_000 */
  maxMs?: number;
}

/** Applies ±`jitter` around `delay`, then caps at `maxMs`. */
function jittered(delay: number, jitter: number, maxMs: number, random: () => number): number {
  // An uncapped delay that overflowed stays infinite (Infinity · 0 would make NaN).
  if (delay === Number.POSITIVE_INFINITY) return maxMs;
  const d = jitter === 0 ? delay : delay * (1 + jitter * (2 * random() - 1));
  return Math.min(maxMs, Math.max(0, Math.round(d)));
}

export function constant(options: ConstantBackoffOptions): Backoff {
  const o = optionsObject('constant', options);
  knownKeys('constant', o, ['ms', 'jitter']);
  if (o.ms === undefined) fail('constant.ms', 'is required');
  const ms = num('constant.ms', o.ms, 0, { min: 0 });
  const jitter = num('constant.jitter', o.jitter, 0, { min: 0, max: 1 });
  return {
    kind: 'constant',
    delayMs: (_retry, random) => jittered(ms, jitter, Number.POSITIVE_INFINITY, random),
    describe: () => ({ kind: 'constant', ms, jitter }),
  };
}

export function linear(options: LinearBackoffOptions): Backoff {
  const o = optionsObject('linear', options);
  knownKeys('linear', o, ['baseMs', 'stepMs', 'maxMs', 'jitter']);
  if (o.baseMs === undefined) fail('linear.baseMs', 'is required');
  const baseMs = num('linear.baseMs', o.baseMs, 0, { min: 0 });
  const stepMs = num('linear.stepMs', o.stepMs, baseMs, { min: 0 });
  const maxMs = num('linear.maxMs', o.maxMs, Number.POSITIVE_INFINITY, { min: 0, infinite: true });
  const jitter = num('linear.jitter', o.jitter, 0, { min: 0, max: 1 });
  return {
    kind: 'linear',
    delayMs: (retry, random) =>
      jittered(Math.min(maxMs, baseMs + stepMs * (retry - 1)), jitter, maxMs, random),
    describe: () => ({ kind: 'linear', baseMs, stepMs, maxMs, jitter }),
  };
}

export function exponential(options: ExponentialBackoffOptions): Backoff {
  const o = optionsObject('exponential', options);
  knownKeys('exponential', o, ['baseMs', 'factor', 'maxMs', 'jitter']);
  if (o.baseMs === undefined) fail('exponential.baseMs', 'is required');
  const baseMs = num('exponential.baseMs', o.baseMs, 0, { min: 0 });
  const factor = num('exponential.factor', o.factor, 2, { min: 1 });
  const maxMs = num('exponential.maxMs', o.maxMs, 30_000, { min: 0, infinite: true });
  const jitter = num('exponential.jitter', o.jitter, 0, { min: 0, max: 1 });
  return {
    kind: 'exponential',
    delayMs: (retry, random) =>
      // baseMs 0 stays 0 even when factor ** n overflows (0 · Infinity is NaN).
      jittered(baseMs === 0 ? 0 : Math.min(maxMs, baseMs * factor ** (retry - 1)), jitter, maxMs, random),
    describe: () => ({ kind: 'exponential', baseMs, factor, maxMs, jitter }),
  };
}

/**
 * Decorrelated jitter, "v2" (the formula Polly adopted): exponential growth with the
 * randomness spread evenly, so that callers who failed together do not retry together.
 * With t = n + random (n counting from 0), next = 2^t · tanh(√(4t)); the delay is
 * (next − previous next) / 1.4 · baseMs, capped at maxMs.
 */
export function decorrelatedJitter(options: DecorrelatedJitterOptions): Backoff {
  const o = optionsObject('decorrelatedJitter', options);
  knownKeys('decorrelatedJitter', o, ['baseMs', 'maxMs']);
  if (o.baseMs === undefined) fail('decorrelatedJitter.baseMs', 'is required');
  const baseMs = num('decorrelatedJitter.baseMs', o.baseMs, 0, { min: 0 });
  const maxMs = num('decorrelatedJitter.maxMs', o.maxMs, 30_000, { min: 0, infinite: true });
  return {
    kind: 'decorrelated-jitter',
    delayMs: (retry, random, memo) => {
      const t = retry - 1 + random();
      const next = 2 ** t * Math.tanh(Math.sqrt(4 * t));
      if (!Number.isFinite(next)) {
        // Past t ≈ 1024, 2^t overflows: Polly answers the cap (App-vNext/Polly#2163).
        memo.prev = next;
        return baseMs === 0 ? 0 : maxMs;
      }
      const delay = ((next - memo.prev) / 1.4) * baseMs;
      memo.prev = next;
      return Math.min(maxMs, Math.max(0, Math.round(delay)));
    },
    describe: () => ({ kind: 'decorrelated-jitter', baseMs, maxMs }),
  };
}

/** Checks that a value given as `backoff` is one of the above. @internal */
export function isBackoff(value: unknown): value is Backoff {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Backoff).delayMs === 'function' &&
    typeof (value as Backoff).describe === 'function'
  );
}
