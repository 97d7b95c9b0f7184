// The workflow engine: enqueues runs, claims them from the store by priority, runs them with
// leases kept alive by heartbeats, serves each run's result and timeline, retries failed runs,
// tells listeners what it changed, and gives its runs back when it stops.
import { randomUUID } from 'node:crypto';
import { type Clock, type DependencyRegistry, systemClock, type TimerHandle } from '@bulwark/core';
import {
  RunCancelledError,
  RunFailedError,
  RunNotRetryableError,
  UnknownRunError,
  WorkerStoppedError,
  WorkflowError,
  WorkflowErrorCodes,
} from '../errors.ts';
import { createdRecord } from '../store/new-run.ts';
import {
  type ClaimedRun,
  type EnqueueResult,
  FINAL_STATUSES,
  type Json,
  type NewAuditEntry,
  type NewRun,
  type RunRecord,
  type RunStatus,
  type TimelineEvent,
  type WorkflowStore,
} from '../store/types.ts';
import { EngineEvents, type EngineListener } from './events.ts';
import { type ExecutionHost, type RunEnd, RunExecution, tellParent } from './execution.ts';
import { newRunId } from './run-id.ts';
import { fromStoredError, toJson } from './serialize.ts';
import { StepPipelines } from './step-pipelines.ts';
import { checkDuration, describe, PRIORITIES, type Priority, type WorkflowDefinition } from './workflow.ts';

export interface WorkflowEngineOptions {
  store: WorkflowStore;
  /** Steps that name a `dependency` run through its pipeline in this registry. */
  registry?: DependencyRegistry;
  /** Runs this engine executes at once. @default 10 */
  concurrency?: number;
  /** At most this many runs of one workflow at once, across all workers. */
  perWorkflow?: Readonly<Record<string, number>>;
  /** At most this many runs per concurrency key at once, across all workers. */
  perKey?: number;
  /** How long a claimed run is this worker's without a heartbeat; another worker takes it over after. @default 15_000 */
  leaseMs?: number;
  /** How often this engine looks for runs that became available on their own (a sleep ended), besides wake-ups. @default 1_000 */
  pollMs?: number;
  /** Names this worker in leases. @default a random id */
  workerId?: string;
  /** @default systemClock */
  clock?: Clock;
  /** @default Math.random */
  random?: () => number;
}

export interface StartOptions {
  /** @default 'normal' */
  priority?: Priority;
  /** Starting twice with the same key returns the first run. */
  idempotencyKey?: string;
  /** Runs that must complete first; if one fails or is cancelled, this run is cancelled. */
  dependsOn?: readonly string[];
  /** Runs with the same key count together against `perKey`. */
  concurrencyKey?: string;
  /** The run fails if it is still going this many ms after it was enqueued. */
  timeoutMs?: number;
  correlationId?: string;
  traceparent?: string;
  /**
   * An audit entry recorded with the run, in the same transaction, its target the run's id;
   * only when the run is created (not when an idempotency key matched an earlier run).
   */
  audit?: Omit<NewAuditEntry, 'target'>;
}

/**
 * Refuses start options of the wrong type before anything is written: a `timeoutMs` given as a
 * string would make the deadline a concatenation, and a key given as a number would be stored as
 * text that no later string key matches.
 */
function checkStartOptions(options: Omit<StartOptions, 'priority'>): void {
  for (const key of ['idempotencyKey', 'concurrencyKey', 'correlationId', 'traceparent'] as const) {
    const value = options[key];
    if (value !== undefined && typeof value !== 'string')
      throw new TypeError(`${key}: expected a string, got ${describe(value)}`);
  }
  checkDuration('timeoutMs', options.timeoutMs);
  const parents = options.dependsOn;
  if (parents !== undefined && (!Array.isArray(parents) || parents.some((id) => typeof id !== 'string')))
    throw new TypeError(`dependsOn: expected an array of run ids (strings), got ${describe(parents)}`);
}

/** What the scheduler adds to a start (same package, not exported by the index): the tick it is for. */
export interface TickStartOptions extends StartOptions {
  scheduleTick?: { schedule: string; at: number };
}

/** Each engine's store, for the scheduler (same package, not exported by the index). */
const stores = new WeakMap<WorkflowEngine, WorkflowStore>();

/** The store an engine writes to: the scheduler reads a schedule's last tick from it. */
export function storeOf(engine: WorkflowEngine): WorkflowStore {
  const store = stores.get(engine);
  if (store === undefined) throw new TypeError('expected a WorkflowEngine');
  return store;
}

export interface RunHandle {
  readonly id: string;
  /** False when an idempotency key matched an earlier run, whose handle this is. */
  readonly created: boolean;
  /**
   * The run as created, when the store gives it back (SQLite always, PostgreSQL for a run leased
   * to this engine at its start): `queued`, or `running` and leased to this engine.
   */
  readonly run?: RunRecord;
}

