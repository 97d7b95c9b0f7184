// Hedge options, their defaults, and their one-time normalisation.
import { isTransient } from '../classify.ts';
import { type Clock, systemClock } from '../clock/clock.ts';
import { clockOption, fail, func, knownKeys, num, optionsObject, str } from '../internal/validate.ts';

interface HedgeCommonOptions {
  /** Extra attempts at most, besides the primary one. @default 1 */
  maxHedges?: number;
  /**
   * Whether a failed attempt should be hedged at once (without waiting for the delay). A
   * failure it refuses stops further hedges; attempts already running go on.
   * @default isTransient
   */
  shouldHedge?: (error: unknown) => boolean;
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events and statistics. @default 'hedge' */
  name?: string;
}

/** Hedge after a fixed delay. */
export interface FixedHedgeOptions extends HedgeCommonOptions {
  /** How long an attempt runs alone before the next one starts. */
  delayMs: number;
}

/** Hedge after the observed latency quantile (for example p95) of recent successful attempts. */
export interface AdaptiveHedgeOptions extends HedgeCommonOptions {
  /** The latency quantile to wait for, in (0, 1): 0.95 hedges the slowest 5% of calls. */
  quantile: number;
  /** Only latencies observed in this last span count. @default 60_000 */
  windowMs?: number;
  /** Below this many latencies in the window, `fallbackDelayMs` is used. @default 20 */
  minSamples?: number;
  /** The delay while there are too few latencies to trust a quantile. */
  fallbackDelayMs: number;
  /** Latencies kept at most (a ring: the oldest give way), which bounds the memory. @default 1_000 */
  maxSamples?: number;
}

export type HedgeOptions = FixedHedgeOptions | AdaptiveHedgeOptions;

/** @internal */
export interface NormalizedHedgeOptions {
  /** The fixed delay, or NaN when the delay is adaptive. */
  delayMs: number;
  /** The quantile, or NaN for a fixed delay. */
  quantile: number;
  windowMs: number;
  minSamples: number;
  fallbackDelayMs: number;
  maxSamples: number;
  maxHedges: number;
  shouldHedge: (error: unknown) => boolean;
  clock: Clock;
  name: string;
}

const COMMON = ['maxHedges', 'shouldHedge', 'clock', 'name'] as const;

/** @internal */
export function normalizeHedgeOptions(options: HedgeOptions): NormalizedHedgeOptions {
  const o = optionsObject('hedge', options);
  const fixed = o.delayMs !== undefined;
  if (fixed === (o.quantile !== undefined)) fail('hedge', "give exactly one of 'delayMs' or 'quantile'");
  const common = {
    maxHedges: num('hedge.maxHedges', o.maxHedges, 1, { min: 1, integer: true }),
    shouldHedge: func('hedge.shouldHedge', o.shouldHedge, isTransient),
    clock: clockOption('hedge.clock', o.clock, systemClock),
    name: str('hedge.name', o.name, 'hedge'),
  };
  if (fixed) {
    knownKeys('hedge', o, ['delayMs', ...COMMON]);
    return {
      delayMs: num('hedge.delayMs', o.delayMs, 0, { min: 0 }),
      quantile: Number.NaN,
      windowMs: 0,
      minSamples: 0,
      fallbackDelayMs: 0,
      maxSamples: 0,
      ...common,
    };
  }
  knownKeys('hedge', o, ['quantile', 'windowMs', 'minSamples', 'fallbackDelayMs', 'maxSamples', ...COMMON]);
  const quantile = num('hedge.quantile', o.quantile, 0.95, { min: 0, max: 1 });
  if (quantile === 0 || quantile === 1)
    fail('hedge.quantile', `must be between 0 and 1 exclusive, got ${quantile}`);
  if (o.fallbackDelayMs === undefined) fail('hedge.fallbackDelayMs', 'is required with quantile');
  const maxSamples = num('hedge.maxSamples', o.maxSamples, 1_000, { min: 1, max: 1_000_000, integer: true });
  const minSamples = num('hedge.minSamples', o.minSamples, Math.min(20, maxSamples), {
    min: 1,
    integer: true,
  });
  if (minSamples > maxSamples)
    fail('hedge.minSamples', `must be at most maxSamples (${maxSamples}), got ${minSamples}`);
  return {
    delayMs: Number.NaN,
    quantile,
    windowMs: num('hedge.windowMs', o.windowMs, 60_000, { min: 1 }),
    minSamples,
    fallbackDelayMs: num('hedge.fallbackDelayMs', o.fallbackDelayMs, 0, { min: 0 }),
    maxSamples,
    ...common,
  };
}
