// Unit tests of the chaos policy: rates under a seeded random source, the order of injections,
// switching at run time, abortable latency, events, statistics and invalid options.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  adaptiveConcurrency,
  BulwarkError,
  chaos,
  constant,
  ErrorCodes,
  type ExecutionContext,
  fallback,
  pipeline,
  retry,
  VirtualClock,
} from '@bulwark/core';
import fc from 'fast-check';
import { recordEvents, rejectsWith, runToEnd, seeded, throwsInvalid, track } from './support.ts';

const ok = () => 'real';

/** Counts how many of `n` draws from `seeded(seed)` fall under `rate`: the reference the policy must match. */
function expectedUnder(seed: number, n: number, rate: number): number {
  const random = seeded(seed);
  let count = 0;
  for (let i = 0; i < n; i++) if (random() < rate) count++;
  return count;
}

/** Runs `n` calls one after the other and counts real runs, faults and other results. */
async function runMany(policy: { execute: (fn: () => string) => Promise<unknown> }, n: number) {
  let ran = 0;
  let faults = 0;
  const results: unknown[] = [];
  for (let i = 0; i < n; i++) {
    try {
      results.push(
        await policy.execute(() => {
          ran++;
          return ok();
        }),
      );
    } catch {
      faults++;
    }
  }
  return { ran, faults, results };
}

describe('chaos: rates under a seeded random source', () => {
  test('a fault rate injects exactly the faults the seeded draws decide, about the rate', async () => {
    const boom = new Error('injected');
    const c = chaos({ fault: { rate: 0.3, error: boom }, random: seeded(7) });
    const { ran, faults } = await runMany(c, 1_000);
    const expected = expectedUnder(7, 1_000, 0.3);
    assert.equal(faults, expected);
    assert.equal(ran, 1_000 - expected);
    assert.ok(expected > 250 && expected < 350, `expected about 300, got ${expected}`);
    assert.deepEqual(c.stats(), { enabled: true, faults: expected, latencies: 0, results: 0 });
  });

  test('a result rate answers that share of the calls with the value, without running them', async () => {
    const c = chaos({ result: { rate: 0.1, value: 'fake' }, random: seeded(3) });
    const { ran, results } = await runMany(c, 1_000);
    const expected = expectedUnder(3, 1_000, 0.1);
    assert.equal(results.filter((r) => r === 'fake').length, expected);
    assert.equal(ran, 1_000 - expected);
    assert.ok(expected > 70 && expected < 130, `expected about 100, got ${expected}`);
  });

  test('rate 0 never injects and rate 1 always does', async () => {
    const never = chaos({ fault: { rate: 0, error: new Error('x') } });
    assert.equal((await runMany(never, 100)).faults, 0);
    const always = chaos({ fault: { rate: 1, error: new Error('x') } });
    assert.equal((await runMany(always, 100)).faults, 100);
  });

  test('property: with any seed and rate, injected faults equal the draws under the rate', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer(), fc.double({ min: 0, max: 1, noNaN: true }), async (seed, rate) => {
        const c = chaos({ fault: { rate, error: new Error('x') }, random: seeded(seed) });
        const { faults } = await runMany(c, 50);
        assert.equal(faults, expectedUnder(seed, 50, rate));
      }),
      { numRuns: 50 },
    );
  });

  test('the same seed gives the same injections', async () => {
    const run = async () => {
      const c = chaos({ result: { rate: 0.5, value: 'fake' }, random: seeded(99) });
      return (await runMany(c, 50)).results;
    };
    assert.deepEqual(await run(), await run());
  });
});

