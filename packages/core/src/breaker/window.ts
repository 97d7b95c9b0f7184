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
  /**
   * The counts at `now`, in an object the window reuses (the breaker judges every call, so
   * this allocates nothing): read it at once, before the window changes again.
   */
  counts(now: number): Readonly<WindowCounts>;
  reset(): void;
  export(): WindowState;
  import(state: WindowState): void;
}

const FAILURE = 1;
const SLOW = 2;

/** Counts only the current run of failures (and of slow calls); a success ends the run. */
export class ConsecutiveWindow implements OutcomeWindow, WindowCounts {
  // The window is its own counts view: one small object per breaker.
  calls = 0;
  failures = 0;
  slow = 0;
  record(_now: number, failure: boolean, slow: boolean): void {
    this.failures = failure ? this.failures + 1 : 0;
    this.slow = slow ? this.slow + 1 : 0;
    this.calls = Math.max(this.failures, this.slow);
  }
  counts(): Readonly<WindowCounts> {
    return this;
  }
  reset(): void {
    this.calls = this.failures = this.slow = 0;
  }
  export(): WindowState {
    return { kind: 'consecutive', failures: this.failures, slow: this.slow };
  }
  import(state: WindowState): void {
    if (state.kind !== 'consecutive')
      fail('breaker.state.window', `expected a consecutive window, got ${String(state.kind)}`);
    this.failures = count('breaker.state.window.failures', state.failures);
    this.slow = count('breaker.state.window.slow', state.slow);
    this.calls = Math.max(this.failures, this.slow);
  }
}

/** The last `size` calls, in a ring buffer of one byte per call. */
export class CountWindow implements OutcomeWindow {
  readonly #ring: Uint8Array;
  #next = 0;
  #filled = 0;
  #failures = 0;
  #slow = 0;
  readonly #view: WindowCounts = { calls: 0, failures: 0, slow: 0 };
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
  counts(): Readonly<WindowCounts> {
    const v = this.#view;
    v.calls = this.#filled;
    v.failures = this.#failures;
    v.slow = this.#slow;
    return v;
  }
  reset(): void {
    this.#ring.fill(0);
    this.#next = this.#filled = this.#failures = this.#slow = 0;
  }
  export(): WindowState {
    return { kind: 'count', outcomes: Array.from(this.#ring), next: this.#next, filled: this.#filled };
  }
  import(state: WindowState): void {
    const size = this.#ring.length;
    if (state.kind !== 'count' || !Array.isArray(state.outcomes) || state.outcomes.length !== size) {
      fail('breaker.state.window', `expected a count window of ${size} calls`);
    }
    const next = count('breaker.state.window.next', state.next, size - 1);
    const filled = count('breaker.state.window.filled', state.filled, size);
    if (filled < size && next !== filled) {
      fail('breaker.state.window.next', `expected ${filled} (the ring is not full), got ${next}`);
    }
    this.reset();
    for (let i = 0; i < size; i++) this.#ring[i] = state.outcomes[i]! & (FAILURE | SLOW);
    this.#next = next;
    this.#filled = filled;
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
  /** Index of the newest interval the buckets hold (-Infinity while every bucket is empty). */
  #head = Number.NEGATIVE_INFINITY;
  readonly #totals: WindowCounts = { calls: 0, failures: 0, slow: 0 };

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

  counts(now: number): Readonly<WindowCounts> {
    this.#roll(now);
    return this.#totals;
  }

  reset(): void {
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#slow.fill(0);
    const t = this.#totals;
    t.calls = t.failures = t.slow = 0;
  }

  export(): WindowState {
    return {
      kind: 'time',
      // -Infinity is not JSON (it would come back as null); with every bucket empty any start will do.
      start: Number.isFinite(this.#head) ? this.#head : 0,
      calls: Array.from(this.#calls),
      failures: Array.from(this.#failures),
      slow: Array.from(this.#slow),
    };
  }

  import(state: WindowState): void {
    const n = this.#calls.length;
    const sized = (a: unknown) => Array.isArray(a) && a.length === n;
    if (state.kind !== 'time' || !sized(state.calls) || !sized(state.failures) || !sized(state.slow)) {
      fail('breaker.state.window', `expected a time window of ${n} buckets`);
    }
    const empty = state.calls.every((c) => c === 0);
    // An empty window has no interval to keep, so its start may be anything (even null, which is
    // what JSON makes of the -Infinity that earlier versions exported).
    if (!empty && !Number.isFinite(state.start)) {
      fail('breaker.state.window.start', `expected a finite number, got ${String(state.start)}`);
    }
    this.reset();
    this.#calls.set(state.calls);
    this.#failures.set(state.failures);
    this.#slow.set(state.slow);
    const t = this.#totals;
    for (let i = 0; i < n; i++) {
      t.calls += this.#calls[i]!;
      t.failures += this.#failures[i]!;
      t.slow += this.#slow[i]!;
    }
    // With every bucket empty, the first record after the import sets the head.
    this.#head = empty ? Number.NEGATIVE_INFINITY : state.start;
  }
}

/** A whole number of calls in [0, max], from a snapshot that may have come from anywhere. */
function count(path: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    fail(path, `expected a whole number from 0 to ${max}, got ${String(value)}`);
  }
  return value;
}
