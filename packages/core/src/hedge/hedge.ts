// The hedge policy: when an attempt is slow (or fails fast), start another; the first success
// wins and the losers' signals are aborted, each attempt running in a scope of its own.

import { HedgeLostError, withoutStack } from '../errors.ts';
import { type Deadline, DeadlineQueue } from '../internal/deadlines.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import { LatencyEstimator } from './latency.ts';
import { type HedgeOptions, type NormalizedHedgeOptions, normalizeHedgeOptions } from './options.ts';

/** Counters since creation, and the delay in force. */
export interface HedgeStats {
  /** Calls made through the policy. */
  calls: number;
  /** Calls that started at least one hedge. */
  hedged: number;
  /** Hedges started, in all. */
  hedgesLaunched: number;
  /** Calls won by a hedge rather than by the primary attempt. */
  hedgeWins: number;
  /** The hedge delay a call starting now would use (the fixed one, or the current quantile). */
  delayMs: number;
}

export class HedgePolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'hedge' {
    return 'hedge';
  }
  /** @internal */ readonly o: NormalizedHedgeOptions;
  /** @internal */ readonly latencies: LatencyEstimator | undefined;
  /** @internal */ calls = 0;
  /** @internal */ hedged = 0;
  /** @internal */ launched = 0;
  /** @internal */ hedgeWins = 0;

  /** One clock timer for the hedge delays of all the calls in flight. @internal */
  readonly deadlines: DeadlineQueue;

  constructor(options: HedgeOptions) {
    const o = normalizeHedgeOptions(options);
    super(o.name);
    this.o = o;
    this.deadlines = new DeadlineQueue(o.clock);
    if (Number.isNaN(o.delayMs)) {
      this.latencies = new LatencyEstimator(
        o.quantile,
        o.windowMs,
        o.minSamples,
        o.fallbackDelayMs,
        o.maxSamples,
      );
    }
  }

  /** @internal */
  delayNow(): number {
    return this.latencies === undefined ? this.o.delayMs : this.latencies.delayMs(this.o.clock.now());
  }

  stats(): HedgeStats {
    return {
      calls: this.calls,
      hedged: this.hedged,
      hedgesLaunched: this.launched,
      hedgeWins: this.hedgeWins,
      delayMs: this.delayNow(),
    };
  }

  describe(): PolicyDescription {
    const o = this.o;
    const delay =
      this.latencies === undefined
        ? { delayMs: o.delayMs }
        : {
            quantile: o.quantile,
            windowMs: o.windowMs,
            minSamples: o.minSamples,
            fallbackDelayMs: o.fallbackDelayMs,
            maxSamples: o.maxSamples,
          };
    return { kind: 'hedge', name: this.name, options: { ...delay, maxHedges: o.maxHedges } };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    if (scope.aborted) return Promise.reject(scope.abortReason);
    return new Promise((resolve, reject) => {
      new HedgedCall(this, scope, next, resolve, reject);
    });
  }
}

/**
 * One call under a hedge: the attempts, the delay timer, and the caller's abort all race to
 * settle it, so one object holds the state rather than a closure per event.
 */
class HedgedCall implements Deadline {
  readonly policy: HedgePolicy;
  readonly parent: Scope;
  readonly run: Next;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
  readonly delayMs: number;
  /** Each attempt's scope, its work, whether it settled, and (adaptive delay only) its start. */
  readonly scopes: Scope[] = [];
  readonly work: Promise<unknown>[] = [];
  readonly done: boolean[] = [];
  readonly startedAt: number[] = [];
  running = 0;
  settled = false;
  /** A failure `shouldHedge` refused: no further hedge starts. */
  stopped = false;
  // Its place in the policy's deadline queue, while waiting for the hedge delay.
  due = 0;
  prev: Deadline | undefined;
  next: Deadline | undefined;
  queued = false;
  primaryError: unknown;
  parentSignal: AbortSignal | undefined;

  constructor(
    policy: HedgePolicy,
    parent: Scope,
    next: Next,
    resolve: (value: unknown) => void,
    reject: (reason: unknown) => void,
  ) {
    this.policy = policy;
    this.parent = parent;
    this.run = next;
    this.resolve = resolve;
    this.reject = reject;
    policy.calls++;
    this.delayMs = policy.delayNow();
    if (parent.canAbort) {
      this.parentSignal = parent.signal;
      this.parentSignal.addEventListener('abort', this, { once: true });
    }
    this.launch('delay');
  }

