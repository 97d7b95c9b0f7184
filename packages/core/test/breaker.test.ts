import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  type CircuitBreakerOptions,
  type CircuitBreakerPolicy,
  ConcurrencyLimitError,
  circuitBreaker,
  ErrorCodes,
  flushMicrotasks,
  IsolatedCircuitError,
  MemoryBreakerStateStore,
  pipeline,
  RateLimitedError,
  TimeoutError,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import {
  deferred,
  failWith,
  hang,
  permanent,
  recordEvents,
  rejectsWith,
  throwsInvalid,
  track,
  transient,
  untilAborted,
  withStatus,
  withWarnings,
} from './support.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Whether `promise` has settled after one turn of the event loop, with no clock movement. */
async function settlesAtOnce(promise: Promise<unknown>): Promise<boolean> {
  const call = track(promise);
  await flushMicrotasks();
  return call.status !== 'pending';
}

async function succeed(b: CircuitBreakerPolicy): Promise<void> {
  assert.equal(await b.execute(() => 'ok'), 'ok');
}

/** A call that takes `ms` on the virtual clock, then succeeds (or fails with `error`). */
async function timed(
  b: CircuitBreakerPolicy,
  clock: VirtualClock,
  ms: number,
  error?: unknown,
): Promise<void> {
  const call = b.execute(async () => {
    await clock.sleep(ms);
    if (error !== undefined) throw error;
    return 'done';
  });
  const result = call.then(
    () => undefined,
    (e: unknown) => e,
  );
  await clock.advance(ms);
  assert.equal(await result, error);
}

/** Asserts the breaker refuses a call as open, without running it. */
async function refusedOpen(b: CircuitBreakerPolicy, retryAfterMs?: number): Promise<void> {
  let ran = false;
  const error = await rejectsWith<BrokenCircuitError>(
    b.execute(() => {
      ran = true;
    }),
    BrokenCircuitError,
    { code: ErrorCodes.BROKEN_CIRCUIT },
  );
  assert.equal(ran, false, 'an open circuit must not run the operation');
  if (retryAfterMs !== undefined) assert.equal(error.retryAfterMs, retryAfterMs);
}

function breaker(clock: VirtualClock, options: CircuitBreakerOptions = {}): CircuitBreakerPolicy {
  return circuitBreaker({ clock, ...options });
}

// ---------------------------------------------------------------------------------------------

