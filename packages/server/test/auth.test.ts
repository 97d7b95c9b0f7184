// Authentication and authorization: keys and roles on every route, the dashboard session and its
// CSRF rule, the generated admin key and the listen check, and secrets kept out of the log.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { VirtualClock } from '@bulwark/core';
import Fastify from 'fastify';
import { WebSocket } from 'ws';
import type { ServerContext } from '../src/http/context.ts';
import { installProblemHandlers } from '../src/http/errors.ts';
import { checkListenAddress, ensureAdminKey, loginUrl } from '../src/http/keys.ts';
import { authPlugin, KeyRing, routeTable, SESSION_COOKIE, SessionStore } from '../src/http/plugins/auth.ts';
import { normalizeServerSettings } from '../src/http/settings.ts';
import { ADMIN_KEY, as, OPERATOR_KEY, type TestServer, testServer, VIEWER_KEY } from './server-support.ts';

type Who = 'none' | 'viewer' | 'operator' | 'admin';
const RANK = { none: 0, viewer: 1, operator: 2, admin: 3, public: 0 } as const;

function headersFor(who: Who): Record<string, string> {
  return who === 'none' ? {} : as(who);
}

test('every registered route answers 401/403/allowed by role, and never 500', async () => {
  // No rate limit: a 429 would hide what this test checks.
  const server = await testServer({ settings: { rateLimit: false } });
  try {
    const routes = routeTable(server.app);
    // The table must hold the whole API, not only this plugin's routes.
    for (const expected of ['GET /health/live', 'POST /api/session', 'GET /api/dependencies/:name']) {
      assert.ok(
        routes.some((r) => `${r.method} ${r.url}` === expected),
        `${expected} missing from the route table`,
      );
    }
    const failures: string[] = [];
    for (const route of routes) {
      const url = route.url.replace(/:\w+/g, 'dummy-id').replace(/\*/g, 'dummy');
      for (const who of ['none', 'viewer', 'operator', 'admin'] as const) {
        const response = await server.app.inject({
          method: route.method as 'GET',
          url,
          headers: headersFor(who),
          // Streams (SSE) answer their headers and stay open: read the status, then let go.
          payloadAsStream: true,
          ...(route.method === 'GET' || route.method === 'HEAD' ? {} : { payload: {} }),
        });
        response.stream().destroy();
        const status = response.statusCode;
        const expected =
          route.access === 'public' || RANK[who] >= RANK[route.access]
            ? 'allowed'
            : who === 'none'
              ? 401
              : 403;
        const ok =
          expected === 'allowed' ? status !== 401 && status !== 403 && status < 500 : status === expected;
        if (!ok) failures.push(`${route.method} ${route.url} as ${who}: ${status}, expected ${expected}`);
      }
    }
    assert.deepEqual(failures, []);
  } finally {
    await server.close();
  }
});

test('a route that declares no access needs admin; a public route still knows a valid caller', async () => {
  const context = {
    settings: normalizeServerSettings({
      apiKeys: [
        { name: 'ada', role: 'admin', secret: ADMIN_KEY },
        { name: 'otto', role: 'operator', secret: OPERATOR_KEY },
      ],
    }),
    clock: new VirtualClock(0),
  } as unknown as ServerContext;
  const app = Fastify();
  installProblemHandlers(app);
  app.decorateRequest('principal', undefined);
  await app.register(authPlugin, { context });
  app.get('/undeclared', async () => ({ ok: true }));
  app.get('/open', { config: { access: 'public' } }, async (request) => ({
    principal: request.principal ?? null,
  }));
  await app.ready();
  try {
    assert.deepEqual(
      routeTable(app).filter((r) => r.method === 'GET'),
      [
        { method: 'GET', url: '/undeclared', access: 'admin' },
        { method: 'GET', url: '/open', access: 'public' },
      ],
    );
    const operator = await app.inject({ url: '/undeclared', headers: as('operator') });
    assert.equal(operator.statusCode, 403);
    assert.equal((await app.inject({ url: '/undeclared', headers: as('admin') })).statusCode, 200);
    const known = await app.inject({ url: '/open', headers: as('operator') });
    assert.deepEqual(known.json(), { principal: { name: 'otto', role: 'operator' } });
    const anonymous = await app.inject({ url: '/open' });
    assert.deepEqual(anonymous.json(), { principal: null });
  } finally {
    await app.close();
  }
});

