// Sliding windows of call outcomes. They roll lazily from the clock on each record or read,
// so counts never survive idle time and no timer is needed.
import { fail } from '../internal/validate.ts';

export interface WindowCounts {
  calls: number;
  failures: number;
  slow: number;
}

/** Serialisable window contents for state export. */
export type WindowState =
  | { kind: 'consecutive'; failures: number; slow: number }
  | { kind: 'count'; outcomes: number[]; next: number; filled: number }
  | { kind: 'time'; start: number; calls: number[]; failures: number[]; slow: number[] };

/** @internal */
export interface OutcomeWindow {
  record(now: number, failure: boolean, slow: boolean): void;
  counts(now: number): WindowCounts;
  reset(): void;
  export(): WindowState;
  import(state: WindowState): void;
}

const FAILURE = 1;
const SLOW = 2;

/** Counts only the current run of failures (and of slow calls); a success ends the run. */
export class ConsecutiveWindow implements OutcomeWindow {
  #failures = 0;
  #slow = 0;
  record(_now: number, failure: boolean, slow: boolean): void {
    this.#failures = failure ? this.#failures + 1 : 0;
    this.#slow = slow ? this.#slow + 1 : 0;
  }
  counts(): WindowCounts {
    return { calls: Math.max(this.#failures, this.#slow), failures: this.#failures, slow: this.#slow };
  }
  reset(): void {
    this.#failures = 0;
    this.#slow = 0;
  }
  export(): WindowState {
    return { kind: 'consecutive', failures: this.#failures, slow: this.#slow };
  }
  import(state: WindowState): void {
    if (state.kind !== 'consecutive')
      fail('breaker.state.window', `expected a consecutive window, got ${state.kind}`);
    this.#failures = state.failures;
    this.#slow = state.slow;
  }
}

/** The last `size` calls, in a ring buffer of one byte per call. */
export class CountWindow implements OutcomeWindow {
  readonly #ring: Uint8Array;
  #next = 0;
  #filled = 0;
  #failures = 0;
  #slow = 0;
  constructor(size: number) {
    this.#ring = new Uint8Array(size);
  }
  record(_now: number, failure: boolean, slow: boolean): void {
    const ring = this.#ring;
    if (this.#filled === ring.length) {
      const old = ring[this.#next]!;
      if (old & FAILURE) this.#failures--;
      if (old & SLOW) this.#slow--;
    } else {
      this.#filled++;
    }
    ring[this.#next] = (failure ? FAILURE : 0) | (slow ? SLOW : 0);
    if (failure) this.#failures++;
    if (slow) this.#slow++;
    this.#next = (this.#next + 1) % ring.length;
  }
  counts(): WindowCounts {
    return { calls: this.#filled, failures: this.#failures, slow: this.#slow };
  }
  reset(): void {
    this.#ring.fill(0);
    this.#next = this.#filled = this.#failures = this.#slow = 0;
  }
  export(): WindowState {
    return { kind: 'count', outcomes: Array.from(this.#ring), next: this.#next, filled: this.#filled };
  }
  import(state: WindowState): void {
    if (state.kind !== 'count' || state.outcomes.length !== this.#ring.length) {
      fail('breaker.state.window', `expected a count window of ${this.#ring.length} calls`);
    }
    this.reset();
    this.#ring.set(state.outcomes);
    this.#next = state.next;
    this.#filled = state.filled;
    for (let i = 0; i < this.#filled; i++) {
      const v = this.#ring[i]!;
      if (v & FAILURE) this.#failures++;
      if (v & SLOW) this.#slow++;
    }
  }
}

/**
 * Calls of the last `ms`, in `buckets` buckets of `ms / buckets` each. Bucket i holds the
 * calls of the interval whose index (⌊now / width⌋) is ≡ i mod buckets; buckets older than
 * the window are cleared when time moves past them, on the next record or read.
 */
export class TimeWindow implements OutcomeWindow {
  readonly #width: number;
  readonly #calls: Uint32Array;
  readonly #failures: Uint32Array;
  readonly #slow: Uint32Array;
  /** Index of the newest interval the buckets hold. */
  #head = Number.NEGATIVE_INFINITY;
  #totals: WindowCounts = { calls: 0, failures: 0, slow: 0 };

  constructor(ms: number, buckets: number) {
    this.#width = ms / buckets;
    this.#calls = new Uint32Array(buckets);
    this.#failures = new Uint32Array(buckets);
    this.#slow = new Uint32Array(buckets);
  }

  #roll(now: number): number {
    const index = Math.floor(now / this.#width);
    const n = this.#calls.length;
    if (index <= this.#head) return this.#head % n;
    if (index - this.#head >= n) {
      this.reset();
    } else {
      for (let i = this.#head + 1; i <= index; i++) this.#clear(i % n);
    }
    this.#head = index;
    return index % n;
  }

  #clear(b: number): void {
    const t = this.#totals;
    t.calls -= this.#calls[b]!;
    t.failures -= this.#failures[b]!;
    t.slow -= this.#slow[b]!;
    this.#calls[b] = this.#failures[b] = this.#slow[b] = 0;
  }

  record(now: number, failure: boolean, slow: boolean): void {
    const b = this.#roll(now);
    const t = this.#totals;
    this.#calls[b]!++;
    t.calls++;
    if (failure) {
      this.#failures[b]!++;
      t.failures++;
    }
    if (slow) {
      this.#slow[b]!++;
      t.slow++;
    }
  }

  counts(now: number): WindowCounts {
    this.#roll(now);
    const t = this.#totals;
    return { calls: t.calls, failures: t.failures, slow: t.slow };
  }

  reset(): void {
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#slow.fill(0);
    this.#totals = { calls: 0, failures: 0, slow: 0 };
  }

  export(): WindowState {
    return {
      kind: 'time',
      start: this.#head,
      calls: Array.from(this.#calls),
      failures: Array.from(this.#failures),
      slow: Array.from(this.#slow),
    };
  }

  import(state: WindowState): void {
    if (state.kind !== 'time' || state.calls.length !== this.#calls.length) {
      fail('breaker.state.window', `expected a time window of ${this.#calls.length} buckets`);
    }
    this.reset();
    this.#head = state.start;
    this.#calls.set(state.calls);
    this.#failures.set(state.failures);
    this.#slow.set(state.slow);
    for (let i = 0; i < this.#calls.length; i++) {
      this.#totals.calls += this.#calls[i]!;
      this.#totals.failures += this.#failures[i]!;
      this.#totals.slow += this.#slow[i]!;
    }
  }
}
