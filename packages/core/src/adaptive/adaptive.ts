// The adaptive concurrency policy: admits calls up to a limit that moves with observed latency
// and drops, sheds low-priority partitions first, and rejects at once (it never queues, so no timers).
import { ConcurrencyLimitError, rejectSoon, withoutStack } from '../errors.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Lease, Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import {
  type AdaptiveConcurrencyOptions,
  type NormalizedAdaptiveOptions,
  normalizeAdaptiveOptions,
} from './options.ts';
import { type Partition, Partitions } from './partitions.ts';
import { SampleWindow } from './window.ts';

export interface AdaptivePartitionStats {
  /** The share of the limit given in the options. */
  share: number;
  /** Slots guaranteed at the current limit: floor(share × limit), at least 1 for a non-zero share. */
  limit: number;
  /** Calls of this partition in flight (lingering work included). */
  inflight: number;
  /** Calls of this partition refused since creation. */
  rejected: number;
}

export interface AdaptiveConcurrencyStats {
  /** The current limit. */
  limit: number;
  /** Calls in flight, lingering work included (can exceed the limit; see the partitions). */
  inflight: number;
  /** In-flight work that a timeout inside abandoned and that has not settled yet. */
  lingering: number;
  /** Calls refused since creation. */
  rejected: number;
  /** The smoothed latency of settled calls, in ms (0 before the first); the base of `retryAfterMs`. */
  smoothedRttMs: number;
  /** Per partition, by name. */
  partitions: Record<string, AdaptivePartitionStats>;
}

/** Weight of each sample in the smoothed RTT behind `retryAfterMs`. */
const RTT_SMOOTHING = 0.1;
/** `retryAfterMs` before any call has settled, when there is no latency to go by. */
const RETRY_AFTER_UNKNOWN_MS = 100;

export class AdaptiveConcurrencyPolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'adaptive-concurrency' {
    return 'adaptive-concurrency';
  }
  readonly #o: NormalizedAdaptiveOptions;
  readonly #partitions: Partitions;
  /** Each partition's lease for a scope that no bulkhead leases yet: reused by every call. */
  readonly #leases = new Map<Partition, Lease>();
  #limit: number;
  #inflight = 0;
  #lingering = 0;
  #rejected = 0;
  #rtt = 0;
  #sampled = false;
  readonly #window: SampleWindow | undefined;

  constructor(options?: AdaptiveConcurrencyOptions) {
    const o = normalizeAdaptiveOptions(options);
    super(o.name);
    this.#o = o;
    this.#limit = o.limit.limit;
    this.#window = o.window === undefined ? undefined : new SampleWindow(o.window, o.clock.now());
    this.#partitions = new Partitions(o.partitions, o.defaultPartition, this.#limit);
    for (const p of this.#partitions.list) {
      this.#leases.set(p, { outer: undefined, hold: (work) => this.#holdFor(p, work) });
    }
  }

  /** The current limit. */
  get limit(): number {
    return this.#limit;
  }

  stats(): AdaptiveConcurrencyStats {
    const partitions: Record<string, AdaptivePartitionStats> = {};
    for (const p of this.#partitions.list) {
      partitions[p.name] = {
        share: p.share,
        limit: p.guaranteed,
        inflight: p.inflight,
        rejected: p.rejected,
      };
    }
    return {
      limit: this.#limit,
      inflight: this.#inflight,
      lingering: this.#lingering,
      rejected: this.#rejected,
      smoothedRttMs: this.#rtt,
      partitions,
    };
  }

  describe(): PolicyDescription {
    const o = this.#o;
    return {
      kind: 'adaptive-concurrency',
      name: this.name,
      options: {
        limit: o.limit.describe(),
        partitions: Object.fromEntries(o.partitions),
        defaultPartition: o.defaultPartition,
        window: o.window === undefined ? false : { ...o.window },
      },
    };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    const partition = this.#partitions.of(scope.priority);
    if (!Partitions.admits(partition, this.#inflight, this.#limit)) return this.#refuse(scope, partition);
    const inflight = ++this.#inflight;
    partition.inflight++;
    this.#enter(scope, partition);
    const start = this.#o.clock.now();
    const work = next(scope);
    // The inner promise is returned as is; these two reactions carry the call's own sample data.
    work.then(
      () => this.#settle(scope, partition, start, inflight, false, undefined),
      (error: unknown) => this.#settle(scope, partition, start, inflight, true, error),
    );
    return work;
  }

  #settle(
    scope: Scope,
    partition: Partition,
    start: number,
    inflight: number,
    failed: boolean,
    error: unknown,
  ): void {
    this.#inflight--;
    partition.inflight--;
    // A call its caller cancelled was cut short: its duration says nothing about the dependency.
    if (scope.aborted) return;
    const rtt = this.#o.clock.now() - start;
    this.#rtt = this.#sampled ? this.#rtt + (rtt - this.#rtt) * RTT_SMOOTHING : rtt;
    this.#sampled = true;
    const dropped = failed && this.#isDrop(error);
    const window = this.#window;
    const previous = this.#limit;
    let limit: number;
    if (window === undefined) limit = this.#update(rtt, inflight, dropped);
    else if (window.add(this.#o.clock.now(), rtt, inflight, dropped)) {
      limit = this.#update(window.rtt, window.inflight, window.dropped);
    } else return;
    if (limit === previous) return;
    this.#limit = limit;
    this.#partitions.resize(limit);
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'adaptive:limit-changed',
        policy: this.name,
        operation: scope.operation,
        previousLimit: previous,
        limit,
      });
    }
  }

  /**
   * The limit's answer to a sample, or the current limit when a custom limit throws or answers
   * something unusable (NaN or below 1 would refuse every call from then on, for good).
   */
  #update(rtt: number, inflight: number, dropped: boolean): number {
    let limit: number;
    try {
      limit = this.#o.limit.update(rtt, inflight, dropped);
    } catch (thrown) {
      this.#warn(`limit.update threw: ${String(thrown)}`);
      return this.#limit;
    }
    if (typeof limit !== 'number' || !(limit >= 1)) {
      this.#warn(`limit.update returned ${String(limit)}, not a limit of at least 1`);
      return this.#limit;
    }
    return Math.floor(limit);
  }

  #warn(message: string): void {
    process.emitWarning(`Bulwark adaptiveConcurrency '${this.name}' ${message}`, 'BulwarkPredicateError');
  }

  #isDrop(error: unknown): boolean {
    try {
      return this.#o.isDrop(error);
    } catch (thrown) {
      // A faulty predicate must not turn into an unhandled rejection; the sample counts as no drop.
      process.emitWarning(
        `Bulwark adaptiveConcurrency '${this.name}' isDrop threw: ${String(thrown)}`,
        'BulwarkPredicateError',
      );
      return false;
    }
  }

  /**
   * Marks the scope as running under this policy, so that a timeout inside can hand over work it
   * abandons: that work keeps counting in flight, since it still loads the dependency.
   */
  #enter(scope: Scope, partition: Partition): void {
    const own = this.#leases.get(partition)!;
    const lease = scope.lease;
    if (lease === undefined) {
      scope.lease = own;
      return;
    }
    for (let l: Lease | undefined = lease; l !== undefined; l = l.outer) if (l.hold === own.hold) return;
    scope.lease = { outer: lease, hold: own.hold };
  }

  #holdFor(partition: Partition, work: Promise<unknown>): void {
    this.#inflight++;
    this.#lingering++;
    partition.inflight++;
    const release = () => {
      this.#inflight--;
      this.#lingering--;
      partition.inflight--;
    };
    work.then(release, release);
  }

  #refuse(scope: Scope, partition: Partition): Promise<never> {
    this.#rejected++;
    partition.rejected++;
    const retryAfterMs = !this.#sampled ? RETRY_AFTER_UNKNOWN_MS : Math.max(1, Math.ceil(this.#rtt));
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'adaptive:rejected',
        policy: this.name,
        operation: scope.operation,
        partition: partition.name,
        retryAfterMs,
        limit: this.#limit,
        inflight: this.#inflight,
      });
    }
    const limit = this.#limit;
    return rejectSoon(
      withoutStack(() => new ConcurrencyLimitError(this.name, partition.name, limit, retryAfterMs)),
    );
  }
}

/** An adaptive concurrency limit. See {@link AdaptiveConcurrencyOptions} for the defaults. */
export function adaptiveConcurrency(options?: AdaptiveConcurrencyOptions): AdaptiveConcurrencyPolicy {
  return new AdaptiveConcurrencyPolicy(options);
}
