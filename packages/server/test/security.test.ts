// Security headers, CORS, per-caller rate limits, the body limit and load shedding (event-loop lag
// and draining), through the real server where possible and with a fake lag source where not.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { VirtualClock } from '@bulwark/core';
import Fastify from 'fastify';
import type { ServerContext } from '../src/http/context.ts';
import { installProblemHandlers } from '../src/http/errors.ts';
import { TokenBuckets } from '../src/http/plugins/rate-limit.ts';
import { redactUrl } from '../src/http/plugins/security.ts';
import { type LagSource, shedPlugin } from '../src/http/plugins/shed.ts';
import { normalizeServerSettings } from '../src/http/settings.ts';
import { as, testServer } from './server-support.ts';

const EXPECTED_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

test('every answer carries the security headers, no X-Powered-By and no HSTS over plain http', async () => {
  const server = await testServer();
  try {
    const answers = [
      await server.app.inject({ url: '/api/dependencies', headers: as('viewer') }),
      await server.app.inject({ url: '/api/dependencies' }), // 401
      await server.app.inject({ url: '/api/nothing-here' }), // 404
      await server.app.inject({ url: '/health/live' }),
    ];
    for (const [i, response] of answers.entries()) {
      const probe = i === answers.length - 1;
      for (const [name, value] of Object.entries(EXPECTED_HEADERS)) {
        // The probes' JSON gets the strictest policy: no source of any kind, no framing.
        const expected =
          probe && name === 'content-security-policy' ? "default-src 'none'; frame-ancestors 'none'" : value;
        assert.equal(response.headers[name], expected, `${name} on a ${response.statusCode}`);
      }
      assert.match(String(response.headers['permissions-policy']), /camera=\(\)/);
      assert.equal(response.headers['x-powered-by'], undefined);
      assert.equal(response.headers['strict-transport-security'], undefined);
      assert.equal(response.headers['access-control-allow-origin'], undefined);
    }
  } finally {
    await server.close();
  }
});

test('HSTS is sent when the request came over HTTPS (X-Forwarded-Proto behind a trusted proxy)', async () => {
  const trusted = await testServer({ settings: { trustProxy: true } });
  const untrusted = await testServer();
  try {
    const headers = { 'x-forwarded-proto': 'https' };
    const yes = await trusted.app.inject({ url: '/health/live', headers });
    assert.equal(yes.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    const api = await trusted.app.inject({ url: '/api/dependencies', headers });
    assert.equal(api.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    // Without trustProxy anyone could send the header; it does not count.
    const no = await untrusted.app.inject({ url: '/health/live', headers });
    assert.equal(no.headers['strict-transport-security'], undefined);
  } finally {
    await trusted.close();
    await untrusted.close();
  }
});

test('CORS is off by default: an Origin gets no CORS headers', async () => {
  const server = await testServer();
  try {
    const response = await server.app.inject({
      url: '/api/dependencies',
      headers: { ...as('viewer'), origin: 'https://app.example.com' },
    });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['access-control-allow-origin'], undefined);
  } finally {
    await server.close();
  }
});

test('CORS allows exactly the listed origins, with a preflight answer', async () => {
  const server = await testServer({ settings: { corsOrigins: ['https://app.example.com'] } });
  try {
    const allowed = await server.app.inject({
      url: '/api/dependencies',
      headers: { ...as('viewer'), origin: 'https://app.example.com' },
    });
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.match(String(allowed.headers.vary), /Origin/);
    assert.match(String(allowed.headers['access-control-expose-headers']), /RateLimit/);

    for (const origin of [
      'https://evil.example.com',
      'https://app.example.com.evil.net',
      'http://app.example.com',
    ]) {
      const denied = await server.app.inject({
        url: '/api/dependencies',
        headers: { ...as('viewer'), origin },
      });
      assert.equal(denied.headers['access-control-allow-origin'], undefined, origin);
      assert.match(String(denied.headers.vary), /Origin/);
    }

    const preflight = await server.app.inject({
      method: 'OPTIONS',
      url: '/api/workflows/greet/runs',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, idempotency-key',
      },
    });
    assert.equal(preflight.statusCode, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
    const allowedHeaders = String(preflight.headers['access-control-allow-headers']);
    for (const name of [
      'Authorization',
      'Content-Type',
      'Idempotency-Key',
      'Last-Event-ID',
      // The auth plugin takes a key from X-API-Key as well as from Authorization.
      'X-API-Key',
      'X-Request-Id',
    ]) {
      assert.ok(allowedHeaders.includes(name), name);
    }
    assert.match(String(preflight.headers.vary), /Origin/);

    const foreignPreflight = await server.app.inject({
      method: 'OPTIONS',
      url: '/api/workflows/greet/runs',
      headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' },
    });
    assert.equal(foreignPreflight.headers['access-control-allow-origin'], undefined);
    assert.equal(foreignPreflight.headers['access-control-allow-methods'], undefined);
  } finally {
    await server.close();
  }
});

test('rate limit: burst then 429 with Retry-After and RateLimit headers; refills with the clock', async () => {
  const clock = new VirtualClock(Date.UTC(2025, 0, 1));
  const server = await testServer({ clock, settings: { rateLimit: { perMinute: 60, burst: 3 } } });
  try {
    const call = () => server.app.inject({ url: '/api/dependencies', headers: as('viewer') });
    for (const remaining of [2, 1, 0]) {
      const response = await call();
      assert.equal(response.statusCode, 200);
      assert.equal(response.headers['ratelimit-policy'], '"default";q=3;w=3');
      assert.equal(response.headers.ratelimit, `"default";r=${remaining};t=1`);
    }
    const limited = await call();
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().code, 'RATE_LIMITED');
    assert.match(String(limited.headers['content-type']), /^application\/problem\+json/);
    assert.equal(limited.headers['retry-after'], '1');
    assert.equal(limited.headers.ratelimit, '"default";r=0;t=1');

    // Another key has its own bucket.
    assert.equal(
      (await server.app.inject({ url: '/api/dependencies', headers: as('operator') })).statusCode,
      200,
    );

    await clock.advance(999);
    assert.equal((await call()).statusCode, 429);
    await clock.advance(1);
    assert.equal((await call()).statusCode, 200);
    // A long pause refills to the burst, no further.
    await clock.advance(60_000);
    assert.equal((await call()).headers.ratelimit, '"default";r=2;t=1');
  } finally {
    await server.close();
  }
});

