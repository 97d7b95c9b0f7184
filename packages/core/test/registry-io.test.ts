// The registry with real parts: HTTP dependencies against loopback servers that misbehave on
// purpose, compute dependencies on real worker threads, health probes over HTTP.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  DependencyRegistry,
  ErrorCodes,
  HttpStatusError,
  TimeoutError,
  VirtualClock,
  withRequestContext,
} from '@bulwark/core';
import { serve } from './http-server.ts';
import { rejectsWith, track } from './support.ts';

const worker = join(import.meta.dirname, 'fixtures', 'compute-worker.mjs');
const quickRetry = { maxAttempts: 3, baseMs: 1, maxMs: 5 };

describe('registry.fetch', () => {
  test('a 503 with Retry-After is retried through the pipeline, and the call is counted once', async (t) => {
    let hits = 0;
    const server = await serve(t, (_req, res) => {
      hits++;
      if (hits < 3) {
        res.writeHead(503, { 'retry-after': '0' }).end('busy');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":7}');
    });
    const registry = new DependencyRegistry({
      dependencies: { inventory_api: { kind: 'http', retry: quickRetry, http: { baseUrl: server.origin } } },
    });
    t.after(() => registry.close());
    const response = await registry.fetch('inventory_api', '/items/7', { operation: 'get_item' });
    assert.deepEqual(await response.json(), { id: 7 });
    assert.equal(hits, 3);
    const stats = registry.stats('inventory_api');
    assert.equal(stats.operations.get_item?.successes, 1);
    assert.equal(stats.retry?.successfulWithRetry, 1);
  });

  test('a 404 is permanent: not retried, not counted by the breaker', async (t) => {
    const server = await serve(t, (_req, res) => {
      res.writeHead(404).end('no such pet');
    });
    const registry = new DependencyRegistry({
      dependencies: { api: { kind: 'http', retry: quickRetry, http: { baseUrl: server.origin } } },
    });
    t.after(() => registry.close());
    const error = await rejectsWith<HttpStatusError>(registry.fetch('api', '/pets/9'), HttpStatusError, {
      status: 404,
    });
    assert.equal(error.body, 'no such pet');
    assert.equal(server.requests.length, 1);
    assert.equal(registry.stats('api').breaker?.failed, 0);
    assert.equal(registry.stats('api').operations.GET?.failures, 1);
  });

  test('the timeout aborts a request that hangs', async (t) => {
    const server = await serve(t, () => {}); // never answers
    const registry = new DependencyRegistry({
      dependencies: { api: { kind: 'http', retry: false, timeoutMs: 100, http: { baseUrl: server.origin } } },
    });
    t.after(() => registry.close());
    await rejectsWith(registry.fetch('api', '/slow'), TimeoutError);
    assert.equal(registry.stats('api').calls.timeouts, 1);
  });

  test('request id and trace context reach the dependency from the caller’s context', async (t) => {
    const server = await serve(t, (_req, res) => {
      res.end('ok');
    });
    const registry = new DependencyRegistry({
      dependencies: { api: { kind: 'http', http: { baseUrl: server.origin } } },
    });
    t.after(() => registry.close());
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await withRequestContext({ requestId: 'req-42', traceparent }, async () => {
      await (await registry.fetch('api', '/x')).text();
    });
    const headers = server.requests[0]!.headers;
    assert.equal(headers['x-request-id'], 'req-42');
    assert.match(String(headers.traceparent), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  });

  test('a group of http providers: a relative URL goes to each provider’s base URL in turn', async (t) => {
    const down = await serve(t, (_req, res) => {
      res.writeHead(503).end();
    });
    const up = await serve(t, (req, res) => {
      res.end(`served ${req.url}`);
    });
    const provider = (origin: string) => ({
      kind: 'http' as const,
      retry: false as const,
      http: { baseUrl: origin },
    });
    const registry = new DependencyRegistry({
      dependencies: { primary: provider(down.origin), secondary: provider(up.origin) },
      groups: { ai: { providers: ['primary', 'secondary'] } },
    });
    t.after(() => registry.close());
    const response = await registry.fetch('ai', '/v1/complete', { method: 'POST', body: '{}' });
    assert.equal(await response.text(), 'served /v1/complete');
    assert.deepEqual(registry.groupStats('ai').servedBy, { secondary: 1 });
  });

  test('close() forces the client shut after 10 s when a response body is never read', {
    timeout: 10_000,
  }, async (t) => {
    const server = await serve(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part of a body that never ends');
    });
    const clock = new VirtualClock();
    const registry = new DependencyRegistry({
      clock,
      dependencies: {
        api: { kind: 'http', retry: false, timeoutMs: false, http: { baseUrl: server.origin } },
      },
    });
    const response = await registry.fetch('api', '/stream'); // its body is left unread
    const closed = track(registry.close());
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed.status, 'pending', 'a graceful close waits for the unread body');
    await clock.advance(10_000);
    await closed.promise;
    assert.equal(clock.pendingTimers, 0);
    await response.body?.cancel();
  });

  test('fetch on a dependency that is not http fails with the path to fix', async () => {
    const registry = new DependencyRegistry({ dependencies: { db: { kind: 'database' } } });
    await rejectsWith(registry.fetch('db', 'http://127.0.0.1:1/'), Error, {
      code: ErrorCodes.INVALID_OPTIONS,
    });
    await registry.close();
  });

  test('http settings are checked at construction, named by their place', () => {
    assert.throws(
      () =>
        new DependencyRegistry({ dependencies: { api: { kind: 'http', http: { baseUrl: 'not a url' } } } }),
      (e: Error & { path?: string }) => e.path === 'dependencies.api.http.baseUrl',
    );
  });

  test('an active health probe GETs the path on the dependency’s base URL, outside its pipeline', async (t) => {
    let healthy = true;
    const server = await serve(t, (req, res) => {
      if (req.url === '/health') res.writeHead(healthy ? 200 : 503).end();
      else res.writeHead(404).end();
    });
    const registry = new DependencyRegistry({
      dependencies: {
        payments: {
          kind: 'http',
          critical: true,
          http: { baseUrl: server.origin },
          health: { path: '/health', intervalMs: 1 },
        },
      },
    });
    t.after(() => registry.close());
    assert.equal((await registry.health.report()).status, 'pass');
    healthy = false;
    await new Promise((r) => setTimeout(r, 5));
    const report = await registry.health.report();
    assert.equal(report.status, 'fail');
    assert.equal(report.checks['payments:responseTime']?.[0]?.status, 'fail');
    assert.equal(registry.stats('payments').calls.calls, 0);
  });
});

