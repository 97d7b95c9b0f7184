// The operator's levers and parked runs, through the API on a real server and SQLite file, with
// the registry, the engine and the isolation timer on one VirtualClock: an isolation parks the
// bound steps (until its end when it has one), and a reset or the isolation's expiry wakes them.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { DependencyRegistry, VirtualClock } from '@bulwark/core';
import { defineWorkflow, openSqliteStore, WorkflowEngine } from '@bulwark/workflow';
import { createServer } from '../src/http/server.ts';
import { as, testSettings } from './server-support.ts';

const T0 = Date.UTC(2025, 0, 1);
const POLL_MS = 20;

const charge = defineWorkflow({ name: 'charge', version: '1' }, async (ctx) =>
  ctx.step('charge', { dependency: 'payments' }, () => 'charged'),
);

async function bench(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-parking-api-'));
  const clock = new VirtualClock(T0);
  const store = await openSqliteStore({ path: join(dir, 'bulwark.db'), durability: 'normal' });
  await store.migrate();
  const registry = new DependencyRegistry({
    clock,
    dependencies: {
      payments: {
        kind: 'http',
        retry: false,
        breaker: { window: { kind: 'consecutive', failures: 1 }, openMs: 120_000 },
      },
    },
  });
  const engine = new WorkflowEngine({ store, registry, clock, pollMs: POLL_MS }).register(charge);
  engine.startWorker();
  const server = await createServer({
    registry,
    engine,
    store,
    clock,
    settings: testSettings(dir, { rateLimit: false }),
  });
  await server.app.ready();
  t.after(async () => {
    await server.app.close();
    await engine.stop();
    await registry.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const request = async (method: 'GET' | 'POST', url: string, body?: object) => {
    const r = await server.app.inject({
      method,
      url,
      headers: as(method === 'GET' ? 'viewer' : 'operator'),
      ...(body === undefined ? {} : { payload: body }),
    });
    return { status: r.statusCode, body: r.json() };
  };
  /** Store I/O in real time, virtual time a poll at a time, until `check` holds. */
  const until = async (check: () => Promise<boolean>, what: string) => {
    const deadline = performance.now() + 5_000;
    while (!(await check())) {
      if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
      await clock.advance(POLL_MS);
    }
  };
  const parked = async () => (await request('GET', '/api/dependencies/payments/parked')).body;
  const status = async (id: string) => (await store.getRun(id))?.status;
  /** Trips payments' breaker with one failure, then starts a run that parks behind it. */
  const parkBehindOpenCircuit = async () => {
    await registry
      .execute('payments', 'op', () => Promise.reject(Object.assign(new Error('503'), { status: 503 })))
      .catch(() => {});
    const run = await engine.start('charge', null);
    await until(async () => (await parked()).total === 1, 'the run to park');
    return run;
  };
  return { clock, registry, engine, store, request, until, parked, status, parkBehindOpenCircuit };
}

test('isolate until reset parks a bound run (isolated, re-checked every 30 s); reset wakes it at once', async (t) => {
  const { clock, engine, request, until, parked, status } = await bench(t);
  assert.equal((await request('POST', '/api/dependencies/payments/isolate')).status, 200);
  const run = await engine.start('charge', null);
  await until(async () => (await parked()).total === 1, 'the run to park');

  const [item] = (await parked()).items;
  assert.equal(item.runId, run.id);
  assert.equal(item.policy, 'circuit-breaker');
  assert.equal(item.isolated, true);
  assert.equal(item.reason, 'isolated by an operator until reset');
  assert.equal(item.resumeAt - item.since, 30_000);
  assert.equal(await status(run.id), 'waiting', 'parked, not failed');

  const resetAt = clock.now();
  const reset = await request('POST', '/api/dependencies/payments/reset');
  assert.equal(reset.status, 200);
  await until(async () => (await status(run.id)) === 'completed', 'the run to complete');
  assert.ok(clock.now() - resetAt < 1_000, `completed ${clock.now() - resetAt} ms after the reset`);
  assert.equal((await parked()).total, 0);
});

test('isolate for 10m parks a bound run until the isolation ends, and the expiry wakes it', async (t) => {
  const { clock, engine, request, until, parked, status, store } = await bench(t);
  const isolated = await request('POST', '/api/dependencies/payments/isolate', { for: '10m' });
  const end = isolated.body.isolatedUntil as number;
  assert.equal(end, T0 + 600_000);
  const run = await engine.start('charge', null);
  await until(async () => (await parked()).total === 1, 'the run to park');
  const [item] = (await parked()).items;
  assert.equal(item.resumeAt, end);
  assert.equal(item.reason, `isolated by an operator until ${new Date(end).toISOString()}`);

  await clock.advance(end - 1 - clock.now());
  assert.equal(await status(run.id), 'waiting');
  const events = (await store.events(run.id)).filter((e) => e.type === 'step:parked');
  assert.equal(events.length, 1, 'no re-check while the end is known');
  await clock.advance(1);
  await until(async () => (await status(run.id)) === 'completed', 'the run to complete');
  assert.ok(clock.now() - end < 1_000, `completed ${clock.now() - end} ms after the expiry`);
});

test('reset of an open breaker wakes the runs parked behind it before their resume time', async (t) => {
  const { clock, request, until, parked, status, parkBehindOpenCircuit } = await bench(t);
  const run = await parkBehindOpenCircuit();
  const [item] = (await parked()).items;
  assert.equal(item.isolated, false);
  assert.match(item.reason, /open/);
  const resetAt = clock.now();
  assert.ok(item.resumeAt - resetAt > 100_000, 'it would wait for the open time');

  await request('POST', '/api/dependencies/payments/reset');
  await until(async () => (await status(run.id)) === 'completed', 'the run to complete');
  assert.ok(clock.now() - resetAt < 1_000, `completed ${clock.now() - resetAt} ms after the reset`);
});

test('the expiry of an isolation wakes runs parked before it (behind the open circuit)', async (t) => {
  const { clock, request, until, status, parkBehindOpenCircuit } = await bench(t);
  const run = await parkBehindOpenCircuit();
  // Parked for the open time (2 minutes); an isolation of 10 s ends long before that.
  const end = (await request('POST', '/api/dependencies/payments/isolate', { for: '10s' })).body
    .isolatedUntil;
  await clock.advance(end - clock.now());
  await until(async () => (await status(run.id)) === 'completed', 'the run to complete');
  assert.ok(clock.now() - end < 1_000, `completed ${clock.now() - end} ms after the expiry`);
});
