// The site-to-document workflow as the default configuration ships it, end to end: a page served
// on loopback fetched through the `web` dependency, extracted, and written as Markdown into the
// storage directory, by the real engine on a SQLite file; and the degraded path with the site
// down or answering 503. Then the same through `bulwark start` and the HTTP API.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { EXAMPLES_CONFIG, EXAMPLES_URL_VARIABLE } from '../src/examples/config.ts';
import { startServer } from '../src/start.ts';
import { deadUrl, declared, site } from './declarative-support.ts';

const PAGE = `<!doctype html>
<html><head><title>Resilience &amp; you</title><script>track()</script></head>
<body>
  <nav><a href="/">Home</a></nav>
  <main>
    <h1>Resilience &amp; you</h1>
    <p>Retries need <em>budgets</em>; see <a href="/guides/retry">the retry guide</a>.</p>
    <ul><li>Timeouts</li><li>Breakers</li></ul>
  </main>
  <footer>© example</footer>
</body></html>`;

/** The default configuration, its example upstream URL pointing at `base` (unused by these runs but required). */
function defaults(base: string) {
  return { yaml: EXAMPLES_CONFIG, env: { [EXAMPLES_URL_VARIABLE]: base } };
}

describe('site-to-document from the default configuration', () => {
  test('fetches the page on loopback, extracts it and writes documents/<slug>.md', async (t) => {
    const web = await site((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    });
    t.after(() => web.close());
    const { yaml, env } = defaults(web.url);
    const wf = await declared(yaml, env);
    t.after(() => wf.close());

    const run = await wf.run('site-to-document', { url: `${web.url}/articles/resilience` });
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(run.degraded, false);
    const output = run.output as { document: string; title: string; bytes: number; links: unknown };
    assert.equal(output.document, 'documents/resilience-you.md');
    assert.equal(output.title, 'Resilience & you');
    assert.deepEqual(output.links, [{ text: 'the retry guide', href: `${web.url}/guides/retry` }]);

    const text = readFileSync(join(wf.files, 'documents', 'resilience-you.md'), 'utf8');
    assert.equal(output.bytes, Buffer.byteLength(text));
    assert.equal(
      text,
      [
        '# Resilience & you',
        '',
        `Source: <${web.url}/articles/resilience>`,
        '',
        '# Resilience & you',
        '',
        `Retries need *budgets*; see [the retry guide](${web.url}/guides/retry).`,
        '',
        '- Timeouts',
        '- Breakers',
        '',
      ].join('\n'),
    );
    assert.deepEqual(web.requests, ['GET /articles/resilience']);
    // Every step is on the timeline, in order, and the run ends completed.
    const timeline = await wf.timeline(run.id);
    assert.deepEqual(
      timeline.filter((e) => e.type === 'step:completed').map((e) => e.step),
      ['source', 'fetch', 'page', 'document', 'store'],
    );
    assert.equal(timeline.at(-1)?.type, 'run:completed');
  });

  test('with the site down the run completes degraded with a short "site unavailable" document', async (t) => {
    const url = `${await deadUrl()}/articles/resilience`;
    const { yaml, env } = defaults('http://127.0.0.1:9');
    const wf = await declared(yaml, env);
    t.after(() => wf.close());

    const run = await wf.run('site-to-document', { url });
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(run.degraded, true);
    const output = run.output as { document: string; title: string };
    assert.equal(output.document, 'documents/site-unavailable.md');
    const text = readFileSync(join(wf.files, output.document), 'utf8');
    // The fallback's page went through extract like a real one: its title, then its one paragraph.
    const escaped = url.replaceAll('.', '\\.');
    assert.match(
      text,
      new RegExp(
        `^# Site unavailable\n\nSource: <${escaped}>\n\n${escaped} could not be fetched: .*ECONNREFUSED[^\n]*\n$`,
      ),
    );
    const timeline = await wf.timeline(run.id);
    const fallback = timeline.find((e) => e.type === 'step:fallback');
    assert.equal(fallback?.step, 'fetch');
    // Both the dependency's retries and the step's own ran before the fallback: 2 attempts of the step.
    assert.equal((fallback?.data as { attempts?: number } | undefined)?.attempts, 2);
    assert.equal(timeline.at(-1)?.type, 'run:degraded');
  });

  test('a site answering 503 is retried, then the run completes degraded', async (t) => {
    const web = await site((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down for maintenance');
    });
    t.after(() => web.close());
    const { yaml, env } = defaults(web.url);
    const wf = await declared(yaml, env);
    t.after(() => wf.close());

    const run = await wf.run('site-to-document', { url: `${web.url}/a` });
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal(run.degraded, true);
    // The web dependency tries twice per attempt of the step, and the step makes two attempts.
    assert.deepEqual(web.requests, ['GET /a', 'GET /a', 'GET /a', 'GET /a']);
    const text = readFileSync(join(wf.files, 'documents', 'site-unavailable.md'), 'utf8');
    assert.match(text, /HTTP 503 Service Unavailable from GET/);
  });
});

describe('site-to-document through bulwark start and the HTTP API', () => {
  test('POST /api/workflows/site-to-document/runs writes the example page into <dataDir>/files', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-s2d-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const server = await startServer({
      port: 0,
      dataDir: dir,
      env: { BULWARK_SERVER__LOADSHEDDING__MAXEVENTLOOPDELAY: '10s' },
      stdout: { write: () => {} },
    });
    t.after(() => server.close());
    const headers = {
      authorization: `Bearer ${server.settings.apiKeys[0]!.secret}`,
      'content-type': 'application/json',
    };
    // No input: the workflow's default URL is the example upstream's page.
    const started = await fetch(`${server.url}/api/workflows/site-to-document/runs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ input: {} }),
    });
    assert.equal(started.status, 201);
    const { id } = (await started.json()) as { id: string };
    const deadline = Date.now() + 20_000;
    let run: { status: string; degraded: boolean; output: { document: string; title: string } } | undefined;
    while (Date.now() < deadline) {
      run = (await (await fetch(`${server.url}/api/runs/${id}`, { headers })).json()) as typeof run;
      if (['completed', 'failed', 'compensated', 'cancelled'].includes(run!.status)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(run?.status, 'completed', JSON.stringify(run));
    assert.equal(run?.output.title, 'Adopting a pet: a short guide');
    assert.equal(run?.output.document, 'documents/adopting-a-pet-a-short-guide.md');
    const file = join(dir, 'files', 'documents', 'adopting-a-pet-a-short-guide.md');
    assert.ok(existsSync(file));
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^# Adopting a pet: a short guide\n/);
    assert.match(text, /1\. Reserve a pet: it is held for you\./);
    assert.doesNotMatch(text, /analytics|Home \| Pets|served by Bulwark/);
  });
});
