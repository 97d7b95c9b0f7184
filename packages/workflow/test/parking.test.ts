// Parking on a real SQLite file with the engine's and the breakers' time on a VirtualClock: a step
// that chooses to fail when its circuit is open, a step parked behind an operator's isolation
// (until its end, or re-checked), and parked runs woken by `wakeParked` without spinning.
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { DependencyRegistry, ErrorCodes, VirtualClock } from '@bulwark/core';
import { defineWorkflow, RunFailedError, type StepOptions, type WorkflowStore } from '@bulwark/workflow';
import { engineOnFile } from './stores.ts';

const T0 = 1_700_000_000_000;
const POLL_MS = 20;

const transient = () => Object.assign(new Error('voice service unavailable'), { status: 503 });

/** A voice dependency whose breaker opens on one failure, for `openMs`; engine and breakers on one virtual clock. */
async function setup(t: TestContext, openMs = 60_000) {
  const clock = new VirtualClock(T0);
  const registry = new DependencyRegistry({
    clock,
    dependencies: {
      voice: { retry: false, breaker: { window: { kind: 'consecutive', failures: 1 }, openMs } },
    },
  });
  t.after(() => registry.close());
  const { engine, store } = await engineOnFile(t, { registry, clock, pollMs: POLL_MS });
  const breaker = registry.breaker('voice')!;
  const open = () => assert.rejects(registry.execute('voice', 'speak', () => Promise.reject(transient())));
  return { clock, registry, engine, store, breaker, open };
}

/** A workflow of one step bound to `voice`; `calls.n` counts the times the step's function ran. */
function speaker(options: Omit<StepOptions<string>, 'dependency'> = {}) {
  const calls = { n: 0 };
  const workflow = defineWorkflow({ name: 'speak' }, async (ctx) =>
    ctx.step('speak', { dependency: 'voice', ...options }, () => {
      calls.n++;
      return 'clip';
    }),
  );
  return { workflow, calls };
}

/**
 * Lets the store's I/O run (real time) and virtual time move on a poll at a time, until `check`
 * holds: a claim reads the virtual time, so a run comes due only once a poll fires after it.
 */
async function until(clock: VirtualClock, check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (!(await check())) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
    await clock.advance(POLL_MS);
  }
}

async function parkedCount(store: WorkflowStore, runId: string): Promise<number> {
  return (await store.events(runId)).filter((e) => e.type === 'step:parked').length;
}

describe('whenCircuitOpen', () => {
  test("'fail' with a fallback: an open circuit ends the step on its fallback, degraded, without parking", async (t) => {
    const { engine, store, open } = await setup(t);
    await open();
    const { workflow, calls } = speaker({ whenCircuitOpen: 'fail', fallback: () => 'fallback clip' });
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    assert.equal(await engine.result(run.id), 'fallback clip');
    const done = await store.getRun(run.id);
    assert.equal(done?.status, 'completed');
    assert.equal(done?.degraded, true);
    const types = (await store.events(run.id)).map((e) => e.type);
    assert.ok(types.includes('step:fallback'), types.join(', '));
    assert.ok(!types.includes('step:parked'), types.join(', '));
    assert.equal(calls.n, 0, 'the voice service was not called');
  });

  test("'fail' without a fallback fails the step at once: the step's retry does not retry the refusal", async (t) => {
    const { engine, store, open } = await setup(t);
    await open();
    const { workflow } = speaker({ whenCircuitOpen: 'fail', retry: { maxAttempts: 5, baseMs: 1_000 } });
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    await assert.rejects(engine.result(run.id), RunFailedError);
    const [step] = await store.steps(run.id);
    assert.equal(step?.status, 'failed');
    assert.equal(step?.error?.code, ErrorCodes.BROKEN_CIRCUIT);
    assert.equal(step?.attempts, 1);
    const types = (await store.events(run.id)).map((e) => e.type);
    assert.ok(!types.includes('step:retry-scheduled'), types.join(', '));
  });

  test("'fail' applies to an isolated circuit too", async (t) => {
    const { engine, store, breaker } = await setup(t);
    breaker.isolate();
    const { workflow } = speaker({ whenCircuitOpen: 'fail', fallback: () => 'fallback clip' });
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    assert.equal(await engine.result(run.id), 'fallback clip');
    assert.equal((await store.getRun(run.id))?.degraded, true);
  });

  test('a value other than park or fail fails the run with an error naming the step and the option', async (t) => {
    const { engine } = await setup(t);
    const { workflow, calls } = speaker({ whenCircuitOpen: 'skip' as never });
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    await assert.rejects(
      engine.result(run.id),
      /step 'speak': whenCircuitOpen must be 'park' or 'fail', got "skip"/,
    );
    assert.equal(calls.n, 0);
  });
});

