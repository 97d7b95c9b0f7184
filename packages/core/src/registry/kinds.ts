// The defaults each kind of dependency starts from (the seeds' tables), kept in one place.
// A dependency's own settings replace a section as a whole; `false` turns a section off.
import type { DependencyKind, PolicySettings } from './options.ts';

/**
 * Retry counts in the seeds are retries after the first call, so "http: 3 retries" is
 * `maxAttempts: 4` here (Bulwark's `maxAttempts` counts every call).
 */
export const KIND_DEFAULTS: Readonly<Record<DependencyKind, Readonly<PolicySettings>>> = {
  http: {
    timeoutMs: 15_000,
    retry: { maxAttempts: 4, backoff: 'exponential', baseMs: 200, maxMs: 2_000, jitter: 0.25 },
    // "5 failures in 30 s, open 60 s, 3 half-open probes"; all three probes must succeed to close.
    breaker: {
      window: { kind: 'time', ms: 30_000, failures: 5 },
      openMs: 60_000,
      halfOpen: { probes: 3, successes: 3 },
    },
  },
  database: {
    timeoutMs: 10_000,
    retry: { maxAttempts: 3, backoff: 'exponential', baseMs: 100, maxMs: 1_000, jitter: 0.2 },
    breaker: {
      window: { kind: 'time', ms: 15_000, failures: 3 },
      openMs: 30_000,
      halfOpen: { probes: 2, successes: 2 },
    },
    // Like the seeds' semaphore: a full bulkhead rejects at once rather than queueing.
    bulkhead: { maxConcurrent: 10, maxQueue: 0 },
  },
  cache: {
    // A cache is an optimisation: a slow one is worse than none, so no retries.
    timeoutMs: 1_500,
    bulkhead: { maxConcurrent: 100, maxQueue: 0 },
  },
  queue: {
    timeoutMs: 5_000,
    bulkhead: { maxConcurrent: 20, maxQueue: 0 },
  },
  filesystem: {
    timeoutMs: 5_000,
    retry: { maxAttempts: 5, backoff: 'exponential', baseMs: 50, maxMs: 500, jitter: 0.15 },
  },
  compute: {
    // The worker pool is the compute dependency's bulkhead; its task timeout follows this one.
    timeoutMs: 30_000,
  },
  generic: {
    timeoutMs: 10_000,
  },
};
