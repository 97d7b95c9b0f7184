// The timeout policy: rejects at the deadline and aborts only its own attempt's signal.
import type { Clock, TimerHandle } from '../clock/clock.ts';
import { TimeoutError } from '../errors.ts';
import { type Deadline, DeadlineQueue } from '../internal/deadlines.ts';
import { PolicyBase } from '../pipeline/base.ts';
import type { Lease, Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import { type NormalizedTimeoutOptions, normalizeTimeoutOptions, type TimeoutOptions } from './options.ts';

export interface TimeoutStats {
  /** Calls that reached the deadline. */
  timedOut: number;
  /**
   * Calls still running after the timeout gave up on them, at their deadline or on the caller's
   * abort (their results will be discarded).
   */
  running: number;
}

export class TimeoutPolicy extends PolicyBase {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'timeout' {
    return 'timeout';
  }
  /** @internal */ readonly o: NormalizedTimeoutOptions;
  /** @internal */ timedOut = 0;
  /** @internal */ overdue = 0;
  /** @internal */ readonly deadlines: DeadlineQueue;

  constructor(options: TimeoutOptions) {
    const o = normalizeTimeoutOptions(options);
    super(o.name);
    this.o = o;
    this.deadlines = new DeadlineQueue(o.clock);
  }

  stats(): TimeoutStats {
    return { timedOut: this.timedOut, running: this.overdue };
  }

  describe(): PolicyDescription {
    return { kind: 'timeout', name: this.name, options: { ms: this.o.ms } };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    return new Promise((resolve, reject) => {
      new TimedCall(this, scope, next, resolve, reject);
    });
  }
}

/**
 * One call under a timeout. A class rather than closures: one allocation holds the state
 * that the deadline, the caller's abort and the inner result all race to settle.
 */
class TimedCall implements Deadline {
  readonly policy: TimeoutPolicy;
  readonly scope: Scope;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
  readonly startedAt: number;
  due = 0;
  prev: Deadline | undefined;
  next: Deadline | undefined;
  queued = false;
  warnings: TimerHandle[] | undefined;
  parentSignal: AbortSignal | undefined;
  settled = false;
  innerDone = false;
  inner: Promise<unknown> | undefined;
  /** Bulkheads around this timeout (captured now: bulkheads inside will add their own leases). */
  readonly leases: Lease | undefined;

  constructor(
    policy: TimeoutPolicy,
    parent: Scope,
    next: Next,
    resolve: (value: unknown) => void,
    reject: (reason: unknown) => void,
  ) {
    this.policy = policy;
    this.resolve = resolve;
    this.reject = reject;
    const { clock, ms } = policy.o;
    const scope = parent.child();
    this.scope = scope;
    this.leases = parent.lease;
    this.startedAt = policy.events.demand !== 0 ? clock.now() : 0;
    policy.deadlines.add(this, ms);
    if (policy.events.demand !== 0) this.warnings = this.scheduleWarnings(clock, ms);
    if (parent.canAbort) {
      // The caller gave up: settle now with its reason rather than when the work ends.
      const signal = parent.signal;
      if (signal.aborted) {
        this.onParentAbort();
        return;
      }
      this.parentSignal = signal;
      signal.addEventListener('abort', this, { once: true });
    }
    const inner = next(scope);
    this.inner = inner;
    inner.then(
      (value) => this.onInner(true, value),
      (error) => this.onInner(false, error),
    );
  }

  /** EventTarget calls this on the parent's abort (the object is its own listener: no closure). */
  handleEvent(): void {
    this.onParentAbort();
  }

  onParentAbort(): void {
    if (this.settled) return;
    const reason = this.parentSignal?.reason ?? this.scope.abortReason;
    this.scope.abort(reason);
    this.finish();
    this.abandon();
    this.reject(reason);
  }

  onDeadline(): void {
    if (this.settled) return;
    const { ms } = this.policy.o;
    const policy = this.policy;
    const error = new TimeoutError(ms);
    policy.timedOut++;
    this.scope.abort(error);
    this.finish();
    this.abandon();
    if (policy.events.demand !== 0) {
      policy.events.emit({
        type: 'timeout:fired',
        policy: policy.name,
        operation: this.scope.operation,
        timeoutMs: ms,
      });
    }
    this.reject(error);
  }

  /**
   * We settled before the work did (deadline or the caller's abort): the work goes on, so keep
   * it visible in stats and let any bulkhead outside hold its slot until it really settles.
   */
  abandon(): void {
    if (this.innerDone || this.inner === undefined) return;
    const policy = this.policy;
    policy.overdue++;
    const inner = this.inner;
    const done = () => {
      policy.overdue--;
    };
    inner.then(done, done);
    for (let lease = this.leases; lease !== undefined; lease = lease.outer) lease.hold(inner);
  }

  onInner(ok: boolean, value: unknown): void {
    this.innerDone = true;
    if (this.settled) return; // a late result after the deadline is discarded
    this.finish();
    if (ok) this.resolve(value);
    else this.reject(value);
  }

  finish(): void {
    this.settled = true;
    this.policy.deadlines.remove(this);
    const { clock } = this.policy.o;
    if (this.warnings !== undefined) for (const w of this.warnings) clock.clearTimeout(w);
    this.parentSignal?.removeEventListener('abort', this);
    this.scope.dispose();
  }

  scheduleWarnings(clock: Clock, ms: number): TimerHandle[] {
    const warn = (fraction: 0.75 | 0.9) => () => {
      if (this.settled) return;
      const policy = this.policy;
      if (policy.events.demand === 0) return;
      policy.events.emit({
        type: 'timeout:warning',
        policy: policy.name,
        operation: this.scope.operation,
        fraction,
        timeoutMs: ms,
        elapsedMs: clock.now() - this.startedAt,
      });
    };
    return [clock.setTimeout(warn(0.75), ms * 0.75), clock.setTimeout(warn(0.9), ms * 0.9)];
  }
}

/** A timeout. Outside a retry it bounds the whole call; inside, each attempt. */
export function timeout(options: TimeoutOptions | number): TimeoutPolicy {
  return new TimeoutPolicy(typeof options === 'number' ? { ms: options } : options);
}
