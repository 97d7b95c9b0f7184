// The limit algorithms of adaptive concurrency: small pure state machines fed one sample per
// settled call, after Netflix concurrency-limits' AIMDLimit and Gradient2Limit. No clock, no timers.
import { fail, func, knownKeys, num, optionsObject } from '../internal/validate.ts';

/**
 * An algorithm that moves a concurrency limit from observed samples. Each instance keeps the
 * state of one policy: give every `adaptiveConcurrency` a limit of its own.
 */
export interface ConcurrencyLimit {
  /** The algorithm's name, for `describe()` and statistics. */
  readonly kind: string;
  /** The current limit: a whole number within the algorithm's bounds. */
  readonly limit: number;
  /**
   * Feeds the sample of one settled call and returns the new limit.
   * @param rttMs how long the call took
   * @param inflight calls in flight when this one was admitted, itself included
   * @param dropped the call failed in a way that signals overload (a timeout, a rejection)
   */
  update(rttMs: number, inflight: number, dropped: boolean): number;
  /** The normalised options, for `describe()`. */
  describe(): Readonly<Record<string, unknown>>;
}

export interface AimdLimitOptions {
  /** The limit to start from. @default 20 */
  initial?: number;
  /** The limit never falls below this. @default 1 */
  min?: number;
  /** The limit never rises above this. @default 1_000 */
  max?: number;
  /** On a drop the limit is multiplied by this (in (0, 1)). @default 0.9 */
  backoffRatio?: number;
  /** A call slower than this counts as a drop even if it succeeded. @default Infinity */
  timeoutMs?: number;
}

/**
 * Additive increase, multiplicative decrease: +1 per sample while the limit is in use, times
 * `backoffRatio` on a drop. Simple and robust where drops (timeouts, 503s) are the only signal.
 */
export class AimdLimit implements ConcurrencyLimit {
  get kind(): 'aimd' {
    return 'aimd';
  }
  #limit: number;
  readonly #min: number;
  readonly #max: number;
  readonly #backoffRatio: number;
  readonly #timeoutMs: number;

  constructor(options?: AimdLimitOptions) {
    const o = optionsObject('aimd', options);
    knownKeys('aimd', o, ['initial', 'min', 'max', 'backoffRatio', 'timeoutMs']);
    this.#min = num('aimd.min', o.min, 1, { min: 1, integer: true });
    this.#max = num('aimd.max', o.max, 1_000, { min: this.#min, integer: true });
    this.#limit = bounded('aimd.initial', o.initial, 20, this.#min, this.#max);
    this.#backoffRatio = num('aimd.backoffRatio', o.backoffRatio, 0.9, { min: 0, max: 1 });
    if (this.#backoffRatio === 0 || this.#backoffRatio === 1) {
      fail('aimd.backoffRatio', `must be between 0 and 1 (exclusive), got ${this.#backoffRatio}`);
    }
    this.#timeoutMs = num('aimd.timeoutMs', o.timeoutMs, Number.POSITIVE_INFINITY, {
      min: 0,
      infinite: true,
    });
  }

  get limit(): number {
    return this.#limit;
  }

  update(rttMs: number, inflight: number, dropped: boolean): number {
    let limit = this.#limit;
    if (dropped || rttMs > this.#timeoutMs) limit = Math.floor(limit * this.#backoffRatio);
    // Grow only while the limit is being used: an idle service learns nothing about its capacity.
    else if (inflight * 2 >= limit) limit += 1;
    this.#limit = Math.min(this.#max, Math.max(this.#min, limit));
    return this.#limit;
  }

  describe(): Readonly<Record<string, unknown>> {
    return {
      kind: 'aimd',
      min: this.#min,
      max: this.#max,
      backoffRatio: this.#backoffRatio,
      timeoutMs: this.#timeoutMs,
    };
  }
}

export interface Gradient2LimitOptions {
  /** The limit to start from. @default 20 */
  initial?: number;
  /** The limit never falls below this. @default 1 */
  min?: number;
  /** The limit never rises above this. @default 1_000 */
  max?: number;
  /** Weight of each new estimate in the limit, in (0, 1]. @default 0.2 */
  smoothing?: number;
  /** How much slower than the long-term RTT a sample may be before the limit shrinks (≥ 1). @default 1.5 */
  rttTolerance?: number;
  /** Samples the long-term RTT averages over (an exponential average). @default 600 */
  longWindow?: number;
  /**
   * Headroom added to the estimate on every sample, so the limit probes upwards: a number or a
   * function of the current limit (`(limit) => Math.sqrt(limit)`).
   * @default 4
   */
  queueSize?: number | ((limit: number) => number);
}

/** Samples averaged plainly before the long RTT turns exponential, so one early outlier does not stick. */
const WARMUP_SAMPLES = 10;