describe('circuit breaker: consecutive window', () => {
  test('opens on the Nth failure in a row, not before', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 3 } });
    await failWith(b);
    await failWith(b);
    assert.equal(b.state, 'closed');
    await failWith(b);
    assert.equal(b.state, 'open');
    await refusedOpen(b);
  });

  test('defaults to 5 failures in a row', async () => {
    const b = breaker(new VirtualClock());
    for (let i = 0; i < 4; i++) await failWith(b);
    assert.equal(b.state, 'closed');
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('a success ends the run of failures', async () => {
    const b = breaker(new VirtualClock(), { window: { kind: 'consecutive', failures: 3 } });
    await failWith(b);
    await failWith(b);
    await succeed(b);
    await failWith(b);
    await failWith(b);
    assert.equal(b.state, 'closed');
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('a permanent error neither extends nor ends the run', async () => {
    const b = breaker(new VirtualClock(), { window: { kind: 'consecutive', failures: 3 } });
    await failWith(b);
    await failWith(b, permanent());
    await failWith(b);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().bufferedFailures, 2);
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('N slow calls in a row open it with reason slow-call-rate; a fast call ends the run', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, {
      window: { kind: 'consecutive', failures: 2 },
      slowCall: { thresholdMs: 100, rate: 1 },
    });
    const events = recordEvents(b);
    await timed(b, clock, 100);
    await timed(b, clock, 99);
    await timed(b, clock, 100);
    assert.equal(b.state, 'closed');
    await timed(b, clock, 150);
    assert.equal(b.state, 'open');
    const opened = events.find((e) => e.type === 'breaker:opened');
    assert.equal(opened?.type === 'breaker:opened' && opened.reason, 'slow-call-rate');
  });
});

describe('circuit breaker: count window (last N calls)', () => {
  const options = (extra: CircuitBreakerOptions = {}): CircuitBreakerOptions => ({
    window: { kind: 'count', size: 10 },
    minimumCalls: 4,
    failureRate: 0.5,
    ...extra,
  });

  test('does not trip before minimumCalls, even when every call failed', async () => {
    const b = breaker(new VirtualClock(), options());
    for (let i = 0; i < 3; i++) await failWith(b);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().failureRate, 1);
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('trips when the failure rate is exactly the threshold', async () => {
    const b = breaker(new VirtualClock(), options());
    await succeed(b);
    await failWith(b);
    await succeed(b);
    assert.equal(b.state, 'closed');
    await failWith(b); // 2 of 4 = 0.5
    assert.equal(b.state, 'open');
  });

  test('stays closed just below the threshold', async () => {
    const b = breaker(new VirtualClock(), options({ failureRate: 0.51 }));
    await succeed(b);
    await failWith(b);
    await succeed(b);
    await failWith(b); // 0.5 < 0.51
    assert.equal(b.state, 'closed');
  });

  test('a success that brings the window up to minimumCalls trips it when the rate is at the threshold', async () => {
    const b = breaker(new VirtualClock(), options({ minimumCalls: 5 }));
    await failWith(b);
    await failWith(b);
    await failWith(b);
    await succeed(b);
    assert.equal(b.state, 'closed');
    await succeed(b); // 3 of 5 = 0.6 >= 0.5, minimum met
    assert.equal(b.state, 'open');
  });

  test('judges only the last N calls: older outcomes fall out of the window', async () => {
    const b = breaker(
      new VirtualClock(),
      options({ window: { kind: 'count', size: 4 }, minimumCalls: 4, failureRate: 0.75 }),
    );
    await failWith(b);
    await failWith(b);
    await succeed(b);
    await succeed(b); // F F S S: 0.5
    await succeed(b); // F S S S: 0.25
    await succeed(b); // S S S S: 0
    assert.equal(b.stats().bufferedFailures, 0);
    await failWith(b);
    await failWith(b); // S S F F: 0.5
    assert.equal(b.state, 'closed');
    await failWith(b); // S F F F: 0.75
    assert.equal(b.state, 'open');
  });

  test('minimumCalls above the window size is capped at the size', async () => {
    const b = breaker(
      new VirtualClock(),
      options({ window: { kind: 'count', size: 3 }, minimumCalls: 100, failureRate: 1 }),
    );
    await failWith(b);
    await failWith(b);
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('idle time does not expire counts: a count window holds the last N calls, however old', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await failWith(b);
    await failWith(b);
    await failWith(b);
    await clock.advance(24 * 60 * 60 * 1000);
    assert.equal(b.stats().bufferedCalls, 3);
    await failWith(b);
    assert.equal(b.state, 'open');
  });
});

describe('circuit breaker: time window (bucketed)', () => {
  // 5 buckets of 1 s each.
  const options = (extra: CircuitBreakerOptions = {}): CircuitBreakerOptions => ({
    window: { kind: 'time', ms: 5_000, buckets: 5 },
    minimumCalls: 4,
    failureRate: 0.5,
    ...extra,
  });

  test('counts the calls of the last window and drops them when their bucket leaves it', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await failWith(b); // t = 0, bucket [0, 1000)
    await clock.advance(999);
    await failWith(b); // t = 999, same bucket
    await clock.advance(1);
    await succeed(b); // t = 1000, next bucket
    assert.deepEqual([b.stats().bufferedCalls, b.stats().bufferedFailures], [3, 2]);
    await clock.advance(3_999); // t = 4999: everything still inside
    assert.equal(b.stats().bufferedCalls, 3);
    await clock.advance(1); // t = 5000: the first bucket leaves the window
    assert.deepEqual([b.stats().bufferedCalls, b.stats().bufferedFailures], [1, 0]);
    await clock.advance(1_000); // t = 6000: the second bucket leaves too
    assert.equal(b.stats().bufferedCalls, 0);
  });

  test('trips at the threshold once minimumCalls are met inside the window', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await failWith(b);
    await clock.advance(1_000);
    await failWith(b);
    await clock.advance(1_000);
    await succeed(b);
    assert.equal(b.state, 'closed');
    await clock.advance(1_000);
    await succeed(b); // 2 of 4 in the last 5 s
    assert.equal(b.state, 'open');
  });

  test('with failures set, opens on that many failures inside the window, whatever the rate', async () => {
    const clock = new VirtualClock();
    const events: string[] = [];
    const b = breaker(clock, { window: { kind: 'time', ms: 30_000, failures: 5 } });
    b.events.on('breaker:opened', (e) => events.push(e.reason));
    for (let i = 0; i < 50; i++) await succeed(b); // a 90% success rate does not save it
    for (let i = 0; i < 4; i++) {
      await failWith(b);
      await clock.advance(5_000);
    }
    assert.equal(b.state, 'closed');
    await failWith(b); // the fifth failure, 20 s after the first
    assert.equal(b.state, 'open');
    assert.deepEqual(events, ['failure-count']);
  });

  test('with failures set, failures that left the window do not count', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'time', ms: 30_000, failures: 5 } });
    for (let i = 0; i < 4; i++) await failWith(b);
    await clock.advance(30_000);
    for (let i = 0; i < 4; i++) await failWith(b);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().bufferedFailures, 4);
  });

  test('with failures set, the failure rate alone never opens it', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'time', ms: 30_000, failures: 5 }, minimumCalls: 2 });
    for (let i = 0; i < 4; i++) await failWith(b); // a 100% failure rate over 4 calls
    assert.equal(b.state, 'closed');
  });

  test('window.failures must be a whole number of at least 1', () => {
    throwsInvalid(
      () => circuitBreaker({ window: { kind: 'time', ms: 1_000, failures: 0 } }),
      'circuitBreaker.window.failures',
    );
  });

  test('expired failures do not count toward minimumCalls or the rate', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await failWith(b);
    await failWith(b);
    await failWith(b);
    await clock.advance(5_000);
    await failWith(b);
    await failWith(b);
    await failWith(b);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().bufferedCalls, 3);
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('a success trips it when expired successes left the failure rate at the threshold', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ minimumCalls: 4, failureRate: 0.6 }));
    for (let i = 0; i < 4; i++) await succeed(b); // t = 0
    await clock.advance(3_000);
    for (let i = 0; i < 4; i++) await failWith(b); // t = 3000: 4 of 8 = 0.5
    assert.equal(b.state, 'closed');
    await clock.advance(2_000); // t = 5000: the successes expired, 4 failures remain
    await succeed(b); // 4 of 5 = 0.8
    assert.equal(b.state, 'open');
  });
});

