// One run on one worker: replays the recorded steps, runs the new ones, records each outcome
// before the workflow moves on, and ends the run (completed, compensated, failed, cancelled) or
// suspends it (asleep, waiting for an event, parked behind an open or isolated circuit, or given
// back because its worker is stopping).
import {
  type BrokenCircuitError,
  type Clock,
  type DependencyRegistry,
  IsolatedCircuitError,
  isTransient,
  pipeline,
  type TimerHandle,
  withRequestContext,
} from '@bulwark/core';
import {
  NonDeterminismError,
  RunCancelledError,
  RunFailedError,
  WaitTimeoutError,
  WorkerStoppedError,
  WorkflowError,
  WorkflowErrorCodes,
} from '../errors.ts';
import {
  type Change,
  type ClaimedRun,
  type CommitResult,
  FINAL_STATUSES,
  type Json,
  type NewEvent,
  type RunStatus,
  type StepRecord,
  type StoredError,
  type WorkflowStore,
} from '../store/types.ts';
import type { EngineEvents } from './events.ts';
import { fromStoredError, toJson, toStoredError } from './serialize.ts';
import { refusal, type StepPipelines, stepPolicies } from './step-pipelines.ts';
import {
  type ChildOptions,
  checkDuration,
  checkStepOptions,
  PRIORITIES,
  type StepContext,
  type StepOptions,
  type WorkflowContext,
  type WorkflowDefinition,
} from './workflow.ts';

/** How an execution ended on this worker. */
export type ExecutionEnd = 'final' | 'suspended' | 'lost';

/** A run's final status and what it ended with, as its record holds them. */
export interface RunEnd {
  status: RunStatus;
  output: Json | undefined;
  error: StoredError | undefined;
}

export interface ExecutionHost {
  readonly store: WorkflowStore;
  readonly clock: Clock;
  readonly registry: DependencyRegistry | undefined;
  readonly workerId: string;
  readonly random: () => number;
  /** The engine's step pipelines, shared by its runs. */
  readonly stepPipelines: StepPipelines;
  /** The engine's listeners: told of each status this execution commits and each step it records. */
  readonly events: EngineEvents;
  /**
   * When an operator's isolation of this dependency's circuit ends (epoch ms), if this engine was
   * told (`WorkflowEngine.isolated`); undefined when unknown or until reset.
   */
  isolationEnd(dependency: string): number | undefined;
  /**
   * The run is committing its end (final, or suspended): its slot may go to another run now, so
   * that the claim for it shares the transaction of this last commit.
   */
  finishing(): void;
  /** The run's final status is durable. */
  ended(end: RunEnd): void;
  /** Enqueues a child run (idempotent by its key). */
  startChild(
    workflow: WorkflowDefinition<unknown, unknown> | string,
    input: unknown,
    options: { priority: number; idempotencyKey: string; parentRunId: string; concurrencyKey?: string },
  ): Promise<{ id: string }>;
}

/**
 * A child run tells its parent, waiting on `child:<id>`, that it ended (the engine does it too,
 * for a child that ends with no execution to tell). A store that fails here leaves the parent to
 * its re-check.
 */
export async function tellParent(
  store: WorkflowStore,
  parent: string | undefined,
  child: string,
  status: string,
  now: number,
): Promise<void> {
  if (parent === undefined) return;
  await store.signal(parent, `child:${child}`, { status }, now).catch(() => false);
}

/** Thrown inside the workflow when this worker no longer holds the run: nothing more may be written. */
class LeaseLost extends Error {}

/** A step behind an open or isolated circuit: it leaves the count of active steps, then waits for the suspension. */
class Parked extends Error {}

interface Compensable {
  name: string;
  seq: number;
  output: unknown;
  compensate: (output: unknown, context: StepContext) => unknown;
  options: StepOptions<unknown>;
}

export class RunExecution {
  readonly run: ClaimedRun;
  readonly #host: ExecutionHost;
  readonly #definition: WorkflowDefinition<unknown, unknown>;
  readonly #recorded = new Map<string, StepRecord>();
  /** Recorded steps the replay has not asked for yet. */
  readonly #unvisited = new Set<string>();
  readonly #requested = new Set<string>();
  readonly #compensable: Compensable[] = [];
  readonly #controller = new AbortController();
  #active = 0;
  #idle: (() => void) | undefined;
  /** `shutdown`: given back (queued, available now) because the worker is stopping. */
  #suspend:
    | {
        until: number;
        waitingFor: string | undefined;
        shutdown?: true;
        /** The dependency whose open circuit parked a step (what the dashboard lists per dependency). */
        parkedOn?: string;
      }
    | undefined;
  /** The workflow's body has returned or thrown: a step it calls now never starts (nor settles). */
  #bodyEnded = false;
  /** Called when the last step in flight settles after the body ended. */
  #settled: (() => void) | undefined;
  /** Set by `drain()`: the run starts no new step; it is given back once its steps in flight settle. */
  #draining = false;
  /** Rejects the steps in flight (their promise, whether or not they honour their signal) at the grace period's end. */
  readonly #stoppers = new Set<(error: WorkerStoppedError) => void>();
  /** How the run left a stopping worker: at a step boundary, or with its steps aborted. */
  #released: 'suspended' | 'aborted' | undefined;
  /** The status last committed (or claimed): a listener hears each change once. */
  #status: RunStatus;
  #progress: number;
  #degraded: boolean;
  #fatal: Error | undefined;
  #lost = false;
  /** Orders the compensations of steps completed in this execution after the recorded ones. */
  #nextSeq: number;
  constructor(
    host: ExecutionHost,
    run: ClaimedRun,
    definition: WorkflowDefinition<unknown, unknown>,
    history: StepRecord[],
  ) {
    this.#host = host;
    this.run = run;
    this.#definition = definition;
    for (const step of history) {
      this.#recorded.set(step.name, step);
      this.#unvisited.add(step.name);
    }
    this.#progress = run.progress;
    this.#degraded = run.degraded;
    this.#status = run.status;
    // After every recorded step: a retried run's history has gaps where its undone steps were.
    this.#nextSeq = history.reduce((max, step) => Math.max(max, step.seq + 1), 0);
  }

