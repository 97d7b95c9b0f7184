import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { inspect } from 'node:util';
import {
  type BulwarkEvent,
  classify,
  ErrorCodes,
  type HttpAuth,
  HttpAuthError,
  type HttpClient,
  HttpStatusError,
  VirtualClock,
} from '@bulwark/core';
import { client, pause, type RecordedRequest, reply, serve, type TestServer } from './http-server.ts';
import { deferred, recordEvents, rejectsWith } from './support.ts';

const CLIENT_SECRET = 'client-secret-Zq8';

/** What the token endpoint does for the n-th token request (1-based): a token, or a failure. */
type TokenPlan = (
  n: number,
) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>;

const grant = (n: number, expiresIn: unknown = 3600) => ({
  status: 200,
  body: { access_token: `tok-${n}`, token_type: 'Bearer', expires_in: expiresIn },
});

/** A token endpoint at `/oauth/token` and an API that accepts the tokens `accepts` allows. */
async function oauthSetup(
  t: TestContext,
  plan: TokenPlan,
  accepts: (token: string) => boolean = () => true,
  auth: Partial<Extract<HttpAuth, { type: 'oauth2' }>> = {},
  clock?: VirtualClock,
): Promise<{ tokens: TestServer; api: TestServer; http: HttpClient; events: BulwarkEvent[] }> {
  let n = 0;
  const tokens = await serve(t, async (_, res) => {
    const { status, body } = await plan(++n);
    reply(res, status, body);
  });
  const api = await serve(t, (r, res) => {
    const token = String(r.headers.authorization ?? '').replace(/^Bearer /, '');
    if (accepts(token)) reply(res, 200, { token, body: r.body });
    else reply(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
  });
  const http = client(
    t,
    {
      baseUrl: api.origin,
      auth: {
        type: 'oauth2',
        tokenUrl: `${tokens.origin}/oauth/token`,
        clientId: 'svc-orders',
        clientSecret: CLIENT_SECRET,
        ...auth,
      },
    },
    clock,
  );
  return { tokens, api, http, events: recordEvents(http) };
}

async function tokenOf(http: HttpClient, url = 'me', init?: RequestInit): Promise<string> {
  return ((await (await http.fetch(url, init)).json()) as { token: string }).token;
}

describe('http client: static auth', () => {
  test('bearer, api-key and basic credentials arrive as the server expects', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 204));
    const auths: HttpAuth[] = [
      { type: 'bearer', token: 'tkn-1' },
      { type: 'api-key', value: 'key-2' },
      { type: 'api-key', header: 'X-Custom-Key', value: 'key-3' },
      { type: 'basic', username: 'ana', password: 'pä:ss' },
    ];
    for (const auth of auths) await client(t, { baseUrl: api.origin, auth }).fetch('x');
    const [bearer, apiKey, custom, basic] = api.requests.map((r) => r.headers);
    assert.equal(bearer!.authorization, 'Bearer tkn-1');
    assert.equal(apiKey!['x-api-key'], 'key-2');
    assert.equal(apiKey!.authorization, undefined);
    assert.equal(custom!['x-custom-key'], 'key-3');
    assert.equal(custom!['x-api-key'], undefined);
    assert.equal(Buffer.from(String(basic!.authorization).slice(6), 'base64').toString(), 'ana:pä:ss');
    assert.ok(String(basic!.authorization).startsWith('Basic '));
  });

  test('credentials go only to the base URL origin', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 204));
    const elsewhere = await serve(t, (_, res) => reply(res, 204));
    const http = client(t, { baseUrl: api.origin, auth: { type: 'api-key', value: 'k' } });
    await http.fetch('mine');
    await http.fetch(`${elsewhere.origin}/theirs`);
    assert.equal(api.requests[0]!.headers['x-api-key'], 'k');
    assert.equal(elsewhere.requests[0]!.headers['x-api-key'], undefined);
  });

  test('an Authorization header given to fetch wins over the configured auth', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 204));
    const http = client(t, { baseUrl: api.origin, auth: { type: 'bearer', token: 'configured' } });
    await http.fetch('x', { headers: { authorization: 'Bearer own' } });
    assert.equal(api.requests[0]!.headers.authorization, 'Bearer own');
  });

  test('a 401 with a static token is surfaced at once, without a second request', async (t) => {
    const api = await serve(t, (_, res) => reply(res, 401, 'no'));
    const http = client(t, { baseUrl: api.origin, auth: { type: 'bearer', token: 'stale' } });
    const error = await rejectsWith(http.fetch('x'), HttpStatusError, { status: 401 });
    assert.equal(classify(error), 'permanent');
    assert.equal(api.requests.length, 1);
  });
});