describe('circuit breaker: slow calls', () => {
  const options = (extra: CircuitBreakerOptions = {}): CircuitBreakerOptions => ({
    window: { kind: 'count', size: 10 },
    minimumCalls: 2,
    failureRate: 1,
    slowCall: { thresholdMs: 100, rate: 0.5 },
    ...extra,
  });

  test('a call lasting exactly thresholdMs on the clock is slow; one ms less is not', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ minimumCalls: 10 }));
    await timed(b, clock, 99);
    assert.equal(b.stats().bufferedSlowCalls, 0);
    await timed(b, clock, 100);
    assert.equal(b.stats().bufferedSlowCalls, 1);
    assert.equal(b.stats().slowCallRate, 0.5);
  });

  test('opens with reason slow-call-rate when the slow share reaches the rate', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    const events = recordEvents(b);
    await timed(b, clock, 10);
    await timed(b, clock, 100); // 1 of 2 slow = 0.5
    assert.equal(b.state, 'open');
    const opened = events.find((e) => e.type === 'breaker:opened');
    assert.ok(opened?.type === 'breaker:opened');
    assert.equal(opened.reason, 'slow-call-rate');
    assert.equal(opened.slowCallRate, 0.5);
  });

  test('stays closed while the slow share is below the rate', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ slowCall: { thresholdMs: 100, rate: 0.75 } }));
    await timed(b, clock, 10);
    await timed(b, clock, 100);
    await timed(b, clock, 10);
    await timed(b, clock, 500); // 2 of 4
    assert.equal(b.state, 'closed');
  });

  test('a slow failure counts as a failure and as a slow call', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ minimumCalls: 10 }));
    await timed(b, clock, 200, transient());
    assert.deepEqual([b.stats().bufferedFailures, b.stats().bufferedSlowCalls], [1, 1]);
  });

  test('slow calls are measured on a time window too', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ window: { kind: 'time', ms: 10_000 } }));
    await timed(b, clock, 100);
    await timed(b, clock, 100);
    assert.equal(b.state, 'open');
  });
});

describe('circuit breaker: open', () => {
  const options = (extra: CircuitBreakerOptions = {}): CircuitBreakerOptions => ({
    window: { kind: 'consecutive', failures: 1 },
    openMs: 10_000,
    ...extra,
  });

  test('rejects at once with BrokenCircuitError without running the operation', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await failWith(b);
    let ran = false;
    const call = b.execute(() => {
      ran = true;
    });
    assert.equal(await settlesAtOnce(call), true);
    const error = await rejectsWith<BrokenCircuitError>(call, BrokenCircuitError, {
      code: ErrorCodes.BROKEN_CIRCUIT,
      breaker: 'breaker',
      retryAfterMs: 10_000,
    });
    assert.equal(ran, false);
    assert.doesNotMatch(error.stack ?? '', /\n\s+at /, 'a fast rejection carries no stack trace');
  });

  test('retryAfterMs counts down exactly with the clock', async () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const b = breaker(clock, options());
    await failWith(b);
    await refusedOpen(b, 10_000);
    await clock.advance(2_500);
    await refusedOpen(b, 7_500);
    assert.equal(b.stats().retryAfterMs, 7_500);
    await clock.advance(7_499);
    await refusedOpen(b, 1);
    assert.equal(b.stats().retryAfterMs, 1);
  });

  test('turns half-open at exactly openMs on a state read, with no timer', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    const events = recordEvents(b);
    await failWith(b);
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(9_999);
    assert.equal(b.state, 'open');
    await clock.advance(1);
    assert.deepEqual(
      events.map((e) => e.type),
      ['breaker:opened'],
      'nothing happens until someone looks',
    );
    assert.equal(b.state, 'half-open');
    assert.deepEqual(
      events.map((e) => e.type),
      ['breaker:opened', 'breaker:half-opened'],
    );
    assert.equal(b.stats().retryAfterMs, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  test('turns half-open on the next call at openMs, and that call is the probe', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    const events = recordEvents(b);
    await failWith(b);
    await clock.advance(10_000);
    await succeed(b);
    assert.equal(b.state, 'closed');
    assert.deepEqual(
      events.map((e) => e.type),
      ['breaker:opened', 'breaker:half-opened', 'breaker:closed'],
    );
  });
});