test('rate limit: callers without a key share their IP bucket, and failed attempts count', async () => {
  const clock = new VirtualClock(0);
  const server = await testServer({ clock, settings: { rateLimit: { perMinute: 6, burst: 2 } } });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await server.app.inject({
        url: '/api/dependencies',
        headers: { 'x-api-key': `guess-${i}` },
      });
      statuses.push(response.statusCode);
    }
    assert.deepEqual(statuses, [401, 401, 429]);
    const limited = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: 'guess' },
    });
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.headers['retry-after'], '10');
  } finally {
    await server.close();
  }
});

test('rate limit: probes are exempt', async () => {
  const server = await testServer({ settings: { rateLimit: { perMinute: 1, burst: 1 } } });
  try {
    for (let i = 0; i < 5; i++) {
      const response = await server.app.inject({ url: '/health/live' });
      assert.equal(response.statusCode, 200);
      assert.equal(response.headers.ratelimit, undefined);
    }
  } finally {
    await server.close();
  }
});

test('token buckets forget the least recently seen caller beyond maxKeys', () => {
  const buckets = new TokenBuckets({ perMinute: 60, burst: 1, maxKeys: 3 });
  for (const key of ['a', 'b', 'c']) assert.equal(buckets.take(key, 0).allowed, true);
  assert.equal(buckets.take('a', 0).allowed, false); // a is now the most recent
  assert.equal(buckets.take('d', 0).allowed, true); // evicts b, the least recent
  assert.equal(buckets.size, 3);
  assert.equal(buckets.take('a', 0).allowed, false, 'a was kept: its bucket is still empty');
  assert.equal(buckets.take('b', 0).allowed, true, 'b was forgotten: a fresh bucket');
  assert.equal(buckets.size, 3);
});

test('a body over the limit is refused with 413 PAYLOAD_TOO_LARGE (1 MiB by default, configurable)', async () => {
  const byDefault = await testServer();
  const small = await testServer({ settings: { bodyLimitBytes: 256 } });
  try {
    const big = await byDefault.app.inject({
      method: 'POST',
      url: '/api/session',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ key: 'k'.repeat(1_048_576) }),
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().code, 'PAYLOAD_TOO_LARGE');
    assert.match(String(big.headers['content-type']), /^application\/problem\+json/);

    const fits = await byDefault.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: 'k'.repeat(500) },
    });
    assert.equal(fits.statusCode, 401, 'a 500-byte body is read under the default limit');
    const tooBig = await small.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: 'k'.repeat(500) },
    });
    assert.equal(tooBig.statusCode, 413);
    assert.equal(tooBig.json().code, 'PAYLOAD_TOO_LARGE');
  } finally {
    await byDefault.close();
    await small.close();
  }
});