describe('chaos: what is injected', () => {
  test('an injected fault rejects with the configured error and the operation never runs', async () => {
    const boom = new Error('injected');
    let ran = false;
    const c = chaos({ fault: { rate: 1, error: boom } });
    await assert.rejects(
      c.execute(() => {
        ran = true;
      }),
      (e) => e === boom,
    );
    assert.equal(ran, false);
  });

  test('the fault may be built per call from the context', async () => {
    const c = chaos({
      fault: { rate: 1, error: (ctx: ExecutionContext) => new Error(`down during ${ctx.operation}`) },
    });
    const error = await rejectsWith<Error>(c.execute(ok, { operation: 'charge' }), Error);
    assert.equal(error.message, 'down during charge');
  });

  test('injected faults reach the policies outside as real failures (a retry retries them)', async () => {
    const transientError = Object.assign(new Error('unavailable'), { status: 503 });
    // A fixed draw sequence: a fault on the first attempt only.
    const draws = [0, 0.9];
    const clock = new VirtualClock();
    const p = pipeline(
      retry({ maxAttempts: 2, backoff: constant({ ms: 10 }), clock }),
      chaos({ fault: { rate: 0.5, error: transientError }, random: () => draws.shift() ?? 0.9 }),
    );
    const call = await runToEnd(clock, p.execute(ok));
    assert.equal(call.value, 'real');
  });

  test('latency delays the call by ms on the clock, then runs it', async () => {
    const clock = new VirtualClock();
    const c = chaos({ latency: { rate: 1, ms: 500 }, clock });
    let ran = false;
    const call = track(
      c.execute(() => {
        ran = true;
        return 'late';
      }),
    );
    await clock.advance(499);
    assert.equal(ran, false);
    assert.equal(call.status, 'pending');
    await clock.advance(1);
    assert.equal(call.status, 'fulfilled');
    assert.equal(call.value, 'late');
    assert.equal(clock.pendingTimers, 0);
  });

  test('latency comes first, then the fault: a delayed fault fails after the delay', async () => {
    const clock = new VirtualClock();
    const boom = new Error('injected');
    const c = chaos({ latency: { rate: 1, ms: 100 }, fault: { rate: 1, error: boom }, clock });
    const call = track(c.execute(ok));
    await clock.advance(99);
    assert.equal(call.status, 'pending');
    await clock.advance(1);
    assert.equal(call.status, 'rejected');
    assert.equal(call.error, boom);
    assert.deepEqual(c.stats(), { enabled: true, faults: 1, latencies: 1, results: 0 });
  });

  test('a fault takes precedence over a result drawn for the same call, and no result is drawn then', async () => {
    let draws = 0;
    const c = chaos({
      fault: { rate: 1, error: new Error('x') },
      result: { rate: 1, value: 'fake' },
      random: () => {
        draws++;
        return 0;
      },
    });
    await assert.rejects(c.execute(ok));
    assert.equal(draws, 1);
    assert.deepEqual(c.stats(), { enabled: true, faults: 1, latencies: 0, results: 0 });
  });

  test('a replacement result types into the pipeline result', async () => {
    const p = pipeline(chaos({ result: { rate: 1, value: { fake: true as const } } }));
    const value: string | { fake: true } = await p.execute(() => 'real');
    assert.deepEqual(value, { fake: true });
  });

  test('nothing is drawn for kinds that are not configured, and chaos() alone passes through', async () => {
    let draws = 0;
    const c = chaos({
      random: () => {
        draws++;
        return 0;
      },
    });
    assert.equal(await c.execute(ok), 'real');
    assert.equal(draws, 0);
    assert.equal(await chaos().execute(ok), 'real');
  });

  test('a fallback outside answers for an injected fault and marks the outcome degraded', async () => {
    const p = pipeline(
      fallback({ value: 'substitute' }),
      chaos({ fault: { rate: 1, error: new Error('x') } }),
    );
    const outcome = await p.executeOutcome(ok);
    assert.deepEqual(outcome, { ok: true, value: 'substitute', degraded: true, attempts: 1 });
  });
});

describe('chaos: a faulty random source', () => {
  test('a random source that throws rejects the call, never throws from execute, and frees the layers outside', async () => {
    const clock = new VirtualClock();
    const bug = new Error('random bug');
    const random = () => {
      throw bug;
    };
    const c = chaos({ fault: { rate: 0.5, error: new Error('injected') }, random, clock });
    let returned: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      returned = c.execute(ok);
    });
    await assert.rejects(returned!, (e) => e === bug);
    const outer = adaptiveConcurrency({ clock });
    const p = pipeline(outer, chaos({ latency: { rate: 0.5, ms: 10 }, random, clock }));
    await assert.rejects((async () => p.execute(ok))(), (e) => e === bug);
    assert.equal(outer.stats().inflight, 0);
  });
});