  launch(trigger: 'delay' | 'failure'): void {
    const policy = this.policy;
    const { clock, maxHedges } = policy.o;
    const i = this.scopes.length;
    const scope = this.parent.child();
    this.scopes.push(scope);
    this.done.push(false);
    if (policy.latencies !== undefined) this.startedAt.push(clock.now());
    this.running++;
    if (i > 0) {
      policy.launched++;
      if (i === 1) policy.hedged++;
      if (policy.events.demand !== 0) {
        policy.events.emit({
          type: 'hedge:launched',
          policy: policy.name,
          operation: this.parent.operation,
          attempt: i + 1,
          delayMs: this.delayMs,
          trigger,
        });
      }
    }
    if (i < maxHedges && !this.stopped) policy.deadlines.add(this, this.delayMs);
    const work = this.run(scope);
    this.work.push(work);
    work.then(
      (value) => this.onAttempt(i, true, value),
      (error) => this.onAttempt(i, false, error),
    );
  }

  /** The hedge delay ran out (the deadline queue has already let go of this call). */
  onDeadline(): void {
    if (!this.settled) this.launch('delay');
  }

  onAttempt(i: number, ok: boolean, value: unknown): void {
    this.done[i] = true;
    this.running--;
    if (this.settled) return; // a loser's late outcome is discarded
    if (ok) {
      this.win(i, value);
      return;
    }
    if (i === 0) this.primaryError = value;
    if (!this.stopped) {
      let hedgeable: boolean;
      try {
        hedgeable = this.policy.o.shouldHedge(value);
      } catch (thrown) {
        // As retry and the breaker do with their predicates: the predicate's error settles the call
        // (rather than escaping as an unhandled rejection and leaving the call pending forever).
        this.abandon(thrown);
        this.finish();
        this.reject(thrown);
        return;
      }
      if (!hedgeable) {
        this.stopped = true;
        this.clearTimer();
      } else if (this.scopes.length <= this.policy.o.maxHedges) {
        // A fast failure: waiting out the delay would only add latency to the next attempt.
        this.clearTimer();
        this.launch('failure');
        return;
      }
    }
    if (this.running === 0) {
      // Every attempt failed and no hedge is left: DESIGN fixes the primary's error.
      this.finish();
      this.reject(this.primaryError);
    }
  }

  win(i: number, value: unknown): void {
    const policy = this.policy;
    if (i > 0) policy.hedgeWins++;
    if (policy.latencies !== undefined) {
      const now = policy.o.clock.now();
      policy.latencies.record(now, now - this.startedAt[i]!);
      // A primary that lost is slower than this: its time so far keeps the slow tail in view.
      if (i > 0 && !this.done[0]) policy.latencies.record(now, now - this.startedAt[0]!);
    }
    if (this.running > 0) this.abandon(withoutStack(() => new HedgeLostError(policy.name, i + 1)));
    this.finish();
    this.resolve(value);
  }

  /** EventTarget calls this on the caller's abort (the object is its own listener: no closure). */
  handleEvent(): void {
    if (this.settled) return;
    const reason = this.parent.abortReason;
    this.abandon(reason);
    this.finish();
    this.reject(reason);
  }

  /** Aborts the attempts still running; any bulkhead outside keeps their slots until they settle. */
  abandon(reason: unknown): void {
    for (let j = 0; j < this.scopes.length; j++) {
      if (this.done[j]) continue;
      this.scopes[j]!.abort(reason);
      for (let lease = this.parent.lease; lease !== undefined; lease = lease.outer) lease.hold(this.work[j]!);
    }
  }

  clearTimer(): void {
    this.policy.deadlines.remove(this);
  }

  finish(): void {
    this.settled = true;
    this.clearTimer();
    this.parentSignal?.removeEventListener('abort', this);
    for (const scope of this.scopes) scope.dispose();
  }
}

/** A hedge policy. See {@link HedgeOptions} for the defaults. */
export function hedge(options: HedgeOptions): HedgePolicy {
  return new HedgePolicy(options);
}
