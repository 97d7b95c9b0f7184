import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  classify,
  currentRequestContext,
  ErrorCodes,
  HttpClient,
  HttpClientClosedError,
  HttpStatusError,
  parseTraceparent,
  VirtualClock,
  withRequestContext,
} from '@bulwark/core';
import fc from 'fast-check';
import { childTraceparent } from '../src/http/context.ts';
import { client, pause, reply, serve } from './http-server.ts';
import { rejectsWith, runTypeScript, throwsInvalid } from './support.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

describe('http client: requests', () => {
  test('resolves relative URLs under baseUrl, leading slash or not, and keeps absolute URLs', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 200, 'ok'));
    const other = await serve(t, (_, res) => reply(res, 200, 'ok'));
    const http = client(t, { baseUrl: `${api.origin}/v1` });
    for (const url of ['items?page=2', '/items/7', '//evil.example/x']) await (await http.fetch(url)).text();
    await (await http.fetch(`${other.origin}/elsewhere`)).text();
    await (await http.fetch(new URL('/root', api.origin))).text();
    assert.deepEqual(
      api.requests.map((r) => r.url),
      ['/v1/items?page=2', '/v1/items/7', '/v1/evil.example/x', '/root'],
    );
    assert.deepEqual(
      other.requests.map((r) => r.url),
      ['/elsewhere'],
    );
  });

  test('sends the default headers with every request; a header given to fetch wins', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 204));
    const http = client(t, {
      baseUrl: api.origin,
      headers: { 'User-Agent': 'bulwark-test', 'x-team': 'core' },
    });
    await http.fetch('a');
    await http.fetch('b', { headers: { 'x-team': 'edge' }, method: 'POST', body: 'hello' });
    assert.equal(api.requests[0]!.headers['user-agent'], 'bulwark-test');
    assert.equal(api.requests[0]!.headers['x-team'], 'core');
    assert.equal(api.requests[1]!.headers['x-team'], 'edge');
    assert.equal(api.requests[1]!.method, 'POST');
    assert.equal(api.requests[1]!.body, 'hello');
  });

  test('hands a successful response to the caller with its body unread', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 200, { items: [1, 2] }, { etag: '"v1"' }));
    const http = client(t, { baseUrl: api.origin });
    const response = await http.fetch('items');
    assert.equal(response.status, 200);
    assert.equal(response.bodyUsed, false);
    assert.equal(response.headers.get('etag'), '"v1"');
    assert.deepEqual(await response.json(), { items: [1, 2] });
    assert.deepEqual(http.stats(), {
      requests: 1,
      responses: { '2xx': 1, '3xx': 0, '4xx': 0, '5xx': 0 },
      statusErrors: 0,
      errors: 0,
      authRefreshes: 0,
      authFailures: 0,
      authRetries: 0,
    });
  });

  test('a refused connection rejects with the network error, which classify calls transient', async (t) => {
    const gone = await serve(t, (_, res) => reply(res, 200));
    const http = client(t, { baseUrl: gone.origin, connectTimeoutMs: 1_000 });
    // Find a port nobody listens on: open one, then close it.
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const error = await http.fetch(`http://127.0.0.1:${port}/`).then(
      () => assert.fail('expected a connection error'),
      (e: unknown) => e,
    );
    assert.equal(classify(error), 'transient');
    assert.equal(http.stats().errors, 1);
  });
});

