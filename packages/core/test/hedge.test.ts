// Unit tests of the hedge policy: launch timing, the winner and the aborted losers, the bound
// on hedges, failures, the caller's abort, and the adaptive (quantile) delay. On a VirtualClock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  bulkhead,
  ErrorCodes,
  type ExecutionContext,
  HedgeLostError,
  hedge,
  pipeline,
  VirtualClock,
} from '@bulwark/core';
import {
  assertError,
  type Deferred,
  deferred,
  permanent,
  recordEvents,
  seeded,
  throwsInvalid,
  track,
  transient,
} from './support.ts';

/** An operation whose attempts the test settles by hand; it keeps each attempt's signal. */
function attempts() {
  const calls: { d: Deferred; signal: AbortSignal; at: number }[] = [];
  return {
    calls,
    op:
      (clock: VirtualClock) =>
      ({ signal }: ExecutionContext): Promise<unknown> => {
        const d = deferred();
        calls.push({ d, signal, at: clock.now() });
        return d.promise;
      },
  };
}

describe('hedge: fixed delay', () => {
  test('a hedge starts exactly delayMs after the primary, not before', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const call = track(hedge({ delayMs: 100, clock }).execute(op(clock)));
    await clock.advance(99);
    assert.equal(calls.length, 1);
    await clock.advance(1);
    assert.deepEqual(
      calls.map((c) => c.at),
      [0, 100],
    );
    calls[1]!.d.resolve('hedge');
    await clock.advance(0);
    assert.equal(call.value, 'hedge');
  });

  test('a call that succeeds before the delay starts no hedge and leaves no timer', async () => {
    const clock = new VirtualClock();
    const policy = hedge({ delayMs: 100, clock });
    const events = recordEvents(policy);
    const call = track(
      policy.execute(async () => {
        await clock.sleep(40);
        return 'fast';
      }),
    );
    await clock.advance(40);
    assert.equal(call.value, 'fast');
    assert.equal(clock.pendingTimers, 0);
    assert.deepEqual(events, []);
    assert.deepEqual(policy.stats(), { calls: 1, hedged: 0, hedgesLaunched: 0, hedgeWins: 0, delayMs: 100 });
  });

  test("the winner's result is returned; the losers' signals abort with HedgeLostError, the winner's never", async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const policy = hedge({ delayMs: 50, maxHedges: 2, clock });
    const call = track(policy.execute(op(clock)));
    await clock.advance(100);
    assert.equal(calls.length, 3);
    calls[1]!.d.resolve('from hedge 1');
    await clock.advance(0);
    assert.equal(call.value, 'from hedge 1');
    assert.equal(calls[1]!.signal.aborted, false);
    for (const loser of [calls[0]!, calls[2]!]) {
      assert.equal(loser.signal.aborted, true);
      assertError(loser.signal.reason, HedgeLostError, { code: ErrorCodes.HEDGE_LOST, winner: 2 });
    }
    assert.equal(clock.pendingTimers, 0);
    assert.deepEqual(policy.stats(), { calls: 1, hedged: 1, hedgesLaunched: 2, hedgeWins: 1, delayMs: 50 });
  });

  test('the primary may still win after hedges started; a late loser result is discarded', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const policy = hedge({ delayMs: 50, clock });
    const call = track(policy.execute(op(clock)));
    await clock.advance(60);
    calls[0]!.d.resolve('primary');
    calls[1]!.d.resolve('late');
    await clock.advance(0);
    assert.equal(call.value, 'primary');
    assert.equal(calls[1]!.signal.aborted, true);
    assert.equal(policy.stats().hedgeWins, 0);
  });

  test('maxHedges bounds the attempts: one every delayMs, then no more', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const policy = hedge({ delayMs: 100, maxHedges: 2, clock });
    const events = recordEvents(policy);
    track(policy.execute(op(clock), { operation: 'search' }));
    await clock.advance(10_000);
    assert.deepEqual(
      calls.map((c) => c.at),
      [0, 100, 200],
    );
    assert.equal(clock.pendingTimers, 0);
    assert.deepEqual(events, [
      {
        type: 'hedge:launched',
        policy: 'hedge',
        operation: 'search',
        attempt: 2,
        delayMs: 100,
        trigger: 'delay',
      },
      {
        type: 'hedge:launched',
        policy: 'hedge',
        operation: 'search',
        attempt: 3,
        delayMs: 100,
        trigger: 'delay',
      },
    ]);
    calls[2]!.d.resolve('done');
  });
});

