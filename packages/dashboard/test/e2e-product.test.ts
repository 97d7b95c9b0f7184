// The product as a new user meets it, in headless Chromium: the server started as `npm start`
// starts it (no configuration file: the built-in examples, a generated admin key, the login link
// printed), the link opened, the dependencies and workflows listed, and site-to-document run from
// its form to a Markdown file on disk. Then the runs list with 100,000 runs in the store: the
// total, a DOM that stays small wherever the list is scrolled, the middle, a drag and the end each
// reached with a few requests by offset, the oldest runs at the end, and a search by correlation
// id kept in the URL across a reload.
// No console error; no serious or critical axe violation; screenshots in test-output/dashboard/.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type StartedServer, startServer } from '@bulwark/server';
import { openSqliteStore } from '@bulwark/workflow';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { ROW_HEIGHT } from '../app/virtual.ts';
import {
  ensureDashboardBuilt,
  launchBrowser,
  seriousViolations,
  shots,
  skip,
  watchConsole,
} from './support.ts';

let browser: Browser | undefined;
const dirs: string[] = [];

before(async () => {
  if (skip !== false) return;
  await ensureDashboardBuilt();
  await mkdir(shots, { recursive: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** The server as `npm start` starts it without a bulwark.yaml, and the login link it printed. */
async function startLikeNpmStart(
  dataDir: string,
  config?: string,
): Promise<{ server: StartedServer; login: string }> {
  let output = '';
  // `env: {}`: no BULWARK_API_KEYS nor BULWARK_DATABASE_URL from the machine running the test, so
  // the admin key is generated and printed, as on a first `npm start`.
  const server = await startServer({
    examples: true,
    ...(config === undefined ? {} : { config }),
    port: 0,
    dataDir,
    env: {},
    stdout: { write: (text: string) => (output += text) },
  });
  const login = /dashboard: +(http:\/\/\S+\/#key=\S+)/.exec(output)?.[1];
  assert.ok(login !== undefined, `the banner has a login link:\n${output}`);
  if (config === undefined) assert.match(output, /built-in examples/);
  return { server, login };
}

/** The API as a script would call it, with the key of the login link. */
async function api(server: StartedServer, login: string, path: string): Promise<any> {
  const key = decodeURIComponent(new URL(login).hash.slice('#key='.length));
  const response = await fetch(`${server.url}/api/${path}`, { headers: { authorization: `Bearer ${key}` } });
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.json();
}

/** Runs `journey` in a fresh page; on failure, a screenshot of what the page showed. */
async function inPage(
  name: string,
  journey: (page: Page, violations: string[]) => Promise<void>,
): Promise<{ errors: string[]; violations: string[] }> {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const errors = watchConsole(page);
  const violations: string[] = [];
  try {
    await journey(page, violations);
  } catch (error) {
    await page.screenshot({ path: join(shots, `failure-${name}.png`), fullPage: true }).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
  return { errors, violations };
}

const GUIDE_TITLE = 'Adopting a pet: a short guide';

test('a new user opens the login link, sees the examples and runs site-to-document from the page', {
  skip,
  timeout: 58_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-dashboard-product-'));
  dirs.push(dir);
  const dataDir = join(dir, 'data');
  const { server, login } = await startLikeNpmStart(dataDir);
  try {
    const { errors, violations } = await inPage('new-user', async (page, violations) => {
      await page.goto(login);
      // The overview: the four built-in dependencies, live.
      for (const name of ['petstore', 'payments', 'notifications', 'web'])
        await page.locator(`[data-dependency="${name}"]`).waitFor();
      await page.locator('.top .live-live').waitFor();
      assert.equal(new URL(page.url()).hash, '#/', 'the key left the address bar');
      await page.screenshot({ path: join(shots, 'product-overview.png'), fullPage: true });

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workflows' }).click();
      for (const name of ['adopt-pet', 'nightly-report', 'site-to-document'])
        await page.locator(`[data-workflow="${name}"]`).waitFor();
      await page.screenshot({ path: join(shots, 'product-workflows.png'), fullPage: true });
      // A start form holds the workflow's example input, so the first run a new user starts works.
      const adoptInput = page.locator('[data-workflow="adopt-pet"] form').getByLabel('Input (JSON)');
      assert.deepEqual(JSON.parse(await adoptInput.inputValue()), { pet: 'luna', adopter: 'Ada Lovelace' });
      violations.push(...(await seriousViolations(page, 'workflows page')));

      // The pet shop answers 503 now and then on purpose; two failed fetches in a row (under 1%)
      // end the run degraded with a "Site unavailable" document: then the user starts it again.
      let run: any;
      for (let attempt = 1; attempt <= 3; attempt++) {
        if (attempt > 1) await page.goto(`${server.url}/#/workflows`);
        const form = page.locator('[data-workflow="site-to-document"] form');
        // Its example: the example pet shop's page, which the default input reads too.
        const { url, ...rest } = JSON.parse(await form.getByLabel('Input (JSON)').inputValue());
        assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/pages\/adoption-guide$/);
        assert.deepEqual(rest, {});
        await form.getByRole('button', { name: 'Start run' }).click();
        await page.waitForURL(/#\/runs\/[^/?]+$/);
        const id = decodeURIComponent(new URL(page.url()).hash.slice('#/runs/'.length));
        await page.locator('.title-row .status-completed').waitFor({ timeout: 20_000 });
        for (const lane of ['source', 'fetch', 'page', 'document', 'store'])
          await page.locator(`[data-lane="${lane}"][data-status="completed"]`).waitFor();
        run = await api(server, login, `runs/${id}`);
        if (!run.degraded) break;
        console.log(`site-to-document run ${id} ended degraded (the pet shop failed twice); again`);
      }
      assert.equal(run.degraded, false);
      assert.equal(run.output.title, GUIDE_TITLE);
      await page.getByText(GUIDE_TITLE).first().waitFor();
      await page.screenshot({ path: join(shots, 'product-run.png'), fullPage: true });
      violations.push(...(await seriousViolations(page, 'run page')));

      // The document it wrote, under the data directory's files/documents/.
      const documents = join(dataDir, 'files/documents');
      const written = (await readdir(documents)).filter((name) => name.endsWith('.md'));
      assert.ok(written.length >= 1, `a Markdown document in ${documents}`);
      const text = await readFile(join(documents, written[0]!), 'utf8');
      assert.match(text, new RegExp(`^# ${GUIDE_TITLE}\\n`));
      assert.match(text, /Reserve a pet/);
    });
    assert.deepEqual(errors, [], 'the page logged errors');
    assert.deepEqual(violations, [], 'axe found serious or critical violations');
  } finally {
    await server.close();
  }
});

const RUNS = 100_000;
/** The correlation id a few seeded runs share, for the search. */
const NEEDLE = 'order-7f3a9c';
const NEEDLE_AT = [3, 24_999, 50_000, 77_777, 99_998];
const STATUSES = ['completed', 'completed', 'completed', 'failed', 'cancelled', 'compensated'];
const WORKFLOWS = ['adopt-pet', 'nightly-report', 'site-to-document'];
/** The runs list's page size (runs.tsx): the API's largest. */
const PAGE_SIZE = 500;

/**
 * 100,000 finished runs straight into a migrated store's file, in one transaction (about a
 * second), before the server opens it. `store.enqueue` is the store's only bulk write, and it
 * makes queued runs (each with its `run:queued` event) that the engine would then claim and run;
 * a list of past runs in every final status needs rows as the engine leaves them.
 * Returns the run ids, oldest first (index i was created i seconds after the first).
 */
async function seedRuns(dataDir: string, count = RUNS): Promise<string[]> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, 'bulwark.db');
  const store = await openSqliteStore({ path });
  await store.migrate();
  await store.close();
  const db = new Database(path);
  const insert = db.prepare(`INSERT INTO bulwark_runs (id, workflow, version, status, priority, input, output,
      error, progress, available_at, correlation_id, created_at, updated_at, finished_at)
    VALUES (@id, @workflow, '1', @status, 0, @input, @output, @error, @progress, @at, @correlation,
      @at, @finished, @finished)`);
  const ids: string[] = [];
  const start = Date.now() - count * 1_000 - 60_000;
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const id = randomUUID();
      ids.push(id);
      const status = STATUSES[i % STATUSES.length]!;
      const at = start + i * 1_000;
      insert.run({
        id,
        workflow: WORKFLOWS[i % WORKFLOWS.length],
        status,
        input: JSON.stringify({ n: i }),
        output: status === 'completed' ? JSON.stringify({ n: i }) : null,
        error: status === 'completed' ? null : JSON.stringify({ name: 'Error', message: `seeded ${status}` }),
        progress: status === 'completed' ? 100 : 40,
        at,
        correlation: NEEDLE_AT.includes(i) ? NEEDLE : i % 10 === 0 ? `batch-${i}` : null,
        finished: at + 500,
      });
    }
  })();
  db.close();
  return ids;
}

/** The runs list's state as the page shows it: row elements, its length, the drawn rows and indexes. */
const LIST_STATE = `(() => {
  const viewport = document.querySelector('.vviewport');
  const rows = [...viewport.querySelectorAll('tr.vrow')];
  return {
    rowElements: document.querySelectorAll('tr').length,
    length: Math.round(parseFloat(viewport.querySelector('.vspacer').style.height) / ${ROW_HEIGHT}),
    scrollTop: viewport.scrollTop,
    ids: rows.map((r) => r.querySelector('a').textContent),
    indexes: rows.map((r) => Number(r.getAttribute('aria-rowindex')) - 2),
  };
})()`;

interface ListState {
  rowElements: number;
  /** The list's length as its scrollbar has it (the spacer's height in rows). */
  length: number;
  scrollTop: number;
  ids: string[];
  indexes: number[];
}

/**
 * Scrolls the list a page at a time to the end and back, resting 100 ms at each page (longer
 * than the list waits for a scroll to settle, so each stop asks for its page), as a reader
 * paging through fast would. In the page: one round trip.
 */
const sweep = (count: number) => `(async () => {
  const viewport = document.querySelector('.vviewport');
  const pages = Math.ceil(${count} / ${PAGE_SIZE});
  const stops = [...Array(pages).keys()];
  for (const p of [...stops, ...stops.reverse()]) {
    viewport.scrollTop = p * ${PAGE_SIZE * ROW_HEIGHT};
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
})()`;

test('the runs list stays small and reaches the end with 100,000 runs; a search by correlation id narrows it', {
  skip,
  timeout: 58_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-dashboard-runs-'));
  dirs.push(dir);
  const dataDir = join(dir, 'data');
  const seededAt = performance.now();
  const ids = await seedRuns(dataDir);
  console.log(`seeded ${RUNS} runs in ${Math.round(performance.now() - seededAt)} ms`);
  const { server, login } = await startLikeNpmStart(dataDir);
  try {
    assert.equal((await api(server, login, 'runs/count')).total, RUNS);
    const { errors, violations } = await inPage('runs-100k', async (page, violations) => {
      // Signed in on the overview first, so that the timing below is the runs page's own.
      await page.goto(login);
      await page.locator('[data-dependency="petstore"]').waitFor();
      /** Every list request (not the count, not one run), with its position. */
      const requests: { limit: string | null; offset: string | null; cursor: string | null }[] = [];
      let limited = 0;
      page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.pathname === '/api/runs')
          requests.push({
            limit: url.searchParams.get('limit'),
            offset: url.searchParams.get('offset'),
            cursor: url.searchParams.get('cursor'),
          });
      });
      page.on('response', (response) => {
        if (new URL(response.url()).pathname === '/api/runs' && response.status() === 429) limited++;
      });
      const state = () => page.evaluate<ListState>(LIST_STATE);

      const opened = performance.now();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
      await page.locator('.vviewport tr.vrow').first().waitFor();
      const firstRowsMs = performance.now() - opened;
      await page.getByText(`${RUNS.toLocaleString('en')} runs`).waitFor();

      // The top: the newest run first, a few dozen rows drawn, one page fetched, the scrollbar
      // as long as the whole list.
      const top = await state();
      assert.equal(top.ids[0], ids.at(-1), 'the newest run is first');
      assert.ok(top.rowElements < 100, `${top.rowElements} rows in the DOM at the top`);
      assert.equal(top.length, RUNS, 'the list is as long as the count');
      assert.deepEqual(requests, [{ limit: String(PAGE_SIZE), offset: '0', cursor: null }]);
      await page.screenshot({ path: join(shots, 'runs-100k-top.png') });
      violations.push(...(await seriousViolations(page, 'runs list, 100,000 runs')));

      /**
       * Moves the scrollbar to `row` (through `via` first, a frame each, as a drag passes them),
       * waits for that row to be drawn, and answers how long it took and the list requests made.
       */
      const jump = async (row: number, via: number[] = []) => {
        const before = requests.length;
        const started = performance.now();
        await page.evaluate(`(async () => {
          const viewport = document.querySelector('.vviewport');
          for (const top of ${JSON.stringify([...via, row].map((r) => r * ROW_HEIGHT))}) {
            viewport.scrollTop = top;
            await new Promise((resolve) => requestAnimationFrame(resolve));
          }
        })()`);
        await page.locator(`.vviewport tr.vrow[aria-rowindex="${row + 2}"]`).waitFor();
        const ms = performance.now() - started;
        // Let anything still scheduled go out before counting.
        await new Promise((resolve) => setTimeout(resolve, 300));
        return { ms, made: requests.slice(before) };
      };

      // The middle: a few requests, as many rows drawn as at the top, the ones at that position.
      const middle = RUNS / 2;
      const toMiddle = await jump(middle);
      assert.ok(toMiddle.made.length <= 4, `${toMiddle.made.length} list requests to reach the middle`);
      const mid = await state();
      assert.ok(mid.rowElements < 100, `${mid.rowElements} rows in the DOM in the middle`);
      const at = mid.indexes.indexOf(middle);
      assert.equal(mid.ids[at], ids[RUNS - 1 - middle], 'the row drawn at an index is the run at that index');
      await page.screenshot({ path: join(shots, 'runs-100k-middle.png') });

      // A drag from the middle to three quarters, a frame at each of 30 positions on the way:
      // the pages where it stops are fetched, not those it passed.
      const quarter = (RUNS * 3) / 4;
      const passed = Array.from(
        { length: 30 },
        (_, i) => middle + Math.round(((i + 1) * (quarter - middle)) / 31),
      );
      const dragged = await jump(quarter, passed);
      assert.ok(dragged.made.length <= 4, `${dragged.made.length} list requests for a drag over 50 pages`);
      const q3 = await state();
      assert.equal(q3.ids[q3.indexes.indexOf(quarter)], ids[RUNS - 1 - quarter]);

      // The end: the oldest last, still a small DOM.
      const toEnd = await jump(RUNS - 1);
      assert.ok(toEnd.made.length <= 4, `${toEnd.made.length} list requests to reach the end`);
      await page.evaluate(`(v => { v.scrollTop = v.scrollHeight })(document.querySelector('.vviewport'))`);
      await page.locator(`.vviewport tr.vrow[aria-rowindex="${RUNS + 1}"]`).waitFor();
      const end = await state();
      assert.ok(end.rowElements < 100, `${end.rowElements} rows in the DOM at the end`);
      assert.equal(end.ids.at(-1), ids[0], 'the oldest run is last');
      assert.equal(end.ids.at(-2), ids[1]);
      await page.screenshot({ path: join(shots, 'runs-100k-end.png') });

      // Every request a whole page at a page's offset, never by cursor; none repeated but after
      // a 429 (the list waits the Retry-After and asks again).
      for (const r of requests) {
        assert.equal(r.limit, String(PAGE_SIZE));
        assert.equal(r.cursor, null);
        assert.equal(Number(r.offset) % PAGE_SIZE, 0, `offset ${r.offset} is a page's`);
      }
      assert.equal(new Set(requests.map((r) => r.offset)).size, requests.length - limited);
      console.log(
        `runs page, ${RUNS} runs: first rows after ${Math.round(firstRowsMs)} ms; the middle after ${Math.round(toMiddle.ms)} ms and ${toMiddle.made.length} list requests, a drag to 3/4 after ${Math.round(dragged.ms)} ms and ${dragged.made.length}, the end after ${Math.round(toEnd.ms)} ms and ${toEnd.made.length}; ${requests.length} list requests of ${PAGE_SIZE} in all (${limited} answered 429 and repeated); at most ${Math.max(top.rowElements, mid.rowElements, end.rowElements)} rows in the DOM`,
      );

      // A search by correlation id: the few runs that carry it, newest first, kept in the URL.
      await page.getByLabel('Search').fill(NEEDLE);
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.getByText(`${NEEDLE_AT.length.toLocaleString('en')} runs`).waitFor();
      const expected = NEEDLE_AT.map((i) => ids[i]).reverse();
      /** The ids listed once the list has settled on as many rows as the search finds. */
      const found = async () => {
        const until = Date.now() + 10_000;
        let ids = (await state()).ids;
        while (ids.length !== NEEDLE_AT.length && Date.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          ids = (await state()).ids;
        }
        return ids;
      };
      assert.deepEqual(await found(), expected);
      assert.equal(new URL(page.url()).hash, `#/runs?q=${NEEDLE}`);
      await page.reload();
      await page.getByText(`${NEEDLE_AT.length.toLocaleString('en')} runs`).waitFor();
      assert.deepEqual(await found(), expected);
      assert.equal(await page.getByLabel('Search').inputValue(), NEEDLE);
      await page.screenshot({ path: join(shots, 'runs-100k-search.png') });
      violations.push(...(await seriousViolations(page, 'runs list, searched')));
    });
    // The rate limit's 429s are answers the list handles (it waits and asks again); Chromium logs
    // each as a failed load. Anything else is an error.
    assert.deepEqual(
      errors.filter((e) => !/\b429\b/.test(e)),
      [],
      'the page logged errors',
    );
    assert.ok(
      errors.every((e) => !/\b429\b/.test(e) || /\/api\/runs\?|Too Many Requests/.test(e)),
      `only the list's requests were rate-limited:\n${errors.join('\n')}`,
    );
    assert.deepEqual(violations, [], 'axe found serious or critical violations');
  } finally {
    await server.close();
  }
});