describe('http client: status classification', () => {
  test('a 503 with Retry-After: 2 becomes a transient HttpStatusError with retryAfterMs 2000', async (t) => {
    const api = await serve(t, (_, res) =>
      reply(res, 503, 'down for maintenance', { 'retry-after': '2', 'x-trace': 'abc' }),
    );
    const http = client(t, { baseUrl: api.origin });
    const error = await rejectsWith<HttpStatusError>(
      http.fetch('orders?id=1', { method: 'post' }),
      HttpStatusError,
      {
        code: ErrorCodes.HTTP_STATUS,
        status: 503,
        statusText: 'Service Unavailable',
        method: 'POST',
        url: `${api.origin}/orders?id=1`,
        body: 'down for maintenance',
        retryAfterMs: 2_000,
        client: 'api',
      },
    );
    assert.equal(error.headers.get('x-trace'), 'abc');
    assert.equal(classify(error), 'transient');
    assert.equal(http.stats().statusErrors, 1);
    assert.equal(http.stats().responses['5xx'], 1);
  });

  test('a 404 is permanent and carries no retryAfterMs', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 404, 'no such order'));
    const http = client(t, { baseUrl: api.origin });
    const error = await rejectsWith<HttpStatusError>(http.fetch('orders/9'), HttpStatusError, {
      status: 404,
    });
    assert.equal(classify(error), 'permanent');
    assert.equal(error.retryAfterMs, undefined);
  });

  test('every error status is classified as DESIGN.md says', async (t) => {
    const api = await serve(t, (r, res) => reply(res, Number(r.url.slice(1))));
    // One socket: a destroyed one would show as a second connection.
    const http = client(t, { baseUrl: api.origin, connections: 1 });
    const expected: Record<number, string> = {
      400: 'permanent',
      401: 'permanent',
      403: 'permanent',
      404: 'permanent',
      408: 'transient',
      409: 'permanent',
      422: 'permanent',
      425: 'transient',
      429: 'transient',
      500: 'transient',
      501: 'permanent',
      502: 'transient',
      503: 'transient',
      504: 'transient',
      505: 'permanent',
    };
    for (const [status, kind] of Object.entries(expected)) {
      const error = await rejectsWith(http.fetch(status), HttpStatusError, { status: Number(status) });
      assert.equal(classify(error), kind, `status ${status}`);
    }
    assert.equal(api.connections, 1, 'every error response was drained and its socket reused');
  });

  test('a Retry-After date is read against the client clock', async (t) => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    const clock = new VirtualClock(now);
    const api = await serve(t, (_, res) =>
      reply(res, 429, '', { 'retry-after': new Date(now + 30_000).toUTCString() }),
    );
    const http = client(t, { baseUrl: api.origin }, clock);
    await rejectsWith(http.fetch('x'), HttpStatusError, { status: 429, retryAfterMs: 30_000 });
  });

  test('keeps at most maxErrorBodyBytes of an error body', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 500, 'x'.repeat(10_000)));
    const http = client(t, { baseUrl: api.origin, maxErrorBodyBytes: 100 });
    await rejectsWith(http.fetch('x'), HttpStatusError, { body: 'x'.repeat(100) });
    const none = client(t, { baseUrl: api.origin, maxErrorBodyBytes: 0 });
    await rejectsWith(none.fetch('x'), HttpStatusError, { body: '' });
  });

  test('a redirect is followed and only the final status counts', async (t) => {
    const api = await serve(t, (r, res) =>
      r.url === '/old' ? reply(res, 301, '', { location: '/new' }) : reply(res, 200, 'moved'),
    );
    const http = client(t, { baseUrl: api.origin });
    const response = await http.fetch('old');
    assert.equal(await response.text(), 'moved');
    assert.equal(response.url, `${api.origin}/new`);
  });

  test('a redirect to another origin leaves the API key, auth and cookies behind', async (t) => {
    const other = await serve(t, (_, res) => reply(res, 200, 'elsewhere'));
    const api = await serve(t, (r, res) =>
      r.url === '/same'
        ? reply(res, 302, '', { location: '/landing' })
        : r.url === '/away'
          ? reply(res, 307, '', { location: `${other.origin}/landing` })
          : reply(res, 200, 'home'),
    );
    const http = client(t, {
      baseUrl: api.origin,
      headers: { 'x-client': 'petstore', cookie: 'session=abc' },
      auth: { type: 'api-key', header: 'x-api-key', value: 'key-123' },
    });
    await (await http.fetch('same')).text();
    assert.equal(api.requests.at(-1)!.headers['x-api-key'], 'key-123', 'same origin: the key goes along');
    assert.equal(
      await (await http.fetch('away', { headers: { authorization: 'Bearer t0k' } })).text(),
      'elsewhere',
    );
    const landed = other.requests[0]!.headers;
    assert.equal(landed['x-api-key'], undefined);
    assert.equal(landed.authorization, undefined);
    assert.equal(landed.cookie, undefined);
    assert.equal(landed['x-client'], 'petstore');
  });

  test('a 303 after a POST becomes a GET without body; 307 keeps the method and body', async (t) => {
    const api = await serve(t, (r, res) => {
      if (r.url === '/see-other') reply(res, 303, '', { location: '/result' });
      else if (r.url === '/temporary') reply(res, 307, '', { location: '/result' });
      else reply(res, 200, `${r.method} ${r.body}`);
    });
    const http = client(t, { baseUrl: api.origin });
    const post = { method: 'POST', body: 'order=7', headers: { 'content-type': 'text/plain' } };
    assert.equal(await (await http.fetch('see-other', post)).text(), 'GET ');
    assert.equal(await (await http.fetch('temporary', post)).text(), 'POST order=7');
  });

  test('a redirect loop ends with an error after 20 hops; redirect: manual returns the 3xx', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 302, '', { location: '/loop' }));
    const http = client(t, { baseUrl: api.origin });
    await assert.rejects(http.fetch('loop'), /more than 20 redirects/);
    assert.equal(api.requests.length, 21);
    const manual = await http.fetch('loop', { redirect: 'manual' });
    assert.equal(manual.status, 302);
    await manual.body?.cancel();
  });
});

