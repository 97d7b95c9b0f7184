// The bulkhead: bounds the work running at once (not just the waiting) with a bounded FIFO queue.
import type { TimerHandle } from '../clock/clock.ts';
import { BulkheadRejectedError, rejectSoon, withoutStack } from '../errors.ts';
import { type Linked, List } from '../internal/list.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Lease, Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import { type BulkheadOptions, type NormalizedBulkheadOptions, normalizeBulkheadOptions } from './options.ts';

export interface BulkheadStats {
  maxConcurrent: number;
  /** Slots taken, including those held by work whose caller already gave up. */
  active: number;
  /** Free slots: `maxConcurrent - active`. */
  available: number;
  queued: number;
  /**
   * Slots held by work that a timeout inside the bulkhead abandoned (at its deadline or on the
   * caller's abort) and that has not settled yet. Each such work holds a slot of its own.
   */
  lingering: number;
  /** Calls refused since creation (queue full or queue timeout). */
  rejected: number;
}

/** A caller waiting for a slot: a node of the doubly linked queue, so leaving it is O(1). */
class Waiter implements Linked<Waiter> {
  prev: Waiter | undefined;
  next: Waiter | undefined;
  timer: TimerHandle | undefined;
  signal: AbortSignal | undefined;
  constructor(
    readonly bulkhead: BulkheadPolicy,
    readonly scope: Scope,
    readonly run: Next,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
  /** Abort while queued: leave the queue and reject with the caller's reason. */
  handleEvent(): void {
    this.bulkhead.leave(this);
    this.reject(this.signal!.reason);
  }
}

export class BulkheadPolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'bulkhead' {
    return 'bulkhead';
  }
  readonly #o: NormalizedBulkheadOptions;
  #active = 0;
  #lingering = 0;
  #rejected = 0;
  readonly #waiting = new List<Waiter>();
  /** Settles one admitted call; shared by all calls, so admission allocates nothing. */
  readonly #settle = () => this.release(false);
  /** Takes a slot for work an inner timeout abandoned, until that work settles. */
  readonly #hold = (work: Promise<unknown>) => this.#holdFor(work);
  readonly #releaseHeld = () => this.release(true);
  /** The lease of a scope that no other bulkhead leases: reused by every call. */
  readonly #lease: Lease = { outer: undefined, hold: this.#hold };

  constructor(options: BulkheadOptions) {
    const o = normalizeBulkheadOptions(options);
    super(o.name);
    this.#o = o;
  }

  stats(): BulkheadStats {
    return {
      maxConcurrent: this.#o.maxConcurrent,
      active: this.#active,
      available: Math.max(0, this.#o.maxConcurrent - this.#active),
      queued: this.#waiting.size,
      lingering: this.#lingering,
      rejected: this.#rejected,
    };
  }

  describe(): PolicyDescription {
    const o = this.#o;
    return {
      kind: 'bulkhead',
      name: this.name,
      options: { maxConcurrent: o.maxConcurrent, maxQueue: o.maxQueue, queueTimeoutMs: o.queueTimeoutMs },
    };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    if (this.#active < this.#o.maxConcurrent) {
      this.#active++;
      return this.#runAdmitted(scope, next);
    }
    if (this.#waiting.size >= this.#o.maxQueue) return this.#refuse(scope, 'queue-full');
    if (scope.aborted) return Promise.reject(scope.abortReason);
    return new Promise((resolve, reject) => {
      const waiter = new Waiter(this, scope, next, resolve, reject);
      this.#waiting.push(waiter);
      if (this.#o.queueTimeoutMs !== Number.POSITIVE_INFINITY) {
        waiter.timer = this.#o.clock.setTimeout(() => {
          this.leave(waiter);
          this.#refuse(scope, 'queue-timeout').catch(reject);
        }, this.#o.queueTimeoutMs);
      }
      if (scope.canAbort) {
        waiter.signal = scope.signal;
        waiter.signal.addEventListener('abort', waiter, { once: true });
      }
    });
  }

  /**
   * Runs an admitted call. The slot is given back when the work settles: the inner promise is
   * returned as is and observed with shared handlers, so the fast path allocates one reaction.
   */
  #runAdmitted(scope: Scope, next: Next): Promise<unknown> {
    this.#enter(scope);
    const work = next(scope);
    work.then(this.#settle, this.#settle);
    return work;
  }

  /**
   * Marks the scope as running under this bulkhead, so that a timeout inside can hand over work
   * it abandons. Scopes only flow inwards, so the mark never needs undoing.
   */
  #enter(scope: Scope): void {
    const lease = scope.lease;
    if (lease === undefined) {
      scope.lease = this.#lease;
      return;
    }
    for (let l: Lease | undefined = lease; l !== undefined; l = l.outer) if (l.hold === this.#hold) return;
    scope.lease = { outer: lease, hold: this.#hold };
  }

  /** Abandoned work keeps a slot of its own until it really settles: the bulkhead bounds real work. */
  #holdFor(work: Promise<unknown>): void {
    this.#active++;
    this.#lingering++;
    work.then(this.#releaseHeld, this.#releaseHeld);
  }

  /** Gives a slot back and admits the next waiter. @internal */
  release(wasLingering: boolean): void {
    if (wasLingering) this.#lingering--;
    this.#active--;
    if (this.#active >= this.#o.maxConcurrent) return;
    const waiter = this.#waiting.head;
    if (waiter === undefined) return;
    this.leave(waiter);
    this.#active++;
    this.#runAdmitted(waiter.scope, waiter.run).then(waiter.resolve, waiter.reject);
  }

  /** Removes a waiter from the queue and drops its timer and abort listener. @internal */
  leave(waiter: Waiter): void {
    if (!this.#waiting.remove(waiter)) return; // already gone
    if (waiter.timer !== undefined) this.#o.clock.clearTimeout(waiter.timer);
    waiter.signal?.removeEventListener('abort', waiter);
  }

  #refuse(scope: Scope, reason: 'queue-full' | 'queue-timeout'): Promise<never> {
    this.#rejected++;
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'bulkhead:rejected',
        policy: this.name,
        operation: scope.operation,
        reason,
        active: this.#active,
        queued: this.#waiting.size,
      });
    }
    return rejectSoon(withoutStack(() => new BulkheadRejectedError(this.name, reason)));
  }
}

/** A bulkhead. See {@link BulkheadOptions} for the defaults. */
export function bulkhead(options: BulkheadOptions | number): BulkheadPolicy {
  return new BulkheadPolicy(typeof options === 'number' ? { maxConcurrent: options } : options);
}
