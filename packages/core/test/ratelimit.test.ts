import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ErrorCodes,
  InvalidOptionsError,
  type RateLimitDecision,
  RateLimitedError,
  type RateLimiterOptions,
  type RateLimitStore,
  rateLimiter,
  VirtualClock,
} from '@bulwark/core';
import { deferred, recordEvents, rejectsWith, throwsInvalid, track } from './support.ts';

const ok = () => 'ok';

/** Runs one call now and says whether it was admitted (RateLimitedError → its retryAfterMs). */
async function attempt(
  limiter: { execute(fn: () => string, options?: { key?: string }): Promise<unknown> },
  key?: string,
): Promise<'ok' | number> {
  try {
    await limiter.execute(ok, key === undefined ? undefined : { key });
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof RateLimitedError);
    assert.equal(error.code, ErrorCodes.RATE_LIMITED);
    return error.retryAfterMs;
  }
}

describe('rateLimiter: options', () => {
  test('rejects invalid options, naming the field', () => {
    const clock = new VirtualClock();
    throwsInvalid(() => rateLimiter({} as RateLimiterOptions), 'rateLimiter');
    throwsInvalid(
      () => rateLimiter({ tokenBucket: { tokens: 1, perMs: 1 }, slidingWindow: { limit: 1, windowMs: 1 } }),
      'rateLimiter.slidingWindow',
    );
    throwsInvalid(
      () => rateLimiter({ tokenBucket: { perMs: 1_000 } as never }),
      'rateLimiter.tokenBucket.tokens',
    );
    throwsInvalid(
      () => rateLimiter({ tokenBucket: { tokens: 5 } as never }),
      'rateLimiter.tokenBucket.perMs',
    );
    throwsInvalid(
      () => rateLimiter({ tokenBucket: { tokens: 5, perMs: 1_000, burst: 1.5 } }),
      'rateLimiter.tokenBucket.burst',
    );
    throwsInvalid(
      () => rateLimiter({ tokenBucket: { tokens: 0, perMs: 1_000 } }),
      'rateLimiter.tokenBucket.tokens',
    );
    throwsInvalid(
      () => rateLimiter({ tokenBucket: { tokens: 1e6, perMs: 1e6, burst: 1e6 } }),
      'rateLimiter.tokenBucket',
    );
    throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 0, windowMs: 1_000 } }),
      'rateLimiter.slidingWindow.limit',
    );
    throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 5 } as never }),
      'rateLimiter.slidingWindow.windowMs',
    );
    throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 5, windowMs: 1_000 }, mode: 'queue' as never }),
      'rateLimiter.mode',
    );
    throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 5, windowMs: 1_000 }, maxWaitMs: 100 }),
      'rateLimiter.maxWaitMs',
    );
    throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 5, windowMs: 1_000 }, maxKeys: 0 }),
      'rateLimiter.maxKeys',
    );
    throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 5, windowMs: 1_000 }, key: 'tenant' as never }),
      'rateLimiter.key',
    );
    throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 5, windowMs: 1_000 }, clock: {} as never }),
      'rateLimiter.clock',
    );
    const store: RateLimitStore = { acquire: () => ({ admitted: true, retryAfterMs: 0 }) };
    throwsInvalid(() => rateLimiter({ store, mode: 'wait' }), 'rateLimiter.mode');
    throwsInvalid(() => rateLimiter({ store, maxKeys: 10 }), 'rateLimiter.maxKeys');
    throwsInvalid(() => rateLimiter({ store: {} as never }), 'rateLimiter.store');
    const message = throwsInvalid(
      () => rateLimiter({ slidingWindow: { limit: 5, windowMs: 1_000 }, maxWait: 5, clock } as never),
      'rateLimiter.maxWait',
    );
    assert.match(message, /maxWaitMs/);
  });

  test('describe() reports the normalised options, burst defaulting to tokens', () => {
    const limiter = rateLimiter({ tokenBucket: { tokens: 10, perMs: 1_000 }, name: 'api' });
    assert.deepEqual(limiter.describe(), {
      kind: 'rate-limiter',
      name: 'api',
      options: {
        tokenBucket: { tokens: 10, perMs: 1_000, burst: 10 },
        mode: 'reject',
        maxWaitMs: Number.POSITIVE_INFINITY,
        keyed: 'context.key',
        cost: 1,
        maxKeys: 10_000,
      },
    });
  });
});

