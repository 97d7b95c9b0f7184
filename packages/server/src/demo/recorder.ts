// The demo's one source of figures: it listens to the registry's and the engine's events and keeps
// each as a small, serialisable record stamped with the demo's time. The live view, the report and
// the event log are all computed from these records, so they cannot disagree.
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  type BulwarkEvent,
  type DependencyRegistry,
  IsolatedCircuitError,
  RateLimitedError,
} from '@bulwark/core';
import type { EngineEvent, RunStatus, WorkflowEngine } from '@bulwark/workflow';

/** How a call through a dependency ended, as the demo counts it. */
export type CallOutcome =
  | 'success'
  | 'short-circuited'
  | 'bulkhead-rejected'
  | 'rate-limited'
  | 'timed-out'
  | 'failed'
  | 'cancelled';

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

/** One thing that happened, `t` ms after the demo started. */
export type DemoEvent =
  | {
      t: number;
      type: 'call';
      dependency: string;
      operation: string;
      outcome: CallOutcome;
      /** How long the call took, retries included. */
      ms: number;
      /** The failover group the call was made for, if any. */
      group?: string;
    }
  | {
      t: number;
      type: 'attempt';
      dependency: string;
      /** 1 for the first call. */
      attempt: number;
      ok: boolean;
      /** False when a local policy (breaker, limiter, bulkhead) refused it: no request left the process. */
      sent: boolean;
      ms: number;
    }
  | { t: number; type: 'retry'; dependency: string; attempt: number; delayMs: number }
  | { t: number; type: 'breaker'; dependency: string; to: BreakerState; reason?: string }
  | {
      t: number;
      type: 'group';
      group: string;
      outcome: 'success' | 'fallback' | 'failed';
      provider?: string;
    }
  | { t: number; type: 'run'; run: string; workflow: string; status: RunStatus }
  | {
      t: number;
      type: 'step';
      run: string;
      step: string;
      status: 'completed' | 'failed';
      attempts: number;
      ms: number;
    };

/** A refusal by a policy of this process rather than a failure of the dependency. */
function rejection(error: unknown): CallOutcome | undefined {
  if (error instanceof BrokenCircuitError || error instanceof IsolatedCircuitError) return 'short-circuited';
  if (error instanceof BulkheadRejectedError) return 'bulkhead-rejected';
  if (error instanceof RateLimitedError) return 'rate-limited';
  return undefined;
}

/** The dependency a policy belongs to: the registry names them `<dependency>.<section>`. */
function owner(policy: string): string {
  const dot = policy.lastIndexOf('.');
  return dot < 0 ? policy : policy.slice(0, dot);
}

/** The record of an event of the registry, or undefined for those the demo does not count. */
function fromRegistryEvent(event: BulwarkEvent, t: number): DemoEvent | undefined {
  switch (event.type) {
    case 'dependency:call': {
      let outcome: CallOutcome;
      if (event.outcome === 'success') outcome = 'success';
      else if (event.outcome === 'cancelled') outcome = 'cancelled';
      else if (event.outcome === 'timeout') outcome = 'timed-out';
      else outcome = rejection(event.error) ?? 'failed';
      return {
        t,
        type: 'call',
        dependency: event.dependency,
        operation: event.operation ?? '',
        outcome,
        ms: event.durationMs,
        ...(event.group === undefined ? {} : { group: event.group }),
      };
    }
    case 'retry:attempt':
      return {
        t,
        type: 'attempt',
        dependency: owner(event.policy),
        attempt: event.attempt,
        ok: event.outcome === 'success',
        sent: event.outcome === 'success' || rejection(event.error) === undefined,
        ms: event.durationMs,
      };
    case 'retry:scheduled':
      return {
        t,
        type: 'retry',
        dependency: owner(event.policy),
        attempt: event.attempt,
        delayMs: event.delayMs,
      };
    case 'breaker:opened':
      return { t, type: 'breaker', dependency: owner(event.policy), to: 'open', reason: event.reason };
    case 'breaker:half-opened':
      return { t, type: 'breaker', dependency: owner(event.policy), to: 'half-open' };
    case 'breaker:closed':
      return { t, type: 'breaker', dependency: owner(event.policy), to: 'closed' };
    case 'breaker:isolated':
      return { t, type: 'breaker', dependency: owner(event.policy), to: 'isolated' };
    case 'group:served':
      return {
        t,
        type: 'group',
        group: event.group,
        outcome: event.provider !== undefined ? 'success' : event.degraded ? 'fallback' : 'failed',
        ...(event.provider === undefined ? {} : { provider: event.provider }),
      };
    default:
      return undefined;
  }
}

function fromEngineEvent(event: EngineEvent, t: number): DemoEvent {
  if (event.type === 'run:status') {
    return { t, type: 'run', run: event.runId, workflow: event.workflow, status: event.status };
  }
  return {
    t,
    type: 'step',
    run: event.runId,
    step: event.step,
    status: event.status,
    attempts: event.attempts,
    ms: event.durationMs,
  };
}

export interface RecorderOptions {
  registry: DependencyRegistry;
  /** The engine whose runs to record (none with no workflows). */
  engine?: WorkflowEngine;
  /** Milliseconds since the demo started. */
  elapsed: () => number;
}

/** Live gauges of one dependency, read from its policies' statistics. */
export interface Gauges {
  readonly state: BreakerState | undefined;
  readonly bulkhead: { readonly active: number; readonly queued: number; readonly max: number } | undefined;
}

export class Recorder {
  readonly events: DemoEvent[] = [];
  readonly #registry: DependencyRegistry;
  readonly #stop: (() => void)[] = [];

  constructor(options: RecorderOptions) {
    const { registry, engine, elapsed } = options;
    this.#registry = registry;
    this.#stop.push(
      registry.events.onAny((event) => {
        const record = fromRegistryEvent(event, Math.round(elapsed()));
        if (record !== undefined) this.events.push(record);
      }),
    );
    if (engine !== undefined) {
      this.#stop.push(engine.on((event) => this.events.push(fromEngineEvent(event, Math.round(elapsed())))));
    }
  }

  /** Breaker states and bulkhead occupancy now: gauges, which no event carries. */
  gauges(): Record<string, Gauges> {
    const out: Record<string, Gauges> = {};
    for (const [name, s] of Object.entries(this.#registry.allStats())) {
      out[name] = {
        state: s.state,
        bulkhead:
          s.bulkhead === undefined
            ? undefined
            : { active: s.bulkhead.active, queued: s.bulkhead.queued, max: s.bulkhead.maxConcurrent },
      };
    }
    return out;
  }

  /** Stops listening; the records stay. */
  dispose(): void {
    for (const stop of this.#stop.splice(0)) stop();
  }
}
