// Unit tests of the retry budget: its formula, its lazily rolled window, and how retry
// policies sharing it deposit calls and give up when it refuses a retry. On a VirtualClock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  constant,
  ErrorCodes,
  InvalidOptionsError,
  RetriesExhaustedError,
  RetryBudget,
  retry,
  retryBudget,
  VirtualClock,
} from '@bulwark/core';
import fc from 'fast-check';
import { assertError, connectionReset, permanent, recordEvents, runToEnd, throwsInvalid } from './support.ts';

const fails = () => Promise.reject(connectionReset());

describe('retryBudget: the window and the formula', () => {
  test('defaults: ratio 0.2, 10 per second over 10 s, so an empty window allows 100 retries', () => {
    const budget = retryBudget({ clock: new VirtualClock() });
    assert.deepEqual(budget.describe(), { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 });
    assert.deepEqual(budget.stats(), { calls: 0, retries: 0, allowed: 100, refused: 0 });
  });

  test('allowed = floor(ratio × calls + minPerSecond × windowMs / 1000), and retries stop there', () => {
    const clock = new VirtualClock();
    const budget = retryBudget({ ratio: 0.25, minPerSecond: 0.5, windowMs: 4_000, clock });
    for (let i = 0; i < 10; i++) budget.deposit();
    // 0.25 · 10 + 0.5 · 4 = 4.5, so 4 retries.
    assert.equal(budget.stats().allowed, 4);
    const granted = Array.from({ length: 6 }, () => budget.tryRetry());
    assert.deepEqual(granted, [true, true, true, true, false, false]);
    assert.deepEqual(budget.stats(), { calls: 10, retries: 4, allowed: 4, refused: 2 });
  });

  test('a fractional product is not lost to floating point: 0.29 × 100 allows 29', () => {
    const budget = retryBudget({ ratio: 0.29, minPerSecond: 0, clock: new VirtualClock() });
    for (let i = 0; i < 100; i++) budget.deposit();
    assert.equal(budget.stats().allowed, 29);
  });

  test('property: retries granted in one window never exceed the formula', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.boolean(), { maxLength: 300 }),
        (ratio, minPerSecond, ops) => {
          const budget = retryBudget({ ratio, minPerSecond, windowMs: 1_000, clock: new VirtualClock() });
          let calls = 0;
          let granted = 0;
          for (const deposit of ops) {
            if (deposit) {
              budget.deposit();
              calls++;
            } else if (budget.tryRetry()) granted++;
            assert.ok(granted <= Math.floor(ratio * calls + minPerSecond + 1e-9));
          }
          assert.equal(budget.stats().retries, granted);
        },
      ),
    );
  });

  test('counts expire as the window rolls past them, without any timer', async () => {
    const clock = new VirtualClock();
    // 10 buckets of 100 ms.
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000, clock });
    budget.deposit(); // bucket [0, 100)
    await clock.advance(500);
    budget.deposit(); // bucket [500, 600)
    assert.ok(budget.tryRetry());
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(499); // 999: both calls still in the window
    assert.deepEqual(budget.stats(), { calls: 2, retries: 1, allowed: 2, refused: 0 });
    await clock.advance(1); // 1 000: the bucket [0, 100) has left the window
    assert.deepEqual(budget.stats(), { calls: 1, retries: 1, allowed: 1, refused: 0 });
    await clock.advance(500); // 1 500: the bucket [500, 600) has left too
    assert.deepEqual(budget.stats(), { calls: 0, retries: 0, allowed: 0, refused: 0 });
  });

  test('after a long idle time the whole window is empty again', async () => {
    const clock = new VirtualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 1, windowMs: 2_000, clock });
    assert.ok(budget.tryRetry());
    assert.ok(budget.tryRetry());
    assert.equal(budget.tryRetry(), false);
    await clock.advance(3_600_000);
    assert.deepEqual(budget.stats(), { calls: 0, retries: 0, allowed: 2, refused: 1 });
    assert.ok(budget.tryRetry());
  });

  test('invalid options name their path', () => {
    throwsInvalid(() => retryBudget({ ratio: -0.1 }), 'retryBudget.ratio');
    throwsInvalid(() => retryBudget({ minPerSecond: Number.NaN }), 'retryBudget.minPerSecond');
    throwsInvalid(() => retryBudget({ windowMs: 5 }), 'retryBudget.windowMs');
    throwsInvalid(() => retryBudget({ ratoi: 0.1 } as never), 'retryBudget.ratoi');
    throwsInvalid(() => retryBudget({ clock: {} as never }), 'retryBudget.clock');
    throwsInvalid(() => retry({ budget: { tryRetry: () => true } as never }), 'retry.budget');
  });
});

