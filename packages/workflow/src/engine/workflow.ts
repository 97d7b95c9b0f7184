// What a workflow is: a name, a version and an async function of a context and an input.
import type { RetrySettings } from '@bulwark/core';
import type { Json } from '../store/types.ts';

export const PRIORITIES = { low: 0, normal: 1, high: 2, urgent: 3, critical: 4 } as const;
export type Priority = keyof typeof PRIORITIES;

export interface StepOptions<T> {
  /** A dependency of the engine's registry: its pipeline protects each attempt of the step. */
  dependency?: string;
  /** The operation named in the dependency's statistics. @default the step's name */
  operation?: string;
  /**
   * Retries of the step itself, on top of any the dependency's pipeline makes. Transient
   * errors are retried; permanent ones fail at once. @default { maxAttempts: 3, baseMs: 1_000, maxMs: 60_000, jitter: 0.2 }
   */
  retry?: RetrySettings | false;
  /** Limit on each attempt. @default none */
  timeoutMs?: number;
  /** Undoes the step, given its output, when the run fails later; retried per `retry`. */
  compensate?: (output: T, context: StepContext) => unknown | Promise<unknown>;
  /**
   * A substitute for the step's output when it fails for good (not when it is cancelled). The
   * substitute is recorded as the step's output and the run is marked `degraded`; a step that
   * ended on its fallback is not compensated (what it stands for did not happen).
   */
  fallback?: (error: unknown) => T | Promise<T>;
  /**
   * What the step does when its dependency's circuit refuses it (open, half-open with its probes
   * taken, or isolated by an operator). `'park'`: the run waits, no attempt spent, and tries again
   * when the circuit may let it through. `'fail'`: the refusal is the step's failure like any
   * other (its `fallback` answers, the run is `degraded`), except that the step's own `retry` does
   * not retry it: the circuit stays shut far longer than a retry's backoff, so each retry would
   * be refused at once too, only later. @default 'park'
   */
  whenCircuitOpen?: 'park' | 'fail';
}

/**
 * Checks the options of a step once, when the step is first called (not on a replay of its
 * record): a bad value names the step and the option.
 */
export function checkStepOptions(step: string, options: StepOptions<unknown>): void {
  const choice = options.whenCircuitOpen;
  if (choice !== undefined && choice !== 'park' && choice !== 'fail') {
    throw new TypeError(
      `step '${step}': whenCircuitOpen must be 'park' or 'fail', got ${JSON.stringify(choice) ?? String(choice)}`,
    );
  }
}

/** A value as an error message shows it: JSON where it has one, else its type. */
export function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}

/**
 * The longest duration: as far as a `Date` reaches. The time it ends stays a safe integer, which
 * the stores keep as an integer column (a fraction of a ms is rounded up where it is added).
 */
const MAX_DURATION_MS = 8.64e15;

/** A duration in ms (when given, unless `required`): a number from 0 to MAX_DURATION_MS. */
export function checkDuration(path: string, value: unknown, required = false): void {
  if (value === undefined && !required) return;
  if (typeof value !== 'number' || !(value >= 0 && value <= MAX_DURATION_MS))
    throw new TypeError(
      `${path}: expected a number of ms from 0 to ${MAX_DURATION_MS}, got ${describe(value)}`,
    );
}

/** Options of a child workflow run. */
export interface ChildOptions {
  /** @default the parent's priority */
  priority?: Priority;
  concurrencyKey?: string;
}

/** What a step's function receives. */
export interface StepContext {
  readonly runId: string;
  readonly step: string;
  /** Stable across attempts and replays: pass it to the dependency so a repeat is harmless. */
  readonly idempotencyKey: string;
  readonly attempt: number;
  /** Aborts on the step's timeout, on cancellation, and when this worker loses the run. */
  readonly signal: AbortSignal;
}

