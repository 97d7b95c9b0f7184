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
export type { RetryOptions } from './options.ts';
export { RetryPolicy, type RetryStats, retry } from './retry.ts';
