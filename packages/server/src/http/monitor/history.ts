// The dashboard's sparklines: per dependency, calls, failures, slow calls, rejections and latency
// percentiles over the last 5, 15 and 60 minutes, in memory, in fixed rings of 60 buckets that
// advance lazily on the next record or read (no timer), so an idle gap reads as zeros.

/** The windows a client may ask for, and the width of each of their 60 buckets. */
export const HISTORY_WINDOWS = { '5m': 5_000, '15m': 15_000, '60m': 60_000 } as const;
export type HistoryWindow = keyof typeof HISTORY_WINDOWS;
/** Points per series, whatever the window. */
export const HISTORY_POINTS = 60;

/**
 * Latency bins: each 50% wider than the one before, from 1 ms up to about 4 minutes, the last
 * open-ended. 32 bins: a percentile is within about ±20% of the truth, for 128 bytes a bucket.
 */
const BIN_GROWTH = 1.5;
const BINS = 32;
const LOG_GROWTH = Math.log(BIN_GROWTH);

function binOf(ms: number): number {
  if (!(ms > 1)) return 0;
  return Math.min(BINS - 1, Math.ceil(Math.log(ms) / LOG_GROWTH));
}

/** The geometric middle of a bin: the value with the smallest worst-case relative error. */
function middleOf(bin: number): number {
  return bin === 0 ? 1 : BIN_GROWTH ** (bin - 0.5);
}

/** How one settled call through the registry counts. */
export interface HistorySample {
  outcome: 'success' | 'failure' | 'timeout' | 'rejected' | 'cancelled';
  durationMs: number;
  /** At or above the dependency's slow-call threshold. */
  slow: boolean;
}

export interface HistorySeries {
  calls: number[];
  failures: number[];
  slow: number[];
  rejected: number[];
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
}

const CALLS = 0;
const FAILURES = 1;
const SLOW = 2;
const REJECTED = 3;
const TIMED = 4;
const COUNTERS = 5;

/** One window of one dependency: 60 buckets of counters and, once a call was timed, histograms. */
class Ring {
  readonly #bucketMs: number;
  /** Which bucket of time each slot holds (`floor(at / bucketMs)`); -1 when never used. */
  readonly #index = new Float64Array(HISTORY_POINTS).fill(-1);
  readonly #counts = new Uint32Array(HISTORY_POINTS * COUNTERS);
  readonly #maxMs = new Float64Array(HISTORY_POINTS);
  /** Allocated on the first timed call: a dependency that is only ever rejected never needs it. */
  #bins: Uint32Array | undefined;

  constructor(bucketMs: number) {
    this.#bucketMs = bucketMs;
  }

  record(at: number, sample: HistorySample): void {
    const index = Math.floor(at / this.#bucketMs);
    const slot = index % HISTORY_POINTS;
    if (this.#index[slot] !== index) {
      // A slot last used a lap (or many) ago: its old counts are gone, not carried over.
      this.#index[slot] = index;
      this.#counts.fill(0, slot * COUNTERS, (slot + 1) * COUNTERS);
      this.#maxMs[slot] = 0;
      this.#bins?.fill(0, slot * BINS, (slot + 1) * BINS);
    }
    const c = slot * COUNTERS;
    this.#counts[c + CALLS]!++;
    if (sample.outcome === 'rejected') {
      this.#counts[c + REJECTED]!++;
      return;
    }
    if (sample.outcome === 'cancelled') return;
    if (sample.outcome !== 'success') this.#counts[c + FAILURES]!++;
    if (sample.slow) this.#counts[c + SLOW]!++;
    this.#counts[c + TIMED]!++;
    if (sample.durationMs > this.#maxMs[slot]!) this.#maxMs[slot] = sample.durationMs;
    this.#bins ??= new Uint32Array(HISTORY_POINTS * BINS);
    this.#bins[slot * BINS + binOf(sample.durationMs)]!++;
  }

  /** The 60 buckets ending with the one that holds `now`, oldest first. */
  read(now: number): { series: HistorySeries; end: number } {
    const last = Math.floor(now / this.#bucketMs);
    const series: HistorySeries = { calls: [], failures: [], slow: [], rejected: [], p50Ms: [], p99Ms: [] };
    for (let index = last - HISTORY_POINTS + 1; index <= last; index++) {
      const slot = ((index % HISTORY_POINTS) + HISTORY_POINTS) % HISTORY_POINTS;
      if (this.#index[slot] !== index) {
        series.calls.push(0);
        series.failures.push(0);
        series.slow.push(0);
        series.rejected.push(0);
        series.p50Ms.push(null);
        series.p99Ms.push(null);
        continue;
      }
      const c = slot * COUNTERS;
      series.calls.push(this.#counts[c + CALLS]!);
      series.failures.push(this.#counts[c + FAILURES]!);
      series.slow.push(this.#counts[c + SLOW]!);
      series.rejected.push(this.#counts[c + REJECTED]!);
      const timed = this.#counts[c + TIMED]!;
      series.p50Ms.push(this.#quantile(slot, timed, 0.5));
      series.p99Ms.push(this.#quantile(slot, timed, 0.99));
    }
    return { series, end: (last + 1) * this.#bucketMs };
  }

  #quantile(slot: number, timed: number, q: number): number | null {
    if (timed === 0 || this.#bins === undefined) return null;
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    const rank = Math.max(1, Math.ceil(q * timed));
    const max = this.#maxMs[slot]!;
    let seen = 0;
    for (let bin = 0; bin < BINS; bin++) {
      seen += this.#bins[slot * BINS + bin]!;
      if (seen >= rank) return round(Math.min(max, middleOf(bin)));
    }
    return round(max);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** The three windows of every dependency that has had a call. */
export class DependencyHistory {
  readonly #rings = new Map<string, Record<HistoryWindow, Ring>>();

  record(dependency: string, at: number, sample: HistorySample): void {
    let rings = this.#rings.get(dependency);
    if (rings === undefined) {
      rings = { '5m': new Ring(5_000), '15m': new Ring(15_000), '60m': new Ring(60_000) };
      this.#rings.set(dependency, rings);
    }
    rings['5m'].record(at, sample);
    rings['15m'].record(at, sample);
    rings['60m'].record(at, sample);
  }

  /** A dependency removed by a reload takes its history with it. */
  forget(dependency: string): void {
    this.#rings.delete(dependency);
  }

  /** Every one of `names`, each with 60 points per series (zeros for one never called). */
  read(
    window: HistoryWindow,
    names: readonly string[],
    now: number,
  ): { bucketMs: number; end: number; dependencies: Record<string, HistorySeries> } {
    const bucketMs = HISTORY_WINDOWS[window];
    const empty = new Ring(bucketMs);
    const dependencies: Record<string, HistorySeries> = {};
    let end = (Math.floor(now / bucketMs) + 1) * bucketMs;
    for (const name of names) {
      const read = (this.#rings.get(name)?.[window] ?? empty).read(now);
      dependencies[name] = read.series;
      end = read.end;
    }
    return { bucketMs, end, dependencies };
  }
}
