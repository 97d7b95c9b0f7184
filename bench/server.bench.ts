// The HTTP server under autocannon, on loopback, in one run: `/health/live` on the Bulwark server
// (every hook on: security headers, shedding, auth, tracing) against a bare Fastify route that
// answers the same JSON; and `POST /api/workflows/:name/runs` on SQLite at 500 requests/s with
// the engine's worker executing the runs, paced by our open-loop client (./paced-client.ts) and,
// for comparison, by autocannon. The server is the one `bulwark start` runs.
// Run: npm run bench:server   (about 110 s; results also go to bench/results/server-<time>.json)
//      npm run bench:server -- --only-start   (the POST part alone, in a fresh process: ~40 s)
//      npm run bench:server -- --only-live    (the /health/live part alone: ~40 s)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { startServer } from '@bulwark/server';
import { defineWorkflow, SqliteStore } from '@bulwark/workflow';
import Fastify from 'fastify';
import { type PacedResult, paced } from './paced-client.ts';

interface Histogram {
  average: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}
interface CannonResult {
  requests: Histogram & { total: number };
  latency: Histogram;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  statusCodeStats: Record<string, { count: number }>;
}
interface CannonOptions {
  url: string;
  connections: number;
  duration: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  overallRate?: number;
  workers?: number;
}
// autocannon has no types of its own; this is the part of its API used here.
const autocannon = createRequire(import.meta.url)('autocannon') as (
  options: CannonOptions,
) => Promise<CannonResult>;

/** What the POST part measured. */
interface Start {
  rps: number;
  p50: number;
  p99: number;
  max: number;
  total: number;
  failed: number;
  statuses: Record<string, number>;
  serverP50: number;
  serverP99: number;
  serverMax: number;
  writesPerStart: number | undefined;
  transactionsPerStart: number | undefined;
  /** The same rate from the open-loop client: what the target is judged on. */
  paced: PacedResult & { serverP50: number; serverP99: number; serverMax: number };
}

function printStart(s: Start): void {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const p = s.paced;
  console.log(
    `\nPOST /api/workflows/noop/runs, 500 requests/s for ${START_SECONDS} s, SQLite (full), worker on`,
  );
  console.log(
    `paced (one request every 2 ms, timed from when it was due, at most ${PACED_SOCKETS} connections): ${fmt(p.rps)} requests/s, p50 ${p.p50} ms, p90 ${p.p90} ms, p99 ${p.p99} ms, max ${p.max} ms, ${p.failed} failed of ${fmt(p.sent)} (statuses ${JSON.stringify(p.statuses)}; 503 is load shedding); the client fell ${p.maxSendLagMs} ms behind at most`,
  );
  console.log(
    `  on the server's side (request in to response sent): p50 ${p.serverP50} ms, p99 ${p.serverP99} ms, max ${p.serverMax} ms`,
  );
  console.log(
    `autocannon (20 connections, each sending its 25 requests of the second back to back at the start of it): ${fmt(s.rps)} requests/s, p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms, ${s.failed} failed of ${fmt(s.total)}`,
  );
  console.log(`  on the server's side: p50 ${s.serverP50} ms, p99 ${s.serverP99} ms, max ${s.serverMax} ms`);
  if (s.writesPerStart !== undefined && s.transactionsPerStart !== undefined) {
    console.log(
      `store: ${s.writesPerStart.toFixed(2)} writes and ${s.transactionsPerStart.toFixed(2)} transactions per start (the worker's included)`,
    );
  }
  const met = p.p99 < 20 && p.rps >= 490 && p.failed === 0;
  console.log(`p99 < 20 ms at 500 requests/s (paced): ${met ? 'met' : 'not met'}`);
}

const ROUNDS = 3;
const LIVE_SECONDS = 5;
const START_SECONDS = 15;
const KEY = 'bench-operator-0123456789abcdefghij';
/** The paced client's connections at most: enough that none waits for one at 500/s unless the server stalls. */
const PACED_SOCKETS = 64;

const noop = defineWorkflow({ name: 'noop', steps: ['a'] }, async (ctx) => ctx.step('a', () => 1));

const dataDir = mkdtempSync(join(os.tmpdir(), 'bulwark-bench-server-'));
const bulwark = await startServer({
  port: 0,
  dataDir,
  examples: false,
  workflows: [noop],
  env: {
    BULWARK_API_KEYS: `bench:operator:${KEY}`,
    // The bench's one key would hit the per-key limit at once; logging would measure pino.
    BULWARK_SERVER__RATELIMIT: 'false',
    BULWARK_SERVER__LOGLEVEL: 'silent',
  },
  stdout: { write: () => true },
});

// The bare peer answers exactly what Bulwark's liveness answers, with the same content type.
const liveBody = await (await fetch(`${bulwark.url}/health/live`)).text();
const bare = Fastify({ logger: false });
bare.get('/health/live', (_request, reply) => {
  reply.header('cache-control', 'no-store').type('application/health+json').send(liveBody);
});
await bare.listen({ host: '127.0.0.1', port: 0 });
const bareUrl = `http://127.0.0.1:${(bare.server.address() as { port: number }).port}`;