  /** Aborts the running steps: the run was cancelled, or this worker lost it. */
  abort(reason: Error): void {
    if (reason instanceof LeaseLost) this.#lost = true;
    this.#controller.abort(reason);
  }

  /** Another worker took the run over: stop here and write nothing more. */
  loseLease(): void {
    this.abort(new LeaseLost(`run ${this.run.id} was taken over by another worker`));
  }

  get cancelled(): boolean {
    return this.#controller.signal.aborted && this.#controller.signal.reason instanceof RunCancelledError;
  }

  /** The worker is stopping: start no new step, and give the run back once the steps in flight settle. */
  drain(): void {
    this.#draining = true;
    // Idle between steps (committing, or not yet started): the next step call gives it back.
  }

  /** The grace period ended: abort the steps in flight (not recorded as failed) and give the run back. */
  stopNow(error: WorkerStoppedError): void {
    this.#draining = true;
    if (this.#active > 0) this.#released ??= 'aborted';
    this.#controller.abort(error);
    for (const stop of this.#stoppers) stop(error);
  }

  /** Whether (and how) a stopping worker gave this run back. */
  get released(): 'suspended' | 'aborted' | undefined {
    return this.#released;
  }

  async execute(): Promise<ExecutionEnd> {
    const started: NewEvent[] = [];
    if (this.#recorded.size === 0 && this.run.status === 'running') {
      started.push(this.#event(this.run.takenOver ? 'run:resumed' : 'run:started'));
    } else {
      started.push(
        this.#event('run:resumed', undefined, {
          replaying: this.#recorded.size,
          takenOver: this.run.takenOver,
        }),
      );
    }
    if (this.run.status === 'waiting') {
      // Woken up: the run works again, and waits for nothing until it says so.
      await this.#commit([
        this.#runChange({ status: 'running', waitingFor: null }),
        ...this.#events(started),
      ]);
    } else {
      // Goes with the run's next commit (its first step's outcome, most often): one commit fewer
      // per run. Lost in a crash before then, it is replaced by the next worker's `run:resumed`.
      this.#defer(started);
    }
    if (this.run.cancelRequested !== undefined) this.abort(new RunCancelledError(this.run.cancelRequested));
    const deadlineTimer = this.#armDeadline();
    try {
      const { traceparent, correlationId } = this.run;
      if (traceparent === undefined && correlationId === undefined) return await this.#race();
      // The run's steps continue the trace (and carry the request id) of whoever started it:
      // outgoing HTTP calls made by its steps send them on.
      return await withRequestContext({ traceparent, requestId: correlationId }, () => this.#race());
    } finally {
      if (deadlineTimer !== undefined) this.#host.clock.clearTimeout(deadlineTimer);
    }
  }