describe('with one default server', () => {
  let server: TestServer | undefined;
  const shared = (): TestServer => {
    assert.ok(server, 'the shared server is not up');
    return server;
  };
  before(async () => {
    server = await testServer();
  });
  after(async () => {
    await server?.close();
  });

  test('a missing or unknown key gets a 401 problem with WWW-Authenticate: Bearer', async () => {
    const server = shared();
    for (const headers of [
      {},
      { authorization: 'Bearer not-a-key-0123456789abcdef' },
      { 'x-api-key': 'nope' },
    ]) {
      const response = await server.app.inject({ method: 'GET', url: '/api/dependencies', headers });
      assert.equal(response.statusCode, 401);
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      assert.match(String(response.headers['www-authenticate']), /^Bearer/);
      const body = response.json();
      assert.equal(body.code, 'UNAUTHORIZED');
      assert.equal(body.status, 401);
      assert.equal(typeof body.requestId, 'string');
    }
  });

  test('a key is accepted as Authorization: Bearer or as X-API-Key', async () => {
    const server = shared();
    const bearer = await server.app.inject({ method: 'GET', url: '/api/session', headers: as('operator') });
    assert.equal(bearer.statusCode, 200);
    // A key is no session: nothing expires.
    assert.deepEqual(bearer.json(), { name: 'otto', role: 'operator', expiresAt: null });
    const header = await server.app.inject({
      method: 'GET',
      url: '/api/session',
      headers: { 'x-api-key': VIEWER_KEY },
    });
    assert.deepEqual(header.json(), { name: 'vera', role: 'viewer', expiresAt: null });
  });

  test('a role too low gets 403, and a denied write is audited', async () => {
    const server = shared();
    const response = await server.app.inject({
      method: 'POST',
      url: '/api/dependencies/payments/isolate',
      headers: as('viewer'),
    });
    assert.equal(response.statusCode, 403);
    assert.equal(response.json().code, 'FORBIDDEN');
    const requestId = response.json().requestId;
    const denied = (await server.context.store.listAudit()).find((e) => e.requestId === requestId);
    assert.ok(denied, 'the refusal is not in the audit log');
    assert.equal(denied.outcome, 'denied');
    assert.equal(denied.actor, 'vera');
    assert.equal(denied.role, 'viewer');
    assert.equal(denied.target, '/api/dependencies/payments/isolate');
    // A denied read is not an action: it is not audited.
    const read = await server.app.inject({ method: 'GET', url: '/api/audit', headers: as('operator') });
    assert.equal(read.statusCode, 403);
    const readId = read.json().requestId;
    assert.ok(!(await server.context.store.listAudit()).some((e) => e.requestId === readId));
  });

  test('an unknown route is 404 for everyone, not 401', async () => {
    const server = shared();
    const response = await server.app.inject({ method: 'GET', url: '/api/no-such-thing' });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().code, 'NOT_FOUND');
  });

  test('probes need no key, and an invalid key does not fail them', async () => {
    const server = shared();
    for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
      const response = await server.app.inject({ method: 'GET', url: '/health/live', headers });
      assert.equal(response.statusCode, 200);
    }
  });

  test('a wrong key gets no session', async () => {
    const server = shared();
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: `${OPERATOR_KEY.slice(0, -1)}?` },
    });
    assert.equal(login.statusCode, 401);
    assert.equal(login.json().code, 'UNAUTHORIZED');
    assert.equal(login.headers['set-cookie'], undefined);
  });

  test('CSRF: a cookie-authenticated write must carry the server origin; header keys are exempt', async () => {
    const server = shared();
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: OPERATOR_KEY },
    });
    const cookie = cookieFrom(login.headers['set-cookie']);
    const isolate = (headers: Record<string, string>) =>
      server.app.inject({ method: 'POST', url: '/api/dependencies/payments/isolate', headers });

    const missing = await isolate({ cookie });
    assert.equal(missing.statusCode, 403);
    assert.equal(missing.json().code, 'FORBIDDEN');
    const foreign = await isolate({ cookie, origin: 'https://evil.example' });
    assert.equal(foreign.statusCode, 403);
    // inject's Host is localhost:80.
    const same = await isolate({ cookie, origin: 'http://localhost:80' });
    assert.equal(same.statusCode, 200);
    // A key in a header cannot be sent by another site's form: no Origin needed.
    assert.equal((await isolate(as('operator'))).statusCode, 200);
    // Reads with the cookie need no Origin.
    const read = await server.app.inject({ method: 'GET', url: '/api/dependencies', headers: { cookie } });
    assert.equal(read.statusCode, 200);
    // A login posted from another site is refused too.
    const foreignLogin = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      headers: { origin: 'https://evil.example' },
      payload: { key: OPERATOR_KEY },
    });
    assert.equal(foreignLogin.statusCode, 403);
  });
});

