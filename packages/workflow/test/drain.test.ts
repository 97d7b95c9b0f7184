// Stopping a worker step by step (`stop({ drain: 'step' })`) on a real SQLite file, with the
// engine's timers on a VirtualClock: the steps in flight are recorded, the run is given back
// queued, and the next start (another engine on the same file) finishes it; past the grace
// period the steps in flight are aborted, not recorded, and run again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { VirtualClock } from '@bulwark/core';
import {
  defineWorkflow,
  type EngineEvent,
  type SqliteStore,
  type StepContext,
  WorkflowEngine,
  WorkflowErrorCodes,
} from '@bulwark/workflow';
import { openTestStore } from './stores.ts';

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A file, and engines on it that share one virtual clock: each `worker()` is a process start. */
function onFile(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-drain-'));
  const path = join(dir, 'runs.db');
  const clock = new VirtualClock(1_700_000_000_000);
  const opened: { engine: WorkflowEngine; store: SqliteStore }[] = [];
  t.after(async () => {
    for (const { engine, store } of opened) {
      await engine.stop({ drain: 'step', graceMs: 0 });
      await store.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    clock,
    async worker(...workflows: Parameters<WorkflowEngine['register']>) {
      const store = await openTestStore(path);
      const engine = new WorkflowEngine({ store, clock }).register(...workflows);
      opened.push({ engine, store });
      return { engine, store };
    },
  };
}

/** A step that waits until `gate` opens, or rejects when its signal aborts. */
function slowStep(gate: Promise<void>, entered: () => void) {
  return (ctx: StepContext) =>
    new Promise<string>((resolve, reject) => {
      entered();
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      void gate.then(() => resolve('slow done'));
    });
}

describe('stop({ drain: "step" })', { timeout: 15_000 }, () => {
  test('the step in flight is recorded, the run is given back queued, and the next start finishes it', async (t) => {
    const { clock, worker } = onFile(t);
    const calls = { fast: 0, slow: 0, last: 0 };
    const gate = deferred();
    const inSlow = deferred();
    const wf = defineWorkflow({ name: 'drain' }, async (ctx) => {
      await ctx.step('fast', () => ++calls.fast);
      await ctx.step('slow', (s) => {
        calls.slow++;
        return slowStep(gate.promise, inSlow.resolve)(s);
      });
      await ctx.step('last', () => ++calls.last);
      return 'done';
    });
    const first = await worker(wf);
    const heard: EngineEvent[] = [];
    first.engine.on((e) => heard.push(e));
    first.engine.startWorker();
    const run = await first.engine.start(wf, null);
    await inSlow.promise;

    const stopping = first.engine.stop({ drain: 'step', graceMs: 10_000 });
    gate.resolve();
    assert.deepEqual(await stopping, { suspended: 1, aborted: 0 });

    const given = await first.store.getRun(run.id);
    assert.equal(given?.status, 'queued');
    assert.equal(given?.leaseOwner, undefined, 'the lease is released: no wait for it to expire');
    assert.ok((given?.availableAt ?? Number.POSITIVE_INFINITY) <= clock.now(), 'available now');
    assert.deepEqual(
      (await first.store.steps(run.id)).map((s) => s.name),
      ['fast', 'slow'],
    );
    const suspended = (await first.store.events(run.id)).at(-1);
    assert.equal(suspended?.type, 'run:suspended');
    assert.deepEqual(suspended?.data, { reason: 'shutdown' });
    assert.deepEqual(
      heard.flatMap((e) => (e.type === 'run:status' ? [e.status] : [])),
      ['queued', 'running', 'queued'],
    );
    assert.equal(calls.last, 0);

    const second = await worker(wf);
    second.engine.startWorker();
    assert.equal(await second.engine.result(run.id), 'done');
    assert.deepEqual(calls, { fast: 1, slow: 1, last: 1 }, 'the recorded steps are not run again');
  });

  test('past graceMs the step in flight is aborted with a shutdown reason, not recorded, and runs again on the next start', async (t) => {
    const { clock, worker } = onFile(t);
    let slowCalls = 0;
    const reasons: unknown[] = [];
    const inSlow = deferred();
    const wf = defineWorkflow({ name: 'grace' }, async (ctx) => {
      await ctx.step('fast', () => 1);
      return ctx.step('slow', (s) => {
        if (++slowCalls > 1) return 'second time';
        s.signal.addEventListener('abort', () => reasons.push(s.signal.reason));
        // Never opens: only the abort ends it.
        return slowStep(new Promise(() => {}), inSlow.resolve)(s);
      });
    });
    const first = await worker(wf);
    first.engine.startWorker();
    const run = await first.engine.start(wf, null);
    await inSlow.promise;

    let stopped = false;
    const stopping = first.engine.stop({ drain: 'step', graceMs: 1_000 }).finally(() => {
      stopped = true;
    });
    await clock.advance(999);
    assert.equal(stopped, false, 'still within the grace period');
    await clock.advance(1);
    assert.deepEqual(await stopping, { suspended: 0, aborted: 1 });
    assert.equal((reasons[0] as { code?: string }).code, WorkflowErrorCodes.SHUTDOWN);

    const given = await first.store.getRun(run.id);
    assert.equal(given?.status, 'queued', 'given back, not failed');
    assert.equal(given?.error, undefined);
    assert.deepEqual(
      (await first.store.steps(run.id)).map((s) => s.name),
      ['fast'],
      'the aborted step is not recorded',
    );
    assert.equal((await first.store.events(run.id)).at(-1)?.type, 'run:suspended');

    const second = await worker(wf);
    second.engine.startWorker();
    assert.equal(await second.engine.result(run.id), 'second time');
    assert.equal(slowCalls, 2);
  });

  test('a step that ignores its signal does not hold the stop past graceMs; its late outcome is dropped', async (t) => {
    const { clock, worker } = onFile(t);
    const gate = deferred();
    const inSlow = deferred();
    let calls = 0;
    const wf = defineWorkflow({ name: 'deaf' }, async (ctx) =>
      ctx.step('deaf', async () => {
        if (++calls > 1) return 'second time';
        inSlow.resolve();
        await gate.promise; // ignores its signal
        return 'late';
      }),
    );
    const first = await worker(wf);
    first.engine.startWorker();
    const run = await first.engine.start(wf, null);
    await inSlow.promise;
    const stopping = first.engine.stop({ drain: 'step', graceMs: 500 });
    await clock.advance(500);
    assert.deepEqual(await stopping, { suspended: 0, aborted: 1 });
    gate.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(await first.store.steps(run.id), []);
    assert.equal((await first.store.getRun(run.id))?.status, 'queued');

    const second = await worker(wf);
    second.engine.startWorker();
    assert.equal(await second.engine.result(run.id), 'second time');
  });

  test('the default stop still waits for runs to finish, and rejects a bad option naming it', async (t) => {
    const { worker } = onFile(t);
    const gate = deferred();
    const inside = deferred();
    const wf = defineWorkflow({ name: 'whole' }, async (ctx) => {
      await ctx.step('one', async () => {
        inside.resolve();
        await gate.promise;
      });
      await ctx.step('two', () => null);
      return 'whole';
    });
    const { engine, store } = await worker(wf);
    engine.startWorker();
    const run = await engine.start(wf, null);
    await inside.promise;
    await assert.rejects(engine.stop({ drain: 'all' as 'run' }), /drain must be 'run' or 'step'/);
    await assert.rejects(engine.stop({ drain: 'step', graceMs: -1 }), /graceMs/);
    const stopping = engine.stop();
    gate.resolve();
    assert.deepEqual(await stopping, { suspended: 0, aborted: 0 });
    assert.equal((await store.getRun(run.id))?.status, 'completed');
  });
});
