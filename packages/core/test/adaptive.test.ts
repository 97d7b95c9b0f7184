import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  adaptiveConcurrency,
  aimd,
  type ConcurrencyLimit,
  ConcurrencyLimitError,
  ErrorCodes,
  flushMicrotasks,
  gradient2,
  pipeline,
  TimeoutError,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import { SampleWindow } from '../src/adaptive/window.ts';
import {
  deferred,
  permanent,
  recordEvents,
  rejectsWith,
  throwsInvalid,
  track,
  transient,
  withWarnings,
} from './support.ts';

/** Starts `n` calls that run until the returned deferreds settle them. */
function hold(policy: ReturnType<typeof adaptiveConcurrency>, n: number, priority?: string) {
  return Array.from({ length: n }, () => {
    const work = deferred<string>();
    const call = track(policy.execute(() => work.promise, { priority }));
    return { work, call };
  });
}

describe('adaptive concurrency: limit algorithms', () => {
  test('aimd backs off by backoffRatio on a drop and grows by one only while the limit is in use', () => {
    const l = aimd({ initial: 10, backoffRatio: 0.5 });
    assert.equal(l.update(5, 10, true), 5);
    assert.equal(l.update(5, 2, false), 5); // less than half in use: no growth
    assert.equal(l.update(5, 3, false), 6); // 3 × 2 >= 5
  });

  test('aimd treats a call slower than timeoutMs as a drop and stays within min and max', () => {
    const l = aimd({ initial: 2, min: 2, max: 3, timeoutMs: 100 });
    assert.equal(l.update(101, 2, false), 2); // floor(2 × 0.9) = 1, held at min
    assert.equal(l.update(100, 2, false), 3);
    assert.equal(l.update(100, 3, false), 3); // held at max
  });

  test('gradient2 shrinks the limit when a sample is slower than rttTolerance × the long RTT', () => {
    const l = gradient2({ initial: 100, queueSize: 0, smoothing: 0.5 });
    assert.equal(l.update(10, 100, false), 100); // long = 10, gradient = min(1, 1.5) = 1
    // long = (10 + 60) / 2 = 35 (warm-up average); gradient = max(0.5, 1.5 × 35 / 60) = 0.875
    assert.equal(l.update(60, 100, false), Math.floor(100 * 0.5 + 100 * 0.875 * 0.5));
    assert.equal(l.longRttMs, 35);
  });

  test('gradient2 grows by queueSize when latency holds, and not while application-limited', () => {
    const l = gradient2({ initial: 20, smoothing: 1, queueSize: (limit) => limit / 10 });
    assert.equal(l.update(10, 20, false), 22); // 20 × 1 + 2
    assert.equal(l.update(10, 10, false), 22); // 10 < 22 / 2: unchanged
  });

  test('gradient2 counts a drop as the lowest gradient without feeding its RTT to the long average', () => {
    const l = gradient2({ initial: 40, smoothing: 1, queueSize: 0 });
    l.update(10, 40, false);
    assert.equal(l.update(1, 40, true), 20); // 40 × 0.5
    assert.equal(l.longRttMs, 10);
  });

  test('gradient2 pulls the long RTT down when samples are more than twice as fast', () => {
    const l = gradient2({ initial: 20, longWindow: 1 });
    for (let i = 0; i < 10; i++) l.update(100, 20, false);
    l.update(10, 20, false); // long = 100 + (10 − 100) × 2/2 = 10 after warm-up
    assert.equal(l.longRttMs, 10);
    const m = gradient2({ initial: 20, longWindow: 600 });
    for (let i = 0; i < 10; i++) m.update(100, 20, false);
    m.update(10, 20, false);
    const ema = 100 + (10 - 100) * (2 / 601);
    assert.ok(Math.abs(m.longRttMs - ema * 0.95) < 1e-9, String(m.longRttMs));
  });

  test('invalid limit options name their field', () => {
    throwsInvalid(() => aimd({ backoffRatio: 1 }), 'aimd.backoffRatio');
    throwsInvalid(() => aimd({ initial: 5, max: 4 }), 'aimd.initial');
    throwsInvalid(() => aimd({ min: 0 }), 'aimd.min');
    throwsInvalid(() => gradient2({ smoothing: 0 }), 'gradient2.smoothing');
    throwsInvalid(() => gradient2({ rttTolerance: 0.9 }), 'gradient2.rttTolerance');
    throwsInvalid(() => gradient2({ queueSize: 'four' as never }), 'gradient2.queueSize');
    assert.match(
      throwsInvalid(() => gradient2({ longWindw: 5 } as never), 'gradient2.longWindw'),
      /longWindow/,
    );
  });
});

