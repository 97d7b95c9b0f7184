// Cron schedules on real stores and a virtual clock: ticks in a time zone across a DST change,
// one run per tick however many schedulers run, catch-up policies, timers, invalid options.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { type Clock, ErrorCodes, InvalidOptionsError, VirtualClock } from '@bulwark/core';
import {
  type CatchUpPolicy,
  checkSchedule,
  defineWorkflow,
  type RunRecord,
  WorkflowEngine,
  WorkflowScheduler,
  type WorkflowStore,
} from '@bulwark/workflow';
import { CronExpression } from 'cron-parser';
import { dropSchema, freshSchema, openStoreAt, postgresUnavailable } from './stores.ts';

const report = defineWorkflow({ name: 'report' }, async (ctx, input: { tick: string } | null) => {
  return ctx.step('build', () => `report for ${input?.tick ?? 'nothing'}`);
});

interface Worker {
  store: WorkflowStore;
  engine: WorkflowEngine;
  scheduler: WorkflowScheduler;
}

/** `count` workers (each its own store connection, engine and scheduler) on one store and one clock. */
async function workers(t: TestContext, clock: VirtualClock, count = 1, target?: string): Promise<Worker[]> {
  let where = target;
  if (where === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-schedules-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    where = join(dir, 'runs.db');
  }
  const list: Worker[] = [];
  for (let i = 0; i < count; i++) {
    const store = await openStoreAt(where);
    const engine = new WorkflowEngine({ store, clock, workerId: `w${i}` }).register(report);
    list.push({ store, engine, scheduler: new WorkflowScheduler(engine, { clock }) });
  }
  // Registered before the directory's removal, so it runs first.
  t.after(async () => {
    for (const w of list) {
      await w.scheduler.stop();
      await w.engine.stop();
      await w.store.close();
    }
  });
  return list;
}

/** Scheduled runs, oldest tick first. */
async function scheduled(store: WorkflowStore): Promise<RunRecord[]> {
  const runs = await store.listRuns({ limit: 1_000 });
  return runs
    .filter((r) => r.idempotencyKey?.startsWith('schedule:'))
    .sort((a, b) => a.idempotencyKey!.localeCompare(b.idempotencyKey!));
}

const keys = (runs: RunRecord[]) => runs.map((r) => r.idempotencyKey);

