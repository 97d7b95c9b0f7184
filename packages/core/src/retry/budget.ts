// A retry budget shared by many retry policies (Envoy/Finagle): retries may be at most a ratio
// of the recent calls plus a floor, so an outage seen by every caller cannot become a retry storm.
import { type Clock, systemClock } from '../clock/clock.ts';
import { clockOption, knownKeys, num, optionsObject } from '../internal/validate.ts';

export interface RetryBudgetOptions {
  /** Retries allowed per call seen in the window (0.2: one retry for every five calls). @default 0.2 */
  ratio?: number;
  /** Retries allowed per second whatever the traffic, so that rare calls can still retry. @default 10 */
  minPerSecond?: number;
  /** How far back calls and retries are counted. @default 10_000 */
  windowMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/** The budget's window as of now. */
export interface RetryBudgetStats {
  /** Calls (first attempts) deposited in the window. */
  calls: number;
  /** Retries granted in the window. */
  retries: number;
  /** Retries the window allows: ⌊ratio · calls + minPerSecond · windowMs / 1000⌋. */
  allowed: number;
  /** Retries refused since the budget was created. */
  refused: number;
}

/** Buckets per window: counts expire within a tenth of the window of their due time. */
const BUCKETS = 10;
/** Absorbs floating-point error in ratio · calls (0.29 · 100 is 28.999…, which must allow 29). */
const EPSILON = 1e-9;

/**
 * Counts calls and retries in a window of `BUCKETS` buckets of `windowMs / BUCKETS` each,
 * rolled lazily from the clock (no timer): bucket i holds the interval whose index
 * ⌊now / width⌋ is ≡ i mod BUCKETS; buckets the clock has moved past are cleared on the next
 * deposit, request or read, so counts never survive idle time.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #minPerSecond: number;
  readonly #floor: number;
  readonly #windowMs: number;
  readonly #width: number;
  readonly #clock: Clock;
  /** The budget's clock, so a retry on another clock can be refused. @internal */
  get clock(): Clock {
    return this.#clock;
  }
  readonly #calls = new Uint32Array(BUCKETS);
  readonly #retries = new Uint32Array(BUCKETS);
  /** Index of the newest interval the buckets hold (-Infinity while every bucket is empty). */
  #head = Number.NEGATIVE_INFINITY;
  #callTotal = 0;
  #retryTotal = 0;
  #refused = 0;

  constructor(options?: RetryBudgetOptions) {
    const o = optionsObject('retryBudget', options);
    knownKeys('retryBudget', o, ['ratio', 'minPerSecond', 'windowMs', 'clock']);
    this.#ratio = num('retryBudget.ratio', o.ratio, 0.2, { min: 0 });
    const minPerSecond = num('retryBudget.minPerSecond', o.minPerSecond, 10, { min: 0 });
    this.#minPerSecond = minPerSecond;
    this.#windowMs = num('retryBudget.windowMs', o.windowMs, 10_000, { min: BUCKETS });
    this.#floor = (minPerSecond * this.#windowMs) / 1000;
    this.#width = this.#windowMs / BUCKETS;
    this.#clock = clockOption('retryBudget.clock', o.clock, systemClock);
  }

  /** Rolls the window to `now` and returns the current bucket. */
  #roll(now: number): number {
    const index = Math.floor(now / this.#width);
    if (index <= this.#head) return this.#head % BUCKETS;
    if (index - this.#head >= BUCKETS) {
      this.#calls.fill(0);
      this.#retries.fill(0);
      this.#callTotal = this.#retryTotal = 0;
    } else {
      for (let i = this.#head + 1; i <= index; i++) {
        const b = i % BUCKETS;
        this.#callTotal -= this.#calls[b]!;
        this.#retryTotal -= this.#retries[b]!;
        this.#calls[b] = this.#retries[b] = 0;
      }
    }
    this.#head = index;
    return index % BUCKETS;
  }

  #allowed(): number {
    return Math.floor(this.#ratio * this.#callTotal + this.#floor + EPSILON);
  }

  /** Counts one call (a first attempt). Retry policies call it for every execution. @internal */
  deposit(): void {
    this.#calls[this.#roll(this.#clock.now())]!++;
    this.#callTotal++;
  }

  /**
   * Asks for one retry: granted (and counted) when the retries in the window are fewer than
   * {@link RetryBudgetStats.allowed}; refused otherwise.
   */
  tryRetry(): boolean {
    const b = this.#roll(this.#clock.now());
    if (this.#retryTotal >= this.#allowed()) {
      this.#refused++;
      return false;
    }
    this.#retries[b]!++;
    this.#retryTotal++;
    return true;
  }

  stats(): RetryBudgetStats {
    this.#roll(this.#clock.now());
    return {
      calls: this.#callTotal,
      retries: this.#retryTotal,
      allowed: this.#allowed(),
      refused: this.#refused,
    };
  }

  /** The normalised options, for `describe()`. */
  describe(): Readonly<Record<string, unknown>> {
    return {
      ratio: this.#ratio,
      minPerSecond: this.#minPerSecond,
      windowMs: this.#windowMs,
    };
  }
}

/** A retry budget to share between retry policies (`retry({ budget })`). See {@link RetryBudgetOptions}. */
export function retryBudget(options?: RetryBudgetOptions): RetryBudget {
  return new RetryBudget(options);
}