/** A registered workflow, as `engine.definitions()` lists it. */
export interface WorkflowInfo {
  name: string;
  /** The latest registered version: the one `start(name, ...)` uses. */
  version: string;
  /** Every registered version, in the order registered. */
  versions: string[];
  /** The latest version's. */
  description: string | undefined;
  /** The latest version's declared step names. */
  steps: readonly string[] | undefined;
  /** The latest version's example input. */
  example: Json | undefined;
}

export interface StopOptions {
  /**
   * `'run'`: the runs in progress go on to a final state or until they suspend themselves.
   * `'step'`: each finishes the step(s) it is in, then is given back (queued, available now,
   * `run:suspended` {reason: 'shutdown'}) instead of starting its next step. @default 'run'
   */
  drain?: 'run' | 'step';
  /**
   * With `drain: 'step'`: after this long, steps still running are aborted (their signal's
   * reason is a WorkerStoppedError), not recorded, and their runs given back; they run again
   * on the next start. @default 25_000
   */
  graceMs?: number;
}

export interface StopResult {
  /** Runs given back at a step boundary. */
  suspended: number;
  /** Runs given back with steps aborted at the end of the grace period. */
  aborted: number;
}

/** Where stop() stands: draining step by step, and whether the grace period is over. */
interface Drain {
  graceMs: number;
  timer: TimerHandle | undefined;
  over: boolean;
  released: StopResult;
}

/** Wake-ups of one run (`#watch`). */
interface RunWatch {
  reading(): void;
  next(): Promise<void>;
  stop(): void;
  close(): void;
}

interface Executing {
  readonly workflow: string;
  execution: RunExecution | undefined;
  done: Promise<void>;
  /** Committing its end: its slot is free for the next claim. */
  finishing: boolean;
  /**
   * The run's final status once it is durable, for `result()`; undefined if this execution ends
   * otherwise (suspended, lease lost), and the run has to be read.
   */
  end: Promise<RunEnd | undefined>;
  settle: (end: RunEnd | undefined) => void;
}

export class WorkflowEngine {
  readonly #store: WorkflowStore;
  readonly #registry: DependencyRegistry | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #stepPipelines: StepPipelines;
  readonly #workerId: string;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  readonly #perWorkflow: Readonly<Record<string, number>> | undefined;
  readonly #perKey: number | undefined;
  /** name → version → definition. */
  readonly #workflows = new Map<string, Map<string, WorkflowDefinition<any, any>>>();
  /** The registered versions by workflow, and the workflows, as claims and announcements give them. */
  #versions: Record<string, string[]> = {};
  #names: string[] = [];
  /** Announcements and the retirement go one after the other: a late one must not undo a later one. */
  #presenceChain: Promise<void> = Promise.resolve();
  readonly #executing = new Map<string, Executing>();
  /** Runs of #executing committing their end: they no longer take a slot. */
  #finishing = 0;
  /** The last claim took fewer runs than it had room for while limits apply. */
  #heldBack = false;
  /** Slots taken by runs this engine is starting to execute itself (`#runsHere`), not yet launched. */
  #reserved = 0;
  /** The limit of the claim in flight: those slots are its to fill. */
  #claimRoom = 0;
  /** Enqueues of runs to execute here, in flight: a stop waits for the runs they launch. */
  readonly #starting = new Set<Promise<unknown>>();
  /** Counts wake-ups for new claimable work (`runs`). */
  #wakes = 0;
  /**
   * `#wakes` when the last claim that found nothing more to take began (-1: it did not): equal
   * to `#wakes` now, no claimable run is known to wait, so a run started here may take a free
   * slot without jumping the queue.
   */
  #drainedAt = -1;
  readonly #events = new EngineEvents();
  /** Operators' isolations with an end, by dependency (epoch ms): isolated steps park until then. */
  readonly #isolations = new Map<string, number>();
  #running = false;
  #claiming = false;
  /** The claim in progress: a stop waits for the runs it may still launch. */
  #claimInFlight: Promise<void> | undefined;
  #claimAgain = false;
  #pollTimer: TimerHandle | undefined;
  #heartbeatTimer: TimerHandle | undefined;
  #unsubscribe: (() => void) | undefined;
  #stopping: Promise<StopResult> | undefined;
  #drain: Drain | undefined;

  constructor(options: WorkflowEngineOptions) {
    if (options?.store === undefined) throw new TypeError('WorkflowEngine: `store` is required');
    this.#store = options.store;
    stores.set(this, options.store);
    this.#registry = options.registry;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#stepPipelines = new StepPipelines(this.#clock, this.#random);
    this.#workerId = options.workerId ?? `worker-${randomUUID()}`;
    this.#concurrency = positiveInt('concurrency', options.concurrency, 10);
    this.#leaseMs = positiveInt('leaseMs', options.leaseMs, 15_000);
    this.#pollMs = positiveInt('pollMs', options.pollMs, 1_000);
    this.#perWorkflow = options.perWorkflow;
    this.#perKey = options.perKey;
  }

  get workerId(): string {
    return this.#workerId;
  }

