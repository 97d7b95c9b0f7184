import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  activeCheck,
  circuitBreaker,
  dependencyCheck,
  flushMicrotasks,
  type HealthCheck,
  type HealthCheckResult,
  HealthMonitor,
  type HealthSource,
  passiveCheck,
  TimeoutError,
  VirtualClock,
} from '@bulwark/core';
import fc from 'fast-check';
import { deferred, failWith, runTypeScript, throwsInvalid, track } from './support.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

/** A check that records the virtual time each run started; `body` decides how a run ends. */
function timed(
  clock: VirtualClock,
  name: string,
  body: (signal: AbortSignal) => unknown,
  more: Partial<HealthCheck> = {},
): HealthCheck & { runs: number[] } {
  const runs: number[] = [];
  return {
    name,
    ...more,
    runs,
    run(signal) {
      runs.push(clock.now());
      return body(signal) as HealthCheckResult | undefined;
    },
  };
}

/** A dependency as the registry describes it to its check, with its state set by the test. */
function source(
  fields: Partial<Pick<HealthSource, 'name' | 'kind' | 'critical'>> & {
    state?: ReturnType<HealthSource['breakerState']>;
    calls?: number;
    failures?: number;
  } = {},
) {
  const s = {
    name: 'payment_gateway',
    kind: 'http',
    critical: false,
    state: undefined as ReturnType<HealthSource['breakerState']>,
    calls: 0,
    failures: 0,
    ...fields,
  };
  return Object.assign(s, {
    breakerState: () => s.state,
    recentCalls: () => ({ calls: s.calls, failures: s.failures }),
  });
}

const never = () => new Promise<never>(() => {});

// ---------------------------------------------------------------------------------------------

