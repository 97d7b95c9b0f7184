// Rate limiter options and their one-time normalisation.
import { type Clock, systemClock } from '../clock/clock.ts';
import {
  clockOption,
  describe,
  fail,
  func,
  isRecord,
  knownKeys,
  num,
  oneOf,
  optionsObject,
  str,
} from '../internal/validate.ts';
import type { ExecutionContext } from '../pipeline/context.ts';
import type { RateLimitStore } from './store.ts';

/** A token bucket: `tokens` permits refill every `perMs`, up to `burst` saved up. */
export interface TokenBucketOptions {
  /** Permits added every `perMs` (a whole number ≥ 1). */
  tokens: number;
  /** The refill period in ms (a whole number ≥ 1). */
  perMs: number;
  /** Permits the bucket holds when full, and so the largest burst after idle time. @default tokens */
  burst?: number;
}

/** A sliding window: at most `limit` permits in any window of `windowMs`. */
export interface SlidingWindowOptions {
  /** Permits allowed in any window of `windowMs` (a whole number ≥ 1). */
  limit: number;
  /** The window's length in ms (a whole number ≥ 1). */
  windowMs: number;
}

export interface RateLimiterOptions {
  /** Limit by a token bucket. Exactly one of `tokenBucket`, `slidingWindow` or `store` is required. */
  tokenBucket?: TokenBucketOptions;
  /** Limit by an exact sliding window. Exactly one of `tokenBucket`, `slidingWindow` or `store` is required. */
  slidingWindow?: SlidingWindowOptions;
  /**
   * Where the limit is kept, when not in this process's memory (a cluster-wide store); the store
   * applies its own rule, so `tokenBucket` and `slidingWindow` are not given with it. Supports
   * `mode: 'reject'` only.
   * @default undefined (the rule's state in this process's memory)
   */
  store?: RateLimitStore;
  /**
   * `'reject'` fails a call over the limit at once with `RateLimitedError` (its exact
   * `retryAfterMs`); `'wait'` queues it, first in first out, until permits are free.
   * @default 'reject'
   */
  mode?: 'reject' | 'wait';
  /**
   * In mode `'wait'`: a call whose wait (behind the calls already waiting) would exceed this is
   * rejected at once with `RateLimitedError`. Only with mode `'wait'`.
   * @default Infinity
   */
  maxWaitMs?: number;
  /**
   * The key of the limit a call counts against (a tenant, a host); each key has a limit of its
   * own. Calls without a key share one default limit.
   * @default (context) => context.key (the `key` given to `execute`)
   */
  key?: (context: ExecutionContext) => string | undefined;
  /** Permits a call takes (a whole number ≥ 0). @default () => 1 */
  cost?: (context: ExecutionContext) => number;
  /**
   * Keyed limits kept in memory; past this the least recently used key is dropped (and starts
   * afresh when it comes back). The default limit of calls without a key is never dropped.
   * @default 10_000
   */
  maxKeys?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events, statistics and errors. @default 'rate-limiter' */
  name?: string;
}

/** @internal */
export interface TokenBucketRule {
  readonly kind: 'token-bucket';
  readonly tokens: number;
  readonly perMs: number;
  readonly burst: number;
  /**
   * The bucket's capacity in units of 1/perMs permit: refill is then `tokens` units per ms, so
   * every level and wait is computed in whole numbers, exactly.
   */
  readonly capacity: number;
}

/** @internal */
export interface SlidingWindowRule {
  readonly kind: 'sliding-window';
  readonly limit: number;
  readonly windowMs: number;
}

/** @internal */
export interface NormalizedRateLimiterOptions {
  rule: TokenBucketRule | SlidingWindowRule | undefined;
  store: RateLimitStore | undefined;
  mode: 'reject' | 'wait';
  maxWaitMs: number;
  key: ((context: ExecutionContext) => string | undefined) | undefined;
  cost: ((context: ExecutionContext) => number) | undefined;
  maxKeys: number;
  clock: Clock;
  name: string;
}

const P = 'rateLimiter';

