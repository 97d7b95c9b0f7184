import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type BulkheadPolicy,
  BulkheadRejectedError,
  bulkhead,
  constant,
  ErrorCodes,
  type ExecuteOptions,
  flushMicrotasks,
  pipeline,
  RetriesExhaustedError,
  retry,
  TimeoutError,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import {
  type Deferred,
  deferred,
  recordEvents,
  rejectsWith,
  type Tracked,
  throwsInvalid,
  track,
} from './support.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

/** One call whose operation runs until the test settles it; `started` says whether it ran. */
class Job {
  readonly work = deferred<string>();
  started = false;
  readonly call: Tracked<unknown>;
  constructor(run: (fn: () => Promise<string>) => Promise<unknown>) {
    this.call = track(
      run(() => {
        this.started = true;
        return this.work.promise;
      }),
    );
  }
}

/** Starts a Job that calls `policy.execute` (with `options`). */
function start(
  policy: { execute(fn: () => Promise<string>, options?: ExecuteOptions): Promise<unknown> },
  options?: ExecuteOptions,
): Job {
  return new Job((fn) => policy.execute(fn, options));
}

// ---------------------------------------------------------------------------------------------

describe('bulkhead: concurrency and queue', () => {
  test('runs at most maxConcurrent operations at once', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 10, clock });
    let running = 0;
    let peak = 0;
    const works = Array.from({ length: 6 }, () => deferred());
    const calls = works.map((w) =>
      b.execute(async () => {
        running++;
        peak = Math.max(peak, running);
        try {
          return await w.promise;
        } finally {
          running--;
        }
      }),
    );
    await flushMicrotasks();
    assert.equal(running, 2);
    assert.deepEqual([b.stats().active, b.stats().queued], [2, 4]);
    for (const w of works) {
      w.resolve('done');
      await flushMicrotasks();
      assert.ok(running <= 2);
    }
    await Promise.all(calls);
    assert.equal(peak, 2);
    assert.deepEqual([b.stats().active, b.stats().queued], [0, 0]);
  });

  test('admits queued callers in the order they arrived', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, clock });
    const order: number[] = [];
    const first = start(b);
    const jobs = Array.from({ length: 5 }, (_, i) => {
      const job = new Job((fn) =>
        b.execute(() => {
          order.push(i);
          return fn();
        }),
      );
      return job;
    });
    await flushMicrotasks();
    assert.deepEqual(order, []);
    first.work.resolve('first');
    for (const job of jobs) {
      await flushMicrotasks();
      job.work.resolve('x');
    }
    await Promise.all(jobs.map((j) => j.call.promise));
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
  });

  test('a full queue rejects at once with BulkheadRejectedError reason queue-full', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock, name: 'db' });
    const events = recordEvents(b);
    const running = start(b);
    const queued = start(b);
    const refused = start(b, { operation: 'query' });
    await flushMicrotasks();
    assert.notEqual(refused.call.status, 'pending');
    await rejectsWith(refused.call.promise, BulkheadRejectedError, {
      code: ErrorCodes.BULKHEAD_REJECTED,
      reason: 'queue-full',
      bulkhead: 'db',
    });
    assert.equal(refused.started, false);
    assert.deepEqual(events, [
      {
        type: 'bulkhead:rejected',
        policy: 'db',
        operation: 'query',
        reason: 'queue-full',
        active: 1,
        queued: 1,
      },
    ]);
    assert.equal(b.stats().rejected, 1);
    running.work.resolve('a');
    await flushMicrotasks();
    queued.work.resolve('b');
    assert.deepEqual(await Promise.all([running.call.promise, queued.call.promise]), ['a', 'b']);
  });

  test('with the default maxQueue of 0, a caller finding every slot taken is rejected at once', async () => {
    const b = bulkhead({ maxConcurrent: 1, clock: new VirtualClock() });
    const running = start(b);
    await rejectsWith(
      b.execute(() => 'x'),
      BulkheadRejectedError,
      { reason: 'queue-full' },
    );
    running.work.resolve('ok');
    await running.call.promise;
    assert.equal(await b.execute(() => 'free again'), 'free again');
  });

  test('bulkhead(n) is shorthand for maxConcurrent n', async () => {
    const b = bulkhead(3);
    assert.equal(b.stats().maxConcurrent, 3);
    assert.deepEqual(b.describe().options, { maxConcurrent: 3, maxQueue: 0, queueTimeoutMs: Infinity });
  });

  test('a failing operation gives its slot back to the next in line', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, clock: new VirtualClock() });
    const failing = b.execute(() => {
      throw new Error('sync throw');
    });
    const rejecting = b.execute(() => Promise.reject(new Error('async')));
    const ok = b.execute(() => 'ok');
    await assert.rejects(failing);
    await assert.rejects(rejecting);
    assert.equal(await ok, 'ok');
    assert.equal(b.stats().active, 0);
  });
});

