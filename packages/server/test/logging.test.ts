// The request log through the public surface: one JSON line per event, the request id taken from
// a well-formed X-Request-Id (or generated) and echoed back, and API keys never written.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { ADMIN_KEY, OPERATOR_KEY, type TestServer, testServer, VIEWER_KEY } from './server-support.ts';

/** A generated id: the process's random prefix, then a counter in base 36. */
const GENERATED = /^[\w-]{8}-[0-9a-z]+$/;

interface LogLine {
  level: number;
  time: number;
  msg: string;
  reqId?: string;
  [key: string]: unknown;
}

let server: TestServer;
let text = '';

before(async () => {
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  // The most verbose level: whatever a debugging operator turns on must still keep keys out.
  server = await testServer({ settings: { logLevel: 'trace' }, logStream });
});
after(() => server?.close());

function lines(): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LogLine);
}

function linesOf(requestId: string): LogLine[] {
  return lines().filter((line) => line.reqId === requestId);
}

test('every log line is JSON with a level, a time and a message', async () => {
  await server.app.inject({ url: '/health/live' });
  const all = lines();
  assert.ok(all.length > 0);
  for (const line of all) {
    assert.equal(typeof line.level, 'number');
    assert.equal(typeof line.time, 'number');
    assert.equal(typeof line.msg, 'string');
  }
});

test('a well-formed X-Request-Id is kept, echoed back and on every line of the request', async () => {
  const id = 'checkout-7f3a:retry.2@edge';
  const response = await server.app.inject({
    url: '/api/dependencies',
    headers: { authorization: `Bearer ${VIEWER_KEY}`, 'x-request-id': id },
  });
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['x-request-id'], id);
  const mine = linesOf(id);
  assert.deepEqual(
    mine.map((line) => line.msg),
    ['incoming request', 'request completed'],
  );
  assert.deepEqual(mine[0]?.req, {
    method: 'GET',
    url: '/api/dependencies',
    host: 'localhost:80',
    remoteAddress: '127.0.0.1',
  });
  assert.deepEqual(mine[1]?.res, { statusCode: 200 });
});

test('a problem answer names the same request id', async () => {
  const response = await server.app.inject({
    url: '/api/dependencies',
    headers: { 'x-request-id': 'req-401' },
  });
  assert.equal(response.statusCode, 401);
  assert.equal(response.headers['x-request-id'], 'req-401');
  assert.equal(response.json().requestId, 'req-401');
});

test('a malformed X-Request-Id is replaced by a generated id', async () => {
  for (const bad of ['bad id!', 'a'.repeat(300), 'line\tbreak', '{"level":60}', '']) {
    const response = await server.app.inject({ url: '/health/live', headers: { 'x-request-id': bad } });
    const id = String(response.headers['x-request-id']);
    assert.match(id, GENERATED, `for ${JSON.stringify(bad)}`);
    assert.equal(linesOf(id).length, 2);
    if (bad !== '') assert.equal(linesOf(bad).length, 0);
  }
  assert.ok(!text.includes('bad id!'));
});

test('without X-Request-Id each request gets its own id', async () => {
  const first = await server.app.inject({ url: '/health/live' });
  const second = await server.app.inject({ url: '/health/live' });
  assert.match(String(first.headers['x-request-id']), GENERATED);
  assert.notEqual(first.headers['x-request-id'], second.headers['x-request-id']);
});

test('requests Fastify refuses before routing still get a request id and a problem', async () => {
  for (const url of ['/%E0%A4%A', `/api/runs/${'x'.repeat(300)}`]) {
    const response = await server.app.inject({ url, headers: { 'x-request-id': 'req-bad-url' } });
    assert.equal(response.statusCode, 400, url);
    assert.equal(response.headers['x-request-id'], 'req-bad-url');
    assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal(response.json().code, 'VALIDATION_FAILED');
  }
  assert.ok(linesOf('req-bad-url').length > 0, 'the refused requests were not logged');
});

test('Authorization and X-API-Key values never reach the log', async () => {
  const before = text.length;
  await server.app.inject({ url: '/api/dependencies', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  await server.app.inject({ url: '/api/dependencies', headers: { 'x-api-key': OPERATOR_KEY } });
  // Refused keys (wrong role, unknown key) are logged the same way: still without the key.
  await server.app.inject({
    method: 'POST',
    url: '/api/config/reload',
    headers: { authorization: `Bearer ${VIEWER_KEY}` },
  });
  await server.app.inject({ url: '/api/dependencies', headers: { 'x-api-key': `${ADMIN_KEY}-wrong` } });
  await server.app.inject({ url: '/no/such/route', headers: { authorization: `Basic ${ADMIN_KEY}` } });
  const written = text.slice(before);
  assert.ok(written.includes('request completed'), 'the requests were not logged');
  for (const secret of [ADMIN_KEY, OPERATOR_KEY, VIEWER_KEY]) {
    assert.ok(!written.includes(secret), `a key appears in the log: ${secret.slice(0, 8)}…`);
  }
});