describe('retry with a budget', () => {
  test('every execution deposits one call, on the fast path too; retries are not calls', async () => {
    const clock = new VirtualClock();
    const budget = retryBudget({ clock });
    const policy = retry({ budget, backoff: constant({ ms: 0 }), clock });
    await policy.execute(() => 'ok');
    await policy.execute(() => 'ok');
    let n = 0;
    await policy.execute(() => (n++ === 0 ? fails() : 'ok'));
    assert.deepEqual(budget.stats(), { calls: 3, retries: 1, allowed: 100, refused: 0 });
  });

  test('a refused retry ends the call with RetriesExhaustedError, the last error as cause', async () => {
    const clock = new VirtualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 0.5, windowMs: 2_000, clock }); // 1 retry
    const policy = retry({ maxAttempts: 5, budget, backoff: constant({ ms: 10 }), clock });
    const events = recordEvents(policy);
    const errors = [connectionReset('first'), connectionReset('second')];
    let calls = 0;
    const call = await runToEnd(
      clock,
      policy.execute(() => Promise.reject(errors[calls++])),
    );
    assert.equal(calls, 2);
    const error = assertError<RetriesExhaustedError>(call.error, RetriesExhaustedError, {
      code: ErrorCodes.RETRIES_EXHAUSTED,
      attempts: 2,
    });
    assert.equal(error.cause, errors[1]);
    assert.deepEqual(
      events.filter((e) => e.type !== 'retry:attempt').map((e) => e.type),
      ['retry:scheduled', 'retry:budget-exhausted', 'retry:exhausted'],
    );
    const refusal = events.find((e) => e.type === 'retry:budget-exhausted');
    assert.deepEqual(refusal, {
      type: 'retry:budget-exhausted',
      policy: 'retry',
      operation: undefined,
      attempts: 2,
      error: errors[1],
    });
    assert.deepEqual(policy.stats(), {
      successfulWithoutRetry: 0,
      successfulWithRetry: 0,
      failedWithoutRetry: 0,
      failedWithRetry: 1,
    });
    assert.equal(budget.stats().refused, 1);
  });

  test('a retry refused for another reason spends nothing of the budget', async () => {
    const clock = new VirtualClock();
    const budget = retryBudget({ clock });
    const policy = retry({ maxAttempts: 1, budget, clock });
    await runToEnd(clock, policy.execute(fails));
    await runToEnd(
      clock,
      retry({ budget, clock }).execute(() => Promise.reject(permanent())),
    );
    assert.deepEqual(budget.stats(), { calls: 2, retries: 0, allowed: 100, refused: 0 });
  });

  test('a storm of failing calls from many policies sharing one budget is capped', async () => {
    const clock = new VirtualClock();
    const budget = retryBudget({ ratio: 0.1, minPerSecond: 1, windowMs: 10_000, clock });
    const policies = Array.from({ length: 20 }, (_, i) =>
      retry({ name: `dep-${i}`, maxAttempts: 4, budget, backoff: constant({ ms: 50 }), clock }),
    );
    let calls = 0;
    const operation = () => {
      calls++;
      return fails();
    };
    const pending = [];
    for (let round = 0; round < 10; round++) {
      for (const p of policies) pending.push(p.execute(operation).catch((e: unknown) => e));
    }
    await clock.runAll();
    const outcomes = await Promise.all(pending);
    // 200 calls: 0.1 · 200 + 1 · 10 = 30 retries at most, where the policies alone would make 600.
    // Refused: the 170 first retries beyond those 30, then the second retry of each of the 30.
    assert.equal(calls, 200 + 30);
    assert.ok(outcomes.every((e) => e instanceof RetriesExhaustedError));
    assert.deepEqual(budget.stats(), { calls: 200, retries: 30, allowed: 30, refused: 200 });
    assert.equal(clock.pendingTimers, 0);
  });

  test('retries come back once the storm has left the window', async () => {
    const clock = new VirtualClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 0.1, windowMs: 10_000, clock }); // 1 retry
    const policy = retry({ maxAttempts: 2, budget, backoff: constant({ ms: 0 }), clock });
    const failOnce = () => {
      let n = 0;
      return () => (n++ === 0 ? fails() : 'ok');
    };
    assert.equal(await policy.execute(failOnce()), 'ok');
    const refused = await runToEnd(clock, policy.execute(failOnce()));
    assert.ok(refused.error instanceof RetriesExhaustedError);
    await clock.advance(10_000);
    assert.equal(await policy.execute(failOnce()), 'ok');
  });

  test('describe() shows the budget', () => {
    const clock = new VirtualClock();
    const budget = new RetryBudget({ ratio: 0.5, clock });
    assert.deepEqual(retry({ budget, clock }).describe().options.budget, {
      ratio: 0.5,
      minPerSecond: 10,
      windowMs: 10_000,
    });
    assert.equal('budget' in retry().describe().options, false);
  });
});

describe('retry budget: clocks', () => {
  test('a retry on another clock than its budget is refused at construction', () => {
    const clock = new VirtualClock();
    assert.throws(
      () => retry({ clock, budget: retryBudget() }),
      (e) => e instanceof InvalidOptionsError && e.path === 'retry.budget',
    );
    assert.throws(
      () => retry({ budget: retryBudget({ clock }) }),
      (e) => e instanceof InvalidOptionsError && e.path === 'retry.budget',
    );
    assert.doesNotThrow(() => retry({ clock, budget: retryBudget({ clock }) }));
  });
});
