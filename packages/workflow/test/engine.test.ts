// The engine on a real SQLite file: steps checkpointed and replayed, retries, parking behind an
// open circuit, compensation, sleeps, events, cancellation, priorities, dependencies, versions,
// and the timeline.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BrokenCircuitError, currentRequestContext, DependencyRegistry, VirtualClock } from '@bulwark/core';
import {
  defineWorkflow,
  RunFailedError,
  type TimelineEvent,
  WorkflowEngine,
  WorkflowErrorCodes,
  type WorkflowStore,
} from '@bulwark/workflow';
import { engineOnFile } from './stores.ts';

const setup = engineOnFile;

const types = (events: TimelineEvent[]) =>
  events.map((e) => (e.step === undefined ? e.type : `${e.type} ${e.step}`));

async function collect(engine: WorkflowEngine, runId: string): Promise<TimelineEvent[]> {
  const events: TimelineEvent[] = [];
  for await (const e of engine.timeline(runId)) events.push(e);
  return events;
}

/** A workflow whose one step takes 5 ms; `most()` is the most of its runs ever in that step at once. */
function concurrencyProbe(name: string) {
  let running = 0;
  let most = 0;
  const workflow = defineWorkflow({ name }, async (ctx) =>
    ctx.step('a', async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    }),
  );
  return { workflow, most: () => most };
}

/**
 * A workflow whose one step records its input (a name) in `done`; the run named `gated` waits in
 * its step until `release()`.
 */
function gatedJob(workflow: string, gated: string) {
  const done: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const job = defineWorkflow({ name: workflow }, async (ctx, name: string) => {
    await ctx.step('work', async () => {
      if (name === gated) await gate;
      done.push(name);
    });
  });
  return { job, done, release };
}

/** Watches the store's claims (`before` runs first, and may throw): `settled()` waits for the last one. */
function lastClaim(store: WorkflowStore, before: () => void = () => {}): { settled(): Promise<unknown> } {
  const claim = store.claim.bind(store);
  let last: Promise<unknown> = Promise.resolve();
  store.claim = (request) => {
    try {
      before();
    } catch (error) {
      return Promise.reject(error);
    }
    const claimed = claim(request);
    last = claimed;
    return claimed;
  };
  return { settled: () => last };
}

const transient = (message = 'upstream unavailable') => Object.assign(new Error(message), { status: 503 });
const permanent = (message = 'rejected') => Object.assign(new Error(message), { status: 422 });