describe('bulkhead: queue timeout', () => {
  test('a queued caller is rejected with reason queue-timeout exactly at queueTimeoutMs', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 500, clock });
    const events: string[] = [];
    b.events.on('bulkhead:rejected', (e) => events.push(`${e.reason}:${e.active}:${e.queued}`));
    const running = start(b);
    await clock.advance(100);
    const waiting = start(b);
    await clock.advance(499);
    assert.equal(waiting.call.status, 'pending');
    assert.equal(b.stats().queued, 1);
    await clock.advance(1);
    assert.notEqual(waiting.call.status, 'pending');
    await rejectsWith(waiting.call.promise, BulkheadRejectedError, {
      code: ErrorCodes.BULKHEAD_REJECTED,
      reason: 'queue-timeout',
    });
    assert.deepEqual([b.stats().queued, b.stats().rejected], [0, 1]);
    assert.deepEqual(events, ['queue-timeout:1:0']);
    running.work.resolve('done');
    await running.call.promise;
    await flushMicrotasks();
    assert.equal(waiting.started, false, 'a timed-out caller never runs');
    assert.equal(b.stats().active, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  test('admission cancels the queue timer', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 500, clock });
    const running = start(b);
    const waiting = start(b);
    assert.equal(clock.pendingTimers, 1);
    running.work.resolve('a');
    await flushMicrotasks();
    assert.equal(waiting.started, true);
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(1_000);
    waiting.work.resolve('b');
    assert.equal(await waiting.call.promise, 'b');
  });

  test('callers admitted at once set no timer at all', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 2, queueTimeoutMs: 500, clock });
    const jobs = [start(b), start(b)];
    assert.equal(clock.pendingTimers, 0);
    for (const j of jobs) j.work.resolve('x');
    await Promise.all(jobs.map((j) => j.call.promise));
  });
});

