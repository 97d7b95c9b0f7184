// Cron schedules: each tick starts one run, however many workers run the same schedule, because
// the tick is part of the run's idempotency key and the store refuses a second run with it.
import { type Clock, InvalidOptionsError, systemClock, type TimerHandle } from '@bulwark/core';
import { CronExpressionParser } from 'cron-parser';
import type { WorkflowEngine } from './engine.ts';
import { PRIORITIES, type Priority, type WorkflowDefinition } from './workflow.ts';

/**
 * What to do with ticks that passed while no scheduler ran: `'none'` skips them, `'latest'` starts
 * the most recent one, `{ maxTicks }` starts up to that many of the most recent ones (oldest first).
 */
export type CatchUpPolicy = 'none' | 'latest' | { readonly maxTicks: number };

export interface Schedule<I = unknown> {
  /** Names the schedule in its runs' idempotency keys (`schedule:<name>:<tick>`): keep it stable across deploys. */
  name: string;
  /** Five fields (minute hour day-of-month month day-of-week), six with seconds first, or a macro such as `@daily`. */
  cron: string;
  /** The IANA time zone the expression is read in, daylight saving included. @default 'UTC' */
  timezone?: string;
  /** What each tick starts: a definition, or the name of a registered workflow (its latest version). */
  workflow: WorkflowDefinition<I, unknown> | string;
  /** The run's input, or a function of the tick that returns it. @default null */
  input?: I | ((tick: Date) => I);
  /** @default 'normal' */
  priority?: Priority;
  /** Ticks missed while no scheduler ran, started by `start()`. @default 'latest' */
  catchUp?: CatchUpPolicy;
}

export interface WorkflowSchedulerOptions {
  /** Give it the engine's clock. @default systemClock */
  clock?: Clock;
}

/** Catch-up is bounded by tick count: the store cannot say which tick ran last, so the window cannot be "since then". */
const MAX_CATCH_UP_TICKS = 1_000;
const SCHEDULE_KEYS = ['name', 'cron', 'timezone', 'workflow', 'input', 'priority', 'catchUp'];

interface Entry {
  readonly name: string;
  readonly cron: string;
  readonly timezone: string;
  readonly workflow: WorkflowDefinition<any, unknown> | string;
  readonly input: unknown;
  readonly priority: Priority;
  /** 0 for 'none', 1 for 'latest'. */
  readonly catchUpTicks: number;
  /** The tick the timer waits for, while started. */
  nextAt: number | undefined;
}

export class WorkflowScheduler {
  readonly #engine: WorkflowEngine;
  readonly #clock: Clock;
  readonly #schedules = new Map<string, Entry>();
  readonly #inFlight = new Set<Promise<void>>();
  #running = false;
  #timer: TimerHandle | undefined;