  /**
   * Makes a workflow (this version of it) runnable by this engine. The version registered last
   * is the one new runs take, even if it was registered before (a reload going back to it).
   */
  register(...definitions: WorkflowDefinition<any, any>[]): this {
    for (const d of definitions) {
      let versions = this.#workflows.get(d.name);
      if (versions === undefined) this.#workflows.set(d.name, (versions = new Map()));
      // A Map keeps a key where it was first set: deleted first, the version becomes the latest.
      versions.delete(d.version);
      versions.set(d.version, d);
    }
    this.#versions = Object.fromEntries(
      [...this.#workflows].map(([name, byVersion]) => [name, [...byVersion.keys()]]),
    );
    this.#names = Object.keys(this.#versions);
    // Runs of a workflow new here may be waiting: none is passed before a claim has looked.
    this.#wakes++;
    if (this.#running) {
      this.#announce();
      this.#poke();
    }
    return this;
  }

  /** The registered workflows, by name, with their versions (latest last) and what they declare. */
  definitions(): WorkflowInfo[] {
    const infos: WorkflowInfo[] = [];
    for (const [name, versions] of this.#workflows) {
      const latest = [...versions.values()].at(-1);
      if (latest === undefined) continue;
      infos.push({
        name,
        version: latest.version,
        versions: [...versions.keys()],
        description: latest.description,
        steps: latest.steps,
        example: latest.example,
      });
    }
    return infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  hasWorkflow(name: string): boolean {
    return (this.#workflows.get(name)?.size ?? 0) > 0;
  }

  /**
   * Listens to what this engine changes, each told after the store made it durable: `run:status`
   * (queued on start, running on claim, waiting or queued on suspension, compensating, each
   * final status, cancelled by `cancel`, queued by `retry`) and `step:finished`. Returns the
   * function that stops listening. A listener that throws is reported as a warning.
   */
  on(listener: EngineListener): () => void {
    return this.#events.on(listener);
  }

  /** The runs this engine is executing now, by workflow name. */
  activeRuns(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const entry of this.#executing.values()) counts[entry.workflow] = (counts[entry.workflow] ?? 0) + 1;
    return counts;
  }

  /** Tells the listeners, if any: with none, no event is built (the claim loop calls it per run). */
  #emitStatus(runId: string, workflow: string, status: RunStatus): void {
    if (this.#events.listening)
      this.#events.emit({ type: 'run:status', runId, workflow, status, at: this.#clock.now() });
  }

  /** Enqueues a run of `workflow` (its latest registered version when given by name). Durable when it resolves. */
  start<I>(
    workflow: WorkflowDefinition<I, unknown> | string,
    input: I,
    options: StartOptions = {},
  ): Promise<RunHandle> {
    const priority = options.priority ?? 'normal';
    if (!(priority in PRIORITIES)) {
      return Promise.reject(
        new TypeError(
          `priority: expected one of ${Object.keys(PRIORITIES).join(', ')}, got ${String(priority)}`,
        ),
      );
    }
    return this.#enqueue(workflow, input, { ...options, priority: PRIORITIES[priority] }, undefined);
  }

  async #enqueue(
    workflow: WorkflowDefinition<any, unknown> | string,
    input: unknown,
    options: Omit<StartOptions, 'priority'> & { priority: number },
    parentRunId: string | undefined,
  ): Promise<RunHandle> {
    checkStartOptions(options);
    const definition = typeof workflow === 'string' ? this.#latest(workflow) : workflow;
    // The run as the caller gave it, before any wait: what it changes afterwards is not the input.
    const now = this.#clock.now();
    // Optional fields set only when given (an absent key, not `undefined`), without an object
    // spread per field: this runs on every start.
    const run: NewRun = {
      id: newRunId(now),
      workflow: definition.name,
      version: definition.version,
      input: toJson(input, 'the workflow input') ?? null,
      priority: options.priority,
    };
    if (parentRunId !== undefined) run.parentRunId = parentRunId;
    if (options.idempotencyKey !== undefined) run.idempotencyKey = options.idempotencyKey;
    if (options.dependsOn !== undefined) run.dependsOn = [...options.dependsOn];
    if (options.concurrencyKey !== undefined) run.concurrencyKey = options.concurrencyKey;
    if (options.timeoutMs !== undefined) run.deadlineAt = now + Math.ceil(options.timeoutMs);
    if (options.correlationId !== undefined) run.correlationId = options.correlationId;
    if (options.traceparent !== undefined) run.traceparent = options.traceparent;
    if (options.audit !== undefined) run.audit = options.audit;
    const tick = (options as Pick<TickStartOptions, 'scheduleTick'>).scheduleTick;
    if (tick !== undefined) run.scheduleTick = tick;
    let here = this.#runsHere(definition, options);
    // A claim in flight settles whether anything waits, and leaves the slots it did not fill:
    // waiting for it beats queueing behind what may be nothing (and so staying in the queue).
    if (!here && this.#claimInFlight !== undefined && this.#mayRunHere(definition, options)) {
      await this.#claimInFlight;
      here = this.#runsHere(definition, options);
    }
    let result: EnqueueResult;
    if (here) {
      run.leasedTo = { workerId: this.#workerId, until: this.#clock.now() + this.#leaseMs };
      this.#reserved++;
      const enqueued = this.#store.enqueue([run], now);
      this.#starting.add(enqueued);
      try {
        [result] = (await enqueued) as [EnqueueResult];
      } finally {
        this.#starting.delete(enqueued);
        this.#reserved--;
      }
      // An enqueue so slow that the lease would run out before the first heartbeat renews it: a
      // claim may take the run (this engine's own too), so it is left to the claims once its
      // lease has lapsed (a run due by time, found by a poll). Rare enough (seconds) to tell the
      // listeners nothing until a claim does: `queued` now could come after its end.
      const late = this.#clock.now() >= run.leasedTo.until - this.#heartbeatMs();
      if (result.created && !late && !this.#executing.has(result.id)) {
        this.#emitStatus(result.id, definition.name, 'queued');
        // Launched before anything else can run: the slot reserved for it is its own. The run
        // as the store holds it, where it gives it back (PostgreSQL's jsonb orders the input's
        // keys: the first execution sees them as the next would).
        const created =
          result.run ?? createdRecord(run, now, { status: 'running', input: run.input, pendingParents: 0 });
        this.#launch({ ...created, takenOver: false, hasSteps: false });
        this.#emitStatus(result.id, definition.name, 'running');
      } else if (this.#running) this.#poke();
    } else {
      [result] = (await this.#store.enqueue([run], now)) as [EnqueueResult];
      if (result.created) this.#emitStatus(result.id, definition.name, result.status);
      if (this.#running) this.#poke();
    }
    return {
      id: result.id,
      created: result.created,
      ...(result.run === undefined ? {} : { run: result.run }),
    };
  }

  /**
   * Whether a run started now goes straight to a free slot of this engine, enqueued already
   * leased to it: no wake-up, no claim, and no read of it for `result()`, which is what a caller
   * awaiting its own runs pays for most. Only while nothing claimable is known to wait (a run
   * must not pass one of higher priority, or an older one) and no limit applies that other
   * workers' runs count against.
   */
  #runsHere(definition: WorkflowDefinition<any, unknown>, options: Omit<StartOptions, 'priority'>): boolean {
    return this.#drainedAt === this.#wakes && this.#room() > 0 && this.#mayRunHere(definition, options);
  }

  /** What a run started here needs besides a free slot and an empty queue. */
  #mayRunHere(
    definition: WorkflowDefinition<any, unknown>,
    options: Omit<StartOptions, 'priority'>,
  ): boolean {
    return (
      this.#running &&
      this.#drain === undefined &&
      this.#perWorkflow === undefined &&
      this.#perKey === undefined &&
      (options.dependsOn === undefined || options.dependsOn.length === 0) &&
      this.#workflows.get(definition.name)?.get(definition.version) === definition
    );
  }

  /** Free slots: neither executing (runs committing their end no longer count), reserved, nor the in-flight claim's. */
  #room(): number {
    return this.#concurrency - (this.#executing.size - this.#finishing) - this.#reserved - this.#claimRoom;
  }

  /**
   * Tells this engine that an operator isolated `dependency`'s circuit until `until` (epoch ms),
   * or until reset (null): a step bound to it parks until then (until reset: re-checking every
   * 30 s). The server calls it on isolate; `wakeParked` forgets it.
   */
  isolated(dependency: string, until: number | null): void {
    if (until === null) this.#isolations.delete(dependency);
    else this.#isolations.set(dependency, until);
  }

  /**
   * The circuit of `dependency` may let calls through again (reset, or an isolation ended): the
   * runs parked behind it become due now, on every worker (each tries once; one that finds the
   * circuit still shut parks again for the circuit's own time). Resolves with how many.
   */
  async wakeParked(dependency: string): Promise<number> {
    this.#isolations.delete(dependency);
    const woken = await this.#store.wakeParked(dependency, this.#clock.now());
    if (woken > 0 && this.#running) this.#poke();
    return woken;
  }

  /** Deletes final runs that finished more than `olderThanMs` ago, with their steps and timelines. */
  prune(olderThanMs: number): Promise<number> {
    return this.#store.prune(this.#clock.now() - olderThanMs);
  }

  getRun(runId: string): Promise<RunRecord | undefined> {
    return this.#store.getRun(runId);
  }

  /** Delivers an event to a run (`ctx.waitForEvent(name)`); false if the run is unknown or over. */
  sendEvent(runId: string, name: string, payload: unknown = null): Promise<boolean> {
    return this.#store.signal(runId, name, toJson(payload, 'the event payload') ?? null, this.#clock.now());
  }

  /**
   * Cancels a run: a run this engine is executing has its steps' signals aborted at once and is
   * compensated; one held elsewhere is cancelled by its worker at its next heartbeat; one no
   * worker holds that has run (asleep, waiting) is made due, so that a worker replays and
   * compensates it; one that has not run yet is cancelled by the store at once.
   */
  async cancel(runId: string, reason = 'cancelled'): Promise<boolean> {
    const now = this.#clock.now();
    // Read only for listeners: was it a run no worker held, which the store cancels at once?
    const before = this.#events.listening ? await this.#store.getRun(runId) : undefined;
    const ok = await this.#store.requestCancel(runId, reason, now);
    this.#executing.get(runId)?.execution?.abort(new RunCancelledError(reason));
    if (ok && !this.#executing.has(runId)) {
      // Cancelled by the store at once (it had not run), unless a claim came between: then its
      // worker ends the run and says so. A parent waiting for it as a child hears of it now,
      // not at its next re-check.
      const after = await this.#store.getRun(runId);
      if (after?.status === 'cancelled' && after.finishedAt === now) {
        if (before !== undefined) this.#emitStatus(runId, after.workflow, 'cancelled');
        await tellParent(this.#store, after.parentRunId, runId, 'cancelled', now);
      }
    }
    return ok;
  }

  /**
   * Runs a `failed`, `compensated` or `cancelled` run again: its failed steps, and the steps
   * whose compensation completed, run again; the other completed steps are replayed from their
   * records. The run is queued (behind its parents, if some have not completed) with a
   * `run:retried` event. Throws UnknownRunError, or RunNotRetryableError (any other status).
   */
  async retry(runId: string, reason = 'retried'): Promise<void> {
    // The workflow's name for listeners, read first: once queued, a worker may claim the run at
    // once, and `queued` must be told before its `running`.
    const workflow = this.#events.listening ? (await this.#store.getRun(runId))?.workflow : undefined;
    const outcome = await this.#store.retryRun(runId, reason, this.#clock.now());
    if (outcome === 'unknown') throw new UnknownRunError(runId);
    if (outcome === 'not-retryable') {
      const run = await this.#store.getRun(runId);
      if (run === undefined) throw new UnknownRunError(runId);
      throw new RunNotRetryableError(runId, run.status);
    }
    if (workflow !== undefined) this.#emitStatus(runId, workflow, 'queued');
    if (this.#running) this.#poke();
  }

  /** The run's output once it completes; rejects with RunFailedError if it fails or is cancelled. */
  async result<O = unknown>(runId: string): Promise<O> {
    const run = await this.#untilFinal(runId);
    if (run.status === 'completed') return run.output as O;
    const cause = run.error === undefined ? undefined : fromStoredError(run.error);
    throw Object.assign(new RunFailedError(runId, run.status, cause?.message ?? run.status), { cause });
  }

  /**
   * The run's final status: from its execution, while this engine executes it; otherwise read
   * again on each of its wake-ups (and every `pollMs`) until it is final.
   */
  async #untilFinal(runId: string): Promise<RunEnd> {
    // Subscribed only once the run must be read: most often it executes here from its start.
    let watch: RunWatch | undefined;
    try {
      for (;;) {
        const local = this.#executing.get(runId);
        if (local !== undefined) {
          const end = await local.end;
          if (end !== undefined) return end;
        }
        watch ??= this.#watch(runId);
        watch.reading();
        const run = await this.#store.getRun(runId);
        if (run === undefined) throw new TypeError(`no run ${runId}`);
        if (FINAL_STATUSES.includes(run.status)) return run;
        await watch.next();
      }
    } finally {
      watch?.close();
    }
  }

  /**
   * Wake-ups of one run. Call `reading()` before each read of it and `next()` after: `next()`
   * resolves at once if the run changed during the read, else at its next change or after
   * `pollMs` (the fallback where a store cannot tell other processes' changes).
   */
  #watch(runId: string): RunWatch {
    const clock = this.#clock;
    const topic = `run:${runId}`;
    let changed = false;
    let wake: (() => void) | undefined;
    const close = this.#store.subscribe((t) => {
      if (t !== topic) return;
      changed = true;
      wake?.();
    });
    return {
      reading: () => {
        changed = false;
      },
      // Ends the wait in progress, if any: the reader looks again (and sees why it was woken).
      stop: () => {
        changed = true;
        wake?.();
      },
      next: () =>
        changed
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              const timer = clock.setTimeout(() => {
                wake = undefined;
                resolve();
              }, this.#pollMs);
              wake = () => {
                wake = undefined;
                clock.clearTimeout(timer);
                resolve();
              };
            }),
      close,
    };
  }