describe('bulkhead: callers that abort while queued', () => {
  test('leave the queue at once and reject with their own abort reason', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 3, clock });
    const running = start(b);
    const controller = new AbortController();
    const waiting = start(b, { signal: controller.signal });
    const behind = start(b);
    assert.equal(b.stats().queued, 2);
    const reason = new Error('user went away');
    controller.abort(reason);
    assert.equal(b.stats().queued, 1, 'the queue shrinks synchronously on abort');
    await assert.rejects(waiting.call.promise, (e) => e === reason);
    running.work.resolve('a');
    await flushMicrotasks();
    assert.equal(waiting.started, false);
    assert.equal(behind.started, true, 'the caller behind the aborted one gets the slot');
    behind.work.resolve('b');
    await behind.call.promise;
  });

  test('after every queued caller aborts, new callers still get every slot and the queue is empty', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 4, clock });
    const running = [start(b), start(b)];
    const controllers = Array.from({ length: 4 }, () => new AbortController());
    const queued = controllers.map((c) => start(b, { signal: c.signal }));
    for (const c of controllers) c.abort(new Error('gone'));
    await Promise.allSettled(queued.map((q) => q.call.promise));
    assert.deepEqual([b.stats().queued, b.stats().active], [0, 2]);
    for (const r of running) r.work.resolve('x');
    await Promise.all(running.map((r) => r.call.promise));
    assert.equal(b.stats().active, 0);
    const fresh = [start(b), start(b)];
    await flushMicrotasks();
    assert.deepEqual(
      fresh.map((f) => f.started),
      [true, true],
    );
    assert.ok(queued.every((q) => !q.started));
    for (const f of fresh) f.work.resolve('y');
    await Promise.all(fresh.map((f) => f.call.promise));
    assert.equal(clock.pendingTimers, 0);
  });

  test('an aborted caller also drops its queue timer', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 1_000, clock });
    const running = start(b);
    const controller = new AbortController();
    const waiting = start(b, { signal: controller.signal });
    assert.equal(clock.pendingTimers, 1);
    controller.abort(new Error('gone'));
    await assert.rejects(waiting.call.promise);
    assert.equal(clock.pendingTimers, 0);
    assert.equal(b.stats().rejected, 0, 'an abort is not a rejection');
    running.work.resolve('x');
    await running.call.promise;
  });

  test('a caller whose signal is already aborted is not queued', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock: new VirtualClock() });
    const running = start(b);
    const reason = new Error('already gone');
    let ran = false;
    await assert.rejects(
      b.execute(
        () => {
          ran = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
      (e) => e === reason,
    );
    assert.equal(ran, false);
    assert.equal(b.stats().queued, 0);
    running.work.resolve('x');
    await running.call.promise;
  });

  test('aborting an admitted caller does not free its slot while its operation runs on', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock: new VirtualClock() });
    const controller = new AbortController();
    const running = start(b, { signal: controller.signal }); // ignores its signal
    const waiting = start(b);
    controller.abort(new Error('gone'));
    await flushMicrotasks();
    assert.equal(b.stats().active, 1);
    assert.equal(waiting.started, false);
    running.work.resolve('x');
    await flushMicrotasks();
    assert.equal(waiting.started, true);
    waiting.work.resolve('y');
    await waiting.call.promise;
  });

  test('a caller admitted from the queue and then aborted keeps its slot and its promise until the work settles', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, clock: new VirtualClock() });
    const first = start(b);
    const controller = new AbortController();
    const admitted = start(b, { signal: controller.signal }); // ignores its signal
    const last = start(b);
    first.work.resolve('first');
    await flushMicrotasks();
    assert.equal(admitted.started, true);
    controller.abort(new Error('too late to leave the queue'));
    await flushMicrotasks();
    assert.equal(admitted.call.status, 'pending', 'the bulkhead no longer answers for a caller it admitted');
    assert.deepEqual([b.stats().active, b.stats().queued], [1, 1]);
    admitted.work.resolve('done');
    assert.equal(await admitted.call.promise, 'done');
    await flushMicrotasks();
    assert.equal(last.started, true);
    last.work.resolve('last');
    await last.call.promise;
  });

  test('a timeout outside the bulkhead takes its caller out of the queue at its deadline', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const p = pipeline(timeout({ ms: 300, clock }), b);
    const running = start(b);
    const waiting = start(p);
    await clock.advance(299);
    assert.equal(b.stats().queued, 1);
    await clock.advance(1);
    await rejectsWith(waiting.call.promise, TimeoutError, { code: ErrorCodes.TIMEOUT });
    assert.equal(b.stats().queued, 0);
    running.work.resolve('x');
    await running.call.promise;
    await flushMicrotasks();
    assert.equal(waiting.started, false);
    assert.equal(b.stats().active, 0);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('bulkhead: slots are held until the work really settles', () => {
  /** A call through `b`, a retry of `maxAttempts`, then a 100 ms timeout; attempts' work is in `works`. */
  function retriedThroughTimeout(b: BulkheadPolicy, clock: VirtualClock, maxAttempts: number) {
    const works: Deferred<string>[] = [];
    const p = pipeline(
      b,
      retry({ maxAttempts, backoff: constant({ ms: 10 }), clock }),
      timeout({ ms: 100, clock }),
    );
    const call = track(
      p.execute(() => {
        const w = deferred<string>();
        works.push(w);
        return w.promise;
      }),
    );
    return { p, call, works };
  }

  test('after a timeout inside the bulkhead fires, the slot stays taken until the operation settles', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const t = timeout({ ms: 100, clock });
    const p = pipeline(b, t);
    const first = start(p); // ignores its signal
    const second = start(p);
    await flushMicrotasks();
    assert.deepEqual([b.stats().active, b.stats().queued], [1, 1]);
    await clock.advance(100);
    await rejectsWith(first.call.promise, TimeoutError, { code: ErrorCodes.TIMEOUT });
    assert.deepEqual(b.stats(), {
      maxConcurrent: 1,
      active: 1,
      available: 0,
      queued: 1,
      lingering: 1,
      rejected: 0,
    });
    assert.equal(t.stats().running, 1);
    assert.equal(second.started, false, 'the next caller waits for the real work, not for the timeout');
    await clock.advance(10_000);
    assert.equal(second.started, false);

    first.work.resolve('late');
    await flushMicrotasks();
    assert.equal(second.started, true);
    assert.deepEqual([b.stats().active, b.stats().lingering, b.stats().queued], [1, 0, 0]);
    second.work.resolve('second');
    assert.equal(await second.call.promise, 'second');
    assert.equal(b.stats().active, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  test('an abandoned operation that rejects late also releases its slot', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, clock });
    const p = pipeline(b, timeout({ ms: 100, clock }));
    const first = start(p);
    await clock.advance(100);
    await assert.rejects(first.call.promise);
    assert.equal(b.stats().lingering, 1);
    first.work.reject(new Error('late failure'));
    await flushMicrotasks();
    assert.deepEqual([b.stats().active, b.stats().lingering], [0, 0]);
  });

  test('every attempt a retry abandons inside the bulkhead holds a slot of its own until it settles', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const { p, call, works } = retriedThroughTimeout(b, clock, 3);
    const next = start(p);
    await clock.advance(100 + 10 + 100 + 10 + 100);
    await rejectsWith(call.promise, RetriesExhaustedError, { attempts: 3 });
    assert.equal(works.length, 3);
    // Three operations really are still running: active says so, above maxConcurrent.
    assert.deepEqual([b.stats().active, b.stats().lingering, b.stats().available], [3, 3, 0]);
    works[2]!.resolve('c');
    works[0]!.resolve('a');
    await flushMicrotasks();
    assert.deepEqual([b.stats().active, b.stats().lingering], [1, 1]);
    assert.equal(next.started, false, 'one abandoned attempt is still running');
    works[1]!.resolve('b');
    await flushMicrotasks();
    assert.equal(next.started, true);
    next.work.resolve('next');
    await next.call.promise;
    assert.equal(b.stats().active, 0);
  });

  test('an abandoned attempt that settles while the retry goes on does not free the slot early', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const { p, call, works } = retriedThroughTimeout(b, clock, 2);
    const next = start(p);
    await clock.advance(100); // attempt 1 abandoned; backoff of 10 ms
    works[0]!.resolve('late'); // the abandoned work settles while the call is still retrying
    await clock.advance(10); // attempt 2 starts
    assert.equal(works.length, 2);
    assert.deepEqual([b.stats().active, b.stats().lingering], [1, 0]);
    assert.equal(next.started, false, 'the call still holds its slot');
    works[1]!.resolve('second attempt');
    assert.equal(await call.promise, 'second attempt');
    await flushMicrotasks();
    assert.equal(next.started, true);
    next.work.resolve('next');
    await next.call.promise;
    assert.equal(b.stats().active, 0);
  });

  test('nested bulkheads both keep their slots for work abandoned by an inner timeout', async () => {
    const clock = new VirtualClock();
    const outer = bulkhead({ maxConcurrent: 1, clock, name: 'outer' });
    const inner = bulkhead({ maxConcurrent: 1, clock, name: 'inner' });
    const p = pipeline(outer, inner, timeout({ ms: 50, clock }));
    const job = start(p);
    await clock.advance(50);
    await assert.rejects(job.call.promise);
    assert.deepEqual([outer.stats().lingering, inner.stats().lingering], [1, 1]);
    await rejectsWith(
      inner.execute(() => 'x'),
      BulkheadRejectedError,
      { reason: 'queue-full' },
    );
    job.work.resolve('late');
    await flushMicrotasks();
    assert.deepEqual(
      [outer.stats().active, inner.stats().active, outer.stats().lingering, inner.stats().lingering],
      [0, 0, 0, 0],
    );
  });

  test('an operation that settles before its timeout releases the slot normally', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, clock });
    const p = pipeline(b, timeout({ ms: 100, clock }));
    const job = start(p);
    await clock.advance(50);
    job.work.resolve('fast');
    assert.equal(await job.call.promise, 'fast');
    assert.deepEqual([b.stats().active, b.stats().lingering], [0, 0]);
    assert.equal(clock.pendingTimers, 0);
  });

  test("a caller's abort through a timeout inside the bulkhead keeps the slot until the operation settles", async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const p = pipeline(b, timeout({ ms: 1_000, clock }));
    const controller = new AbortController();
    const first = start(p, { signal: controller.signal }); // ignores its signal
    const second = start(p);
    controller.abort(new Error('gone'));
    await assert.rejects(first.call.promise);
    await flushMicrotasks();
    assert.deepEqual([b.stats().active, b.stats().lingering], [1, 1]);
    assert.equal(second.started, false);
    first.work.resolve('late');
    second.work.resolve('second');
    await clock.runAll();
    await second.call.promise;
  });
});

