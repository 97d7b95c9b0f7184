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
} from './backoff.ts';
export { RetryBudget, type RetryBudgetOptions, type RetryBudgetStats, retryBudget } from './budget.ts';
export type { RetryOptions } from './options.ts';
export { RetryPolicy, type RetryStats, retry } from './retry.ts';
