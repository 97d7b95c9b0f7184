// Errors that do not come from a route's own code, answered as RFC 9457 problems with the status
// HTTP gives them: what Node's parser refuses before a request exists, 4xx raised by Fastify or a
// plugin, bodies that are not JSON, and a plain GET of a WebSocket route.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { as, type TestServer, testServer } from './server-support.ts';

let server: TestServer;
let dashboardDir: string;
let port: number;
before(async () => {
  // A dashboard of two files: enough for the static plugin to refuse paths outside it.
  dashboardDir = await mkdtemp(join(tmpdir(), 'bulwark-problems-dashboard-'));
  await mkdir(join(dashboardDir, 'assets'));
  await writeFile(join(dashboardDir, 'index.html'), '<!doctype html><title>Bulwark</title>');
  await writeFile(join(dashboardDir, 'assets', 'app-1a2b.js'), 'export {};\n');
  server = await testServer({ settings: { dashboardDir } });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  port = (server.app.server.address() as { port: number }).port;
});
after(async () => {
  await server.close();
  await rm(dashboardDir, { recursive: true, force: true });
});

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends `request` as bytes on a fresh connection (inject never reaches Node's parser); settles once the server closes it. */
function rawRequest(request: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => (text += chunk));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => {
      socket.destroy();
      reject(new Error(`no close after ${JSON.stringify(text)}`));
    });
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const at = line.indexOf(':');
        headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
  });
}

describe('requests Node refuses before Fastify sees them', () => {
  test('a control character in a header value is a 400 problem, and the connection is closed', async () => {
    const r = await rawRequest('GET /api/workflows HTTP/1.1\r\nHost: x\r\nX-Note: a\u0001b\r\n\r\n');
    assert.equal(r.status, 400);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.equal(r.headers.connection, 'close');
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    const problem = JSON.parse(r.body);
    assert.equal(problem.code, 'BAD_REQUEST');
    assert.equal(problem.status, 400);
    assert.equal(problem.type, 'urn:bulwark:problem:bad-request');
    assert.equal(problem.requestId, undefined, 'no request exists, so neither does its id');
  });

  test('Content-Length: abc is a 400 problem, whatever follows it', async () => {
    const r = await rawRequest(
      'POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{"key":"k"}',
    );
    assert.equal(r.status, 400);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.equal(JSON.parse(r.body).code, 'BAD_REQUEST');
  });

  test('headers over the limit are a 431 problem', async () => {
    const r = await rawRequest(
      `GET /api/workflows HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    assert.equal(r.status, 431);
    assert.equal(JSON.parse(r.body).code, 'HEADERS_TOO_LARGE');
  });
});

describe('4xx raised by Fastify or a plugin keep their status', () => {
  test('a path out of the static root is a 403 FORBIDDEN, not a 400', async () => {
    const r = await server.app.inject({ url: '/assets/..%2f..' });
    assert.equal(r.statusCode, 403);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.equal(r.json().code, 'FORBIDDEN');
    assert.equal(r.json().status, 403);
    assert.equal(r.json().requestId, r.headers['x-request-id']);
  });

  test('a 4xx without a code of its own passes through as CLIENT_ERROR with its status', async () => {
    const r = await server.app.inject({ url: '/assets/app-1a2b.js', headers: { range: 'bytes=999-1000' } });
    assert.equal(r.statusCode, 416);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.equal(r.json().code, 'CLIENT_ERROR');
    assert.equal(r.json().status, 416);
  });
});

describe('bodies that are not JSON', () => {
  test('a text/plain body to a JSON route is a 415, not a validation failure', async () => {
    for (const url of [
      '/api/runs/some-run/events',
      '/api/workflows/greet/runs',
      '/api/runs/some-run/retry',
    ]) {
      const r = await server.app.inject({
        method: 'POST',
        url,
        headers: { ...as('operator'), 'content-type': 'text/plain' },
        payload: '{"name":"approved"}',
      });
      assert.equal(r.statusCode, 415, url);
      assert.equal(r.json().code, 'UNSUPPORTED_MEDIA_TYPE', url);
    }
  });

  test('a form body is a 415 too, and the same input as JSON is read', async () => {
    const post = (contentType: string, payload: string) =>
      server.app.inject({
        method: 'POST',
        url: '/api/workflows/greet/runs',
        headers: { ...as('operator'), 'content-type': contentType },
        payload,
      });
    assert.equal((await post('application/x-www-form-urlencoded', 'input=1')).statusCode, 415);
    assert.equal((await post('application/json', '{"input":{"name":"json"}}')).statusCode, 201);
  });
});

describe('the run WebSocket without an upgrade', () => {
  test('a plain GET is a 426 problem naming the upgrade, not an empty 404', async () => {
    const run = (
      await server.app.inject({
        method: 'POST',
        url: '/api/workflows/greet/runs',
        headers: as('operator'),
        payload: { input: { name: 'ws', wait: true } },
      })
    ).json();
    const r = await server.app.inject({ url: `/api/runs/${run.id}/ws`, headers: as('viewer') });
    assert.equal(r.statusCode, 426);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.equal(r.headers.upgrade, 'websocket');
    assert.equal(r.json().code, 'UPGRADE_REQUIRED');
    // An unknown run is still a 404 problem, and a key is still needed.
    const unknown = await server.app.inject({ url: '/api/runs/no-such-run/ws', headers: as('viewer') });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().code, 'NOT_FOUND');
    const anonymous = await server.app.inject({ url: `/api/runs/${run.id}/ws` });
    assert.equal(anonymous.statusCode, 401);
  });
});

describe('text a store cannot keep', () => {
  test('U+0000 and a lone surrogate are a 400 naming where they are, on SQLite too', async () => {
    const post = (url: string, payload: string) =>
      server.app.inject({
        method: 'POST',
        url,
        payload,
        headers: { ...as('operator'), 'content-type': 'application/json' },
      });
    const cases: [Promise<{ statusCode: number; json(): { errors?: { pointer: string }[] } }>, string][] = [
      [server.app.inject({ url: '/api/runs/a%00b', headers: as('viewer') }), '#/path/id'],
      [server.app.inject({ url: '/api/runs?workflow=a%00', headers: as('viewer') }), '#/query/workflow'],
      [post('/api/workflows/greet/runs', '{"input":{"name":"\\ud800"}}'), '#/body/input/name'],
      [post('/api/workflows/greet/runs', '{"input":{"name":"a\\u0000"}}'), '#/body/input/name'],
    ];
    for (const [answer, pointer] of cases) {
      const r = await answer;
      assert.equal(r.statusCode, 400, pointer);
      assert.equal(r.json().errors?.[0]?.pointer, pointer);
    }
  });
});