/** @internal */
export function normalizeRateLimiterOptions(options: RateLimiterOptions): NormalizedRateLimiterOptions {
  const o = optionsObject(P, options);
  knownKeys(P, o, [
    'tokenBucket',
    'slidingWindow',
    'store',
    'mode',
    'maxWaitMs',
    'key',
    'cost',
    'maxKeys',
    'clock',
    'name',
  ]);
  const given = ['tokenBucket', 'slidingWindow', 'store'].filter((k) => o[k] !== undefined);
  if (given.length === 0) fail(P, 'expected one of tokenBucket, slidingWindow or store');
  if (given.length > 1) {
    fail(`${P}.${given[1]}`, `cannot be combined with ${given[0]}; put two limiters in a pipeline instead`);
  }
  const mode = oneOf(`${P}.mode`, o.mode, ['reject', 'wait'], 'reject');
  if (mode !== 'wait' && o.maxWaitMs !== undefined) fail(`${P}.maxWaitMs`, "applies to mode 'wait' only");
  const store = storeOption(o.store);
  if (store !== undefined) {
    if (mode === 'wait') fail(`${P}.mode`, "a custom store supports mode 'reject' only");
    if (o.maxKeys !== undefined) fail(`${P}.maxKeys`, 'applies to the in-memory limit only, not to a store');
  }
  return {
    rule:
      o.tokenBucket !== undefined
        ? tokenBucketRule(o.tokenBucket)
        : o.slidingWindow !== undefined
          ? slidingWindowRule(o.slidingWindow)
          : undefined,
    store,
    mode,
    maxWaitMs: num(`${P}.maxWaitMs`, o.maxWaitMs, Number.POSITIVE_INFINITY, { min: 0, infinite: true }),
    key: func(`${P}.key`, o.key),
    cost: func(`${P}.cost`, o.cost),
    maxKeys: num(`${P}.maxKeys`, o.maxKeys, 10_000, { min: 1, integer: true }),
    clock: clockOption(`${P}.clock`, o.clock, systemClock),
    name: str(`${P}.name`, o.name, 'rate-limiter'),
  };
}

function tokenBucketRule(value: unknown): TokenBucketRule {
  const path = `${P}.tokenBucket`;
  const o = optionsObject(path, value);
  knownKeys(path, o, ['tokens', 'perMs', 'burst']);
  if (o.tokens === undefined) fail(`${path}.tokens`, 'is required');
  if (o.perMs === undefined) fail(`${path}.perMs`, 'is required');
  const tokens = num(`${path}.tokens`, o.tokens, 1, { min: 1, integer: true });
  const perMs = num(`${path}.perMs`, o.perMs, 1, { min: 1, integer: true });
  const burst = num(`${path}.burst`, o.burst, tokens, { min: 1, integer: true });
  // Levels grow to capacity × tokens before the cap applies: keep that within exact integers.
  if (burst * perMs * tokens > Number.MAX_SAFE_INTEGER) {
    fail(path, 'burst × perMs × tokens must stay below 2^53; use a smaller period or burst');
  }
  return { kind: 'token-bucket', tokens, perMs, burst, capacity: burst * perMs };
}

function slidingWindowRule(value: unknown): SlidingWindowRule {
  const path = `${P}.slidingWindow`;
  const o = optionsObject(path, value);
  knownKeys(path, o, ['limit', 'windowMs']);
  if (o.limit === undefined) fail(`${path}.limit`, 'is required');
  if (o.windowMs === undefined) fail(`${path}.windowMs`, 'is required');
  return {
    kind: 'sliding-window',
    limit: num(`${path}.limit`, o.limit, 1, { min: 1, integer: true }),
    windowMs: num(`${path}.windowMs`, o.windowMs, 1, { min: 1, integer: true }),
  };
}

function storeOption(value: unknown): RateLimitStore | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || typeof value.acquire !== 'function') {
    fail(`${P}.store`, `expected a RateLimitStore (with acquire), got ${describe(value)}`);
  }
  return value as unknown as RateLimitStore;
}