describe('registry.run (compute dependencies)', () => {
  test('runs a task of the worker module through the dependency’s pipeline', async (t) => {
    const registry = new DependencyRegistry({
      dependencies: { ml_advisor: { kind: 'compute', pool: { module: worker, size: 2 } } },
    });
    t.after(() => registry.close());
    assert.equal(await registry.run('ml_advisor', 'add', { a: 2, b: 3 }), 5);
    assert.equal(registry.stats('ml_advisor').operations.add?.successes, 1);
    assert.equal((registry.stats('ml_advisor').pool as { completed: number }).completed, 1);
  });

  test('the dependency’s timeout terminates a runaway task’s worker', async (t) => {
    const registry = new DependencyRegistry({
      dependencies: {
        ml_advisor: {
          kind: 'compute',
          timeoutMs: 200,
          // A fresh worker thread takes a while to boot on a busy machine.
          operations: { add: { timeoutMs: 10_000 } },
          pool: { module: worker, size: 1 },
        },
      },
    });
    t.after(() => registry.close());
    const state = new SharedArrayBuffer(8);
    await rejectsWith(registry.run('ml_advisor', 'runaway', state), TimeoutError);
    // Termination follows the timeout by a moment: wait for the count to stop, then see it stay stopped.
    const counter = new Int32Array(state);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    let last = -1;
    for (let i = 0; i < 40 && Atomics.load(counter, 1) !== last; i++) {
      last = Atomics.load(counter, 1);
      await sleep(50);
    }
    await sleep(100);
    assert.equal(Atomics.load(counter, 1), last, 'the runaway thread is still counting');
    assert.equal(await registry.run('ml_advisor', 'add', { a: 1, b: 1 }), 2);
  });

  test('pool settings are checked at construction, named by their place', () => {
    assert.throws(
      () =>
        new DependencyRegistry({
          dependencies: { ml: { kind: 'compute', pool: { module: worker, size: 0 } } },
        }),
      (e: Error & { path?: string }) => e.path === 'dependencies.ml.pool.size',
    );
  });
});
