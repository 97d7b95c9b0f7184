// The two rules as per-key state refreshed lazily from the clock (no refill timers), each with
// the FIFO of calls waiting on it.
import type { TimerHandle } from '../clock/clock.ts';
import { type Linked, List } from '../internal/list.ts';
import type { SlidingWindowRule, TokenBucketRule } from './options.ts';

/** A call waiting for permits: a node of a doubly linked queue, so leaving it is O(1). @internal */
export interface WaiterNode extends Linked<WaiterNode> {
  readonly permits: number;
  /** Scratch for projecting waits: when this waiter is expected to be admitted. */
  projected: number;
}

/** The limit of one key: the rule's state and its queue of waiters. @internal */
export abstract class LimitState {
  readonly waiters = new List<WaiterNode>();
  /** Permits the waiters ask for in all. */
  queuedPermits = 0;
  /** Armed only while someone waits, for the head waiter alone. */
  timer: TimerHandle | undefined;
  /** The timer's callback, made once per key that ever waits. */
  wake: (() => void) | undefined;

  /** Takes `permits` if free and returns 0; otherwise takes nothing and returns ms until they are (`Infinity`: never). */
  abstract take(now: number, permits: number): number;
  /** Ms until a call asking for `permits` now would be admitted behind every waiter (`Infinity`: never). */
  abstract project(now: number, permits: number): number;
  /** Whole permits free now. */
  abstract available(now: number): number;

  /** The first waiter, if anyone waits. */
  get head(): WaiterNode | undefined {
    return this.waiters.head;
  }

  enqueue(waiter: WaiterNode): void {
    this.waiters.push(waiter);
    this.queuedPermits += waiter.permits;
  }

  /** Removes a waiter; false if it was no longer queued. */
  remove(waiter: WaiterNode): boolean {
    if (!this.waiters.remove(waiter)) return false;
    this.queuedPermits -= waiter.permits;
    return true;
  }
}

/**
 * A token bucket measured in units of 1/perMs permit, so that refill is `tokens` units per ms
 * and every level and wait is a whole number: no drift, and `retryAfterMs` is exact.
 */
export class TokenBucketState extends LimitState {
  #level: number;
  #last: number;
  readonly #rule: TokenBucketRule;

  constructor(rule: TokenBucketRule, now: number) {
    super();
    this.#rule = rule;
    this.#level = rule.capacity;
    this.#last = now;
  }

  #refill(now: number): void {
    const elapsed = now - this.#last;
    if (elapsed <= 0) return;
    this.#last = now;
    const { capacity, tokens } = this.#rule;
    // Past `capacity` ms even one token per ms fills the bucket; checking first keeps the product exact.
    this.#level = elapsed >= capacity ? capacity : Math.min(capacity, this.#level + elapsed * tokens);
  }

  take(now: number, permits: number): number {
    this.#refill(now);
    const need = permits * this.#rule.perMs;
    if (need > this.#rule.capacity) return Number.POSITIVE_INFINITY;
    if (this.#level >= need) {
      this.#level -= need;
      return 0;
    }
    return Math.ceil((need - this.#level) / this.#rule.tokens);
  }

  project(now: number, permits: number): number {
    this.#refill(now);
    const { perMs, capacity, tokens } = this.#rule;
    if (permits * perMs > capacity) return Number.POSITIVE_INFINITY;
    // While anyone waits the bucket is below the head's need, so it never reaches its cap:
    // every unit that drips in goes to the waiters in order, and the wait is plain arithmetic.
    const need = (this.queuedPermits + permits) * perMs;
    return Math.max(0, Math.ceil((need - this.#level) / tokens));
  }

  available(now: number): number {
    this.#refill(now);
    return Math.floor(this.#level / this.#rule.perMs);
  }
}

/**
 * An exact sliding window: a ring of the times of the last `limit` permits granted. A call for
 * n permits is admitted iff the permit granted `limit - n + 1` grants ago (counting back from
 * the newest) is at least `windowMs` old, so no window of `windowMs` ever holds more than
 * `limit` permits. Memory is O(limit) per key, and grows only as permits are granted.
 */
export class SlidingLogState extends LimitState {
  readonly #rule: SlidingWindowRule;
  readonly #log: number[] = [];
  /** Index of the oldest entry once the ring is full. */
  #start = 0;

  constructor(rule: SlidingWindowRule) {
    super();
    this.#rule = rule;
  }

  /** The i-th oldest entry kept (0 ≤ i < count). */
  #at(i: number): number {
    const log = this.#log;
    const j = this.#start + i;
    return log[j < log.length ? j : j - log.length]!;
  }

  take(now: number, permits: number): number {
    const { limit, windowMs } = this.#rule;
    if (permits > limit) return Number.POSITIVE_INFINITY;
    const log = this.#log;
    const blocker = log.length - limit + permits - 1;
    if (blocker >= 0) {
      const freeAt = this.#at(blocker) + windowMs;
      if (freeAt > now) return freeAt - now;
    }
    for (let i = 0; i < permits; i++) {
      if (log.length < limit) log.push(now);
      else {
        log[this.#start] = now;
        this.#start = this.#start + 1 === limit ? 0 : this.#start + 1;
      }
    }
    return 0;
  }

  project(now: number, permits: number): number {
    const { limit, windowMs } = this.#rule;
    if (permits > limit) return Number.POSITIVE_INFINITY;
    const count = this.#log.length;
    // Walk the queue as if each waiter were admitted in turn: a batch goes at the time its last
    // permit is allowed, i.e. `windowMs` after the permit granted `limit` permits before it,
    // which is either in the log or granted to an earlier waiter (whose projection is set).
    let at = now;
    let granted = 0;
    let earlier = this.head;
    let earlierEnd = earlier === undefined ? 0 : earlier.permits;
    for (let w = this.head; ; w = w.next) {
      granted += w === undefined ? permits : w.permits;
      const back = granted - limit; // the permit that must have left the window; ≤ 0: in the log
      let stamp = Number.NEGATIVE_INFINITY;
      if (back <= 0) {
        if (count - 1 + back >= 0) stamp = this.#at(count - 1 + back);
      } else {
        while (earlierEnd < back) {
          earlier = earlier!.next;
          earlierEnd += earlier!.permits;
        }
        stamp = earlier!.projected;
      }
      if (stamp + windowMs > at) at = stamp + windowMs;
      if (w === undefined) return at - now;
      w.projected = at;
    }
  }

  available(now: number): number {
    const { limit, windowMs } = this.#rule;
    let inWindow = 0;
    for (let i = this.#log.length - 1; i >= 0 && this.#at(i) + windowMs > now; i--) inWindow++;
    return limit - inWindow;
  }
}
