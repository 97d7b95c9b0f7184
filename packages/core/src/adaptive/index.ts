// The public names of adaptive concurrency: the policy, its limit algorithms, options and stats.
export {
  AdaptiveConcurrencyPolicy,
  type AdaptiveConcurrencyStats,
  type AdaptivePartitionStats,
  adaptiveConcurrency,
} from './adaptive.ts';
export {
  AimdLimit,
  type AimdLimitOptions,
  aimd,
  type ConcurrencyLimit,
  Gradient2Limit,
  type Gradient2LimitOptions,
  gradient2,
} from './limits.ts';
export type { AdaptiveConcurrencyOptions } from './options.ts';