describe('health: running checks', () => {
  test('runs every check in parallel, a hung one failing at exactly its own timeout with its signal aborted', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock, timeoutMs: 1_000 });
    const aborted: Record<string, { at: number; reason: unknown }> = {};
    const hangUntilAborted = (name: string) => (signal: AbortSignal) => {
      signal.addEventListener('abort', () => {
        aborted[name] = { at: clock.now(), reason: signal.reason };
      });
      return never();
    };
    const quick = timed(clock, 'quick', () => clock.sleep(100));
    const own = timed(clock, 'own', hangUntilAborted('own'), { timeoutMs: 200 });
    const dflt = timed(clock, 'default', hangUntilAborted('default'));
    for (const c of [quick, own, dflt]) monitor.register(c);

    const report = track(monitor.report());
    await flushMicrotasks();
    assert.deepEqual([quick.runs, own.runs, dflt.runs], [[0], [0], [0]], 'all started at once');
    await clock.advance(200);
    assert.deepEqual(Object.keys(aborted), ['own']);
    assert.equal(aborted.own!.at, 200);
    assert.ok(aborted.own!.reason instanceof TimeoutError);
    await clock.advance(799);
    assert.equal(report.status, 'pending');
    await clock.advance(1);
    assert.equal(report.status, 'fulfilled');
    assert.equal(aborted.default!.at, 1_000);

    const { checks } = report.value!;
    assert.equal(checks['quick:responseTime']![0]!.status, 'pass');
    assert.equal(checks['quick:responseTime']![0]!.observedValue, 100);
    assert.deepEqual(
      [checks['own:responseTime']![0], checks['default:responseTime']![0]].map((e) => [
        e!.status,
        e!.output,
        e!.observedValue,
        e!.time,
      ]),
      [
        ['fail', 'timed out after 200 ms', 200, new Date(200).toISOString()],
        ['fail', 'timed out after 1000 ms', 1_000, new Date(1_000).toISOString()],
      ],
    );
    assert.equal(clock.pendingTimers, 0);
  });

  test('a check that throws or rejects fails with the error message only, never a stack or credentials', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock });
    monitor.register({
      name: 'sync',
      run: () => {
        throw new Error('database is down');
      },
    });
    monitor.register({ name: 'async', run: () => Promise.reject(new Error('connection refused')) });
    monitor.register({ name: 'text', run: () => Promise.reject('plain text reason') });
    monitor.register({
      name: 'url',
      run: async () => {
        throw new Error('cannot reach postgres://admin:s3cret@db.internal:5432/orders');
      },
    });
    const { checks } = await monitor.report();
    const outputs = Object.fromEntries(Object.entries(checks).map(([k, [e]]) => [k, [e!.status, e!.output]]));
    assert.deepEqual(outputs, {
      'sync:responseTime': ['fail', 'database is down'],
      'async:responseTime': ['fail', 'connection refused'],
      'text:responseTime': ['fail', 'plain text reason'],
      'url:responseTime': ['fail', 'cannot reach postgres://***@db.internal:5432/orders'],
    });
    assert.doesNotMatch(JSON.stringify(checks), /s3cret|\n\s+at /);
  });

  test('a check that returns nothing passes and reports its response time in ms, with no output', async () => {
    const clock = new VirtualClock(Date.UTC(2025, 0, 2, 3, 4, 5));
    const monitor = new HealthMonitor({ clock });
    monitor.register({ name: 'db', componentType: 'datastore', run: () => clock.sleep(40) });
    const report = track(monitor.report());
    await clock.advance(40);
    assert.deepEqual(report.value, {
      status: 'pass',
      checks: {
        'db:responseTime': [
          {
            componentId: 'db',
            componentType: 'datastore',
            observedValue: 40,
            observedUnit: 'ms',
            status: 'pass',
            time: '2025-01-02T03:04:05.040Z',
          },
        ],
      },
    });
  });

  test("a check's own result is reported as given; an unknown status fails", async () => {
    const monitor = new HealthMonitor({ clock: new VirtualClock() });
    monitor.register({
      name: 'disk',
      measurement: 'utilization',
      componentType: 'system',
      run: () => ({ status: 'warn', observedValue: 93, observedUnit: 'percent', output: 'disk nearly full' }),
    });
    monitor.register({ name: 'odd', run: () => ({ status: 'ok' }) as unknown as HealthCheckResult });
    const { checks } = await monitor.report();
    assert.deepEqual(checks['disk:utilization'], [
      {
        componentId: 'disk',
        componentType: 'system',
        observedValue: 93,
        observedUnit: 'percent',
        status: 'warn',
        time: new Date(0).toISOString(),
        output: 'disk nearly full',
      },
    ]);
    assert.equal(checks['odd:responseTime']![0]!.status, 'fail');
    assert.match(checks['odd:responseTime']![0]!.output!, /unknown status "ok"/);
  });

  test('a check may be a class instance: its run keeps its this', async () => {
    class PoolCheck implements HealthCheck {
      readonly name = 'pool';
      readonly measurement = 'connections';
      #idle = 3;
      run(): HealthCheckResult {
        return { observedValue: this.#idle, observedUnit: 'connections' };
      }
    }
    const monitor = new HealthMonitor({ clock: new VirtualClock() });
    monitor.register(new PoolCheck());
    const { checks } = await monitor.report();
    assert.deepEqual(
      [checks['pool:connections']![0]!.status, checks['pool:connections']![0]!.observedValue],
      ['pass', 3],
    );
  });

  test('a result with an open breaker reads warn, and its output is dropped for a pass', async () => {
    const monitor = new HealthMonitor({ clock: new VirtualClock() });
    monitor.register({ name: 'open', run: () => ({ breakerOpen: true }) });
    monitor.register({ name: 'fine', run: () => ({ output: 'all good' }) });
    const { checks } = await monitor.report();
    assert.deepEqual(
      [checks['open:responseTime']![0]!.status, checks['open:responseTime']![0]!.output],
      ['warn', 'circuit open'],
    );
    assert.equal('output' in checks['fine:responseTime']![0]!, false);
  });
});

