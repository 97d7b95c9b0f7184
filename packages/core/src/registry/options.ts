// What a dependency is made of, as plain data: the same shape comes from code and from the
// config file (which converts its `1.5s` durations to ms before it gets here).
import type { CircuitBreakerOptions } from '../breaker/options.ts';
import type { BulkheadOptions } from '../bulkhead/options.ts';
import type { Clock } from '../clock/clock.ts';
import type { HealthProbe } from '../health/options.ts';
import type { HttpOptions } from '../http/options.ts';
import type { SlidingWindowOptions, TokenBucketOptions } from '../ratelimit/options.ts';
import type { ThreadPoolOptions } from '../threadpool/options.ts';

/** What sort of thing a dependency is; each kind brings its own default policies. */
export type DependencyKind = 'http' | 'database' | 'cache' | 'queue' | 'filesystem' | 'compute' | 'generic';

export const DEPENDENCY_KINDS: readonly DependencyKind[] = [
  'http',
  'database',
  'cache',
  'queue',
  'filesystem',
  'compute',
  'generic',
];

/** Retry settings as data: the backoff is named, not built. */
export interface RetrySettings {
  /** Calls in all, the first included. */
  maxAttempts: number;
  /** @default 'exponential' */
  backoff?: 'exponential' | 'constant' | 'linear' | 'decorrelated';
  /** The first delay (constant: every delay). */
  baseMs: number;
  /** The largest delay. @default baseMs × 2^10 */
  maxMs?: number;
  /** ± this fraction of each delay, at random (exponential, linear, constant). @default 0 */
  jitter?: number;
  /** Stop retrying once this long has passed since the first attempt. @default Infinity */
  maxDurationMs?: number;
  /** The longest `Retry-After` a failure may ask for; beyond it retries end. @default 30_000 */
  retryAfterMaxMs?: number;
}

/** Circuit breaker settings: the data part of {@link CircuitBreakerOptions}. */
export type BreakerSettings = Pick<
  CircuitBreakerOptions,
  'window' | 'failureRate' | 'minimumCalls' | 'slowCall' | 'openMs' | 'openBackoff' | 'halfOpen'
>;

/** Bulkhead settings: the data part of {@link BulkheadOptions}. */
export type BulkheadSettings = Pick<BulkheadOptions, 'maxConcurrent' | 'maxQueue' | 'queueTimeoutMs'>;

/** Rate limit settings: one rule, and what to do over the limit. */
export interface RateLimitSettings {
  tokenBucket?: TokenBucketOptions;
  slidingWindow?: SlidingWindowOptions;
  /** @default 'reject' */
  mode?: 'reject' | 'wait';
  /** @default Infinity */
  maxWaitMs?: number;
}

/**
 * The policies of a dependency (or of one of its operations). Each section given here replaces
 * the kind's default for that section as a whole; `false` turns the section off.
 */
export interface PolicySettings {
  /** Limit on each attempt, in ms. */
  timeoutMs?: number | false;
  /** Limit on the whole call, retries and their delays included, in ms. @default off */
  totalTimeoutMs?: number | false;
  retry?: RetrySettings | false;
  breaker?: BreakerSettings | false;
  bulkhead?: BulkheadSettings | false;
  rateLimit?: RateLimitSettings | false;
}

export interface DependencyOptions extends PolicySettings {
  /** @default 'generic' */
  kind?: DependencyKind;
  /** A critical dependency that fails makes the service's health `fail`; others make it `warn`. @default false */
  critical?: boolean;
  /** Shown in the dashboard and in health output. */
  description?: string;
  /**
   * Settings for named operations. An operation gets its own pipeline; sections it does not
   * set are the dependency's, and stateful ones (breaker, bulkhead, rate limit) are then
   * shared with the dependency's other calls.
   */
  operations?: Record<string, PolicySettings>;
  /** HTTP client settings, for `registry.fetch` (kind `http`). */
  http?: HttpOptions;
  /** The worker pool of a `compute` dependency (thread-pool bulkhead), for `registry.run`. */
  pool?: ThreadPoolOptions;
  /** How the health of this dependency is checked. @default passive (breaker state and recent errors) */
  health?: HealthProbe;
}

/** A provider of a failover group: a dependency name, with a weight for `weighted` groups. */
export type GroupMember = string | { dependency: string; weight?: number };

export interface FailoverGroupOptions {
  /** `ordered` tries providers in the order given; `weighted` picks the first at random by weight. @default 'ordered' */
  strategy?: 'ordered' | 'weighted';
  providers: readonly GroupMember[];
  /**
   * What the group returns when every provider failed or was skipped: a value, or a function of
   * the last error. The outcome is marked degraded. @default none (the last error is thrown)
   */
  fallback?: { value: unknown } | ((error: unknown) => unknown);
}

export interface RegistryOptions {
  dependencies?: Record<string, DependencyOptions>;
  groups?: Record<string, FailoverGroupOptions>;
  /** @default systemClock */
  clock?: Clock;
  /** Random source for jitter and weighted choice (tests pass a seeded one). @default Math.random */
  random?: () => number;
}
