// The dashboard behind a path prefix, with no configuration: the real server (built-in examples)
// behind a real reverse proxy that forwards only `/bulwark/...`, the prefix stripped, and answers
// 404 to anything else. In headless Chromium an admin signs in with the login link, sees the
// dependencies, gets the live stream (SSE through the proxy), and starts a run from the Workflows
// page (a write with the session cookie: the CSRF Origin rule must pass). Every request the page
// makes must stay under `/bulwark/` and none may fail. The API's own links (a started run's
// Location, the OpenAPI document's server, /api/docs) must resolve under the prefix too.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import {
  createServer,
  request as forward,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type StartedServer, startServer } from '@bulwark/server';
import type { Browser } from 'playwright-core';
import { ensureDashboardBuilt, launchBrowser, skip, watchConsole } from './support.ts';

const PREFIX = '/bulwark/';

/** Connection-level headers: a proxy answers for its own connection, never passes them on. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/**
 * A reverse proxy as nginx's `location /bulwark/ { proxy_pass http://upstream/; }` with
 * `proxy_set_header Host $http_host` would be: `/bulwark/x` goes to the server as `/x`, the body
 * streamed both ways (an SSE answer is passed on frame by frame, never buffered), and anything
 * else is a 404 of its own.
 *
 * Host and Origin pass unchanged, and that is what the server's CSRF rule relies on: a cookie
 * write must carry `Origin` equal to `<protocol>://<Host>` as the server sees them, and both
 * name the proxy's address (the one the browser used). A proxy that rewrote Host to the
 * upstream's address would get those writes refused (403) unless the server trusts it
 * (server.trustProxy) and it sends X-Forwarded-Host. X-Forwarded-* are added as a real proxy
 * adds them; with trustProxy off (the default) the server ignores them.
 *
 * The session cookie is set with `Path=/`, not the prefix, which the server cannot know: the
 * browser sends it to `/bulwark/api/...` all the same. That it reaches other paths of the same
 * origin costs nothing: a path is no boundary within an origin (a page there could call
 * /bulwark/api with the cookie anyway), and HttpOnly keeps it from scripts.
 */
function startProxy(upstream: URL, seen: string[]): Promise<Server> {
  const proxy = createServer((request, response) => {
    const url = request.url ?? '/';
    seen.push(`${request.method} ${url}`);
    if (!url.startsWith(PREFIX)) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`nothing is served outside ${PREFIX}\n`);
      return;
    }
    const headers = endToEnd(request.headers);
    const forwardedFor = request.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = [forwardedFor, request.socket.remoteAddress].filter(Boolean).join(', ');
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-prefix'] = PREFIX.slice(0, -1);
    const outgoing = forward(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: request.method,
        path: url.slice(PREFIX.length - 1),
        headers,
      },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
        // Headers out at once: an event stream's first frame may be a while coming.
        response.flushHeaders();
        answer.pipe(response);
      },
    );
    outgoing.on('error', () => {
      if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' });
      response.end();
    });
    // The browser went away (a closed EventSource): so does the upstream request.
    response.on('close', () => outgoing.destroy());
    request.pipe(outgoing);
  });
  return new Promise((resolve) => proxy.listen(0, '127.0.0.1', () => resolve(proxy)));
}

let server: StartedServer | undefined;
let proxy: Server | undefined;
let browser: Browser | undefined;
let dir = '';
let output = '';
let adminKey = '';
let base = '';
/** What reached the proxy, `METHOD /path`, in order. */
const seen: string[] = [];