describe('http client: sockets', () => {
  test('200 error responses with 1 MB bodies and 200 successes reuse at most `connections` sockets', async (t) => {
    const big = Buffer.alloc(1_000_000, 'e');
    const api = await serve(t, (r, res) => {
      if (r.url.startsWith('/fail')) {
        res.writeHead(500, { 'content-length': String(big.length) });
        res.end(big);
      } else reply(res, 200, 'fine');
    });
    const http = client(t, { baseUrl: api.origin, connections: 2 });
    const started = performance.now();
    for (let i = 0; i < 200; i++) {
      await rejectsWith(http.fetch(`fail/${i}`), HttpStatusError, { status: 500 });
      assert.equal(await (await http.fetch(`ok/${i}`)).text(), 'fine');
    }
    const elapsed = performance.now() - started;
    assert.ok(api.connections <= 2, `the server saw ${api.connections} connections`);
    assert.equal(api.requests.length, 400);
    assert.ok(elapsed < 15_000, `took ${elapsed} ms`);
  });

  test('concurrent requests share at most `connections` sockets', async (t) => {
    const api = await serve(t, async (_, res) => {
      await pause(5);
      reply(res, 200, 'ok');
    });
    const http = client(t, { baseUrl: api.origin, connections: 3 });
    const bodies = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => (await http.fetch(`r/${i}`)).text()),
    );
    assert.equal(bodies.length, 30);
    assert.ok(api.connections <= 3, `the server saw ${api.connections} connections`);
  });

  test('an error body beyond the drain limit is cut off, not downloaded', async (t) => {
    let finished: boolean | undefined;
    const api = await serve(t, (_, res) => {
      // 64 MB, chunked (no length known), written as fast as the client reads.
      res.writeHead(502);
      const chunk = Buffer.alloc(64 * 1024, 'z');
      let left = 1024;
      const write = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return void res.once('drain', write);
        }
        res.end();
      };
      res.on('close', () => {
        finished = res.writableFinished;
      });
      write();
    });
    const http = client(t, { baseUrl: api.origin });
    await rejectsWith(http.fetch('huge'), HttpStatusError, { status: 502 });
    for (let i = 0; i < 100 && finished === undefined; i++) await pause(10);
    assert.equal(finished, false, 'the client closed the connection before the body ended');
  });
});

