// The dashboard end to end, in headless Chromium: built with Vite, served by the real server
// (a bulwark.yaml in a temp dir, one dependency on a loopback upstream the test makes fail on
// purpose). An operator signs in with a login link (the key in the fragment); a run started from
// the page is followed live on its waterfall; the dependency is isolated with an expiry (a run
// bound to it parks, listed with the reason) and reset (the run goes on at once); then its
// circuit is tripped for real, the run that parks on it is listed with the policy that stopped
// it, and a reset lets it go on. A viewer signs in with the form and gets no actions.
// No console error (CSP violations included) and no serious or critical axe violation, in light
// and dark mode; screenshots go to test-output/dashboard/.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type StartedServer, startServer } from '@bulwark/server';
import { defineWorkflow } from '@bulwark/workflow';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { dateTime } from '../app/parts/format.ts';
import {
  ensureDashboardBuilt,
  eventually,
  launchBrowser,
  seriousViolations,
  shots,
  skip,
  watchConsole,
} from './support.ts';

/** How long the tripped circuit stays open: the parked run waits this long at most. */
const OPEN_S = 12;

const CONFIG = `dependencies:
  inventory:
    kind: generic
    description: A loopback upstream the test switches between healthy and failing
    timeout: 2s
    retry: false
    breaker: { window: { kind: consecutive, failures: 2 }, open: ${OPEN_S}s }
schedules:
  # On the last tick (1 January) at start: one run, its tick shown as the last.
  new-year-tidy-up:
    cron: '0 0 1 1 *'
    timezone: UTC
    workflow: tidy-up
  # Never due during a test: 29 February, Paris time; no catch-up.
  leap-day-import:
    cron: '30 2 29 2 *'
    timezone: Europe/Paris
    workflow: import-item
    priority: high
    catchUp: none
server:
  logLevel: warn
  # A machine shared with Vite and Chromium stalls its event loop now and then: no shedding.
  loadShedding: { maxEventLoopDelay: 60s }
`;

/** The upstream: `{ id }` while healthy, 503 while `failing`. */
let failing = false;
let upstream: Server | undefined;
let upstreamUrl = '';

class UpstreamError extends Error {
  constructor(readonly status: number) {
    super(`the upstream answered ${status}`);
  }
}

/** Fetches an item through `inventory`, sleeps (a durable sleep, to watch live), then stores it. */
const importItem = defineWorkflow(
  {
    name: 'import-item',
    version: '1',
    description: 'Fetches an item from the inventory, lets it settle, stores it',
    steps: ['fetch', 'sleep:settle', 'store'],
  },
  async (ctx, input: { settleMs?: number }) => {
    const item = await ctx.step(
      'fetch',
      { dependency: 'inventory', retry: { maxAttempts: 5, baseMs: 150, maxMs: 150, jitter: 0 } },
      async ({ signal }) => {
        const response = await fetch(`${upstreamUrl}/item`, { signal });
        if (!response.ok) throw new UpstreamError(response.status);
        return (await response.json()) as { id: string };
      },
    );
    await ctx.sleep('settle', input?.settleMs ?? 0);
    return ctx.step('store', () => ({ stored: item.id }));
  },
);

/** What the yearly schedule starts. */
const tidyUp = defineWorkflow(
  { name: 'tidy-up', version: '1', description: 'Sweeps nothing, once a year', steps: ['sweep'] },
  async (ctx) => ctx.step('sweep', () => ({ swept: 0 })),
);

let server: StartedServer | undefined;
let browser: Browser | undefined;
let dir = '';
let output = '';
const ADMIN_KEY = 'e2e-admin-key-0123456789abcdef';
const VIEWER_KEY = 'e2e-viewer-key-0123456789abcdef';