describe('adaptive concurrency: admission', () => {
  test('admits calls up to the limit and rejects the next with ConcurrencyLimitError', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 2 }), clock, name: 'db' });
    const running = hold(policy, 2);
    const error = await rejectsWith<ConcurrencyLimitError>(
      policy.execute(() => 'no'),
      ConcurrencyLimitError,
      {
        code: ErrorCodes.CONCURRENCY_LIMITED,
        limiter: 'db',
        partition: 'default',
        limit: 2,
        retryAfterMs: 100, // nothing has settled yet: no latency to go by
      },
    );
    assert.equal(error.stack?.includes('\n    at '), false); // fast-fail: no stack trace
    assert.deepEqual(policy.stats(), {
      limit: 2,
      inflight: 2,
      lingering: 0,
      rejected: 1,
      smoothedRttMs: 0,
      partitions: { default: { share: 1, limit: 2, inflight: 2, rejected: 1 } },
    });
    for (const r of running) r.work.resolve('done');
    await flushMicrotasks();
    assert.equal(policy.stats().inflight, 0);
    assert.equal(await policy.execute(() => 'yes'), 'yes');
    assert.equal(clock.pendingTimers, 0);
  });

  test('retryAfterMs is the smoothed latency of settled calls, rounded up', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 1, max: 1 }), clock, window: false });
    const first = policy.execute(() => clock.sleep(40));
    await clock.advance(40);
    await first;
    const second = policy.execute(() => clock.sleep(50.5));
    await rejectsWith(
      policy.execute(() => 'no'),
      ConcurrencyLimitError,
      { retryAfterMs: 40 },
    );
    await clock.advance(51);
    await second;
    // 40 + (50.5 − 40) × 0.1 = 41.05
    assert.equal(policy.stats().smoothedRttMs, 41.05);
    const third = policy.execute(() => clock.sleep(1));
    await rejectsWith(
      policy.execute(() => 'no'),
      ConcurrencyLimitError,
      { retryAfterMs: 42 },
    );
    await clock.runAll();
    await third;
  });

  test('the limit follows the samples of settled calls: a drop shrinks it', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 10 }), clock, window: false });
    await assert.rejects(policy.execute(() => Promise.reject(transient())));
    assert.equal(policy.limit, 9);
    assert.equal(policy.stats().partitions.default!.limit, 9);
  });

  test('a permanent failure is a plain sample, not a drop; isDrop decides otherwise', async () => {
    const clock = new VirtualClock();
    const plain = adaptiveConcurrency({ limit: aimd({ initial: 2 }), clock, window: false });
    await assert.rejects(plain.execute(() => Promise.reject(permanent())));
    assert.equal(plain.limit, 3); // grew: 1 in flight × 2 >= 2
    const custom = adaptiveConcurrency({
      limit: aimd({ initial: 2 }),
      clock,
      window: false,
      isDrop: (e) => e === 'overloaded',
    });
    await assert.rejects(custom.execute(() => Promise.reject(transient())));
    assert.equal(custom.limit, 3);
    await assert.rejects(custom.execute(() => Promise.reject('overloaded')));
    assert.equal(custom.limit, 2);
  });

  test('a custom limit whose update throws or returns no usable limit leaves the limit as it was', async () => {
    const clock = new VirtualClock();
    const answers: Array<() => number> = [
      () => {
        throw new Error('limit bug');
      },
      () => Number.NaN,
      () => 0,
    ];
    let i = 0;
    const faulty: ConcurrencyLimit = {
      kind: 'faulty',
      limit: 2,
      update: () => answers[i++]!(),
      describe: () => ({ kind: 'faulty' }),
    };
    const policy = adaptiveConcurrency({ limit: faulty, window: false, clock });
    await withWarnings(async (warnings) => {
      for (let n = 0; n < answers.length; n++) assert.equal(await policy.execute(() => 'ok'), 'ok');
      await flushMicrotasks();
      assert.equal(warnings.length, answers.length);
    });
    assert.equal(policy.limit, 2);
    assert.equal(policy.stats().inflight, 0);
    const both = hold(policy, 2);
    await flushMicrotasks();
    assert.ok(both.every((c) => c.call.status === 'pending'));
    for (const c of both) c.work.resolve('done');
    await flushMicrotasks();
  });

  test('a call its caller cancelled feeds no sample', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 4 }), clock, window: false });
    const controller = new AbortController();
    const call = policy.execute(
      ({ signal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      { signal: controller.signal },
    );
    controller.abort(new Error('gone'));
    await assert.rejects(call, { message: 'gone' });
    assert.equal(policy.limit, 4);
    assert.equal(policy.stats().inflight, 0);
  });

  test('by default the limit moves once per window of samples, on their aggregate', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 2 }), clock, window: { minSamples: 3 } });
    const changes = recordEvents(policy);
    for (let i = 0; i < 2; i++) await policy.execute(() => 'ok');
    assert.equal(policy.limit, 2); // two samples: the window is still open
    await policy.execute(() => 'ok');
    assert.equal(policy.limit, 3); // one increase for the whole window
    assert.deepEqual(
      changes.map((e) => e.type === 'adaptive:limit-changed' && [e.previousLimit, e.limit]),
      [[2, 3]],
    );
  });

  test('a window lasts at least minMs and at most maxMs beyond its minimum samples', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({
      limit: aimd({ initial: 2 }),
      clock,
      window: { minMs: 100, maxMs: 100, minSamples: 1 },
    });
    await policy.execute(() => 'ok');
    assert.equal(policy.limit, 2); // the first window ends at 100 ms
    await clock.advance(100);
    await policy.execute(() => 'ok');
    assert.equal(policy.limit, 3);
    await policy.execute(() => 'ok');
    assert.equal(policy.limit, 3);
  });

  test('a drop closes a window that is due even before minSamples', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 4 }), clock, window: { minSamples: 100 } });
    await assert.rejects(policy.execute(() => Promise.reject(transient())));
    assert.equal(policy.limit, 3);
  });

  test('work abandoned by a timeout inside keeps counting in flight until it settles', async () => {
    const clock = new VirtualClock();
    const adaptive = adaptiveConcurrency({ limit: aimd({ initial: 1, max: 1 }), clock });
    const p = pipeline(adaptive, timeout({ ms: 10, clock }));
    const stuck = assert.rejects(
      p.execute(() => clock.sleep(100)),
      TimeoutError,
    );
    await clock.advance(10);
    await stuck;
    assert.deepEqual([adaptive.stats().inflight, adaptive.stats().lingering], [1, 1]);
    await rejectsWith(
      p.execute(() => 'next'),
      ConcurrencyLimitError,
    );
    await clock.advance(90);
    assert.deepEqual([adaptive.stats().inflight, adaptive.stats().lingering], [0, 0]);
    assert.equal(await p.execute(() => 'next'), 'next');
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('adaptive concurrency: partitions', () => {
  const partitions = { critical: 0.5, normal: 0.4, batch: 0.1 };

  test('at the limit only a partition below its guaranteed share is admitted', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 10 }), partitions, clock });
    // Batch borrows the whole limit while it is free...
    const batch = hold(policy, 10, 'batch');
    await rejectsWith(
      policy.execute(() => 'no', { priority: 'batch' }),
      ConcurrencyLimitError,
      {
        partition: 'batch',
      },
    );
    // ...but critical and normal still get their guaranteed 5 and 4 slots.
    const critical = hold(policy, 5, 'critical');
    const normal = hold(policy, 4, 'normal');
    await rejectsWith(
      policy.execute(() => 'no', { priority: 'critical' }),
      ConcurrencyLimitError,
    );
    await rejectsWith(
      policy.execute(() => 'no', { priority: 'normal' }),
      ConcurrencyLimitError,
    );
    const stats = policy.stats();
    assert.equal(stats.inflight, 19);
    assert.deepEqual(stats.partitions, {
      critical: { share: 0.5, limit: 5, inflight: 5, rejected: 1 },
      normal: { share: 0.4, limit: 4, inflight: 4, rejected: 1 },
      batch: { share: 0.1, limit: 1, inflight: 10, rejected: 1 },
    });
    for (const c of [...batch, ...critical, ...normal]) c.work.resolve('done');
    await flushMicrotasks();
    assert.equal(policy.stats().inflight, 0);
  });

  test('a call without a priority, or with an unknown one, runs in the default partition', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 10 }), partitions, clock });
    const calls = [...hold(policy, 1), ...hold(policy, 1, 'urgent')];
    assert.equal(policy.stats().partitions.batch!.inflight, 2); // the last listed
    const named = adaptiveConcurrency({ limit: aimd(), partitions, defaultPartition: 'normal', clock });
    const more = hold(named, 1);
    assert.equal(named.stats().partitions.normal!.inflight, 1);
    for (const c of [...calls, ...more]) c.work.resolve('done');
  });

  test('a zero share is guaranteed nothing, a small non-zero share at least one slot', () => {
    const policy = adaptiveConcurrency({
      limit: aimd({ initial: 4 }),
      partitions: { a: 0.99, b: 0.01, c: 0 },
    });
    const p = policy.stats().partitions;
    assert.deepEqual([p.a!.limit, p.b!.limit, p.c!.limit], [3, 1, 0]);
  });

  test('rejections raise adaptive:rejected only while someone listens', async () => {
    const policy = adaptiveConcurrency({ limit: aimd({ initial: 1 }), clock: new VirtualClock() });
    const running = hold(policy, 1);
    await assert.rejects(
      policy.execute(() => 'no'),
      ConcurrencyLimitError,
    );
    const events = recordEvents(policy);
    await assert.rejects(
      policy.execute(() => 'no', { operation: 'read' }),
      ConcurrencyLimitError,
    );
    assert.deepEqual(events, [
      {
        type: 'adaptive:rejected',
        policy: 'adaptive',
        operation: 'read',
        partition: 'default',
        retryAfterMs: 100,
        limit: 1,
        inflight: 1,
      },
    ]);
    running[0]!.work.resolve('done');
  });
});