  /**
   * The run's timeline: the stored history first, then live events as they are recorded, each
   * once and in order (read by sequence number, so nothing is lost or repeated at the seam);
   * ends when the run is final, when `signal` aborts, or at once when `return()` is called, even
   * while a `next()` waits for the run's next event (a generator's own `return()` would wait
   * for that event, which may be days away).
   */
  timeline(runId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<TimelineEvent> {
    const stopped = new AbortController();
    const outer = options.signal;
    const abort = () => stopped.abort();
    if (outer?.aborted) abort();
    else outer?.addEventListener('abort', abort, { once: true });
    const inner = this.#timeline(runId, stopped.signal);
    const finish = () => outer?.removeEventListener('abort', abort);
    const iterator: AsyncGenerator<TimelineEvent> = {
      next: () =>
        inner.next().then((result) => {
          if (result.done === true) finish();
          return result;
        }),
      return: (value) => {
        abort();
        finish();
        return inner.return(value);
      },
      throw: (error) => {
        abort();
        finish();
        return inner.throw(error);
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  async *#timeline(runId: string, signal: AbortSignal): AsyncGenerator<TimelineEvent> {
    let after = 0;
    const watch = this.#watch(runId);
    const stop = () => watch.stop();
    signal.addEventListener('abort', stop, { once: true });
    try {
      for (;;) {
        if (signal.aborted) return;
        watch.reading();
        const events = await this.#store.events(runId, after, 500);
        for (const e of events) {
          after = e.seq;
          yield e;
        }
        if (events.length === 500) continue;
        const run = await this.#store.getRun(runId);
        if (run === undefined) return;
        if (FINAL_STATUSES.includes(run.status)) {
          // The final event is committed with the final status: one more read has it all.
          for (const e of await this.#store.events(runId, after)) {
            after = e.seq;
            yield e;
          }
          return;
        }
        await watch.next();
      }
    } finally {
      signal.removeEventListener('abort', stop);
      watch.close();
    }
  }

  /** Starts working: claims runs now, on every wake-up, and every `pollMs`. */
  startWorker(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopping = undefined;
    // Unsubscribed while stopped, it heard of nothing queued meanwhile.
    this.#wakes++;
    this.#unsubscribe = this.#store.subscribe((topic) => {
      if (topic !== 'runs') return;
      this.#wakes++;
      this.#poke();
    });
    this.#announce();
    this.#poke();
    this.#heartbeat();
  }

  /**
   * Tells the store this worker is alive and which versions it runs: other workers leave it the
   * runs of versions only it has (a rolling deploy), and fail them once no live worker has them.
   */
  #announce(): void {
    const versions = this.#versions;
    void this.#presence(
      () => this.#store.announce(this.#workerId, versions, this.#clock.now(), this.#leaseMs),
      'announcing',
    );
  }

  /** Runs a store call about this worker's presence after the ones before it, warning if it fails. */
  #presence(call: () => Promise<void>, doing: string): Promise<void> {
    this.#presenceChain = this.#presenceChain.then(call).catch((error: unknown) => {
      process.emitWarning(
        `Bulwark workflow engine: ${doing} this worker failed: ${(error as Error).message}`,
        'BulwarkWorkflowWarning',
      );
    });
    return this.#presenceChain;
  }

  /**
   * Stops claiming at once and waits for the runs in progress: by default until each reaches a
   * final state or suspends itself; with `drain: 'step'`, until each finishes the steps it is in
   * and is given back (or, past `graceMs`, has them aborted and is given back). Leases are kept
   * by heartbeats until then. Resolves with how many runs were given back.
   */
  stop(options: StopOptions = {}): Promise<StopResult> {
    let graceMs: number;
    try {
      graceMs = stopGrace(options);
    } catch (error) {
      return Promise.reject(error);
    }
    // Asked again with `drain: 'step'` while a plain stop waits: the runs still going drain too.
    if (options.drain === 'step' && (this.#running || this.#executing.size > 0)) this.#beginDrain(graceMs);
    if (!this.#running) return this.#stopping ?? Promise.resolve({ suspended: 0, aborted: 0 });
    this.#running = false;
    this.#unsubscribe?.();
    if (this.#pollTimer !== undefined) this.#clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#stopping = (async () => {
      // A claim in flight may still launch runs: they are waited for (and drained) too.
      while (this.#executing.size > 0 || this.#claimInFlight !== undefined || this.#starting.size > 0) {
        await Promise.allSettled([
          ...[...this.#executing.values()].map((e) => e.done),
          ...(this.#claimInFlight === undefined ? [] : [this.#claimInFlight]),
          ...this.#starting,
        ]);
      }
      if (this.#heartbeatTimer !== undefined) this.#clock.clearTimeout(this.#heartbeatTimer);
      this.#heartbeatTimer = undefined;
      // Gone: the versions only this worker ran are gone now, for the other workers' claims.
      if (!this.#running) await this.#presence(() => this.#store.retire(this.#workerId), 'retiring');
      const drain = this.#drain;
      this.#drain = undefined;
      if (drain?.timer !== undefined) this.#clock.clearTimeout(drain.timer);
      return drain === undefined ? { suspended: 0, aborted: 0 } : { ...drain.released };
    })();
    return this.#stopping;
  }

  /** Tells every run in progress (and any launched later) to stop at its next step; arms the grace timer. */
  #beginDrain(graceMs: number): void {
    if (this.#drain !== undefined) return;
    const drain: Drain = { graceMs, timer: undefined, over: false, released: { suspended: 0, aborted: 0 } };
    this.#drain = drain;
    for (const entry of this.#executing.values()) entry.execution?.drain();
    drain.timer = this.#clock.setTimeout(() => {
      drain.timer = undefined;
      drain.over = true;
      for (const entry of this.#executing.values()) entry.execution?.stopNow(new WorkerStoppedError(graceMs));
    }, graceMs);
  }

  /** Claims what there is room for; again at once if a wake-up came meanwhile. */
  #poke(): void {
    if (!this.#running) return;
    if (this.#claiming) {
      this.#claimAgain = true;
      return;
    }
    this.#claiming = true;
    this.#claimInFlight = this.#claim().finally(() => {
      this.#claiming = false;
      this.#claimInFlight = undefined;
      if (this.#claimAgain && this.#running) {
        this.#claimAgain = false;
        this.#poke();
      } else {
        this.#schedulePoll();
      }
    });
  }

  async #claim(): Promise<void> {
    const room = this.#room();
    if (room <= 0 || this.#workflows.size === 0) return;
    const wakes = this.#wakes;
    let runs: ClaimedRun[];
    this.#claimRoom = room;
    try {
      runs = await this.#store.claim({
        workerId: this.#workerId,
        limit: room,
        leaseMs: this.#leaseMs,
        now: this.#clock.now(),
        workflows: this.#names,
        versions: this.#versions,
        ...(this.#perWorkflow === undefined ? {} : { perWorkflow: this.#perWorkflow }),
        ...(this.#perKey === undefined ? {} : { perKey: this.#perKey }),
      });
    } catch (error) {
      process.emitWarning(
        `Bulwark workflow engine: claiming runs failed: ${(error as Error).message}`,
        'BulwarkWorkflowWarning',
      );
      return;
    } finally {
      this.#claimRoom = 0;
    }
    this.#drainedAt = runs.length < room ? wakes : -1;
    for (const run of runs) {
      const current = this.#executing.get(run.id);
      if (current === undefined) {
        this.#launch(run);
        this.#emitStatus(run.id, run.workflow, run.status);
      } else if (current.finishing) {
        // Given back (suspended, due at once) by the commit this claim shared: it runs again once
        // that execution has ended here. Two executions must never write.
        void current.done.then(() => {
          this.#launch(run);
          this.#emitStatus(run.id, run.workflow, run.status);
        });
      }
      // Otherwise our own lease ran out (a slow heartbeat) and we claimed the run again: the
      // execution in progress keeps it, with the lease the claim renewed.
    }
    if (runs.length === room) this.#claimAgain = true;
    // Fewer than there was room for, with limits: perhaps held back by a limit that a run
    // finishing now still counts against (its claim went out beside its last commit).
    this.#heldBack = runs.length < room && (this.#perWorkflow !== undefined || this.#perKey !== undefined);
  }

  #schedulePoll(): void {
    if (!this.#running || this.#pollTimer !== undefined) return;
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      // Runs due by time alone (a sleep ended, a dead worker's lease expired) wake no one: until
      // a claim with room has looked, none is passed by a run started here. (As a wake-up, so
      // that a claim already in flight, begun before, does not count as that look.)
      this.#wakes++;
      this.#poke();
    }, this.#pollMs);
    this.#clock.keepAlive?.(this.#pollTimer, false);
  }

  #launch(run: ClaimedRun): void {
    let settle!: (end: RunEnd | undefined) => void;
    const entry: Executing = {
      workflow: run.workflow,
      execution: undefined,
      done: Promise.resolve(),
      finishing: false,
      end: new Promise((resolve) => {
        settle = resolve;
      }),
      settle: (end) => settle(end),
    };
    this.#executing.set(run.id, entry);
    entry.done = this.#execute(run, entry)
      .catch((error: unknown) => {
        process.emitWarning(
          `Bulwark workflow engine: run ${run.id} stopped: ${(error as Error)?.message ?? String(error)}`,
          'BulwarkWorkflowWarning',
        );
      })
      .finally(() => {
        entry.settle(undefined);
        this.#executing.delete(run.id);
        if (entry.finishing) {
          this.#finishing--;
          // Its slot under a limit is free only now that its end is committed.
          if (this.#heldBack) this.#poke();
        } else this.#poke();
      });
  }

  async #execute(run: ClaimedRun, entry: Executing): Promise<void> {
    const definition = this.#workflows.get(run.workflow)?.get(run.version);
    const host: ExecutionHost = {
      store: this.#store,
      clock: this.#clock,
      registry: this.#registry,
      workerId: this.#workerId,
      random: this.#random,
      stepPipelines: this.#stepPipelines,
      events: this.#events,
      isolationEnd: (dependency) => this.#isolations.get(dependency),
      // The claim for the freed slot goes out now, beside the run's last commit: one group
      // transaction carries both, instead of the claim waiting for the next.
      finishing: () => {
        if (entry.finishing) return;
        entry.finishing = true;
        this.#finishing++;
        // With nothing known to wait, a claim would find nothing: the slot waits for a start here
        // or a wake-up (runs due by time are the poll's).
        if (this.#drainedAt !== this.#wakes) this.#poke();
      },
      startChild: (workflow, input, options) => this.#enqueue(workflow, input, options, options.parentRunId),
      ended: (end) => entry.settle(end),
    };
    if (definition === undefined) {
      // The run started on a version this deploy no longer has: replaying its history against
      // other code could do anything, so it stops with a clear error instead.
      const versions = this.#versions[run.workflow] ?? [];
      const error = new WorkflowError(
        WorkflowErrorCodes.VERSION_GONE,
        `Run ${run.id} started on ${run.workflow} version ${run.version}, which no running worker has registered (registered here: ${versions.join(', ') || 'none'})`,
      );
      const now = this.#clock.now();
      await this.#store.commit(
        [
          {
            kind: 'run',
            runId: run.id,
            workerId: this.#workerId,
            update: {
              status: 'failed',
              error: { name: error.name, message: error.message, code: error.code, transient: false },
              releaseLease: true,
            },
          },
          {
            kind: 'event',
            runId: run.id,
            event: {
              type: 'run:failed',
              step: undefined,
              data: { error: error.message },
              progress: run.progress,
              at: now,
            },
          },
        ],
        now,
      );
      this.#emitStatus(run.id, run.workflow, 'failed');
      await tellParent(this.#store, run.parentRunId, run.id, 'failed', now);
      return;
    }
    // A run that never recorded a step (most claims) has no history to read.
    const history = run.hasSteps ? await this.#store.steps(run.id) : [];
    const execution = new RunExecution(host, run, definition, history);
    entry.execution = execution;
    const drain = this.#drain;
    if (drain !== undefined) execution.drain();
    if (drain?.over) execution.stopNow(new WorkerStoppedError(drain.graceMs));
    await execution.execute();
    // The drain now, not the one at launch: it may have begun while the run was going.
    const released = execution.released;
    if (released !== undefined && this.#drain !== undefined) this.#drain.released[released]++;
  }

  #heartbeatMs(): number {
    return Math.max(1, Math.floor(this.#leaseMs / 3));
  }

  /** Renews the leases of the runs in progress; a lost one is aborted here, a cancelled one cancelled. */
  #heartbeat(): void {
    const interval = this.#heartbeatMs();
    const beat = async () => {
      this.#heartbeatTimer = undefined;
      if (this.#running) this.#announce();
      const ids = [...this.#executing.keys()];
      if (ids.length > 0) {
        try {
          const { held, cancelRequested } = await this.#store.renew(
            this.#workerId,
            ids,
            this.#leaseMs,
            this.#clock.now(),
          );
          const heldSet = new Set(held);
          for (const id of ids) {
            const execution = this.#executing.get(id)?.execution;
            if (execution === undefined) continue;
            if (!heldSet.has(id)) execution.loseLease();
          }
          for (const id of cancelRequested)
            this.#executing.get(id)?.execution?.abort(new RunCancelledError('cancelled'));
        } catch (error) {
          process.emitWarning(
            `Bulwark workflow engine: heartbeat failed: ${(error as Error).message}`,
            'BulwarkWorkflowWarning',
          );
        }
      }
      if (this.#running || this.#executing.size > 0) {
        this.#heartbeatTimer = this.#clock.setTimeout(() => void beat(), interval);
        this.#clock.keepAlive?.(this.#heartbeatTimer, false);
      }
    };
    this.#heartbeatTimer = this.#clock.setTimeout(() => void beat(), interval);
    this.#clock.keepAlive?.(this.#heartbeatTimer, false);
  }

  #latest(name: string): WorkflowDefinition<any, any> {
    const versions = this.#workflows.get(name);
    if (versions === undefined || versions.size === 0) {
      throw new WorkflowError(
        WorkflowErrorCodes.UNKNOWN_WORKFLOW,
        `No workflow named '${name}' is registered`,
      );
    }
    return [...versions.values()].at(-1)!;
  }
}

/** The grace period of a stop, checked: `drain` is 'run' or 'step', `graceMs` a duration. */
function stopGrace(options: StopOptions): number {
  const drain = options?.drain ?? 'run';
  if (drain !== 'run' && drain !== 'step')
    throw new TypeError(`WorkflowEngine.stop: drain must be 'run' or 'step', got ${String(drain)}`);
  const graceMs = options?.graceMs ?? 25_000;
  if (typeof graceMs !== 'number' || !(graceMs >= 0) || !Number.isFinite(graceMs))
    throw new TypeError(`WorkflowEngine.stop: graceMs must be a number of ms >= 0, got ${graceMs}`);
  return graceMs;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1)
    throw new TypeError(`WorkflowEngine: ${name} must be a whole number of at least 1, got ${value}`);
  return value;
}
