// @bulwark/core: resilience policies, pipelines, the clock and the event stream.
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
export { classify, type FailureKind, isTransient, parseRetryAfter, retryAfterOf } from './classify.ts';
export { type Clock, flushMicrotasks, systemClock, type TimerHandle, VirtualClock } from './clock/index.ts';
export {
  BrokenCircuitError,
  BulkheadRejectedError,
  BulwarkError,
  type ErrorCode,
  ErrorCodes,
  InvalidOptionsError,
  IsolatedCircuitError,
  RateLimitedError,
  RetriesExhaustedError,
  TimeoutError,
} from './errors.ts';
export {
  type BulwarkEvent,
  type BulwarkEventMap,
  type BulwarkEventType,
  type EventBase,
  EventStream,
} from './events/index.ts';
export { type FallbackOptions, FallbackPolicy, type FallbackStats, fallback } from './fallback/index.ts';
export type { ExecuteOptions, ExecutionContext, Operation } from './pipeline/context.ts';
export { type Outcome, Pipeline, pipeline } from './pipeline/pipeline.ts';
export type { Policy, PolicyDescription } from './pipeline/policy.ts';
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
  type RetryOptions,
  RetryPolicy,
  type RetryStats,
  retry,
} from './retry/index.ts';
export { type TimeoutOptions, TimeoutPolicy, type TimeoutStats, timeout } from './timeout/index.ts';