describe('hedge: failures', () => {
  test("when every attempt fails, the primary's error surfaces, even if a hedge failed first", async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const call = track(hedge({ delayMs: 100, clock }).execute(op(clock)));
    await clock.advance(100);
    const primaryError = transient();
    calls[1]!.d.reject(transient());
    await clock.advance(10);
    assert.equal(call.status, 'pending');
    calls[0]!.d.reject(primaryError);
    await clock.advance(0);
    assert.equal(call.error, primaryError);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a transient failure before the delay starts the next hedge at once', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const policy = hedge({ delayMs: 100, maxHedges: 2, clock });
    const events = recordEvents(policy);
    track(policy.execute(op(clock)));
    await clock.advance(30);
    calls[0]!.d.reject(transient());
    await clock.advance(0);
    assert.deepEqual(
      calls.map((c) => c.at),
      [0, 30],
    );
    // The delay restarts from the hedge started early.
    await clock.advance(100);
    assert.deepEqual(
      calls.map((c) => c.at),
      [0, 30, 130],
    );
    assert.deepEqual(
      events.map((e) => e.type === 'hedge:launched' && e.trigger),
      ['failure', 'delay'],
    );
    calls[2]!.d.resolve('ok');
  });

  test('a failure shouldHedge refuses starts no more hedges and, alone, ends the call at once', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const call = track(hedge({ delayMs: 100, clock }).execute(op(clock)));
    const notFound = permanent();
    calls[0]!.d.reject(notFound);
    await clock.advance(0);
    assert.equal(call.error, notFound);
    assert.equal(calls.length, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a refused failure lets the attempts already running finish', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const call = track(hedge({ delayMs: 100, maxHedges: 3, clock }).execute(op(clock)));
    await clock.advance(100);
    calls[0]!.d.reject(permanent());
    await clock.advance(1_000);
    assert.equal(calls.length, 2);
    assert.equal(call.status, 'pending');
    calls[1]!.d.resolve('hedge');
    await clock.advance(0);
    assert.equal(call.value, 'hedge');
  });

  test('a shouldHedge that throws rejects the call with its error, aborts the others and leaves no timer', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const bug = new Error('predicate bug');
    const policy = hedge({
      delayMs: 100,
      maxHedges: 2,
      clock,
      shouldHedge: () => {
        throw bug;
      },
    });
    const call = track(policy.execute(op(clock)));
    await clock.advance(100);
    calls[1]!.d.reject(transient());
    await clock.advance(0);
    assert.equal(call.error, bug);
    assert.equal(calls[0]!.signal.aborted, true);
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(1_000);
    assert.equal(calls.length, 2);
  });
});

describe('hedge: cancellation', () => {
  test("the caller's abort aborts every attempt and surfaces the caller's reason at once", async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const controller = new AbortController();
    const call = track(
      hedge({ delayMs: 100, maxHedges: 2, clock }).execute(op(clock), { signal: controller.signal }),
    );
    await clock.advance(150);
    controller.abort('user left');
    await clock.advance(0);
    assert.equal(call.error, 'user left');
    assert.ok(calls.every((c) => c.signal.aborted && c.signal.reason === 'user left'));
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(1_000);
    assert.equal(calls.length, 2);
  });

  test('an outer bulkhead keeps its slot until an aborted loser really settles', async () => {
    const clock = new VirtualClock();
    const { calls, op } = attempts();
    const bh = bulkhead({ maxConcurrent: 1, maxQueue: 0 });
    const p = pipeline(bh, hedge({ delayMs: 10, clock }));
    const call = track(p.execute(op(clock)));
    await clock.advance(10);
    calls[1]!.d.resolve('hedge');
    await clock.advance(0);
    assert.equal(call.value, 'hedge');
    assert.equal(bh.stats().active, 1);
    calls[0]!.d.reject(calls[0]!.signal.reason);
    await clock.advance(0);
    assert.equal(bh.stats().active, 0);
  });
});