before(async () => {
  if (skip !== false) return;
  await ensureDashboardBuilt();
  dir = await mkdtemp(join(tmpdir(), 'bulwark-dashboard-prefix-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir, 'data'),
    examples: true,
    // No BULWARK_API_KEYS from the environment: the server makes an admin key and prints it.
    env: {},
    stdout: { write: (text: string) => (output += text) },
  });
  const key = /admin key:\s+(\S+)/.exec(output)?.[1];
  assert.ok(key !== undefined, `the banner prints the admin key:\n${output}`);
  adminKey = key;
  proxy = await startProxy(new URL(server.url), seen);
  base = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}${PREFIX}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  // Open event streams would hold the proxy's close: end them.
  proxy?.closeAllConnections();
  await new Promise((resolve) => (proxy === undefined ? resolve(undefined) : proxy.close(resolve)));
  await server?.close();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

test('the dashboard works behind a reverse proxy that strips a path prefix', {
  skip,
  timeout: 40_000,
}, async () => {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  // Console errors, uncaught exceptions and every answer of 400 or more (a 404 included).
  const errors = watchConsole(page);
  const requested: string[] = [];
  page.on('request', (request) => requested.push(request.url()));
  page.on('requestfailed', (request) => {
    // Cancelled by the page itself, not failed: the event stream closed on the way out, or a
    // load superseded by a newer one (useLoad aborts it when the run's status changes again).
    const reason = request.failure()?.errorText;
    if (reason !== 'net::ERR_ABORTED') errors.push(`failed ${request.url()} ${reason}`);
  });

  try {
    // The login link, with the prefix: the key is traded for a cookie through the proxy.
    await page.goto(`${base}#key=${encodeURIComponent(adminKey)}`);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.equal(new URL(page.url()).pathname, PREFIX);
    assert.equal(new URL(page.url()).hash, '#/');
    const cookie = (await context.cookies(base)).find((c) => c.name === 'bulwark_session');
    assert.equal(cookie?.path, '/', 'the session cookie applies under the prefix');
    // The overview lists the examples' dependencies.
    for (const name of ['petstore', 'payments', 'notifications']) {
      await page.locator(`[data-dependency="${name}"]`).waitFor();
    }
    // The system stream, through the proxy: the badge says live.
    await page.locator('.top .live-live').waitFor();

    // A write with the cookie: started from the Workflows page, followed on its own page.
    await page.getByRole('link', { name: 'Workflows' }).first().click();
    const form = page.locator('[data-workflow="nightly-report"] form');
    await form.getByLabel('Input (JSON)').fill('{ "settleMs": 300 }');
    await form.getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL(/#\/runs\/[^/?]+$/);
    assert.equal(new URL(page.url()).pathname, PREFIX);
    // Its waterfall fills in live (the run's own stream, through the proxy) until it completes.
    await page.locator('[data-lane="publish"][data-status="completed"]').waitFor({ timeout: 15_000 });
    await page.locator('.title-row .status-completed').waitFor();
  } catch (error) {
    throw new Error(`${(error as Error).message}\npage errors: ${errors.join('\n')}`, {
      cause: error,
    });
  } finally {
    await context.close();
  }

  const origin = new URL(base).origin;
  const outside = requested.filter((url) => !url.startsWith(`${origin}${PREFIX}`));
  assert.deepEqual(outside, [], 'every request of the page stays under the prefix');
  assert.ok(
    requested.some((url) => url.startsWith(`${base}api/stream`)),
    'the page opened the system stream through the proxy',
  );
  assert.ok(
    requested.some((url) => /\/api\/workflows\/nightly-report\/runs$/.test(url)),
    'the run was started through the proxy',
  );
  assert.deepEqual(errors, [], 'the page logged errors or a request failed');
  // And the proxy saw nothing outside the prefix either (no 404 of its own).
  assert.deepEqual(
    seen.filter((line) => !line.split(' ')[1]!.startsWith(PREFIX)),
    [],
  );
});

test("the API's links resolve under the prefix, and the CSRF rule still holds there", {
  skip,
  timeout: 15_000,
}, async () => {
  const auth = { authorization: `Bearer ${adminKey}` };
  // The system stream through the proxy, open while a run starts: its frames come through as
  // they are written, the answer still going (a buffering proxy would hold them until the end).
  const listening = new AbortController();
  const stream = await fetch(`${base}api/stream`, { headers: auth, signal: listening.signal });
  assert.equal(stream.status, 200);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  const frames = stream.body!.pipeThrough(new TextDecoderStream()).getReader();

  // A started run's Location, resolved as a client resolves it, is the run under the prefix.
  const started = await fetch(`${base}api/workflows/nightly-report/runs`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ input: { settleMs: 0 } }),
  });
  assert.equal(started.status, 201, await started.clone().text());
  const run = (await started.json()) as { id: string };
  const location = new URL(started.headers.get('location')!, started.url);
  assert.equal(location.href, `${base}api/runs/${run.id}`);
  const fetched = await fetch(location, { headers: auth });
  assert.equal(fetched.status, 200);
  assert.equal(((await fetched.json()) as { id: string }).id, run.id);
  let received = '';
  while (!received.includes(run.id)) {
    const chunk = await frames.read();
    assert.equal(chunk.done, false, 'the stream stays open');
    received += chunk.value;
  }
  listening.abort();

  // The OpenAPI document's server, relative to the document, is the prefix.
  const documentUrl = `${base}api/openapi.json`;
  const document = (await (await fetch(documentUrl)).json()) as { servers: { url: string }[] };
  assert.equal(new URL(document.servers[0]!.url, documentUrl).href, base);
  // The reference page's links (its stylesheet, the document) stay under the prefix.
  const reference = await (await fetch(`${base}api/docs`)).text();
  for (const [, href] of reference.matchAll(/(?:href|src)="([^"#]+)"/g)) {
    const url = new URL(href!, `${base}api/docs`);
    assert.ok(url.href.startsWith(`${base}api/`), `${href} leaves the prefix`);
    assert.equal((await fetch(url)).status, 200, `${href} resolves`);
  }

  // A cookie write must still carry the dashboard's own Origin (the proxy's): a session from the
  // login, then a cancel from another origin is refused, and the same from the right one is not.
  const login = await fetch(`${base}api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: new URL(base).origin },
    body: JSON.stringify({ key: adminKey }),
  });
  assert.equal(login.status, 204, await login.text());
  const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  assert.match(login.headers.get('set-cookie')!, /; Path=\/(;|$)/);
  const sleeper = (await (
    await fetch(`${base}api/workflows/nightly-report/runs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { settleMs: 60_000 } }),
    })
  ).json()) as { id: string };
  const cancel = (origin: string) =>
    fetch(`${base}api/runs/${sleeper.id}/cancel`, {
      method: 'POST',
      headers: { cookie, origin, 'content-type': 'application/json' },
      body: '{}',
    });
  assert.equal((await cancel('http://evil.example')).status, 403);
  // The server's direct address is refused too: the rule compares with the Host passed on.
  assert.equal((await cancel(new URL(server!.url).origin)).status, 403);
  const allowed = await cancel(new URL(base).origin);
  assert.equal(allowed.status, 202, await allowed.text());

  // Outside the prefix, the proxy answers 404 itself: nothing reaches the server.
  const before = seen.length;
  const stray = await fetch(new URL('/api/runs', base), { headers: auth });
  assert.equal(stray.status, 404);
  assert.match(await stray.text(), /nothing is served outside/);
  assert.equal(seen.length, before + 1);
});
