// GET /metrics through the public surface: every family in valid Prometheus text (checked by
// promtool), label values that follow the registry and the engine, and who may read it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type DependencyOptions, DependencyRegistry, VirtualClock } from '@bulwark/core';
import { defineWorkflow, type WorkflowEngine, type WorkflowStore } from '@bulwark/workflow';
import { ServerMetrics } from '../src/http/plugins/metrics-registry.ts';
import { as, greet, type TestServer, testServer } from './server-support.ts';

const PROMTOOL = '/usr/bin/promtool';

const failing = () => Promise.reject(new Error('card processor down'));

const dependencies: Record<string, DependencyOptions> = {
  payments: {
    kind: 'generic',
    retry: { maxAttempts: 2, backoff: 'constant', baseMs: 1 },
    breaker: { window: { kind: 'consecutive', failures: 2 }, openMs: 600_000 },
    bulkhead: { maxConcurrent: 5, maxQueue: 0 },
    rateLimit: { tokenBucket: { tokens: 100, perMs: 3_600_000 } },
  },
  ledger: { kind: 'generic', breaker: { window: { kind: 'consecutive', failures: 5 } } },
  cache: { kind: 'cache' },
};

/** Fails at once (no step retries) when asked to. */
const pay = defineWorkflow({ name: 'pay' }, async (ctx, input: { fail: boolean }) => {
  await ctx.step('reserve', () => 'reserved');
  await ctx.step('charge', { retry: false }, () => {
    if (input.fail) throw new Error('declined');
    return 'charged';
  });
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of the exposition text (enough of the format for label values written by prom-client). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value),
  );
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const found = find(samples, name, labels);
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await done())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function scrape(server: TestServer): Promise<{ text: string; samples: Sample[] }> {
  const response = await server.app.inject({ url: '/metrics', headers: as('viewer') });
  assert.equal(response.statusCode, 200, response.body);
  assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: response.body, samples: parse(response.body) };
}