/**
 * Gradient2: compares each sample's RTT with a long-term exponential average and shrinks the
 * limit when latency rises above `rttTolerance` times that average, growing it by `queueSize`
 * otherwise. The formulas are stated in docs/adaptive-concurrency.md.
 */
export class Gradient2Limit implements ConcurrencyLimit {
  get kind(): 'gradient2' {
    return 'gradient2';
  }
  /** The unrounded estimate: smoothing moves it by fractions that rounding would lose. */
  #estimate: number;
  #longRtt = 0;
  #samples = 0;
  readonly #min: number;
  readonly #max: number;
  readonly #smoothing: number;
  readonly #tolerance: number;
  readonly #longWindow: number;
  readonly #factor: number;
  readonly #queueSize: (limit: number) => number;
  readonly #queueSizeOption: number | 'function';

  constructor(options?: Gradient2LimitOptions) {
    const o = optionsObject('gradient2', options);
    knownKeys('gradient2', o, [
      'initial',
      'min',
      'max',
      'smoothing',
      'rttTolerance',
      'longWindow',
      'queueSize',
    ]);
    this.#min = num('gradient2.min', o.min, 1, { min: 1, integer: true });
    this.#max = num('gradient2.max', o.max, 1_000, { min: this.#min, integer: true });
    this.#estimate = bounded('gradient2.initial', o.initial, 20, this.#min, this.#max);
    this.#smoothing = num('gradient2.smoothing', o.smoothing, 0.2, { min: 0, max: 1 });
    if (this.#smoothing === 0) fail('gradient2.smoothing', 'must be above 0 (the limit would never move)');
    this.#tolerance = num('gradient2.rttTolerance', o.rttTolerance, 1.5, { min: 1 });
    this.#longWindow = num('gradient2.longWindow', o.longWindow, 600, { min: 1, integer: true });
    this.#factor = 2 / (this.#longWindow + 1);
    if (typeof o.queueSize === 'number' || o.queueSize === undefined) {
      const q = num('gradient2.queueSize', o.queueSize, 4, { min: 0 });
      this.#queueSize = () => q;
      this.#queueSizeOption = q;
    } else {
      this.#queueSize = func('gradient2.queueSize', o.queueSize, () => 4);
      this.#queueSizeOption = 'function';
    }
  }

  get limit(): number {
    return Math.floor(this.#estimate);
  }

  /** The long-term RTT, in ms (0 before the first sample). */
  get longRttMs(): number {
    return this.#longRtt;
  }

  update(rttMs: number, inflight: number, dropped: boolean): number {
    const estimate = this.#estimate;
    // A drop's RTT is cut short (a fast refusal) or capped (a timeout): it says nothing about
    // normal latency, so it stays out of the long-term average and counts as the worst gradient.
    let gradient = 0.5;
    if (!dropped) {
      const shortRtt = Math.max(rttMs, 1e-3);
      const longRtt = this.#addLong(shortRtt);
      // After a long overload the average stays high while calls are fast again: pull it down
      // sooner than the exponential average would, so the limit can recover.
      if (longRtt / shortRtt > 2) this.#longRtt = longRtt * 0.95;
      gradient = Math.max(0.5, Math.min(1, (this.#tolerance * longRtt) / shortRtt));
    }
    // Application-limited: with less than half the limit in use, latency says nothing about it.
    if (inflight < estimate / 2) return this.limit;
    const queueSize = this.#queueSize(Math.floor(estimate));
    const target = estimate * gradient + (Number.isFinite(queueSize) && queueSize > 0 ? queueSize : 0);
    const next = estimate * (1 - this.#smoothing) + target * this.#smoothing;
    this.#estimate = Math.min(this.#max, Math.max(this.#min, next));
    return this.limit;
  }

  #addLong(rtt: number): number {
    const n = ++this.#samples;
    if (n <= WARMUP_SAMPLES) this.#longRtt += (rtt - this.#longRtt) / n;
    else this.#longRtt += (rtt - this.#longRtt) * this.#factor;
    return this.#longRtt;
  }

  describe(): Readonly<Record<string, unknown>> {
    return {
      kind: 'gradient2',
      min: this.#min,
      max: this.#max,
      smoothing: this.#smoothing,
      rttTolerance: this.#tolerance,
      longWindow: this.#longWindow,
      queueSize: this.#queueSizeOption,
    };
  }
}

/** An AIMD limit. See {@link AimdLimitOptions} for the defaults. */
export function aimd(options?: AimdLimitOptions): AimdLimit {
  return new AimdLimit(options);
}

/** A Gradient2 limit. See {@link Gradient2LimitOptions} for the defaults. */
export function gradient2(options?: Gradient2LimitOptions): Gradient2Limit {
  return new Gradient2Limit(options);
}

function bounded(path: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return Math.min(max, Math.max(min, fallback));
  return num(path, value, fallback, { min, max, integer: true });
}
