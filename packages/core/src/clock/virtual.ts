// A clock that moves only when a test tells it to, so timing tests are exact and instant.
import { type Clock, sleepOn, type TimerHandle } from './clock.ts';

interface VirtualTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * Virtual time for tests. `advance(ms)` fires due timers in order, letting promise
 * continuations run between them, so code awaiting a timer sees the time it expects.
 */
export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  // Sorted by (at, seq); tests hold few timers, so a sorted array beats a heap for clarity.
  #timers: VirtualTimer[] = [];

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    // Like Node, a NaN or negative delay means "as soon as possible"; Infinity never falls due.
    const delay = Number.isNaN(ms) ? 0 : Math.max(0, ms);
    const timer: VirtualTimer = { at: this.#now + delay, seq: this.#seq++, fn };
    let i = this.#timers.length;
    while (i > 0 && this.#timers[i - 1]!.at > timer.at) i--;
    this.#timers.splice(i, 0, timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const i = this.#timers.indexOf(handle as VirtualTimer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Timers still scheduled: a test asserts 0 to prove nothing was left behind. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`VirtualClock.advance: expected a finite number of ms >= 0, got ${ms}`);
    }
    const target = this.#now + ms;
    await flushMicrotasks();
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      next.fn();
      await flushMicrotasks();
    }
    this.#now = target;
    await flushMicrotasks();
  }

  /**
   * Fires timers until none is left (bounded, so a policy that reschedules forever fails the
   * test). Timers of infinite delay never fall due; they stay pending.
   */
  async runAll(maxTimers = 10_000): Promise<void> {
    for (let fired = 0; ; fired++) {
      await flushMicrotasks();
      const next = this.#timers[0];
      if (next === undefined || next.at === Number.POSITIVE_INFINITY) return;
      if (fired >= maxTimers) throw new Error(`VirtualClock.runAll: still busy after ${maxTimers} timers`);
      await this.advance(next.at - this.#now);
    }
  }
}

/** Lets every queued promise continuation run (a macrotask turn drains the microtask queue). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