/** Waits (bounded, real time) for the enqueues a tick set off: the store writes off the clock. */
async function until(store: WorkflowStore, count: number): Promise<RunRecord[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const runs = await scheduled(store);
    if (runs.length >= count || Date.now() > deadline) return runs;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const at = (iso: string) => Date.parse(iso);
// Without a server the PostgreSQL case skips, except under CI, where it must run.
const pgMissing = process.env.CI === 'true' ? undefined : await postgresUnavailable();
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe('workflow schedules', () => {
  test('a 9:00 schedule in America/New_York ticks at 14:00Z before the DST change and 13:00Z after', async (t) => {
    const clock = new VirtualClock(at('2026-03-06T15:00:00Z'));
    const [{ store, scheduler }] = (await workers(t, clock)) as [Worker];
    const ticks: string[] = [];
    scheduler.add({
      name: 'ny-report',
      cron: '0 9 * * *',
      timezone: 'America/New_York',
      workflow: report,
      input: (tick) => {
        ticks.push(tick.toISOString());
        return { tick: tick.toISOString() };
      },
      catchUp: 'none',
    });
    await scheduler.start();
    assert.equal(scheduler.next('ny-report')?.toISOString(), '2026-03-07T14:00:00.000Z');
    assert.deepEqual(await scheduled(store), [], "'none' starts no missed tick");

    await clock.advance(HOUR * 23);
    assert.equal((await until(store, 1)).length, 1);
    assert.equal(scheduler.next('ny-report')?.toISOString(), '2026-03-08T13:00:00.000Z');
    await clock.advance(HOUR * 48);
    const runs = await until(store, 3);
    assert.deepEqual(keys(runs), [
      'schedule:ny-report:2026-03-07T14:00:00.000Z',
      'schedule:ny-report:2026-03-08T13:00:00.000Z',
      'schedule:ny-report:2026-03-09T13:00:00.000Z',
    ]);
    // Enqueued when the tick came, not later, with the tick as its input.
    assert.deepEqual(
      runs.map((r) => new Date(r.createdAt).toISOString()),
      ticks,
    );
    assert.deepEqual(
      runs.map((r) => r.input),
      ticks.map((tick) => ({ tick })),
    );
    assert.equal(runs[0]!.workflow, 'report');
  });

  test('three schedulers on one SQLite file start exactly one run per tick', async (t) => {
    const clock = new VirtualClock(at('2026-05-01T10:02:00Z'));
    const list = await workers(t, clock, 3);
    const attempts = new Map<string, number>();
    for (const w of list) {
      w.scheduler.add({
        name: 'every-5',
        cron: '*/5 * * * *',
        workflow: 'report',
        input: (tick) => {
          attempts.set(tick.toISOString(), (attempts.get(tick.toISOString()) ?? 0) + 1);
          return null;
        },
        priority: 'high',
      });
    }
    await Promise.all(list.map((w) => w.scheduler.start()));
    await clock.advance(30 * MINUTE);
    await until(list[0]!.store, 7);
    await Promise.all(list.map((w) => w.scheduler.stop()));
    const runs = await scheduled(list[0]!.store);
    // The catch-up tick 10:00 plus the six ticks 10:05 .. 10:30, one run each.
    assert.deepEqual(
      keys(runs),
      ['00', '05', '10', '15', '20', '25', '30'].map((m) => `schedule:every-5:2026-05-01T10:${m}:00.000Z`),
    );
    // The three catch-ups read the last tick before any was recorded, and all tried 10:00: the
    // key kept one run. A scheduler that reads a tick another recorded already skips it.
    assert.equal(attempts.get('2026-05-01T10:00:00.000Z'), 3);
    assert.ok([...attempts.values()].every((n) => n >= 1 && n <= 3));
    assert.ok(runs.every((r) => r.priority === 2));
  });

  test('the scheduled runs run on the workers, once each', async (t) => {
    const clock = new VirtualClock(at('2026-05-01T10:00:30Z'));
    const list = await workers(t, clock, 2);
    for (const w of list) {
      w.scheduler.add({
        name: 'minutely',
        cron: '* * * * *',
        workflow: report,
        input: (tick) => ({ tick: tick.toISOString() }),
        catchUp: 'none',
      });
      w.engine.startWorker();
      await w.scheduler.start();
    }
    await clock.advance(MINUTE);
    const [run] = await until(list[0]!.store, 1);
    assert.equal(await list[1]!.engine.result(run!.id), 'report for 2026-05-01T10:01:00.000Z');
  });

  test('three schedulers on one PostgreSQL schema start exactly one run per tick', {
    skip: pgMissing ?? false,
  }, async (t) => {
    const schema = freshSchema();
    t.after(() => dropSchema(schema));
    const clock = new VirtualClock(at('2026-05-01T10:02:00Z'));
    const list = await workers(t, clock, 3, `pg:${schema}`);
    for (const w of list) {
      w.scheduler.add({ name: 'every-5', cron: '*/5 * * * *', workflow: report, catchUp: { maxTicks: 3 } });
    }
    await Promise.all(list.map((w) => w.scheduler.start()));
    await clock.advance(10 * MINUTE);
    await until(list[0]!.store, 5);
    await Promise.all(list.map((w) => w.scheduler.stop()));
    assert.deepEqual(
      keys(await scheduled(list[0]!.store)),
      ['09:50', '09:55', '10:00', '10:05', '10:10'].map((m) => `schedule:every-5:2026-05-01T${m}:00.000Z`),
    );
  });

  describe('catch-up when everything was down', () => {
    const down = async (t: TestContext, catchUp: CatchUpPolicy) => {
      // Hourly; the scheduler starts at 15:30, after ticks 13:00, 14:00 and 15:00 went by.
      const clock = new VirtualClock(at('2026-05-01T15:30:00Z'));
      const [w] = (await workers(t, clock)) as [Worker];
      w.scheduler.add({ name: 'hourly', cron: '0 * * * *', workflow: report, catchUp });
      await w.scheduler.start();
      return { ...w, clock, runs: await scheduled(w.store) };
    };
    const hour = (h: number) => `schedule:hourly:2026-05-01T${String(h).padStart(2, '0')}:00:00.000Z`;

    test("'none' starts no missed tick and waits for the next", async (t) => {
      const { runs, scheduler } = await down(t, 'none');
      assert.deepEqual(runs, []);
      assert.equal(scheduler.next('hourly')?.toISOString(), '2026-05-01T16:00:00.000Z');
    });

    test("'latest' (the default) starts the most recent missed tick, once however often it starts", async (t) => {
      const { runs, store, engine, clock } = await down(t, 'latest');
      assert.deepEqual(keys(runs), [hour(15)]);
      // Another worker, or this one restarted: the tick has its run already.
      const again = new WorkflowScheduler(engine, { clock }).add({
        name: 'hourly',
        cron: '0 * * * *',
        workflow: report,
      });
      await again.start();
      await again.stop();
      assert.deepEqual(keys(await scheduled(store)), [hour(15)]);
    });

    test('{ maxTicks } starts up to that many of the most recent missed ticks, oldest first', async (t) => {
      const { runs, store, engine, clock, scheduler } = await down(t, { maxTicks: 3 });
      assert.deepEqual(keys(runs), [hour(13), hour(14), hour(15)]);
      assert.ok(runs[0]!.createdAt <= runs[1]!.createdAt);
      // A larger window at once: nothing, since catch-up starts only ticks after the last that
      // ran (11:00 and 12:00, which the first start left out, stay left out).
      const wider = () =>
        new WorkflowScheduler(engine, { clock }).add({
          name: 'hourly',
          cron: '0 * * * *',
          workflow: report,
          catchUp: { maxTicks: 5 },
        });
      const now = wider();
      await now.start();
      await now.stop();
      assert.deepEqual(keys(await scheduled(store)), [13, 14, 15].map(hour));
      // Everything down for seven hours: the five most recent of the ticks since 15:00.
      await scheduler.stop();
      await clock.advance(7 * HOUR);
      const later = wider();
      await later.start();
      await later.stop();
      assert.deepEqual(keys(await scheduled(store)), [13, 14, 15, 18, 19, 20, 21, 22].map(hour));
    });
  });

  test('a tick whose run was pruned is not started again by a restart, and later ticks still are', async (t) => {
    const clock = new VirtualClock(at('2026-05-01T15:30:00Z'));
    const [w] = (await workers(t, clock)) as [Worker];
    w.engine.startWorker();
    const hourly = { name: 'hourly', cron: '0 * * * *', workflow: report, catchUp: { maxTicks: 3 } } as const;
    w.scheduler.add(hourly);
    await w.scheduler.start();
    await w.scheduler.stop();
    const first = await scheduled(w.store);
    assert.deepEqual(
      keys(first),
      [13, 14, 15].map((h) => `schedule:hourly:2026-05-01T${h}:00:00.000Z`),
    );
    for (const run of first) await w.engine.result(run.id);
    // Retention takes every run: their idempotency keys no longer stop a second run.
    await clock.advance(10 * MINUTE);
    assert.equal(await w.engine.prune(0), 3);
    assert.deepEqual(await scheduled(w.store), []);

    // A restart within the hour: the missed ticks it would catch up all had their run.
    const restarted = new WorkflowScheduler(w.engine, { clock }).add(hourly);
    await restarted.start();
    await restarted.stop();
    assert.deepEqual(await scheduled(w.store), []);
    // Three hours later: the ticks after the last recorded one, not the pruned ones before it.
    await clock.advance(3 * HOUR);
    const later = new WorkflowScheduler(w.engine, { clock }).add(hourly);
    await later.start();
    await later.stop();
    assert.deepEqual(
      keys(await scheduled(w.store)),
      [16, 17, 18].map((h) => `schedule:hourly:2026-05-01T${h}:00:00.000Z`),
    );
  });

  test('one timer for the earliest tick across schedules, none when stopped or empty', async (t) => {
    const clock = new VirtualClock(at('2026-05-01T10:00:30Z'));
    const [{ scheduler, store }] = (await workers(t, clock)) as [Worker];
    await scheduler.start();
    assert.equal(clock.pendingTimers, 0, 'no schedule, no timer');
    scheduler.add({ name: 'every-5', cron: '*/5 * * * *', workflow: report, catchUp: 'none' });
    scheduler.add({ name: 'every-7s', cron: '*/7 * * * * *', workflow: report, catchUp: 'none' });
    assert.equal(clock.pendingTimers, 1);
    assert.equal(scheduler.next('every-7s')?.toISOString(), '2026-05-01T10:00:35.000Z');
    await clock.advance(5_000);
    assert.deepEqual(keys(await until(store, 1)), ['schedule:every-7s:2026-05-01T10:00:35.000Z']);
    assert.equal(clock.pendingTimers, 1);
    assert.equal(scheduler.remove('every-7s'), true);
    assert.equal(scheduler.remove('every-7s'), false);
    assert.equal(clock.pendingTimers, 1, 'still waiting for every-5');
    await scheduler.stop();
    assert.equal(clock.pendingTimers, 0, 'stopped: no timer left');
    await clock.advance(HOUR);
    assert.equal((await scheduled(store)).length, 1, 'no tick fires while stopped');
    assert.equal(scheduler.next('every-5')?.toISOString(), '2026-05-01T11:05:00.000Z');
    assert.equal(scheduler.next('unknown'), undefined);
    await scheduler.start();
    scheduler.remove('every-5');
    assert.equal(clock.pendingTimers, 0, 'started but empty: no timer');
  });

  test('a timer that fires hours late starts the latest due tick, and earlier ones as catchUp allows', async (t) => {
    // A process suspended for 2.5 h: every timer fires that much after it was due.
    const clock = new VirtualClock(at('2026-05-01T10:30:00Z'));
    const late: Clock = {
      now: () => clock.now(),
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms + 2.5 * HOUR),
      clearTimeout: (handle) => clock.clearTimeout(handle),
      sleep: (ms, signal) => clock.sleep(ms, signal),
    };
    const [{ engine, store }] = (await workers(t, clock)) as [Worker];
    const scheduler = new WorkflowScheduler(engine, { clock: late });
    t.after(() => scheduler.stop());
    scheduler.add({ name: 'latest', cron: '0 * * * *', workflow: report, catchUp: 'none' });
    scheduler.add({ name: 'two', cron: '0 * * * *', workflow: report, catchUp: { maxTicks: 2 } });
    await scheduler.start();
    assert.equal((await scheduled(store)).length, 2, 'the 10:00 tick of "two", caught up at start');
    await clock.advance(3 * HOUR);
    const runs = await until(store, 5);
    assert.deepEqual(keys(runs), [
      'schedule:latest:2026-05-01T13:00:00.000Z',
      'schedule:two:2026-05-01T09:00:00.000Z',
      'schedule:two:2026-05-01T10:00:00.000Z',
      'schedule:two:2026-05-01T12:00:00.000Z',
      'schedule:two:2026-05-01T13:00:00.000Z',
    ]);
    assert.equal(scheduler.next('latest')?.toISOString(), '2026-05-01T14:00:00.000Z');
  });

  test('a tick that cannot start is a warning, and the next tick starts', async (t) => {
    const clock = new VirtualClock(at('2026-05-01T10:00:30Z'));
    const [{ scheduler, store }] = (await workers(t, clock)) as [Worker];
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    let calls = 0;
    scheduler.add({
      name: 'flaky-input',
      cron: '* * * * *',
      workflow: report,
      catchUp: 'none',
      input: () => {
        if (++calls === 1) throw new Error('no data yet');
        return null;
      },
    });
    await scheduler.start();
    await clock.advance(2 * MINUTE);
    await until(store, 1);
    await scheduler.stop();
    assert.deepEqual(keys(await scheduled(store)), ['schedule:flaky-input:2026-05-01T10:02:00.000Z']);
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(
      warnings.some((m) => m.includes("'flaky-input'") && m.includes('no data yet')),
      warnings.join(),
    );
  });

  describe('daylight saving', () => {
    /** A '30 2 * * *' schedule: 02:30 is skipped on spring-forward day and repeated on fall-back day. */
    const nightly = (zone: string, catchUp: CatchUpPolicy) =>
      ({ name: 'nightly', cron: '30 2 * * *', timezone: zone, workflow: report, catchUp }) as const;
    const key = (iso: string) => `schedule:nightly:${iso}`;

    // next() puts the skipped 02:30 an hour later, at 03:30 local.
    const springs = [
      { zone: 'America/New_York', change: '2026-03-08T07:00:00.000Z', tick: '2026-03-08T07:30:00.000Z' },
      { zone: 'Europe/Berlin', change: '2026-03-29T01:00:00.000Z', tick: '2026-03-29T01:30:00.000Z' },
    ];
    for (const { zone, change, tick } of springs) {
      test(`${zone}: the 02:30 tick on spring-forward day starts once, at the instant next() gives`, async (t) => {
        const clock = new VirtualClock(at(tick) - 6 * HOUR);
        const [{ store, scheduler }] = (await workers(t, clock)) as [Worker];
        scheduler.add(nightly(zone, 'none'));
        await scheduler.start();
        assert.equal(scheduler.next('nightly')?.toISOString(), tick);
        await clock.advance(6 * HOUR);
        assert.deepEqual(keys(await until(store, 1)), [key(tick)]);
        const following = scheduler.next('nightly')!.toISOString();
        assert.equal(at(following) - at(tick), 23 * HOUR, 'the day after at 02:30 local');
        await clock.advance(24 * HOUR);
        assert.deepEqual(keys(await until(store, 2)), [key(tick), key(following)]);
      });

      test(`${zone}: a scheduler started after the clock change, before the moved tick, still starts it`, async (t) => {
        const clock = new VirtualClock(at(change) + 10 * MINUTE);
        const [{ store, scheduler }] = (await workers(t, clock)) as [Worker];
        scheduler.add(nightly(zone, 'none'));
        await scheduler.start();
        assert.equal(scheduler.next('nightly')?.toISOString(), tick);
        await clock.advance(HOUR);
        assert.deepEqual(keys(await until(store, 1)), [key(tick)]);
      });

      test(`${zone}: 'latest' catch-up after the moved tick starts that tick, not the day before's`, async (t) => {
        const clock = new VirtualClock(at(tick) + 90 * MINUTE);
        const [{ store, scheduler }] = (await workers(t, clock)) as [Worker];
        scheduler.add(nightly(zone, 'latest'));
        await scheduler.start();
        assert.deepEqual(keys(await scheduled(store)), [key(tick)]);
      });
    }

    // Berlin falls back at 01:00Z: 02:30 local is 00:30Z (summer time), then 01:30Z (winter time).
    const first = '2026-10-25T00:30:00.000Z';
    const dayBefore = '2026-10-24T00:30:00.000Z';
    const dayAfter = '2026-10-26T01:30:00.000Z';

    test('Europe/Berlin: the repeated 02:30 starts once on fall-back day, however late a scheduler starts', async (t) => {
      const clock = new VirtualClock(at('2026-10-25T00:00:00Z'));
      const [live, later, latest] = await workers(t, clock, 3);
      live!.scheduler.add(nightly('Europe/Berlin', 'none'));
      await live!.scheduler.start();
      await clock.advance(HOUR);
      assert.deepEqual(keys(await until(live!.store, 1)), [key(first)]);
      // Between the two instants of 02:30, and hours later with the default catch-up.
      later!.scheduler.add(nightly('Europe/Berlin', 'none'));
      await later!.scheduler.start();
      assert.equal(later!.scheduler.next('nightly')?.toISOString(), dayAfter);
      await clock.advance(8 * HOUR);
      latest!.scheduler.add(nightly('Europe/Berlin', 'latest'));
      await latest!.scheduler.start();
      assert.equal(live!.scheduler.next('nightly')?.toISOString(), dayAfter);
      await clock.advance(17 * HOUR);
      assert.deepEqual(keys(await until(live!.store, 2)), [key(first), key(dayAfter)]);
    });

    test('Europe/Berlin: { maxTicks } catch-up across fall-back day starts that day once', async (t) => {
      const clock = new VirtualClock(at('2026-10-26T12:00:00Z'));
      const [{ store, scheduler }] = (await workers(t, clock)) as [Worker];
      scheduler.add(nightly('Europe/Berlin', { maxTicks: 3 }));
      await scheduler.start();
      assert.deepEqual(keys(await scheduled(store)), [key(dayBefore), key(first), key(dayAfter)]);
    });
  });

  describe('the cost of a tick', () => {
    /** Counts the cron-parser steps (next() and prev()) the scheduler takes. */
    const steps = (t: TestContext) => {
      const count = { value: 0 };
      for (const method of ['next', 'prev'] as const) {
        const original = CronExpression.prototype[method];
        t.mock.method(CronExpression.prototype, method, function (this: CronExpression) {
          count.value++;
          return original.call(this);
        });
      }
      return count;
    };

    test('a tick of a { maxTicks: 1000 } schedule takes a few cron steps, not a thousand', async (t) => {
      const clock = new VirtualClock(at('2026-05-01T12:00:00Z'));
      const [{ store, scheduler }] = (await workers(t, clock)) as [Worker];
      scheduler.add({
        name: 'daily',
        cron: '0 9 * * *',
        timezone: 'America/New_York',
        workflow: report,
        catchUp: { maxTicks: 1_000 },
      });
      const count = steps(t);
      await scheduler.start();
      assert.equal(await store.totalRuns(), 1_000);
      assert.ok(count.value <= 2 * 1_000 + 10, `catch-up walks the 1,000 ticks about twice: ${count.value}`);
      count.value = 0;
      await clock.advance(24 * HOUR);
      assert.ok(count.value <= 3, `one tick, one step to the next: ${count.value}`);
      const deadline = Date.now() + 5_000;
      while ((await store.totalRuns()) < 1_001 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.deepEqual(keys(await store.listRuns({ limit: 1 })), ['schedule:daily:2026-05-01T13:00:00.000Z']);
    });

    test("a timer a day late on a minutely 'latest' schedule looks back, not through every missed tick", async (t) => {
      const clock = new VirtualClock(at('2026-05-01T10:00:30Z'));
      const late: Clock = {
        now: () => clock.now(),
        setTimeout: (fn, ms) => clock.setTimeout(fn, ms + 24 * HOUR),
        clearTimeout: (handle) => clock.clearTimeout(handle),
        sleep: (ms, signal) => clock.sleep(ms, signal),
      };
      const [{ engine, store }] = (await workers(t, clock)) as [Worker];
      const scheduler = new WorkflowScheduler(engine, { clock: late });
      t.after(() => scheduler.stop());
      scheduler.add({ name: 'minutely', cron: '* * * * *', workflow: report, catchUp: 'none' });
      await scheduler.start();
      const count = steps(t);
      await clock.advance(24 * HOUR + MINUTE);
      assert.deepEqual(keys(await until(store, 1)), ['schedule:minutely:2026-05-02T10:01:00.000Z']);
      assert.ok(count.value <= 10, `not the 1,440 missed ticks: ${count.value}`);
    });
  });

  test('invalid schedules are refused at add() with the path of the field', async (t) => {
    const [{ scheduler }] = (await workers(t, new VirtualClock(at('2026-05-01T10:00:00Z')))) as [Worker];
    const invalid = (schedule: object, path: string) => {
      const refused = (error: unknown) =>
        error instanceof InvalidOptionsError &&
        error.code === ErrorCodes.INVALID_OPTIONS &&
        error.path === path;
      assert.throws(() => scheduler.add(schedule as never), refused, path);
      // checkSchedule (for configuration tools) refuses the same, without a scheduler; a name
      // taken is the scheduler's own refusal.
      if (path !== 'schedules.nightly') assert.throws(() => checkSchedule(schedule as never), refused, path);
    };
    const ok = { name: 'nightly', cron: '0 2 * * *', workflow: report };
    invalid({ ...ok, cron: 'every night' }, 'schedules.nightly.cron');
    invalid({ ...ok, cron: '61 * * * *' }, 'schedules.nightly.cron');
    invalid({ ...ok, cron: '' }, 'schedules.nightly.cron');
    invalid({ ...ok, cron: '0 0 30 2 *' }, 'schedules.nightly.cron');
    invalid({ ...ok, timezone: 'Mars/Olympus_Mons' }, 'schedules.nightly.timezone');
    invalid({ ...ok, catchUp: 'all' }, 'schedules.nightly.catchUp');
    invalid({ ...ok, catchUp: { maxTicks: 0 } }, 'schedules.nightly.catchUp.maxTicks');
    invalid({ ...ok, catchUp: { maxTicks: 2.5 } }, 'schedules.nightly.catchUp.maxTicks');
    invalid({ ...ok, priority: 'mega' }, 'schedules.nightly.priority');
    invalid({ ...ok, workflow: 42 }, 'schedules.nightly.workflow');
    invalid({ ...ok, timeZone: 'UTC' }, 'schedules.nightly.timeZone');
    invalid({ ...ok, name: '' }, 'schedules.name');
    checkSchedule(ok);
    checkSchedule({ ...ok, workflow: 'by-name', catchUp: { maxTicks: 3 }, timezone: 'Asia/Tokyo' });
    scheduler.add(ok);
    invalid(ok, 'schedules.nightly');
    assert.equal(scheduler.next('nightly')?.toISOString(), '2026-05-02T02:00:00.000Z');
  });
});