describe('circuit breaker: half-open', () => {
  const options = (extra: CircuitBreakerOptions = {}): CircuitBreakerOptions => ({
    window: { kind: 'consecutive', failures: 1 },
    openMs: 5_000,
    ...extra,
  });

  async function halfOpen(b: CircuitBreakerPolicy, clock: VirtualClock): Promise<void> {
    await failWith(b);
    await clock.advance(5_000);
    assert.equal(b.state, 'half-open');
  }

  test('lets N probes run at once and rejects the others at once with retryAfterMs, never queued', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ halfOpen: { probes: 2, retryAfterMs: 250 } }));
    const events = recordEvents(b);
    await halfOpen(b, clock);
    const first = deferred<string>();
    const second = deferred<string>();
    const p1 = b.execute(() => first.promise);
    const p2 = b.execute(() => second.promise);
    let ran = false;
    const third = b.execute(() => {
      ran = true;
    });
    assert.equal(await settlesAtOnce(third), true, 'the third caller must not wait behind the probes');
    await rejectsWith(third, BrokenCircuitError, { code: ErrorCodes.BROKEN_CIRCUIT, retryAfterMs: 250 });
    assert.equal(ran, false);
    const rejected = events.filter((e) => e.type === 'breaker:rejected');
    assert.deepEqual(
      rejected.map((e) => e.type === 'breaker:rejected' && [e.state, e.retryAfterMs]),
      [['half-open', 250]],
    );
    first.resolve('a');
    second.resolve('b');
    assert.deepEqual(await Promise.all([p1, p2]), ['a', 'b']);
    assert.equal(b.state, 'closed');
  });

  test('callers refused while probes run get retryAfterMs min(openMs, 1000) by default', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await halfOpen(b, clock);
    const probe = deferred();
    const p = b.execute(() => probe.promise);
    await rejectsWith(
      b.execute(() => 'x'),
      BrokenCircuitError,
      { retryAfterMs: 1_000 },
    );
    probe.resolve(undefined);
    await p;
  });

  test('closes only after `successes` successful probes', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ halfOpen: { probes: 1, successes: 3 } }));
    await halfOpen(b, clock);
    await succeed(b);
    await succeed(b);
    assert.equal(b.state, 'half-open');
    await succeed(b);
    assert.equal(b.state, 'closed');
  });

  test('a failed probe reopens the circuit for openMs', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ halfOpen: { probes: 1, successes: 2 } }));
    const events = recordEvents(b);
    await halfOpen(b, clock);
    await succeed(b);
    await failWith(b);
    assert.equal(b.state, 'open');
    await refusedOpen(b, 5_000);
    const reasons = events.flatMap((e) => (e.type === 'breaker:opened' ? [e.reason] : []));
    assert.deepEqual(reasons, ['consecutive-failures', 'probe-failed']);
  });

  test('a slow successful probe reopens the circuit with reason slow-call-rate', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ slowCall: { thresholdMs: 100, rate: 1 } }));
    const events = recordEvents(b);
    await halfOpen(b, clock);
    await timed(b, clock, 100);
    assert.equal(b.state, 'open');
    const last = events.filter((e) => e.type === 'breaker:opened').at(-1);
    assert.equal(last?.type === 'breaker:opened' && last.reason, 'slow-call-rate');
  });

  test('a probe failing with a permanent error is not recorded and gives its permit back', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await halfOpen(b, clock);
    await failWith(b, permanent());
    assert.equal(b.state, 'half-open');
    assert.equal(b.stats().ignored, 1);
    await succeed(b); // admitted as the probe: the permit came back
    assert.equal(b.state, 'closed');
  });

  test('a probe failing with an error shouldRecord rejects gives its permit back', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options({ shouldRecord: (e) => !(e instanceof RangeError) }));
    await halfOpen(b, clock);
    await failWith(b, new RangeError('ignored'));
    assert.equal(b.state, 'half-open');
    await succeed(b);
    assert.equal(b.state, 'closed');
  });

  test('a probe whose caller aborts gives its permit back and is not recorded', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, options());
    await halfOpen(b, clock);
    const controller = new AbortController();
    const probe = b.execute(untilAborted(transient), { signal: controller.signal });
    controller.abort(new Error('caller left'));
    await assert.rejects(probe);
    assert.equal(b.state, 'half-open');
    await succeed(b);
    assert.equal(b.state, 'closed');
  });
});

describe('circuit breaker: open backoff', () => {
  test('each reopening multiplies the open time by factor up to maxMs; a close resets it', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, {
      window: { kind: 'consecutive', failures: 1 },
      openMs: 1_000,
      openBackoff: { factor: 2, maxMs: 5_000 },
    });
    const events = recordEvents(b);
    await failWith(b);
    const expected = [1_000, 2_000, 4_000, 5_000, 5_000];
    for (const [i, ms] of expected.entries()) {
      await refusedOpen(b, ms);
      await clock.advance(ms - 1);
      assert.equal(b.state, 'open', `opening ${i + 1} lasts ${ms} ms`);
      await clock.advance(1);
      if (i < expected.length - 1) await failWith(b); // the probe fails: reopen
    }
    await succeed(b);
    assert.equal(b.state, 'closed');
    await failWith(b);
    await refusedOpen(b, 1_000);
    const opens = events.flatMap((e) => (e.type === 'breaker:opened' ? [e.openMs] : []));
    assert.deepEqual(opens, [...expected, 1_000]);
  });

  test('without openBackoff every opening lasts openMs', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 1 }, openMs: 1_000 });
    await failWith(b);
    await clock.advance(1_000);
    await failWith(b);
    await refusedOpen(b, 1_000);
  });
});

describe('circuit breaker: which failures count', () => {
  test('permanent errors (such as HTTP 404) are not recorded at all', async () => {
    const b = breaker(new VirtualClock(), {
      window: { kind: 'count', size: 10 },
      minimumCalls: 1,
      failureRate: 0.5,
    });
    for (let i = 0; i < 20; i++) await failWith(b, permanent());
    assert.equal(b.state, 'closed');
    const s = b.stats();
    assert.deepEqual([s.bufferedCalls, s.failed, s.successful, s.ignored], [0, 0, 0, 20]);
  });

  test('errors shouldRecord rejects are not recorded; those it accepts are', async () => {
    const b = breaker(new VirtualClock(), {
      window: { kind: 'consecutive', failures: 2 },
      shouldRecord: (e) => (e as { status?: number }).status === 500,
    });
    await failWith(b, transient()); // 503: not recorded under this predicate
    await failWith(b, withStatus(500, 'boom'));
    await failWith(b, transient());
    assert.equal(b.state, 'closed');
    await failWith(b, withStatus(500, 'boom'));
    assert.equal(b.state, 'open');
  });

  test('a TimeoutError from a timeout inside the breaker counts as a failure', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 2 } });
    const p = pipeline(b, timeout({ ms: 100, clock }));
    for (let i = 0; i < 2; i++) {
      const call = rejectsWith(p.execute(hang), TimeoutError, { code: ErrorCodes.TIMEOUT });
      await clock.advance(100);
      await call;
    }
    assert.equal(b.state, 'open');
    assert.equal(b.stats().failed, 2);
  });

  test("a caller's cancellation is never recorded, whatever the operation fails with", async () => {
    const b = breaker(new VirtualClock(), { window: { kind: 'consecutive', failures: 1 } });
    const controller = new AbortController();
    const reason = transient(); // would count if it were judged as a failure
    const call = b.execute(untilAborted(), { signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(call, (e) => e === reason);
    assert.equal(b.state, 'closed');
    assert.deepEqual([b.stats().failed, b.stats().ignored], [0, 1]);
  });

  test("a caller's cancellation through a timeout inside the breaker is not recorded", async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 1 } });
    const p = pipeline(b, timeout({ ms: 1_000, clock }));
    const controller = new AbortController();
    const reason = transient();
    const call = p.execute(hang, { signal: controller.signal });
    await clock.advance(10);
    controller.abort(reason);
    await assert.rejects(call, (e) => e === reason);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().failed, 0);
    await clock.runAll();
    assert.equal(b.state, 'closed');
  });
});

