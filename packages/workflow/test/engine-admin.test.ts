// What the engine offers a server, on a real SQLite file: registered definitions, the events it
// tells listeners (run status, step outcomes), the runs it executes, and retrying failed runs.
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import {
  defineWorkflow,
  type EngineEvent,
  RunFailedError,
  type WorkflowEngineOptions,
  WorkflowErrorCodes,
} from '@bulwark/workflow';
import { engineOnFile } from './stores.ts';

async function setup(t: TestContext, options: Partial<WorkflowEngineOptions> = {}) {
  const { engine, store } = await engineOnFile(t, options);
  const heard: EngineEvent[] = [];
  engine.on((event) => heard.push(event));
  return { engine, store, heard };
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const statuses = (heard: EngineEvent[], runId: string) =>
  heard.flatMap((e) => (e.type === 'run:status' && e.runId === runId ? [e.status] : []));
const stepsHeard = (heard: EngineEvent[], runId: string) =>
  heard.flatMap((e) => (e.type === 'step:finished' && e.runId === runId ? [`${e.step} ${e.status}`] : []));
const permanent = (message = 'rejected') => Object.assign(new Error(message), { status: 422 });

describe('workflow definitions', () => {
  test('defineWorkflow keeps a description and the declared steps, and checks them', () => {
    const wf = defineWorkflow(
      { name: 'adopt', version: '2', description: 'Adopts a pet', steps: ['reserve', 'pay'] },
      async () => null,
    );
    assert.equal(wf.description, 'Adopts a pet');
    assert.deepEqual(wf.steps, ['reserve', 'pay']);
    assert.ok(Object.isFrozen(wf.steps));
    const plain = defineWorkflow({ name: 'plain' }, async () => null);
    assert.equal(plain.description, undefined);
    assert.equal(plain.steps, undefined);
    assert.throws(() => defineWorkflow({ name: 'x', steps: ['a', ''] }, async () => null), /steps\[1\]/);
    assert.throws(
      () => defineWorkflow({ name: 'x', steps: ['a', 'b', 'a'] }, async () => null),
      /steps\[2\] 'a'/,
    );
    assert.throws(
      () => defineWorkflow({ name: 'x', steps: 'ab' as unknown as string[] }, async () => null),
      /steps must be an array/,
    );
  });

  test('defineWorkflow keeps an example input, frozen, and refuses one that is not plain JSON', () => {
    const example = { pet: 'luna', tags: ['calm', 1, true, null] };
    const wf = defineWorkflow({ name: 'adopt', example }, async () => null);
    assert.deepEqual(wf.example, example);
    example.tags.push('changed later');
    assert.deepEqual(
      wf.example,
      { pet: 'luna', tags: ['calm', 1, true, null] },
      'a copy, not the caller’s object',
    );
    assert.ok(Object.isFrozen(wf.example));
    assert.equal(defineWorkflow({ name: 'falsy', example: 0 }, async () => null).example, 0);
    assert.equal(defineWorkflow({ name: 'plain' }, async () => null).example, undefined);
    const bad = (example: unknown) => () =>
      defineWorkflow({ name: 'x', example: example as never }, async () => null);
    assert.throws(
      bad({ at: new Date(0) }),
      /defineWorkflow\(x\): example\.at must be a JSON value, got a Date object/,
    );
    assert.throws(bad({ a: [1, () => 2] }), /example\.a\[1\] must be a JSON value, got function/);
    assert.throws(bad({ n: Number.NaN }), /example\.n must be a JSON value, got NaN/);
    assert.throws(bad({ big: 1n }), /example\.big must be a JSON value, got bigint/);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    assert.throws(bad(loop), /example\.self must be a JSON value, got a circular reference/);
  });

  test('definitions() lists registered workflows by name, with the latest version’s details', async (t) => {
    const { engine } = await setup(t);
    engine.register(
      defineWorkflow({ name: 'zeta', description: 'old', steps: ['a'] }, async () => null),
      defineWorkflow({ name: 'alpha' }, async () => null),
      defineWorkflow(
        { name: 'zeta', version: '2', description: 'new', steps: ['a', 'b'], example: { n: 2 } },
        async () => null,
      ),
    );
    assert.deepEqual(engine.definitions(), [
      {
        name: 'alpha',
        version: '1',
        versions: ['1'],
        description: undefined,
        steps: undefined,
        example: undefined,
      },
      {
        name: 'zeta',
        version: '2',
        versions: ['1', '2'],
        description: 'new',
        steps: ['a', 'b'],
        example: { n: 2 },
      },
    ]);
    assert.equal(engine.hasWorkflow('zeta'), true);
    assert.equal(engine.hasWorkflow('omega'), false);
  });
});

describe('engine events', () => {
  test('a run that completes: queued, running, completed, and each step once it is recorded', async (t) => {
    const { engine, store, heard } = await setup(t);
    const wf = defineWorkflow({ name: 'two' }, async (ctx) => {
      await ctx.step('a', () => 1);
      await ctx.step('b', () => 2);
      return 'ok';
    });
    // Each step is already in the store when its event is told.
    const recordedWhenHeard: boolean[] = [];
    engine.on((event) => {
      if (event.type === 'step:finished')
        void store
          .steps(event.runId)
          .then((s) => recordedWhenHeard.push(s.some((r) => r.name === event.step)));
    });
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    assert.equal(await engine.result(run.id), 'ok');
    await engine.stop(); // the run's last events are told once its execution ends
    assert.deepEqual(statuses(heard, run.id), ['queued', 'running', 'completed']);
    assert.deepEqual(stepsHeard(heard, run.id), ['a completed', 'b completed']);
    const step = heard.find((e) => e.type === 'step:finished');
    assert.ok(step?.type === 'step:finished');
    assert.equal(step.workflow, 'two');
    assert.equal(step.attempts, 1);
    assert.ok(step.durationMs >= 0);
    assert.deepEqual(recordedWhenHeard, [true, true]);
  });

  test('a failing run: compensating, compensated, with the failed step and the compensation', async (t) => {
    const { engine, heard } = await setup(t);
    const wf = defineWorkflow({ name: 'undo' }, async (ctx) => {
      await ctx.step('reserve', { compensate: () => undefined }, () => 'r1');
      await ctx.step('charge', { retry: false }, () => {
        throw permanent('declined');
      });
    });
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    await assert.rejects(engine.result(run.id), RunFailedError);
    await engine.stop();
    assert.deepEqual(statuses(heard, run.id), ['queued', 'running', 'compensating', 'compensated']);
    assert.deepEqual(stepsHeard(heard, run.id), [
      'reserve completed',
      'charge failed',
      'compensate:reserve completed',
    ]);
  });

  test('a run waiting for an event is waiting, then running again', async (t) => {
    const { engine, heard } = await setup(t);
    const wf = defineWorkflow({ name: 'approval' }, async (ctx) => ctx.waitForEvent<string>('approved'));
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    const waiting = new Promise<void>((resolve) => {
      const stop = engine.on((e) => {
        if (e.type === 'run:status' && e.status === 'waiting') resolve(stop());
      });
    });
    await waiting;
    await engine.sendEvent(run.id, 'approved', 'yes');
    assert.equal(await engine.result(run.id), 'yes');
    await engine.stop();
    assert.deepEqual(statuses(heard, run.id), ['queued', 'running', 'waiting', 'running', 'completed']);
  });

  test('cancel of a run no worker holds is told as cancelled', async (t) => {
    const { engine, heard } = await setup(t);
    const wf = defineWorkflow({ name: 'idle' }, async () => null);
    engine.register(wf); // no worker: the run stays queued
    const run = await engine.start(wf, null);
    assert.equal(await engine.cancel(run.id, 'not needed'), true);
    assert.deepEqual(statuses(heard, run.id), ['queued', 'cancelled']);
  });

  test('a listener that throws does not break the engine nor silence the others; a disposed one hears nothing', async (t) => {
    const { engine, heard } = await setup(t);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    engine.on(() => {
      throw new Error('listener bug');
    });
    const late: EngineEvent[] = [];
    const dispose = engine.on((e) => late.push(e));
    dispose();
    const wf = defineWorkflow({ name: 'sturdy' }, async (ctx) => ctx.step('a', () => 'fine'));
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    assert.equal(await engine.result(run.id), 'fine');
    await engine.stop();
    assert.deepEqual(statuses(heard, run.id), ['queued', 'running', 'completed']);
    assert.deepEqual(late, []);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    assert.ok(
      warnings.some((w) => w.includes('listener bug')),
      `warned: ${warnings}`,
    );
  });

  test('activeRuns counts the runs this engine executes, by workflow', async (t) => {
    const { engine } = await setup(t);
    const gate = deferred();
    const inside = [deferred(), deferred()];
    let n = 0;
    const wf = defineWorkflow({ name: 'busy' }, async (ctx) =>
      ctx.step('wait', async () => {
        inside[n++]?.resolve();
        await gate.promise;
        return 1;
      }),
    );
    engine.register(wf).startWorker();
    assert.deepEqual(engine.activeRuns(), {});
    const runs = [await engine.start(wf, null), await engine.start(wf, null)];
    await Promise.all(inside.map((d) => d.promise));
    assert.deepEqual(engine.activeRuns(), { busy: 2 });
    gate.resolve();
    for (const run of runs) await engine.result(run.id);
    await engine.stop();
    assert.deepEqual(engine.activeRuns(), {});
  });
});

describe('retrying runs', () => {
  test('a failed run retried skips its completed steps and runs the failed one again', async (t) => {
    const { engine, store, heard } = await setup(t);
    const calls = { fetch: 0, save: 0 };
    const wf = defineWorkflow({ name: 'import' }, async (ctx) => {
      const data = await ctx.step('fetch', () => {
        calls.fetch++;
        return 'data';
      });
      return ctx.step('save', { retry: false }, () => {
        if (++calls.save === 1) throw permanent('disk full');
        return `saved ${data}`;
      });
    });
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    await assert.rejects(engine.result(run.id), RunFailedError);
    assert.equal((await store.getRun(run.id))?.status, 'failed');

    await engine.retry(run.id, 'disk cleaned');
    assert.equal(await engine.result(run.id), 'saved data');
    await engine.stop();
    assert.deepEqual(calls, { fetch: 1, save: 2 });
    const retried = (await store.events(run.id)).find((e) => e.type === 'run:retried');
    assert.deepEqual(retried?.data, { reason: 'disk cleaned' });
    assert.deepEqual(statuses(heard, run.id), [
      'queued',
      'running',
      'failed',
      'queued',
      'running',
      'completed',
    ]);
  });

  test('a compensated run retried does again the steps whose effects were undone', async (t) => {
    const { engine } = await setup(t);
    const log: string[] = [];
    let charges = 0;
    const wf = defineWorkflow({ name: 'order' }, async (ctx) => {
      await ctx.step('note', () => log.push('note')); // no compensation: stays recorded
      const hold = await ctx.step('reserve', { compensate: (r: string) => log.push(`release ${r}`) }, () => {
        log.push('reserve');
        return `hold-${log.length}`;
      });
      await ctx.step('charge', { retry: false }, () => {
        if (++charges === 1) throw permanent('card declined');
        log.push('charge');
      });
      return hold;
    });
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    await assert.rejects(engine.result(run.id), (e: RunFailedError) => e.status === 'compensated');
    await engine.retry(run.id);
    assert.equal(await engine.result(run.id), 'hold-4');
    assert.deepEqual(log, ['note', 'reserve', 'release hold-2', 'reserve', 'charge']);
  });

  test('a run whose wait timed out, retried, waits afresh and takes the event', async (t) => {
    const { engine } = await setup(t);
    let failedOnce = false;
    const wf = defineWorkflow({ name: 'sign-off' }, async (ctx) =>
      ctx.waitForEvent<string>('signed', { timeoutMs: failedOnce ? 60_000 : 30 }),
    );
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    await assert.rejects(engine.result(run.id), (e: RunFailedError) => /No 'signed' event/.test(e.message));
    failedOnce = true;
    await engine.retry(run.id);
    assert.equal(await engine.sendEvent(run.id, 'signed', 'ok'), true);
    assert.equal(await engine.result(run.id), 'ok');
  });

  test('retry refuses a run that is not failed, compensated or cancelled, and an unknown run', async (t) => {
    const { engine } = await setup(t);
    const wf = defineWorkflow({ name: 'fine' }, async () => 'ok');
    engine.register(wf).startWorker();
    const run = await engine.start(wf, null);
    await engine.result(run.id);
    await assert.rejects(engine.retry(run.id), (e: { code?: string; message: string }) => {
      assert.equal(e.code, WorkflowErrorCodes.RUN_NOT_RETRYABLE);
      assert.match(e.message, /completed/);
      return true;
    });
    await assert.rejects(
      engine.retry('00000000-0000-4000-8000-000000000000'),
      (e: { code?: string }) => e.code === WorkflowErrorCodes.UNKNOWN_RUN,
    );
  });

  test('a dependent cancelled with its failed parent, retried, waits for the parent to be retried and complete', async (t) => {
    const { engine, store } = await setup(t);
    let parentCalls = 0;
    const parentWf = defineWorkflow({ name: 'parent' }, async (ctx) =>
      ctx.step('work', { retry: false }, () => {
        if (++parentCalls === 1) throw permanent('first time fails');
        return 'parent ok';
      }),
    );
    let childCalls = 0;
    const childWf = defineWorkflow({ name: 'child' }, async (ctx) => ctx.step('work', () => ++childCalls));
    engine.register(parentWf, childWf).startWorker();
    const parent = await engine.start(parentWf, null);
    const child = await engine.start(childWf, null, { dependsOn: [parent.id] });
    await assert.rejects(engine.result(parent.id), RunFailedError);
    await assert.rejects(engine.result(child.id), (e: RunFailedError) => e.status === 'cancelled');

    await engine.retry(child.id);
    const waiting = await store.getRun(child.id);
    assert.equal(waiting?.status, 'queued');
    assert.equal(waiting?.pendingParents, 1);
    await engine.retry(parent.id);
    assert.equal(await engine.result(parent.id), 'parent ok');
    assert.equal(await engine.result(child.id), 1);
    assert.equal(childCalls, 1);
  });
});
