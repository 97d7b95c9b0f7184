// What the dashboard shows of each dependency beyond the registry's own statistics, kept by one
// listener on the registry's events: its breaker's recent transitions with their reasons, the
// sparkline history, and isolations with an expiry (the one timer, armed only while isolated),
// whose end it announces so that the runs parked behind the circuit are woken.
import type { BulwarkEvent, BulwarkEventMap, Clock, DependencyRegistry, TimerHandle } from '@bulwark/core';
import { DependencyHistory, type HistorySeries, type HistoryWindow } from './history.ts';

/** Transitions kept per dependency, newest last. */
export const MAX_TRANSITIONS = 20;

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

export interface BreakerTransition {
  readonly from: BreakerState;
  readonly to: BreakerState;
  /** Epoch ms. */
  readonly at: number;
  /** Why, in words: `failure rate 60% reached the threshold; open for 30s`. */
  readonly reason: string;
  /** Why, as a stable code: the breaker's open reason, `timeout-elapsed`, `probes-succeeded`, `reset`, `isolated`, `isolation-expired`. */
  readonly code: string;
}

/** What `breakerView` adds to a dependency's breaker statistics. */
export interface BreakerTimes {
  readonly transitions: readonly BreakerTransition[];
  /** When the last transition happened (since this server started), or null. */
  readonly since: number | null;
  /** While open: when probes will be let through. */
  readonly halfOpenAt: number | null;
  /** While isolated with an expiry: when the breaker closes by itself. */
  readonly isolatedUntil: number | null;
}

interface Isolation {
  readonly until: number;
  readonly timer: TimerHandle;
}

interface DependencyState {
  readonly transitions: BreakerTransition[];
  /** The last known state of each of its breakers, by policy name. */
  readonly states: Map<string, BreakerState>;
  isolation: Isolation | undefined;
}

const BREAKER_EVENTS = [
  'breaker:opened',
  'breaker:half-opened',
  'breaker:closed',
  'breaker:isolated',
] as const;
type BreakerEvent = Extract<BulwarkEvent, { type: (typeof BREAKER_EVENTS)[number] }>;

const TO: Record<BreakerEvent['type'], BreakerState> = {
  'breaker:opened': 'open',
  'breaker:half-opened': 'half-open',
  'breaker:closed': 'closed',
  'breaker:isolated': 'isolated',
};

const OPEN_REASONS: Record<BulwarkEventMap['breaker:opened']['reason'], string> = {
  'failure-rate': 'the failure rate reached its threshold',
  'failure-count': 'the failures in the window reached their limit',
  'slow-call-rate': 'the slow-call rate reached its threshold',
  'consecutive-failures': 'too many failures in a row',
  'probe-failed': 'a probe call failed while half-open',
};

function percent(rate: number): string {
  return `${Math.round(rate * 100)}%`;
}

