// Option validation: every bad option throws InvalidOptionsError at construction with a `path`
// naming the field, and unknown keys suggest the nearest known key.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  constant,
  decorrelatedJitter,
  exponential,
  fallback,
  InvalidOptionsError,
  linear,
  retry,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import { knownKeys, num, oneOf, optionsObject, str } from '../src/internal/validate.ts';
import { throwsInvalid } from './support.ts';

// Deliberately wrong options, typed loosely so the checks at run time are what is tested.
const loose = <T>(value: unknown) => value as T;

describe('retry options', () => {
  test('maxAttempts must be a whole number of at least 1 (Infinity allowed)', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '3', null, Number.NEGATIVE_INFINITY]) {
      throwsInvalid(() => retry({ maxAttempts: loose(bad) }), 'retry.maxAttempts');
    }
    assert.equal(retry({ maxAttempts: 1 }).describe().options.maxAttempts, 1);
    assert.equal(
      retry({ maxAttempts: Number.POSITIVE_INFINITY }).describe().options.maxAttempts,
      Number.POSITIVE_INFINITY,
    );
  });

  test('the message says what was expected and what was given', () => {
    assert.match(
      throwsInvalid(() => retry({ maxAttempts: 0 }), 'retry.maxAttempts'),
      /at least 1, got 0/,
    );
    assert.match(
      throwsInvalid(() => retry({ maxAttempts: loose('3') }), 'retry.maxAttempts'),
      /the string "3"/,
    );
    assert.match(
      throwsInvalid(() => retry({ maxAttempts: 2.5 }), 'retry.maxAttempts'),
      /whole number/,
    );
  });

  test('maxDurationMs must be a number of at least 0', () => {
    throwsInvalid(() => retry({ maxDurationMs: -1 }), 'retry.maxDurationMs');
    throwsInvalid(() => retry({ maxDurationMs: loose('1s') }), 'retry.maxDurationMs');
    assert.equal(retry({ maxDurationMs: 0 }).describe().options.maxDurationMs, 0);
  });

  test('backoff must be one of the backoff builders', () => {
    throwsInvalid(() => retry({ backoff: loose({ ms: 100 }) }), 'retry.backoff');
    throwsInvalid(() => retry({ backoff: loose(100) }), 'retry.backoff');
  });

  test('predicates and random must be functions', () => {
    throwsInvalid(() => retry({ shouldRetry: loose(true) }), 'retry.shouldRetry');
    throwsInvalid(() => retry({ shouldRetryResult: loose('no') }), 'retry.shouldRetryResult');
    throwsInvalid(() => retry({ random: loose(0.5) }), 'retry.random');
  });

  test('retryAfter is { maxMs } or false', () => {
    throwsInvalid(() => retry({ retryAfter: loose(true) }), 'retry.retryAfter');
    throwsInvalid(() => retry({ retryAfter: loose(5_000) }), 'retry.retryAfter');
    throwsInvalid(() => retry({ retryAfter: { maxMs: -1 } }), 'retry.retryAfter.maxMs');
    throwsInvalid(() => retry({ retryAfter: loose({ maxMs: 1, max: 2 }) }), 'retry.retryAfter.max');
    assert.equal(retry({ retryAfter: loose({}) }).describe().options.retryAfterMaxMs, 30_000);
  });

  test('clock must be a Clock, checked at construction rather than on the first timer', () => {
    throwsInvalid(() => retry({ clock: loose(Date) }), 'retry.clock');
    throwsInvalid(() => retry({ clock: loose({ now: () => 0 }) }), 'retry.clock');
    retry({ clock: new VirtualClock() });
  });

  test('name must be a non-empty string', () => {
    throwsInvalid(() => retry({ name: '' }), 'retry.name');
    throwsInvalid(() => retry({ name: loose(7) }), 'retry.name');
  });

  test("an unknown key suggests the nearest one: did you mean 'maxAttempts'?", () => {
    const message = throwsInvalid(() => retry(loose({ maxAttempt: 3 })), 'retry.maxAttempt');
    assert.match(message, /unknown option; did you mean 'maxAttempts'\?/);
    assert.match(
      throwsInvalid(() => retry(loose({ maxattempts: 3 })), 'retry.maxattempts'),
      /'maxAttempts'/,
    );
    assert.match(
      throwsInvalid(() => retry(loose({ shouldRetryResults: 3 })), 'retry.shouldRetryResults'),
      /'shouldRetryResult'/,
    );
    assert.match(
      throwsInvalid(() => retry(loose({ backof: constant({ ms: 1 }) })), 'retry.backof'),
      /'backoff'/,
    );
  });

  test('an unknown key far from every known one gets no suggestion', () => {
    const message = throwsInvalid(() => retry(loose({ retries: 3 })), 'retry.retries');
    assert.equal(message, 'retry.retries: unknown option');
  });

  test('options must be an object when given', () => {
    for (const bad of [5, 'fast', null, [], true]) throwsInvalid(() => retry(loose(bad)), 'retry');
    retry(undefined);
    retry({});
  });

  test('options are read once, at construction, not on every call', async () => {
    let reads = 0;
    const options = {
      get maxAttempts() {
        reads++;
        return 2;
      },
    };
    const p = retry(options);
    const readsAtConstruction = reads;
    for (let i = 0; i < 5; i++) await p.execute(() => i);
    assert.equal(reads, readsAtConstruction);
    assert.equal(readsAtConstruction, 1);
  });
});

