export type { RateLimiterOptions, SlidingWindowOptions, TokenBucketOptions } from './options.ts';
export { RateLimiterPolicy, type RateLimiterStats, rateLimiter } from './ratelimit.ts';
export type { RateLimitDecision, RateLimitStore } from './store.ts';
