// Unit tests of the retry policy: attempts, predicates, exhaustion, backoff timing, Retry-After
// hints, cancellation and statistics. Every wait runs on a VirtualClock.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import {
  BrokenCircuitError,
  constant,
  decorrelatedJitter,
  ErrorCodes,
  exponential,
  fallback,
  isTransient,
  pipeline,
  RetriesExhaustedError,
  retry,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import {
  assertError,
  connectionReset,
  permanent,
  recordEvents,
  runToEnd,
  track,
  withStatus,
} from './support.ts';

/** Checks that `error` is a RetriesExhaustedError and returns it typed. */
function exhausted(error: unknown): RetriesExhaustedError {
  return assertError(error, RetriesExhaustedError, { code: ErrorCodes.RETRIES_EXHAUSTED });
}

describe('retry: attempts', () => {
  test('maxAttempts counts every call, the first included: 3 makes at most 3 calls', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const p = retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), clock });
    const call = await runToEnd(
      clock,
      p.execute(() => {
        calls++;
        throw connectionReset();
      }),
    );
    assert.equal(calls, 3);
    assert.equal(exhausted(call.error).attempts, 3);
  });

  test('maxAttempts: 1 makes a single call and still reports RetriesExhaustedError', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const last = connectionReset();
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 1, clock }).execute(() => {
        calls++;
        throw last;
      }),
    );
    assert.equal(calls, 1);
    const error = exhausted(call.error);
    assert.equal(error.attempts, 1);
    assert.equal(error.cause, last);
    assert.equal(clock.pendingTimers, 0);
  });

  test('maxAttempts: Infinity retries until the operation succeeds', async () => {
    const clock = new VirtualClock();
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: Number.POSITIVE_INFINITY, backoff: constant({ ms: 1 }), clock }).execute(
        ({ attempt }) => {
          if (attempt < 50) throw connectionReset();
          return attempt;
        },
      ),
    );
    assert.equal(call.value, 50);
  });

  test('returns the first successful result and makes no further call', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 5, backoff: constant({ ms: 10 }), clock }).execute(({ attempt }) => {
        calls++;
        if (attempt < 2) throw connectionReset();
        return 'ok';
      }),
    );
    assert.equal(call.value, 'ok');
    assert.equal(calls, 2);
  });

  test('attempt numbering starts at 1 and grows by one per call', async () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 4, backoff: constant({ ms: 5 }), clock }).execute(({ attempt }) => {
        seen.push(attempt);
        throw connectionReset();
      }),
    );
    assert.equal(call.status, 'rejected');
    assert.deepEqual(seen, [1, 2, 3, 4]);
  });

  test('retry:scheduled names the attempt that failed and the delay before the next', async () => {
    const clock = new VirtualClock();
    const p = retry({ maxAttempts: 3, backoff: exponential({ baseMs: 100, factor: 2 }), clock });
    const events = recordEvents(p);
    const errors = [connectionReset('one'), connectionReset('two'), connectionReset('three')];
    const call = await runToEnd(
      clock,
      p.execute(
        ({ attempt }) => {
          throw errors[attempt - 1];
        },
        { operation: 'charge' },
      ),
    );
    assert.equal(call.status, 'rejected');
    const decisions = events.filter((e) => e.type !== 'retry:attempt');
    assert.deepEqual(
      decisions.map((e) => e.type),
      ['retry:scheduled', 'retry:scheduled', 'retry:exhausted'],
    );
    const [first, second, last] = decisions;
    assert.equal(first?.type, 'retry:scheduled');
    if (first?.type === 'retry:scheduled' && second?.type === 'retry:scheduled') {
      assert.equal(first.attempt, 1);
      assert.equal(first.delayMs, 100);
      assert.equal(first.error, errors[0]);
      assert.equal(first.policy, 'retry');
      assert.equal(first.operation, 'charge');
      assert.equal(second.attempt, 2);
      assert.equal(second.delayMs, 200);
      assert.equal(second.error, errors[1]);
    }
    assert.equal(last?.type, 'retry:exhausted');
    if (last?.type === 'retry:exhausted') {
      assert.equal(last.attempts, 3);
      assert.equal(last.error, errors[2]);
    }
  });

  test('concurrent calls count their attempts independently', async () => {
    const clock = new VirtualClock();
    const p = retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), clock });
    const a = track(
      p.execute(({ attempt }) => {
        if (attempt < 3) throw connectionReset();
        return `a${attempt}`;
      }),
    );
    const b = track(
      p.execute(({ attempt }) => {
        if (attempt < 2) throw connectionReset();
        return `b${attempt}`;
      }),
    );
    await clock.runAll();
    assert.equal(a.value, 'a3');
    assert.equal(b.value, 'b2');
  });
});