describe('circuit breaker: isolate and reset', () => {
  test('isolate() refuses every call with IsolatedCircuitError until reset()', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { openMs: 1_000 });
    const events = recordEvents(b);
    b.isolate();
    assert.equal(b.state, 'isolated');
    let ran = false;
    await rejectsWith(
      b.execute(() => {
        ran = true;
      }),
      IsolatedCircuitError,
      { code: ErrorCodes.ISOLATED_CIRCUIT, breaker: 'breaker' },
    );
    await clock.advance(60 * 60 * 1000);
    assert.equal(b.state, 'isolated', 'isolation does not time out');
    await rejectsWith(
      b.execute(() => {
        ran = true;
      }),
      IsolatedCircuitError,
    );
    assert.equal(ran, false);
    b.reset();
    assert.equal(b.state, 'closed');
    await succeed(b);
    assert.deepEqual(
      events.map((e) => (e.type === 'breaker:rejected' ? `rejected:${e.state}:${e.retryAfterMs}` : e.type)),
      ['breaker:isolated', 'rejected:isolated:0', 'rejected:isolated:0', 'breaker:closed'],
    );
  });

  test('isolate() takes over an open circuit', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 1 }, openMs: 1_000 });
    await failWith(b);
    b.isolate();
    await clock.advance(1_000);
    assert.equal(b.state, 'isolated');
    await rejectsWith(
      b.execute(() => 'x'),
      IsolatedCircuitError,
    );
  });

  test('reset() closes with an empty window', async () => {
    const b = breaker(new VirtualClock(), {
      window: { kind: 'count', size: 10 },
      minimumCalls: 4,
      failureRate: 0.5,
    });
    await failWith(b);
    await failWith(b);
    await failWith(b);
    b.reset();
    assert.equal(b.stats().bufferedCalls, 0);
    await failWith(b);
    await failWith(b);
    await failWith(b);
    assert.equal(b.state, 'closed', 'the failures before reset() are gone');
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('reset() closes an open circuit at once and restarts the open backoff', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, {
      window: { kind: 'consecutive', failures: 1 },
      openMs: 1_000,
      openBackoff: { factor: 3, maxMs: 100_000 },
    });
    await failWith(b);
    await clock.advance(1_000);
    await failWith(b);
    await refusedOpen(b, 3_000);
    b.reset();
    await succeed(b);
    await failWith(b);
    await refusedOpen(b, 1_000);
  });
});

