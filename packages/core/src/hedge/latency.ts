// The adaptive hedge delay: a latency quantile over a ring of recent latencies, bounded in
// memory and computed lazily (at most once per tenth of the window, never per call).

/** @internal */
export class LatencyEstimator {
  readonly #quantile: number;
  readonly #windowMs: number;
  readonly #minSamples: number;
  readonly #fallbackDelayMs: number;
  readonly #refreshMs: number;
  readonly #latencies: Float64Array;
  readonly #times: Float64Array;
  #next = 0;
  #filled = 0;
  /** Latencies recorded since the quantile was last computed. */
  #fresh = 0;
  #delayMs: number;
  #computedAt = Number.NEGATIVE_INFINITY;
  #warm = false;

  constructor(
    quantile: number,
    windowMs: number,
    minSamples: number,
    fallbackDelayMs: number,
    maxSamples: number,
  ) {
    this.#quantile = quantile;
    this.#windowMs = windowMs;
    this.#minSamples = minSamples;
    this.#fallbackDelayMs = fallbackDelayMs;
    this.#refreshMs = windowMs / 10;
    this.#latencies = new Float64Array(maxSamples);
    this.#times = new Float64Array(maxSamples);
    this.#delayMs = fallbackDelayMs;
  }

  record(now: number, latencyMs: number): void {
    this.#latencies[this.#next] = latencyMs;
    this.#times[this.#next] = now;
    this.#next = (this.#next + 1) % this.#latencies.length;
    if (this.#filled < this.#latencies.length) this.#filled++;
    this.#fresh++;
  }

  /**
   * The hedge delay at `now`: the quantile of the latencies recorded in the last `windowMs`
   * (nearest rank: the ⌈q·n⌉-th smallest), or the fallback delay below `minSamples`. Cached
   * for a tenth of the window; while warming up it is recomputed as soon as latencies arrive.
   */
  delayMs(now: number): number {
    const due = now - this.#computedAt >= this.#refreshMs;
    if (due || (!this.#warm && this.#fresh !== 0)) this.#compute(now);
    return this.#delayMs;
  }

  #compute(now: number): void {
    this.#computedAt = now;
    this.#fresh = 0;
    const since = now - this.#windowMs;
    const recent = new Float64Array(this.#filled);
    let n = 0;
    for (let i = 0; i < this.#filled; i++) {
      if (this.#times[i]! > since) recent[n++] = this.#latencies[i]!;
    }
    this.#warm = n >= this.#minSamples;
    if (!this.#warm) {
      this.#delayMs = this.#fallbackDelayMs;
      return;
    }
    const sorted = recent.subarray(0, n).sort();
    // The epsilon keeps 0.7 · 10 (7.000…1 in floating point) at rank 7.
    this.#delayMs = sorted[Math.max(0, Math.ceil(this.#quantile * n - 1e-9) - 1)]!;
  }
}