test('the runs list waits out the rate limit while paging fast, and reaches the end', {
  skip,
  timeout: 58_000,
}, async () => {
  // A limit small enough for a fast sweep through 10 pages and back to meet it: 2 requests a second.
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-dashboard-limit-'));
  dirs.push(dir);
  const dataDir = join(dir, 'data');
  const count = 5_000;
  const ids = await seedRuns(dataDir, count);
  await writeFile(
    join(dir, 'bulwark.yaml'),
    'server:\n  logLevel: warn\n  rateLimit: { perMinute: 120, burst: 15 }\n  loadShedding: { maxEventLoopDelay: 60s }\n',
  );
  const { server, login } = await startLikeNpmStart(dataDir, join(dir, 'bulwark.yaml'));
  try {
    let limited = 0;
    const { errors } = await inPage('runs-rate-limited', async (page) => {
      page.on('response', (response) => {
        if (new URL(response.url()).pathname === '/api/runs' && response.status() === 429) limited++;
      });
      await page.goto(login);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
      await page.getByText(`${count.toLocaleString('en')} runs`).waitFor();
      // Sweeps until the server has refused some requests (the second sweep at the latest).
      for (let round = 0; round < 4 && limited === 0; round++) await page.evaluate(sweep(count));
      assert.ok(limited > 0, 'the server answered some list requests 429');
      await page.evaluate(`(v => { v.scrollTop = v.scrollHeight })(document.querySelector('.vviewport'))`);
      await page.locator(`.vviewport tr.vrow[aria-rowindex="${count + 1}"]`).waitFor();
      assert.equal((await page.evaluate<ListState>(LIST_STATE)).ids.at(-1), ids[0]);
      assert.equal(await page.getByRole('alert').count(), 0, 'no error shown');
    });
    assert.ok(limited > 0, 'the server answered some list requests 429');
    console.log(
      `rate-limited list: ${limited} requests answered 429, each asked again after its Retry-After`,
    );
    assert.deepEqual(
      errors.filter((e) => !/\b429\b/.test(e)),
      [],
      'the page logged errors',
    );
  } finally {
    await server.close();
  }
});