describe('hedge: adaptive delay', () => {
  /** Latencies drawn from a seeded long-tailed distribution: mostly 20–60 ms, 10% up to 500 ms. */
  function latencyOf(random: () => number): number {
    return random() < 0.9 ? 20 + Math.round(random() * 40) : 100 + Math.round(random() * 400);
  }
  const nearestRank = (values: number[], q: number) =>
    [...values].sort((a, b) => a - b)[Math.ceil(q * values.length) - 1]!;

  test('uses fallbackDelayMs until minSamples latencies are seen, then the observed quantile', async () => {
    const clock = new VirtualClock();
    const policy = hedge({ quantile: 0.5, minSamples: 3, fallbackDelayMs: 250, clock });
    const run = async (ms: number) => {
      const call = policy.execute(async () => {
        await clock.sleep(ms);
        return ms;
      });
      await clock.advance(ms);
      await call;
    };
    assert.equal(policy.stats().delayMs, 250);
    await run(10);
    await run(30);
    assert.equal(policy.stats().delayMs, 250);
    await run(20);
    assert.equal(policy.stats().delayMs, 20);
  });

  test('the delay converges to the observed p95 of a seeded latency distribution', async () => {
    const clock = new VirtualClock();
    const random = seeded(42);
    const policy = hedge({
      quantile: 0.95,
      windowMs: 600_000,
      maxSamples: 500,
      fallbackDelayMs: 1_000,
      clock,
    });
    const observed: number[] = [];
    for (let i = 0; i < 2_000; i++) {
      const ms = latencyOf(random);
      observed.push(ms);
      let n = 0;
      // The primary takes `ms`; hedges never answer, so the primary always wins and every latency is seen.
      const call = policy.execute(({ signal }) =>
        n++ === 0
          ? clock.sleep(ms).then(() => ms)
          : new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      );
      await clock.advance(ms);
      await call;
    }
    await clock.advance(60_000); // past the cache of a tenth of the window
    const p95 = nearestRank(observed.slice(-500), 0.95);
    assert.ok(p95 > 100, `a tail worth hedging: ${p95}`);
    assert.equal(policy.stats().delayMs, p95);
    assert.equal(clock.pendingTimers, 0);
  });

  test('latencies older than windowMs are forgotten: after idle time the fallback delay returns', async () => {
    const clock = new VirtualClock();
    const policy = hedge({ quantile: 0.9, windowMs: 1_000, minSamples: 1, fallbackDelayMs: 75, clock });
    const call = policy.execute(() => clock.sleep(30).then(() => 'ok'));
    await clock.advance(30);
    await call;
    assert.equal(policy.stats().delayMs, 30);
    await clock.advance(1_000);
    assert.equal(policy.stats().delayMs, 75);
  });
});

describe('hedge: options', () => {
  test('invalid options name their path', () => {
    throwsInvalid(() => hedge({} as never), 'hedge');
    throwsInvalid(() => hedge({ delayMs: 10, quantile: 0.9 } as never), 'hedge');
    throwsInvalid(() => hedge({ delayMs: -1 }), 'hedge.delayMs');
    throwsInvalid(() => hedge({ delayMs: 10, maxHedges: 0 }), 'hedge.maxHedges');
    throwsInvalid(() => hedge({ delayMs: 10, windowMs: 10 } as never), 'hedge.windowMs');
    throwsInvalid(() => hedge({ quantile: 1, fallbackDelayMs: 10 }), 'hedge.quantile');
    throwsInvalid(() => hedge({ quantile: 0.9 } as never), 'hedge.fallbackDelayMs');
    throwsInvalid(
      () => hedge({ quantile: 0.9, fallbackDelayMs: 10, minSamples: 5, maxSamples: 4 }),
      'hedge.minSamples',
    );
    throwsInvalid(() => hedge({ delayMs: 10, shouldHedge: 1 as never }), 'hedge.shouldHedge');
  });

  test('describe() shows the normalised options', () => {
    assert.deepEqual(hedge({ delayMs: 10 }).describe(), {
      kind: 'hedge',
      name: 'hedge',
      options: { delayMs: 10, maxHedges: 1 },
    });
    assert.deepEqual(hedge({ quantile: 0.99, fallbackDelayMs: 200, name: 'search' }).describe(), {
      kind: 'hedge',
      name: 'search',
      options: {
        quantile: 0.99,
        windowMs: 60_000,
        minSamples: 20,
        fallbackDelayMs: 200,
        maxSamples: 1_000,
        maxHedges: 1,
      },
    });
  });
});