export interface WorkflowContext<I> {
  readonly runId: string;
  readonly input: I;
  readonly workflow: string;
  readonly version: string;
  /** Aborts when the run is cancelled or this worker loses it. */
  readonly signal: AbortSignal;
  /** Runs `fn` once per run (at least once), recording its outcome; on replay, returns the record. */
  step<T>(name: string, fn: (context: StepContext) => T | Promise<T>): Promise<T>;
  step<T>(name: string, options: StepOptions<T>, fn: (context: StepContext) => T | Promise<T>): Promise<T>;
  /** Sleeps durably: the run releases its worker and is taken up again after `ms`. */
  sleep(name: string, ms: number): Promise<void>;
  /** Waits durably for `engine.sendEvent(runId, name, payload)`; rejects with WaitTimeoutError after `timeoutMs`. */
  waitForEvent<T = Json>(name: string, options?: { timeoutMs?: number }): Promise<T>;
  /**
   * Starts a child workflow (once: the start is a recorded step) and waits durably for its
   * result; a child that fails makes this reject with RunFailedError.
   */
  child<CI, CO>(
    name: string,
    workflow: WorkflowDefinition<CI, CO> | string,
    input: CI,
    options?: ChildOptions,
  ): Promise<CO>;
  /** Reports progress (0 to 100) on the timeline. */
  progress(percent: number, message?: string): void;
}

export interface WorkflowDefinition<I = unknown, O = unknown> {
  readonly name: string;
  readonly version: string;
  /** What the workflow does, for people and UIs. */
  readonly description: string | undefined;
  /** The step names the workflow declares, in order, for UIs (the engine does not enforce them). */
  readonly steps: readonly string[] | undefined;
  /** An input a run can start with, for people and UIs (a form prefilled with it). */
  readonly example: Json | undefined;
  readonly run: (context: WorkflowContext<I>, input: I) => Promise<O>;
}

export interface WorkflowOptions {
  name: string;
  /** @default '1' */
  version?: string;
  description?: string;
  /** Non-empty, unique step names. */
  steps?: readonly string[];
  /** An input a run can start with, shown by UIs; a JSON value, checked here once. */
  example?: Json;
}

/** Defines a workflow. Its code must call the same steps in the same order on every replay. */
export function defineWorkflow<I, O>(
  options: WorkflowOptions,
  run: (context: WorkflowContext<I>, input: I) => Promise<O>,
): WorkflowDefinition<I, O> {
  if (typeof options?.name !== 'string' || options.name.length === 0) {
    throw new TypeError('defineWorkflow: name must be a non-empty string');
  }
  const where = `defineWorkflow(${options.name})`;
  if (typeof run !== 'function') throw new TypeError(`${where}: expected a function`);
  if (options.version !== undefined && (typeof options.version !== 'string' || options.version.length === 0))
    throw new TypeError(`${where}: version must be a non-empty string`);
  if (options.description !== undefined && typeof options.description !== 'string')
    throw new TypeError(`${where}: description must be a string`);
  return Object.freeze({
    name: options.name,
    version: options.version ?? '1',
    description: options.description,
    steps: options.steps === undefined ? undefined : stepNames(where, options.steps),
    example: options.example === undefined ? undefined : jsonCopy(where, options.example),
    run,
  });
}

function stepNames(where: string, steps: readonly string[]): readonly string[] {
  if (!Array.isArray(steps)) throw new TypeError(`${where}: steps must be an array of step names`);
  const seen = new Set<string>();
  steps.forEach((name, i) => {
    if (typeof name !== 'string' || name.length === 0)
      throw new TypeError(`${where}: steps[${i}] must be a non-empty string`);
    if (seen.has(name)) throw new TypeError(`${where}: steps[${i}] '${name}' is listed twice`);
    seen.add(name);
  });
  return Object.freeze([...steps]);
}

/**
 * A frozen deep copy of `example`, refused unless it is plain JSON: `JSON.stringify` would drop a
 * function or turn a Date into a string quietly, and a UI would then offer a different input.
 */
function jsonCopy(where: string, example: unknown): Json {
  const seen = new Set<object>();
  const visit = (value: unknown, path: string): Json => {
    const fail = (what: string): never => {
      throw new TypeError(`${where}: ${path} must be a JSON value, got ${what}`);
    };
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
    if (typeof value === 'number') return Number.isFinite(value) ? value : fail(String(value));
    if (typeof value !== 'object') return fail(typeof value);
    if (seen.has(value)) return fail('a circular reference');
    seen.add(value);
    let copy: Json;
    if (Array.isArray(value)) {
      copy = Object.freeze(value.map((item, i) => visit(item, `${path}[${i}]`))) as Json[];
    } else {
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null)
        fail(`a ${value.constructor?.name ?? 'non-plain'} object`);
      const out: { [key: string]: Json } = {};
      for (const [key, item] of Object.entries(value)) out[key] = visit(item, `${path}.${key}`);
      copy = Object.freeze(out);
    }
    seen.delete(value);
    return copy;
  };
  return visit(example, 'example');
}
