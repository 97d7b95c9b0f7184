// Adaptive concurrency options, their defaults, and their one-time normalisation.
import { isTransient } from '../classify.ts';
import { type Clock, systemClock } from '../clock/clock.ts';
import {
  clockOption,
  fail,
  func,
  isRecord,
  knownKeys,
  num,
  optionsObject,
  str,
} from '../internal/validate.ts';
import { type ConcurrencyLimit, gradient2 } from './limits.ts';
import type { NormalizedWindow } from './window.ts';

export interface AdaptiveConcurrencyOptions {
  /**
   * The algorithm that moves the limit: `gradient2()`, `aimd()` or your own `ConcurrencyLimit`.
   * An instance keeps state, so it belongs to one policy only.
   * @default gradient2()
   */
  limit?: ConcurrencyLimit;
  /**
   * Priority partitions and their guaranteed shares of the limit (each in [0, 1], summing to at
   * most 1), highest priority first by convention. A call's partition is its `priority`.
   * @default { default: 1 } (one partition, no shedding by priority)
   */
  partitions?: Readonly<Record<string, number>>;
  /**
   * The partition of a call without a `priority`, or with one that names no partition.
   * @default the last partition listed (the lowest priority, by convention)
   */
  defaultPartition?: string;
  /**
   * Which failures signal overload (a drop), shrinking the limit. Other failures count as plain
   * samples; a call its caller cancelled is not sampled at all.
   * @default transient failures (classify): timeouts, bulkhead and rate-limit rejections, 5xx, resets
   */
  isDrop?: (error: unknown) => boolean;
  /**
   * How samples reach the limit. By default they are gathered in windows of about two round trips
   * (`2 × the window's lowest RTT`, within `[minMs, maxMs]`, and at least `minSamples` calls unless
   * one dropped), and the limit moves once per window on the window's average RTT, highest inflight
   * and whether any call dropped. `false` feeds every call's sample to the limit as it settles.
   * @default { minMs: 0, maxMs: 1_000, minSamples: 10 }
   */
  window?: false | { minMs?: number; maxMs?: number; minSamples?: number };
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events, statistics and errors. @default 'adaptive' */
  name?: string;
}

/** @internal */
export interface NormalizedAdaptiveOptions {
  limit: ConcurrencyLimit;
  /** Partition names and shares, in the order given. */
  partitions: ReadonlyArray<readonly [string, number]>;
  defaultPartition: string;
  isDrop: (error: unknown) => boolean;
  /** Undefined when every sample goes to the limit at once. */
  window: NormalizedWindow | undefined;
  clock: Clock;
  name: string;
}

/** Limits already given to a policy: a shared instance would mix two policies' samples. */
const claimed = new WeakSet<ConcurrencyLimit>();

/** @internal */
export function normalizeAdaptiveOptions(
  options: AdaptiveConcurrencyOptions | undefined,
): NormalizedAdaptiveOptions {
  const o = optionsObject('adaptiveConcurrency', options);
  knownKeys('adaptiveConcurrency', o, [
    'limit',
    'partitions',
    'defaultPartition',
    'isDrop',
    'window',
    'clock',
    'name',
  ]);
  const partitions = normalizePartitions(o.partitions);
  let defaultPartition = partitions[partitions.length - 1]![0];
  if (o.defaultPartition !== undefined) {
    defaultPartition = str('adaptiveConcurrency.defaultPartition', o.defaultPartition, defaultPartition);
    if (!partitions.some(([name]) => name === defaultPartition)) {
      fail('adaptiveConcurrency.defaultPartition', `names no partition: '${defaultPartition}'`);
    }
  }
  const result: NormalizedAdaptiveOptions = {
    limit: normalizeLimit(o.limit),
    partitions,
    defaultPartition,
    isDrop: func('adaptiveConcurrency.isDrop', o.isDrop, isTransient),
    window: normalizeWindow(o.window),
    clock: clockOption('adaptiveConcurrency.clock', o.clock, systemClock),
    name: str('adaptiveConcurrency.name', o.name, 'adaptive'),
  };
  // Claimed last, so that options rejected for another field leave the limit usable.
  claimed.add(result.limit);
  return result;
}

function normalizeLimit(value: unknown): ConcurrencyLimit {
  if (value === undefined) return gradient2();
  const l = value as Partial<Record<keyof ConcurrencyLimit, unknown>> | null;
  if (
    !isRecord(l) ||
    typeof l.update !== 'function' ||
    typeof l.describe !== 'function' ||
    typeof l.limit !== 'number'
  ) {
    fail('adaptiveConcurrency.limit', 'expected a ConcurrencyLimit such as aimd() or gradient2()');
  }
  const limit = value as ConcurrencyLimit;
  // NaN or a limit below 1 would refuse every call, and no call would ever settle to move it.
  if (!(limit.limit >= 1)) fail('adaptiveConcurrency.limit', `limit must be at least 1, got ${limit.limit}`);
  if (claimed.has(limit))
    fail('adaptiveConcurrency.limit', 'is already used by another policy; create one per policy');
  return limit;
}

function normalizePartitions(value: unknown): Array<readonly [string, number]> {
  if (value === undefined) return [['default', 1]];
  if (!isRecord(value))
    fail('adaptiveConcurrency.partitions', 'expected an object of shares, as { critical: 0.5, batch: 0.5 }');
  const entries = Object.entries(value);
  if (entries.length === 0) fail('adaptiveConcurrency.partitions', 'expected at least one partition');
  let total = 0;
  const partitions = entries.map(([name, share]) => {
    const s = num(`adaptiveConcurrency.partitions.${name}`, share, 0, { min: 0, max: 1 });
    total += s;
    return [name, s] as const;
  });
  // A little slack for shares such as 0.1 + 0.2 + 0.7, which add up to just over 1 in floating point.
  if (total > 1 + 1e-9) fail('adaptiveConcurrency.partitions', `shares must sum to at most 1, got ${total}`);
  return partitions;
}

function normalizeWindow(value: unknown): NormalizedWindow | undefined {
  if (value === false) return undefined;
  const w = optionsObject('adaptiveConcurrency.window', value);
  knownKeys('adaptiveConcurrency.window', w, ['minMs', 'maxMs', 'minSamples']);
  const minMs = num('adaptiveConcurrency.window.minMs', w.minMs, 0, { min: 0 });
  return {
    minMs,
    maxMs: num('adaptiveConcurrency.window.maxMs', w.maxMs, Math.max(minMs, 1_000), { min: minMs }),
    minSamples: num('adaptiveConcurrency.window.minSamples', w.minSamples, 10, { min: 1, integer: true }),
  };
}