describe('retry: exhaustion and predicates', () => {
  test('RetriesExhaustedError carries the attempts and the last error as cause', async () => {
    const clock = new VirtualClock();
    const errors = [connectionReset('first'), connectionReset('second')];
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 2, backoff: constant({ ms: 1 }), clock }).execute(({ attempt }) => {
        throw errors[attempt - 1];
      }),
    );
    const error = exhausted(call.error);
    assert.equal(error.attempts, 2);
    assert.equal(error.cause, errors[1]);
    assert.equal(error.lastResult, undefined);
    assert.equal(error.name, 'RetriesExhaustedError');
  });

  test('a result that shouldRetryResult keeps rejecting is never returned as good', async () => {
    const clock = new VirtualClock();
    const seen: Array<[unknown, number]> = [];
    const call = await runToEnd(
      clock,
      retry({
        maxAttempts: 3,
        backoff: constant({ ms: 1 }),
        clock,
        shouldRetryResult: (result, attempt) => {
          seen.push([result, attempt]);
          return (result as { status: number }).status === 503;
        },
      }).execute(({ attempt }) => ({ status: 503, attempt })),
    );
    assert.equal(call.status, 'rejected');
    const error = exhausted(call.error);
    assert.equal(error.attempts, 3);
    assert.deepEqual(error.lastResult, { status: 503, attempt: 3 });
    assert.equal(error.cause, undefined);
    assert.deepEqual(seen, [
      [{ status: 503, attempt: 1 }, 1],
      [{ status: 503, attempt: 2 }, 2],
      [{ status: 503, attempt: 3 }, 3],
    ]);
  });

  test('a result accepted by shouldRetryResult after a rejected one is returned', async () => {
    const clock = new VirtualClock();
    const call = await runToEnd(
      clock,
      retry({
        maxAttempts: 3,
        backoff: constant({ ms: 1 }),
        clock,
        shouldRetryResult: (result) => result === 'busy',
      }).execute(({ attempt }) => (attempt === 1 ? 'busy' : 'done')),
    );
    assert.equal(call.value, 'done');
  });

  test('an error after rejected results is the cause, with no lastResult', async () => {
    const clock = new VirtualClock();
    const last = connectionReset();
    const call = await runToEnd(
      clock,
      retry({
        maxAttempts: 2,
        backoff: constant({ ms: 1 }),
        clock,
        shouldRetryResult: () => true,
      }).execute(({ attempt }) => {
        if (attempt === 2) throw last;
        return 'busy';
      }),
    );
    const error = exhausted(call.error);
    assert.equal(error.cause, last);
    assert.equal(error.lastResult, undefined);
  });

  for (const [label, make] of [
    ['an error with status 404', permanent],
    ['a TypeError', () => new TypeError('undefined is not a function')],
    ['an AbortError', () => new DOMException('aborted', 'AbortError')],
    ['an error marked transient: false', () => Object.assign(new Error('no'), { transient: false })],
  ] as const) {
    test(`${label} is permanent: not retried and rethrown as-is`, async () => {
      const clock = new VirtualClock();
      const thrown = make();
      let calls = 0;
      const p = retry({ maxAttempts: 5, backoff: constant({ ms: 1 }), clock });
      const call = await runToEnd(
        clock,
        p.execute(() => {
          calls++;
          throw thrown;
        }),
      );
      assert.equal(calls, 1);
      assert.equal(call.error, thrown);
      assert.deepEqual(p.stats(), {
        successfulWithoutRetry: 0,
        successfulWithRetry: 0,
        failedWithoutRetry: 1,
        failedWithRetry: 0,
      });
    });
  }

  test('an HTTP 503 error is transient and retried by default', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), retryAfter: false, clock }).execute(() => {
        calls++;
        throw withStatus(503, 'unavailable');
      }),
    );
    assert.equal(calls, 3);
    exhausted(call.error);
  });

  test('shouldRetry receives the error and the attempt, and false rethrows the error as-is', async () => {
    const clock = new VirtualClock();
    const seen: Array<[unknown, number]> = [];
    const errors = [new Error('a'), new Error('b')];
    const call = await runToEnd(
      clock,
      retry({
        maxAttempts: 5,
        backoff: constant({ ms: 1 }),
        clock,
        shouldRetry: (error, attempt) => {
          seen.push([error, attempt]);
          return attempt < 2;
        },
      }).execute(({ attempt }) => {
        throw errors[attempt - 1];
      }),
    );
    assert.equal(call.error, errors[1]);
    assert.deepEqual(seen, [
      [errors[0], 1],
      [errors[1], 2],
    ]);
  });

  test('RetriesExhaustedError classifies like its cause', async () => {
    assert.equal(isTransient(new RetriesExhaustedError(3, connectionReset())), true);
    assert.equal(isTransient(new RetriesExhaustedError(3, new TypeError('bug'))), false);
  });
});