/** The shed plugin alone on a bare app, with a lag the test sets. */
async function shedApp(state: { lagMs: number; draining: boolean }) {
  const lag: LagSource = { lagMs: () => state.lagMs };
  const context = {
    settings: normalizeServerSettings({ maxEventLoopDelayMs: 200 }),
    draining: () => state.draining,
  } as unknown as ServerContext;
  const app = Fastify();
  installProblemHandlers(app);
  await app.register(shedPlugin, { context, lag });
  app.get('/health/live', async () => ({ status: 'pass' }));
  app.get('/api/things', async () => ({ items: [] }));
  app.post('/api/things', async () => ({ ok: true }));
  await app.ready();
  return app;
}

test('shedding: above maxEventLoopDelayMs requests get 503 OVERLOADED with Retry-After; probes pass', async () => {
  const state = { lagMs: 0, draining: false };
  const app = await shedApp(state);
  try {
    assert.equal((await app.inject({ url: '/api/things' })).statusCode, 200);
    state.lagMs = 200;
    assert.equal((await app.inject({ url: '/api/things' })).statusCode, 200, 'at the limit is not above it');
    state.lagMs = 201;
    const shed = await app.inject({ url: '/api/things' });
    assert.equal(shed.statusCode, 503);
    assert.equal(shed.json().code, 'OVERLOADED');
    assert.equal(shed.headers['retry-after'], '1');
    assert.equal((await app.inject({ url: '/health/live' })).statusCode, 200);
    state.lagMs = 10;
    assert.equal((await app.inject({ url: '/api/things' })).statusCode, 200);
  } finally {
    await app.close();
  }
});

test('shedding: while draining, writes under /api get 503 DRAINING; reads and probes are served', async () => {
  const state = { lagMs: 0, draining: true };
  const app = await shedApp(state);
  try {
    const write = await app.inject({ method: 'POST', url: '/api/things' });
    assert.equal(write.statusCode, 503);
    assert.equal(write.json().code, 'DRAINING');
    assert.ok(Number(write.headers['retry-after']) >= 1);
    assert.equal((await app.inject({ url: '/api/things' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/health/live' })).statusCode, 200);
  } finally {
    await app.close();
  }
});

test('shedding: a drained real server refuses new writes but serves reads', async () => {
  const server = await testServer();
  try {
    server.drain();
    const start = await server.app.inject({
      method: 'POST',
      url: '/api/workflows/greet/runs',
      headers: as('operator'),
      payload: { input: { name: 'x' } },
    });
    assert.equal(start.statusCode, 503);
    assert.equal(start.json().code, 'DRAINING');
    assert.equal(
      (await server.app.inject({ url: '/api/dependencies', headers: as('viewer') })).statusCode,
      200,
    );
  } finally {
    await server.close();
  }
});

test('shedding: a loop that stays busy sheds requests; one stall does not', async () => {
  const server = await testServer({ settings: { maxEventLoopDelayMs: 30 } });
  try {
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const address = server.app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    const url = `http://127.0.0.1:${address.port}/api/dependencies`;
    const headers = as('viewer');
    const busy = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        /* blocking on purpose */
      }
    };
    // Wait (bounded) until the loop is calm: a busy test machine slows it too.
    const calmBy = performance.now() + 8_000;
    let before = 0;
    while (before !== 200 && performance.now() < calmBy) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      before = (await fetch(url, { headers })).status;
    }
    assert.equal(before, 200, 'not shedding before the load');

    // One 300 ms stall: over by the time the next request is read, so it is served.
    busy(300);
    assert.equal((await fetch(url, { headers })).status, 200, 'a single stall sheds nothing');

    // Overload: every turn of the loop takes ~60 ms for over a second.
    let burning = true;
    const burn = () => {
      if (!burning) return;
      busy(60);
      setImmediate(burn);
    };
    burn();
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    const shed = await fetch(url, { headers });
    burning = false;
    assert.equal(shed.status, 503);
    const body = (await shed.json()) as { code: string };
    assert.equal(body.code, 'OVERLOADED');
    assert.equal(shed.headers.get('retry-after'), '1');
    // Probes are never shed: the balancer must still see the instance.
    const probe = await fetch(`http://127.0.0.1:${address.port}/health/live`);
    assert.equal(probe.status, 200);
  } finally {
    await server.close();
  }
});

test('secret query values are redacted from logged URLs', () => {
  assert.equal(redactUrl('/api/runs?key=abc&limit=5'), '/api/runs?key=[redacted]&limit=5');
  assert.equal(redactUrl('/x?limit=5&token=abc'), '/x?limit=5&token=[redacted]');
  assert.equal(redactUrl('/x?monkey=1'), '/x?monkey=1');
  assert.equal(redactUrl('/x'), '/x');
});
