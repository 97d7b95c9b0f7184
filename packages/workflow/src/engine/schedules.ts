// Cron schedules: each tick starts one run, however many workers run the same schedule, because
// the tick is part of the run's idempotency key and the store refuses a second run with it.
import { type Clock, InvalidOptionsError, systemClock, type TimerHandle } from '@bulwark/core';
import { type CronExpression, CronExpressionParser } from 'cron-parser';
import { storeOf, type TickStartOptions, type WorkflowEngine } from './engine.ts';
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

/** Catch-up is bounded by tick count: walking back costs a parser step a tick, however old the last one recorded. */
const MAX_CATCH_UP_TICKS = 1_000;
/**
 * The largest clock change of any time zone (Antarctica/Troll's two hours; the others move an
 * hour or less): how far back a walk of ticks looks for one it must not start inside.
 */
const LONGEST_CLOCK_CHANGE_MS = 2 * 60 * 60_000;
const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const SCHEDULE_KEYS = ['name', 'cron', 'timezone', 'workflow', 'input', 'priority', 'catchUp'];

interface Entry {
  readonly name: string;
  readonly cron: string;
  readonly timezone: string;
  /** Names the time zone's UTC offset at an instant, to find its clock changes. */
  readonly zone: Intl.DateTimeFormat;
  readonly workflow: WorkflowDefinition<any, unknown> | string;
  readonly input: unknown;
  readonly priority: Priority;
  /** 0 for 'none', 1 for 'latest'. */
  readonly catchUpTicks: number;
  /** While started, the walk of ticks at the one the timer waits for. */
  ticks: TickWalk | undefined;
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
    const at = (entry.ticks ?? ticksAfter(entry, this.#clock.now())).tick;
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
    for (const entry of this.#schedules.values()) entry.ticks = undefined;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Enqueues the missed ticks the policy allows, oldest first, then waits for the next tick. */
  async #begin(entry: Entry, now: number): Promise<void> {
    const { past, walk } = latestTicks(entry, now, entry.catchUpTicks);
    // Set before any wait: start() arms the timer for it.
    entry.ticks = walk;
    await this.#fireAll(entry, past);
  }

  /**
   * Starts the ticks later than the schedule's last recorded one, oldest first. A tick at or
   * before it had its run, which retention may have pruned since, taking the idempotency key
   * that would have stopped a second run.
   */
  async #fireAll(entry: Entry, ticks: readonly number[]): Promise<void> {
    if (ticks.length === 0) return;
    let last: number | undefined;
    try {
      last = await storeOf(this.#engine).lastTick(entry.name);
    } catch {
      // The store is unreachable: each tick's start reports it, or its key stops a second run.
    }
    for (const tick of ticks) if (last === undefined || tick > last) await this.#fire(entry, tick);
  }

  /** One timer for the earliest next tick across schedules; none while stopped or empty. */
  #arm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#running) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const entry of this.#schedules.values()) {
      const at = entry.ticks?.tick;
      if (at !== undefined && at < earliest) earliest = at;
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
      const due = entry.ticks?.tick;
      // A timer may fire a little early; such a schedule simply waits on the next arming.
      if (due === undefined || due > now) continue;
      const ticks = dueTicks(entry, now);
      this.#track(this.#fireAll(entry, ticks));
    }
    this.#arm();
  }