describe('rateLimiter: token bucket', () => {
  test('admits a burst, then rejects with the exact retryAfterMs and the limiter name', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 2, perMs: 1_000, burst: 3 }, clock, name: 'api' });
    assert.equal(await attempt(limiter), 'ok');
    assert.equal(await attempt(limiter), 'ok');
    assert.equal(await attempt(limiter), 'ok');
    await rejectsWith(limiter.execute(ok), RateLimitedError, {
      code: ErrorCodes.RATE_LIMITED,
      retryAfterMs: 500,
      limiter: 'api',
    });
    await clock.advance(499);
    assert.equal(await attempt(limiter), 1);
    await clock.advance(1);
    assert.equal(await attempt(limiter), 'ok');
    assert.equal(clock.pendingTimers, 0);
  });

  test('refills lazily from the clock, up to burst, with no timer', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 100, burst: 2 }, clock });
    assert.equal(limiter.stats().available, 2);
    await attempt(limiter);
    await attempt(limiter);
    assert.equal(limiter.stats().available, 0);
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(150);
    assert.equal(limiter.stats().available, 1);
    await clock.advance(10_000);
    assert.equal(limiter.stats().available, 2); // capped at burst after a long idle
  });

  test('a rate that does not divide the period is exact: 3 per 1000 ms frees a permit after 334 ms', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 3, perMs: 1_000, burst: 2 }, clock });
    assert.equal(await attempt(limiter), 'ok');
    assert.equal(await attempt(limiter), 'ok');
    assert.equal(await attempt(limiter), 334);
    await clock.advance(333);
    assert.equal(await attempt(limiter), 1);
    await clock.advance(1);
    assert.equal(await attempt(limiter), 'ok');
    // The 2/3 ms of refill beyond the permit are kept: the next permit is due at 667 ms, not 668.
    assert.equal(await attempt(limiter), 333);
  });

  test('refill is capped at burst: time spent full earns nothing', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 3, perMs: 1_000, burst: 1 }, clock });
    assert.equal(await attempt(limiter), 'ok');
    await clock.advance(334); // a little over one permit, but the bucket holds one
    assert.equal(await attempt(limiter), 'ok');
    assert.equal(await attempt(limiter), 334);
  });
});

describe('rateLimiter: sliding window', () => {
  test('allows limit calls in any window and names the exact time the oldest leaves it', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ slidingWindow: { limit: 3, windowMs: 1_000 }, clock });
    assert.equal(await attempt(limiter), 'ok');
    await clock.advance(100);
    assert.equal(await attempt(limiter), 'ok');
    await clock.advance(100);
    assert.equal(await attempt(limiter), 'ok');
    await clock.advance(100);
    assert.equal(await attempt(limiter), 700);
    await clock.advance(700);
    assert.equal(await attempt(limiter), 'ok'); // the call at 0 left the window at 1000
    assert.equal(await attempt(limiter), 100);
    assert.equal(limiter.stats().available, 0);
    await clock.advance(5_000);
    assert.equal(limiter.stats().available, 3);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a call for several permits needs them all in the window', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ slidingWindow: { limit: 4, windowMs: 1_000 }, clock, cost: () => 3 });
    assert.equal(await attempt(limiter), 'ok');
    await clock.advance(200);
    assert.equal(await attempt(limiter), 800);
  });
});