describe('timeout options', () => {
  test('ms is required and must be a finite number of at least 1', () => {
    throwsInvalid(() => timeout(loose({})), 'timeout.ms');
    for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, '5s']) {
      throwsInvalid(() => timeout({ ms: loose(bad) }), 'timeout.ms');
    }
    throwsInvalid(() => timeout(0), 'timeout.ms');
    assert.deepEqual(timeout({ ms: 1 }).describe().options, { ms: 1 });
  });

  test('options must be a number or an object', () => {
    throwsInvalid(() => timeout(loose('5s')), 'timeout');
    throwsInvalid(() => timeout(loose(null)), 'timeout');
  });

  test('clock and name are checked', () => {
    throwsInvalid(() => timeout({ ms: 10, clock: loose({}) }), 'timeout.clock');
    throwsInvalid(() => timeout({ ms: 10, name: '' }), 'timeout.name');
  });

  test("an unknown key suggests the nearest one: did you mean 'ms'?", () => {
    assert.match(
      throwsInvalid(() => timeout(loose({ ms: 1, nmae: 'x' })), 'timeout.nmae'),
      /did you mean 'name'\?/,
    );
    assert.match(
      throwsInvalid(() => timeout(loose({ msec: 10 })), 'timeout.msec'),
      /did you mean 'ms'\?/,
    );
  });
});

describe('fallback options', () => {
  test('exactly one of value or fn', () => {
    throwsInvalid(() => fallback(loose({})), 'fallback');
    throwsInvalid(() => fallback(loose(undefined)), 'fallback');
    throwsInvalid(() => fallback(loose({ value: 1, fn: () => 2 })), 'fallback');
  });

  test('fn and shouldHandle must be functions', () => {
    throwsInvalid(() => fallback(loose({ fn: 'x' })), 'fallback.fn');
    throwsInvalid(() => fallback({ value: 1, shouldHandle: loose(false) }), 'fallback.shouldHandle');
  });

  test('name is checked and unknown keys suggest the nearest', () => {
    throwsInvalid(() => fallback({ value: 1, name: '' }), 'fallback.name');
    assert.match(
      throwsInvalid(() => fallback(loose({ vaule: 1 })), 'fallback.vaule'),
      /did you mean 'value'\?/,
    );
  });
});

