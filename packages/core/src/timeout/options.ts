// Timeout options and their one-time normalisation.
import { type Clock, systemClock } from '../clock/clock.ts';
import { clockOption, fail, knownKeys, num, optionsObject, str } from '../internal/validate.ts';

export interface TimeoutOptions {
  /** The budget: the call rejects with `TimeoutError` and its signal aborts after this long. */
  ms: number;
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events and statistics. @default 'timeout' */
  name?: string;
}

/** @internal */
export interface NormalizedTimeoutOptions {
  ms: number;
  clock: Clock;
  name: string;
}

/** @internal */
export function normalizeTimeoutOptions(options: TimeoutOptions): NormalizedTimeoutOptions {
  const o = optionsObject('timeout', options);
  knownKeys('timeout', o, ['ms', 'clock', 'name']);
  if (o.ms === undefined) fail('timeout.ms', 'is required');
  return {
    ms: num('timeout.ms', o.ms, 0, { min: 1 }),
    clock: clockOption('timeout.clock', o.clock, systemClock),
    name: str('timeout.name', o.name, 'timeout'),
  };
}