describe('retry: timing', () => {
  test('the backoff sets the time between attempts', async () => {
    const clock = new VirtualClock();
    const startedAt: number[] = [];
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 4, backoff: exponential({ baseMs: 100, factor: 2 }), clock }).execute(() => {
        startedAt.push(clock.now());
        throw connectionReset();
      }),
    );
    assert.equal(call.status, 'rejected');
    assert.deepEqual(startedAt, [0, 100, 300, 700]);
  });

  test('no attempt starts before its backoff has fully elapsed', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    track(
      retry({ maxAttempts: 2, backoff: constant({ ms: 1_000 }), clock }).execute(() => {
        calls++;
        throw connectionReset();
      }),
    );
    await clock.advance(999);
    assert.equal(calls, 1);
    await clock.advance(1);
    assert.equal(calls, 2);
  });

  test('maxDurationMs stops a retry that would start later than the limit', async () => {
    const clock = new VirtualClock();
    const startedAt: number[] = [];
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 10, maxDurationMs: 1_000, backoff: constant({ ms: 400 }), clock }).execute(() => {
        startedAt.push(clock.now());
        throw connectionReset();
      }),
    );
    // 0, 400, 800 start in time; the next would start at 1 200 > 1 000.
    assert.deepEqual(startedAt, [0, 400, 800]);
    assert.equal(exhausted(call.error).attempts, 3);
    // It gives up at once instead of sleeping towards a retry it will not make.
    assert.equal(clock.now(), 800);
  });

  test('maxDurationMs allows a retry that starts exactly at the limit', async () => {
    const clock = new VirtualClock();
    const startedAt: number[] = [];
    await runToEnd(
      clock,
      retry({ maxAttempts: 10, maxDurationMs: 800, backoff: constant({ ms: 400 }), clock }).execute(() => {
        startedAt.push(clock.now());
        throw connectionReset();
      }),
    );
    assert.deepEqual(startedAt, [0, 400, 800]);
  });

  test('maxDurationMs counts the time spent inside attempts', async () => {
    const clock = new VirtualClock();
    const startedAt: number[] = [];
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 10, maxDurationMs: 750, backoff: constant({ ms: 100 }), clock }).execute(
        async () => {
          startedAt.push(clock.now());
          await clock.sleep(300);
          throw connectionReset();
        },
      ),
    );
    // Attempt 1 runs 0–300, attempt 2 400–700; attempt 3 would start at 800 > 750.
    assert.deepEqual(startedAt, [0, 400]);
    assert.equal(exhausted(call.error).attempts, 2);
  });

  test('each call starts its own backoff sequence (decorrelated jitter memory is per call)', async () => {
    const clock = new VirtualClock();
    const p = retry({
      maxAttempts: 4,
      backoff: decorrelatedJitter({ baseMs: 100, maxMs: 10_000 }),
      random: () => 0.5,
      clock,
    });
    const delays: number[][] = [[], []];
    for (const run of [0, 1]) {
      const off = p.events.on('retry:scheduled', (e) => delays[run]?.push(e.delayMs));
      const call = await runToEnd(
        clock,
        p.execute(() => {
          throw connectionReset();
        }),
      );
      assert.equal(call.status, 'rejected');
      off();
    }
    assert.equal(delays[0]?.length, 3);
    assert.deepEqual(delays[1], delays[0]);
  });

  test('the default backoff is exponential from 200 ms with ±20% jitter', () => {
    assert.deepEqual(retry().describe().options.backoff, {
      kind: 'exponential',
      baseMs: 200,
      factor: 2,
      maxMs: 30_000,
      jitter: 0.2,
    });
  });

  test('no timer is left behind after success, exhaustion or a permanent error', async () => {
    const clock = new VirtualClock();
    const p = retry({ maxAttempts: 3, backoff: constant({ ms: 50 }), clock });
    for (const op of [
      () => 'ok',
      () => {
        throw connectionReset();
      },
      () => {
        throw new TypeError('bug');
      },
    ]) {
      const call = await runToEnd(clock, p.execute(op));
      assert.notEqual(call.status, 'pending');
      assert.equal(clock.pendingTimers, 0);
    }
  });
});

