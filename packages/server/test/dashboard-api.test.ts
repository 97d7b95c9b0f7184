// What the dashboard reads from the server: the static app at `/`, dependency history and
// breaker transitions, runs parked behind an open circuit, timed isolation, the run search and
// count, and the system stream's coalesced snapshots; real servers, stores and HTTP, and the
// virtual clock wherever time matters.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Clock, type DependencyOptions, DependencyRegistry, VirtualClock } from '@bulwark/core';
import {
  defineWorkflow,
  openSqliteStore,
  type SqliteStore,
  type WorkflowDefinition,
  WorkflowEngine,
} from '@bulwark/workflow';
import { DependencyHistory, HISTORY_POINTS } from '../src/http/monitor/history.ts';
import { MAX_TRANSITIONS } from '../src/http/monitor/monitor.ts';
import { buildDashboard } from '../src/http/plugins/dashboard.ts';
import { type BulwarkServer, createServer } from '../src/http/server.ts';
import type { ServerSettingsInput } from '../src/http/settings.ts';
import { as, greet, testSettings } from './server-support.ts';

const T0 = Date.UTC(2025, 0, 1);

interface Bench extends BulwarkServer {
  registry: DependencyRegistry;
  engine: WorkflowEngine;
  store: SqliteStore;
  get<T = any>(url: string, role?: 'viewer' | 'operator' | 'admin'): Promise<{ status: number; body: T }>;
  post<T = any>(
    url: string,
    body?: unknown,
    role?: 'operator' | 'admin',
  ): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/**
 * A server whose registry runs on `clock` (the dashboard's figures and the isolation timer
 * with it); the engine keeps the real clock unless `engineClock` says otherwise.
 */
async function bench(
  options: {
    clock?: Clock;
    dependencies?: Record<string, DependencyOptions>;
    workflows?: WorkflowDefinition<any, any>[];
    worker?: boolean;
    settings?: ServerSettingsInput;
  } = {},
): Promise<Bench> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-dashboard-api-'));
  const store = await openSqliteStore({ path: join(dir, 'bulwark.db'), durability: 'normal' });
  await store.migrate();
  const clock = options.clock;
  const registry = new DependencyRegistry({
    dependencies: options.dependencies ?? {
      // No retries: a failed call fails at once, with no backoff waiting on the virtual clock.
      payments: {
        kind: 'http',
        retry: false,
        breaker: { window: { kind: 'consecutive', failures: 2 }, openMs: 30_000 },
      },
      cache: { kind: 'cache' },
    },
    ...(clock === undefined ? {} : { clock }),
  });
  const engine = new WorkflowEngine({ store, registry, pollMs: 20 });
  engine.register(...(options.workflows ?? [greet]));
  if (options.worker === true) engine.startWorker();
  const server = await createServer({
    registry,
    engine,
    store,
    ...(clock === undefined ? {} : { clock }),
    settings: testSettings(dir, { rateLimit: false, ...options.settings }),
  });
  await server.app.ready();
  return {
    ...server,
    registry,
    engine,
    store,
    async get(url, role = 'viewer') {
      const r = await server.app.inject({ url, headers: as(role) });
      return { status: r.statusCode, body: r.json() };
    },
    async post(url, body, role = 'operator') {
      const r = await server.app.inject({
        method: 'POST',
        url,
        headers: as(role),
        ...(body === undefined ? {} : { payload: body as object }),
      });
      return { status: r.statusCode, body: r.json() };
    },
    async close() {
      await server.app.close();
      await engine.stop();
      await registry.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A call through the registry that fails (a 503 counts as a breaker failure) or succeeds. */
async function call(registry: DependencyRegistry, name: string, outcome: 'ok' | 'fail'): Promise<void> {
  await registry
    .execute(name, 'op', async () => {
      if (outcome === 'fail') throw Object.assign(new Error('upstream 503'), { status: 503 });
      return 'ok';
    })
    .catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// The static dashboard

function fakeDist(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-dist-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(
    join(dir, 'index.html'),
    '<!doctype html><script type="module" src="assets/app-1a2b3c.js"></script>',
  );
  writeFileSync(join(dir, 'assets', 'app-1a2b3c.js'), 'console.log("plain")');
  writeFileSync(join(dir, 'assets', 'app-1a2b3c.js.br'), 'brotli bytes');
  writeFileSync(join(dir, 'assets', 'app-1a2b3c.js.gz'), 'gzip bytes');
  writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  writeFileSync(join(dir, '.env'), 'SECRET=1');
  return dir;
}

test('/ serves the built dashboard: index.html uncached, hashed assets immutable, precompressed when accepted', async (t) => {
  const dist = fakeDist();
  t.after(() => rmSync(dist, { recursive: true, force: true }));
  const server = await bench({ settings: { dashboardDir: dist } });
  t.after(() => server.close());
  const get = (url: string, headers: Record<string, string> = {}) => server.app.inject({ url, headers });

  // No key needed: the page itself holds nothing; the API behind it asks for one.
  const index = await get('/');
  assert.equal(index.statusCode, 200);
  assert.match(String(index.headers['content-type']), /^text\/html/);
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.match(index.body, /assets\/app-1a2b3c\.js/);
  // The security headers of every response, CSP unchanged.
  assert.match(String(index.headers['content-security-policy']), /script-src 'self'; style-src 'self'/);
  assert.equal(index.headers['x-frame-options'], 'DENY');

  const asset = await get('/assets/app-1a2b3c.js');
  assert.equal(asset.statusCode, 200);
  assert.equal(asset.body, 'console.log("plain")');
  assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.match(String(asset.headers['content-type']), /javascript/);
  assert.equal(asset.headers['content-encoding'], undefined);

  const br = await get('/assets/app-1a2b3c.js', { 'accept-encoding': 'gzip, br' });
  assert.equal(br.headers['content-encoding'], 'br');
  assert.equal(br.body, 'brotli bytes');
  assert.match(String(br.headers['content-type']), /javascript/);
  assert.match(String(br.headers.vary), /Accept-Encoding/);
  const gz = await get('/assets/app-1a2b3c.js', { 'accept-encoding': 'gzip' });
  assert.equal(gz.headers['content-encoding'], 'gzip');

  const icon = await get('/favicon.svg');
  assert.equal(icon.statusCode, 200);
  assert.equal(icon.headers['cache-control'], 'no-cache');

  // What is not there is a problem, and a 404 is never cached for a year.
  for (const url of ['/assets/missing-000.js', '/assets/../../etc/passwd', '/.env', '/api/typo', '/other']) {
    const missing = await get(url);
    assert.equal(missing.statusCode, 404, url);
    assert.match(String(missing.headers['content-type']), /^application\/problem\+json/, url);
    assert.notEqual(missing.headers['cache-control'], 'public, max-age=31536000, immutable', url);
  }
});

test('/ without a built dashboard says so and how to build it, with no absolute link', async (t) => {
  const nowhere = join(tmpdir(), `bulwark-no-dist-${process.pid}`);
  const server = await bench({ settings: { dashboardDir: nowhere } });
  t.after(() => server.close());
  const page = await server.app.inject({ url: '/' });
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.body, /dashboard is not built/);
  assert.match(page.body, /npm run build:dashboard/);
  assert.ok(page.body.includes(nowhere), 'names where it looked');
  assert.doesNotMatch(page.body, /(href|src)="\//, 'relative links only: it works behind a path prefix');
  assert.doesNotMatch(page.body, /<script|style=/, 'nothing the CSP would block');
  // The API reference it links to also links relatively.
  const docs = await server.app.inject({ url: '/api/docs' });
  assert.doesNotMatch(docs.body, /(href|src)="\//);
});

test('buildDashboard builds missing sources with Vite, and does nothing where there are none', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'bulwark-dashboard-src-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'package.json'), '{"name":"dashboard-fixture","private":true,"type":"module"}');
  writeFileSync(join(root, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>');
  writeFileSync(join(root, 'main.js'), 'document.title = "built";');
  const lines: string[] = [];
  const dist = join(root, 'dist');
  assert.equal(await buildDashboard(dist, (line) => lines.push(line)), 'built');
  assert.deepEqual(lines, ['building dashboard…']);
  const server = await bench({ settings: { dashboardDir: dist } });
  t.after(() => server.close());
  const index = await server.app.inject({ url: '/' });
  const script = /src="\.?\/?(assets\/[^"]+\.js)"/.exec(index.body)?.[1];
  assert.ok(script, index.body);
  const asset = await server.app.inject({ url: `/${script}` });
  assert.equal(asset.statusCode, 200);
  assert.match(asset.body, /built/);

  // Built already: nothing to do, nothing said.
  assert.equal(await buildDashboard(dist, (line) => lines.push(line)), 'present');
  assert.equal(lines.length, 1);
  // No sources beside the folder (an installed package without dist/): nothing to build.
  assert.equal(
    await buildDashboard(join(tmpdir(), 'no-such-dir', 'dist'), (line) => lines.push(line)),
    'no-sources',
  );
});

// ---------------------------------------------------------------------------------------------
// History

test('history: 60 buckets per window, oldest first, calls in the bucket of their time', async (t) => {
  const clock = new VirtualClock(T0);
  const server = await bench({ clock });
  t.after(() => server.close());
  await call(server.registry, 'payments', 'ok');
  await clock.advance(5_000);
  await call(server.registry, 'payments', 'ok');
  await call(server.registry, 'payments', 'fail');

  for (const [window, bucketMs] of [
    ['5m', 5_000],
    ['15m', 15_000],
    ['60m', 60_000],
  ] as const) {
    const { status, body } = await server.get(`/api/dependencies/history?window=${window}`);
    assert.equal(status, 200);
    assert.equal(body.window, window);
    assert.equal(body.bucketMs, bucketMs);
    assert.equal(body.end, (Math.floor(clock.now() / bucketMs) + 1) * bucketMs);
    assert.deepEqual(Object.keys(body.dependencies).sort(), ['cache', 'payments']);
    for (const series of Object.values(body.dependencies) as Record<string, unknown[]>[]) {
      for (const [name, points] of Object.entries(series)) {
        assert.equal(points.length, HISTORY_POINTS, `${window} ${name}`);
      }
    }
  }
  const five = (await server.get('/api/dependencies/history?window=5m')).body.dependencies.payments;
  assert.deepEqual(five.calls.slice(-2), [1, 2]);
  assert.deepEqual(five.failures.slice(-2), [0, 1]);
  assert.deepEqual(five.calls.slice(0, -2), Array(58).fill(0));
  assert.deepEqual(five.p50Ms.slice(0, -2), Array(58).fill(null));
  // The default window is 15 minutes: both seconds fall in its last bucket.
  const fifteen = await server.get('/api/dependencies/history');
  assert.equal(fifteen.body.window, '15m');
  assert.equal(fifteen.body.dependencies.payments.calls.at(-1), 3);
  assert.equal(fifteen.body.dependencies.cache.calls.at(-1), 0);

  const bad = await server.get('/api/dependencies/history?window=2m');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.errors[0].pointer, '#/query/window');
});

test('history: after an idle gap the old counts are gone, not carried into new buckets', async (t) => {
  const clock = new VirtualClock(T0);
  const server = await bench({ clock });
  t.after(() => server.close());
  await call(server.registry, 'payments', 'fail');
  // Exactly one lap of the 5-minute ring: the slot that held the failure now holds the present.
  await clock.advance(5 * 60_000);
  let five = (await server.get('/api/dependencies/history?window=5m')).body.dependencies.payments;
  assert.deepEqual(five.calls, Array(60).fill(0));
  assert.deepEqual(five.failures, Array(60).fill(0));
  // A call lands in that same slot: it counts alone.
  await call(server.registry, 'payments', 'ok');
  five = (await server.get('/api/dependencies/history?window=5m')).body.dependencies.payments;
  assert.equal(five.calls.at(-1), 1);
  assert.equal(five.failures.at(-1), 0);
  // The hour's window still shows both, five buckets apart.
  const hour = (await server.get('/api/dependencies/history?window=60m')).body.dependencies.payments;
  assert.deepEqual(hour.calls.slice(-6), [1, 0, 0, 0, 0, 1]);
  // Nothing was timed while idle: the history keeps no timer.
  assert.equal(clock.pendingTimers, 0);
});

test('history: rejections, slow calls and latency percentiles', () => {
  const history = new DependencyHistory();
  const at = T0 + 2_000;
  // 100 calls: 98 of 10 ms, 2 of 900 ms (slow); then 5 rejected and 1 cancelled.
  for (let i = 0; i < 98; i++) history.record('db', at, { outcome: 'success', durationMs: 10, slow: false });
  for (let i = 0; i < 2; i++) history.record('db', at, { outcome: 'timeout', durationMs: 900, slow: true });
  for (let i = 0; i < 5; i++) history.record('db', at, { outcome: 'rejected', durationMs: 0, slow: false });
  history.record('db', at, { outcome: 'cancelled', durationMs: 3, slow: false });
  const { dependencies } = history.read('5m', ['db', 'idle'], at);
  const db = dependencies.db!;
  assert.equal(db.calls.at(-1), 106);
  assert.equal(db.failures.at(-1), 2);
  assert.equal(db.slow.at(-1), 2);
  assert.equal(db.rejected.at(-1), 5);
  // Within a bin's ±20% of the truth, and never above the bucket's slowest call.
  const p50 = db.p50Ms.at(-1)!;
  const p99 = db.p99Ms.at(-1)!;
  assert.ok(p50 >= 8 && p50 <= 12, `p50 ${p50}`);
  assert.ok(p99 >= 720 && p99 <= 900, `p99 ${p99}`);
  assert.deepEqual(dependencies.idle!.calls, Array(60).fill(0));
  assert.deepEqual(dependencies.idle!.p99Ms, Array(60).fill(null));
});

test('history: a call is slow at the breaker’s slow-call threshold, else at 3/4 of the timeout', async (t) => {
  const clock = new VirtualClock(T0);
  const server = await bench({
    clock,
    dependencies: {
      judged: { kind: 'http', retry: false, breaker: { slowCall: { thresholdMs: 200, rate: 0.9 } } },
      timed: { kind: 'cache', timeoutMs: 1_000 },
    },
  });
  t.after(() => server.close());
  const slowCall = async (name: string, ms: number) => {
    const running = server.registry.execute(name, 'op', () => clock.sleep(ms));
    await clock.advance(ms);
    await running;
  };
  await slowCall('judged', 199);
  await slowCall('judged', 200);
  await slowCall('timed', 749);
  await slowCall('timed', 750);
  const { dependencies } = (await server.get('/api/dependencies/history?window=60m')).body;
  assert.equal(dependencies.judged.calls.at(-1), 2);
  assert.equal(dependencies.judged.slow.at(-1), 1);
  assert.equal(dependencies.timed.slow.at(-1), 1);
});

// ---------------------------------------------------------------------------------------------
// Breaker transitions and timed isolation

test('transitions: each with its from, to, time and reason; half-open time while open', async (t) => {
  const clock = new VirtualClock(T0);
  const server = await bench({ clock });
  t.after(() => server.close());
  const payments = async () => (await server.get('/api/dependencies/payments')).body;

  let dep = await payments();
  assert.deepEqual(dep.breaker.transitions, []);
  assert.equal(dep.breaker.since, null);
  assert.equal(dep.breaker.halfOpenAt, null);

  await call(server.registry, 'payments', 'fail');
  await call(server.registry, 'payments', 'fail');
  dep = await payments();
  assert.equal(dep.state, 'open');
  const [opened] = dep.breaker.transitions;
  assert.equal(opened.from, 'closed');
  assert.equal(opened.to, 'open');
  assert.equal(opened.at, T0);
  assert.equal(opened.code, 'consecutive-failures');
  assert.match(opened.reason, /failures in a row.*open for 30s/);
  assert.equal(dep.breaker.since, T0);
  assert.equal(dep.breaker.halfOpenAt, T0 + 30_000);

  await clock.advance(10_000);
  assert.equal((await payments()).breaker.halfOpenAt, T0 + 30_000, 'a fixed time, not a moving countdown');
  await clock.advance(20_000);
  dep = await payments();
  assert.equal(dep.state, 'half-open');
  assert.equal(dep.breaker.halfOpenAt, null);
  assert.deepEqual(
    dep.breaker.transitions.map((x: any) => [x.from, x.to, x.code, x.at]),
    [
      ['closed', 'open', 'consecutive-failures', T0],
      ['open', 'half-open', 'timeout-elapsed', T0 + 30_000],
    ],
  );
  // The probes succeed (the http kind's breaker wants 3).
  for (let i = 0; i < 3; i++) await call(server.registry, 'payments', 'ok');
  dep = await payments();
  assert.deepEqual(dep.breaker.transitions.at(-1), {
    from: 'half-open',
    to: 'closed',
    at: T0 + 30_000,
    reason: 'the probe calls succeeded',
    code: 'probes-succeeded',
  });

  // The list is bounded: the newest 20, newest last.
  for (let i = 0; i < 15; i++) {
    await server.post('/api/dependencies/payments/isolate');
    await server.post('/api/dependencies/payments/reset');
  }
  dep = await payments();
  assert.equal(dep.breaker.transitions.length, MAX_TRANSITIONS);
  assert.deepEqual(dep.breaker.transitions.at(-1), {
    from: 'isolated',
    to: 'closed',
    at: clock.now(),
    reason: 'reset by otto',
    code: 'reset',
  });
  assert.equal(dep.breaker.transitions.at(-2).reason, 'isolated by otto until reset');
});

test('isolate for a while: the breaker closes by itself at the expiry, with an audit entry saying when', async (t) => {
  const clock = new VirtualClock(T0);
  const server = await bench({ clock });
  t.after(() => server.close());

  const isolated = await server.post('/api/dependencies/payments/isolate', { for: '10m' });
  assert.equal(isolated.status, 200);
  assert.equal(isolated.body.state, 'isolated');
  assert.equal(isolated.body.isolatedUntil, T0 + 600_000);
  assert.equal(isolated.body.breaker.isolatedUntil, T0 + 600_000);
  assert.equal(isolated.body.breaker.transitions.at(-1).reason, 'isolated by otto for 10m');
  const [entry] = await server.store.listAudit({ limit: 1 });
  assert.equal(entry?.action, 'dependency.isolate');
  assert.equal(entry?.actor, 'otto');
  assert.deepEqual(entry?.data, { forMs: 600_000, until: T0 + 600_000 });
  assert.equal(clock.pendingTimers, 1, 'one timer while isolated');

  await clock.advance(600_000 - 1);
  assert.equal((await server.get('/api/dependencies/payments')).body.state, 'isolated');
  await clock.advance(1);
  const after = (await server.get('/api/dependencies/payments')).body;
  assert.equal(after.state, 'closed');
  assert.equal(after.breaker.isolatedUntil, null);
  assert.deepEqual(after.breaker.transitions.at(-1), {
    from: 'isolated',
    to: 'closed',
    at: T0 + 600_000,
    reason: 'the isolation expired',
    code: 'isolation-expired',
  });
  assert.equal(clock.pendingTimers, 0, 'no timer once it ended');

  // `forMs` works the same; a reset before the expiry ends the timer with the isolation.
  const second = await server.post('/api/dependencies/payments/isolate', { forMs: 90_000 });
  assert.equal(second.body.isolatedUntil, clock.now() + 90_000);
  await server.post('/api/dependencies/payments/reset');
  assert.equal(clock.pendingTimers, 0);
  await server.post('/api/dependencies/payments/isolate');
  await clock.advance(120_000);
  const held = (await server.get('/api/dependencies/payments')).body;
  assert.equal(held.state, 'isolated', 'an isolation without expiry holds until reset');
  assert.equal(held.breaker.isolatedUntil, null);
  assert.equal(clock.pendingTimers, 0);
});

test('isolate refuses a bad length with a 400 naming the field, and a dependency without a breaker with a 409', async (t) => {
  const server = await bench({ clock: new VirtualClock(T0) });
  t.after(() => server.close());
  const cases: [unknown, string, RegExp][] = [
    [{ for: 'soon' }, '#/body/for', /duration like 200ms/],
    [{ for: '25h' }, '#/body/for', /at most 24h/],
    [{ for: '0s' }, '#/body/for', /longer than 0/],
    [{ for: [] }, '#/body/for', /a list/],
    [{ forMs: -5 }, '#/body/forMs', /longer than 0/],
    [{ for: '1m', forMs: 60_000 }, '#/body/forMs', /either/],
    [{ until: '1m' }, '#/body/until', /not a known field/],
  ];
  for (const [body, pointer, detail] of cases) {
    const r = await server.post('/api/dependencies/payments/isolate', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.code, 'VALIDATION_FAILED');
    assert.equal(r.body.errors[0].pointer, pointer, JSON.stringify(body));
    assert.match(r.body.errors[0].detail, detail, JSON.stringify(body));
  }
  assert.equal((await server.get('/api/dependencies/payments')).body.state, 'closed', 'nothing isolated');
  const cache = await server.post('/api/dependencies/cache/isolate', { for: '1m' });
  assert.equal(cache.status, 409);
  const viewer = await server.app.inject({
    method: 'POST',
    url: '/api/dependencies/payments/isolate',
    headers: as('viewer'),
    payload: { for: '1m' },
  });
  assert.equal(viewer.statusCode, 403);
});

// ---------------------------------------------------------------------------------------------
// Parked runs

const charge = defineWorkflow({ name: 'charge', version: '1' }, async (ctx, input: { order: string }) =>
  ctx.step('charge', { dependency: 'payments' }, () => `charged ${input.order}`),
);

test('parked runs are listed and counted while the breaker is open, and gone once it closes', async (t) => {
  // The real clock: the engine parks each run until the breaker's open time is up (400 ms).
  const server = await bench({
    dependencies: {
      payments: {
        kind: 'http',
        retry: false,
        breaker: {
          window: { kind: 'consecutive', failures: 1 },
          openMs: 400,
          halfOpen: { probes: 1, successes: 1 },
        },
      },
    },
    workflows: [charge],
    worker: true,
  });
  t.after(() => server.close());
  await call(server.registry, 'payments', 'fail');
  assert.equal(server.registry.breaker('payments')?.state, 'open');
  const runs = await Promise.all(['a', 'b'].map((order) => server.engine.start('charge', { order })));

  const deadline = Date.now() + 5_000;
  let parked = (await server.get('/api/dependencies/payments/parked')).body;
  while (parked.total < 2) {
    assert.ok(Date.now() < deadline, `never parked: ${JSON.stringify(parked)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
    parked = (await server.get('/api/dependencies/payments/parked')).body;
  }
  assert.deepEqual(parked.items.map((p: any) => p.runId).sort(), runs.map((r) => r.id).sort());
  for (const item of parked.items) {
    assert.equal(item.workflow, 'charge');
    assert.equal(item.step, 'charge');
    assert.equal(item.policy, 'circuit-breaker');
    assert.equal(item.breaker, 'payments.breaker');
    assert.match(item.reason, /open/);
    assert.ok(item.resumeAt > item.since, 'it resumes after it parked');
  }
  assert.equal((await server.get('/api/dependencies/payments/parked?limit=1')).body.items.length, 1);
  assert.equal((await server.get('/api/dependencies')).body.items[0].parkedRuns, 2);
  assert.equal((await server.get('/api/dependencies/payments')).body.parkedRuns, 2);

  // The open time passes, a probe goes through, the runs complete: nothing is parked.
  for (const run of runs)
    assert.equal(await server.engine.result(run.id), `charged ${run.id === runs[0]!.id ? 'a' : 'b'}`);
  assert.deepEqual((await server.get('/api/dependencies/payments/parked')).body, { items: [], total: 0 });
  assert.equal((await server.get('/api/dependencies/payments')).body.parkedRuns, 0);

  const unknown = await server.get('/api/dependencies/nothing/parked');
  assert.equal(unknown.status, 404);
  const badLimit = await server.get('/api/dependencies/payments/parked?limit=0');
  assert.equal(badLimit.status, 400);
  assert.equal(badLimit.body.errors[0].pointer, '#/query/limit');
});

// ---------------------------------------------------------------------------------------------
// Run search and count

test('runs: q finds by id prefix, correlation id, idempotency key or input value; count agrees', async (t) => {
  const server = await bench();
  t.after(() => server.close());
  const ada = await server.engine.start('greet', { name: 'ada' }, { correlationId: 'order-17' });
  const bob = await server.engine.start('greet', { name: 'bob' }, { idempotencyKey: 'import-5' });
  await server.engine.start('greet', { name: 'cy' });
  const ids = (body: any) => body.items.map((r: any) => r.id);
  const search = async (q: string, more = '') => {
    const list = await server.get(`/api/runs?q=${encodeURIComponent(q)}${more}`);
    const count = await server.get(`/api/runs/count?q=${encodeURIComponent(q)}${more}`);
    assert.equal(list.status, 200, JSON.stringify(list.body));
    assert.equal(count.body.total, list.body.items.length, `count of ${q}`);
    return ids(list.body);
  };

  assert.deepEqual(await search(ada.id), [ada.id]);
  // Ids are UUIDv7: all but their last characters tell ada's apart; their beginning is the
  // time of creation, which the three share.
  assert.deepEqual(await search(ada.id.slice(0, -4)), [ada.id]);
  assert.equal((await search(ada.id.slice(0, 4))).length, 3);
  assert.deepEqual(await search('order-17'), [ada.id]);
  assert.deepEqual(await search('import-5'), [bob.id]);
  assert.deepEqual(await search('input.name=bob'), [bob.id]);
  assert.deepEqual(await search('input.name=nobody'), []);
  assert.deepEqual(await search('input.name=bob', '&status=completed'), []);
  assert.deepEqual(await search('input.name=bob', '&status=queued&workflow=greet'), [bob.id]);

  assert.deepEqual((await server.get('/api/runs/count')).body, { total: 3 });
  assert.deepEqual((await server.get('/api/runs/count?status=queued,running')).body, { total: 3 });
  assert.deepEqual((await server.get('/api/runs/count?workflow=other')).body, { total: 0 });

  for (const q of ['input.', 'input.a..b=1', 'input.name', '   ']) {
    const bad = await server.get(`/api/runs?q=${encodeURIComponent(q)}`);
    assert.equal(bad.status, 400, q);
    assert.equal(bad.body.errors[0].pointer, '#/query/q', q);
    assert.equal((await server.get(`/api/runs/count?q=${encodeURIComponent(q)}`)).status, 400, q);
  }
  assert.equal((await server.get('/api/runs/count?limit=5')).status, 400, 'count takes no paging');
});

// ---------------------------------------------------------------------------------------------
// The system stream

/** Reads an SSE response's frames as they come. */
function frames(body: ReadableStream<Uint8Array>) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const seen: { id?: string; event: string; data: any }[] = [];
  return {
    seen,
    /** Reads until `stop` matches a frame (bounded by the test's own timeout). */
    async until(stop: (frame: { event: string; data: any }) => boolean): Promise<void> {
      for (;;) {
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
          const frame: { id?: string; event: string; data: any } = { event: 'message', data: undefined };
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) frame.id = line.slice(4);
            else if (line.startsWith('event: ')) frame.event = line.slice(7);
            else if (line.startsWith('data: ')) frame.data = JSON.parse(line.slice(6));
          }
          if (frame.data === undefined) continue;
          seen.push(frame);
          if (stop(frame)) return;
        }
        const chunk = await reader.read();
        if (chunk.done) throw new Error(`the stream ended; saw ${seen.map((f) => f.event).join(', ')}`);
        buffer += chunk.value;
      }
    },
  };
}

test('the system stream coalesces a burst of calls into one snapshot per dependency, and carries transitions with reasons', {
  timeout: 20_000,
}, async (t) => {
  const clock = new VirtualClock(T0);
  const server = await bench({ clock });
  t.after(() => server.close());
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.app.server.address() as AddressInfo;
  const abort = new AbortController();
  t.after(() => abort.abort());
  const response = await fetch(`http://127.0.0.1:${port}/api/stream`, {
    headers: as('viewer'),
    signal: abort.signal,
  });
  const stream = frames(response.body!);
  // On connect: where every dependency stands, in the shape of GET /api/dependencies.
  await stream.until((f) => f.event === 'dependency:snapshot' && f.data.name === 'cache');
  const initial = stream.seen.filter((f) => f.event === 'dependency:snapshot');
  assert.deepEqual(initial.map((f) => f.data.name).sort(), ['cache', 'payments']);
  assert.equal(initial[0]!.id, undefined, 'snapshots carry no id: the resume point stays the last event');
  const listed = (await server.get('/api/dependencies')).body.items.find((d: any) => d.name === 'payments');
  assert.deepEqual(initial.find((f) => f.data.name === 'payments')!.data, listed);

  // A burst: 50 calls, then the breaker opens; all within one snapshot interval.
  for (let i = 0; i < 50; i++) await call(server.registry, 'payments', 'ok');
  await call(server.registry, 'payments', 'fail');
  await call(server.registry, 'payments', 'fail');
  await stream.until((f) => f.event === 'breaker:opened');
  const opened = stream.seen.at(-1)!;
  assert.match(opened.id!, /^\d+\.\d+$/);
  assert.equal(opened.data.dependency, 'payments');
  assert.deepEqual(
    { from: opened.data.transition.from, to: opened.data.transition.to, code: opened.data.transition.code },
    { from: 'closed', to: 'open', code: 'consecutive-failures' },
  );
  assert.match(opened.data.transition.reason, /failures in a row/);

  await clock.advance(250);
  await stream.until((f) => f.event === 'dependency:snapshot' && f.data.name === 'payments');
  const after = stream.seen.slice(initial.length).filter((f) => f.event === 'dependency:snapshot');
  assert.equal(after.length, 1, 'one snapshot for the whole burst');
  assert.equal(after[0]!.data.state, 'open', 'the latest state wins');
  assert.equal(after[0]!.data.calls.calls, 52);
  assert.equal(after[0]!.data.breaker.transitions.length, 1);

  // Quiet: no timer runs for snapshots while nothing changes.
  await clock.advance(1_000);
  const quietFrames = stream.seen.length;
  await clock.advance(10_000);
  assert.equal(stream.seen.length, quietFrames);
});

test('app.close() returns promptly with streams open', { timeout: 20_000 }, async (t) => {
  const server = await bench({ worker: true });
  let closed = false;
  t.after(() => (closed ? undefined : server.close()));
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.app.server.address() as AddressInfo;
  const run = await server.engine.start('greet', { name: 'ada', wait: true });
  const streams = await Promise.all(
    ['/api/stream', '/api/stream', `/api/runs/${run.id}/stream`].map((path) =>
      fetch(`http://127.0.0.1:${port}${path}`, { headers: as('viewer') }),
    ),
  );
  for (const s of streams) assert.equal(s.status, 200);
  const started = performance.now();
  await server.app.close();
  const tookMs = performance.now() - started;
  assert.ok(tookMs < 2_000, `close took ${Math.round(tookMs)} ms with three streams open`);
  for (const s of streams) await s.body!.cancel().catch(() => {});
  closed = true;
  await server.engine.stop();
  await server.registry.close();
  await server.store.close();
});
