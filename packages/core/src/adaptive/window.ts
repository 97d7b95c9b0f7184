// Sample windows: the limit moves once per window (about two round trips) on the window's
// aggregate, not once per call, because calls settling now were admitted under an older limit.

const IDLE_WINDOWS = 10;

/** @internal */
export interface NormalizedWindow {
  minMs: number;
  maxMs: number;
  minSamples: number;
}

/**
 * Aggregates samples until the window is due (rolled lazily on the sample that finds it due; no
 * timer): the average RTT, the highest inflight, and whether any call dropped, as Netflix's
 * WindowedLimit with its average sample window does.
 * @internal
 */
export class SampleWindow {
  #count = 0;
  #rttSum = 0;
  #minRtt = Number.POSITIVE_INFINITY;
  #maxInflight = 0;
  #dropped = false;
  #endsAt: number;
  #lastAt = 0;

  constructor(
    readonly o: NormalizedWindow,
    now: number,
  ) {
    this.#endsAt = now + o.minMs;
  }

  /**
   * Adds a sample; returns true when the window is complete, its aggregate readable through
   * `rtt`, `inflight` and `dropped` until the next `add`.
   */
  add(now: number, rttMs: number, inflight: number, dropped: boolean): boolean {
    // Samples from before an idle spell describe another load: they must not survive it
    // (ten of the longest windows without a sample counts as idle).
    if (this.#count > 0 && now - this.#lastAt > IDLE_WINDOWS * this.o.maxMs) this.#clear();
    this.#lastAt = now;
    this.#count++;
    this.#rttSum += rttMs;
    if (rttMs < this.#minRtt) this.#minRtt = rttMs;
    if (inflight > this.#maxInflight) this.#maxInflight = inflight;
    if (dropped) this.#dropped = true;
    if (now < this.#endsAt || (this.#count < this.o.minSamples && !dropped)) return false;
    this.rtt = this.#rttSum / this.#count;
    this.inflight = this.#maxInflight;
    this.dropped = this.#dropped;
    this.#endsAt = now + Math.min(this.o.maxMs, Math.max(this.o.minMs, 2 * this.#minRtt));
    this.#clear();
    return true;
  }

  #clear(): void {
    this.#count = 0;
    this.#rttSum = 0;
    this.#minRtt = Number.POSITIVE_INFINITY;
    this.#maxInflight = 0;
    this.#dropped = false;
  }

  rtt = 0;
  inflight = 0;
  dropped = false;
}
