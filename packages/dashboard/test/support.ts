// What the dashboard's browser tests share: where Chromium is (and whether to skip without it),
// building the app when its build is missing or older than its sources, launching the browser,
// the two checks every page gets (no console error, no serious or critical axe violation), and
// waiting on the server's side for what the page does not show.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import axe from 'axe-core';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build } from 'vite';

export const CHROMIUM = '/usr/bin/chromium';
const here = dirname(fileURLToPath(import.meta.url));
export const dashboardDir = join(here, '..');
/** Where the screenshots go (kept by CI as an artifact). */
export const shots = join(here, '../../../test-output/dashboard');

const missing = existsSync(CHROMIUM)
  ? undefined
  : `${CHROMIUM} is missing: the dashboard's browser test needs Chromium`;
if (missing !== undefined && process.env.CI === 'true') throw new Error(missing);
/** The `skip` option of every browser test: a reason without Chromium, else false. */
export const skip: string | false = missing ?? false;

/** Builds the dashboard with Vite. */
async function buildDashboard(): Promise<void> {
  await build({ root: dashboardDir, configFile: join(dashboardDir, 'vite.config.ts'), logLevel: 'warn' });
}

/**
 * Builds the dashboard when `dist` has no index.html or one older than a source file (the app,
 * its index.html, its Vite config): a test must not pass or fail on a stale build.
 */
export async function ensureDashboardBuilt(): Promise<void> {
  const built = join(dashboardDir, 'dist/index.html');
  if (!existsSync(built)) return buildDashboard();
  const builtAt = statSync(built).mtimeMs;
  const sources = [join(dashboardDir, 'index.html'), join(dashboardDir, 'vite.config.ts')];
  for (const entry of readdirSync(join(dashboardDir, 'app'), { recursive: true, withFileTypes: true }))
    if (entry.isFile()) sources.push(join(entry.parentPath, entry.name));
  if (sources.some((file) => statSync(file).mtimeMs > builtAt)) await buildDashboard();
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** Every console error and uncaught exception of the page (a CSP violation is a console error). */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  // The console names no URL for a failed load; this says which.
  page.on('response', (response) => {
    if (response.status() >= 400)
      errors.push(`${response.status()} ${response.request().method()} ${response.url()}`);
  });
  return errors;
}

/** axe-core in the page (its source through evaluate, not a script tag the CSP would refuse). */
export async function seriousViolations(page: Page, where: string): Promise<string[]> {
  // Strings, not functions: this file is type-checked for Node, where `window` does not exist.
  if (!(await page.evaluate<boolean>("'axe' in window"))) await page.evaluate(axe.source);
  const results = await page.evaluate<axe.AxeResults>("axe.run(document, { resultTypes: ['violations'] })");
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map(
      (v) =>
        `${where}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
    );
}

/** Waits until `check` holds, asking every 20 ms; fails naming `what` after `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 5_000,
): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < until, what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