describe('retry: Retry-After hints', () => {
  /** Runs a two-attempt retry whose first attempt fails with `error`; returns when attempt 2 began. */
  async function secondAttemptAt(
    error: unknown,
    options: Parameters<typeof retry>[0] = {},
    clock = new VirtualClock(),
  ): Promise<number> {
    const startedAt: number[] = [];
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 2, backoff: constant({ ms: 100 }), clock, ...options }).execute(() => {
        startedAt.push(clock.now());
        if (startedAt.length === 1) throw error;
        return 'ok';
      }),
    );
    assert.equal(call.value, 'ok');
    assert.equal(startedAt.length, 2);
    return startedAt[1]! - startedAt[0]!;
  }

  test('a retryAfterMs hint longer than the backoff sets the delay', async () => {
    assert.equal(await secondAttemptAt(Object.assign(connectionReset(), { retryAfterMs: 5_000 })), 5_000);
  });

  test('a hint shorter than the backoff leaves the backoff: delay = max(backoff, hint)', async () => {
    assert.equal(await secondAttemptAt(Object.assign(connectionReset(), { retryAfterMs: 30 })), 100);
  });

  test('a hint up to retryAfter.maxMs is waited for in full', async () => {
    const error = Object.assign(connectionReset(), { retryAfterMs: 2_000 });
    assert.equal(await secondAttemptAt(error, { retryAfter: { maxMs: 2_000 } }), 2_000);
  });

  test('a hint beyond retryAfter.maxMs ends the retries at once with RetriesExhaustedError', async () => {
    const clock = new VirtualClock();
    const error = Object.assign(connectionReset(), { retryAfterMs: 60_000 });
    let calls = 0;
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 5, backoff: constant({ ms: 100 }), retryAfter: { maxMs: 2_000 }, clock }).execute(
        () => {
          calls++;
          throw error;
        },
      ),
    );
    assert.equal(calls, 1);
    assert.equal(clock.now(), 0);
    assert.ok(call.error instanceof RetriesExhaustedError);
    assert.equal(call.error.attempts, 1);
    assert.equal(call.error.cause, error);
  });

  test('the default cap on hints is 30 s', async () => {
    const within = Object.assign(connectionReset(), { retryAfterMs: 30_000 });
    assert.equal(await secondAttemptAt(within), 30_000);
    const clock = new VirtualClock();
    const beyond = Object.assign(connectionReset(), { retryAfterMs: 30_001 });
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 2, clock }).execute(() => {
        throw beyond;
      }),
    );
    assert.ok(call.error instanceof RetriesExhaustedError);
    assert.equal(clock.now(), 0);
  });

  test('a retry-after header in seconds is honoured', async () => {
    const error = Object.assign(new Error('slow down'), { status: 429, headers: { 'retry-after': '3' } });
    assert.equal(await secondAttemptAt(error), 3_000);
  });

  test('a Retry-After HTTP-date on response.headers (a Headers object) is read against the clock', async () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    const clock = new VirtualClock(now);
    const error = Object.assign(new Error('unavailable'), {
      response: { status: 503, headers: new Headers({ 'Retry-After': 'Wed, 21 Oct 2015 07:28:07 GMT' }) },
    });
    assert.equal(await secondAttemptAt(error, {}, clock), 7_000);
  });

  test("an open breaker's retryAfterMs is honoured", async () => {
    assert.equal(await secondAttemptAt(new BrokenCircuitError('db', 4_000, 'open')), 4_000);
  });

  test('retryAfter: false ignores hints', async () => {
    const error = Object.assign(connectionReset(), { retryAfterMs: 5_000, headers: { 'retry-after': '9' } });
    assert.equal(await secondAttemptAt(error, { retryAfter: false }), 100);
  });

  test('a retryable result carrying Retry-After is honoured too', async () => {
    const clock = new VirtualClock();
    const startedAt: number[] = [];
    const call = await runToEnd(
      clock,
      retry({
        maxAttempts: 2,
        backoff: constant({ ms: 100 }),
        clock,
        shouldRetryResult: (r) => (r as { status: number }).status === 429,
      }).execute(() => {
        startedAt.push(clock.now());
        return startedAt.length === 1
          ? { status: 429, headers: new Headers({ 'retry-after': '2' }) }
          : { status: 200, headers: new Headers() };
      }),
    );
    assert.equal((call.value as { status: number }).status, 200);
    assert.deepEqual(startedAt, [0, 2_000]);
  });

  test('a hint counts against maxDurationMs', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 5, maxDurationMs: 1_000, backoff: constant({ ms: 10 }), clock }).execute(() => {
        calls++;
        throw Object.assign(connectionReset(), { retryAfterMs: 5_000 });
      }),
    );
    assert.equal(calls, 1);
    assert.equal(exhausted(call.error).attempts, 1);
  });
});