describe('circuit breaker: state export and import', () => {
  test('an open count-window breaker round-trips through JSON into a second breaker', async () => {
    const clock = new VirtualClock(1_000_000);
    const options: CircuitBreakerOptions = {
      window: { kind: 'count', size: 5 },
      minimumCalls: 3,
      failureRate: 0.5,
      openMs: 2_000,
      openBackoff: { factor: 2, maxMs: 10_000 },
    };
    const a = breaker(clock, options);
    await succeed(a);
    await failWith(a);
    await failWith(a); // opens (2 of 3)
    await clock.advance(2_000);
    await failWith(a); // probe fails: the second opening lasts 4 s
    await clock.advance(500);
    const snapshot = JSON.parse(JSON.stringify(a.exportState()));
    const b = breaker(clock, options);
    b.importState(snapshot);
    assert.equal(b.state, 'open');
    await refusedOpen(b, 3_500);
    await clock.advance(3_500);
    assert.equal(b.state, 'half-open');
    await failWith(b); // the third opening: the backoff continued from the import
    await refusedOpen(b, 8_000);
  });

  test('a closed count window keeps its outcomes and its ring position across the import', async () => {
    const clock = new VirtualClock();
    const options: CircuitBreakerOptions = {
      window: { kind: 'count', size: 4 },
      minimumCalls: 4,
      failureRate: 0.75,
    };
    const a = breaker(clock, options);
    await failWith(a);
    await succeed(a);
    await succeed(a);
    await succeed(a);
    await failWith(a); // ring: F S S S, then F replaces the oldest F → S S S F
    const b = breaker(clock, options);
    b.importState(JSON.parse(JSON.stringify(a.exportState())));
    assert.deepEqual([b.stats().bufferedCalls, b.stats().bufferedFailures], [4, 1]);
    await failWith(b); // evicts S: S S F F
    await failWith(b); // evicts S: S F F F = 0.75
    assert.equal(b.state, 'open');
  });

  test('a time window round-trips through JSON with its buckets and their ages', async () => {
    const start = 1_700_000_000_000;
    const clockA = new VirtualClock(start);
    const options: CircuitBreakerOptions = {
      window: { kind: 'time', ms: 10_000, buckets: 10 },
      minimumCalls: 5,
      failureRate: 0.5,
    };
    const a = breaker(clockA, options);
    await failWith(a); // t0
    await clockA.advance(4_000);
    await succeed(a); // t0 + 4 s
    await succeed(a);
    await failWith(a); // 2 of 4
    const snapshot = JSON.parse(JSON.stringify(a.exportState()));

    const clockB = new VirtualClock(start + 4_000);
    const b = breaker(clockB, options);
    b.importState(snapshot);
    assert.deepEqual([b.stats().bufferedCalls, b.stats().bufferedFailures], [4, 2]);
    await clockB.advance(6_000); // t0 + 10 s: the first failure expires, on b's clock
    assert.deepEqual([b.stats().bufferedCalls, b.stats().bufferedFailures], [3, 1]);
    await failWith(b);
    assert.equal(b.state, 'closed'); // 2 of 4: below minimumCalls
    await failWith(b); // 3 of 5
    assert.equal(b.state, 'open');
  });

  test('an untouched time window exports a snapshot that survives JSON unchanged', async () => {
    const clock = new VirtualClock();
    const options: CircuitBreakerOptions = { window: { kind: 'time', ms: 5_000 }, minimumCalls: 2 };
    const a = breaker(clock, options);
    const snapshot = a.exportState();
    assert.deepEqual(JSON.parse(JSON.stringify(snapshot)), snapshot);
    const b = breaker(clock, options);
    b.importState(JSON.parse(JSON.stringify(snapshot)));
    await failWith(b);
    await failWith(b);
    assert.equal(b.state, 'open');
  });

  test('an isolated state round-trips', async () => {
    const clock = new VirtualClock();
    const a = breaker(clock);
    a.isolate();
    const b = breaker(clock);
    b.importState(JSON.parse(JSON.stringify(a.exportState())));
    assert.equal(b.state, 'isolated');
    await rejectsWith(
      b.execute(() => 'x'),
      IsolatedCircuitError,
    );
  });

  test('importState rejects a snapshot of another window kind or a malformed one', () => {
    const clock = new VirtualClock();
    const consecutive = breaker(clock);
    const count = breaker(clock, { window: { kind: 'count', size: 3 } });
    const countOf4 = breaker(clock, { window: { kind: 'count', size: 4 } });
    throwsInvalid(() => count.importState(consecutive.exportState()), 'breaker.state.window');
    throwsInvalid(() => count.importState(countOf4.exportState()), 'breaker.state.window');
    throwsInvalid(
      () => count.importState({ ...count.exportState(), state: 'ajar' as never }),
      'breaker.state.state',
    );
    throwsInvalid(() => count.importState({ ...count.exportState(), version: 2 as never }), 'breaker.state');
    throwsInvalid(
      () => count.importState({ ...count.exportState(), openedAt: null as never }),
      'breaker.state.openedAt',
    );
    const time = breaker(clock, { window: { kind: 'time', ms: 1_000, buckets: 2 } });
    const timeWindow = {
      kind: 'time' as const,
      start: null as never,
      calls: [1, 0],
      failures: [1, 0],
      slow: [0, 0],
    };
    throwsInvalid(
      () => time.importState({ ...time.exportState(), window: timeWindow }),
      'breaker.state.window.start',
    );
    throwsInvalid(
      () =>
        count.importState({
          ...count.exportState(),
          window: { kind: 'count', outcomes: [1, 1, 0], next: 7, filled: 3 },
        }),
      'breaker.state.window.next',
    );
    assert.equal(count.state, 'closed');
  });
});

describe('circuit breaker: state store', () => {
  test('MemoryBreakerStateStore receives every transition and hydrate() loads it', async () => {
    const clock = new VirtualClock();
    const store = new MemoryBreakerStateStore();
    const options: CircuitBreakerOptions = {
      name: 'payments',
      store,
      window: { kind: 'consecutive', failures: 1 },
      openMs: 1_000,
    };
    const a = breaker(clock, options);
    assert.equal(store.load('payments'), undefined);
    await failWith(a);
    assert.equal(store.load('payments')?.state, 'open');

    const b = breaker(clock, options);
    await b.hydrate();
    assert.equal(b.state, 'open');
    await refusedOpen(b, 1_000);

    await clock.advance(1_000);
    assert.equal(a.state, 'half-open');
    assert.equal(store.load('payments')?.state, 'half-open');
    await succeed(a);
    assert.equal(store.load('payments')?.state, 'closed');
    a.isolate();
    assert.equal(store.load('payments')?.state, 'isolated');
    await b.hydrate();
    assert.equal(b.state, 'isolated');
    assert.equal(store.load('other'), undefined);
  });

  test('hydrate() from an empty store leaves the breaker closed', async () => {
    const b = breaker(new VirtualClock(), { store: new MemoryBreakerStateStore() });
    await b.hydrate();
    assert.equal(b.state, 'closed');
    await succeed(b);
  });

  test('a store that fails to save warns and never fails the call', async () => {
    await withWarnings(async (warnings) => {
      const clock = new VirtualClock();
      const throwing = breaker(clock, {
        name: 'sync',
        window: { kind: 'consecutive', failures: 1 },
        store: {
          load: () => undefined,
          save: () => {
            throw new Error('disk full');
          },
        },
      });
      const rejecting = breaker(clock, {
        name: 'async',
        window: { kind: 'consecutive', failures: 1 },
        store: { load: async () => undefined, save: async () => Promise.reject(new Error('offline')) },
      });
      await failWith(throwing);
      await failWith(rejecting);
      assert.equal(throwing.state, 'open');
      assert.equal(rejecting.state, 'open');
      await flushMicrotasks();
      await flushMicrotasks();
      assert.deepEqual(
        warnings.map((w) => w.name),
        ['BulwarkStoreWarning', 'BulwarkStoreWarning'],
      );
    });
  });
});