describe('chaos: switching at run time', () => {
  test('disabled injects nothing and draws no random number', async () => {
    let draws = 0;
    const c = chaos({
      fault: { rate: 1, error: new Error('x') },
      enabled: false,
      random: () => {
        draws++;
        return 0;
      },
    });
    assert.equal(c.enabled, false);
    assert.equal((await runMany(c, 20)).faults, 0);
    assert.equal(draws, 0);
    assert.deepEqual(c.stats(), { enabled: false, faults: 0, latencies: 0, results: 0 });
  });

  test('enable() and disable() take effect on the next call', async () => {
    const c = chaos({ fault: { rate: 1, error: new Error('x') }, enabled: false });
    assert.equal(await c.execute(ok), 'real');
    c.enable();
    assert.equal(c.enabled, true);
    await assert.rejects(c.execute(ok));
    c.disable();
    assert.equal(await c.execute(ok), 'real');
    assert.equal(c.stats().faults, 1);
  });

  test('describe() reports the current switch and the configured kinds', () => {
    const c = chaos({ latency: { rate: 0.5, ms: 10 } });
    c.disable();
    assert.deepEqual(c.describe(), {
      kind: 'chaos',
      name: 'chaos',
      options: { enabled: false, fault: false, latency: { rate: 0.5, ms: 10 }, result: false },
    });
  });
});

describe('chaos: cancellation', () => {
  test('the caller aborting during injected latency rejects at once with its reason and leaves no timer', async () => {
    const clock = new VirtualClock();
    const c = chaos({ latency: { rate: 1, ms: 10_000 }, clock });
    const controller = new AbortController();
    let ran = false;
    const call = track(
      c.execute(
        () => {
          ran = true;
        },
        { signal: controller.signal },
      ),
    );
    await clock.advance(10);
    assert.equal(clock.pendingTimers, 1);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await clock.advance(0);
    assert.equal(call.status, 'rejected');
    assert.equal(call.error, reason);
    assert.equal(ran, false);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('chaos: events', () => {
  test('each injection raises chaos:injected with its kind', async () => {
    const clock = new VirtualClock();
    const c = chaos({
      latency: { rate: 1, ms: 5 },
      result: { rate: 1, value: 'fake' },
      clock,
      name: 'payments.chaos',
    });
    const events = recordEvents(c);
    const call = track(c.execute(ok, { operation: 'charge' }));
    await clock.runAll();
    assert.equal(call.value, 'fake');
    assert.deepEqual(events, [
      { type: 'chaos:injected', policy: 'payments.chaos', operation: 'charge', kind: 'latency' },
      { type: 'chaos:injected', policy: 'payments.chaos', operation: 'charge', kind: 'result' },
    ]);
  });
});

describe('chaos: options', () => {
  test('invalid options are rejected at construction, naming the field', () => {
    const cases: Array<[unknown, string]> = [
      [{ fault: { rate: 1.5, error: new Error('x') } }, 'chaos.fault.rate'],
      [{ fault: { rate: 0.5 } }, 'chaos.fault.error'],
      [{ fault: { rate: 0.5, error: 'boom' } }, 'chaos.fault.error'],
      [{ fault: { error: new Error('x') } }, 'chaos.fault.rate'],
      [{ latency: { rate: 0.5 } }, 'chaos.latency.ms'],
      [{ latency: { rate: -0.1, ms: 5 } }, 'chaos.latency.rate'],
      [{ latency: { rate: 0.1, ms: -5 } }, 'chaos.latency.ms'],
      [{ result: { rate: 0.5 } }, 'chaos.result.value'],
      [{ result: 5 }, 'chaos.result'],
      [{ enabled: 'yes' }, 'chaos.enabled'],
      [{ random: 0.5 }, 'chaos.random'],
      [{ clock: {} }, 'chaos.clock'],
      [{ latncy: { rate: 1, ms: 1 } }, 'chaos.latncy'],
      [{ fault: { rate: 1, error: new Error('x'), rat: 1 } }, 'chaos.fault.rat'],
    ];
    for (const [options, path] of cases) throwsInvalid(() => chaos(options as never), path);
  });

  test('an unknown key gets a suggestion', () => {
    const message = throwsInvalid(() => chaos({ latncy: { rate: 1, ms: 1 } } as never), 'chaos.latncy');
    assert.match(message, /latency/);
  });

  test('invalid options errors carry the INVALID_OPTIONS code', () => {
    try {
      chaos({ fault: { rate: 2, error: new Error('x') } });
      assert.fail('expected a throw');
    } catch (error) {
      assert.ok(error instanceof BulwarkError);
      assert.equal(error.code, ErrorCodes.INVALID_OPTIONS);
    }
  });
});