describe('adaptive concurrency: options', () => {
  test('invalid options name their field', () => {
    throwsInvalid(
      () => adaptiveConcurrency({ partitions: { a: 0.6, b: 0.5 } }),
      'adaptiveConcurrency.partitions',
    );
    throwsInvalid(() => adaptiveConcurrency({ partitions: {} }), 'adaptiveConcurrency.partitions');
    throwsInvalid(() => adaptiveConcurrency({ partitions: { a: -1 } }), 'adaptiveConcurrency.partitions.a');
    throwsInvalid(
      () => adaptiveConcurrency({ partitions: { a: 1 }, defaultPartition: 'b' }),
      'adaptiveConcurrency.defaultPartition',
    );
    throwsInvalid(() => adaptiveConcurrency({ limit: {} as never }), 'adaptiveConcurrency.limit');
    throwsInvalid(
      () =>
        adaptiveConcurrency({
          limit: { kind: 'x', limit: Number.NaN, update: () => 1, describe: () => ({}) },
        }),
      'adaptiveConcurrency.limit',
    );
    throwsInvalid(() => adaptiveConcurrency({ isDrop: 1 as never }), 'adaptiveConcurrency.isDrop');
    throwsInvalid(
      () => adaptiveConcurrency({ window: { minSamples: 0 } }),
      'adaptiveConcurrency.window.minSamples',
    );
    throwsInvalid(
      () => adaptiveConcurrency({ window: { minMs: 10, maxMs: 5 } }),
      'adaptiveConcurrency.window.maxMs',
    );
    assert.match(
      throwsInvalid(() => adaptiveConcurrency({ partition: {} } as never), 'adaptiveConcurrency.partition'),
      /partitions/,
    );
  });

  test('a limit instance serves one policy only', () => {
    const shared = aimd();
    throwsInvalid(() => adaptiveConcurrency({ limit: shared, name: 7 as never }), 'adaptiveConcurrency.name');
    adaptiveConcurrency({ limit: shared }); // the failed construction did not claim it
    throwsInvalid(() => adaptiveConcurrency({ limit: shared }), 'adaptiveConcurrency.limit');
  });

  test('describe() reports the normalised options', () => {
    const policy = adaptiveConcurrency({ limit: aimd({ timeoutMs: 50 }), partitions: { hi: 0.7, lo: 0.3 } });
    assert.deepEqual(policy.describe(), {
      kind: 'adaptive-concurrency',
      name: 'adaptive',
      options: {
        limit: { kind: 'aimd', min: 1, max: 1_000, backoffRatio: 0.9, timeoutMs: 50 },
        partitions: { hi: 0.7, lo: 0.3 },
        defaultPartition: 'lo',
        window: { minMs: 0, maxMs: 1_000, minSamples: 10 },
      },
    });
    assert.equal(adaptiveConcurrency().limit, 20); // gradient2() by default, from 20
  });
});

describe('adaptive: sample windows and idle time', () => {
  test('samples gathered before an idle spell do not join the window after it', () => {
    const w = new SampleWindow({ minMs: 0, maxMs: 1_000, minSamples: 10 }, 0);
    for (let t = 0; t < 5; t++) assert.equal(w.add(t, 100, 1, false), false); // slow, then quiet
    let closed = false;
    for (let i = 0; i < 10; i++) closed = w.add(60_000 + i, 10, 1, false);
    assert.equal(closed, true);
    assert.equal(w.rtt, 10, 'the window holds only the samples after the idle spell');
  });

  test('a steady trickle within the idle bound still fills a window', () => {
    const w = new SampleWindow({ minMs: 0, maxMs: 1_000, minSamples: 3 }, 0);
    assert.equal(w.add(0, 30, 1, false), false);
    assert.equal(w.add(5_000, 30, 1, false), false);
    assert.equal(w.add(9_000, 60, 1, false), true);
    assert.equal(w.rtt, 40);
  });
});
