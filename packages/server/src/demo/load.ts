// The demo's load: calls to each dependency (or group) and workflow runs, started at a steady rate
// with a bound on how many are in flight at once. It keeps no figures of its own beyond what it
// skipped: the recorder counts what happened from the registry's and the engine's events.
import { type Clock, type DependencyRegistry, systemClock, type TimerHandle } from '@bulwark/core';
import { FINAL_STATUSES, type WorkflowEngine } from '@bulwark/workflow';
import { DEMO_GROUP, DEMO_WORKFLOW } from './config.ts';

/** One stream of calls: `registry.fetch(target, path)` at `perSecond`. */
export interface CallStream {
  /** A dependency or a failover group. */
  readonly target: string;
  readonly operation: string;
  readonly path: string;
  readonly method: 'GET' | 'POST';
  readonly perSecond: number;
}

export interface LoadPlan {
  readonly calls: readonly CallStream[];
  /** Runs of `workflow` started per second. */
  readonly runsPerSecond: number;
  readonly workflow: string;
  /** Calls in flight at most; a call due beyond it is skipped, not queued. */
  readonly maxCallsInFlight: number;
  /** Runs not yet final at most; a run due beyond it is skipped. */
  readonly maxOpenRuns: number;
}

/** The demo's plan: a busy enough service that every policy has something to do. */
export const DEMO_LOAD: LoadPlan = {
  calls: [
    { target: 'inventory', operation: 'stock', path: '/stock', method: 'GET', perSecond: 16 },
    { target: 'payments', operation: 'authorize', path: '/authorizations', method: 'POST', perSecond: 6 },
    { target: DEMO_GROUP, operation: 'search', path: '/items', method: 'GET', perSecond: 14 },
  ],
  runsPerSecond: 3,
  workflow: DEMO_WORKFLOW,
  maxCallsInFlight: 48,
  maxOpenRuns: 40,
};

const TICK_MS = 50;
const FINAL: ReadonlySet<string> = new Set(FINAL_STATUSES);

export interface LoadOptions {
  registry: DependencyRegistry;
  /** Needed when the plan starts runs. */
  engine?: WorkflowEngine;
  plan: LoadPlan;
  /** @default systemClock */
  clock?: Clock;
}

export class LoadDriver {
  readonly #registry: DependencyRegistry;
  readonly #engine: WorkflowEngine | undefined;
  readonly #plan: LoadPlan;
  readonly #clock: Clock;
  /** Calls owed to each stream (fractions carried over), so rates hold whatever the tick. */
  readonly #credit: number[];
  #runCredit = 0;
  readonly #inFlight = new Set<Promise<void>>();
  #runsStarted = 0;
  #runsEnded = 0;
  #timer: TimerHandle | undefined;
  #last = 0;
  #order = 0;
  #stopped = false;
  #unsubscribe: (() => void) | undefined;
  /** Calls and runs not started because the bound was reached. */
  skipped = 0;

  constructor(options: LoadOptions) {
    this.#registry = options.registry;
    this.#engine = options.engine;
    this.#plan = options.plan;
    this.#clock = options.clock ?? systemClock;
    this.#credit = options.plan.calls.map(() => 0);
  }

  start(): void {
    this.#last = this.#clock.now();
    this.#unsubscribe = this.#engine?.on((event) => {
      if (event.type === 'run:status' && event.workflow === this.#plan.workflow && FINAL.has(event.status))
        this.#runsEnded++;
    });
    // Something due at once, so the first figures do not wait a tick.
    this.#tick();
  }

  /** Starts no more; resolves when the calls in flight have settled (runs go on in the engine). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
    await Promise.allSettled([...this.#inFlight]);
  }

  /** Runs started by this driver that have not reached a final state. */
  get openRuns(): number {
    return this.#runsStarted - this.#runsEnded;
  }

  #tick = (): void => {
    if (this.#stopped) return;
    const now = this.#clock.now();
    const seconds = (now - this.#last) / 1_000;
    this.#last = now;
    this.#plan.calls.forEach((stream, i) => {
      this.#credit[i]! += stream.perSecond * seconds;
      while (this.#credit[i]! >= 1) {
        this.#credit[i]! -= 1;
        this.#call(stream);
      }
    });
    this.#runCredit += this.#plan.runsPerSecond * seconds;
    while (this.#runCredit >= 1) {
      this.#runCredit -= 1;
      this.#run();
    }
    this.#timer = this.#clock.setTimeout(this.#tick, TICK_MS);
  };

  #call(stream: CallStream): void {
    if (this.#inFlight.size >= this.#plan.maxCallsInFlight) {
      this.skipped++;
      return;
    }
    const call = (async () => {
      try {
        const response = await this.#registry.fetch(stream.target, stream.path, {
          method: stream.method,
          operation: stream.operation,
        });
        // Read to the end, so the socket goes back to the pool.
        await response.arrayBuffer();
      } catch {
        // Counted by the recorder from the registry's events.
      }
    })();
    this.#inFlight.add(call);
    void call.finally(() => this.#inFlight.delete(call));
  }

  #run(): void {
    const engine = this.#engine;
    if (engine === undefined) return;
    if (this.openRuns >= this.#plan.maxOpenRuns) {
      this.skipped++;
      return;
    }
    const order = ++this.#order;
    // Counted when due, so that the bound holds while starts are still being written.
    this.#runsStarted++;
    const start = (async () => {
      try {
        await engine.start(this.#plan.workflow, { order });
      } catch {
        // The store refused it (it is closing): nothing started.
        this.#runsStarted--;
      }
    })();
    this.#inFlight.add(start);
    void start.finally(() => this.#inFlight.delete(start));
  }
}
