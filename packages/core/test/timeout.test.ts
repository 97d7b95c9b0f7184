// Unit tests of the timeout policy: the deadline on a virtual clock, the attempt's signal,
// per-attempt versus overall budgets, warnings, cancellation and cleanup.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import {
  bulkhead,
  constant,
  ErrorCodes,
  type ExecutionContext,
  pipeline,
  retry,
  TimeoutError,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import {
  assertError,
  connectionReset,
  deferred,
  hang,
  recordEvents,
  runToEnd,
  track,
  untilAborted,
  withCode,
} from './support.ts';

/** Checks that `error` is the TimeoutError of a `ms` budget. */
function isTimeout(error: unknown, ms: number): void {
  assertError(error, TimeoutError, { code: ErrorCodes.TIMEOUT, timeoutMs: ms });
}

describe('timeout: the deadline', () => {
  test('rejects with TimeoutError exactly at the deadline even when the operation ignores its signal', async () => {
    const clock = new VirtualClock();
    const never = deferred();
    const call = track(timeout({ ms: 1_000, clock }).execute(() => never.promise));
    await clock.advance(999);
    assert.equal(call.status, 'pending');
    await clock.advance(1);
    assert.equal(call.status, 'rejected');
    isTimeout(call.error, 1_000);
    assert.equal(clock.pendingTimers, 0);
  });

  test("aborts the attempt's signal with that same TimeoutError", async () => {
    const clock = new VirtualClock();
    let signal: AbortSignal | undefined;
    const call = track(
      timeout({ ms: 100, clock }).execute(({ signal: s }) => {
        signal = s;
        return hang();
      }),
    );
    assert.equal(signal?.aborted, false);
    await clock.advance(100);
    assert.equal(signal?.aborted, true);
    assert.equal(signal?.reason, call.error);
    isTimeout(signal?.reason, 100);
  });

  test('an operation that rejects with its signal reason surfaces the TimeoutError', async () => {
    const clock = new VirtualClock();
    const call = track(timeout({ ms: 100, clock }).execute(untilAborted()));
    await clock.advance(100);
    isTimeout(call.error, 100);
  });

  test('the signal is created lazily: an operation that never reads it builds no AbortController and still times out', async () => {
    const clock = new VirtualClock();
    const Original = globalThis.AbortController;
    let created = 0;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        created++;
      }
    };
    try {
      const t = timeout({ ms: 50, clock });
      const call = track(t.execute(hang));
      await clock.advance(50);
      isTimeout(call.error, 50);
      assert.equal(created, 0);
      const reads = track(
        t.execute(({ signal }) => {
          assert.equal(signal.aborted, false);
          return hang();
        }),
      );
      await clock.advance(50);
      isTimeout(reads.error, 50);
      assert.equal(created, 1);
    } finally {
      globalThis.AbortController = Original;
    }
  });

  test('a late result is discarded: the call stays rejected with the TimeoutError', async () => {
    const clock = new VirtualClock();
    const work = deferred<string>();
    const call = track(timeout({ ms: 100, clock }).execute(() => work.promise));
    await clock.advance(100);
    isTimeout(call.error, 100);
    work.resolve('late');
    await clock.advance(0);
    assert.equal(call.status, 'rejected');
    isTimeout(call.error, 100);
  });

  test('a late failure is discarded without an unhandled rejection', async () => {
    const clock = new VirtualClock();
    const work = deferred<string>();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const call = track(timeout({ ms: 100, clock }).execute(() => work.promise));
      await clock.advance(100);
      work.reject(new Error('late failure'));
      await clock.advance(0);
      await clock.advance(0);
      isTimeout(call.error, 100);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('a result before the deadline is returned and the deadline timer is cleared', async () => {
    const clock = new VirtualClock();
    const call = track(
      timeout({ ms: 1_000, clock }).execute(async () => {
        await clock.sleep(400);
        return 'fast';
      }),
    );
    await clock.advance(400);
    assert.equal(call.value, 'fast');
    assert.equal(clock.pendingTimers, 0);
  });

  test("an operation's own failure before the deadline is rethrown as-is", async () => {
    const clock = new VirtualClock();
    const failure = new Error('boom');
    const call = track(
      timeout({ ms: 1_000, clock }).execute(async () => {
        await clock.sleep(10);
        throw failure;
      }),
    );
    await clock.advance(10);
    assert.equal(call.error, failure);
    assert.equal(clock.pendingTimers, 0);
  });

  test('timeout(ms) is shorthand for timeout({ ms })', async () => {
    assert.deepEqual(timeout(250).describe(), { kind: 'timeout', name: 'timeout', options: { ms: 250 } });
  });

  test('the inner of two nested timeouts cannot extend the outer one', async () => {
    const clock = new VirtualClock();
    const call = await runToEnd(
      clock,
      pipeline(timeout({ ms: 100, clock }), timeout({ ms: 500, clock })).execute(hang),
    );
    isTimeout(call.error, 100);
    assert.equal(clock.now(), 100);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('timeout: per attempt or overall by position', () => {
  test('inside a retry each attempt gets a fresh budget and a fresh signal', async () => {
    const clock = new VirtualClock();
    const contexts: Array<{ signal: AbortSignal; attempt: number; at: number }> = [];
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: constant({ ms: 0 }), clock }),
      timeout({ ms: 100, clock }),
    );
    const call = track(
      p.execute(({ signal, attempt }) => {
        contexts.push({ signal, attempt, at: clock.now() });
        if (attempt < 3) return hang();
        return 'third time lucky';
      }),
    );
    await clock.advance(100);
    assert.equal(contexts.length, 2);
    assert.equal(contexts[0]?.signal.aborted, true);
    // Aborting attempt 1's signal did not abort attempt 2's.
    assert.equal(contexts[1]?.signal.aborted, false);
    assert.notEqual(contexts[0]?.signal, contexts[1]?.signal);
    await clock.advance(100);
    assert.equal(call.value, 'third time lucky');
    assert.deepEqual(
      contexts.map((c) => [c.attempt, c.at]),
      [
        [1, 0],
        [2, 100],
        [3, 200],
      ],
    );
    assert.equal(contexts[1]?.signal.aborted, true);
    assert.equal(contexts[2]?.signal.aborted, false);
    assert.equal(clock.pendingTimers, 0);
  });

  test('inside a retry a per-attempt TimeoutError is retried and ends as the cause when exhausted', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      retry({ maxAttempts: 2, backoff: constant({ ms: 10 }), clock }),
      timeout({ ms: 100, clock }),
    );
    const call = await runToEnd(clock, p.execute(hang));
    assert.equal((call.error as { code?: string }).code, ErrorCodes.RETRIES_EXHAUSTED);
    isTimeout((call.error as Error).cause, 100);
    assert.equal(clock.now(), 210);
  });

  test('outside a retry the timeout bounds all attempts together', async () => {
    const clock = new VirtualClock();
    const startedAt: number[] = [];
    const p = pipeline(
      timeout({ ms: 1_000, clock }),
      retry({ maxAttempts: 100, backoff: constant({ ms: 300 }), clock }),
    );
    const call = await runToEnd(
      clock,
      p.execute(async () => {
        startedAt.push(clock.now());
        throw connectionReset();
      }),
    );
    isTimeout(call.error, 1_000);
    assert.deepEqual(startedAt, [0, 300, 600, 900]);
    assert.equal(clock.now(), 1_000);
    assert.equal(clock.pendingTimers, 0);
  });

  test('outside a retry the signal of the running attempt aborts at the overall deadline', async () => {
    const clock = new VirtualClock();
    const signals: AbortSignal[] = [];
    const p = pipeline(
      timeout({ ms: 250, clock }),
      retry({ maxAttempts: 5, backoff: constant({ ms: 0 }), clock }),
    );
    const call = await runToEnd(
      clock,
      p.execute(async ({ signal }) => {
        signals.push(signal);
        await clock.sleep(100);
        throw withCode('ETIMEDOUT', 'slow and failing');
      }),
    );
    isTimeout(call.error, 250);
    assert.equal(signals.length, 3);
    assert.ok(signals.every((s) => s.aborted));
  });

  test('regression (opossum): one of two concurrent calls times out, the other is not aborted and completes', async () => {
    const clock = new VirtualClock();
    const p = pipeline(timeout({ ms: 100, clock }));
    let slowSignal: AbortSignal | undefined;
    let okSignal: AbortSignal | undefined;
    const slow = track(
      p.execute(({ signal }) => {
        slowSignal = signal;
        return hang();
      }),
    );
    await clock.advance(50);
    const ok = track(
      p.execute(async ({ signal }) => {
        okSignal = signal;
        await clock.sleep(80); // runs 50–130, across the other call's deadline at 100
        return signal.aborted ? 'aborted' : 'completed';
      }),
    );
    await clock.advance(50);
    isTimeout(slow.error, 100);
    assert.equal(slowSignal?.aborted, true);
    assert.equal(okSignal?.aborted, false);
    assert.notEqual(slowSignal, okSignal);
    await clock.advance(30);
    assert.equal(ok.value, 'completed');
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('timeout: warnings', () => {
  test('timeout:warning fires at 75% and 90% of the budget when someone listens', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 1_000, clock, name: 'db-timeout' });
    const events = recordEvents(t);
    const call = track(t.execute(hang, { operation: 'query' }));
    await clock.advance(749);
    assert.deepEqual(events, []);
    await clock.advance(1);
    await clock.advance(150);
    await clock.advance(100);
    isTimeout(call.error, 1_000);
    assert.deepEqual(events, [
      {
        type: 'timeout:warning',
        policy: 'db-timeout',
        operation: 'query',
        fraction: 0.75,
        timeoutMs: 1_000,
        elapsedMs: 750,
      },
      {
        type: 'timeout:warning',
        policy: 'db-timeout',
        operation: 'query',
        fraction: 0.9,
        timeoutMs: 1_000,
        elapsedMs: 900,
      },
      { type: 'timeout:fired', policy: 'db-timeout', operation: 'query', timeoutMs: 1_000 },
    ]);
  });

  test('no warning timers are scheduled when nobody listens', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 1_000, clock });
    track(t.execute(hang));
    assert.equal(clock.pendingTimers, 1);
    await clock.runAll();
    assert.equal(clock.pendingTimers, 0);
  });

  test('no warning after the call settled, and its warning timers are cleared', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 1_000, clock });
    const warnings: unknown[] = [];
    t.events.on('timeout:warning', (e) => warnings.push(e));
    const call = track(
      t.execute(async () => {
        await clock.sleep(800);
        return 'done';
      }),
    );
    await clock.advance(800);
    assert.equal(call.value, 'done');
    assert.equal(warnings.length, 1); // the 75% one, before it settled
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(1_000);
    assert.equal(warnings.length, 1);
  });

  test('warnings reach a pipeline listener too', async () => {
    const clock = new VirtualClock();
    const p = pipeline(timeout({ ms: 100, clock }));
    const fractions: number[] = [];
    p.events.on('timeout:warning', (e) => fractions.push(e.fraction));
    await runToEnd(clock, p.execute(hang));
    assert.deepEqual(fractions, [0.75, 0.9]);
  });
});

