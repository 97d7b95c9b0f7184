// The one source of time for every policy: injected, so tests run on a virtual clock.

/** An opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: unique symbol } | object;

export interface Clock {
  /**
   * Milliseconds since the epoch, as a whole number that never goes backwards (so durations
   * stay right when the wall clock is stepped) and close enough to wall time for state to be
   * exported across processes.
   */
  now(): number;
  /** Runs `fn` once after `ms`; the returned handle cancels it. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Resolves after `ms`; rejects with the signal's reason as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Optional. Whether a pending timer keeps the process alive (`true` by default). A clock
   * without it makes policies clear idle timers instead of parking them.
   */
  keepAlive?(handle: TimerHandle, alive: boolean): void;
}

/** Shared by both clocks: a sleep built from the clock's own timers. */
export function sleepOn(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) {
    return new Promise((resolve) => {
      clock.setTimeout(resolve, ms);
    });
  }
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Node fires a timer of more than 2^31 − 1 ms (about 24.8 days) after 1 ms, with a warning.
 * Longer delays (a long `Retry-After`, an uncapped backoff) are split into chunks instead.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Epoch milliseconds from the monotonic clock: the process's start in wall time plus the
 * monotonic time since. An NTP step or a VM resume moves `Date.now()`, not this, so an open
 * breaker does not close early and a call is not judged slow because the wall clock jumped.
 */
const origin = performance.timeOrigin;
function monotonicNow(): number {
  return Math.floor(origin + performance.now());
}

/**
 * A timer longer than Node can arm at once: re-armed chunk by chunk against its absolute due
 * time, so a late chunk does not push the end back.
 */
class LongTimer {
  #handle: ReturnType<typeof setTimeout> | undefined;
  #alive = true;
  constructor(fn: () => void, ms: number) {
    // Against wall time: a stepped wall clock moves a timer of weeks by the step, which is
    // noise at that scale.
    const due = Date.now() + ms;
    const arm = () => {
      const left = due - Date.now();
      if (left > MAX_TIMER_MS) this.#handle = setTimeout(arm, MAX_TIMER_MS);
      else this.#handle = setTimeout(fn, Math.max(0, left));
      if (!this.#alive) this.#handle.unref();
    };
    arm();
  }
  keepAlive(alive: boolean): void {
    this.#alive = alive;
    if (alive) this.#handle?.ref();
    else this.#handle?.unref();
  }
  clear(): void {
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    this.#handle = undefined;
  }
}

class SystemClock implements Clock {
  now(): number {
    return monotonicNow();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return ms > MAX_TIMER_MS ? new LongTimer(fn, ms) : setTimeout(fn, ms);
  }
  clearTimeout(handle: TimerHandle): void {
    if (handle instanceof LongTimer) handle.clear();
    else clearTimeout(handle as ReturnType<typeof setTimeout>);
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
  keepAlive(handle: TimerHandle, alive: boolean): void {
    if (handle instanceof LongTimer) handle.keepAlive(alive);
    else if (alive) (handle as ReturnType<typeof setTimeout>).ref();
    else (handle as ReturnType<typeof setTimeout>).unref();
  }
}

/** The real clock: monotonic epoch milliseconds and Node's timers. The default of every policy. */
export const systemClock: Clock = new SystemClock();