describe('health: caching and overlap', () => {
  test('report() within the interval runs nothing; once it has passed, the check runs again', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock, intervalMs: 1_000 });
    const check = timed(clock, 'db', () => undefined);
    monitor.register(check);
    const first = await monitor.report();
    await clock.advance(999);
    assert.deepEqual(await monitor.report(), first);
    assert.deepEqual(check.runs, [0]);
    await clock.advance(1);
    const third = await monitor.report();
    assert.deepEqual(check.runs, [0, 1_000]);
    assert.equal(third.checks['db:responseTime']![0]!.time, new Date(1_000).toISOString());
  });

  test('each check is cached for its own interval', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock, intervalMs: 1_000 });
    const fast = timed(clock, 'fast', () => undefined, { intervalMs: 100 });
    const slow = timed(clock, 'slow', () => undefined);
    monitor.register(fast);
    monitor.register(slow);
    for (let t = 0; t < 1_000; t += 50) {
      await monitor.report();
      await clock.advance(50);
    }
    assert.deepEqual(fast.runs, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    assert.deepEqual(slow.runs, [0]);
  });

  test('reports asked for while a check runs share that run', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock });
    const work = deferred<undefined>();
    const check = timed(clock, 'db', () => work.promise);
    monitor.register(check);
    const reports = [monitor.report(), monitor.report(), monitor.report()];
    await flushMicrotasks();
    assert.deepEqual(check.runs, [0]);
    work.resolve(undefined);
    const [a, b, c] = await Promise.all(reports);
    assert.deepEqual(check.runs, [0]);
    assert.deepEqual(b, a);
    assert.deepEqual(c, a);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a check that timed out and ignores its signal is not run again until its work settles', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock, intervalMs: 1_000, timeoutMs: 100 });
    let work = deferred<undefined>();
    const check = timed(clock, 'stuck', () => work.promise);
    monitor.register(check);

    const first = track(monitor.report());
    await clock.advance(100);
    assert.equal(first.value!.checks['stuck:responseTime']![0]!.output, 'timed out after 100 ms');
    await clock.advance(1_000);
    const second = await monitor.report();
    assert.deepEqual(check.runs, [0], 'no second run beside the hung one');
    assert.equal(second.checks['stuck:responseTime']![0]!.status, 'fail');
    assert.match(second.checks['stuck:responseTime']![0]!.output!, /still not finished/);

    work.resolve(undefined); // the late result is discarded: it answers a question nobody waits for
    work = deferred<undefined>();
    work.resolve(undefined);
    await clock.advance(1_000);
    const third = await monitor.report();
    assert.deepEqual(check.runs, [0, 2_100]);
    assert.equal(third.status, 'pass');
  });

  test('the background refresh runs each check again an interval after its last run, never overlapping', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock, intervalMs: 1_000 });
    let running = 0;
    let peak = 0;
    const check = timed(clock, 'db', async () => {
      peak = Math.max(peak, ++running);
      await clock.sleep(300);
      running--;
    });
    monitor.register(check);
    monitor.start();
    await clock.advance(150);
    const during = track(Promise.all([monitor.report(), monitor.report()])); // join the run begun at 0
    await clock.advance(150);
    assert.equal(during.value![0].checks['db:responseTime']![0]!.observedValue, 300);
    assert.deepEqual(check.runs, [0]);
    await clock.advance(2_700);
    assert.deepEqual(check.runs, [0, 1_300, 2_600]);
    assert.equal(peak, 1);

    const served = await monitor.report(); // from the cache the background keeps fresh
    assert.deepEqual(check.runs, [0, 1_300, 2_600]);
    assert.equal(served.checks['db:responseTime']![0]!.time, new Date(2_900).toISOString());

    monitor.stop();
    await clock.runAll();
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(10_000);
    assert.deepEqual(check.runs, [0, 1_300, 2_600]);
  });

  test('no timer is left with nothing registered, after the last check is removed, or after stop()', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock });
    monitor.start();
    assert.equal(clock.pendingTimers, 0);
    const check = timed(clock, 'db', () => undefined);
    const dispose = monitor.register(check);
    await flushMicrotasks();
    assert.deepEqual(check.runs, [0], 'a check registered while started runs at once');
    assert.equal(clock.pendingTimers, 1);
    dispose();
    assert.equal(clock.pendingTimers, 0);
    assert.deepEqual(Object.keys((await monitor.report()).checks), []);
    monitor.register(check);
    await clock.advance(30_000);
    assert.deepEqual(check.runs, [0, 0, 30_000]);
    monitor.stop();
    assert.equal(clock.pendingTimers, 0);
  });

  test('a process whose monitor still refreshes in the background exits on its own', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/health-idle-exit.ts', import.meta.url));
    const { stdout } = await runTypeScript(fixture, [], { timeout: 20_000, killSignal: 'SIGKILL' });
    assert.equal(stdout, 'pass\n');
  });
});