describe('rateLimiter: permits per call', () => {
  test('cost(context) sets the permits a call takes', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({
      tokenBucket: { tokens: 10, perMs: 1_000 },
      clock,
      cost: ({ operation }) => (operation === 'bulk' ? 8 : 1),
    });
    await limiter.execute(ok, { operation: 'bulk' });
    assert.equal(limiter.stats().available, 2);
    await rejectsWith(limiter.execute(ok, { operation: 'bulk' }), RateLimitedError, { retryAfterMs: 600 });
    await limiter.execute(ok);
    assert.equal(limiter.stats().available, 1);
  });

  test('a call asking for more than the limit can ever grant is rejected with retryAfterMs Infinity', async () => {
    const clock = new VirtualClock();
    for (const options of [
      { tokenBucket: { tokens: 5, perMs: 1_000 } },
      { slidingWindow: { limit: 5, windowMs: 1_000 } },
    ]) {
      const limiter = rateLimiter({ ...options, clock, cost: () => 6 });
      await rejectsWith(limiter.execute(ok), RateLimitedError, { retryAfterMs: Number.POSITIVE_INFINITY });
      const waiting = rateLimiter({ ...options, clock, cost: () => 6, mode: 'wait' });
      await rejectsWith(waiting.execute(ok), RateLimitedError, { retryAfterMs: Number.POSITIVE_INFINITY });
    }
    assert.equal(clock.pendingTimers, 0);
  });

  test('a cost that is not a whole number ≥ 0 fails the call with InvalidOptionsError', async () => {
    const limiter = rateLimiter({ tokenBucket: { tokens: 5, perMs: 1_000 }, cost: () => -1 });
    await rejectsWith(limiter.execute(ok), InvalidOptionsError, { path: 'rateLimiter.cost' });
  });

  test('a key() or cost() that throws fails the call, not execute itself', async () => {
    const boom = new Error('boom');
    const limiter = rateLimiter({
      tokenBucket: { tokens: 5, perMs: 1_000 },
      key: () => {
        throw boom;
      },
    });
    await assert.rejects(limiter.execute(ok), (e) => e === boom);
  });
});