describe('http client: request context', () => {
  test('sends x-request-id and a child traceparent inside withRequestContext, nothing outside', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 204));
    const http = client(t, { baseUrl: api.origin });
    await withRequestContext({ requestId: 'req-42', traceparent: TRACEPARENT }, async () => {
      await Promise.resolve();
      await http.fetch('first');
      await http.fetch('second');
    });
    await http.fetch('outside');
    const [first, second, outside] = api.requests.map((r) => r.headers);
    for (const headers of [first!, second!]) {
      assert.equal(headers['x-request-id'], 'req-42');
      const [version, trace, parent, flags] = String(headers.traceparent).split('-');
      assert.deepEqual([version, trace, flags], ['00', TRACE_ID, '01']);
      assert.match(parent!, /^[0-9a-f]{16}$/);
      assert.notEqual(parent, '00f067aa0ba902b7');
    }
    assert.notEqual(first!.traceparent, second!.traceparent, 'each call has its own parent id');
    assert.equal(outside!['x-request-id'], undefined);
    assert.equal(outside!.traceparent, undefined);
  });

  test('an invalid traceparent is not sent; the request id still is', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 204));
    const http = client(t, { baseUrl: api.origin });
    const invalid = [
      `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`,
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `01-${TRACE_ID}-00f067aa0ba902b7-01`,
      `00-${TRACE_ID}-00f067aa0ba902b7`,
      'garbage',
    ];
    for (const traceparent of invalid) {
      await withRequestContext({ requestId: 'r', traceparent }, () => http.fetch('x'));
    }
    for (const request of api.requests) {
      assert.equal(request.headers.traceparent, undefined);
      assert.equal(request.headers['x-request-id'], 'r');
    }
  });

  test('a header the caller sets explicitly wins over the context', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 204));
    const http = client(t, { baseUrl: api.origin });
    const own = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-00`;
    await withRequestContext({ requestId: 'ctx', traceparent: TRACEPARENT }, () =>
      http.fetch('x', { headers: { 'X-Request-Id': 'mine', traceparent: own } }),
    );
    assert.equal(api.requests[0]!.headers['x-request-id'], 'mine');
    assert.equal(api.requests[0]!.headers.traceparent, own);
  });

  test('contexts do not leak across concurrent calls', async (t) => {
    const api = await serve(t, async (r, res) => {
      await pause(Number(r.url.split('/')[2]) % 7);
      reply(res, 204);
    });
    const http = client(t, { baseUrl: api.origin, connections: 8 });
    const traceFor = (i: number) => `00-${i.toString(16).padStart(32, 'c')}-${'d'.repeat(16)}-01`;
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        i % 3 === 0
          ? http.fetch(`/none/${i}`)
          : withRequestContext({ requestId: `id-${i}`, traceparent: traceFor(i) }, async () => {
              await pause(i % 5);
              assert.equal(currentRequestContext()?.requestId, `id-${i}`);
              return http.fetch(`/ctx/${i}`);
            }),
      ),
    );
    assert.equal(api.requests.length, 60);
    for (const request of api.requests) {
      const [, kind, n] = request.url.split('/');
      if (kind === 'none') {
        assert.equal(request.headers['x-request-id'], undefined);
        assert.equal(request.headers.traceparent, undefined);
      } else {
        assert.equal(request.headers['x-request-id'], `id-${n}`);
        assert.equal(String(request.headers.traceparent).split('-')[1], traceFor(Number(n)).split('-')[1]);
      }
    }
    assert.equal(currentRequestContext(), undefined);
  });

  test('parseTraceparent takes a valid version-00 header apart and refuses anything else', () => {
    const trace = '0af7651916cd43dd8448eb211c80319c';
    const parent = 'b7ad6b7169203331';
    assert.deepEqual(parseTraceparent(`00-${trace}-${parent}-01`), {
      traceId: trace,
      parentId: parent,
      flags: 1,
    });
    for (const bad of [
      `01-${trace}-${parent}-01`,
      `00-${trace.toUpperCase()}-${parent}-01`,
      `00-${'0'.repeat(32)}-${parent}-01`,
      `00-${trace}-${'0'.repeat(16)}-01`,
      `00-${trace}-${parent}-1`,
      ` 00-${trace}-${parent}-01`,
      undefined,
      42,
    ]) {
      assert.equal(parseTraceparent(bad), undefined, String(bad));
    }
  });

  test('a child traceparent always keeps the trace id and flags and has a fresh non-zero parent id', () => {
    const hex = (length: number) =>
      fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: length, maxLength: length });
    fc.assert(
      fc.property(hex(32), hex(16), hex(2), (trace, parent, flags) => {
        const child = childTraceparent(`00-${trace}-${parent}-${flags}`);
        if (/^0+$/.test(trace) || /^0+$/.test(parent)) return child === undefined;
        const [version, childTrace, childParent, childFlags] = child!.split('-');
        return (
          version === '00' &&
          childTrace === trace &&
          childFlags === flags &&
          /^[0-9a-f]{16}$/.test(childParent!) &&
          !/^0+$/.test(childParent!)
        );
      }),
    );
  });
});

describe('http client: options', () => {
  test('invalid options are refused at construction, naming the field', () => {
    const bad: [unknown, string][] = [
      [{ baseUrl: 'not a url' }, 'http.baseUrl'],
      [{ baseUrl: 'ftp://files.example' }, 'http.baseUrl'],
      [{ baseUrl: 'https://user:pw@api.example' }, 'http.baseUrl'],
      [{ baseUrl: 'https://api.example/?q=1' }, 'http.baseUrl'],
      [{ conections: 4 }, 'http.conections'],
      [{ connections: 0 }, 'http.connections'],
      [{ connections: 2.5 }, 'http.connections'],
      [{ keepAliveTimeoutMs: -1 }, 'http.keepAliveTimeoutMs'],
      [{ connectTimeoutMs: 'soon' }, 'http.connectTimeoutMs'],
      [{ maxErrorBodyBytes: -1 }, 'http.maxErrorBodyBytes'],
      [{ headers: { 'bad header': 'x' } }, 'http.headers.bad header'],
      [{ headers: { 'x-n': 5 } }, 'http.headers.x-n'],
      [{ auth: { type: 'digest' } }, 'http.auth.type'],
      [{ auth: { token: 't' } }, 'http.auth.type'],
      [{ auth: { type: 'bearer' } }, 'http.auth.token'],
      [{ auth: { type: 'bearer', token: '' } }, 'http.auth.token'],
      [{ auth: { type: 'bearer', token: 't', tokne: 'x' } }, 'http.auth.tokne'],
      [{ auth: { type: 'api-key', value: 'k', header: 'no spaces' } }, 'http.auth.header'],
      [{ auth: { type: 'basic', username: 'a:b', password: 'p' } }, 'http.auth.username'],
      [{ auth: { type: 'basic', username: 'a' } }, 'http.auth.password'],
      [{ auth: { type: 'oauth2', clientId: 'c', clientSecret: 's' } }, 'http.auth.tokenUrl'],
      [
        { auth: { type: 'oauth2', tokenUrl: 'https://a.example/t', clientSecret: 's' } },
        'http.auth.clientId',
      ],
      [
        { auth: { type: 'oauth2', tokenUrl: 'https://a.example/t', clientId: 'c' } },
        'http.auth.clientSecret',
      ],
      [
        {
          auth: {
            type: 'oauth2',
            tokenUrl: 'https://a.example/t',
            clientId: 'c',
            clientSecret: 's',
            refreshBeforeMs: -5,
          },
        },
        'http.auth.refreshBeforeMs',
      ],
    ];
    for (const [options, path] of bad) throwsInvalid(() => new HttpClient('api', options as never), path);
    throwsInvalid(() => new HttpClient('', {}), 'http.name');
    throwsInvalid(() => new HttpClient('api', {}, { clock: {} as never }), 'http.clock');
  });

  test('a malformed secret is refused without being echoed', () => {
    const message = throwsInvalid(
      () => new HttpClient('api', { auth: { type: 'bearer', token: 's3cr3t-value\nInjected: yes' } }),
      'http.auth.token',
    );
    assert.ok(!message.includes('s3cr3t'), message);
  });

  test('options may be omitted; describe() shows the defaults', () => {
    const http = new HttpClient('plain', undefined);
    assert.deepEqual(http.describe(), {
      name: 'plain',
      baseUrl: undefined,
      headers: {},
      auth: undefined,
      connections: 32,
      keepAliveTimeoutMs: 4_000,
      connectTimeoutMs: 10_000,
      maxErrorBodyBytes: 4_096,
    });
  });
});

describe('http client: lifecycle', () => {
  test('close() is idempotent and later calls reject with a permanent HttpClientClosedError', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 200, 'ok'));
    const http = new HttpClient('api', { baseUrl: api.origin });
    await (await http.fetch('x')).text();
    const first = http.close();
    assert.equal(http.close(), first);
    await first;
    await http.close();
    const error = await rejectsWith(http.fetch('x'), HttpClientClosedError, {
      code: ErrorCodes.HTTP_CLIENT_CLOSED,
      client: 'api',
    });
    assert.equal(classify(error), 'permanent');
  });

  test('closing a client that never made a call, or one still loading undici, is fine', async () => {
    await new HttpClient('idle', {}).close();
    const racing = new HttpClient('racing', {});
    const call = racing.fetch('http://127.0.0.1:9/never');
    await racing.close();
    await rejectsWith(call, HttpClientClosedError);
  });

  test('the core imports without undici, and the first fetch names the fix', async () => {
    const { stdout } = await runTypeScript('packages/core/test/fixtures/http-no-undici.ts', [], {
      timeout: 20_000,
    });
    assert.deepEqual(JSON.parse(stdout), {
      imported: true,
      message: true,
      transient: 'permanent',
    });
  });
});