describe('workflow engine', () => {
  test('a three-step workflow runs its steps in order and records each before moving on', async (t) => {
    const { engine, store } = await setup(t);
    const order = defineWorkflow({ name: 'order' }, async (ctx, input: { pet: string }) => {
      const reserved = await ctx.step('reserve', () => ({ reservation: `r-${input.pet}` }));
      const paid = await ctx.step('charge', async ({ runId }) => {
        // The step before this one is durable before this one acts.
        assert.deepEqual(
          (await store.steps(runId)).map((s) => s.name),
          ['reserve'],
        );
        return { charge: 'ch_1' };
      });
      await ctx.step('notify', () => null);
      return { ...reserved, ...paid };
    });
    engine.register(order).startWorker();
    const run = await engine.start(order, { pet: 'rex' });
    assert.deepEqual(await engine.result(run.id), { reservation: 'r-rex', charge: 'ch_1' });
    const steps = await store.steps(run.id);
    assert.deepEqual(
      steps.map((s) => [s.name, s.status, s.seq]),
      [
        ['reserve', 'completed', 0],
        ['charge', 'completed', 1],
        ['notify', 'completed', 2],
      ],
    );
    const events = await collect(engine, run.id);
    assert.deepEqual(types(events), [
      'run:queued',
      'run:started',
      'step:started reserve',
      'step:completed reserve',
      'step:started charge',
      'step:completed charge',
      'step:started notify',
      'step:completed notify',
      'run:completed',
    ]);
    assert.ok(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq));
    assert.equal(events.at(-1)!.progress, 100);
  });

  test('a run commits once per step: the last step’s outcome goes with the run’s end', async (t) => {
    const { engine, store } = await setup(t);
    let commits = 0;
    const commit = store.commit.bind(store);
    store.commit = (changes, now) => {
      commits++;
      return commit(changes, now);
    };
    const one = defineWorkflow({ name: 'one' }, async (ctx) => ctx.step('only', () => 1));
    const three = defineWorkflow({ name: 'three' }, async (ctx) => {
      await ctx.step('a', () => 1);
      await ctx.step('b', () => 2);
      return ctx.step('c', () => 3);
    });
    engine.register(one).register(three).startWorker();
    for (const [workflow, expected] of [
      [one, 1],
      [three, 3],
    ] as const) {
      const run = await engine.start(workflow, null);
      commits = 0;
      await engine.result(run.id);
      await engine.stop();
      assert.equal(commits, expected, `${workflow.name}: ${commits} commits`);
      const timeline = types(await collect(engine, run.id));
      assert.equal(timeline.at(-1), 'run:completed');
      assert.equal(timeline.filter((type) => type.startsWith('step:completed')).length, expected);
      engine.startWorker();
    }
  });

  test('a held outcome taken by another commit (progress) is still durable before the next step acts', async (t) => {
    const { engine, store } = await setup(t);
    const seen: string[][] = [];
    const reporting = defineWorkflow({ name: 'reporting' }, async (ctx) => {
      await ctx.step('fetch', () => 1);
      ctx.progress(50, 'fetched');
      await ctx.step('save', async ({ runId }) => {
        seen.push((await store.steps(runId)).map((s) => s.name));
      });
    });
    engine.register(reporting).startWorker();
    const run = await engine.start(reporting, null);
    await engine.result(run.id);
    assert.deepEqual(seen, [['fetch']]);
  });

  test('a step’s outcome is committed on its own when the workflow awaits something else next', async (t) => {
    const { engine, store } = await setup(t);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const gated = defineWorkflow({ name: 'gated' }, async (ctx) => {
      const value = await ctx.step('before', () => 'recorded');
      await gate;
      return value;
    });
    engine.register(gated).startWorker();
    const run = await engine.start(gated, null);
    const deadline = Date.now() + 5_000;
    while ((await store.steps(run.id)).length === 0) {
      assert.ok(Date.now() < deadline, 'the outcome was never committed while the workflow waited');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal((await store.getRun(run.id))?.status, 'running');
    open();
    assert.equal(await engine.result(run.id), 'recorded');
  });

  test('a store that refuses a held outcome stops the run on this worker; it is taken over and completes', async (t) => {
    const { engine, store } = await setup(t, { leaseMs: 300 });
    const commit = store.commit.bind(store);
    let refused = 0;
    store.commit = (changes, now) => {
      if (refused === 0 && changes.some((c) => c.kind === 'step' && c.step.name === 'first')) {
        refused++;
        return Promise.reject(new Error('disk I/O error'));
      }
      return commit(changes, now);
    };
    const ran = { first: 0, second: 0 };
    const twoSteps = defineWorkflow({ name: 'two-steps' }, async (ctx) => {
      await ctx.step('first', () => ++ran.first);
      await ctx.step('second', () => ++ran.second);
      return 'done';
    });
    engine.register(twoSteps).startWorker();
    const run = await engine.start(twoSteps, null);
    assert.equal(await engine.result(run.id), 'done');
    // The first step ran again after the takeover (at least once); the second never ran on an
    // outcome that was not stored.
    assert.deepEqual(ran, { first: 2, second: 1 });
    assert.equal(refused, 1);
    const steps = await store.steps(run.id);
    assert.deepEqual(
      steps.map((s) => [s.name, s.output]),
      [
        ['first', 2],
        ['second', 1],
      ],
    );
    assert.ok(types(await collect(engine, run.id)).includes('run:resumed'));
  });

  test('parallel steps with Promise.all, and each step gets a stable idempotency key', async (t) => {
    const { engine } = await setup(t);
    const keys: string[] = [];
    const fanOut = defineWorkflow({ name: 'fan-out' }, async (ctx) => {
      const [a, b] = await Promise.all([
        ctx.step('a', (s) => {
          keys.push(s.idempotencyKey);
          return 1;
        }),
        ctx.step('b', (s) => {
          keys.push(s.idempotencyKey);
          return 2;
        }),
      ]);
      return a + b;
    });
    engine.register(fanOut).startWorker();
    const run = await engine.start(fanOut, null);
    assert.equal(await engine.result(run.id), 3);
    assert.deepEqual(keys.sort(), [`${run.id}:a`, `${run.id}:b`]);
  });

  test('steps run in the trace and request context of whoever started the run', async (t) => {
    const { engine } = await setup(t);
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const seen: unknown[] = [];
    const traced = defineWorkflow({ name: 'traced' }, async (ctx) => {
      await ctx.step('look', () => void seen.push(currentRequestContext()));
    });
    engine.register(traced).startWorker();
    const run = await engine.start(traced, null, { traceparent, correlationId: 'req-42' });
    await engine.result(run.id);
    assert.deepEqual(seen, [{ traceparent, requestId: 'req-42' }]);
  });

  test('transient failures are retried; a permanent one fails the step at once', async (t) => {
    const { engine, store } = await setup(t);
    let calls = 0;
    let permanentCalls = 0;
    const flaky = defineWorkflow({ name: 'flaky' }, async (ctx) => {
      await ctx.step('fetch', { retry: { maxAttempts: 3, baseMs: 1, maxMs: 5 } }, () => {
        if (++calls < 3) throw transient();
        return 'ok';
      });
      await ctx.step('validate', { retry: { maxAttempts: 3, baseMs: 1 } }, () => {
        permanentCalls++;
        throw permanent('bad card');
      });
    });
    engine.register(flaky).startWorker();
    const run = await engine.start(flaky, null);
    await assert.rejects(
      engine.result(run.id),
      (e: Error) => e instanceof RunFailedError && /bad card/.test(e.message),
    );
    assert.equal(calls, 3);
    assert.equal(permanentCalls, 1);
    const steps = await store.steps(run.id);
    assert.deepEqual(
      steps.map((s) => [s.name, s.status, s.attempts]),
      [
        ['fetch', 'completed', 3],
        ['validate', 'failed', 1],
      ],
    );
    const events = types(await collect(engine, run.id));
    assert.equal(events.filter((e) => e === 'step:retry-scheduled fetch').length, 2);
    assert.equal(events.at(-1), 'run:failed');
  });

  test('parallel steps with the same retry settings retry on their own, each retry told as its own step’s', async (t) => {
    const { engine, store } = await setup(t);
    const retry = { maxAttempts: 4, baseMs: 1, maxMs: 2 };
    const failures: Record<string, number> = { a: 1, b: 3, c: 0 };
    const calls: Record<string, number> = { a: 0, b: 0, c: 0 };
    const parallel = defineWorkflow({ name: 'parallel-retries' }, async (ctx) =>
      Promise.all(
        ['a', 'b', 'c'].map((name) =>
          ctx.step(name, { retry }, () => {
            if (++calls[name]! <= failures[name]!) throw transient();
            return name;
          }),
        ),
      ),
    );
    engine.register(parallel).startWorker();
    const run = await engine.start(parallel, null);
    assert.deepEqual(await engine.result(run.id), ['a', 'b', 'c']);
    assert.deepEqual(calls, { a: 2, b: 4, c: 1 });
    const attempts = Object.fromEntries((await store.steps(run.id)).map((s) => [s.name, s.attempts]));
    assert.deepEqual(attempts, { a: 2, b: 4, c: 1 });
    const events = types(await collect(engine, run.id));
    for (const [name, n] of Object.entries(failures))
      assert.equal(events.filter((e) => e === `step:retry-scheduled ${name}`).length, n, name);
  });

  test('runs whose steps share one retry setting (one pipeline for the engine) each hear only their own retries', async (t) => {
    const { engine } = await setup(t);
    // One object for every run: the engine builds its pipeline once and routes each retry.
    const retry = { maxAttempts: 5, baseMs: 1, maxMs: 2 };
    const failures = new Map<string, number>();
    const flaky = defineWorkflow({ name: 'shared-retry' }, async (ctx, input: { fail: number }) =>
      ctx.step('fetch', { retry }, ({ runId }) => {
        const failed = failures.get(runId) ?? 0;
        if (failed < input.fail) {
          failures.set(runId, failed + 1);
          throw transient();
        }
        return input.fail;
      }),
    );
    engine.register(flaky).startWorker();
    const runs = await Promise.all([0, 1, 2, 3].map((fail) => engine.start(flaky, { fail })));
    for (const [fail, run] of runs.entries()) {
      assert.equal(await engine.result(run.id), fail);
      const events = types(await collect(engine, run.id));
      assert.equal(events.filter((e) => e === 'step:retry-scheduled fetch').length, fail, `run ${fail}`);
    }
  });

  test('a step’s retry settings are the registry’s: every field counts, and a bad one is named', async (t) => {
    const { engine } = await setup(t);
    let calls = 0;
    const constant = defineWorkflow({ name: 'constant-retry' }, async (ctx) =>
      ctx.step('fetch', { retry: { maxAttempts: 3, backoff: 'constant', baseMs: 40, jitter: 0 } }, () => {
        if (++calls < 3) throw transient();
        return calls;
      }),
    );
    const typo = defineWorkflow({ name: 'typo-retry' }, async (ctx) =>
      ctx.step(
        'fetch',
        { retry: { maxAttempts: 3, baseMs: 1, backoff: 'fibonacci' as 'constant' } },
        () => 1,
      ),
    );
    engine.register(constant, typo).startWorker();
    const started = performance.now();
    const run = await engine.start(constant, null);
    assert.equal(await engine.result(run.id), 3);
    // Waited, loosely (timers fire late, never much early)...
    assert.ok(performance.now() - started >= 70, 'the two delays were waited');
    // ...and scheduled as configured: exact, where the wall clock is not.
    const delays = (await collect(engine, run.id))
      .filter((e) => e.type === 'step:retry-scheduled')
      .map((e) => (e.data as { delayMs: number }).delayMs);
    assert.deepEqual(delays, [40, 40], 'two constant 40 ms delays');
    const bad = await engine.start(typo, null);
    await assert.rejects(engine.result(bad.id), /retry\.backoff: expected one of/);
  });

  test('on failure the completed steps are compensated in reverse order, then the run is compensated', async (t) => {
    const { engine } = await setup(t);
    const undone: string[] = [];
    const saga = defineWorkflow({ name: 'saga' }, async (ctx) => {
      await ctx.step(
        'reserve',
        { compensate: (r: string) => void undone.push(`release ${r}`) },
        () => 'pet-7',
      );
      await ctx.step('charge', { compensate: (c: string) => void undone.push(`refund ${c}`) }, () => 'ch_9');
      await ctx.step('ship', { retry: false }, () => {
        throw permanent('no courier');
      });
    });
    engine.register(saga).startWorker();
    const run = await engine.start(saga, null);
    await assert.rejects(engine.result(run.id), /compensated: no courier/);
    assert.deepEqual(undone, ['refund ch_9', 'release pet-7']);
    const events = types(await collect(engine, run.id));
    assert.deepEqual(events.slice(-6), [
      'run:compensating',
      'compensation:started charge',
      'compensation:completed charge',
      'compensation:started reserve',
      'compensation:completed reserve',
      'run:compensated',
    ]);
  });

  test('a step still running when its sibling fails is recorded, and compensated if it completes', async (t) => {
    const { engine, store } = await setup(t);
    const undone: string[] = [];
    let slowDone = false;
    const pair = defineWorkflow({ name: 'pair' }, async (ctx) => {
      await Promise.all([
        ctx.step('quick', { retry: false }, async () => {
          await new Promise((r) => setTimeout(r, 20));
          throw permanent('card declined');
        }),
        (async () => {
          const booked = await ctx.step(
            'slow',
            { compensate: (booking) => void undone.push(String(booking)) },
            async () => {
              await new Promise((r) => setTimeout(r, 150));
              slowDone = true;
              return 'booking-1';
            },
          );
          // The body has ended by now (the Promise.all rejected): this branch starts nothing more.
          await ctx.step('never', () => assert.fail('no step starts after the body ended'));
          return booked;
        })(),
      ]);
    });
    engine.register(pair).startWorker();
    const run = await engine.start(pair, null);
    await assert.rejects(engine.result(run.id), /card declined/);
    assert.ok(slowDone, 'the run ended only after the step still running settled');
    assert.deepEqual(undone, ['booking-1']);
    assert.equal((await store.getRun(run.id))?.status, 'compensated');
    assert.deepEqual((await store.steps(run.id)).map((s) => [s.name, s.status]).sort(), [
      ['compensate:slow', 'completed'],
      ['quick', 'failed'],
      ['slow', 'completed'],
    ]);
  });

  test('a sibling that parks after the body ended does not keep the run from ending', async (t) => {
    const { engine, store } = await setup(t);
    const pair = defineWorkflow({ name: 'pair-parked' }, async (ctx) => {
      await Promise.all([
        ctx.step('quick', { retry: false }, async () => {
          await new Promise((r) => setTimeout(r, 20));
          throw permanent('card declined');
        }),
        ctx.step('slow', { retry: false }, async () => {
          await new Promise((r) => setTimeout(r, 150));
          throw new BrokenCircuitError('voice.breaker', 1_000, 'open');
        }),
      ]);
    });
    engine.register(pair).startWorker();
    const run = await engine.start(pair, null);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      assert.rejects(engine.result(run.id), /card declined/),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error('the run never ended: it waited for its parked sibling')),
          5_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal((await store.getRun(run.id))?.status, 'failed');
  });

  test('a compensation that keeps failing leaves the run failed, and the timeline says which', async (t) => {
    const { engine } = await setup(t);
    const saga = defineWorkflow({ name: 'saga-stuck' }, async (ctx) => {
      await ctx.step(
        'reserve',
        {
          retry: { maxAttempts: 2, baseMs: 1 },
          compensate: () => Promise.reject(transient('inventory down')),
        },
        () => 'pet',
      );
      await ctx.step('charge', { retry: false }, () => Promise.reject(permanent('declined')));
    });
    engine.register(saga).startWorker();
    const run = await engine.start(saga, null);
    await assert.rejects(engine.result(run.id), /failed: declined/);
    const events = types(await collect(engine, run.id));
    assert.deepEqual(events.slice(-3), [
      'compensation:started reserve',
      'compensation:failed reserve',
      'run:failed',
    ]);
  });

  test('a step whose dependency’s circuit is open is parked, not failed, and runs when it may', async (t) => {
    const registry = new DependencyRegistry({
      dependencies: {
        payments: { retry: false, breaker: { window: { kind: 'consecutive', failures: 1 }, openMs: 300 } },
      },
    });
    t.after(() => registry.close());
    const { engine, store } = await setup(t, { registry });
    await assert.rejects(registry.execute('payments', 'charge', () => Promise.reject(transient())));
    let attempts = 0;
    const pay = defineWorkflow({ name: 'pay' }, async (ctx) =>
      ctx.step('charge', { dependency: 'payments', retry: { maxAttempts: 1, baseMs: 1 } }, () => {
        attempts++;
        return 'paid';
      }),
    );
    engine.register(pay).startWorker();
    const started = Date.now();
    const run = await engine.start(pay, null);
    assert.equal(await engine.result(run.id), 'paid');
    assert.ok(Date.now() - started >= 200, 'it waited for the circuit');
    assert.equal(attempts, 1, 'no attempt was spent while parked');
    const events = types(await collect(engine, run.id));
    assert.ok(events.includes('step:parked charge'), events.join(', '));
    assert.equal((await store.steps(run.id))[0]?.attempts, 1);
  });

  test('sleep releases the worker and the run resumes after it', async (t) => {
    const { engine, store } = await setup(t);
    let before = 0;
    const nap = defineWorkflow({ name: 'nap' }, async (ctx) => {
      await ctx.step('before', () => ++before);
      await ctx.sleep('rest', 150);
      return ctx.step('after', () => 'awake');
    });
    engine.register(nap).startWorker();
    const started = Date.now();
    const run = await engine.start(nap, null);
    await waitFor(async () => (await store.getRun(run.id))?.status === 'waiting', 'the run to sleep');
    assert.equal((await store.getRun(run.id))?.leaseOwner, undefined, 'asleep, it holds no worker');
    assert.equal(await engine.result(run.id), 'awake');
    assert.ok(Date.now() - started >= 150);
    assert.equal(before, 1, 'the step before the sleep ran once');
  });

  test('waitForEvent receives an event sent to the run, and times out without one', async (t) => {
    const { engine, store } = await setup(t);
    const approval = defineWorkflow({ name: 'approval' }, async (ctx) => {
      const decision = await ctx.waitForEvent<{ approved: boolean }>('decision', { timeoutMs: 5_000 });
      return decision.approved ? 'approved' : 'rejected';
    });
    const impatient = defineWorkflow({ name: 'impatient' }, async (ctx) => {
      await ctx.waitForEvent('never', { timeoutMs: 100 });
    });
    engine.register(approval, impatient).startWorker();
    const run = await engine.start(approval, null);
    await waitFor(async () => (await store.getRun(run.id))?.waitingFor === 'decision', 'the run to wait');
    assert.equal(await engine.sendEvent(run.id, 'decision', { approved: true }), true);
    assert.equal(await engine.result(run.id), 'approved');
    const late = await engine.start(impatient, null);
    await assert.rejects(engine.result(late.id), /No 'never' event within 100 ms/);
  });

  test('an event sent before the run waits for it is not lost', async (t) => {
    const { engine } = await setup(t);
    const early = defineWorkflow({ name: 'early' }, async (ctx) => {
      await ctx.sleep('first', 100);
      return ctx.waitForEvent('go');
    });
    engine.register(early).startWorker();
    const run = await engine.start(early, null);
    await engine.sendEvent(run.id, 'go', 'ready');
    assert.equal(await engine.result(run.id), 'ready');
  });

  test('cancel aborts the running step’s signal, compensates, and ends the run cancelled', async (t) => {
    const { engine } = await setup(t);
    const undone: string[] = [];
    let stepStarted!: () => void;
    const started = new Promise<void>((r) => {
      stepStarted = r;
    });
    const long = defineWorkflow({ name: 'long' }, async (ctx) => {
      await ctx.step('reserve', { compensate: () => void undone.push('released') }, () => 'r');
      await ctx.step('wait', { retry: false }, ({ signal }) => {
        stepStarted();
        return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      });
    });
    engine.register(long).startWorker();
    const run = await engine.start(long, null);
    await started;
    assert.equal(await engine.cancel(run.id, 'customer changed their mind'), true);
    await assert.rejects(engine.result(run.id), /cancelled: .*customer changed their mind/);
    assert.deepEqual(undone, ['released']);
  });

  test('a cancel from elsewhere that the worker has not heard of when the run starts waiting still ends it', async (t) => {
    // Heartbeats far apart: the worker hears of the request only through the next claim.
    const { engine, store } = await setup(t, { leaseMs: 60_000 });
    const undone: string[] = [];
    let requested!: Promise<boolean>;
    const approval = defineWorkflow({ name: 'approval-cancelled' }, async (ctx) => {
      await ctx.step('reserve', { compensate: () => void undone.push('released') }, ({ runId }) => {
        // Another process cancels while this step runs: only the request is recorded.
        requested = store.requestCancel(runId, 'order withdrawn', Date.now());
        return requested;
      });
      await ctx.waitForEvent('approved');
    });
    engine.register(approval).startWorker();
    const run = await engine.start(approval, null);
    await assert.rejects(engine.result(run.id), /cancelled: .*order withdrawn/);
    assert.equal(await requested, true);
    assert.deepEqual(undone, ['released']);
    assert.equal((await store.getRun(run.id))?.status, 'cancelled');
  });

  test('cancel of a run asleep or waiting compensates what it did, then ends it cancelled', async (t) => {
    const { engine, store } = await setup(t);
    const undone: string[] = [];
    const booking = defineWorkflow({ name: 'booking-paused' }, async (ctx, how: string) => {
      await ctx.step('reserve', { compensate: (r) => void undone.push(`${how}:${r}`) }, () => 'seat-1');
      if (how === 'sleep') await ctx.sleep('cool-off', 60_000);
      else await ctx.waitForEvent('approved');
    });
    engine.register(booking).startWorker();
    for (const how of ['sleep', 'wait']) {
      const run = await engine.start(booking, how);
      await waitFor(async () => (await store.getRun(run.id))?.status === 'waiting', 'the run to wait');
      assert.equal(await engine.cancel(run.id, 'trip called off'), true);
      await assert.rejects(engine.result(run.id), /cancelled: .*trip called off/);
      assert.equal((await store.getRun(run.id))?.status, 'cancelled');
    }
    assert.deepEqual(undone, ['sleep:seat-1', 'wait:seat-1']);
  });

  test('runs are claimed by priority, then age', async (t) => {
    const { engine } = await setup(t, { concurrency: 1 });
    const done: string[] = [];
    const job = defineWorkflow({ name: 'job' }, async (ctx, name: string) => {
      await ctx.step('work', () => void done.push(name));
    });
    engine.register(job);
    const ids = [
      await engine.start(job, 'low', { priority: 'low' }),
      await engine.start(job, 'normal-1'),
      await engine.start(job, 'critical', { priority: 'critical' }),
      await engine.start(job, 'normal-2'),
    ];
    engine.startWorker();
    for (const id of ids) await engine.result(id.id);
    assert.deepEqual(done, ['critical', 'normal-1', 'normal-2', 'low']);
  });

  test('a run started on a worker with a free slot runs there: no claim, no wake-up, and result() reads nothing', async (t) => {
    const { engine, store } = await setup(t, { pollMs: 60_000 });
    const calls = { claim: 0, getRun: 0 };
    const claims = lastClaim(store, () => calls.claim++);
    const getRun = store.getRun.bind(store);
    store.getRun = (id) => {
      calls.getRun++;
      return getRun(id);
    };
    const wakes: string[] = [];
    store.subscribe((topic) => wakes.push(topic));
    const seen: string[] = [];
    engine.on((e) => {
      if (e.type === 'run:status') seen.push(e.status);
    });
    const three = defineWorkflow({ name: 'here' }, async (ctx, n: number) => {
      await ctx.step('a', () => n);
      await ctx.step('b', () => n + 1);
      return ctx.step('c', () => n + 2);
    });
    engine.register(three).startWorker();
    // The first look finds the queue empty.
    await claims.settled();
    assert.equal(calls.claim, 1);
    const runs = await Promise.all([1, 10, 100].map((n) => engine.start(three, n)));
    assert.deepEqual(await Promise.all(runs.map((run) => engine.result(run.id))), [3, 12, 102]);
    assert.deepEqual(calls, { claim: 1, getRun: 0 }, 'no claim, and result() read nothing');
    assert.ok(!wakes.includes('runs'), 'no worker was woken');
    assert.deepEqual(seen, [...Array(3).fill(['queued', 'running']).flat(), ...Array(3).fill('completed')]);
    for (const run of runs) {
      assert.deepEqual(types(await collect(engine, run.id)), [
        'run:queued',
        'run:started',
        'step:started a',
        'step:completed a',
        'step:started b',
        'step:completed b',
        'step:started c',
        'step:completed c',
        'run:completed',
      ]);
      const stored = await getRun(run.id);
      assert.equal(stored?.status, 'completed');
      assert.equal(stored?.leaseOwner, undefined);
    }
  });

  test('a run started here never passes a claimable run waiting in the queue', async (t) => {
    const { engine, store } = await setup(t, { concurrency: 1, pollMs: 60_000 });
    let failNext = false;
    const claims = lastClaim(store, () => {
      if (!failNext) return;
      failNext = false;
      throw new Error('the database hung up');
    });
    const { job, done, release } = gatedJob('queue-job', 'blocker');
    engine.register(job).startWorker();
    await claims.settled();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    const blocker = await engine.start(job, 'blocker');
    // Queued: the only slot is taken.
    const waiting = await engine.start(job, 'critical', { priority: 'critical' });
    // The claim for the slot the blocker frees fails: the slot is free, nothing is claiming, and
    // the critical run still waits in the queue.
    failNext = true;
    release();
    await engine.result(blocker.id);
    const late = await engine.start(job, 'late');
    await engine.result(late.id);
    await engine.result(waiting.id);
    assert.deepEqual(done, ['blocker', 'critical', 'late']);
    assert.ok(warnings.some((m) => m.includes('the database hung up')));
  });

  test('a run due by time alone is not passed by runs started here once a poll has come', async (t) => {
    const { engine, store } = await setup(t, { concurrency: 1, pollMs: 20 });
    const claims = lastClaim(store);
    const order: string[] = [];
    const sleeper = defineWorkflow({ name: 'sleeper' }, async (ctx) => {
      await ctx.sleep('nap', 30);
      await ctx.step('woke', () => void order.push('sleeper'));
    });
    const work = defineWorkflow({ name: 'work' }, async (ctx, i: number) => {
      await ctx.step('w', async () => {
        await new Promise((r) => setTimeout(r, 100));
        order.push(`work${i}`);
      });
    });
    engine.register(sleeper, work).startWorker();
    await claims.settled();
    const asleep = await engine.start(sleeper, null);
    // Asleep, given back: the claim its wake-up caused found nothing due, so the queue looks empty.
    while ((await store.getRun(asleep.id))?.status !== 'waiting') await new Promise((r) => setTimeout(r, 5));
    await claims.settled();
    // One slot, kept busy by runs started here, each 100 ms: the sleeper is due after 30 ms.
    for (let i = 0; i < 4; i++) {
      const run = await engine.start(work, i);
      await engine.result(run.id);
    }
    await engine.result(asleep.id);
    assert.ok(order.indexOf('sleeper') <= 1, order.join(', '));
  });

  test('a run queued while the worker was stopped is not passed once it starts again', async (t) => {
    const { engine, store } = await setup(t, { concurrency: 1, pollMs: 60_000 });
    const claims = lastClaim(store);
    const { job, done, release } = gatedJob('restart-job', 'first');
    engine.register(job).startWorker();
    await claims.settled();
    const first = await engine.start(job, 'first');
    const stopping = engine.stop();
    // Queued while stopped: its wake-up is heard by no one.
    const critical = await engine.start(job, 'critical', { priority: 'critical' });
    engine.startWorker();
    release();
    await engine.result(first.id);
    await stopping;
    const low = await engine.start(job, 'low', { priority: 'low' });
    await engine.result(low.id);
    await engine.result(critical.id);
    assert.deepEqual(done, ['first', 'critical', 'low']);
  });

  test('a start whose enqueue outlasts its lease leaves the run to the claims: it runs once', async (t) => {
    const { engine, store } = await setup(t, { concurrency: 2, pollMs: 20, leaseMs: 150 });
    const claims = lastClaim(store);
    let bodies = 0;
    const once = defineWorkflow({ name: 'once' }, async (ctx) =>
      ctx.step('effect', async () => {
        bodies++;
        await new Promise((r) => setTimeout(r, 50));
      }),
    );
    engine.register(once).startWorker();
    await claims.settled();
    const enqueue = store.enqueue.bind(store);
    store.enqueue = async (runs, now) => {
      const results = await enqueue(runs, now);
      // Acknowledged late (a busy database): the lease given at the start has run out by then.
      await new Promise((r) => setTimeout(r, 300));
      return results;
    };
    const statuses: string[] = [];
    engine.on((e) => {
      if (e.type === 'run:status') statuses.push(e.status);
    });
    const run = await engine.start(once, null);
    assert.equal(run.run?.leaseOwner, engine.workerId, 'leased at its start');
    await engine.result(run.id);
    // Whatever was still to come has had time to.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(bodies, 1);
    assert.equal((await store.getRun(run.id))?.status, 'completed');
    assert.equal(statuses.at(-1), 'completed', statuses.join(' → '));
  });

  test('a start takes its input when called, even when it waits for a claim in flight', async (t) => {
    const { engine } = await setup(t);
    const seen: number[] = [];
    const echo = defineWorkflow({ name: 'echo' }, async (ctx, input: { i: number }) =>
      ctx.step('see', () => void seen.push(input.i)),
    );
    // Right after startWorker(), its first claim is in flight: the starts wait for it.
    engine.register(echo).startWorker();
    const payload = { i: 0 };
    const starts = [];
    for (let i = 0; i < 3; i++) {
      payload.i = i;
      starts.push(engine.start(echo, payload));
    }
    for (const run of await Promise.all(starts)) await engine.result(run.id);
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      [0, 1, 2],
    );
  });

  test('runs started here and runs claimed together never exceed the concurrency', async (t) => {
    // No poll: one landing while a claim is in flight would send the starts waiting for that
    // claim to the queue (a start waits for one claim only), as a slow machine showed.
    const { engine, store } = await setup(t, { concurrency: 2, pollMs: 60_000 });
    const { workflow: slow, most } = concurrencyProbe('slow');
    engine.register(slow);
    const claims = lastClaim(store);
    // Two waiting in the queue before the worker starts, then eight started at once when it idles:
    // two take the free slots, six are queued and claimed.
    const queued = [await engine.start(slow, null), await engine.start(slow, null)];
    engine.startWorker();
    for (const run of queued) await engine.result(run.id);
    await claims.settled();
    const started = await Promise.all(Array.from({ length: 8 }, () => engine.start(slow, null)));
    for (const run of started) await engine.result(run.id);
    assert.equal(most(), 2);
    const leased = started.filter((run) => run.run?.leaseOwner === engine.workerId);
    assert.equal(leased.length, 2, 'started here');
    assert.equal((await store.countRuns()).find((c) => c.status === 'completed')?.count, 10);
  });

  test('stop waits for a run whose start was in flight, which runs here to its end', async (t) => {
    const { engine, store } = await setup(t);
    const one = defineWorkflow({ name: 'one-more' }, async (ctx) => ctx.step('a', () => 'done'));
    const claims = lastClaim(store);
    engine.register(one).startWorker();
    await claims.settled();
    const starting = engine.start(one, null);
    await engine.stop();
    const run = await starting;
    assert.equal(run.run?.leaseOwner, engine.workerId, 'leased at its start');
    const stored = await store.getRun(run.id);
    assert.equal(stored?.status, 'completed');
    assert.equal(stored?.output, 'done');
  });

  test('dependsOn: a run waits for its parents, and is cancelled when one fails', async (t) => {
    const { engine, store } = await setup(t);
    const order: string[] = [];
    const job = defineWorkflow({ name: 'dep-job' }, async (ctx, input: { name: string; fail?: boolean }) => {
      await ctx.step('work', { retry: false }, () => {
        order.push(input.name);
        if (input.fail) throw permanent('parent broke');
      });
    });
    engine.register(job);
    const parent = await engine.start(job, { name: 'parent' });
    const child = await engine.start(
      job,
      { name: 'child' },
      { dependsOn: [parent.id], priority: 'critical' },
    );
    const failing = await engine.start(job, { name: 'failing', fail: true });
    const orphan = await engine.start(job, { name: 'orphan' }, { dependsOn: [failing.id] });
    engine.startWorker();
    await engine.result(child.id);
    assert.ok(order.indexOf('parent') < order.indexOf('child'), order.join(', '));
    await assert.rejects(engine.result(orphan.id), /cancelled/);
    assert.equal((await store.getRun(orphan.id))?.status, 'cancelled');
    assert.ok(!order.includes('orphan'));
  });

  test('under a per-workflow or per-key limit, a run that ends lets the next one start at once, not at the next poll', async (t) => {
    for (const limits of [{ perWorkflow: { quick: 1 } }, { perKey: 1 }]) {
      const { engine } = await setup(t, { pollMs: 60_000, concurrency: 4, ...limits });
      const { workflow: quick, most } = concurrencyProbe('quick');
      engine.register(quick).startWorker();
      const runs = [];
      for (let i = 0; i < 6; i++) runs.push(await engine.start(quick, null, { concurrencyKey: 'tenant-1' }));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(runs.map((run) => engine.result(run.id))),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error('six runs took over 5 s: each waited for a poll')),
            5_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(most(), 1, JSON.stringify(limits));
    }
  });

  test('start options and durations of the wrong type are refused, naming the option', async (t) => {
    const { engine, store } = await setup(t);
    // By name: an input is JSON, which has no Infinity.
    const durations: Record<string, unknown> = {
      text: '100',
      infinite: Number.POSITIVE_INFINITY,
      negative: -5,
      fraction: 10.5,
    };
    const nap = defineWorkflow({ name: 'nap-typed' }, async (ctx, ms: string) => {
      await ctx.sleep('rest', durations[ms] as number);
      return 'awake';
    });
    const wait = defineWorkflow({ name: 'wait-typed' }, async (ctx, ms: string) =>
      ctx.waitForEvent('go', { timeoutMs: durations[ms] as number }),
    );
    engine.register(nap, wait).startWorker();
    const refused: [object, RegExp][] = [
      [{ timeoutMs: '1000' }, /^timeoutMs: expected a number of ms from 0 to 8640000000000000, got "1000"$/],
      [{ timeoutMs: Number.NaN }, /timeoutMs: .* got NaN/],
      [{ timeoutMs: -1 }, /timeoutMs: .* got -1/],
      [{ idempotencyKey: 42 }, /^idempotencyKey: expected a string, got 42$/],
      [{ concurrencyKey: {} }, /^concurrencyKey: expected a string, got \{\}$/],
      [{ dependsOn: ['a', 1] }, /^dependsOn: expected an array of run ids/],
    ];
    for (const [options, message] of refused)
      await assert.rejects(
        engine.start(nap, 'fraction', options as never),
        (e: Error) => e instanceof TypeError && message.test(e.message),
      );
    assert.deepEqual(await store.listRuns({}), [], 'nothing was written');
    for (const [workflow, ms, message] of [
      [nap, 'text', /sleep 'rest': expected a number of ms .* got "100"/],
      [nap, 'infinite', /sleep 'rest': .* got Infinity/],
      [wait, 'negative', /waitForEvent 'go': timeoutMs: .* got -5/],
    ] as const) {
      const run = await engine.start(workflow, ms);
      await assert.rejects(engine.result(run.id), message);
    }
    // A fraction of a ms is rounded up, not refused.
    assert.equal(await engine.result((await engine.start(nap, 'fraction')).id), 'awake');
  });

  test('starting twice with one idempotency key gives the same run', async (t) => {
    const { engine } = await setup(t);
    const job = defineWorkflow({ name: 'once' }, async () => 'done');
    engine.register(job);
    const a = await engine.start(job, null, { idempotencyKey: 'order-42' });
    const b = await engine.start(job, null, { idempotencyKey: 'order-42' });
    assert.equal(a.id, b.id);
    assert.deepEqual([a.created, b.created], [true, false]);
  });

  test('a run whose version is no longer registered stops with a clear error', async (t) => {
    const { engine, store } = await setup(t);
    const v1 = defineWorkflow({ name: 'versioned', version: '1' }, async () => 'v1');
    const v2 = defineWorkflow({ name: 'versioned', version: '2' }, async () => 'v2');
    const run = await engine.start(v1, null);
    engine.register(v2).startWorker();
    await assert.rejects(
      engine.result(run.id),
      /version 1, which no running worker has registered \(registered here: 2\)/,
    );
    assert.equal((await store.getRun(run.id))?.error?.code, WorkflowErrorCodes.VERSION_GONE);
  });

  test('in a rolling deploy, a worker leaves the runs of a version it lacks to the worker that has it, and stops them once none has', async (t) => {
    // The new deploy: version 2 only. The old deploy (version 1) is alive elsewhere.
    const { engine: next, store } = await setup(t);
    const v1 = defineWorkflow({ name: 'deployed', version: '1' }, async () => 'v1');
    const v2 = defineWorkflow({ name: 'deployed', version: '2' }, async () => 'v2');
    const producer = new WorkflowEngine({ store }).register(v1);
    let claims = 0;
    const claim = store.claim.bind(store);
    // Counted once settled: a claim that has answered has looked.
    store.claim = async (request) => {
      const claimed = await claim(request);
      claims++;
      return claimed;
    };
    const claimsSeen = async (n: number) => {
      const target = claims + n;
      while (claims < target) await new Promise((r) => setTimeout(r, 5));
    };
    // The old deploy, alive elsewhere (for a minute: however slow this machine is).
    await store.announce('old-deploy', { deployed: ['1'] }, Date.now(), 60_000);
    next.register(v2).startWorker();
    const early = [await producer.start(v1, null), await producer.start(v1, null)];
    // The new worker looked (a wake-up, then polls) and took neither.
    await claimsSeen(3);
    for (const run of early) assert.equal((await store.getRun(run.id))?.status, 'queued');
    // The old deploy's worker runs them on their own version.
    const old = new WorkflowEngine({ store, workerId: 'old-deploy', pollMs: 20, leaseMs: 2_000 }).register(
      v1,
    );
    t.after(() => old.stop());
    old.startWorker();
    for (const run of early) assert.equal(await old.result(run.id), 'v1');
    // Once it has stopped, version 1 is gone: a run of it stops with a clear error at once.
    await old.stop();
    const late = await producer.start(v1, null);
    await assert.rejects(
      next.result(late.id),
      /version 1, which no running worker has registered \(registered here: 2\)/,
    );
  });

  test('a replay that asks for steps the history does not have fails the run, naming them', async (t) => {
    const { engine, store } = await setup(t);
    const v = defineWorkflow({ name: 'changing' }, async (ctx) => {
      await ctx.step('a', () => 1);
      await ctx.sleep('pause', 200);
      await ctx.step('b', () => 2);
    });
    engine.register(v).startWorker();
    const run = await engine.start(v, null);
    await waitFor(async () => (await store.getRun(run.id))?.status === 'waiting', 'the run to sleep');
    await engine.stop();
    // Deployed meanwhile under the same version: step 'a' became 'a2'.
    const changed = defineWorkflow({ name: 'changing' }, async (ctx) => {
      await ctx.step('a2', () => 1);
    });
    const other = new WorkflowEngine({ store, pollMs: 20 });
    t.after(() => other.stop());
    other.register(changed).startWorker();
    await assert.rejects(
      other.result(run.id),
      /asked for step 'a2' while recorded step\(s\) 'a', 'sleep:pause'/,
    );
    assert.equal((await store.getRun(run.id))?.error?.code, WorkflowErrorCodes.NON_DETERMINISTIC);
  });

  test('a step that fails for good takes its fallback, and the run ends degraded', async (t) => {
    const { engine, store } = await setup(t);
    const quote = defineWorkflow({ name: 'quote' }, async (ctx) => {
      const price = await ctx.step(
        'live-price',
        { retry: { maxAttempts: 2, baseMs: 1 }, fallback: () => ({ cents: 999, stale: true }) },
        () => Promise.reject(transient('pricing down')),
      );
      return price;
    });
    engine.register(quote).startWorker();
    const run = await engine.start(quote, null);
    assert.deepEqual(await engine.result(run.id), { cents: 999, stale: true });
    const record = await store.getRun(run.id);
    assert.equal(record?.degraded, true);
    const events = types(await collect(engine, run.id));
    assert.ok(events.includes('step:fallback live-price'));
    assert.equal(events.at(-1), 'run:degraded');
  });

  test('a step completed through its fallback keeps its error and is not compensated, replayed or not', async (t) => {
    const { engine, store } = await setup(t);
    const undone: unknown[] = [];
    // The sleep makes the run replay the fallback step before the failure: the outcome is the same.
    for (const replayed of [false, true]) {
      const name = replayed ? 'fallback-replayed' : 'fallback-live';
      const flow = defineWorkflow({ name }, async (ctx) => {
        await ctx.step(
          'hold',
          { retry: false, fallback: () => 'SUBSTITUTE', compensate: (held) => void undone.push(held) },
          () => Promise.reject(permanent('hold refused')),
        );
        if (replayed) await ctx.sleep('pause', 20);
        await ctx.step('ship', { retry: false }, () => Promise.reject(permanent('no courier')));
      });
      engine.register(flow).startWorker();
      const run = await engine.start(flow, null);
      await assert.rejects(engine.result(run.id), /no courier/);
      assert.equal((await store.getRun(run.id))?.status, 'failed', name);
      const [hold] = await store.steps(run.id);
      assert.deepEqual(
        [hold?.status, hold?.output, hold?.error?.message],
        ['completed', 'SUBSTITUTE', 'hold refused'],
      );
    }
    assert.deepEqual(undone, [], 'nothing to undo: the fallback stood in for the step');
  });

  test('a step returns the JSON it recorded, the first time as on replay', async (t) => {
    const { engine, store } = await setup(t);
    const seen: string[] = [];
    const dated = defineWorkflow({ name: 'dated' }, async (ctx) => {
      const at = await ctx.step('stamp', () => new Date(0));
      seen.push(typeof at);
      // Suspends whatever the machine's speed (a 20 ms sleep whose commit took longer did not).
      await ctx.waitForEvent('go');
      return at;
    });
    engine.register(dated).startWorker();
    const run = await engine.start(dated, null);
    while ((await store.getRun(run.id))?.status !== 'waiting') await new Promise((r) => setTimeout(r, 5));
    await engine.sendEvent(run.id, 'go', null);
    assert.equal(await engine.result(run.id), '1970-01-01T00:00:00.000Z');
    assert.deepEqual(seen, ['string', 'string']);
  });

  test('a child workflow runs once, and its result (or failure) reaches the parent', async (t) => {
    const { engine, store } = await setup(t);
    let childRuns = 0;
    const vaccinate = defineWorkflow({ name: 'vaccinate' }, async (ctx, pet: string) => {
      await ctx.sleep('clinic', 50);
      return ctx.step('shot', () => {
        childRuns++;
        if (pet === 'bad') throw permanent('no vaccine for that');
        return `${pet} vaccinated`;
      });
    });
    const adopt = defineWorkflow({ name: 'adopt-with-child' }, async (ctx, pet: string) => {
      const note = await ctx.child('vaccination', vaccinate, pet);
      return `${note}, adopted`;
    });
    engine.register(vaccinate, adopt).startWorker();
    const run = await engine.start(adopt, 'rex', { priority: 'high' });
    assert.equal(await engine.result(run.id), 'rex vaccinated, adopted');
    assert.equal(childRuns, 1);
    const children = (await store.listRuns({ workflow: 'vaccinate' })).filter(
      (r) => r.parentRunId === run.id,
    );
    assert.equal(children.length, 1);
    assert.equal(children[0]?.priority, 2, 'the child takes its parent’s priority');
    const failing = await engine.start(adopt, 'bad');
    await assert.rejects(engine.result(failing.id), /vaccinate|no vaccine for that/);
  });

  test('a parent whose child ended long ago waits once, without spinning: child retried, or child pruned', async (t) => {
    const { engine, store } = await setup(t);
    let healed = false;
    const shot = defineWorkflow({ name: 'shot' }, async (ctx) => {
      await ctx.sleep('clinic', 200);
      return ctx.step('inject', { retry: false }, () => {
        if (!healed) throw permanent('no vaccine');
        return 'vaccinated';
      });
    });
    const adopt = defineWorkflow({ name: 'adopt-retried' }, async (ctx) =>
      ctx.child('vaccination', shot, null),
    );
    engine.register(shot, adopt).startWorker();
    const run = await engine.start(adopt, null);
    await assert.rejects(engine.result(run.id), /no vaccine/);
    const [child] = await store.listRuns({ workflow: 'shot' });
    // The documented order: the child again, then the parent, while the child sleeps.
    healed = true;
    await engine.retry(child!.id);
    await engine.retry(run.id);
    assert.equal(await engine.result(run.id), 'vaccinated');
    const resumed = (await collect(engine, run.id)).filter((e) => e.type === 'run:resumed').length;
    // Claimed when retried and when the child's end woke it: not once per turn of the event loop.
    assert.ok(resumed <= 3, `the parent was claimed ${resumed} times`);

    // A child pruned while its parent still waits for it (its parent's worker down meanwhile):
    // the parent fails, saying so.
    await engine.stop();
    const worker = (workflow: typeof adopt | typeof shot) => {
      const e = new WorkflowEngine({ store, pollMs: 20, leaseMs: 2_000 }).register(workflow);
      t.after(() => e.stop());
      e.startWorker();
      return e;
    };
    const parents = worker(adopt);
    const waiting = await parents.start(adopt, null);
    await waitFor(async () => (await store.getRun(waiting.id))?.status === 'waiting', 'the parent to wait');
    await parents.stop();
    const children = worker(shot);
    const [orphan] = (await store.listRuns({ workflow: 'shot' })).filter((r) => r.parentRunId === waiting.id);
    assert.equal(await children.result(orphan!.id), 'vaccinated');
    await children.stop();
    await store.prune(Date.now() + 1);
    assert.equal(await store.getRun(orphan!.id), undefined);
    await assert.rejects(worker(adopt).result(waiting.id), /no longer exists/);
  });

  test('a child cancelled before it ran tells its waiting parent at once, not at the next re-check', async (t) => {
    const { engine, store } = await setup(t);
    // No worker here runs the child: it stays queued until cancelled.
    const unrun = defineWorkflow({ name: 'unrun-child' }, async () => 'never');
    const parent = defineWorkflow({ name: 'parent-of-unrun' }, async (ctx) => ctx.child('c', unrun, null));
    engine.register(parent).startWorker();
    const run = await engine.start(parent, null);
    await waitFor(async () => (await store.getRun(run.id))?.status === 'waiting', 'the parent to wait');
    const [child] = (await store.listRuns({ workflow: 'unrun-child' })).filter(
      (r) => r.parentRunId === run.id,
    );
    assert.equal(await engine.cancel(child!.id, 'not needed'), true);
    const started = Date.now();
    await assert.rejects(engine.result(run.id), /cancelled/);
    assert.ok(Date.now() - started < 5_000, 'the parent heard at once');
  });

  test('a run past its deadline is aborted and compensated, even mid-step', async (t) => {
    const { engine } = await setup(t);
    const undone: string[] = [];
    const slow = defineWorkflow({ name: 'slow-deadline' }, async (ctx) => {
      await ctx.step('reserve', { compensate: () => void undone.push('released') }, () => 'r');
      await ctx.step(
        'forever',
        { retry: false },
        ({ signal }) =>
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      );
    });
    engine.register(slow).startWorker();
    const run = await engine.start(slow, null, { timeoutMs: 200 });
    await assert.rejects(engine.result(run.id), /passed its deadline/);
    assert.deepEqual(undone, ['released']);
  });

  test('a run past its deadline while it sleeps or waits for an event fails then, compensated, without waiting again', async (t) => {
    const { engine, store } = await setup(t);
    const undone: string[] = [];
    const napper = defineWorkflow({ name: 'late-nap' }, async (ctx) => {
      await ctx.step('reserve', { compensate: () => void undone.push('nap') }, () => 'r');
      await ctx.sleep('long', 60_000);
    });
    const waiter = defineWorkflow({ name: 'late-wait' }, async (ctx) => {
      await ctx.step('reserve', { compensate: () => void undone.push('wait') }, () => 'r');
      await ctx.waitForEvent('never');
    });
    engine.register(napper, waiter).startWorker();
    for (const workflow of [napper, waiter]) {
      const run = await engine.start(workflow, null, { timeoutMs: 200 });
      await assert.rejects(engine.result(run.id), /passed its deadline/);
      const events = types(await collect(engine, run.id));
      // Woken once, at its deadline, to end: not put back to sleep again and again (none at all
      // when a slow machine's deadline comes before the run even got to its sleep).
      assert.ok(events.filter((e) => e === 'run:resumed').length <= 1, events.join(', '));
      assert.equal(events.at(-1), 'run:compensated');
      assert.equal((await store.getRun(run.id))?.status, 'compensated');
    }
    assert.deepEqual(undone, ['nap', 'wait']);
  });

  test('a timeline left while it waits for a live event ends at once: return(), or its signal', async (t) => {
    const { engine, store } = await setup(t, { pollMs: 60_000 });
    const waits = defineWorkflow({ name: 'waits-long' }, async (ctx) => ctx.waitForEvent('days-away'));
    engine.register(waits).startWorker();
    const run = await engine.start(waits, null);
    await waitFor(async () => (await store.getRun(run.id))?.status === 'waiting', 'the run to wait');
    const within = <T>(promise: Promise<T>, what: string) =>
      Promise.race([
        promise,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not end`)), 2_000)),
      ]);
    const history = (await store.events(run.id)).length;
    const it = engine.timeline(run.id);
    for (let i = 0; i < history; i++) await it.next();
    const pending = it.next();
    assert.deepEqual(await within(it.return(undefined), 'return()'), { done: true, value: undefined });
    assert.equal((await within(pending, 'the pending next()')).done, true);

    const controller = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const e of engine.timeline(run.id, { signal: controller.signal })) seen.push(e.type);
    })();
    await waitFor(async () => seen.length === history, 'the history');
    controller.abort();
    await within(reading, 'the loop');
    assert.equal(seen.length, history);
  });

  test('prune deletes final runs older than the age given, and keeps the others', async (t) => {
    // On the virtual clock: a slow fsync between a run's end and the prune must not age it.
    const clock = new VirtualClock(1_700_000_000_000);
    const { engine, store } = await setup(t, { clock });
    const job = defineWorkflow({ name: 'prunable' }, async () => 'done');
    engine.register(job).startWorker();
    const old = await engine.start(job, null);
    await engine.result(old.id);
    await clock.advance(10_000);
    const recent = await engine.start(job, null);
    await engine.result(recent.id);
    await clock.advance(1_000);
    assert.equal(await engine.prune(5_000), 1);
    assert.equal(await store.getRun(old.id), undefined);
    assert.equal((await store.getRun(recent.id))?.status, 'completed');
  });

  test('the timeline gives history, then live events, each once, and ends with the run', async (t) => {
    const { engine } = await setup(t);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = defineWorkflow({ name: 'slow' }, async (ctx) => {
      await ctx.step('one', () => 1);
      await ctx.step('two', () => gate);
      ctx.progress(80, 'almost');
      await ctx.step('three', () => 3);
    });
    engine.register(slow).startWorker();
    const run = await engine.start(slow, null);
    const seen: TimelineEvent[] = [];
    const reading = (async () => {
      for await (const e of engine.timeline(run.id)) {
        seen.push(e);
        if (e.type === 'step:started' && e.step === 'two') release();
      }
    })();
    await reading;
    const seqs = seen.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...new Set(seqs)].sort((a, b) => a - b),
      'in order, none repeated',
    );
    assert.deepEqual(types(seen), types(await collect(engine, run.id)), 'none lost');
    assert.ok(seen.some((e) => e.type === 'run:progress' && e.progress === 80));
    assert.equal(seen.at(-1)?.type, 'run:completed');
  });
});

async function waitFor(check: () => Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