describe('circuit breaker: honest counts under concurrency', () => {
  /** Starts `n` calls whose work the test settles; `done` resolves when all have settled, either way. */
  function inFlight(b: CircuitBreakerPolicy, n: number) {
    const works = Array.from({ length: n }, () => deferred());
    const done = Promise.all(works.map((w) => b.execute(() => w.promise).catch(() => undefined)));
    return { works, done };
  }

  test('calls started while closed that fail after it opened and half-opened do not reopen it', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 2 }, openMs: 1_000 });
    const { works, done } = inFlight(b, 4);
    works[0]!.reject(transient());
    works[1]!.reject(transient());
    await flushMicrotasks();
    assert.equal(b.state, 'open');
    await clock.advance(1_000);
    assert.equal(b.state, 'half-open');
    works[2]!.reject(transient());
    works[3]!.reject(transient());
    await done;
    assert.equal(b.state, 'half-open', 'stale failures must not reopen the circuit');
    assert.equal(b.stats().failed, 4);
    await succeed(b); // the probe permit was not touched by the stale results
    assert.equal(b.state, 'closed');
  });

  test('a call started while closed that succeeds during half-open is not a probe success', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 1 }, openMs: 1_000 });
    const slow = deferred();
    const call = b.execute(() => slow.promise);
    await failWith(b);
    await clock.advance(1_000);
    assert.equal(b.state, 'half-open');
    slow.resolve('late');
    await call;
    assert.equal(b.state, 'half-open');
  });

  test('a probe of an earlier half-open period neither frees a permit nor closes the next one', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 1 }, openMs: 1_000 });
    await failWith(b);
    await clock.advance(1_000);
    const oldProbe = deferred();
    const oldCall = b.execute(() => oldProbe.promise);
    b.reset();
    await failWith(b);
    await clock.advance(1_000);
    assert.equal(b.state, 'half-open');
    const newProbe = deferred();
    const newCall = b.execute(() => newProbe.promise);
    oldProbe.resolve('old');
    await oldCall;
    assert.equal(b.state, 'half-open');
    await rejectsWith(
      b.execute(() => 'x'),
      BrokenCircuitError,
      { retryAfterMs: 1_000 },
    );
    newProbe.resolve('new');
    await newCall;
    assert.equal(b.state, 'closed');
  });

  test('when one of several probes fails, the others still in flight are stale and cannot close it', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, {
      window: { kind: 'consecutive', failures: 1 },
      openMs: 1_000,
      halfOpen: { probes: 3 },
    });
    await failWith(b);
    await clock.advance(1_000);
    const { works: probes, done } = inFlight(b, 3);
    probes[0]!.reject(transient());
    await flushMicrotasks();
    assert.equal(b.state, 'open');
    probes[1]!.resolve('ok');
    probes[2]!.reject(transient());
    await done;
    assert.equal(b.state, 'open');
    await refusedOpen(b, 1_000);
  });

  test('results of calls started before reset() do not enter the new window', async () => {
    const b = breaker(new VirtualClock(), {
      window: { kind: 'count', size: 10 },
      minimumCalls: 2,
      failureRate: 0.5,
    });
    const { works, done } = inFlight(b, 2);
    b.reset();
    for (const w of works) w.reject(transient());
    await done;
    assert.equal(b.stats().bufferedCalls, 0);
    assert.equal(b.state, 'closed');
  });

  test('in-flight calls of an opened circuit do not extend its window after it opened', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, {
      window: { kind: 'count', size: 10 },
      minimumCalls: 2,
      failureRate: 1,
      openMs: 1_000,
    });
    const { works, done } = inFlight(b, 5);
    works[0]!.reject(transient());
    works[1]!.reject(transient());
    await flushMicrotasks();
    assert.equal(b.state, 'open');
    for (const w of works.slice(2)) w.resolve('late');
    await done;
    assert.equal(b.stats().bufferedCalls, 2);
  });
});

describe('circuit breaker: events', () => {
  test('emits opened, rejected, half-opened and closed with their details', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, {
      name: 'inventory',
      window: { kind: 'count', size: 4 },
      minimumCalls: 2,
      failureRate: 0.5,
      openMs: 3_000,
    });
    const events = recordEvents(b);
    await succeed(b);
    await failWith(b);
    await clock.advance(1_000);
    await assert.rejects(b.execute(() => 'x', { operation: 'reserve' }));
    await clock.advance(2_000);
    await succeed(b);
    assert.deepEqual(events, [
      {
        type: 'breaker:opened',
        policy: 'inventory',
        operation: undefined,
        reason: 'failure-rate',
        openMs: 3_000,
        failureRate: 0.5,
        slowCallRate: 0,
      },
      {
        type: 'breaker:rejected',
        policy: 'inventory',
        operation: 'reserve',
        state: 'open',
        retryAfterMs: 2_000,
      },
      { type: 'breaker:half-opened', policy: 'inventory', operation: undefined },
      { type: 'breaker:closed', policy: 'inventory', operation: undefined },
    ]);
  });

  test("a pipeline receives its breaker's events", async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, { window: { kind: 'consecutive', failures: 1 } });
    const p = pipeline(b);
    const types: string[] = [];
    p.events.onAny((e) => types.push(e.type));
    await assert.rejects(p.execute(() => Promise.reject(transient())));
    await assert.rejects(p.execute(() => 'x'));
    b.isolate();
    assert.deepEqual(types, ['breaker:opened', 'breaker:rejected', 'breaker:isolated']);
  });
});