describe('backoff options', () => {
  test('constant: ms is required and at least 0; jitter is within [0, 1]', () => {
    throwsInvalid(() => constant(loose({})), 'constant.ms');
    throwsInvalid(() => constant({ ms: -1 }), 'constant.ms');
    throwsInvalid(() => constant({ ms: 10, jitter: 1.5 }), 'constant.jitter');
    throwsInvalid(() => constant({ ms: 10, jitter: -0.1 }), 'constant.jitter');
    throwsInvalid(() => constant(loose(100)), 'constant');
  });

  test('linear: baseMs required; stepMs, maxMs at least 0', () => {
    throwsInvalid(() => linear(loose({})), 'linear.baseMs');
    throwsInvalid(() => linear({ baseMs: 10, stepMs: -1 }), 'linear.stepMs');
    throwsInvalid(() => linear({ baseMs: 10, maxMs: -1 }), 'linear.maxMs');
    throwsInvalid(() => linear({ baseMs: 10, jitter: 2 }), 'linear.jitter');
  });

  test('exponential: baseMs required; factor at least 1; maxMs at least 0', () => {
    throwsInvalid(() => exponential(loose({})), 'exponential.baseMs');
    throwsInvalid(() => exponential({ baseMs: 10, factor: 0.5 }), 'exponential.factor');
    throwsInvalid(() => exponential({ baseMs: 10, maxMs: -1 }), 'exponential.maxMs');
    throwsInvalid(() => exponential({ baseMs: Number.NaN }), 'exponential.baseMs');
    assert.match(
      throwsInvalid(() => exponential(loose({ baseMs: 1, jiter: 0.1 })), 'exponential.jiter'),
      /'jitter'/,
    );
  });

  test('decorrelatedJitter: baseMs required; takes no jitter of its own', () => {
    throwsInvalid(() => decorrelatedJitter(loose({})), 'decorrelatedJitter.baseMs');
    throwsInvalid(() => decorrelatedJitter({ baseMs: 10, maxMs: -5 }), 'decorrelatedJitter.maxMs');
    assert.match(
      throwsInvalid(() => decorrelatedJitter(loose({ baseMS: 10 })), 'decorrelatedJitter.baseMS'),
      /did you mean 'baseMs'\?/,
    );
    throwsInvalid(() => decorrelatedJitter(loose({ baseMs: 10, jitter: 0.2 })), 'decorrelatedJitter.jitter');
  });
});

describe('validation helpers (internal)', () => {
  test('num applies its rule and its fallback', () => {
    assert.equal(num('x', undefined, 7), 7);
    assert.equal(num('x', 3, 7, { min: 1, max: 3, integer: true }), 3);
    assert.throws(() => num('x', 4, 7, { max: 3 }), /x: must be at most 3, got 4/);
    assert.throws(() => num('x', Number.POSITIVE_INFINITY, 7), /x: expected a finite number/);
    assert.equal(num('x', Number.POSITIVE_INFINITY, 7, { infinite: true }), Number.POSITIVE_INFINITY);
  });

  test('str, oneOf and optionsObject name the path', () => {
    assert.equal(str('s', undefined, 'd'), 'd');
    assert.throws(
      () => str('a.b', 3, 'd'),
      (e) => e instanceof InvalidOptionsError && e.path === 'a.b',
    );
    assert.equal(oneOf('k', 'count', ['count', 'time'], 'time'), 'count');
    assert.equal(oneOf('k', undefined, ['count', 'time'], 'time'), 'time');
    assert.throws(
      () => oneOf('breaker.window.kind', 'rolling', ['count', 'time'], 'time'),
      (e) => e instanceof InvalidOptionsError && /expected one of 'count', 'time'/.test(e.message),
    );
    assert.deepEqual(optionsObject('o', undefined), {});
    assert.throws(() => optionsObject('o', []), /an array/);
  });

  test('knownKeys accepts known keys and suggests case-insensitively', () => {
    knownKeys('p', { a: 1, bb: 2 }, ['a', 'bb']);
    assert.throws(
      () => knownKeys('p', { MAXQUEUE: 1 }, ['maxQueue', 'maxConcurrent']),
      (e) => e instanceof InvalidOptionsError && e.path === 'p.MAXQUEUE' && /'maxQueue'/.test(e.message),
    );
  });
});
