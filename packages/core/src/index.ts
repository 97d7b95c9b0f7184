// @bulwark/core: resilience policies, pipelines, the dependency registry, health, the clock and events.
export {
  type AdaptiveConcurrencyOptions,
  AdaptiveConcurrencyPolicy,
  type AdaptiveConcurrencyStats,
  type AdaptivePartitionStats,
  AimdLimit,
  type AimdLimitOptions,
  adaptiveConcurrency,
  aimd,
  type ConcurrencyLimit,
  Gradient2Limit,
  type Gradient2LimitOptions,
  gradient2,
} from './adaptive/index.ts';
export {
  type BreakerSnapshot,
  type BreakerStateStore,
  type BreakerWindowOptions,
  type CircuitBreakerOptions,
  CircuitBreakerPolicy,
  type CircuitBreakerStats,
  type CircuitState,
  circuitBreaker,
  MemoryBreakerStateStore,
  type WindowState,
} from './breaker/index.ts';
export { type BulkheadOptions, BulkheadPolicy, type BulkheadStats, bulkhead } from './bulkhead/index.ts';
export {
  type CacheEntry,
  type CacheOptions,
  CachePolicy,
  type CacheStats,
  type CacheStore,
  cache,
  MemoryCacheStore,
} from './cache/index.ts';
export { type ChaosOptions, ChaosPolicy, type ChaosStats, chaos } from './chaos/index.ts';
export { classify, type FailureKind, isTransient, parseRetryAfter, retryAfterOf } from './classify.ts';
export { type Clock, flushMicrotasks, systemClock, type TimerHandle, VirtualClock } from './clock/index.ts';
export {
  BrokenCircuitError,
  BulkheadRejectedError,
  BulwarkError,
  ConcurrencyLimitError,
  type ErrorCode,
  ErrorCodes,
  GroupUnavailableError,
  HedgeLostError,
  HttpAuthError,
  HttpClientClosedError,
  HttpStatusError,
  InvalidOptionsError,
  IsolatedCircuitError,
  PoolClosedError,
  RateLimitedError,
  RetriesExhaustedError,
  TimeoutError,
  UnknownDependencyError,
} from './errors.ts';
export {
  type BulwarkEvent,
  type BulwarkEventMap,
  type BulwarkEventType,
  type EventBase,
  EventStream,
} from './events/index.ts';
export { type FallbackOptions, FallbackPolicy, type FallbackStats, fallback } from './fallback/index.ts';
export {
  activeCheck,
  dependencyCheck,
  type HealthCheck,
  type HealthCheckEntry,
  type HealthCheckResult,
  HealthMonitor,
  type HealthMonitorOptions,
  type HealthProbe,
  type HealthReport,
  type HealthSource,
  type HealthStatus,
  passiveCheck,
} from './health/index.ts';
export {
  type AdaptiveHedgeOptions,
  type FixedHedgeOptions,
  type HedgeOptions,
  HedgePolicy,
  type HedgeStats,
  hedge,
} from './hedge/index.ts';
export {
  currentRequestContext,
  type HttpAuth,
  HttpClient,
  type HttpClientDescription,
  type HttpClientStats,
  type HttpOptions,
  parseTraceparent,
  type RequestContext,
  type Traceparent,
  withRequestContext,
} from './http/index.ts';
export type { ExecuteOptions, ExecutionContext, Operation } from './pipeline/context.ts';
export { type Outcome, Pipeline, pipeline } from './pipeline/pipeline.ts';
export type { Policy, PolicyDescription } from './pipeline/policy.ts';
export {
  type RateLimitDecision,
  type RateLimiterOptions,
  RateLimiterPolicy,
  type RateLimiterStats,
  type RateLimitStore,
  rateLimiter,
  type SlidingWindowOptions,
  type TokenBucketOptions,
} from './ratelimit/index.ts';
export {
  type BreakerSettings,
  type BulkheadSettings,
  type CallOptions,
  type CallOutcome,
  type CallStats,
  currentCall,
  DEPENDENCY_KINDS,
  type DependencyContext,
  type DependencyKind,
  type DependencyOptions,
  DependencyRegistry,
  type DependencyStats,
  type FailoverGroupOptions,
  type GroupMember,
  type GroupStats,
  KIND_DEFAULTS,
  type PolicySettings,
  type RateLimitSettings,
  type RegistryOptions,
  type ReloadResult,
  type RetrySettings,
  type RollingSnapshot,
  retryFromSettings,
} from './registry/index.ts';
export {
  type Backoff,
  type ConstantBackoffOptions,
  constant,
  type DecorrelatedJitterOptions,
  decorrelatedJitter,
  type ExponentialBackoffOptions,
  exponential,
  type LinearBackoffOptions,
  linear,
  RetryBudget,
  type RetryBudgetOptions,
  type RetryBudgetStats,
  type RetryOptions,
  RetryPolicy,
  type RetryStats,
  retry,
  retryBudget,
} from './retry/index.ts';
export {
  ThreadPool,
  type ThreadPoolInit,
  type ThreadPoolOptions,
  type ThreadPoolRunOptions,
  type ThreadPoolStats,
  threadPool,
} from './threadpool/index.ts';
export { type TimeoutOptions, TimeoutPolicy, type TimeoutStats, timeout } from './timeout/index.ts';