test('CSRF: a WebSocket opened with the session cookie must come from the server origin', async () => {
  const server = await testServer({ settings: { rateLimit: false } });
  try {
    const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
    const login = await fetch(`${base}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: base },
      body: JSON.stringify({ key: VIEWER_KEY }),
    });
    const cookie = cookieFrom(login.headers.get('set-cookie') ?? undefined);
    const { id } = await server.engine.start('greet', { name: 'ws', wait: true });
    const open = (origin: string) => {
      const socket = new WebSocket(`${base.replace('http', 'ws')}/api/runs/${id}/ws`, {
        headers: { cookie, origin },
      });
      socket.on('error', () => {});
      return new Promise<number>((resolve) => {
        socket.once('open', () => {
          socket.terminate();
          resolve(101);
        });
        socket.once('unexpected-response', (_request, response) => {
          socket.terminate();
          resolve(response.statusCode ?? 0);
        });
      });
    };
    assert.equal(await open('https://evil.example'), 403);
    assert.equal(await open(base), 101);
  } finally {
    await server.close();
  }
});

test('the key ring compares equal-length wrong keys as unknown and checks every key', () => {
  let comparisons = 0;
  const ring = new KeyRing(
    [
      { name: 'ada', role: 'admin', secret: ADMIN_KEY },
      { name: 'otto', role: 'operator', secret: OPERATOR_KEY },
      { name: 'vera', role: 'viewer', secret: VIEWER_KEY },
    ],
    (a, b) => {
      comparisons++;
      assert.equal(a.length, b.length, 'digests of equal length, so the length leaks nothing');
      return a.equals(b);
    },
  );
  assert.deepEqual(ring.find(ADMIN_KEY), { name: 'ada', role: 'admin' });
  // The match is the first key, yet all three were compared: no early exit.
  assert.equal(comparisons, 3);
  const last = ADMIN_KEY.at(-1) === 'x' ? 'y' : 'x';
  for (const wrong of [
    `${ADMIN_KEY.slice(0, -1)}${last}`,
    `X${ADMIN_KEY.slice(1)}`,
    ADMIN_KEY.slice(0, -1),
    `${ADMIN_KEY}x`,
    '',
  ]) {
    assert.equal(ring.find(wrong), undefined, wrong);
  }
  // The real compare: node's timingSafeEqual over the digests.
  const real = new KeyRing([{ name: 'vera', role: 'viewer', secret: VIEWER_KEY }]);
  assert.equal(real.find(`${VIEWER_KEY.slice(0, -1)}!`), undefined);
  assert.equal(real.find(VIEWER_KEY)?.name, 'vera');
});

function cookieFrom(setCookie: string | string[] | undefined): string {
  const header = [setCookie ?? []].flat()[0] ?? '';
  const pair = header.split(';')[0] ?? '';
  assert.ok(pair.startsWith(`${SESSION_COOKIE}=`), `no session cookie in ${header}`);
  return pair;
}

test('POST /api/session trades a key for an HttpOnly SameSite=Strict cookie that authenticates', async () => {
  const server = await testServer();
  try {
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: OPERATOR_KEY },
    });
    assert.equal(login.statusCode, 204);
    const setCookie = String(login.headers['set-cookie']);
    assert.match(setCookie, /^bulwark_session=[\w-]{43}; /);
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Strict/);
    assert.match(setCookie, /; Path=\//);
    assert.doesNotMatch(setCookie, /Secure/, 'plain http: a Secure cookie would never come back');
    assert.doesNotMatch(setCookie, /Max-Age|Expires/i, 'the server ends the session, not a fixed cookie age');
    const cookie = cookieFrom(login.headers['set-cookie']);
    const me = await server.app.inject({ method: 'GET', url: '/api/session', headers: { cookie } });
    const { expiresAt, ...who } = me.json();
    assert.deepEqual(who, { name: 'otto', role: 'operator' });
    assert.equal(typeof expiresAt, 'number');
    const read = await server.app.inject({ method: 'GET', url: '/api/dependencies', headers: { cookie } });
    assert.equal(read.statusCode, 200);

    const logout = await server.app.inject({
      method: 'DELETE',
      url: '/api/session',
      headers: { cookie, origin: 'http://localhost:80' },
    });
    assert.equal(logout.statusCode, 204);
    assert.match(
      String(logout.headers['set-cookie']),
      /^bulwark_session=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0$/,
    );
    const after = await server.app.inject({ method: 'GET', url: '/api/session', headers: { cookie } });
    assert.equal(after.statusCode, 401);
  } finally {
    await server.close();
  }
});

test('the session cookie is Secure behind an HTTPS proxy', async () => {
  const server = await testServer({ settings: { trustProxy: true } });
  try {
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      headers: { 'x-forwarded-proto': 'https' },
      payload: { key: VIEWER_KEY },
    });
    assert.equal(login.statusCode, 204);
    assert.match(String(login.headers['set-cookie']), /; Secure/);
    // Logging out clears it with the same attributes, Secure included.
    const logout = await server.app.inject({
      method: 'DELETE',
      url: '/api/session',
      headers: {
        'x-forwarded-proto': 'https',
        cookie: cookieFrom(login.headers['set-cookie']),
        origin: 'https://localhost:80',
      },
    });
    assert.equal(logout.statusCode, 204);
    assert.match(String(logout.headers['set-cookie']), /; Secure; Max-Age=0$/);
  } finally {
    await server.close();
  }
});

test('the session cookie is not Secure over plain http even when the server trusts a proxy', async () => {
  const server = await testServer({ settings: { trustProxy: true } });
  try {
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: VIEWER_KEY },
    });
    assert.equal(login.statusCode, 204);
    assert.doesNotMatch(String(login.headers['set-cookie']), /Secure/);
  } finally {
    await server.close();
  }
});

test('a session left unused for 2 hours ends; each use moves its end on', async () => {
  const clock = new VirtualClock(Date.UTC(2025, 0, 1));
  const server = await testServer({ clock });
  const hour = 60 * 60 * 1000;
  try {
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: VIEWER_KEY },
    });
    const cookie = cookieFrom(login.headers['set-cookie']);
    const me = async () => server.app.inject({ url: '/api/session', headers: { cookie } });
    // Used every 1h59m for 6 hours: never idle for 2 hours, so still signed in.
    for (let i = 0; i < 3; i++) {
      await clock.advance(2 * hour - 60_000);
      const response = await me();
      assert.equal(response.statusCode, 200, `use ${i + 1}`);
      assert.equal(response.json().expiresAt, clock.now() + 2 * hour, 'the end moves with each use');
    }
    await clock.advance(2 * hour - 1);
    assert.equal((await me()).statusCode, 200);
    await clock.advance(2 * hour);
    const expired = await me();
    assert.equal(expired.statusCode, 401);
    assert.equal(expired.json().code, 'UNAUTHORIZED');
  } finally {
    await server.close();
  }
});

test('a session ends 12 hours after sign-in however much it is used', async () => {
  const clock = new VirtualClock(Date.UTC(2025, 0, 1));
  const server = await testServer({ clock });
  try {
    const start = clock.now();
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: VIEWER_KEY },
    });
    const cookie = cookieFrom(login.headers['set-cookie']);
    const me = async () => server.app.inject({ url: '/api/session', headers: { cookie } });
    for (let hours = 1; hours < 12; hours++) {
      await clock.advance(60 * 60 * 1000);
      assert.equal((await me()).statusCode, 200, `after ${hours}h`);
    }
    await clock.advance(60 * 60 * 1000 - 1);
    const last = await me();
    assert.equal(last.json().expiresAt, start + 12 * 60 * 60 * 1000, 'capped at sign-in + 12h');
    await clock.advance(1);
    assert.equal((await me()).statusCode, 401);
  } finally {
    await server.close();
  }
});

test('the session store is capped: expired sessions go first, then the oldest', () => {
  const sessions = new SessionStore(1_000, 2);
  const vera = { name: 'vera', role: 'viewer' as const };
  const a = sessions.create(vera, 0);
  const b = sessions.create(vera, 500);
  // At t=1000 a has expired: it is pruned and b survives.
  const c = sessions.create(vera, 1_000);
  assert.equal(sessions.size, 2);
  assert.equal(sessions.get(a, 1_000), undefined);
  assert.equal(sessions.get(b, 1_000), vera);
  // Both live: the oldest (b) gives way.
  const d = sessions.create(vera, 1_100);
  assert.equal(sessions.size, 2);
  assert.equal(sessions.get(b, 1_100), undefined);
  assert.equal(sessions.get(c, 1_100), vera);
  assert.equal(sessions.get(d, 1_100), vera);
});

test('secrets never reach the log: headers, cookie, ?key= and the login body', async () => {
  const lines: string[] = [];
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const server = await testServer({ settings: { logLevel: 'trace' }, logStream });
  try {
    const login = await server.app.inject({
      method: 'POST',
      url: '/api/session',
      payload: { key: OPERATOR_KEY },
    });
    const cookie = cookieFrom(login.headers['set-cookie']);
    await server.app.inject({ url: '/api/dependencies', headers: as('admin') });
    await server.app.inject({ url: '/api/dependencies', headers: { 'x-api-key': VIEWER_KEY } });
    await server.app.inject({ url: '/api/dependencies', headers: { cookie } });
    await server.app.inject({ url: `/api/dependencies?key=${ADMIN_KEY}&limit=5` });
    await server.app.inject({ url: `/api/no-route?token=${VIEWER_KEY}` });
    await server.app.inject({ url: '/api/dependencies', headers: { authorization: `Bearer ${ADMIN_KEY}x` } });
    const log = lines.join('');
    assert.ok(log.includes('/api/dependencies?key=[redacted]&limit=5'), 'the request was not logged');
    const token = cookie.split('=')[1] ?? '';
    for (const secret of [ADMIN_KEY, OPERATOR_KEY, VIEWER_KEY, token]) {
      assert.ok(!log.includes(secret), `a secret appears in the log: ${secret.slice(0, 6)}…`);
    }
  } finally {
    await server.close();
  }
});

test('ensureAdminKey creates a 0600 key once in a 0700 directory, then reads it back', async () => {
  const parent = await mkdtemp(join(tmpdir(), 'bulwark-keys-'));
  try {
    const dataDir = join(parent, 'data');
    const first = await ensureAdminKey(dataDir);
    assert.equal(first.created, true);
    assert.equal(first.key.role, 'admin');
    assert.match(first.key.secret, /^[\w-]{43}$/);
    assert.equal(first.file, join(dataDir, 'admin.key'));
    if (process.platform !== 'win32') {
      assert.equal((await stat(first.file)).mode & 0o777, 0o600);
      assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    }
    const second = await ensureAdminKey(dataDir);
    assert.equal(second.created, false);
    assert.equal(second.key.secret, first.key.secret);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});

test('ensureAdminKey refuses a key file others may read, saying chmod 600', async (t) => {
  if (process.platform === 'win32') return t.skip('POSIX modes only');
  const dataDir = await mkdtemp(join(tmpdir(), 'bulwark-keys-'));
  try {
    const file = join(dataDir, 'admin.key');
    await writeFile(file, 'k'.repeat(43), { mode: 0o644 });
    await assert.rejects(ensureAdminKey(dataDir), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'INVALID_SETTING');
      assert.ok(error.message.includes(`chmod 600 ${file}`), error.message);
      return true;
    });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('ensureAdminKey refuses a key file that holds no key', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'bulwark-keys-'));
  try {
    await writeFile(join(dataDir, 'admin.key'), 'short\n', { mode: 0o600 });
    await assert.rejects(ensureAdminKey(dataDir), { code: 'INVALID_SETTING' });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('loginUrl puts the key in the fragment, never in the path or query', () => {
  assert.equal(loginUrl('127.0.0.1', 8080, 'abc_-123'), 'http://127.0.0.1:8080/#key=abc_-123');
  assert.equal(loginUrl('0.0.0.0', 9000, 'k'), 'http://127.0.0.1:9000/#key=k');
  assert.equal(loginUrl('::1', 8080, 'k'), 'http://[::1]:8080/#key=k');
  assert.equal(loginUrl('localhost', 80, 'a+b'), 'http://localhost:80/#key=a%2Bb');
});

test('checkListenAddress refuses a non-loopback address until keys are configured', () => {
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.com']) {
    assert.throws(
      () => checkListenAddress(host, false),
      (error: Error & { code?: string; field?: string }) => {
        assert.equal(error.code, 'INVALID_SETTING');
        assert.equal(error.field, 'server.host');
        assert.match(error.message, /BULWARK_API_KEYS=name:role:secret/);
        return true;
      },
    );
    checkListenAddress(host, true);
  }
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) checkListenAddress(host, false);
});