// A separate thread fires the requests, so the client does not share the servers' event loop.
const cannon = (options: CannonOptions) => autocannon({ workers: 1, ...options });
const results: Record<string, unknown> = {};
/** Skips the /health/live rounds, so the POST part runs without the heap they leave behind. */
const ONLY_START = process.argv.includes('--only-start');
/** Skips the POST part. */
const ONLY_LIVE = process.argv.includes('--only-live');
/** Each POST's time on the server's side (request in to response finished), apart from the client's. */
const serverMs: number[] = [];
let timing = false;
bulwark.server.app.server.on('request', (request, response) => {
  if (!timing || request.method !== 'POST') return;
  const at = performance.now();
  response.once('finish', () => serverMs.push(performance.now() - at));
});

try {
  // --- /health/live: Bulwark vs bare Fastify, alternating rounds ---------------------------------
  if (!ONLY_START) {
    await cannon({ url: `${bareUrl}/health/live`, connections: 50, duration: 2 });
    await cannon({ url: `${bulwark.url}/health/live`, connections: 50, duration: 2 });
  }
  const live: { bare: CannonResult[]; bulwark: CannonResult[] } = { bare: [], bulwark: [] };
  for (let round = 0; round < (ONLY_START ? 0 : ROUNDS); round++) {
    live.bare.push(await cannon({ url: `${bareUrl}/health/live`, connections: 50, duration: LIVE_SECONDS }));
    live.bulwark.push(
      await cannon({ url: `${bulwark.url}/health/live`, connections: 50, duration: LIVE_SECONDS }),
    );
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const bareRps = median(live.bare.map((r) => r.requests.average));
  const bulwarkRps = median(live.bulwark.map((r) => r.requests.average));
  const ratio = bulwarkRps / bareRps;
  if (!ONLY_START)
    results.live = {
      bareRps,
      bulwarkRps,
      ratio,
      bareP99: median(live.bare.map((r) => r.latency.p99)),
      bulwarkP99: median(live.bulwark.map((r) => r.latency.p99)),
      non2xx: live.bulwark.reduce((n, r) => n + r.non2xx + r.errors, 0),
    };

  let posted: CannonResult | undefined;
  let measured: Start | undefined;
  if (!ONLY_LIVE) {
    // --- POST /api/workflows/noop/runs at 500 requests/s on SQLite --------------------------------
    const start = {
      url: `${bulwark.url}/api/workflows/noop/runs`,
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { order: 42 } }),
    };
    await cannon({ ...start, connections: 10, duration: 2, overallRate: 500 });
    // The SQLite store's group-commit counters around the measured phase: writes and transactions
    // per start, the worker's claims and commits included.
    const store = bulwark.server.context.store;
    const commits = () => (store instanceof SqliteStore ? store.stats() : undefined);
    const before = commits();
    timing = true;
    posted = await cannon({ ...start, connections: 20, duration: START_SECONDS, overallRate: 500 });
    timing = false;
    const after = commits();
    serverMs.sort((a, b) => a - b);
    const serverAt = (q: number) => Number(serverMs[Math.floor(q * (serverMs.length - 1))]!.toFixed(1));
    const cannonServer = { serverP50: serverAt(0.5), serverP99: serverAt(0.99), serverMax: serverAt(1) };
    // The same rate, paced: one request every 2 ms. The target is judged on this one.
    serverMs.length = 0;
    timing = true;
    const steady = await paced({
      url: start.url,
      method: 'POST',
      headers: start.headers,
      body: start.body,
      rate: 500,
      seconds: START_SECONDS,
      maxSockets: PACED_SOCKETS,
      timeoutMs: 10_000,
    });
    timing = false;
    serverMs.sort((a, b) => a - b);
    measured = {
      rps: posted.requests.average,
      p50: posted.latency.p50,
      p99: posted.latency.p99,
      max: posted.latency.max,
      total: posted.requests.total,
      failed: posted.non2xx + posted.errors + posted.timeouts,
      statuses: Object.fromEntries(
        Object.entries(posted.statusCodeStats).map(([code, { count }]) => [code, count]),
      ),
      ...cannonServer,
      paced: { ...steady, serverP50: serverAt(0.5), serverP99: serverAt(0.99), serverMax: serverAt(1) },
      writesPerStart: before && after ? (after.writes - before.writes) / posted.requests.total : undefined,
      transactionsPerStart:
        before && after ? (after.transactions - before.transactions) / posted.requests.total : undefined,
    };
    results.start = measured;
  }

  const load = os.loadavg().map((l) => l.toFixed(2));
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}, load average ${load.join(' ')}`,
  );
  if (!ONLY_START) {
    console.log('\n/health/live, 50 connections, median of 3 rounds of 5 s');
    console.log('| server | requests/s | p99 |');
    console.log('|:--|--:|--:|');
    console.log(`| bare Fastify | ${fmt(bareRps)} | ${(results.live as { bareP99: number }).bareP99} ms |`);
    console.log(
      `| Bulwark | ${fmt(bulwarkRps)} | ${(results.live as { bulwarkP99: number }).bulwarkP99} ms |`,
    );
    console.log(`ratio ${ratio.toFixed(2)} (target ≥ 0.70: ${ratio >= 0.7 ? 'met' : 'not met'})`);
  }
  if (measured !== undefined) printStart(measured);

  mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
  const file = join(
    import.meta.dirname,
    'results',
    `server-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  );
  writeFileSync(file, JSON.stringify({ node: process.version, load, results, live, posted }, null, 2));
  console.log(`\nwrote ${file}`);
} finally {
  await bare.close();
  await bulwark.close();
  rmSync(dataDir, { recursive: true, force: true });
}
