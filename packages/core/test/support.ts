// Helpers shared by the tests of @bulwark/core. Not a test file itself (node:test runs only
// *.test.ts); each helper says in one line why the tests need it.
import assert from 'node:assert/strict';
import { type ExecFileOptions, execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BulwarkError,
  type BulwarkEvent,
  type CircuitBreakerPolicy,
  ErrorCodes,
  type EventStream,
  type ExecutionContext,
  InvalidOptionsError,
  type VirtualClock,
} from '@bulwark/core';

// ---------------------------------------------------------------------------------------------
// Promises the test controls or watches

/** A promise settled by hand, so an operation can finish exactly when the test says (and not before). */
export interface Deferred<T = unknown> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

/** Makes a Deferred: the test plays an operation that ignores its signal and ends when told. */
export function deferred<T = unknown>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** What a tracked promise has done so far: read it while the (virtual) clock is stopped. */
export interface Tracked<T> {
  readonly promise: Promise<T>;
  status: 'pending' | 'fulfilled' | 'rejected';
  value?: T;
  error?: unknown;
}

/** Follows a promise without awaiting it, so a test can see it still pending; no rejection goes unhandled. */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const state: Tracked<T> = { promise, status: 'pending' };
  promise.then(
    (value) => {
      state.status = 'fulfilled';
      state.value = value;
    },
    (error: unknown) => {
      state.status = 'rejected';
      state.error = error;
    },
  );
  return state;
}

/** Tracks a call and runs the virtual clock until no timer is left: for calls that play out on the clock. */
export async function runToEnd<T>(clock: VirtualClock, promise: Promise<T>): Promise<Tracked<T>> {
  const call = track(promise);
  await clock.runAll();
  return call;
}

// ---------------------------------------------------------------------------------------------
// Operations

/** An operation that never settles and ignores its signal: the worst case a timeout must survive. */
export const hang = (): Promise<never> => new Promise<never>(() => {});

/** An operation that honours its signal: on abort it rejects with the abort reason (or with `error()`). */
export function untilAborted(error?: () => unknown): (context: ExecutionContext) => Promise<never> {
  return ({ signal }) =>
    new Promise<never>((_, reject) => {
      signal.addEventListener('abort', () => reject(error === undefined ? signal.reason : error()));
    });
}

// ---------------------------------------------------------------------------------------------
// Failures, as the default classifier sees them

/** An error with an HTTP status, the field an HTTP client sets and the classifier reads first. */
export function withStatus(status: number, message = `HTTP ${status}`): Error & { status: number } {
  return Object.assign(new Error(message), { status });
}

/** An error with a Node network code (ECONNRESET …), as a socket failure reports it. */
export function withCode(code: string, message = code): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

/** An HTTP 503: transient by default, so a retry retries it and a breaker records it. */
export const transient = (): Error => withStatus(503, 'upstream unavailable');

/** An HTTP 404: permanent by default, so a retry rethrows it and a breaker ignores it. */
export const permanent = (): Error => withStatus(404, 'not found');

/** A connection reset (ECONNRESET): transient by its network code alone, with no HTTP status to read. */
export const connectionReset = (message = 'connection reset'): Error => withCode('ECONNRESET', message);

// ---------------------------------------------------------------------------------------------
// Assertions on errors

/** Any error class, abstract ones included, for the checks below. */
export type ErrorClass = abstract new (...args: any[]) => Error;

/** Checks an error's class and fields (never its message, which may be reworded) and returns it typed. */
export function assertError<E extends Error>(
  error: unknown,
  Class: ErrorClass,
  fields: Record<string, unknown> = {},
): E {
  assert.ok(error instanceof Class, `expected a ${Class.name}, got ${String(error)}`);
  for (const [key, value] of Object.entries(fields)) {
    assert.deepEqual((error as unknown as Record<string, unknown>)[key], value, `error.${key}`);
  }
  return error as E;
}

/** Awaits a rejection and checks it like assertError; a fulfilment fails the test with the value. */
export async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  Class: ErrorClass,
  fields: Record<string, unknown> = {},
): Promise<E> {
  const error = await promise.then(
    (value) => assert.fail(`expected a ${Class.name}, got the result ${String(value)}`),
    (e: unknown) => e,
  );
  return assertError<E>(error, Class, fields);
}

/** Asserts that `build` throws InvalidOptionsError naming `path` (message included); returns the message. */
export function throwsInvalid(build: () => unknown, path: string): string {
  let thrown: unknown;
  try {
    build();
  } catch (error) {
    thrown = error;
  }
  assert.ok(
    thrown instanceof InvalidOptionsError,
    `expected InvalidOptionsError for ${path}, got ${String(thrown)}`,
  );
  assert.ok(thrown instanceof BulwarkError);
  assert.equal(thrown.code, ErrorCodes.INVALID_OPTIONS);
  assert.equal(thrown.path, path);
  // The message names the field first, so a log line alone says what to fix.
  assert.ok(thrown.message.startsWith(`${path}: `), thrown.message);
  return thrown.message;
}

// ---------------------------------------------------------------------------------------------
// Events, warnings and breakers

/** Collects every event a policy or pipeline emits, in order, so a test can compare the whole story. */
export function recordEvents(source: { readonly events: EventStream }): BulwarkEvent[] {
  const events: BulwarkEvent[] = [];
  source.events.onAny((e) => events.push(e));
  return events;
}

/** Runs `body` while collecting process warnings (how Bulwark reports faulty listeners and stores). */
export async function withWarnings(body: (warnings: Error[]) => Promise<void> | void): Promise<void> {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on('warning', onWarning);
  try {
    await body(warnings);
  } finally {
    process.off('warning', onWarning);
  }
}

/** A call that fails with `error` and must reach the operation (not be refused by the breaker). */
export async function failWith(b: CircuitBreakerPolicy, error: unknown = transient()): Promise<void> {
  await assert.rejects(
    b.execute(() => Promise.reject(error)),
    (e) => e === error,
  );
}

// ---------------------------------------------------------------------------------------------
// Randomness and child processes

/** A small seeded generator (mulberry32), so tests that need random values are repeatable. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The repository root: child processes run there so that `@bulwark/core` resolves through the workspace. */
export const repoRoot = join(import.meta.dirname, '..', '..', '..');

const execFileAsync = promisify(execFile);

/** Runs a TypeScript file in a child Node process the way `npm start` does, from the repository root. */
export function runTypeScript(
  file: string,
  args: readonly string[] = [],
  options: ExecFileOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync(process.execPath, ['--conditions=@bulwark/source', '--import', 'tsx', file, ...args], {
    cwd: repoRoot,
    ...options,
    encoding: 'utf8',
  });
}