describe('retry: cancellation', () => {
  test('retry stops at once when the caller aborts during backoff', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const reason = new Error('caller left');
    let calls = 0;
    const call = track(
      retry({ maxAttempts: 5, backoff: constant({ ms: 10_000 }), clock }).execute(
        () => {
          calls++;
          throw connectionReset();
        },
        { signal: controller.signal },
      ),
    );
    await clock.advance(1_000);
    assert.equal(call.status, 'pending');
    controller.abort(reason);
    await clock.advance(0);
    assert.equal(call.status, 'rejected');
    assert.equal(call.error, reason);
    assert.equal(clock.now(), 1_000);
    assert.equal(clock.pendingTimers, 0);
    await clock.runAll();
    assert.equal(calls, 1);
  });

  test('a caller abort during an attempt surfaces the caller reason and starts no further attempt', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    let calls = 0;
    const call = track(
      retry({ maxAttempts: 5, backoff: constant({ ms: 0 }), clock }).execute(
        async () => {
          calls++;
          await clock.sleep(100); // ignores its signal
          throw connectionReset();
        },
        { signal: controller.signal },
      ),
    );
    await clock.advance(50);
    controller.abort('stop');
    await clock.runAll();
    assert.equal(calls, 1);
    assert.equal(call.error, 'stop');
  });

  // The attempt ignores its signal, then fails 100 ms in; the caller aborted at 10 ms.
  for (const [name, maxAttempts, failure] of [
    [
      "a caller abort during the last attempt surfaces the caller's reason, not RetriesExhaustedError",
      1,
      () => connectionReset(),
    ],
    [
      "a caller abort during an attempt that then fails permanently still surfaces the caller's reason",
      3,
      () => new DOMException('request aborted', 'AbortError'),
    ],
  ] as const) {
    test(name, async () => {
      const clock = new VirtualClock();
      const controller = new AbortController();
      const call = track(
        retry({ maxAttempts, clock }).execute(
          async () => {
            await clock.sleep(100);
            throw failure();
          },
          { signal: controller.signal },
        ),
      );
      await clock.advance(10);
      controller.abort('caller gave up');
      await clock.runAll();
      assert.equal(call.error, 'caller gave up');
    });
  }

  test('with a zero backoff an abort between attempts still starts no further attempt', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    let calls = 0;
    const call = await runToEnd(
      clock,
      retry({
        maxAttempts: 5,
        backoff: constant({ ms: 0 }),
        clock,
        shouldRetryResult: () => true,
      }).execute(
        () => {
          calls++;
          controller.abort('gone');
          return 'bad';
        },
        { signal: controller.signal },
      ),
    );
    assert.equal(calls, 1);
    assert.equal(call.error, 'gone');
  });

  test('an already aborted caller signal rejects before the first attempt', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const reason = new Error('already gone');
    await assert.rejects(
      retry({ clock }).execute(
        () => {
          calls++;
        },
        { signal: AbortSignal.abort(reason) },
      ),
      (e) => e === reason,
    );
    assert.equal(calls, 0);
  });

  test("every attempt's context signal is the caller's signal", async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const signals: AbortSignal[] = [];
    const call = await runToEnd(
      clock,
      retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), clock }).execute(
        ({ signal, attempt }) => {
          signals.push(signal);
          if (attempt < 3) throw connectionReset();
          return 'ok';
        },
        { signal: controller.signal },
      ),
    );
    assert.equal(call.value, 'ok');
    assert.deepEqual(signals, [controller.signal, controller.signal, controller.signal]);
  });

  test('backoff sleeps leave no abort listener on the caller signal', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const p = retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), clock });
    for (let i = 0; i < 20; i++) {
      const call = await runToEnd(
        clock,
        p.execute(
          ({ attempt }) => {
            if (attempt < 3) throw connectionReset();
            return attempt;
          },
          { signal: controller.signal },
        ),
      );
      assert.equal(call.value, 3);
    }
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });

  test('an overall timeout around the retry stops it, with no further attempt and no timer left', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const p = pipeline(
      timeout({ ms: 250, clock }),
      retry({ maxAttempts: 10, backoff: constant({ ms: 100 }), clock }),
    );
    const call = await runToEnd(
      clock,
      p.execute(() => {
        calls++;
        throw connectionReset();
      }),
    );
    assert.equal((call.error as { code?: string }).code, ErrorCodes.TIMEOUT);
    assert.equal(calls, 3); // at 0, 100, 200
    assert.equal(clock.now(), 250);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('retry: statistics and outcome', () => {
  test('stats count calls by outcome, shaped like resilience4j', async () => {
    const clock = new VirtualClock();
    const p = retry({ maxAttempts: 2, backoff: constant({ ms: 1 }), clock });
    const run = (op: (attempt: number) => unknown) =>
      runToEnd(
        clock,
        p.execute(({ attempt }) => op(attempt)),
      );
    await run(() => 'first time');
    await run(() => 'first time');
    await run((n) => {
      if (n === 1) throw connectionReset();
      return 'second time';
    });
    await run(() => {
      throw new TypeError('permanent');
    });
    await run(() => {
      throw connectionReset();
    });
    assert.deepEqual(p.stats(), {
      successfulWithoutRetry: 2,
      successfulWithRetry: 1,
      failedWithoutRetry: 1,
      failedWithRetry: 1,
    });
  });

  test('executeOutcome reports how many attempts were made', async () => {
    const clock = new VirtualClock();
    const p = pipeline(retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), clock }));
    const outcome = p.executeOutcome(({ attempt }) => {
      if (attempt < 3) throw connectionReset();
      return 'ok';
    });
    await clock.runAll();
    assert.deepEqual(await outcome, { ok: true, value: 'ok', degraded: false, attempts: 3 });
  });

  test('an attempt answered for real after a fallback inside the retry is not degraded', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      retry({
        maxAttempts: 2,
        backoff: constant({ ms: 1 }),
        clock,
        shouldRetryResult: (r) => r === 'stale',
      }),
      fallback({ value: 'stale' }),
    );
    const outcome = p.executeOutcome(({ attempt }) => {
      if (attempt === 1) throw connectionReset();
      return 'fresh';
    });
    await clock.runAll();
    assert.deepEqual(await outcome, { ok: true, value: 'fresh', degraded: false, attempts: 2 });
  });

  test('describe lists the normalised options', () => {
    assert.deepEqual(
      retry({
        maxAttempts: 4,
        maxDurationMs: 9_000,
        backoff: constant({ ms: 50 }),
        retryAfter: { maxMs: 5_000 },
        name: 'payments-retry',
      }).describe(),
      {
        kind: 'retry',
        name: 'payments-retry',
        options: {
          maxAttempts: 4,
          maxDurationMs: 9_000,
          backoff: { kind: 'constant', ms: 50, jitter: 0 },
          retryAfterMaxMs: 5_000,
        },
      },
    );
    assert.equal(retry({ retryAfter: false }).describe().options.retryAfterMaxMs, false);
    assert.equal(retry().describe().options.maxDurationMs, Number.POSITIVE_INFINITY);
  });
});

