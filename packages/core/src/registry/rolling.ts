// Recent calls in bounded memory: a ring of time slots, each with call counts and a
// log-bucketed latency histogram. Slots roll lazily on the next record or read (no timers).

/** Each bucket is 10% wider than the one before, so a quantile is within ±5% of the truth. */
const GROWTH = 1.1;
const LOG_GROWTH = Math.log(GROWTH);
/** Latencies at or below this share the first bucket. */
const MIN_MS = 0.01;
/** Up to an hour; anything longer lands in the last bucket (and is reported as the window's max). */
const BUCKETS = Math.ceil(Math.log(3_600_000 / MIN_MS) / LOG_GROWTH) + 1;

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
}

/** The geometric middle of a bucket: the value with the smallest worst-case relative error. */
function middleOf(bucket: number): number {
  return bucket === 0 ? MIN_MS : MIN_MS * GROWTH ** (bucket - 0.5);
}

interface Slot {
  /** Which slot of time this is (`floor(now / slotMs)`); -1 when never used. */
  index: number;
  calls: number;
  failures: number;
  timed: number;
  minMs: number;
  maxMs: number;
  /** Allocated on the first timed call: most slots of an idle dependency never need one. */
  histogram: Uint32Array | undefined;
}

export interface RollingSnapshot {
  /** The span the figures cover, in ms. */
  readonly windowMs: number;
  readonly calls: number;
  readonly failures: number;
  /** failures / calls, or 0 without calls. */
  readonly failureRate: number;
  /** Latency quantiles in ms of the timed calls of the window; `null` when there were none. */
  readonly latencyMs: {
    readonly p50: number;
    readonly p95: number;
    readonly p99: number;
    readonly max: number;
  } | null;
}

/** Calls and latencies of the last `windowMs`, in `slots` slots (so the window moves in steps of windowMs / slots). */
export class RollingWindow {
  readonly windowMs: number;
  readonly #slotMs: number;
  readonly #slots: Slot[];

  constructor(windowMs = 60_000, slots = 6) {
    this.windowMs = windowMs;
    this.#slotMs = windowMs / slots;
    this.#slots = Array.from({ length: slots }, () => ({
      index: -1,
      calls: 0,
      failures: 0,
      timed: 0,
      minMs: Number.POSITIVE_INFINITY,
      maxMs: 0,
      histogram: undefined,
    }));
  }

  /** Records a call; `durationMs` undefined for calls that did not run (they count, untimed). */
  record(now: number, failed: boolean, durationMs?: number): void {
    const index = Math.floor(now / this.#slotMs);
    const slot = this.#slots[index % this.#slots.length]!;
    if (slot.index !== index) {
      slot.index = index;
      slot.calls = 0;
      slot.failures = 0;
      slot.timed = 0;
      slot.minMs = Number.POSITIVE_INFINITY;
      slot.maxMs = 0;
      slot.histogram?.fill(0);
    }
    slot.calls++;
    if (failed) slot.failures++;
    if (durationMs === undefined) return;
    slot.timed++;
    if (durationMs < slot.minMs) slot.minMs = durationMs;
    if (durationMs > slot.maxMs) slot.maxMs = durationMs;
    slot.histogram ??= new Uint32Array(BUCKETS);
    slot.histogram[bucketOf(durationMs)]!++;
  }

  /** Histogram buckets allocated: at most slots × buckets, however many calls. @internal */
  get footprint(): number {
    let n = 0;
    for (const s of this.#slots) n += s.histogram?.length ?? 0;
    return n;
  }

  snapshot(now: number): RollingSnapshot {
    const live = this.#live(now);
    let calls = 0;
    let failures = 0;
    let timed = 0;
    let minMs = Number.POSITIVE_INFINITY;
    let maxMs = 0;
    for (const s of live) {
      calls += s.calls;
      failures += s.failures;
      timed += s.timed;
      if (s.minMs < minMs) minMs = s.minMs;
      if (s.maxMs > maxMs) maxMs = s.maxMs;
    }
    const quantile = (q: number): number => {
      // Nearest rank: the smallest value with at least q of the samples at or below it.
      const rank = Math.max(1, Math.ceil(q * timed));
      let seen = 0;
      for (let b = 0; b < BUCKETS; b++) {
        for (const s of live) seen += s.histogram?.[b] ?? 0;
        if (seen >= rank) return Math.min(maxMs, Math.max(minMs, middleOf(b)));
      }
      return maxMs;
    };
    return {
      windowMs: this.windowMs,
      calls,
      failures,
      failureRate: calls === 0 ? 0 : failures / calls,
      latencyMs:
        timed === 0 ? null : { p50: quantile(0.5), p95: quantile(0.95), p99: quantile(0.99), max: maxMs },
    };
  }

  /** The slots whose time lies inside the window ending at `now`. */
  #live(now: number): Slot[] {
    const current = Math.floor(now / this.#slotMs);
    const oldest = current - this.#slots.length + 1;
    return this.#slots.filter((s) => s.index >= oldest && s.index <= current);
  }
}