  constructor(engine: WorkflowEngine, options: WorkflowSchedulerOptions = {}) {
    if (typeof engine?.start !== 'function') {
      throw new InvalidOptionsError('scheduler.engine', 'expected a WorkflowEngine');
    }
    this.#engine = engine;
    const clock = options?.clock;
    if (clock !== undefined && (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function')) {
      throw new InvalidOptionsError('scheduler.clock', 'expected a Clock');
    }
    this.#clock = clock ?? systemClock;
  }

  /** Adds a schedule; while started, its missed ticks are caught up and its ticks start at once. */
  add<I>(schedule: Schedule<I>): this {
    const entry = this.#validate(schedule as Schedule<unknown>);
    this.#schedules.set(entry.name, entry);
    if (this.#running) {
      this.#track(this.#begin(entry, this.#clock.now()));
      this.#arm();
    }
    return this;
  }

  /** Removes a schedule; false if there was none by that name. Runs already started are not touched. */
  remove(name: string): boolean {
    const removed = this.#schedules.delete(name);
    if (removed && this.#running) this.#arm();
    return removed;
  }

  /** The schedule's next tick, or undefined if there is no such schedule. */
  next(name: string): Date | undefined {
    const entry = this.#schedules.get(name);
    if (entry === undefined) return undefined;
    const at = entry.nextAt ?? nextTick(entry, this.#clock.now());
    return at === undefined ? undefined : new Date(at);
  }

  /**
   * Starts firing ticks, after catching up the ticks each schedule's `catchUp` allows. Resolves
   * once the catch-up runs are enqueued (a failed enqueue is a warning, not a rejection).
   */
  start(): Promise<void> {
    if (this.#running) return Promise.resolve();
    this.#running = true;
    const now = this.#clock.now();
    const begun = [...this.#schedules.values()].map((entry) => this.#track(this.#begin(entry, now)));
    this.#arm();
    return Promise.all(begun).then(() => undefined);
  }

  /** Stops firing ticks (no timer is left) and waits for the enqueues in progress. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const entry of this.#schedules.values()) entry.nextAt = undefined;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Enqueues the missed ticks the policy allows, oldest first, then waits for the next tick. */
  async #begin(entry: Entry, now: number): Promise<void> {
    entry.nextAt = nextTick(entry, now);
    for (const tick of pastTicks(entry, now, entry.catchUpTicks)) await this.#fire(entry, tick);
  }

  /** One timer for the earliest next tick across schedules; none while stopped or empty. */
  #arm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#running) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const entry of this.#schedules.values()) {
      if (entry.nextAt !== undefined && entry.nextAt < earliest) earliest = entry.nextAt;
    }
    if (earliest === Number.POSITIVE_INFINITY) return;
    this.#timer = this.#clock.setTimeout(() => this.#onTimer(), Math.max(0, earliest - this.#clock.now()));
    this.#clock.keepAlive?.(this.#timer, false);
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (!this.#running) return;
    const now = this.#clock.now();
    for (const entry of this.#schedules.values()) {
      const due = entry.nextAt;
      // A timer may fire a little early; such a schedule simply waits on the next arming.
      if (due === undefined || due > now) continue;
      // Late by more than one tick (a suspended process): the latest due tick starts, and the
      // ones before it are missed ticks, caught up as the policy allows.
      const ticks = pastTicks(entry, now, Math.max(1, entry.catchUpTicks)).filter((t) => t >= due);
      entry.nextAt = nextTick(entry, now);
      this.#track(
        (async () => {
          for (const tick of ticks) await this.#fire(entry, tick);
        })(),
      );
    }
    this.#arm();
  }

  async #fire(entry: Entry, tick: number): Promise<void> {
    const at = new Date(tick);
    try {
      const input =
        typeof entry.input === 'function' ? (entry.input as (tick: Date) => unknown)(at) : entry.input;
      // Every worker enqueues every tick under the same key: the store keeps the first, and
      // the others get `created: false`.
      await this.#engine.start(entry.workflow, input ?? null, {
        priority: entry.priority,
        idempotencyKey: `schedule:${entry.name}:${at.toISOString()}`,
      });
    } catch (error) {
      process.emitWarning(
        `Bulwark workflow scheduler: schedule '${entry.name}' could not start its tick ${at.toISOString()}: ${(error as Error)?.message ?? String(error)}`,
        'BulwarkWorkflowWarning',
      );
    }
  }

  #track(work: Promise<void>): Promise<void> {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
    return work;
  }

  #validate(schedule: Schedule<unknown>): Entry {
    if (typeof schedule !== 'object' || schedule === null) invalid('schedules', 'expected a schedule object');
    const name = schedule.name as unknown;
    if (typeof name !== 'string' || name.length === 0)
      invalid('schedules.name', 'expected a non-empty string');
    const path = `schedules.${name}`;
    if (this.#schedules.has(name)) invalid(path, 'a schedule with this name was added already');
    for (const key of Object.keys(schedule)) {
      if (!SCHEDULE_KEYS.includes(key)) invalid(`${path}.${key}`, 'unknown option');
    }
    const timezone = schedule.timezone ?? 'UTC';
    try {
      if (typeof timezone !== 'string') throw new TypeError();
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      invalid(`${path}.timezone`, `expected an IANA time zone such as 'Europe/Paris', got ${show(timezone)}`);
    }
    const cron = schedule.cron as unknown;
    if (typeof cron !== 'string' || cron.trim().length === 0) {
      invalid(`${path}.cron`, `expected a cron expression, got ${show(cron)}`);
    }
    try {
      CronExpressionParser.parse(cron, { tz: timezone, currentDate: this.#clock.now() }).next();
    } catch (error) {
      // Also an expression that never matches (`0 0 30 2 *`): the parser finds no next tick.
      invalid(`${path}.cron`, `${show(cron)} is not a usable cron expression (${(error as Error).message})`);
    }
    const workflow = schedule.workflow as unknown;
    const isDefinition =
      typeof workflow === 'object' &&
      workflow !== null &&
      typeof (workflow as WorkflowDefinition).name === 'string' &&
      typeof (workflow as WorkflowDefinition).run === 'function';
    if (!isDefinition && (typeof workflow !== 'string' || workflow.length === 0)) {
      invalid(`${path}.workflow`, `expected a workflow definition or a workflow name, got ${show(workflow)}`);
    }
    const priority = schedule.priority ?? 'normal';
    if (!Object.hasOwn(PRIORITIES, priority)) {
      invalid(
        `${path}.priority`,
        `expected one of ${Object.keys(PRIORITIES).join(', ')}, got ${show(priority)}`,
      );
    }
    return {
      name,
      cron,
      timezone,
      workflow: workflow as Entry['workflow'],
      input: schedule.input,
      priority,
      catchUpTicks: catchUpTicks(path, schedule.catchUp),
      nextAt: undefined,
    };
  }
}

function catchUpTicks(path: string, policy: unknown): number {
  if (policy === undefined || policy === 'latest') return 1;
  if (policy === 'none') return 0;
  if (typeof policy === 'object' && policy !== null && !Array.isArray(policy)) {
    for (const key of Object.keys(policy)) {
      if (key !== 'maxTicks') invalid(`${path}.catchUp.${key}`, 'unknown option');
    }
    const max = (policy as { maxTicks?: unknown }).maxTicks;
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > MAX_CATCH_UP_TICKS) {
      invalid(
        `${path}.catchUp.maxTicks`,
        `expected a whole number from 1 to ${MAX_CATCH_UP_TICKS}, got ${show(max)}`,
      );
    }
    return max;
  }
  return invalid(`${path}.catchUp`, `expected 'none', 'latest' or { maxTicks }, got ${show(policy)}`);
}

/** The first tick strictly after `now`, or undefined if the expression has no more. */
function nextTick(entry: Entry, now: number): number | undefined {
  try {
    return CronExpressionParser.parse(entry.cron, { tz: entry.timezone, currentDate: now }).next().getTime();
  } catch {
    return undefined;
  }
}

/** Up to `count` of the most recent ticks at or before `now`, oldest first. */
function pastTicks(entry: Entry, now: number, count: number): number[] {
  if (count === 0) return [];
  const ticks: number[] = [];
  try {
    // `prev()` is strictly before its date: one ms later includes a tick at `now` itself.
    const expression = CronExpressionParser.parse(entry.cron, { tz: entry.timezone, currentDate: now + 1 });
    while (ticks.length < count) ticks.push(expression.prev().getTime());
  } catch {
    // No earlier tick (the parser gives up far in the past): catch up what was found.
  }
  return ticks.reverse();
}

function invalid(path: string, message: string): never {
  throw new InvalidOptionsError(path, message);
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