describe('http client: oauth2 client credentials', () => {
  test('20 concurrent first calls share one token request; later calls reuse the token', async (t) => {
    const release = deferred();
    const { tokens, api, http, events } = await oauthSetup(
      t,
      async (n) => {
        await release.promise;
        return grant(n);
      },
      undefined,
      { scope: 'orders:read orders:write', audience: 'https://orders.example' },
    );
    const calls = Array.from({ length: 20 }, () => tokenOf(http));
    await pause(20);
    release.resolve(undefined);
    assert.deepEqual(await Promise.all(calls), Array(20).fill('tok-1'));
    assert.equal(await tokenOf(http), 'tok-1');
    assert.equal(tokens.requests.length, 1);
    assert.equal(api.requests.length, 21);

    const [request] = tokens.requests as [RecordedRequest];
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/oauth/token');
    assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded');
    const form = new URLSearchParams(request.body);
    assert.deepEqual(Object.fromEntries(form), {
      grant_type: 'client_credentials',
      scope: 'orders:read orders:write',
      audience: 'https://orders.example',
    });
    const basic = Buffer.from(String(request.headers.authorization).slice(6), 'base64').toString();
    assert.equal(basic, `svc-orders:${CLIENT_SECRET}`);
    assert.deepEqual(
      events.map((e) => e.type === 'http:auth-refreshed' && [e.policy, e.reason, e.expiresInMs]),
      [['api', 'initial', 3_600_000]],
    );
    assert.equal(http.stats().authRefreshes, 1);
  });

  test('the token is refreshed once the client clock passes expires_in minus refreshBeforeMs', async (t) => {
    const clock = new VirtualClock();
    const { tokens, http, events } = await oauthSetup(
      t,
      (n) => grant(n, 600),
      undefined,
      { refreshBeforeMs: 60_000 },
      clock,
    );
    assert.equal(await tokenOf(http), 'tok-1');
    await clock.advance(539_999);
    assert.equal(await tokenOf(http), 'tok-1');
    assert.equal(tokens.requests.length, 1);
    await clock.advance(1);
    assert.equal(await tokenOf(http), 'tok-2');
    assert.equal(await tokenOf(http), 'tok-2');
    assert.equal(tokens.requests.length, 2);
    assert.deepEqual(
      events.map((e) => e.type === 'http:auth-refreshed' && e.reason),
      ['initial', 'expiring'],
    );
    assert.equal(clock.pendingTimers, 0);
  });

  test('a token that lives less than refreshBeforeMs is refreshed at half its lifetime', async (t) => {
    const clock = new VirtualClock();
    const { tokens, http } = await oauthSetup(t, (n) => grant(n, 30), undefined, {}, clock);
    assert.equal(await tokenOf(http), 'tok-1');
    await clock.advance(14_999);
    assert.equal(await tokenOf(http), 'tok-1');
    await clock.advance(1);
    assert.equal(await tokenOf(http), 'tok-2');
    assert.equal(tokens.requests.length, 2);
  });

  test('a 401 from the API brings exactly one refresh and one resend, then the 200', async (t) => {
    const { tokens, api, http, events } = await oauthSetup(t, grant, (token) => token === 'tok-2');
    const response = await http.fetch('orders', { method: 'POST', body: JSON.stringify({ id: 7 }) });
    assert.deepEqual(await response.json(), { token: 'tok-2', body: '{"id":7}' });
    assert.equal(tokens.requests.length, 2);
    assert.deepEqual(
      api.requests.map((r) => [r.headers.authorization, r.body]),
      [
        ['Bearer tok-1', '{"id":7}'],
        ['Bearer tok-2', '{"id":7}'],
      ],
    );
    assert.deepEqual(
      events.map((e) => e.type === 'http:auth-refreshed' && e.reason),
      ['initial', 'unauthorized'],
    );
    assert.equal(http.stats().authRetries, 1);
    assert.equal(api.connections, 1, 'the 401 body was drained and the socket reused');
  });

  test('a persistent 401 surfaces as HttpStatusError 401 after exactly one refresh', async (t) => {
    const { tokens, api, http } = await oauthSetup(t, grant, () => false);
    const error = await rejectsWith(http.fetch('orders'), HttpStatusError, {
      code: ErrorCodes.HTTP_STATUS,
      status: 401,
    });
    assert.equal(classify(error), 'permanent');
    assert.equal(tokens.requests.length, 2);
    assert.equal(api.requests.length, 2);
  });

  test('callers hit by the same 401 share one refresh', async (t) => {
    const { tokens, http } = await oauthSetup(t, grant, (token) => token !== 'tok-1');
    assert.equal(await tokenOf(http, 'warm', { headers: { authorization: 'Bearer tok-9' } }), 'tok-9');
    // Every call starts with tok-1 (one token request), gets a 401 and waits for the same refresh.
    const all = await Promise.all(Array.from({ length: 10 }, () => tokenOf(http)));
    assert.deepEqual(all, Array(10).fill('tok-2'));
    assert.equal(tokens.requests.length, 2);
  });

  test('a 401 on a request whose body cannot be replayed is surfaced without a resend', async (t) => {
    const { tokens, api, http } = await oauthSetup(t, grant, (token) => token === 'tok-2');
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed'));
        controller.close();
      },
    });
    await rejectsWith(
      http.fetch('upload', { method: 'POST', body, duplex: 'half' } as RequestInit),
      HttpStatusError,
      { status: 401 },
    );
    assert.equal(api.requests.length, 1);
    assert.equal(tokens.requests.length, 1);
  });

  test('a failed token request rejects every waiting caller; the next call tries again', async (t) => {
    const { tokens, http, events } = await oauthSetup(t, (n) =>
      n === 1 ? { status: 503, body: { error: 'temporarily_unavailable' } } : grant(n),
    );
    const calls = Array.from({ length: 5 }, () => http.fetch('x'));
    for (const call of calls) {
      const error = await rejectsWith(call, HttpAuthError, {
        code: ErrorCodes.HTTP_AUTH,
        status: 503,
        client: 'api',
      });
      assert.equal(classify(error), 'transient');
    }
    assert.equal(tokens.requests.length, 1);
    assert.equal(await tokenOf(http), 'tok-2');
    assert.deepEqual(
      events.map((e) => e.type),
      ['http:auth-failed', 'http:auth-refreshed'],
    );
    assert.equal(http.stats().authFailures, 1);
  });

  test('a refused client is a permanent failure; an unreachable token endpoint a transient one', async (t) => {
    const { http } = await oauthSetup(t, () => ({ status: 401, body: { error: 'invalid_client' } }));
    const refused = await rejectsWith(http.fetch('x'), HttpAuthError, { status: 401 });
    assert.equal(classify(refused), 'permanent');

    const unreachable = client(t, {
      auth: {
        type: 'oauth2',
        tokenUrl: 'http://127.0.0.1:9/token',
        clientId: 'c',
        clientSecret: CLIENT_SECRET,
      },
    });
    const error = await rejectsWith(unreachable.fetch('http://127.0.0.1:9/api'), HttpAuthError, {
      status: undefined,
    });
    assert.ok(error.cause !== undefined);
    assert.equal(classify(error), 'transient');
  });

  test('a token response without a usable token is refused with a clear error', async (t) => {
    const answers = [
      { status: 200, body: 'not json' },
      { status: 200, body: { token_type: 'Bearer' } },
      { status: 200, body: { access_token: 'x', token_type: 'mac' } },
    ];
    const { http } = await oauthSetup(t, (n) => answers[n - 1] ?? grant(n));
    for (let i = 0; i < answers.length; i++) await rejectsWith(http.fetch('x'), HttpAuthError);
    assert.equal(await tokenOf(http), 'tok-4');
  });

  test('a failed early refresh keeps the current token until it really expires', async (t) => {
    const clock = new VirtualClock();
    const { tokens, http } = await oauthSetup(
      t,
      (n) => (n === 2 || n === 3 ? { status: 500, body: '' } : grant(n, 600)),
      undefined,
      {},
      clock,
    );
    assert.equal(await tokenOf(http), 'tok-1');
    await clock.advance(550_000); // past the refresh point (540 s), before expiry (600 s)
    assert.equal(await tokenOf(http), 'tok-1');
    assert.equal(tokens.requests.length, 2);
    await clock.advance(50_000); // expired: a failed refresh now fails the call
    await rejectsWith(http.fetch('x'), HttpAuthError, { status: 500 });
    assert.equal(await tokenOf(http), 'tok-4');
  });

  test("a caller's abort ends its own wait for a token, not the token request", async (t) => {
    const release = deferred();
    const { tokens, http } = await oauthSetup(t, async (n) => {
      await release.promise;
      return grant(n);
    });
    const controller = new AbortController();
    const aborted = http.fetch('x', { signal: controller.signal });
    const waiting = tokenOf(http);
    await pause(10);
    controller.abort(new Error('caller gave up'));
    await assert.rejects(aborted, { message: 'caller gave up' });
    release.resolve(undefined);
    assert.equal(await waiting, 'tok-1');
    assert.equal(tokens.requests.length, 1);
  });
});