before(async () => {
  if (skip !== false) return;
  // Not a fresh build each time: emptying dist/ would pull it from under the other browser test
  // files' servers when node --test runs them side by side.
  await ensureDashboardBuilt();
  upstream = createServer((_request, response) => {
    response.writeHead(failing ? 503 : 200, { 'content-type': 'application/json' });
    response.end(failing ? '{"error":"down"}' : '{"id":"item-1"}');
  });
  await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  dir = await mkdtemp(join(tmpdir(), 'bulwark-dashboard-e2e-'));
  await writeFile(join(dir, 'bulwark.yaml'), CONFIG);
  server = await startServer({
    config: join(dir, 'bulwark.yaml'),
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir, 'data'),
    workflows: [importItem, tidyUp],
    env: { BULWARK_API_KEYS: `ada:admin:${ADMIN_KEY},vera:viewer:${VIEWER_KEY}` },
    stdout: { write: (text: string) => (output += text) },
  });
  assert.match(output, /listening on/);
  await mkdir(shots, { recursive: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await new Promise((resolve) => (upstream === undefined ? resolve(undefined) : upstream.close(resolve)));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** The API as a script would call it, with the admin key. */
async function api(path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${server!.url}/api/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  assert.ok(response.ok, `${path}: ${response.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

test('the dashboard signs in, follows a run live, isolates, parks and resets a dependency', {
  skip,
  timeout: 58_000,
}, async () => {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const errors = watchConsole(page);
  const violations: string[] = [];
  try {
    await journey(page, context, violations);
  } catch (error) {
    // What the page showed when it went wrong, beside the other screenshots.
    await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
  assert.deepEqual(errors, [], 'the page logged errors');
  assert.deepEqual(violations, [], 'axe found serious or critical violations');
});

test('a viewer signs in with the form and gets a read-only dashboard', {
  skip,
  timeout: 30_000,
}, async () => {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors = watchConsole(page);
  try {
    await page.goto(`${server!.url}/`);
    // A wrong key is refused with the server's own words, and nothing else is shown.
    await page.getByLabel('API key').fill('not-a-key-of-this-server-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'The API key is not valid' }).waitFor();
    await page.getByLabel('API key').fill(VIEWER_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('vera').waitFor();
    await page.goto(`${server!.url}/#/dependencies/inventory`);
    await page.getByText('Isolate and reset need an operator key; vera is a viewer.').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Isolate…' }).count(), 0);
    await page.goto(`${server!.url}/#/workflows`);
    await page.getByText('Starting runs needs an operator key; vera is a viewer.').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Start run' }).count(), 0);
    await page.screenshot({ path: join(shots, 'viewer.png'), fullPage: true });
    // Signing out ends the session: the form again, and the cookie is gone.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    assert.equal(
      (await context.cookies()).find((c) => c.name === 'bulwark_session'),
      undefined,
    );
  } catch (error) {
    await page.screenshot({ path: join(shots, 'failure-viewer.png'), fullPage: true }).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
  // The refused key's 401 is the one error the page may log: it is the answer being shown.
  assert.deepEqual(
    errors.filter((e) => !/401/.test(e)),
    [],
    'the page logged errors',
  );
});

test('the Workflows page asks for the schedules again once the earliest next tick has passed', {
  skip,
  timeout: 30_000,
}, async () => {
  const { items } = await api('schedules');
  const earliest = Math.min(...items.map((s: { next: number }) => s.next));
  const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors = watchConsole(page);
  // The page's own clock, moved by the test; the server keeps the real one, so its `next` stays.
  await page.clock.install();
  let asked = 0;
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/schedules') asked++;
  });
  const askedAgain = (count: number) =>
    eventually(() => asked >= count, `request ${count} for the schedules`);
  try {
    await page.goto(`${server!.url}/#key=${encodeURIComponent(ADMIN_KEY)}`);
    await page.locator('[data-dependency="inventory"]').waitFor();
    await page.goto(`${server!.url}/#/workflows`);
    const row = page.locator('tr[data-schedule="new-year-tidy-up"]');
    await row.waitFor();
    await askedAgain(1);
    // Before the tick, the clock turns and the page only updates its "in …".
    await page.clock.runFor(60_000);
    assert.equal(asked, 1);
    // Past it: asked again at the clock's next turn, and at each one after while the server
    // still gives the tick that has passed (here, for good: its clock is behind the page's).
    await page.clock.setSystemTime(earliest + 1);
    await page.clock.runFor(15_000);
    await askedAgain(2);
    await row.locator('td', { hasText: 'due now' }).first().waitFor();
    await page.clock.runFor(15_000);
    await askedAgain(3);
  } finally {
    await context.close();
  }
  assert.deepEqual(errors, [], 'the page logged errors');
});