describe('health: aggregation', () => {
  const cases: [string, HealthCheck[], 'pass' | 'warn' | 'fail'][] = [
    ['nothing registered', [], 'pass'],
    [
      'every check passes',
      [
        { name: 'a', run: () => {} },
        { name: 'b', critical: true, run: () => {} },
      ],
      'pass',
    ],
    [
      'a non-critical check fails',
      [
        { name: 'a', run: () => ({ status: 'fail' }) },
        { name: 'b', critical: true, run: () => {} },
      ],
      'warn',
    ],
    ['a check warns', [{ name: 'a', critical: true, run: () => ({ status: 'warn' }) }], 'warn'],
    [
      'a critical breaker is open',
      [{ name: 'a', critical: true, run: () => ({ breakerOpen: true }) }],
      'warn',
    ],
    [
      'a critical check fails',
      [
        { name: 'a', run: () => ({ status: 'warn' }) },
        {
          name: 'b',
          critical: true,
          run: () => {
            throw new Error('down');
          },
        },
      ],
      'fail',
    ],
  ];
  for (const [name, checks, expected] of cases) {
    test(`${name}: ${expected}`, async () => {
      const monitor = new HealthMonitor({ clock: new VirtualClock() });
      for (const c of checks) monitor.register(c);
      const report = await monitor.report();
      assert.equal(report.status, expected);
      assert.equal('output' in report, expected !== 'pass');
    });
  }

  test('the status over any set of check outcomes follows the rule (property)', async () => {
    const outcome = fc.constantFrom('pass', 'nothing', 'warn', 'fail', 'throw', 'reject', 'hang');
    const check = fc.record({ critical: fc.boolean(), outcome, breakerOpen: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.array(check, { maxLength: 8 }), async (specs) => {
        const clock = new VirtualClock();
        const monitor = new HealthMonitor({ clock, timeoutMs: 50 });
        specs.forEach((s, i) => {
          monitor.register({
            name: `c${i}`,
            critical: s.critical,
            run: () => {
              const extra = s.breakerOpen ? { breakerOpen: true } : {};
              switch (s.outcome) {
                case 'nothing':
                  return s.breakerOpen ? extra : undefined;
                case 'throw':
                  throw new Error('thrown');
                case 'reject':
                  return Promise.reject(new Error('rejected'));
                case 'hang':
                  return never();
                default:
                  return { status: s.outcome, ...extra };
              }
            },
          });
        });
        const report = track(monitor.report());
        await clock.runAll();
        const failed = (s: (typeof specs)[number]) => ['fail', 'throw', 'reject', 'hang'].includes(s.outcome);
        const expected = specs.some((s) => s.critical && failed(s))
          ? 'fail'
          : specs.some((s) => failed(s) || s.outcome === 'warn' || s.breakerOpen)
            ? 'warn'
            : 'pass';
        assert.equal(report.value!.status, expected);
        assert.equal(clock.pendingTimers, 0);
      }),
      { numRuns: 200 },
    );
  });
});

describe('health: passive checks', () => {
  test('an open or isolated breaker reads warn; half-open warns too', async () => {
    for (const state of ['open', 'isolated', 'half-open'] as const) {
      const monitor = new HealthMonitor({ clock: new VirtualClock() });
      monitor.register(passiveCheck(source({ state, critical: true, calls: 10, failures: 10 })));
      const report = await monitor.report();
      assert.equal(report.status, 'warn', state);
      const [entry] = report.checks['payment_gateway:errorRate']!;
      assert.equal(entry!.status, 'warn');
      assert.match(entry!.output!, new RegExp(`circuit ${state}`));
    }
  });

  test('a failure rate at or above errorRate, over at least minimumCalls calls, fails', async () => {
    const clock = new VirtualClock();
    const s = source({ critical: true });
    const monitor = new HealthMonitor({ clock });
    monitor.register(passiveCheck(s, { errorRate: 0.5, minimumCalls: 4, intervalMs: 1 }));
    const read = async (calls: number, failures: number) => {
      Object.assign(s, { calls, failures });
      await clock.advance(1);
      const report = await monitor.report();
      const [e] = report.checks['payment_gateway:errorRate']!;
      return [report.status, e!.observedValue, e!.observedUnit, e!.output];
    };
    assert.deepEqual(await read(0, 0), ['pass', 0, 'percent', undefined]);
    assert.deepEqual(await read(3, 3), ['pass', 100, 'percent', undefined], 'too few calls to judge');
    assert.deepEqual(await read(8, 3), ['pass', 37.5, 'percent', undefined]);
    assert.deepEqual(await read(8, 4), ['fail', 50, 'percent', '4 of 8 recent calls failed']);
  });

  test('a passive check follows a real circuit breaker from closed to open', async () => {
    const clock = new VirtualClock();
    const breaker = circuitBreaker({
      clock,
      window: { kind: 'count', size: 10 },
      minimumCalls: 4,
      failureRate: 0.6,
      openMs: 10_000,
    });
    const monitor = new HealthMonitor({ clock, intervalMs: 1_000 });
    monitor.register(
      passiveCheck(
        {
          name: 'inventory_db',
          kind: 'database',
          critical: true,
          breakerState: () => breaker.state,
          recentCalls: () => ({
            calls: breaker.stats().bufferedCalls,
            failures: breaker.stats().bufferedFailures,
          }),
        },
        { errorRate: 0.5, minimumCalls: 2 },
      ),
    );
    const read = async () => {
      await clock.advance(1_000);
      const report = await monitor.report();
      return { status: report.status, reading: report.checks['inventory_db:errorRate']![0]! };
    };
    await breaker.execute(() => 'ok');
    await breaker.execute(() => 'ok');
    assert.equal((await read()).status, 'pass');
    await failWith(breaker);
    await failWith(breaker);
    const failing = await read();
    assert.equal(failing.status, 'fail', 'half the calls failed: the critical dependency is failing');
    assert.deepEqual([failing.reading.observedValue, failing.reading.componentType], [50, 'datastore']);
    await failWith(breaker); // 3 of 5: the breaker's 60% is reached
    assert.equal(breaker.state, 'open');
    assert.equal((await read()).status, 'warn');
  });
});