describe('http client: secrets never reach logs', () => {
  test('describe(), inspect, errors and events carry no token, key, password or client secret', async (t) => {
    // An API that echoes the request headers into its 500 body, as some debug endpoints do.
    const echo = await serve(t, (r, res) => reply(res, 500, { youSent: r.headers }));
    let n = 0;
    const tokenServer = await serve(t, (_, res) => {
      n++;
      reply(
        res,
        n === 1 ? 503 : 200,
        n === 1 ? { error: 'busy' } : { access_token: 'ACCESS-tok-secret', expires_in: 60 },
      );
    });
    const secrets = ['BEARER-s3cret', 'APIKEY-s3cret', 'PASSWORD-s3cret', CLIENT_SECRET, 'ACCESS-tok-secret'];
    const auths: HttpAuth[] = [
      { type: 'bearer', token: 'BEARER-s3cret' },
      { type: 'api-key', value: 'APIKEY-s3cret' },
      { type: 'basic', username: 'u', password: 'PASSWORD-s3cret' },
      { type: 'oauth2', tokenUrl: `${tokenServer.origin}/t`, clientId: 'c', clientSecret: CLIENT_SECRET },
    ];
    secrets.push(Buffer.from('u:PASSWORD-s3cret').toString('base64'));
    secrets.push(Buffer.from(`c:${CLIENT_SECRET}`).toString('base64'));
    const seen: string[] = [];
    for (const auth of auths) {
      const http = client(t, { baseUrl: echo.origin, auth, headers: { 'x-session-token': 'HEADER-s3cret' } });
      const events = recordEvents(http);
      if (auth.type === 'oauth2')
        await rejectsWith(http.fetch('x'), HttpAuthError).then((e) => seen.push(dump(e)));
      const error = await rejectsWith<HttpStatusError>(http.fetch('x'), HttpStatusError, { status: 500 });
      assert.match(error.body, /\[redacted\]/);
      seen.push(dump(error), JSON.stringify(error), error.message, error.body);
      seen.push(JSON.stringify(http.describe()), inspect(http.describe()), dump(http), dump(events));
      assert.equal(http.describe().headers['x-session-token'], '[redacted]');
    }
    // The echo server did receive them: the redaction is the client's doing.
    assert.ok(echo.requests.some((r) => r.headers.authorization === 'Bearer ACCESS-tok-secret'));
    const all = seen.join('\n');
    for (const secret of [...secrets, 'HEADER-s3cret']) assert.ok(!all.includes(secret), `leaked ${secret}`);
  });
});

function dump(value: unknown): string {
  return inspect(value, { depth: Number.POSITIVE_INFINITY, showHidden: true, getters: true });
}