  async #fire(entry: Entry, tick: number): Promise<void> {
    const at = new Date(tick);
    try {
      const input =
        typeof entry.input === 'function' ? (entry.input as (tick: Date) => unknown)(at) : entry.input;
      // Every worker enqueues every tick under the same key: the store keeps the first, and
      // the others get `created: false`. The store records the tick with the run.
      const options: TickStartOptions = {
        priority: entry.priority,
        idempotencyKey: `schedule:${entry.name}:${at.toISOString()}`,
        scheduleTick: { schedule: entry.name, at: tick },
      };
      await this.#engine.start(entry.workflow, input ?? null, options);
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
    const entry = scheduleEntry(schedule, this.#clock.now());
    if (this.#schedules.has(entry.name))
      invalid(`schedules.${entry.name}`, 'a schedule with this name was added already');
    return entry;
  }
}

/**
 * Checks a schedule as `WorkflowScheduler.add` does, without a scheduler: throws
 * `InvalidOptionsError` naming the field (`schedules.<name>.cron`). For configuration tools, which
 * can then say which line of a file is wrong before anything starts.
 */
export function checkSchedule<I>(schedule: Schedule<I>): void {
  scheduleEntry(schedule as Schedule<unknown>, Date.now());
}

/** A schedule, validated (the cron expression parsed at `now`) and normalised once. */
function scheduleEntry(schedule: Schedule<unknown>, now: number): Entry {
  if (typeof schedule !== 'object' || schedule === null) invalid('schedules', 'expected a schedule object');
  const name = schedule.name as unknown;
  if (typeof name !== 'string' || name.length === 0) invalid('schedules.name', 'expected a non-empty string');
  const path = `schedules.${name}`;
  for (const key of Object.keys(schedule)) {
    if (!SCHEDULE_KEYS.includes(key)) invalid(`${path}.${key}`, 'unknown option');
  }
  const timezone = schedule.timezone ?? 'UTC';
  let zone: Intl.DateTimeFormat;
  try {
    if (typeof timezone !== 'string') throw new TypeError();
    zone = new Intl.DateTimeFormat('en-US', { timeZone: timezone, timeZoneName: 'longOffset' });
  } catch {
    invalid(`${path}.timezone`, `expected an IANA time zone such as 'Europe/Paris', got ${show(timezone)}`);
  }
  const cron = schedule.cron as unknown;
  if (typeof cron !== 'string' || cron.trim().length === 0) {
    invalid(`${path}.cron`, `expected a cron expression, got ${show(cron)}`);
  }
  try {
    CronExpressionParser.parse(cron, { tz: timezone, currentDate: now }).next();
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
    zone,
    workflow: workflow as Entry['workflow'],
    input: schedule.input,
    priority,
    catchUpTicks: catchUpTicks(path, schedule.catchUp),
    ticks: undefined,
  };
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

/**
 * A schedule's ticks in order, as cron-parser's `next()` gives them: the one way ticks are found,
 * so that catch-up, live firing and every worker give a tick the same instant, and its run the same
 * key. `next()` gives one instant per local time: a time in the hour spring-forward skips falls in
 * the hour after the gap (02:30 at 03:30), a time fall-back repeats only at its first instant
 * (unless the hour field is `*`: then each real hour ticks).
 * `prev()` does not agree (it skips the moved tick and gives a repeated time at both instants),
 * so it is never the source of a tick.
 */
class TickWalk {
  /** The walk gives the ticks after this instant. */
  readonly from: number;
  /** The tick the walk is at; undefined once the expression has no more. */
  tick: number | undefined;
  readonly #expression: CronExpression;

  /** Starts at or shortly before `after`: the first ticks may be at or before it. */
  constructor(entry: Entry, after: number) {
    this.from = walkStart(entry, after);
    this.#expression = CronExpressionParser.parse(entry.cron, { tz: entry.timezone, currentDate: this.from });
    this.advance();
  }

  advance(): void {
    try {
      this.tick = this.#expression.next().getTime();
    } catch {
      // No later tick (the expression's years are over, or the parser gave up searching).
      this.tick = undefined;
    }
  }
}

/** The walk at the first tick strictly after `at`. */
function ticksAfter(entry: Entry, at: number): TickWalk {
  const walk = new TickWalk(entry, at);
  while (walk.tick !== undefined && walk.tick <= at) walk.advance();
  return walk;
}

/**
 * Up to `count` of the most recent ticks at or before `now`, oldest first, and the walk at the first
 * tick after `now`. `prev()` only finds where to start walking forward: it steps back over as many
 * ticks as are still missing, and the walk from there counts what it finds; it falls short only
 * where `prev()` gave a fall-back tick twice, and steps back again for the rest.
 */
function latestTicks(entry: Entry, now: number, count: number): { past: number[]; walk: TickWalk } {
  let past: number[] = [];
  let first: TickWalk | undefined;
  if (count > 0) {
    const back = stepsBack(entry, now);
    // Ticks after `until` were found by an earlier walk.
    let until = now;
    let exhausted = false;
    while (past.length < count && !exhausted) {
      let anchor: number | undefined;
      for (let missing = count - past.length; missing > 0 && !exhausted; missing--) {
        const tick = back();
        if (tick === undefined) exhausted = true;
        else anchor = tick;
      }
      // No earlier tick: catch up what is found.
      if (anchor === undefined) break;
      const walk = new TickWalk(entry, anchor - 1);
      const found: number[] = [];
      for (; walk.tick !== undefined && walk.tick <= until; walk.advance()) found.push(walk.tick);
      first ??= walk;
      past = found.concat(past);
      // A walk moved back before a clock change can start later than the one before it.
      until = Math.min(until, walk.from);
      // The walk stopped short of `until`: an earlier start would stop at the same place.
      if (walk.tick === undefined) break;
    }
  }
  return { past: past.slice(-count), walk: first ?? ticksAfter(entry, now) };
}

/**
 * Steps back from `now` over one tick per call with `prev()`, undefined once it finds no earlier
 * one. `prev()` can give up for a whole day after a clock change that skips midnight (America/
 * Santiago's `0 0 * * *`); asked again from a day earlier it goes on, and the walk forward from
 * there finds the ticks it stepped over.
 */
function stepsBack(entry: Entry, now: number): () => number | undefined {
  const parse = (from: number) =>
    CronExpressionParser.parse(entry.cron, { tz: entry.timezone, currentDate: from });
  // `prev()` is strictly before its date: one ms later includes a tick at `now` itself.
  let before = now + 1;
  let expression = parse(before);
  let retried = false;
  return () => {
    for (;;) {
      try {
        before = expression.prev().getTime();
        retried = false;
        return before;
      } catch {
        // Given up from a day earlier too: there is no earlier tick the parser can find.
        if (retried) return undefined;
        retried = true;
        expression = parse(before - DAY_MS);
      }
    }
  };
}

/**
 * The ticks due at `now`, moving the schedule's walk past them. On time that is one tick; late by
 * more (a suspended process), the latest due tick starts, and the ones before it are missed ticks,
 * caught up as the policy allows.
 */
function dueTicks(entry: Entry, now: number): number[] {
  const walk = entry.ticks!;
  const limit = Math.max(1, entry.catchUpTicks);
  const due: number[] = [];
  for (; walk.tick !== undefined && walk.tick <= now; walk.advance()) {
    if (due.length === limit) {
      // More are due than the policy starts: looking back from now costs about `limit` steps,
      // walking on costs one per tick slept through (a minutely schedule, a day: 1,440).
      const latest = latestTicks(entry, now, limit);
      entry.ticks = latest.walk;
      return latest.past;
    }
    due.push(walk.tick);
  }
  return due;
}

/**
 * Where to start `next()` to find the ticks after `at`. Started after a clock change, within the
 * hour it skipped or repeated, `next()` strays from a walk started before the change: it skips the
 * tick spring-forward moved into that hour, and gives a time fall-back repeated again (Berlin's
 * 02:30 at 01:30Z, after 00:30Z). A scheduler started then would miss the one or start the other
 * twice, so a walk starts before a change that recent, found to within a minute by halving.
 */
function walkStart(entry: Entry, at: number): number {
  // The parser starts at the next whole second.
  const start = Math.ceil(at / 1000) * 1000;
  const offset = utcOffset(entry.zone, start);
  let before = start - LONGEST_CLOCK_CHANGE_MS;
  if (utcOffset(entry.zone, before) === offset) return at;
  let after = start;
  while (after - before > MINUTE_MS) {
    const middle = before + Math.floor((after - before) / 2);
    if (utcOffset(entry.zone, middle) === offset) after = middle;
    else before = middle;
  }
  // Less than a minute before the change: a minute more keeps the parser's rounding clear of it.
  return before - MINUTE_MS;
}

/** The zone's UTC offset at `at`, as Intl names it (`GMT+02:00`). */
function utcOffset(zone: Intl.DateTimeFormat, at: number): string | undefined {
  return zone.formatToParts(at).find((part) => part.type === 'timeZoneName')?.value;
}

function invalid(path: string, message: string): never {
  throw new InvalidOptionsError(path, message);
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