describe('circuit breaker: stats', () => {
  test('reports state, window counts, rates and outcome totals', async () => {
    const clock = new VirtualClock();
    const b = breaker(clock, {
      window: { kind: 'count', size: 10 },
      minimumCalls: 5,
      failureRate: 0.5,
      openMs: 4_000,
    });
    assert.deepEqual(b.stats(), {
      state: 'closed',
      failureRate: 0,
      slowCallRate: 0,
      bufferedCalls: 0,
      bufferedFailures: 0,
      bufferedSlowCalls: 0,
      successful: 0,
      failed: 0,
      ignored: 0,
      notPermitted: 0,
      retryAfterMs: 0,
    });
    await succeed(b);
    await succeed(b);
    await failWith(b, permanent());
    await failWith(b);
    assert.deepEqual(b.stats(), {
      state: 'closed',
      failureRate: 1 / 3,
      slowCallRate: 0,
      bufferedCalls: 3,
      bufferedFailures: 1,
      bufferedSlowCalls: 0,
      successful: 2,
      failed: 1,
      ignored: 1,
      notPermitted: 0,
      retryAfterMs: 0,
    });
    await failWith(b);
    await failWith(b); // 3 of 5: opens
    await assert.rejects(b.execute(() => 'x'));
    await clock.advance(1_000);
    const s = b.stats();
    assert.deepEqual([s.state, s.failed, s.notPermitted, s.retryAfterMs], ['open', 3, 1, 3_000]);
  });

  test('describe() reports the normalised options', () => {
    const b = circuitBreaker({ name: 'x', openMs: 2_000, window: { kind: 'time', ms: 10_000 } });
    assert.deepEqual(b.describe(), {
      kind: 'circuit-breaker',
      name: 'x',
      options: {
        window: { kind: 'time', ms: 10_000, buckets: 10 },
        failureRate: 0.5,
        minimumCalls: 10,
        slowCall: false,
        openMs: 2_000,
        openBackoff: false,
        halfOpen: { probes: 1, successes: 1, retryAfterMs: 1_000 },
      },
    });
  });
});

describe('circuit breaker: options', () => {
  test('invalid options are rejected at construction, naming the field', () => {
    const cases: Array<[options: unknown, path: string]> = [
      [{ failureRate: 1.5 }, 'circuitBreaker.failureRate'],
      [{ failureRate: 0 }, 'circuitBreaker.failureRate'],
      [{ slowCall: { thresholdMs: 100, rate: 0 } }, 'circuitBreaker.slowCall.rate'],
      [{ window: { kind: 'count' } }, 'circuitBreaker.window.size'],
      [{ window: { kind: 'time' } }, 'circuitBreaker.window.ms'],
      [{ window: { kind: 'sliding', size: 3 } }, 'circuitBreaker.window.kind'],
      [{ minimumCalls: 0 }, 'circuitBreaker.minimumCalls'],
      [{ openMs: 0 }, 'circuitBreaker.openMs'],
      [{ halfOpen: { probes: 0 } }, 'circuitBreaker.halfOpen.probes'],
      [{ openBackoff: { factor: 2, maxMs: 10 }, openMs: 100 }, 'circuitBreaker.openBackoff.maxMs'],
      [{ slowCall: { rate: 0.5 } }, 'circuitBreaker.slowCall.thresholdMs'],
      [{ openMS: 100 }, 'circuitBreaker.openMS'],
      [{ store: {} }, 'circuitBreaker.store'],
      [{ clock: { now: () => 0 } }, 'circuitBreaker.clock'],
    ];
    for (const [options, path] of cases) {
      throwsInvalid(() => circuitBreaker(options as CircuitBreakerOptions), path);
    }
  });
});

describe('breaker default recording', () => {
  test('local rejections (full bulkhead, rate limit, another open breaker) do not count as failures', async () => {
    const clock = new VirtualClock();
    const breaker = circuitBreaker({ window: { kind: 'consecutive', failures: 1 }, clock });
    const rejections = [
      new BulkheadRejectedError('b', 'queue-full'),
      new RateLimitedError('r', 100),
      new ConcurrencyLimitError('adaptive', 'batch', 10, 50),
      new BrokenCircuitError('other', 100, 'open'),
    ];
    for (const error of rejections) {
      await assert.rejects(
        breaker.execute(() => Promise.reject(error)),
        (e) => e === error,
      );
    }
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.stats().ignored, 4);
  });
});

describe('breaker events name the operation', () => {
  test('breaker:opened names the operation whose failure tripped the circuit', async () => {
    const clock = new VirtualClock();
    const b = circuitBreaker({ window: { kind: 'consecutive', failures: 2 }, clock });
    const events = recordEvents(b);
    const fail = () => Promise.reject(Object.assign(new Error('unavailable'), { status: 503 }));
    await assert.rejects(b.execute(fail, { operation: 'list' }));
    await assert.rejects(b.execute(fail, { operation: 'charge' }));
    const opened = events.find((e) => e.type === 'breaker:opened');
    assert.equal(opened?.operation, 'charge');
  });
});