describe('retry: attempt events', () => {
  test('every attempt emits retry:attempt with its number, duration and outcome', async () => {
    const clock = new VirtualClock();
    const policy = retry({ maxAttempts: 3, backoff: constant({ ms: 100 }), clock });
    const events = recordEvents(policy);
    const call = await runToEnd(
      clock,
      policy.execute(async ({ attempt }) => {
        await clock.sleep(attempt * 10);
        if (attempt < 3) throw connectionReset();
        return 'ok';
      }),
    );
    assert.equal(call.value, 'ok');
    const attempts = events.filter((e) => e.type === 'retry:attempt');
    assert.deepEqual(
      attempts.map((e) => [e.attempt, e.durationMs, e.outcome]),
      [
        [1, 10, 'failure'],
        [2, 20, 'failure'],
        [3, 30, 'success'],
      ],
    );
  });

  test('a result rejected by shouldRetryResult is a failed attempt, and the predicate runs once per attempt', async () => {
    const clock = new VirtualClock();
    let judged = 0;
    const policy = retry({
      maxAttempts: 2,
      backoff: constant({ ms: 1 }),
      shouldRetryResult: (r) => {
        judged++;
        return r === 'bad';
      },
      clock,
    });
    const events = recordEvents(policy);
    const call = await runToEnd(
      clock,
      policy.execute(({ attempt }) => (attempt === 1 ? 'bad' : 'good')),
    );
    assert.equal(call.value, 'good');
    assert.equal(judged, 2);
    assert.deepEqual(
      events.filter((e) => e.type === 'retry:attempt').map((e) => e.outcome),
      ['failure', 'success'],
    );
  });

  test('no attempt event is built while nobody listens', async () => {
    const policy = retry({ maxAttempts: 1 });
    let emitted = 0;
    const original = policy.events.emit.bind(policy.events);
    policy.events.emit = (e) => {
      emitted++;
      original(e);
    };
    assert.equal(await policy.execute(() => 1), 1);
    assert.equal(emitted, 0);
  });
});