describe('timeout: cancellation and cleanup', () => {
  test("a caller abort surfaces the caller's reason at once, not a TimeoutError", async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const reason = new Error('user navigated away');
    let signal: AbortSignal | undefined;
    const call = track(
      timeout({ ms: 1_000, clock }).execute(
        (ctx) => {
          signal = ctx.signal;
          return hang(); // ignores its signal
        },
        { signal: controller.signal },
      ),
    );
    await clock.advance(300);
    controller.abort(reason);
    await clock.advance(0);
    assert.equal(call.status, 'rejected');
    assert.equal(call.error, reason);
    assert.equal(signal?.aborted, true);
    assert.equal(signal?.reason, reason);
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(1_000);
    assert.equal(call.error, reason);
  });

  test('no timer is left behind after success, failure, timeout or caller abort', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 100, clock });
    t.events.on('timeout:warning', () => {}); // warning timers too

    const ok = track(t.execute(() => 'ok'));
    await clock.advance(0);
    assert.equal(ok.value, 'ok');
    assert.equal(clock.pendingTimers, 0);

    const failed = track(t.execute(() => Promise.reject(new Error('no'))));
    await clock.advance(0);
    assert.equal(failed.status, 'rejected');
    assert.equal(clock.pendingTimers, 0);

    const timedOut = track(t.execute(hang));
    await clock.advance(100);
    assert.equal(timedOut.status, 'rejected');
    assert.equal(clock.pendingTimers, 0);

    const controller = new AbortController();
    const aborted = track(t.execute(hang, { signal: controller.signal }));
    await clock.advance(10);
    controller.abort();
    await clock.advance(0);
    assert.equal(aborted.status, 'rejected');
    assert.equal(clock.pendingTimers, 0);
  });

  test('an AbortSignal used for 1,000 sequential calls accumulates no abort listeners', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const p = pipeline(
      timeout({ ms: 1_000, clock }),
      retry({ maxAttempts: 2, backoff: constant({ ms: 1 }), clock }),
      timeout({ ms: 100, clock }),
    );
    const ops: Array<(ctx: ExecutionContext) => unknown> = [
      () => 'ignores the signal',
      ({ signal }) => (signal.aborted ? 'aborted' : 'reads the signal'),
      ({ attempt }) => {
        if (attempt === 1) throw connectionReset();
        return 'retried';
      },
      ({ signal, attempt }) => (attempt === 1 ? new Promise(() => signal) : 'timed out once'),
    ];
    for (let i = 0; i < 1_000; i++) {
      const call = await runToEnd(clock, p.execute(ops[i % ops.length]!, { signal: controller.signal }));
      assert.equal(call.status, 'fulfilled', String(call.error));
    }
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  test("a signal first read after the call settled leaves no listener on the caller's signal", async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    let context: ExecutionContext | undefined;
    const call = track(
      timeout({ ms: 100, clock }).execute(
        (ctx) => {
          context = ctx;
          return 'done';
        },
        { signal: controller.signal },
      ),
    );
    await clock.advance(0);
    assert.equal(call.value, 'done');
    assert.equal(context?.signal.aborted, false); // read only now, from background work
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });

  test('an already aborted parent rejects with its reason before the operation runs', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    await assert.rejects(
      timeout({ ms: 100, clock }).execute(
        () => {
          calls++;
        },
        { signal: AbortSignal.abort('early') },
      ),
      (e) => e === 'early',
    );
    assert.equal(calls, 0);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('timeout: statistics and abandoned work', () => {
  test('stats count timeouts and the work still running after them', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 100, clock });
    const work = deferred();
    track(t.execute(() => work.promise));
    track(t.execute(() => 'quick'));
    await clock.advance(100);
    assert.deepEqual(t.stats(), { timedOut: 1, running: 1 });
    work.resolve('finally');
    await clock.advance(0);
    assert.deepEqual(t.stats(), { timedOut: 1, running: 0 });
  });

  test('work abandoned on a caller abort is counted as running until it settles', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 100, clock });
    const work = deferred();
    const controller = new AbortController();
    track(t.execute(() => work.promise, { signal: controller.signal }));
    controller.abort();
    await clock.advance(0);
    assert.deepEqual(t.stats(), { timedOut: 0, running: 1 });
    work.reject(new Error('finally gave up'));
    await clock.advance(0);
    assert.deepEqual(t.stats(), { timedOut: 0, running: 0 });
  });

  test('a bulkhead outside keeps its slot until work abandoned at the deadline really settles', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, clock });
    const p = pipeline(b, timeout({ ms: 100, clock }));
    const work = deferred();
    const first = track(p.execute(() => work.promise));
    await clock.advance(100);
    isTimeout(first.error, 100);
    assert.equal(b.stats().active, 1);
    let secondStarted = false;
    const second = track(
      p.execute(() => {
        secondStarted = true;
        return 'second';
      }),
    );
    await clock.advance(0);
    assert.equal(secondStarted, false);
    work.resolve('done at last');
    await clock.advance(0);
    assert.equal(second.value, 'second');
    assert.equal(b.stats().active, 0);
  });

  test('a bulkhead outside keeps its slot until work abandoned on a caller abort really settles', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, clock });
    const p = pipeline(b, timeout({ ms: 1_000, clock }));
    const work = deferred();
    const controller = new AbortController();
    const first = track(p.execute(() => work.promise, { signal: controller.signal }));
    await clock.advance(10);
    controller.abort('gave up');
    await clock.advance(0);
    assert.equal(first.error, 'gave up');
    assert.equal(b.stats().active, 1);
    work.resolve('done at last');
    await clock.advance(0);
    assert.equal(b.stats().active, 0);
  });
});