describe('with calls, an open breaker and finished runs', () => {
  let server: TestServer;
  let text: string;
  let samples: Sample[];

  before(async () => {
    server = await testServer({ dependencies, workflows: [greet, pay] });
    const { registry, engine } = server;
    await registry.execute('payments', 'charge', () => 'ok');
    await registry.execute('ledger', 'post', () => 'ok');
    // Two attempts, two failures in a row: the breaker opens; the next call is refused.
    await assert.rejects(registry.execute('payments', 'charge', failing));
    await assert.rejects(registry.execute('payments', 'charge', () => 'never runs'));
    const completed = await engine.start('pay', { fail: false });
    const failed = await engine.start('pay', { fail: true });
    await engine.result(completed.id);
    await assert.rejects(engine.result(failed.id));
    const waiting = await engine.start('greet', { name: 'cy', wait: true });
    await until(async () => (await engine.getRun(waiting.id))?.status === 'waiting', 'a waiting run');
    await server.app.inject({ url: '/api/dependencies/payments', headers: as('viewer') });
    await server.app.inject({ url: '/no/such/route/123' });
    ({ text, samples } = await scrape(server));
  });
  after(() => server?.close());

  test('promtool check metrics accepts the output', (t) => {
    if (!existsSync(PROMTOOL)) {
      const message = `${PROMTOOL} not found (Debian package "prometheus"): the exposition format is not checked`;
      if (process.env.CI === 'true') assert.fail(message);
      t.skip(message);
      return;
    }
    const result = spawnSync(PROMTOOL, ['check', 'metrics'], {
      input: text,
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(result.status, 0, `promtool: ${result.stdout}${result.stderr}`);
  });

  test('every family is there', () => {
    for (const family of [
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
      'http_server_request_duration_seconds_bucket',
      'bulwark_circuitbreaker_state',
      'bulwark_circuitbreaker_calls_total',
      'bulwark_retry_calls_total',
      'bulwark_bulkhead_available_concurrent_calls',
      'bulwark_ratelimiter_available_permits',
      'bulwark_dependency_call_duration_seconds_bucket',
      'bulwark_workflow_runs_total',
      'bulwark_workflow_active_runs',
      'bulwark_workflow_oldest_active_run_age_seconds',
      'bulwark_workflow_step_duration_seconds_bucket',
    ]) {
      assert.ok(find(samples, family).length > 0, `no ${family} sample`);
    }
  });

  test('the breaker state gauge is 1 for the current state only', () => {
    const state = (name: string, s: string) =>
      value(samples, 'bulwark_circuitbreaker_state', { name, state: s });
    assert.deepEqual(
      ['closed', 'open', 'half_open', 'isolated'].map((s) => state('payments', s)),
      [0, 1, 0, 0],
    );
    assert.deepEqual(
      ['closed', 'open', 'half_open', 'isolated'].map((s) => state('ledger', s)),
      [1, 0, 0, 0],
    );
    // The cache has no breaker: no series rather than a made-up state.
    assert.equal(find(samples, 'bulwark_circuitbreaker_state', { name: 'cache' }).length, 0);
  });

  test('breaker and retry counters come from the policies statistics', () => {
    const calls = (kind: string) =>
      value(samples, 'bulwark_circuitbreaker_calls_total', { name: 'payments', kind });
    assert.equal(calls('successful'), 1);
    assert.equal(calls('failed'), 2);
    assert.equal(calls('not_permitted'), 1);
    assert.equal(calls('ignored'), 0);
    const retries = (kind: string) => value(samples, 'bulwark_retry_calls_total', { name: 'payments', kind });
    assert.equal(retries('successful_without_retry'), 1);
    assert.equal(retries('failed_with_retry'), 1);
    assert.equal(retries('successful_with_retry'), 0);
  });

  test('bulkhead and rate limiter gauges show what is free now', () => {
    assert.equal(value(samples, 'bulwark_bulkhead_available_concurrent_calls', { name: 'payments' }), 5);
    assert.equal(value(samples, 'bulwark_bulkhead_available_concurrent_calls', { name: 'cache' }), 100);
    const permits = value(samples, 'bulwark_ratelimiter_available_permits', { name: 'payments' });
    // Each attempt takes a permit (one success, two failed attempts); the call the open breaker
    // refused never reached the limiter.
    assert.equal(permits, 97);
  });

  test('dependency calls are observed by outcome', () => {
    const count = (name: string, outcome: string) =>
      value(samples, 'bulwark_dependency_call_duration_seconds_count', { name, outcome });
    assert.equal(count('payments', 'success'), 1);
    assert.equal(count('payments', 'failure'), 1);
    assert.equal(count('payments', 'rejected'), 1);
    assert.equal(count('ledger', 'success'), 1);
  });

  test('runs and steps are counted by workflow and status', () => {
    const runs = (workflow: string, status: string) =>
      value(samples, 'bulwark_workflow_runs_total', { workflow, status });
    assert.equal(runs('pay', 'completed'), 1);
    assert.equal(runs('pay', 'failed'), 1);
    // Registered workflows have their final statuses at 0 before the first run ends so.
    assert.equal(runs('pay', 'cancelled'), 0);
    assert.equal(runs('greet', 'completed'), 0);
    assert.equal(value(samples, 'bulwark_workflow_active_runs', { workflow: 'greet' }), 1);
    assert.equal(value(samples, 'bulwark_workflow_active_runs', { workflow: 'pay' }), 0);
    const steps = (workflow: string, step: string, status: string) =>
      value(samples, 'bulwark_workflow_step_duration_seconds_count', { workflow, step, status });
    assert.equal(steps('pay', 'reserve', 'completed'), 2);
    assert.equal(steps('pay', 'charge', 'completed'), 1);
    assert.equal(steps('pay', 'charge', 'failed'), 1);
    assert.equal(steps('greet', 'hello', 'completed'), 1);
  });

  test('the HTTP histogram is labelled by route template, never by id', () => {
    const http = find(samples, 'http_server_request_duration_seconds_count');
    assert.equal(
      value(samples, 'http_server_request_duration_seconds_count', {
        method: 'GET',
        route: '/api/dependencies/:name',
        status_code: '200',
      }),
      1,
    );
    assert.equal(
      value(samples, 'http_server_request_duration_seconds_count', {
        method: 'GET',
        route: 'unmatched',
        status_code: '404',
      }),
      1,
    );
    for (const s of http) {
      assert.ok(!/payments|123/.test(s.labels.route ?? ''), `an id became a route label: ${s.labels.route}`);
    }
  });
});

test('a dependency removed by a reload disappears at the next scrape', async () => {
  const server = await testServer({ dependencies });
  try {
    await server.registry.execute('ledger', 'post', () => 'ok');
    const before = (await scrape(server)).samples;
    assert.ok(find(before, 'bulwark_circuitbreaker_state', { name: 'ledger' }).length > 0);
    assert.ok(find(before, 'bulwark_dependency_call_duration_seconds_count', { name: 'ledger' }).length > 0);

    const { ledger: _removed, ...rest } = dependencies;
    server.registry.configure({ dependencies: { ...rest, audit: { kind: 'database' } } });
    const { samples: afterReload } = await scrape(server);
    for (const s of afterReload) assert.notEqual(s.labels.name, 'ledger', `${s.name} still has ledger`);
    assert.equal(value(afterReload, 'bulwark_bulkhead_available_concurrent_calls', { name: 'audit' }), 10);
    assert.equal(value(afterReload, 'bulwark_circuitbreaker_state', { name: 'audit', state: 'closed' }), 1);
  } finally {
    await server.close();
  }
});

describe('run gauges read from the store', () => {
  const rows = [
    { workflow: 'greet', status: 'waiting', count: 2, oldestCreatedAt: 1_000 },
    { workflow: 'greet', status: 'queued', count: 1, oldestCreatedAt: 4_000 },
    { workflow: 'greet', status: 'completed', count: 7, oldestCreatedAt: 0 },
    { workflow: 'pay', status: 'failed', count: 1, oldestCreatedAt: 0 },
  ] as const;

  function setup(countRuns: () => Promise<readonly unknown[]>) {
    const clock = new VirtualClock(10_000);
    const errors: unknown[] = [];
    let reads = 0;
    const metrics = new ServerMetrics({
      registry: new DependencyRegistry({ dependencies: {} }),
      engine: { on: () => () => {}, definitions: () => [{ name: 'refund' }] } as unknown as WorkflowEngine,
      store: {
        countRuns: () => {
          reads++;
          return countRuns();
        },
      } as unknown as WorkflowStore,
      clock,
      onError: (error) => errors.push(error),
    });
    return { clock, errors, metrics, reads: () => reads };
  }

  test('active runs and the oldest age by workflow, one store read per second', async () => {
    const { clock, metrics, reads } = setup(async () => rows);
    let samples = parse(await metrics.render());
    assert.equal(value(samples, 'bulwark_workflow_active_runs', { workflow: 'greet' }), 3);
    assert.equal(value(samples, 'bulwark_workflow_active_runs', { workflow: 'pay' }), 0);
    // Registered but never run: still a series, at 0.
    assert.equal(value(samples, 'bulwark_workflow_active_runs', { workflow: 'refund' }), 0);
    assert.equal(value(samples, 'bulwark_workflow_oldest_active_run_age_seconds', { workflow: 'greet' }), 9);
    assert.equal(value(samples, 'bulwark_workflow_oldest_active_run_age_seconds', { workflow: 'pay' }), 0);
    assert.equal(reads(), 1);

    await Promise.all([metrics.render(), metrics.render()]);
    await clock.advance(999);
    await metrics.render();
    assert.equal(reads(), 1, 'a scrape storm within a second reads the store once');
    await clock.advance(1);
    samples = parse(await metrics.render());
    assert.equal(reads(), 2);
    assert.equal(value(samples, 'bulwark_workflow_oldest_active_run_age_seconds', { workflow: 'greet' }), 10);
    metrics.close();
  });

  test('active runs of unknown age get no age series rather than 0', async () => {
    const { metrics } = setup(async () => [{ workflow: 'greet', status: 'running', count: 1 }]);
    const samples = parse(await metrics.render());
    assert.equal(value(samples, 'bulwark_workflow_active_runs', { workflow: 'greet' }), 1);
    assert.equal(
      value(samples, 'bulwark_workflow_oldest_active_run_age_seconds', { workflow: 'greet' }),
      undefined,
    );
    assert.equal(value(samples, 'bulwark_workflow_oldest_active_run_age_seconds', { workflow: 'refund' }), 0);
    metrics.close();
  });

  test('a store that does not answer leaves the run gauges out of the scrape', async () => {
    const { errors, metrics } = setup(() => Promise.reject(new Error('database is locked')));
    const samples = parse(await metrics.render());
    assert.equal(find(samples, 'bulwark_workflow_active_runs').length, 0);
    assert.equal(find(samples, 'bulwark_workflow_oldest_active_run_age_seconds').length, 0);
    assert.ok(find(samples, 'process_cpu_seconds_total').length > 0, 'the rest of the scrape is served');
    assert.equal(errors.length, 1);
    metrics.close();
  });
});

describe('access', () => {
  let server: TestServer;
  before(async () => {
    server = await testServer();
  });
  after(() => server?.close());

  test('/metrics needs a key by default', async () => {
    const anonymous = await server.app.inject({ url: '/metrics' });
    assert.equal(anonymous.statusCode, 401);
    assert.equal(anonymous.json().code, 'UNAUTHORIZED');
    const viewer = await server.app.inject({ url: '/metrics', headers: as('viewer') });
    assert.equal(viewer.statusCode, 200);
  });

  test('/metrics is open with metricsPublic', async () => {
    const open = await testServer({ settings: { metricsPublic: true } });
    try {
      const response = await open.app.inject({ url: '/metrics' });
      assert.equal(response.statusCode, 200);
      assert.match(response.body, /^# HELP /m);
    } finally {
      await open.close();
    }
  });
});