/** `90000` → `1m 30s`: how a person reads a wait. */
export function spoken(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1_000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? `${m}m` : `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  return m % 60 === 0 ? `${h}h` : `${h}h ${m % 60}m`;
}

export class DependencyMonitor {
  readonly #registry: DependencyRegistry;
  readonly #clock: Clock;
  readonly #deps = new Map<string, DependencyState>();
  readonly #history = new DependencyHistory();
  readonly #stop: (() => void)[];
  /** A reason and code for the next transition of one dependency, given by the operator action causing it. */
  #cause: { dependency: string; reason: string; code: string } | undefined;
  /** Calls at or above these ms count as slow, by dependency; built on first need, dropped on reload. */
  #slowMs: Map<string, number> | undefined;
  /** Told the name of a dependency whose isolation just expired (the breaker is closed again). */
  readonly #expiredListeners = new Set<(name: string) => void>();
  #closed = false;

  constructor(registry: DependencyRegistry, clock: Clock) {
    this.#registry = registry;
    this.#clock = clock;
    this.#stop = [
      ...BREAKER_EVENTS.map((type) =>
        registry.events.on(type, (event) => this.#transition(event as BreakerEvent)),
      ),
      registry.events.on('dependency:call', (event) => this.#call(event)),
      registry.events.on('registry:reloaded', (event) => {
        this.#slowMs = undefined;
        for (const name of event.removed) {
          this.#clearIsolation(name);
          this.#deps.delete(name);
          this.#history.forget(name);
        }
      }),
    ];
  }

  /** The breaker fields the API adds to a dependency (see BreakerTimes). */
  breakerTimes(name: string): BreakerTimes {
    const state = this.#deps.get(name);
    const breaker = this.#registry.breaker(name);
    // Read first: an open breaker whose time is up half-opens on this read (and is recorded).
    const stats = breaker?.stats();
    const transitions = state?.transitions ?? [];
    return {
      transitions: [...transitions],
      since: transitions.at(-1)?.at ?? null,
      halfOpenAt: stats?.state === 'open' ? this.#clock.now() + stats.retryAfterMs : null,
      isolatedUntil: stats?.state === 'isolated' ? (state?.isolation?.until ?? null) : null,
    };
  }

  /** The newest transition recorded for the dependency (the one an event just announced). */
  lastTransition(name: string): BreakerTransition | undefined {
    return this.#deps.get(name)?.transitions.at(-1);
  }

  history(window: HistoryWindow): {
    bucketMs: number;
    end: number;
    dependencies: Record<string, HistorySeries>;
  } {
    return this.#history.read(window, this.#registry.names, this.#clock.now());
  }

  /**
   * Holds the breaker open; with `forMs`, closes it again by itself then. Returns the expiry.
   * `actor` names who did it in the transition's reason.
   */
  isolate(name: string, forMs: number | undefined, actor: string): number | null {
    const breaker = this.#registry.breaker(name);
    if (breaker === undefined) throw new Error(`dependency ${name} has no circuit breaker`);
    this.#clearIsolation(name);
    const until = forMs === undefined ? null : this.#clock.now() + forMs;
    this.#because(
      name,
      until === null ? `isolated by ${actor} until reset` : `isolated by ${actor} for ${spoken(forMs!)}`,
      'isolated',
      () => breaker.isolate(),
    );
    if (until !== null && !this.#closed) {
      const timer = this.#clock.setTimeout(() => this.#expire(name, breaker), forMs!);
      // A server shutting down does not wait for an isolation to end.
      this.#clock.keepAlive?.(timer, false);
      this.#state(name).isolation = { until, timer };
    }
    return until;
  }

  /** Calls `listener` with the dependency's name when an isolation ends by its expiry; returns the disposer. */
  onIsolationExpired(listener: (name: string) => void): () => void {
    this.#expiredListeners.add(listener);
    return () => {
      this.#expiredListeners.delete(listener);
    };
  }

  reset(name: string, actor: string): void {
    const breaker = this.#registry.breaker(name);
    if (breaker === undefined) throw new Error(`dependency ${name} has no circuit breaker`);
    this.#because(name, `reset by ${actor}`, 'reset', () => breaker.reset());
  }

  close(): void {
    this.#closed = true;
    for (const stop of this.#stop) stop();
    for (const name of this.#deps.keys()) this.#clearIsolation(name);
  }

  #expire(name: string, breaker: NonNullable<ReturnType<DependencyRegistry['breaker']>>): void {
    const state = this.#deps.get(name);
    if (state !== undefined) state.isolation = undefined;
    // Reset only the breaker that was isolated, and only if still isolated (not reset meanwhile,
    // nor replaced by a reload).
    if (this.#registry.breaker(name) !== breaker || breaker.state !== 'isolated') return;
    this.#because(name, 'the isolation expired', 'isolation-expired', () => breaker.reset());
    for (const listener of this.#expiredListeners) listener(name);
  }

  #because(name: string, reason: string, code: string, act: () => void): void {
    this.#cause = { dependency: name, reason, code };
    try {
      act();
    } finally {
      this.#cause = undefined;
    }
  }

  #clearIsolation(name: string): void {
    const state = this.#deps.get(name);
    if (state?.isolation === undefined) return;
    this.#clock.clearTimeout(state.isolation.timer);
    state.isolation = undefined;
  }

  #state(name: string): DependencyState {
    let state = this.#deps.get(name);
    if (state === undefined) {
      state = { transitions: [], states: new Map(), isolation: undefined };
      this.#deps.set(name, state);
    }
    return state;
  }

  #transition(event: BreakerEvent): void {
    const name = this.dependencyOf(event.policy);
    if (name === undefined) return;
    const state = this.#state(name);
    const to = TO[event.type];
    // A breaker first heard of now: closed, as breakers start, except that only an open one half-opens.
    const from = state.states.get(event.policy) ?? (to === 'half-open' ? 'open' : 'closed');
    state.states.set(event.policy, to);
    const now = this.#clock.now();
    const cause = this.#cause?.dependency === name ? this.#cause : undefined;
    let reason: string;
    let code: string;
    if (cause !== undefined) {
      ({ reason, code } = cause);
    } else if (event.type === 'breaker:opened') {
      code = event.reason;
      reason = `${OPEN_REASONS[event.reason]} (failure rate ${percent(event.failureRate)}, slow calls ${percent(event.slowCallRate)}); open for ${spoken(event.openMs)}`;
    } else if (event.type === 'breaker:half-opened') {
      code = 'timeout-elapsed';
      reason = 'the open time elapsed; probe calls are let through';
    } else if (event.type === 'breaker:closed') {
      code = from === 'half-open' ? 'probes-succeeded' : 'reset';
      reason = from === 'half-open' ? 'the probe calls succeeded' : 'reset';
    } else {
      code = 'isolated';
      reason = 'isolated';
    }
    // A breaker that leaves isolation (a reset, a probe) ends any expiry with it.
    if (to !== 'isolated') this.#clearIsolation(name);
    state.transitions.push({ from, to, at: now, reason, code });
    if (state.transitions.length > MAX_TRANSITIONS) state.transitions.shift();
  }

  #call(event: BulwarkEventMap['dependency:call']): void {
    this.#slowMs ??= this.#slowThresholds();
    const slowMs = this.#slowMs.get(event.dependency) ?? Number.POSITIVE_INFINITY;
    this.#history.record(event.dependency, this.#clock.now(), {
      outcome: event.outcome,
      durationMs: event.durationMs,
      slow: event.durationMs >= slowMs,
    });
  }

  /**
   * When a call is slow, per dependency: its breaker's slow-call threshold if it has one, else
   * three quarters of its innermost timeout (where a timeout warns), else never. One pass over
   * the registry's description, redone after a reload.
   */
  #slowThresholds(): Map<string, number> {
    const thresholds = new Map<string, number>();
    for (const [name, description] of Object.entries(this.#registry.describe())) {
      const pipeline = description.pipelines['*'] as
        | { options?: { policies?: { kind: string; options?: Record<string, unknown> }[] } }
        | undefined;
      let threshold = Number.POSITIVE_INFINITY;
      for (const policy of pipeline?.options?.policies ?? []) {
        const options = policy.options ?? {};
        const slowCall = options.slowCall as { thresholdMs?: number } | false | undefined;
        if (policy.kind === 'circuit-breaker' && slowCall && typeof slowCall.thresholdMs === 'number') {
          threshold = slowCall.thresholdMs;
          break;
        }
        if (policy.kind === 'timeout' && typeof options.ms === 'number') threshold = options.ms * 0.75;
      }
      thresholds.set(name, threshold);
    }
    return thresholds;
  }

  /**
   * The dependency a policy belongs to: policies are named after it (`payments.breaker`), so the
   * longest dependency name that prefixes the policy's; undefined when none does.
   */
  dependencyOf(policy: string): string | undefined {
    let found: string | undefined;
    for (const name of this.#registry.names) {
      if ((policy === name || policy.startsWith(`${name}.`)) && name.length > (found?.length ?? -1))
        found = name;
    }
    return found;
  }
}