describe('bulkhead: stats and options', () => {
  test('stats() reports slots, queue and rejections', async () => {
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 1, queueTimeoutMs: 100, clock });
    assert.deepEqual(b.stats(), {
      maxConcurrent: 2,
      active: 0,
      available: 2,
      queued: 0,
      lingering: 0,
      rejected: 0,
    });
    const a = start(b);
    assert.deepEqual([b.stats().active, b.stats().available], [1, 1]);
    const c = start(b);
    const queued = start(b);
    const full = start(b);
    await assert.rejects(full.call.promise);
    assert.deepEqual(b.stats(), {
      maxConcurrent: 2,
      active: 2,
      available: 0,
      queued: 1,
      lingering: 0,
      rejected: 1,
    });
    await clock.advance(100);
    await assert.rejects(queued.call.promise);
    assert.equal(b.stats().rejected, 2);
    a.work.resolve('a');
    c.work.resolve('c');
    await Promise.all([a.call.promise, c.call.promise]);
    assert.deepEqual([b.stats().active, b.stats().available, b.stats().queued], [0, 2, 0]);
  });

  test('invalid options are rejected at construction, naming the field', () => {
    const cases: Array<[options: unknown, path: string]> = [
      [{}, 'bulkhead.maxConcurrent'],
      [{ maxConcurrent: 0 }, 'bulkhead.maxConcurrent'],
      [{ maxConcurrent: 1.5 }, 'bulkhead.maxConcurrent'],
      [{ maxConcurrent: 1, maxQueue: -1 }, 'bulkhead.maxQueue'],
      [{ maxConcurrent: 1, queueTimeoutMs: -1 }, 'bulkhead.queueTimeoutMs'],
      [{ maxConcurrent: 1, maxQeue: 3 }, 'bulkhead.maxQeue'],
      [{ maxConcurrent: 1, clock: Date }, 'bulkhead.clock'],
    ];
    for (const [options, path] of cases) throwsInvalid(() => bulkhead(options as never), path);
    assert.equal(bulkhead({ maxConcurrent: 1, maxQueue: Infinity }).describe().options.maxQueue, Infinity);
  });
});
