export { CircuitBreakerPolicy, type CircuitBreakerStats, circuitBreaker } from './breaker.ts';
export type { BreakerWindowOptions, CircuitBreakerOptions } from './options.ts';
export {
  type BreakerSnapshot,
  type BreakerStateStore,
  type CircuitState,
  MemoryBreakerStateStore,
} from './store.ts';
export type { WindowState } from './window.ts';