describe('timeout: one timer per policy', () => {
  /** A virtual clock that can park timers, as the system clock does with unref. */
  class ParkingClock extends VirtualClock {
    readonly alive = new Map<object, boolean>();
    keepAlive(handle: object, alive: boolean): void {
      this.alive.set(handle, alive);
    }
  }

  test('concurrent calls share one timer, and each still times out at its own deadline', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 100, clock });
    const first = track(t.execute(hang));
    await clock.advance(30);
    const second = track(t.execute(hang));
    const third = track(t.execute(hang));
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(70);
    assert.equal(first.status, 'rejected');
    assert.equal(second.status, 'pending');
    await clock.advance(29);
    assert.equal(second.status, 'pending');
    await clock.advance(1);
    assert.equal(second.status, 'rejected');
    assert.equal(third.status, 'rejected');
    assert.equal(clock.pendingTimers, 0);
  });

  test('a call that settles early leaves the timer to the calls still waiting', async () => {
    const clock = new VirtualClock();
    const t = timeout({ ms: 100, clock });
    const quick = deferred<string>();
    const first = track(t.execute(() => quick.promise));
    await clock.advance(10);
    const second = track(t.execute(hang));
    quick.resolve('done');
    await clock.advance(99);
    assert.equal(first.status, 'fulfilled');
    assert.equal(second.status, 'pending', 'the shared timer fired at 100 and re-armed for 110');
    await clock.advance(1);
    assert.equal(second.status, 'rejected');
    assert.equal(clock.now(), 110);
    assert.equal(clock.pendingTimers, 0);
  });

  test('on a clock that can park timers, an idle timer is parked, never re-armed, and reused', async () => {
    const clock = new ParkingClock();
    const t = timeout({ ms: 100, clock });
    assert.equal(await t.execute(() => 'a'), 'a');
    assert.equal(clock.pendingTimers, 1);
    const [timer] = [...clock.alive.keys()];
    assert.equal(clock.alive.get(timer!), false, 'parked: it must not hold the process open');
    assert.equal(await t.execute(() => 'b'), 'b');
    assert.equal(clock.pendingTimers, 1, 'the parked timer was reused, not a second one armed');
    await clock.advance(100);
    assert.equal(clock.pendingTimers, 0, 'a parked timer that fires with nothing due is not re-armed');
    const late = track(t.execute(hang));
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(100);
    assert.equal(late.status, 'rejected');
    assert.equal(clock.pendingTimers, 0);
  });

  test('a parked timer is kept alive again while a call waits on it', async () => {
    const clock = new ParkingClock();
    const t = timeout({ ms: 100, clock });
    await t.execute(() => 'a');
    const [timer] = [...clock.alive.keys()];
    const call = track(t.execute(hang));
    assert.equal(clock.alive.get(timer!), true);
    await clock.advance(100);
    assert.equal(call.status, 'rejected');
  });
});