async function journey(page: Page, context: BrowserContext, violations: string[]): Promise<void> {
  const base = server!.url;

  // Signing in with a login link (what `bulwark start` prints: the key in the fragment, which no
  // server sees): the key leaves the URL; the cookie is HttpOnly and SameSite=Strict.
  await page.goto(`${base}/#key=${encodeURIComponent(ADMIN_KEY)}`);
  await page.locator('[data-dependency="inventory"] .state-closed').waitFor();
  assert.equal(new URL(page.url()).hash, '#/');
  const cookie = (await context.cookies()).find((c) => c.name === 'bulwark_session');
  assert.equal(cookie?.httpOnly, true);
  assert.equal(cookie?.sameSite, 'Strict');
  await page.locator('.top .live-live').waitFor();
  await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
  violations.push(...(await seriousViolations(page, 'overview')));

  // Each workflow lists the schedules that start it, with the next and last ticks the API gives.
  await page.goto(`${base}/#/workflows`);
  const { items: schedules } = await api('schedules');
  const leap = schedules.find((s: { name: string }) => s.name === 'leap-day-import');
  assert.ok(leap !== undefined, 'the API lists leap-day-import');
  const leapRow = page.locator('[data-testid="schedules-import-item"] tr[data-schedule="leap-day-import"]');
  await leapRow.waitFor();
  // Each card lists its own workflow's schedules, and only those.
  assert.equal(await page.locator('[data-testid="schedules-import-item"] tbody tr').count(), 1);
  assert.equal(await page.locator('[data-testid="schedules-tidy-up"] tbody tr').count(), 1);
  assert.equal(await leapRow.locator('th').innerText(), 'leap-day-import');
  const leapCells = await leapRow.locator('td').allInnerTexts();
  assert.match(leapCells[0]!, /30 2 29 2 \*\s+Europe\/Paris/);
  // The app's own format, here: the browser and this process share the machine's time zone.
  assert.ok(leapCells[1]!.startsWith(dateTime(leap.next)), `next tick: ${leapCells[1]}`);
  assert.match(leapCells[1]!, /in \d+ d( \d+ h)?$/);
  assert.deepEqual(leapCells.slice(2), ['none yet', 'high', 'none']);
  // The start caught up the tick of 1 January: once its run is stored, that is the last tick.
  const newYear = Date.UTC(new Date().getUTCFullYear(), 0, 1);
  await eventually(
    async () =>
      (await api('schedules')).items.find((s: { name: string }) => s.name === 'new-year-tidy-up').lastTick ===
      newYear,
    'the catch-up run was stored within 5 s',
  );
  await page.reload();
  const tidyRow = page.locator('[data-testid="schedules-tidy-up"] tr[data-schedule="new-year-tidy-up"]');
  await tidyRow.waitFor();
  const tidyCells = await tidyRow.locator('td').allInnerTexts();
  assert.equal(tidyCells[2], dateTime(newYear));
  violations.push(...(await seriousViolations(page, 'workflows page')));

  // A run started from the page: its waterfall fills in live, with no reload.
  const form = page.locator('[data-workflow="import-item"] form');
  await form.getByLabel('Input (JSON)').fill('{ "settleMs": 2500 }');
  await form.getByRole('button', { name: 'Start run' }).click();
  await page.waitForURL(/#\/runs\/[^/?]+$/);
  const runUrl = page.url();
  // Mid-run: the fetch is done, the sleep is on, the last step not reached.
  await page.locator('[data-lane="sleep:settle"][data-status="sleeping"]').waitFor();
  assert.equal(await page.locator('[data-lane="fetch"]').getAttribute('data-status'), 'completed');
  assert.equal(await page.locator('[data-lane="store"]').getAttribute('data-status'), 'pending');
  await page.screenshot({ path: join(shots, 'run-live.png'), fullPage: true });
  await page.locator('[data-lane="store"][data-status="completed"]').waitFor();
  await page.locator('.title-row .status-completed').waitFor();
  assert.equal(page.url(), runUrl);
  violations.push(...(await seriousViolations(page, 'run page')));

  // Isolate for 10 minutes, confirmed in a dialog: isolated, with the time it ends and why.
  await page.goto(`${base}/#/dependencies/inventory`);
  await page.getByRole('button', { name: 'Isolate…' }).click();
  const isolate = page.getByRole('dialog');
  await isolate.getByLabel('For').selectOption('10m');
  await isolate.getByRole('button', { name: 'Isolate', exact: true }).click();
  await page.locator('.title-row .state-isolated').waitFor();
  await page.getByText('Isolation ends').waitFor();
  await page.locator('.transitions li', { hasText: 'isolated' }).first().waitFor();
  // A run bound to it parks until the isolation ends (10 minutes), listed with why.
  const held = await api('workflows/import-item/runs', { input: {} });
  const heldRow = page.locator('[data-testid="parked-runs"] tr', { hasText: held.id });
  await heldRow.waitFor();
  const heldText = await heldRow.innerText();
  assert.match(heldText, /circuit-breaker/);
  assert.match(heldText, /isolated by an operator until/);
  await page.getByRole('button', { name: 'Reset…' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Reset', exact: true }).click();
  await page.locator('.title-row .state-closed').waitFor();
  // The reset wakes it: it goes on at once, not at the isolation's end.
  const resetAt = Date.now();
  await page.getByText('No run is parked on inventory.').waitFor({ timeout: 5_000 });
  await eventually(
    async () => (await api(`runs/${held.id}`)).status === 'completed',
    'the run went on within 5 s of the reset',
    5_000 - (Date.now() - resetAt),
  );

  // The upstream fails: a run's step fails twice, the circuit opens, and the run parks on it.
  failing = true;
  const parked = await api('workflows/import-item/runs', { input: {} });
  await page.locator('.title-row .state-open').waitFor();
  await page.getByText('Half-open (probe calls let through)').waitFor();
  const row = page.locator('[data-testid="parked-runs"] tr', { hasText: parked.id });
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /fetch/);
  assert.match(text, /inventory/);
  await page.screenshot({ path: join(shots, 'dependency-open.png'), fullPage: true });
  violations.push(...(await seriousViolations(page, 'dependency page')));

  // The overview links the open dependency to the run parked on it.
  await page.goto(`${base}/#/`);
  await page.locator('[data-dependency="inventory"] .parked-note', { hasText: '1 run is parked' }).waitFor();

  // The runs list finds it by the beginning of its id, the search kept in the URL. (Ids are
  // UUIDv7: their first characters are the creation time, shared with the runs started then.)
  const prefix = parked.id.slice(0, -4);
  await page.goto(`${base}/#/runs?q=${prefix}`);
  await page.locator('.vviewport tr.vrow', { hasText: parked.id }).waitFor();
  assert.equal(await page.locator('.vviewport tr.vrow').count(), 1);
  assert.equal(await page.getByLabel('Search').inputValue(), prefix);
  await page.screenshot({ path: join(shots, 'runs.png'), fullPage: true });
  violations.push(...(await seriousViolations(page, 'runs list')));

  // The parked run's waterfall: two failed attempts, the backoff between, then parked.
  await page.goto(`${base}/#/runs/${encodeURIComponent(parked.id)}`);
  await page.locator('[data-lane="fetch"][data-status="parked"]').waitFor();
  assert.equal(await page.locator('[data-lane="fetch"] rect.seg-attempt.seg-failed').count(), 2);
  assert.equal(await page.locator('[data-lane="fetch"] rect.seg-backoff').count(), 2);
  assert.equal(await page.locator('[data-lane="fetch"] rect.seg-parked').count(), 1);
  await page.screenshot({ path: join(shots, 'run-parked.png'), fullPage: true });

  // Healthy again, and reset: the circuit closes, and the run goes on once its wait is over.
  failing = false;
  await page.goto(`${base}/#/dependencies/inventory`);
  await page.getByRole('button', { name: 'Reset…' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Reset', exact: true }).click();
  await page.locator('.title-row .state-closed').waitFor();
  await page.getByText('No run is parked on inventory.').waitFor({ timeout: (OPEN_S + 8) * 1_000 });

  // Dark mode, chosen with the toggle (kept in localStorage), is checked for contrast too.
  await page.getByRole('button', { name: 'Theme: auto' }).click();
  assert.equal(await page.evaluate<string>('document.documentElement.dataset.theme'), 'dark');
  assert.equal(await page.evaluate<string>("localStorage.getItem('bulwark.theme')"), 'dark');
  await page.screenshot({ path: join(shots, 'dependency-dark.png'), fullPage: true });
  violations.push(...(await seriousViolations(page, 'dependency page, dark')));
}
