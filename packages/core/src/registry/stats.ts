// Call statistics of a dependency and of each of its operations: lifetime totals by outcome
// plus a rolling window of recent calls and latencies.
import { isLocalRejection, RetriesExhaustedError, TimeoutError } from '../errors.ts';
import { type RollingSnapshot, RollingWindow } from './rolling.ts';

/** How a call through the registry ended. */
export type CallOutcome = 'success' | 'failure' | 'timeout' | 'rejected' | 'cancelled';

export interface CallStats {
  /** Calls started, in flight included. */
  readonly calls: number;
  readonly inFlight: number;
  readonly successes: number;
  readonly failures: number;
  readonly timeouts: number;
  /** Refused locally without running: open circuit, full bulkhead or pool, rate limit. */
  readonly rejections: number;
  /** Given up by the caller (its signal aborted). */
  readonly cancellations: number;
  /**
   * The last minute: calls that reached the dependency and their latency. Local rejections and
   * cancellations are left out, so the failure rate says how the dependency behaves.
   */
  readonly recent: RollingSnapshot;
}

/** Operations tracked one by one per dependency; the rest are counted together under this name. */
export const OTHER_OPERATIONS = '(other)';
/** Bounds memory when operation names come from data (URLs, ids) rather than code. */
export const MAX_OPERATIONS = 100;

export function outcomeOf(error: unknown, signal: AbortSignal | undefined): CallOutcome {
  if (signal?.aborted && error === signal.reason) return 'cancelled';
  if (isLocalRejection(error)) return 'rejected';
  if (error instanceof TimeoutError) return 'timeout';
  if (error instanceof RetriesExhaustedError && error.cause instanceof TimeoutError) return 'timeout';
  return 'failure';
}

/** The counters behind one {@link CallStats}. @internal */
export class CallRecorder {
  calls = 0;
  inFlight = 0;
  successes = 0;
  failures = 0;
  timeouts = 0;
  rejections = 0;
  cancellations = 0;
  readonly recent = new RollingWindow();

  start(): void {
    this.calls++;
    this.inFlight++;
  }

  end(now: number, outcome: CallOutcome, durationMs: number): void {
    this.inFlight--;
    switch (outcome) {
      case 'success':
        this.successes++;
        this.recent.record(now, false, durationMs);
        return;
      case 'failure':
        this.failures++;
        this.recent.record(now, true, durationMs);
        return;
      case 'timeout':
        this.timeouts++;
        this.recent.record(now, true, durationMs);
        return;
      case 'rejected':
        this.rejections++;
        return;
      case 'cancelled':
        this.cancellations++;
        return;
    }
  }

  snapshot(now: number): CallStats {
    return {
      calls: this.calls,
      inFlight: this.inFlight,
      successes: this.successes,
      failures: this.failures,
      timeouts: this.timeouts,
      rejections: this.rejections,
      cancellations: this.cancellations,
      recent: this.recent.snapshot(now),
    };
  }
}