describe('health: active checks and dependency settings', () => {
  test('an active probe is timed; it warns while the breaker is open, and fails when it throws', async () => {
    const clock = new VirtualClock();
    const s = source({ critical: true });
    let up = true;
    const monitor = new HealthMonitor({ clock, intervalMs: 1 });
    monitor.register(
      activeCheck(s, {
        check: async (signal) => {
          await clock.sleep(25, signal);
          if (!up) throw new Error('503 from /health');
          return { status: 200 }; // a response-like value: not read as a result
        },
      }),
    );
    const read = async () => {
      await clock.advance(1);
      const report = track(monitor.report());
      await clock.runAll();
      return report.value!;
    };
    const ok = await read();
    assert.deepEqual(
      [
        ok.status,
        ok.checks['payment_gateway:responseTime']![0]!.observedValue,
        ok.checks['payment_gateway:responseTime']![0]!.componentType,
      ],
      ['pass', 25, 'component'],
    );
    s.state = 'open';
    assert.equal((await read()).status, 'warn');
    up = false;
    const down = await read();
    assert.equal(down.status, 'fail');
    assert.equal(down.output, 'payment_gateway:responseTime fail');
    assert.equal(down.checks['payment_gateway:responseTime']![0]!.output, '503 from /health');
  });

  test('dependencyCheck picks passive by default and active when a probe is given', () => {
    const s = source();
    assert.equal(dependencyCheck(s).measurement, 'errorRate');
    assert.equal(dependencyCheck(s, { errorRate: 0.2 }).measurement, 'errorRate');
    const active = dependencyCheck(s, { check: () => true, timeoutMs: 250, intervalMs: 5_000 });
    assert.deepEqual([active.measurement, active.timeoutMs, active.intervalMs], ['responseTime', 250, 5_000]);
  });

  test('health settings are validated, naming the field', () => {
    const s = source();
    throwsInvalid(
      () => dependencyCheck(s, { errorRate: 1.5 }),
      'dependencies.payment_gateway.health.errorRate',
    );
    throwsInvalid(
      () => dependencyCheck(s, { errorRate: 0 }),
      'dependencies.payment_gateway.health.errorRate',
    );
    throwsInvalid(
      () => dependencyCheck(s, { minimumCalls: 0.5 }),
      'dependencies.payment_gateway.health.minimumCalls',
    );
    throwsInvalid(
      () => dependencyCheck(s, { mode: 'passive', check: () => true }),
      'dependencies.payment_gateway.health.check',
    );
    throwsInvalid(() => dependencyCheck(s, { mode: 'active' }), 'dependencies.payment_gateway.health.check');
    throwsInvalid(() => dependencyCheck(s, { path: '/health' }), 'dependencies.payment_gateway.health.check');
    const typo = throwsInvalid(
      () => dependencyCheck(s, { timeout: 5 } as never),
      'dependencies.payment_gateway.health.timeout',
    );
    assert.match(typo, /did you mean 'timeoutMs'/);
  });

  test('monitor options and checks are validated when given, naming the field', () => {
    throwsInvalid(() => new HealthMonitor({ timeoutMs: 0 }), 'health.timeoutMs');
    throwsInvalid(() => new HealthMonitor({ intervalMs: -1 }), 'health.intervalMs');
    throwsInvalid(() => new HealthMonitor({ intervalMs: 0 }), 'health.intervalMs');
    throwsInvalid(() => new HealthMonitor({ interval: 5 } as never), 'health.interval');
    const monitor = new HealthMonitor({ clock: new VirtualClock() });
    throwsInvalid(() => monitor.register({ name: 'a:b', run: () => {} }), 'health.check.name');
    throwsInvalid(
      () => monitor.register({ name: 'a', measurement: 'x:y', run: () => {} }),
      'health.checks.a.measurement',
    );
    throwsInvalid(
      () => monitor.register({ name: 'a', critical: 'yes', run: () => {} } as never),
      'health.checks.a.critical',
    );
    throwsInvalid(() => monitor.register({ name: 'a' } as never), 'health.checks.a.run');
    monitor.register({ name: 'a', run: () => {} });
    const message = throwsInvalid(() => monitor.register({ name: 'a', run: () => {} }), 'health.checks.a');
    assert.match(message, /already registered/);
  });
});

