// The dashboard at `/`: the built single-page app (index.html, hashed assets/) served from
// settings.dashboardDir, or, when it is not built, a plain page that says so and how to build it.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ServerContext } from '../context.ts';

/** index.html names the current asset files: a browser must ask again each time it loads it. */
const INDEX_CACHE = 'no-cache';
/** Asset names carry a content hash, so a name never changes meaning: cache it for a year. */
const ASSET_CACHE = 'public, max-age=31536000, immutable';

/** How to build it, for the page shown when it is not built. */
export const BUILD_COMMAND = 'npm run build:dashboard';

/** True when `dir` holds a built dashboard. */
export function dashboardBuilt(dir: string): boolean {
  return existsSync(join(dir, 'index.html'));
}

/** What `buildDashboard` did. */
export type DashboardBuild = 'present' | 'built' | 'no-sources' | 'no-vite' | 'failed';

/**
 * Builds the dashboard into `dir` if it is missing, with Vite's `build()` on its sources (the
 * folder above `dir`, where @bulwark/dashboard keeps index.html and vite.config.ts). Nothing to
 * do without those sources (an installed package ships dist/ or nothing) or without Vite; a
 * build that fails is reported in one line and the server starts anyway, serving the page that
 * says how to build it. For `bulwark start` only: createServer never builds.
 */
export async function buildDashboard(dir: string, say: (line: string) => void): Promise<DashboardBuild> {
  if (dashboardBuilt(dir)) return 'present';
  const root = dirname(dir);
  if (!existsSync(join(root, 'index.html')) || !existsSync(join(root, 'package.json'))) return 'no-sources';
  // By a computed name: Vite is a development tool, absent from a production install.
  const viteModule: string = 'vite';
  let vite: { build(config: Record<string, unknown>): Promise<unknown> };
  try {
    vite = (await import(viteModule)) as typeof vite;
  } catch {
    return 'no-vite';
  }
  say('building dashboard…');
  try {
    await vite.build({ root, mode: 'production', logLevel: 'silent', build: { outDir: dir } });
    return dashboardBuilt(dir) ? 'built' : 'failed';
  } catch (error) {
    const first = String((error as Error).message ?? error).split('\n')[0];
    say(`dashboard: the build failed (${first}); / says how to build it by hand (${BUILD_COMMAND})`);
    return 'failed';
  }
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** No inline style or script: the CSP (style-src 'self', script-src 'self') holds here too. */
function notBuiltPage(dir: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Bulwark: dashboard not built</title></head>
<body>
<h1>The dashboard is not built</h1>
<p>This server looked for it in <code>${escapeHtml(dir)}</code> and found no <code>index.html</code>.</p>
<p>Build it from the repository's root with <code>${BUILD_COMMAND}</code>, then reload this page.
<code>bulwark start</code> builds it by itself when Vite is installed.</p>
<p>The API works without it: <a href="api/docs">api/docs</a> describes it.</p>
</body>
</html>
`;
}

/**
 * Serves the dashboard. Every URL it answers is relative to `/` and the app uses only relative
 * URLs (`api/...`, `assets/...`) and hash routes, so it works unchanged behind a proxy that
 * mounts the server under a path prefix and strips it.
 */
export const dashboardPlugin: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const dir = context.settings.dashboardDir;
  const config = { access: 'public' as const };
  const schema = { hide: true };
  const assets = join(dir, 'assets');

  if (!dashboardBuilt(dir)) {
    const page = notBuiltPage(dir);
    app.get('/', { config, schema }, async (_request, reply) =>
      reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(page),
    );
    return;
  }

  // Only its `sendFile`: the routes are declared here, each with its access and caching.
  await app.register(fastifyStatic, {
    root: dir,
    serve: false,
    // `index.html.br`, `assets/app-1a2b.js.gz` next to the file are sent to clients that accept them.
    preCompressed: true,
    // Set below, and only on a file actually sent: a 404 must not be cached for a year.
    cacheControl: false,
    setHeaders: (response: { setHeader(name: string, value: string): unknown }, path: string) => {
      const asset = relative(assets, path);
      const hashed = !asset.startsWith('..') && !isAbsolute(asset);
      response.setHeader('cache-control', hashed ? ASSET_CACHE : INDEX_CACHE);
      response.setHeader('vary', 'Accept-Encoding');
    },
    dotfiles: 'deny',
    index: false,
  });
  const send = (reply: FastifyReply, file: string) => reply.sendFile(file);

  app.get('/', { config, schema }, (_request, reply) => send(reply, 'index.html'));
  app.get<{ Params: { '*': string } }>('/assets/*', { config, schema }, (request, reply) =>
    send(reply, `assets/${request.params['*']}`),
  );
  // Unhashed files at the top (a favicon, robots.txt): named one by one, so `/api/...` typos
  // stay 404 problems instead of falling into a catch-all.
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name === 'index.html' || entry.name.startsWith('.')) continue;
    if (/\.(br|gz)$/.test(entry.name)) continue;
    app.get(`/${entry.name}`, { config, schema }, (_request, reply) => send(reply, entry.name));
  }
};