describe("rateLimiter: mode 'wait'", () => {
  test('waiters are admitted first in first out, with one timer for the head only', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 100, burst: 1 }, clock, mode: 'wait' });
    const order: number[] = [];
    await limiter.execute(ok);
    const calls = [1, 2, 3].map((i) => track(limiter.execute(() => order.push(i))));
    assert.equal(limiter.stats().waiting, 3);
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(100);
    assert.deepEqual(order, [1]);
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(200);
    assert.deepEqual(order, [1, 2, 3]);
    assert.ok(calls.every((c) => c.status === 'fulfilled'));
    assert.equal(limiter.stats().waiting, 0);
    assert.equal(limiter.stats().admitted, 4);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a later small call never overtakes an earlier large one, even when its permits are free', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({
      tokenBucket: { tokens: 1, perMs: 100, burst: 3 },
      clock,
      mode: 'wait',
      cost: ({ operation }) => (operation === 'big' ? 3 : 1),
    });
    await limiter.execute(ok, { operation: 'big' }); // empties the bucket
    await clock.advance(100); // one permit back
    const order: string[] = [];
    const big = track(limiter.execute(() => order.push('big'), { operation: 'big' }));
    const small = track(limiter.execute(() => order.push('small')));
    await clock.advance(199);
    assert.deepEqual(order, []);
    await clock.advance(1);
    assert.deepEqual(order, ['big']);
    await clock.advance(100);
    assert.deepEqual(order, ['big', 'small']);
    assert.equal(big.status, 'fulfilled');
    assert.equal(small.status, 'fulfilled');
    assert.equal(clock.pendingTimers, 0);
  });

  test('a call whose wait behind the queue would exceed maxWaitMs is rejected at once with that wait', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({
      slidingWindow: { limit: 2, windowMs: 1_000 },
      clock,
      mode: 'wait',
      maxWaitMs: 1_500,
    });
    await limiter.execute(ok);
    await clock.advance(100);
    await limiter.execute(ok);
    const first = track(limiter.execute(ok)); // admitted at 1000 (900 ms)
    const second = track(limiter.execute(ok)); // admitted at 1100 (1000 ms)
    // The next is due when the first waiter's permit leaves the window: 2000 (1900 ms).
    await rejectsWith(limiter.execute(ok), RateLimitedError, { retryAfterMs: 1_900 });
    await clock.runAll();
    assert.equal(first.status, 'fulfilled');
    assert.equal(second.status, 'fulfilled');
    assert.equal(clock.now(), 1_100);
    assert.equal(limiter.stats().rejected, 1);
  });

  test('a caller who aborts leaves the queue at once with its own reason; the next waiter moves up', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({
      tokenBucket: { tokens: 1, perMs: 100, burst: 3 },
      clock,
      mode: 'wait',
      cost: ({ operation }) => (operation === 'big' ? 3 : 1),
    });
    await limiter.execute(ok, { operation: 'big' });
    const controller = new AbortController();
    const big = track(limiter.execute(ok, { operation: 'big', signal: controller.signal }));
    const small = track(limiter.execute(ok));
    await clock.advance(100);
    assert.equal(small.status, 'pending');
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await clock.advance(0);
    assert.equal(big.status, 'rejected');
    assert.equal(big.error, reason);
    assert.equal(small.status, 'fulfilled'); // the permit already free went to it at once
    assert.equal(limiter.stats().waiting, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  test('an abort of a waiter behind the head keeps the head timer and frees its place', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({
      tokenBucket: { tokens: 1, perMs: 100, burst: 1 },
      clock,
      mode: 'wait',
      maxWaitMs: 200,
    });
    await limiter.execute(ok);
    const head = track(limiter.execute(ok));
    const controller = new AbortController();
    const second = track(limiter.execute(ok, { signal: controller.signal }));
    await rejectsWith(limiter.execute(ok), RateLimitedError, { retryAfterMs: 300 });
    controller.abort(new Error('gone'));
    await clock.advance(0);
    assert.equal(second.status, 'rejected');
    const third = track(limiter.execute(ok)); // fits now: due at 200
    assert.equal(clock.pendingTimers, 1);
    await clock.runAll();
    assert.equal(head.status, 'fulfilled');
    assert.equal(third.status, 'fulfilled');
    assert.equal(clock.now(), 200);
  });

  test('a waiter aborted synchronously by the call admitted before it leaves one timer for the next', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 100, burst: 1 }, clock, mode: 'wait' });
    await limiter.execute(ok);
    const controller = new AbortController();
    const first = track(
      limiter.execute(() => {
        controller.abort(new Error('second gives up'));
        return 'first';
      }),
    );
    const second = track(limiter.execute(ok, { signal: controller.signal }));
    const third = track(limiter.execute(ok));
    await clock.advance(100);
    assert.equal(first.status, 'fulfilled');
    assert.equal(second.status, 'rejected');
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(100);
    assert.equal(third.status, 'fulfilled');
    assert.equal(clock.pendingTimers, 0);
  });

  test('a call admitted from the queue that calls the limiter again synchronously leaves one timer', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 100, burst: 1 }, clock, mode: 'wait' });
    await limiter.execute(ok);
    let inner: ReturnType<typeof track> | undefined;
    const outer = track(
      limiter.execute(() => {
        inner = track(limiter.execute(ok));
        return 'outer';
      }),
    );
    await clock.advance(100);
    assert.equal(outer.status, 'fulfilled');
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(100);
    assert.equal(inner?.status, 'fulfilled');
    assert.equal(clock.pendingTimers, 0);
  });

  test('an already aborted scope is refused before it queues', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 100 }, clock, mode: 'wait' });
    await limiter.execute(ok);
    const controller = new AbortController();
    const call = track(limiter.execute(ok, { signal: controller.signal }));
    controller.abort(new Error('stop'));
    await clock.advance(0);
    assert.equal(call.status, 'rejected');
    assert.equal(clock.pendingTimers, 0);
  });

  test("emits 'ratelimit:waited' with the wait, and 'ratelimit:rejected' with key and retryAfterMs", async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({
      tokenBucket: { tokens: 1, perMs: 100 },
      clock,
      mode: 'wait',
      maxWaitMs: 100,
      name: 'rl',
    });
    const events = recordEvents(limiter);
    await limiter.execute(ok, { key: 't1' });
    const waited = track(limiter.execute(ok, { key: 't1', operation: 'op' }));
    await rejectsWith(limiter.execute(ok, { key: 't1' }), RateLimitedError);
    await clock.runAll();
    assert.equal(waited.status, 'fulfilled');
    assert.deepEqual(events, [
      { type: 'ratelimit:rejected', policy: 'rl', operation: undefined, key: 't1', retryAfterMs: 200 },
      { type: 'ratelimit:waited', policy: 'rl', operation: 'op', key: 't1', waitMs: 100 },
    ]);
  });
});