describe('health: liveness and readiness', () => {
  test('liveness never runs a check: a failing or hanging one does not change it', async () => {
    const clock = new VirtualClock(Date.UTC(2025, 5, 1));
    const monitor = new HealthMonitor({ clock, serviceId: 'orders', version: '1.4.0' });
    const hung = timed(clock, 'hung', never, { critical: true });
    const broken = timed(clock, 'broken', () => Promise.reject(new Error('down')), { critical: true });
    monitor.register(hung);
    monitor.register(broken);
    await clock.advance(90_500);
    assert.deepEqual(monitor.liveness(), {
      status: 'pass',
      version: '1.4.0',
      serviceId: 'orders',
      checks: {
        uptime: [
          {
            componentType: 'system',
            observedValue: 90.5,
            observedUnit: 's',
            status: 'pass',
            time: new Date(Date.UTC(2025, 5, 1) + 90_500).toISOString(),
          },
        ],
      },
    });
    assert.deepEqual([hung.runs, broken.runs], [[], []]);
    assert.equal(clock.pendingTimers, 0);
  });

  test('readiness fails while draining, without running checks, and follows the checks again after', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({ clock, intervalMs: 1_000 });
    const check = timed(clock, 'db', () => undefined, { critical: true });
    monitor.register(check);
    assert.equal((await monitor.readiness()).status, 'pass');
    monitor.setDraining(true);
    await clock.advance(5_000);
    const draining = await monitor.readiness();
    assert.equal(draining.status, 'fail');
    assert.match(draining.output!, /draining/);
    assert.equal(draining.checks['db:responseTime']![0]!.status, 'pass', 'the last reading is still shown');
    assert.deepEqual(check.runs, [0]);
    assert.equal(monitor.liveness().status, 'pass');
    monitor.setDraining(false);
    assert.equal((await monitor.readiness()).status, 'pass');
    assert.deepEqual(check.runs, [0, 5_000]);
  });

  test('the report carries the service fields and lists what is not passing', async () => {
    const clock = new VirtualClock();
    const monitor = new HealthMonitor({
      clock,
      serviceId: 'orders',
      version: '2',
      description: 'Order service',
    });
    monitor.register({
      name: 'cache',
      componentType: 'datastore',
      run: () => ({ status: 'warn', output: 'slow' }),
    });
    monitor.register({ name: 'db', componentType: 'datastore', critical: true, run: () => {} });
    const report = await monitor.report();
    assert.deepEqual(Object.keys(report), [
      'status',
      'version',
      'serviceId',
      'description',
      'output',
      'checks',
    ]);
    assert.equal(report.status, 'warn');
    assert.equal(report.output, 'cache:responseTime warn');
    assert.deepEqual(Object.keys(report.checks), ['cache:responseTime', 'db:responseTime']);
  });
});
