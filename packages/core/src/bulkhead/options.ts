// Bulkhead options and their one-time normalisation.
import { type Clock, systemClock } from '../clock/clock.ts';
import { clockOption, fail, knownKeys, num, optionsObject, str } from '../internal/validate.ts';

export interface BulkheadOptions {
  /** Calls allowed to run at once. */
  maxConcurrent: number;
  /** Calls allowed to wait for a slot, first in first out; more are rejected. @default 0 */
  maxQueue?: number;
  /** A queued call that waits longer than this is rejected. @default Infinity */
  queueTimeoutMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events and statistics. @default 'bulkhead' */
  name?: string;
}

/** @internal */
export interface NormalizedBulkheadOptions {
  maxConcurrent: number;
  maxQueue: number;
  queueTimeoutMs: number;
  clock: Clock;
  name: string;
}

/** @internal */
export function normalizeBulkheadOptions(options: BulkheadOptions): NormalizedBulkheadOptions {
  const o = optionsObject('bulkhead', options);
  knownKeys('bulkhead', o, ['maxConcurrent', 'maxQueue', 'queueTimeoutMs', 'clock', 'name']);
  if (o.maxConcurrent === undefined) fail('bulkhead.maxConcurrent', 'is required');
  return {
    maxConcurrent: num('bulkhead.maxConcurrent', o.maxConcurrent, 1, { min: 1, integer: true }),
    maxQueue: num('bulkhead.maxQueue', o.maxQueue, 0, { min: 0, integer: true, infinite: true }),
    queueTimeoutMs: num('bulkhead.queueTimeoutMs', o.queueTimeoutMs, Number.POSITIVE_INFINITY, {
      min: 0,
      infinite: true,
    }),
    clock: clockOption('bulkhead.clock', o.clock, systemClock),
    name: str('bulkhead.name', o.name, 'bulkhead'),
  };
}