describe('rateLimiter: keyed limits', () => {
  test('each ctx.key has its own limit; calls without a key share the default one', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 1_000 }, clock });
    assert.equal(await attempt(limiter, 'a'), 'ok');
    assert.equal(await attempt(limiter, 'b'), 'ok');
    assert.equal(await attempt(limiter), 'ok');
    assert.equal(await attempt(limiter, 'a'), 1_000);
    assert.equal(await attempt(limiter), 1_000);
    assert.equal(limiter.stats().keys, 2);
  });

  test('key(context) picks the key instead of ctx.key', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({
      slidingWindow: { limit: 1, windowMs: 1_000 },
      clock,
      key: ({ operation }) => operation,
    });
    await limiter.execute(ok, { operation: 'x', key: 'ignored' });
    await limiter.execute(ok, { operation: 'y', key: 'ignored' });
    await rejectsWith(limiter.execute(ok, { operation: 'x' }), RateLimitedError);
  });

  test('past maxKeys the least recently used key is dropped and starts afresh', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 1_000 }, clock, maxKeys: 2 });
    await attempt(limiter, 'a');
    await attempt(limiter, 'b');
    assert.equal(await attempt(limiter, 'a'), 1_000); // a is now the most recently used
    await attempt(limiter, 'c'); // drops b
    assert.equal(limiter.stats().keys, 2);
    assert.equal(await attempt(limiter, 'a'), 1_000); // kept
    assert.equal(await attempt(limiter, 'b'), 'ok'); // fresh again (and drops c)
    assert.equal(await attempt(limiter, 'c'), 'ok');
  });

  test('the default limit and keys with waiters are never dropped', async () => {
    const clock = new VirtualClock();
    const limiter = rateLimiter({ tokenBucket: { tokens: 1, perMs: 100 }, clock, maxKeys: 1, mode: 'wait' });
    await limiter.execute(ok);
    await limiter.execute(ok, { key: 'a' });
    const waiting = track(limiter.execute(ok, { key: 'a' }));
    await limiter.execute(ok, { key: 'b' }); // over maxKeys, but 'a' has a waiter
    assert.equal(limiter.stats().keys, 2);
    const defaultCall = track(limiter.execute(ok)); // the default limit still remembers its use
    await clock.advance(99);
    assert.equal(waiting.status, 'pending');
    assert.equal(defaultCall.status, 'pending');
    await clock.runAll();
    assert.equal(waiting.status, 'fulfilled');
    assert.equal(defaultCall.status, 'fulfilled');
    assert.equal(clock.now(), 100);
  });
});

describe('rateLimiter: store', () => {
  test('a custom store decides each call from key, clock time and permits', async () => {
    const clock = new VirtualClock(5_000);
    const seen: unknown[] = [];
    const store: RateLimitStore = {
      acquire(key, now, permits): RateLimitDecision {
        seen.push([key, now, permits]);
        return key === 'full' ? { admitted: false, retryAfterMs: 250 } : { admitted: true, retryAfterMs: 0 };
      },
    };
    const limiter = rateLimiter({ store, clock, cost: () => 2, name: 'cluster' });
    assert.equal(await limiter.execute(ok, { key: 't' }), 'ok');
    await rejectsWith(limiter.execute(ok, { key: 'full' }), RateLimitedError, {
      retryAfterMs: 250,
      limiter: 'cluster',
    });
    assert.deepEqual(seen, [
      ['t', 5_000, 2],
      ['full', 5_000, 2],
    ]);
    assert.deepEqual(limiter.stats(), {
      admitted: 1,
      rejected: 1,
      waiting: 0,
      available: undefined,
      keys: 0,
    });
  });

  test('an asynchronous store is awaited, and its failure fails the call', async () => {
    const failure = new Error('redis down');
    let fail = false;
    const store: RateLimitStore = {
      acquire: async () => {
        if (fail) throw failure;
        return { admitted: true, retryAfterMs: 0 };
      },
    };
    const limiter = rateLimiter({ store });
    assert.equal(await limiter.execute(ok), 'ok');
    fail = true;
    await assert.rejects(limiter.execute(ok), (e) => e === failure);
  });

  test('a caller who aborts while the store answers leaves at once with its reason, and nothing runs', async () => {
    const decision = deferred<RateLimitDecision>();
    const limiter = rateLimiter({ store: { acquire: () => decision.promise } });
    const controller = new AbortController();
    let ran = false;
    const call = track(
      limiter.execute(
        () => {
          ran = true;
        },
        { signal: controller.signal },
      ),
    );
    const reason = new Error('gone');
    controller.abort(reason);
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(call.status, 'rejected');
    assert.equal(call.error, reason);
    decision.resolve({ admitted: true, retryAfterMs: 0 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(ran, false);
  });

  test('a store that answers something other than a decision fails the call, not execute itself', async () => {
    const limiter = rateLimiter({ store: { acquire: () => undefined as unknown as RateLimitDecision } });
    let call: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      call = limiter.execute(ok);
    });
    await assert.rejects(call!, TypeError);
  });
});