describe('parking behind an isolated circuit', () => {
  test('isolated until reset: the step parks, re-checks every 30 s, and a reset with wakeParked resumes it at once', async (t) => {
    const { clock, engine, store, breaker } = await setup(t);
    breaker.isolate();
    const { workflow, calls } = speaker();
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    await until(clock, async () => (await store.parkedCounts()).voice === 1, 'the run to park');

    const [parked] = (await store.parkedRuns('voice', 10)).runs;
    assert.equal(parked?.runId, run.id);
    assert.equal(parked!.resumeAt - parked!.since, 30_000);
    const data = parked!.data as { message: string; isolated: boolean; breaker: string };
    assert.equal(data.message, 'isolated by an operator until reset');
    assert.equal(data.isolated, true);
    assert.equal(data.breaker, 'voice.breaker');
    assert.equal((await store.getRun(run.id))?.status, 'waiting', 'parked, not failed');

    // The re-check: still isolated, so it parks again for another 30 s, no attempt spent.
    await clock.advance(30_000);
    await until(clock, async () => (await parkedCount(store, run.id)) === 2, 'the re-check');
    await until(clock, async () => (await store.parkedCounts()).voice === 1, 'the run to park again');
    assert.equal(calls.n, 0);

    breaker.reset();
    const resetAt = clock.now();
    assert.equal(await engine.wakeParked('voice'), 1);
    assert.equal(await engine.result(run.id), 'clip');
    assert.ok(clock.now() - resetAt < 1_000, `resumed ${clock.now() - resetAt} ms after the reset`);
    assert.equal(calls.n, 1);
  });

  test('an isolation with a known end parks the step until that end, without re-checks', async (t) => {
    const { clock, engine, store, breaker } = await setup(t);
    const end = T0 + 10 * 60_000;
    engine.isolated('voice', end);
    breaker.isolate();
    const { workflow, calls } = speaker();
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    await until(clock, async () => (await store.parkedCounts()).voice === 1, 'the run to park');
    const [parked] = (await store.parkedRuns('voice', 10)).runs;
    assert.equal(parked?.resumeAt, end);
    assert.equal(
      (parked!.data as { message: string }).message,
      `isolated by an operator until ${new Date(end).toISOString()}`,
    );

    await clock.advance(end - 1 - clock.now());
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await parkedCount(store, run.id), 1, 'no re-check before the isolation ends');
    // The isolation ends (the server resets the breaker and wakes the runs parked behind it).
    breaker.reset();
    assert.equal(await engine.wakeParked('voice'), 1);
    assert.equal(await engine.result(run.id), 'clip');
    assert.equal(calls.n, 1);
  });
});

describe('wakeParked', () => {
  test('a run woken while the circuit is still open parks again for the breaker’s time, once, without spinning', async (t) => {
    const { clock, engine, store, open } = await setup(t, 60_000);
    await open();
    const openedAt = clock.now();
    const { workflow, calls } = speaker();
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    await until(clock, async () => (await store.parkedCounts()).voice === 1, 'the run to park');
    assert.equal((await store.getRun(run.id))?.availableAt, openedAt + 60_000);

    assert.equal(await engine.wakeParked('voice'), 1);
    await until(clock, async () => (await parkedCount(store, run.id)) === 2, 'the run to try and park again');
    await until(clock, async () => (await store.parkedCounts()).voice === 1, 'the run to wait again');
    assert.equal(
      (await store.getRun(run.id))?.availableAt,
      openedAt + 60_000,
      'until the breaker half-opens',
    );

    // Time goes on, short of the breaker's open time: nothing more happens.
    await clock.advance(20_000);
    await new Promise((resolve) => setTimeout(resolve, 30));
    await clock.advance(POLL_MS);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(await parkedCount(store, run.id), 2, 'parked twice in all');
    assert.equal(calls.n, 0);
    assert.equal(await engine.wakeParked('voice'), 1, 'only a new wake-up makes it due again');

    await clock.advance(openedAt + 60_000 - clock.now());
    await until(clock, async () => (await store.getRun(run.id))?.status === 'completed', 'the run to end');
    assert.equal(calls.n, 1);
  });

  test('wakes only the runs parked behind that dependency', async (t) => {
    const { clock, engine, store, breaker } = await setup(t);
    breaker.isolate();
    const { workflow } = speaker();
    engine.register(workflow).startWorker();
    const run = await engine.start(workflow, null);
    await until(clock, async () => (await store.parkedCounts()).voice === 1, 'the run to park');
    assert.equal(await engine.wakeParked('elsewhere'), 0);
    assert.equal((await store.parkedCounts()).voice, 1);
    assert.equal((await store.getRun(run.id))?.status, 'waiting');
  });
});
