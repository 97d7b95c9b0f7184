// Where a breaker's state can be saved and loaded: a seam for sharing state across processes.
import type { WindowState } from './window.ts';

export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated';

/** A breaker's exported state: plain data, safe to serialise as JSON. */
export interface BreakerSnapshot {
  readonly version: 1;
  readonly state: CircuitState;
  /** When the circuit last opened (clock ms), or 0. */
  readonly openedAt: number;
  /** How long the current opening lasts. */
  readonly openForMs: number;
  /** Openings since the circuit last closed (drives the open-time backoff). */
  readonly openings: number;
  readonly window: WindowState;
}

/**
 * A place to keep breaker state. The breaker saves on every state transition and loads
 * when `hydrate()` is called; both may be asynchronous (a Redis store will be).
 */
export interface BreakerStateStore {
  load(name: string): BreakerSnapshot | undefined | Promise<BreakerSnapshot | undefined>;
  save(name: string, snapshot: BreakerSnapshot): void | Promise<void>;
}

/** A store in this process's memory: breakers of one name in one process share their state through it. */
export class MemoryBreakerStateStore implements BreakerStateStore {
  readonly #states = new Map<string, BreakerSnapshot>();
  load(name: string): BreakerSnapshot | undefined {
    return this.#states.get(name);
  }
  save(name: string, snapshot: BreakerSnapshot): void {
    this.#states.set(name, snapshot);
  }
}