  /**
   * A run past its deadline is aborted like a cancelled one, but ends failed (after compensating):
   * at once if it is already late, else by a timer cleared when this execution ends.
   */
  #armDeadline(): TimerHandle | undefined {
    const deadline = this.run.deadlineAt;
    if (deadline === undefined) return undefined;
    const clock = this.#host.clock;
    const late = () =>
      this.abort(new WorkflowError(WorkflowErrorCodes.DEADLINE, `Run ${this.run.id} passed its deadline`));
    const remaining = deadline - clock.now();
    if (remaining <= 0) {
      late();
      return undefined;
    }
    return clock.setTimeout(late, remaining);
  }

  async #race(): Promise<ExecutionEnd> {
    let output: unknown;
    let failure: unknown;
    let succeeded = false;
    const suspended = new Promise<'suspended'>((resolve) => {
      this.#onSuspendSettled = () => resolve('suspended');
    });
    // A run that was compensating when its worker died replays too: its recorded failure ends the
    // replay where it ended before, and the recorded compensations are skipped.
    const body = this.#runBody();
    const outcome = await Promise.race([
      body.then(
        (value) => {
          succeeded = true;
          output = value;
          return 'done' as const;
        },
        (error: unknown) => {
          failure = error;
          return 'done' as const;
        },
      ),
      suspended,
    ]);
    if (this.#lost) return 'lost';
    if (outcome === 'suspended') {
      // Cancelled or past its deadline, the run ends now rather than wait again: it was woken
      // (at its deadline, or by the cancel) to replay up to its wait and end there.
      const ending = this.#ending();
      if (ending !== undefined && !this.#suspend!.shutdown) return this.#fail(ending);
      return this.#suspendRun();
    }
    if (failure instanceof WorkerStoppedError) {
      // The workflow let the stop's abort escape (it read ctx.signal): still a stop, not a failure.
      this.#suspend ??= { until: this.#host.clock.now(), waitingFor: undefined, shutdown: true };
      return this.#suspendRun();
    }
    // The body has ended, but steps it started may still run (siblings of one that failed, in a
    // Promise.all): the run ends once they settle, their outcomes recorded, so that one that
    // completes is compensated with the others. The body starts no new step from here on.
    this.#bodyEnded = true;
    if (this.#active > 0) {
      // Its own slot: a sibling that parks or suspends meanwhile takes `#idle` for itself.
      await new Promise<void>((resolve) => {
        this.#settled = resolve;
      });
      if (this.#lost) return 'lost';
    }
    if (this.#fatal !== undefined) return this.#fail(this.#fatal);
    if (succeeded && this.#unvisited.size > 0) {
      return this.#fail(
        new NonDeterminismError(this.run.id, '(the end of the workflow)', [...this.#unvisited]),
      );
    }
    if (succeeded) return this.#complete(output);
    if (failure instanceof LeaseLost) return 'lost';
    return this.#fail(failure);
  }

  #onSuspendSettled: (() => void) | undefined;

  /** Why the run must end now (cancelled, past its deadline), if it must: not a worker's stop. */
  #ending(): unknown {
    const { signal } = this.#controller;
    return signal.aborted && !(signal.reason instanceof WorkerStoppedError) ? signal.reason : undefined;
  }

  #runBody(): Promise<unknown> {
    const context = this.#context();
    try {
      return Promise.resolve(this.#definition.run(context, this.run.input as never));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #context(): WorkflowContext<unknown> {
    const self = this;
    return {
      runId: this.run.id,
      input: this.run.input,
      workflow: this.run.workflow,
      version: this.run.version,
      signal: this.#controller.signal,
      step<T>(name: string, a: unknown, b?: unknown): Promise<T> {
        const [options, fn] = typeof a === 'function' ? [{}, a] : [a ?? {}, b];
        return self.#step(name, options as StepOptions<T>, fn as (c: StepContext) => T | Promise<T>);
      },
      sleep: (name, ms) => this.#sleep(name, ms),
      waitForEvent: (name, options) => this.#waitForEvent(name, options?.timeoutMs) as never,
      child: (name, workflow, input, options) =>
        this.#child(name, workflow as WorkflowDefinition<unknown, unknown>, input, options) as never,
      progress: (percent, message) => this.#reportProgress(percent, message),
    };
  }

  async #step<T>(name: string, options: StepOptions<T>, fn: (c: StepContext) => T | Promise<T>): Promise<T> {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('a step needs a non-empty name');
    if (this.#requested.has(name)) {
      throw new WorkflowError(
        WorkflowErrorCodes.DUPLICATE_STEP,
        `Step '${name}' is called twice in run ${this.run.id}; step names are unique within a run`,
      );
    }
    this.#requested.add(name);
    const record = this.#recorded.get(name);
    if (record !== undefined) {
      this.#unvisited.delete(name);
      if (record.status === 'failed') throw fromStoredError(record.error!);
      // A step completed through its fallback keeps the error that led to it: nothing of it to undo.
      if (options.compensate !== undefined && record.error === undefined) {
        this.#compensable.push({
          name,
          seq: record.seq,
          output: record.output,
          compensate: options.compensate as Compensable['compensate'],
          options: options as StepOptions<unknown>,
        });
      }
      return record.output as T;
    }
    checkStepOptions(name, options as StepOptions<unknown>);
    // A new step while recorded ones are still unvisited: let every call the replay makes
    // synchronously (siblings in a Promise.all) be asked first; a recorded step still unvisited
    // after that means the code took another path. (Not replaying, there is nothing to wait for.)
    if (this.#unvisited.size > 0) await new Promise((resolve) => setImmediate(resolve));
    if (this.#unvisited.size > 0 && this.#fatal === undefined) {
      this.#fatal = new NonDeterminismError(this.run.id, name, [...this.#unvisited]);
    }
    // The outcomes the workflow has seen are durable before this step can act on them.
    if (this.#outcomeDeferred || this.#outcomeCommit !== undefined) await this.#outcomesDurable();
    if (this.#fatal !== undefined) throw this.#fatal;
    const ending = this.#ending();
    if (ending !== undefined) throw ending;
    if (this.#draining) this.#requestRelease();
    if (this.#suspend !== undefined || this.#bodyEnded) return this.#never();
    this.#active++;
    try {
      return await this.#attempts(name, options, fn);
    } catch (error) {
      // Aborted by the stop: not a failure (nothing was recorded); the run is given back.
      if (error instanceof WorkerStoppedError) this.#requestRelease();
      else if (!(error instanceof Parked)) throw error;
    } finally {
      if (--this.#active === 0) {
        this.#idle?.();
        this.#settled?.();
      }
    }
    // Parked or stopped: the run suspends once its other steps settle; this call never returns here.
    return this.#never();
  }

  /** The worker is stopping: give the run back (queued, available now) once its steps in flight settle. */
  #requestRelease(): void {
    if (this.#suspend !== undefined) return;
    this.#suspend = { until: this.#host.clock.now(), waitingFor: undefined, shutdown: true };
    this.#settleWhenIdle();
  }

  #settleWhenIdle(): void {
    const settle = () => this.#onSuspendSettled?.();
    if (this.#active === 0) queueMicrotask(settle);
    else this.#idle = settle;
  }

  async #attempts<T>(
    name: string,
    options: StepOptions<T>,
    fn: (c: StepContext) => T | Promise<T>,
  ): Promise<T> {
    const host = this.#host;
    const startedAt = host.clock.now();
    const runId = this.run.id;
    const idempotencyKey = `${runId}:${name}`;
    let attempts = 0;
    // A quick step's start is committed with its outcome; a slow one's is flushed on its own,
    // so a live timeline shows it running.
    this.#defer([this.#event('step:started', name)]);
    const flushStart = host.clock.setTimeout(() => {
      if (this.#deferred.length > 0) this.#commit([]).catch(() => {});
    }, START_FLUSH_MS);
    const protectedCall = host.stepPipelines.get(options as StepOptions<unknown>);
    // Retries told as `step:retry-scheduled` events of this step (the pipeline is the engine's).
    const stopListening =
      options.retry === false
        ? undefined
        : host.stepPipelines.listen(idempotencyKey, (e) => {
            void this.#commit(
              this.#events([
                this.#event('step:retry-scheduled', name, {
                  attempt: e.attempt,
                  delayMs: e.delayMs,
                  error: toStoredError(e.error) as unknown as Json,
                }),
              ]),
            );
          });
    try {
      const running = protectedCall.execute(
        async (ctx) => {
          attempts = ctx.attempt;
          const call = (signal: AbortSignal) =>
            fn({ runId, step: name, idempotencyKey, attempt: ctx.attempt, signal });
          if (options.dependency === undefined) return call(ctx.signal);
          const registry = host.registry;
          if (registry === undefined)
            throw new TypeError(
              `step '${name}' names dependency '${options.dependency}' but the engine has no registry`,
            );
          return registry.execute(options.dependency, options.operation ?? name, (d) => call(d.signal), {
            signal: ctx.signal,
          });
        },
        { signal: this.#controller.signal, operation: idempotencyKey },
      );
      const value = await this.#unlessStopped(running);
      host.clock.clearTimeout(flushStart);
      const output = toJson(value, `the output of step '${name}'`);
      const recorded = [
        this.#stepChange(name, { output }, attempts, startedAt),
        ...this.#events([this.#event('step:completed', name, { attempts })]),
      ];
      // The only step in flight: its outcome goes with the run's next commit (the next step's
      // start waits for it, or the run's end carries it), so a run commits once per step, not
      // once per step and once more at its end. With others in flight, it commits now.
      if (this.#active === 1) this.#deferOutcome(recorded);
      else await this.#commit(recorded);
      if (options.compensate !== undefined) {
        this.#compensable.push({
          name,
          seq: this.#nextSeq++,
          output,
          compensate: options.compensate as Compensable['compensate'],
          options: options as StepOptions<unknown>,
        });
      }
      // What a replay will return: the stored JSON, not the live value (a Date, a Map, a class).
      return output as T;
    } catch (error) {
      host.clock.clearTimeout(flushStart);
      if (error instanceof LeaseLost || this.#lost) throw error;
      const refused = refusal(error);
      if (refused !== undefined && options.whenCircuitOpen !== 'fail' && !this.#controller.signal.aborted) {
        // Parked: no attempt spent, no outcome recorded; the step runs again when the circuit may let it through.
        this.#park(name, options.dependency, refused);
        throw new Parked();
      }
      if (this.#controller.signal.aborted) throw this.#controller.signal.reason;
      const stored = toStoredError(error);
      if (options.fallback !== undefined) {
        const substitute = toJson(await options.fallback(error), `the fallback of step '${name}'`);
        this.#degraded = true;
        await this.#commit([
          // Completed, with the error that led to the fallback: a replay knows not to compensate it.
          this.#stepChange(name, { output: substitute, error: stored, fallback: true }, attempts, startedAt),
          this.#runChange({ degraded: true }),
          ...this.#events([
            this.#event('step:fallback', name, { attempts, error: stored as unknown as Json }),
          ]),
        ]);
        return substitute as T;
      }
      await this.#commit([
        this.#stepChange(name, { error: stored }, attempts, startedAt),
        ...this.#events([this.#event('step:failed', name, { attempts, error: stored as unknown as Json })]),
      ]);
      throw error;
    } finally {
      stopListening?.();
    }
  }

  /**
   * Suspends the run until the circuit may let the step through: an open one's `retryAfterMs`;
   * an isolated one's end when this engine knows it, else a re-check every
   * ISOLATION_RECHECK_MS. A reset or the isolation's end wakes it sooner (`wakeParked`).
   */
  #park(name: string, bound: string | undefined, error: BrokenCircuitError | IsolatedCircuitError): void {
    const now = this.#host.clock.now();
    // A step that calls the registry itself (`registry.fetch` inside it) is parked behind the
    // dependency whose breaker refused, so that it is listed and woken with that dependency's.
    const dependency = bound ?? this.#dependencyOf(error.breaker);
    const isolated = error instanceof IsolatedCircuitError;
    let until: number;
    let message: string;
    if (!isolated) {
      until = now + Math.max(1, error.retryAfterMs);
      // Why it refused: open, or half-open with its probes taken.
      message = error.message;
    } else {
      const end = dependency === undefined ? undefined : this.#host.isolationEnd(dependency);
      const known = end !== undefined && end > now;
      until = known ? end : now + ISOLATION_RECHECK_MS;
      message = known
        ? `isolated by an operator until ${new Date(end).toISOString()}`
        : 'isolated by an operator until reset';
    }
    this.#requestSuspend(until, undefined, 'step:parked', name, {
      retryAfterMs: until - now,
      dependency: dependency ?? null,
      // Which circuit refused, and why, in words (what the dashboard shows as the reason).
      breaker: error.breaker,
      message,
      ...(isolated ? { isolated: true } : {}),
    });
  }

  /** Breakers are named after their dependency (`voice.breaker`): the longest name that prefixes it. */
  #dependencyOf(breaker: string): string | undefined {
    let found: string | undefined;
    for (const name of this.#host.registry?.names ?? []) {
      if ((breaker === name || breaker.startsWith(`${name}.`)) && name.length > (found?.length ?? -1))
        found = name;
    }
    return found;
  }

  async #child(
    name: string,
    workflow: WorkflowDefinition<unknown, unknown> | string,
    input: unknown,
    options: ChildOptions | undefined,
  ): Promise<unknown> {
    const { runId: childId } = await this.#step(`child:${name}`, { retry: false }, async () => {
      const handle = await this.#host.startChild(workflow, input, {
        ...(options?.concurrencyKey === undefined ? {} : { concurrencyKey: options.concurrencyKey }),
        priority: options?.priority === undefined ? this.run.priority : PRIORITIES[options.priority],
        // Started once however often this step is retried or replayed.
        idempotencyKey: `${this.run.id}:child:${name}`,
        parentRunId: this.run.id,
      });
      return { runId: handle.id };
    });
    const resultStep = `child-result:${name}`;
    if (this.#recorded.has(resultStep)) return this.#step(resultStep, { retry: false }, () => undefined);
    // What the child said when it ended, read before the child itself: a signal that comes after
    // this read is left for the wait below. Those read are consumed whatever comes next: one left
    // from an earlier end (the child was retried since) would make this run due again at once,
    // suspend after suspend.
    const ended = (await this.#host.store.signals(this.run.id, `child:${childId}`)).map(
      (signal): Change => ({ kind: 'consume-signal', runId: this.run.id, signalId: signal.id }),
    );
    const child = await this.#host.store.getRun(childId);
    if (child === undefined || FINAL_STATUSES.includes(child.status)) {
      this.#requested.add(resultStep);
      const t = this.#host.clock.now();
      if (child?.status === 'completed') {
        await this.#commit([this.#stepChange(resultStep, { output: child.output ?? null }, 1, t), ...ended]);
        return child.output;
      }
      const error =
        child === undefined
          ? // Pruned before this run read its result: what it did is unknown here.
            new RunFailedError(
              childId,
              'gone',
              'the child run no longer exists (pruned before its parent read its result)',
            )
          : new RunFailedError(childId, child.status, child.error?.message ?? child.status);
      await this.#commit([this.#stepChange(resultStep, { error: toStoredError(error) }, 1, t), ...ended]);
      throw error;
    }
    if (ended.length > 0) await this.#commit(ended);
    // The child signals `child:<id>` when it ends; the re-check covers a child that could not.
    this.#requestSuspend(
      this.#host.clock.now() + CHILD_RECHECK_MS,
      `child:${childId}`,
      'run:waiting',
      resultStep,
      {
        child: childId,
      },
    );
    return this.#never();
  }

  async #sleep(name: string, ms: number): Promise<void> {
    checkDuration(`sleep '${name}'`, ms, true);
    const now = this.#host.clock.now();
    const { until } = await this.#step(`sleep:${name}`, { retry: false }, () => ({
      until: now + Math.ceil(ms),
    }));
    if (this.#host.clock.now() >= until) return;
    this.#requestSuspend(until, undefined, 'run:sleeping', `sleep:${name}`, { until });
    return this.#never();
  }

  async #waitForEvent(name: string, timeoutMs: number | undefined): Promise<unknown> {
    checkDuration(`waitForEvent '${name}': timeoutMs`, timeoutMs);
    const now = this.#host.clock.now();
    const { deadline } = await this.#step(`wait:${name}`, { retry: false }, () => ({
      deadline: timeoutMs === undefined ? null : now + Math.ceil(timeoutMs),
    }));
    const stepName = `event:${name}`;
    const record = this.#recorded.get(stepName);
    if (record !== undefined) return this.#step(stepName, { retry: false }, () => undefined);
    const [signal] = await this.#host.store.signals(this.run.id, name);
    const host = this.#host;
    if (signal !== undefined) {
      this.#requested.add(stepName);
      const t = host.clock.now();
      await this.#commit([
        this.#stepChange(stepName, { output: signal.payload }, 1, t),
        { kind: 'consume-signal', runId: this.run.id, signalId: signal.id },
        ...this.#events([this.#event('run:event-received', stepName, { event: name })]),
      ]);
      return signal.payload;
    }
    if (deadline !== null && host.clock.now() >= deadline) {
      this.#requested.add(stepName);
      const error = new WaitTimeoutError(name, timeoutMs ?? 0);
      const t = host.clock.now();
      await this.#commit([
        this.#stepChange(stepName, { error: toStoredError(error) }, 1, t),
        ...this.#events([
          this.#event('step:failed', stepName, { error: toStoredError(error) as unknown as Json }),
        ]),
      ]);
      throw error;
    }
    this.#requestSuspend(deadline ?? FAR_FUTURE, name, 'run:waiting', stepName, { event: name, deadline });
    return this.#never();
  }

  #reportProgress(percent: number, message: string | undefined): void {
    if (!Number.isFinite(percent)) return;
    this.#progress = Math.max(0, Math.min(100, percent));
    // Replaying recorded steps: this progress was reported the first time round.
    if (this.#unvisited.size > 0) return;
    void this.#commit([
      this.#runChange({ progress: this.#progress }),
      ...this.#events([this.#event('run:progress', undefined, message === undefined ? null : { message })]),
    ]);
  }

  /** Asks the run to suspend once its steps in flight have settled; the earliest wake-up wins. */
  #requestSuspend(
    until: number,
    waitingFor: string | undefined,
    type: string,
    step: string,
    data: Json,
  ): void {
    const current = this.#suspend;
    // A release for a stop already asked for wins: the run is given back now, and replays to this wait later.
    if (current === undefined || (!current.shutdown && until < current.until)) {
      const dependency = (data as { dependency?: unknown } | null)?.dependency;
      this.#suspend = {
        until,
        waitingFor,
        ...(type === 'step:parked' && typeof dependency === 'string' ? { parkedOn: dependency } : {}),
      };
    }
    // A run that must end does not wait: no `run:sleeping` (or `run:waiting`) to tell.
    if (this.#ending() === undefined) void this.#commit(this.#events([this.#event(type, step, data)]));
    this.#settleWhenIdle();
  }

  /**
   * A step's promise, rejected at once with the stop's reason when the grace period ends, even
   * if the step ignores its signal (its late outcome is then dropped: the run was given back).
   */
  #unlessStopped<T>(running: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#stoppers.add(reject);
      running.then(resolve, reject).finally(() => this.#stoppers.delete(reject));
    });
  }

  #never<T>(): Promise<T> {
    return new Promise<T>(() => {});
  }

  async #suspendRun(): Promise<ExecutionEnd> {
    const s = this.#suspend!;
    this.#host.finishing();
    if (s.shutdown) {
      // Queued and available now, lease released: another worker (or the next start) takes it
      // at once instead of waiting for the lease to expire.
      await this.#commit([
        this.#runChange({
          status: 'queued',
          availableAt: this.#host.clock.now(),
          waitingFor: null,
          releaseLease: true,
          progress: this.#progress,
        }),
        ...this.#events([this.#event('run:suspended', undefined, { reason: 'shutdown' })]),
      ]).catch(() => {});
      if (this.#lost) return 'lost';
      this.#released ??= 'suspended';
      return 'suspended';
    }
    // Woken at its deadline at the latest, so that it fails on time even while it waits.
    const until = Math.min(s.until, this.run.deadlineAt ?? Number.POSITIVE_INFINITY);
    await this.#commit([
      this.#runChange({
        status: 'waiting',
        availableAt: until,
        waitingFor: s.waitingFor ?? null,
        parkedOn: s.parkedOn ?? null,
        releaseLease: true,
        progress: this.#progress,
      }),
    ]).catch(() => {});
    return this.#lost ? 'lost' : 'suspended';
  }

  async #complete(output: unknown): Promise<ExecutionEnd> {
    const stored = toJson(output, `the output of run ${this.run.id}`);
    this.#host.finishing();
    await this.#commit([
      this.#runChange({
        status: 'completed',
        output: stored,
        degraded: this.#degraded,
        progress: 100,
        releaseLease: true,
      }),
      ...this.#events([this.#event(this.#degraded ? 'run:degraded' : 'run:completed', undefined, null, 100)]),
    ]);
    await this.#notifyParent('completed');
    return 'final';
  }

  /** This run's end, told to the parent waiting for it, if any. */
  async #notifyParent(status: string): Promise<void> {
    await tellParent(this.#host.store, this.run.parentRunId, this.run.id, status, this.#host.clock.now());
  }

  /** Compensates the completed steps in reverse order, then ends the run failed, compensated or cancelled. */
  async #fail(error: unknown): Promise<ExecutionEnd> {
    if (error instanceof LeaseLost || this.#lost) return 'lost';
    const cancelled = this.cancelled;
    const reason = cancelled ? (this.#controller.signal.reason as Error) : error;
    const stored = toStoredError(reason);
    const compensable = this.#compensable.sort((a, b) => b.seq - a.seq);
    let finalStatus: 'failed' | 'compensated' | 'cancelled' = cancelled ? 'cancelled' : 'failed';
    if (compensable.length > 0 && !(error instanceof NonDeterminismError)) {
      await this.#commit([
        this.#runChange({ status: 'compensating', error: stored }),
        ...this.#events([this.#event('run:compensating', undefined, { error: stored as unknown as Json })]),
      ]);
      let allCompensated = true;
      for (const c of compensable) {
        const name = `compensate:${c.name}`;
        try {
          // Compensations are steps too: recorded, so a crash in the middle never undoes a step twice.
          this.#unvisited.delete(name);
          await this.#compensationStep(name, c);
        } catch (compensationError) {
          if (compensationError instanceof LeaseLost || this.#lost) return 'lost';
          allCompensated = false;
          break;
        }
      }
      if (!cancelled) finalStatus = allCompensated ? 'compensated' : 'failed';
    }
    this.#host.finishing();
    await this.#commit([
      this.#runChange({ status: finalStatus, error: stored, releaseLease: true, progress: this.#progress }),
      ...this.#events([this.#event(`run:${finalStatus}`, undefined, { error: stored as unknown as Json })]),
    ]);
    await this.#notifyParent(finalStatus);
    return 'final';
  }

  async #compensationStep(name: string, c: Compensable): Promise<void> {
    const record = this.#recorded.get(name);
    if (record !== undefined) {
      if (record.status === 'failed') throw fromStoredError(record.error!);
      return;
    }
    void this.#commit(this.#events([this.#event('compensation:started', c.name)]));
    // A cancellation must not stop the compensations it triggered: they run on their own signal.
    const saved = this.#controller;
    const layers = stepPolicies(c.options, isTransient, this.#host.clock, this.#host.random);
    const startedAt = this.#host.clock.now();
    let attempts = 0;
    try {
      await pipeline(...layers).execute((ctx) => {
        attempts = ctx.attempt;
        return c.compensate(c.output, {
          runId: this.run.id,
          step: name,
          idempotencyKey: `${this.run.id}:${name}`,
          attempt: ctx.attempt,
          signal: ctx.signal,
        });
      });
    } catch (error) {
      if (saved.signal.reason instanceof LeaseLost) throw saved.signal.reason;
      const stored = toStoredError(error);
      await this.#commit([
        this.#stepChange(name, { error: stored }, attempts, startedAt),
        ...this.#events([this.#event('compensation:failed', c.name, { error: stored as unknown as Json })]),
      ]);
      throw error;
    }
    await this.#commit([
      this.#stepChange(name, { output: null }, attempts, startedAt),
      ...this.#events([this.#event('compensation:completed', c.name)]),
    ]);
  }

  /** A step's outcome: completed with `output`, or failed with `error`; it ends now. */
  #stepChange(
    name: string,
    outcome: { output?: Json; error?: StoredError; fallback?: true },
    attempts: number,
    startedAt: number,
  ): Change {
    return {
      kind: 'step',
      runId: this.run.id,
      workerId: this.#host.workerId,
      step: {
        name,
        status: outcome.error === undefined || outcome.fallback ? 'completed' : 'failed',
        output: outcome.output,
        error: outcome.error,
        attempts,
        startedAt,
        finishedAt: this.#host.clock.now(),
      },
    };
  }

  #runChange(update: Extract<Change, { kind: 'run' }>['update']): Change {
    return { kind: 'run', runId: this.run.id, workerId: this.#host.workerId, update };
  }

  #event(type: string, step?: string, data: Json | undefined = null, progress = this.#progress): NewEvent {
    const context: { [key: string]: Json } = {};
    if (this.run.correlationId !== undefined) context.correlationId = this.run.correlationId;
    if (this.run.traceparent !== undefined) context.traceparent = this.run.traceparent;
    const payload =
      Object.keys(context).length === 0
        ? (data ?? undefined)
        : { ...(isObject(data) ? data : data === null ? {} : { value: data }), ...context };
    return { type, step, data: payload ?? undefined, progress, at: this.#host.clock.now() };
  }

  #events(events: NewEvent[]): Change[] {
    return events.map((event) => ({ kind: 'event', runId: this.run.id, event }));
  }

  /** Changes that go with the run's next commit. */
  #deferred: Change[] = [];
  /** `#deferred` holds a step's outcome: the next step may not begin before it is durable. */
  #outcomeDeferred = false;

  #defer(events: NewEvent[]): void {
    this.#deferred.push(...this.#events(events));
  }

  /**
   * A step's outcome, held for the run's next commit. The workflow's code between two steps is
   * deterministic and touches nothing outside, so it may go on before the outcome is durable;
   * the next step waits for it (`#outcomesDurable`). Code that awaits something else before its
   * next step has the outcome committed on its own, on the event loop's next turn.
   */
  #deferOutcome(changes: Change[]): void {
    this.#deferred.push(...changes);
    if (this.#outcomeDeferred) return;
    this.#outcomeDeferred = true;
    setImmediate(() => {
      if (this.#outcomeDeferred) this.#outcomesDurable().catch(() => {});
    });
  }

  /** The last commit that carried a held outcome, until it settles. */
  #outcomeCommit: Promise<void> | undefined;

  /**
   * Resolves once every outcome returned to the workflow is durable. A store that refused one
   * leaves this worker unable to vouch for the run: it stops here, writing nothing more, and the
   * run is taken over (replaying what is recorded) once its lease expires.
   */
  async #outcomesDurable(): Promise<void> {
    const pending = this.#outcomeDeferred ? this.#commit([]) : this.#outcomeCommit;
    if (pending === undefined) return;
    try {
      await pending;
    } catch (error) {
      if (!(error instanceof LeaseLost)) {
        const message = (error as Error)?.message ?? String(error);
        this.abort(
          new LeaseLost(
            `run ${this.run.id} stops on this worker: the store refused a step's outcome (${message})`,
          ),
        );
      }
      throw this.#controller.signal.reason;
    } finally {
      if (this.#outcomeCommit === pending) this.#outcomeCommit = undefined;
    }
  }

  /** Commits; losing the lease aborts the run on this worker. */
  #commit(changes: Change[]): Promise<void> {
    const carriesOutcome = this.#outcomeDeferred;
    this.#outcomeDeferred = false;
    const all = this.#deferred.length === 0 ? changes : [...this.#deferred.splice(0), ...changes];
    // One after the other: a store may run two group commits at once, and this run's changes
    // (its timeline above all) must land in the order they were made.
    const next = this.#committed.then(async () => {
      if (this.#lost) throw new LeaseLost();
      if (all.length === 0) return;
      const result = await this.#host.store.commit(all, this.#host.clock.now());
      if (result.lostLease.includes(this.run.id)) {
        const lost = new LeaseLost(`run ${this.run.id} was taken over by another worker`);
        this.abort(lost);
        throw lost;
      }
      this.#announce(all, result);
    });
    this.#committed = next.catch(() => {});
    if (carriesOutcome) this.#outcomeCommit = next;
    return next;
  }

  /** The last commit of this run, settled either way: the next one waits for it. */
  #committed: Promise<void> = Promise.resolve();

  /** Tells the engine's listeners what this commit made durable: a new status, recorded steps. */
  #announce(changes: readonly Change[], result: CommitResult): void {
    const events = this.#host.events;
    for (const change of changes) {
      if (change.kind === 'run') {
        const status = change.update.status;
        if (status === undefined || status === this.#status) continue;
        this.#status = status;
        if (FINAL_STATUSES.includes(status))
          this.#host.ended({ status, output: change.update.output, error: change.update.error });
        if (events.listening) {
          events.emit({
            type: 'run:status',
            runId: this.run.id,
            workflow: this.run.workflow,
            status,
            at: this.#host.clock.now(),
          });
        }
      } else if (change.kind === 'step' && events.listening) {
        const { step } = change;
        if (result.duplicateSteps.some((d) => d.name === step.name)) continue;
        events.emit({
          type: 'step:finished',
          runId: this.run.id,
          workflow: this.run.workflow,
          step: step.name,
          status: step.status,
          attempts: step.attempts,
          durationMs: step.finishedAt - step.startedAt,
          at: this.#host.clock.now(),
        });
      }
    }
  }
}

/** A step still running after this long has its start committed on its own (for live timelines). */
const START_FLUSH_MS = 50;

/** How often a parent looks at a child that has not signalled its end (a crash between the two). */
const CHILD_RECHECK_MS = 60_000;

/** Far enough to mean "until an event comes", small enough for every database's BIGINT. */
const FAR_FUTURE = 8_640_000_000_000_000;

/**
 * An isolated circuit whose end this engine does not know (isolated until reset, or on another
 * process) is tried again this often. A reset on this server wakes its parked runs at once, so
 * the re-check only bounds the wait where no wake-up can come: an isolation lifted on another
 * node, or by a restart that forgot it. Thirty seconds keeps that wait short for a person
 * watching, and costs each parked run two small writes a minute while the isolation lasts.
 */
const ISOLATION_RECHECK_MS = 30_000;

function isObject(value: unknown): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
