// SSE fan-out of one run's timeline to 1,000 subscribers: delivery latency (publish to receipt)
// and server CPU per message per client, Bulwark's /api/runs/:id/stream against a plain Fastify
// `reply.raw` fan-out that writes each event to each client. Clients run in a child process.
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { DependencyRegistry } from '@bulwark/core';
import { openSqliteStore, WorkflowEngine } from '@bulwark/workflow';
import Fastify from 'fastify';
import { createServer } from '../packages/server/src/http/server.ts';
import { normalizeServerSettings } from '../packages/server/src/http/settings.ts';

const CLIENTS = Number(process.env.SSE_CLIENTS ?? 1000);
const ROUNDS = Number(process.env.SSE_ROUNDS ?? 2);
/**
 * The issue's case (an event every 10 ms), and a burst (every 1 ms) that a per-event fan-out
 * cannot keep up with: what batching is for.
 */
const SCENARIOS = [
  { name: 'every 10 ms', cadenceMs: 10, events: 300 },
  { name: 'every 1 ms', cadenceMs: 1, events: 500 },
] as const;
type Scenario = (typeof SCENARIOS)[number];
const VIEWER_KEY = 'viewer-secret-0123456789abcdef';

/** Epoch milliseconds with sub-millisecond precision, comparable across the two processes. */
const preciseNow = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// The client side (child process): plain http.get streams, parsed as little as possible.

interface ClientJob {
  url: string;
  headers: Record<string, string>;
  clients: number;
  events: number;
}

interface ClientResult {
  /** Latency quantiles over every (event, client) pair received, ms. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  received: number;
  expected: number;
  /** Events received out of order or twice (must be 0). */
  disorder: number;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function runClients(job: ClientJob): Promise<void> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const samples = new Float64Array(job.clients * job.events);
  let count = 0;
  let disorder = 0;
  let ready = 0;
  let finished = 0;
  const requests: http.ClientRequest[] = [];
  let allDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allDone = resolve;
  });
  const open = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const request = http.get(job.url, { agent, headers: job.headers }, (response) => {
        if (response.statusCode !== 200) {
          reject(new Error(`status ${response.statusCode}`));
          return;
        }
        response.setEncoding('utf8');
        let carry = '';
        let next = 0;
        let first = true;
        response.on('data', (chunk: string) => {
          const now = preciseNow();
          if (first) {
            first = false;
            ready++;
            resolve();
          }
          carry += chunk;
          let end = carry.indexOf('\n\n');
          while (end >= 0) {
            const block = carry.slice(0, end);
            carry = carry.slice(end + 2);
            end = carry.indexOf('\n\n');
            const t = block.indexOf('"t":');
            if (t < 0) continue;
            const sent = Number.parseFloat(block.slice(t + 4));
            const i = Number.parseInt(block.slice(block.indexOf('"i":') + 4), 10);
            if (i !== next) disorder++;
            next = i + 1;
            samples[count++] = now - sent;
            if (i === job.events - 1 && ++finished === job.clients) allDone();
          }
        });
      });
      request.on('error', reject);
      requests.push(request);
    });
  // In batches: a thousand SYNs at once would overflow the listen backlog.
  for (let i = 0; i < job.clients; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, job.clients - i) }, open));
  }
  process.send!({ ready });
  // The parent says when publishing is over; events still in flight get 5 s more (a fan-out
  // that is further behind than that is reported by its count of events received).
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  for (const request of requests) request.destroy();
  const sorted = samples.slice(0, count).sort();
  const result: ClientResult = {
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    received: count,
    expected: job.clients * job.events,
    disorder,
  };
  process.send!(result);
}

// ---------------------------------------------------------------------------------------------
// The server side (this process).

interface Measured extends ClientResult {
  name: string;
  scenario: string;
  /** Server-process CPU while publishing, per event per client, µs. */
  cpuUsPerMessageClient: number;
  /** How late the last event was published compared with its slot (the publisher kept its cadence?). */
  publishLagMs: number;
}

/**
 * Starts the clients, publishes the scenario's events at its cadence, returns what the clients
 * measured. Each event carries the time it was due, not the time it went out: a publisher held up
 * by its own fan-out is late, and that lateness is part of what its clients wait.
 */
async function measure(
  name: string,
  scenario: Scenario,
  url: string,
  publish: (i: number, due: number) => void,
): Promise<Measured> {
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, ['--clients'], {
    execArgv: process.execArgv,
    stdio: 'inherit',
  });
  child.send({
    url,
    headers: { authorization: `Bearer ${VIEWER_KEY}` },
    clients: CLIENTS,
    events: scenario.events,
  } satisfies ClientJob);
  const [hello] = (await once(child, 'message')) as [{ ready: number }];
  if (hello.ready !== CLIENTS) throw new Error(`${name}: only ${hello.ready} clients connected`);
  // Let every subscriber finish joining (Bulwark reads each one's history first).
  await new Promise((resolve) => setTimeout(resolve, 500));
  const cpu = process.cpuUsage();
  const start = performance.now();
  const startEpoch = preciseNow();
  let lag = 0;
  for (let i = 0; i < scenario.events; i++) {
    const slot = start + i * scenario.cadenceMs;
    const wait = slot - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    lag = performance.now() - slot;
    publish(i, startEpoch + i * scenario.cadenceMs);
  }
  const result = once(child, 'message');
  child.send('published');
  const [measured] = (await result) as [ClientResult];
  const used = process.cpuUsage(cpu);
  await once(child, 'exit');
  return {
    name,
    scenario: scenario.name,
    ...measured,
    cpuUsPerMessageClient: (used.user + used.system) / (scenario.events * CLIENTS),
    publishLagMs: lag,
  };
}

interface Target {
  url: string;
  publish: (i: number, due: number) => void;
  close: () => Promise<void>;
}

async function baseline(): Promise<Target> {
  const app = Fastify({ logger: false });
  const clients = new Set<http.ServerResponse>();
  app.get('/stream', (_request, reply) => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    raw.write('retry: 2000\n\n');
    clients.add(raw);
    raw.on('close', () => clients.delete(raw));
  });
  const address = await app.listen({ host: '127.0.0.1', port: 0, backlog: 2048 });
  return {
    url: `${address}/stream`,
    // What a plain fan-out does: each event written to each client as it is published.
    publish(i, due) {
      const frame = `id: ${i}\nevent: bench:tick\ndata: ${JSON.stringify({ i, t: due })}\n\n`;
      for (const raw of clients) raw.write(frame);
    },
    close: () => app.close(),
  };
}

async function bulwark(): Promise<Target> {
  const dir = await mkdtemp(join(os.tmpdir(), 'bulwark-sse-bench-'));
  const store = await openSqliteStore({ path: join(dir, 'bulwark.db'), durability: 'normal' });
  await store.migrate();
  const registry = new DependencyRegistry({ dependencies: {} });
  // No worker: the run stays queued, and its timeline is written directly, as an engine would.
  const engine = new WorkflowEngine({ store, registry });
  const settings = normalizeServerSettings({
    dataDir: dir,
    logLevel: 'silent',
    rateLimit: false,
    maxEventLoopDelayMs: 60_000,
    apiKeys: [{ name: 'vera', role: 'viewer', secret: VIEWER_KEY }],
  });
  const server = await createServer({ registry, engine, store, settings });
  const runId = crypto.randomUUID();
  await store.enqueue([{ id: runId, workflow: 'bench', version: '1', input: null, priority: 1 }], Date.now());
  const address = await server.app.listen({ host: '127.0.0.1', port: 0, backlog: 2048 });
  return {
    url: `${address}/api/runs/${runId}/stream`,
    publish(i, due) {
      const now = Date.now();
      void store.commit(
        [
          {
            kind: 'event',
            runId,
            event: {
              type: 'bench:tick',
              step: undefined,
              data: { i, t: due },
              progress: 0,
              at: now,
            },
          },
        ],
        now,
      );
    },
    async close() {
      await server.app.close();
      await registry.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function row(m: Measured): string {
  const f = (n: number) => n.toFixed(1).padStart(8);
  return `${m.name.padEnd(30)}${f(m.p50)}${f(m.p90)}${f(m.p99)}${f(m.max)}  ${`${m.received}/${m.expected}`.padStart(15)}${String(m.disorder).padStart(6)}${m.cpuUsPerMessageClient.toFixed(2).padStart(9)}${f(m.publishLagMs)}`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  const load = os.loadavg().map((l) => l.toFixed(2));
  console.log(`SSE fan-out of one run to ${CLIENTS} clients, ${ROUNDS} rounds`);
  console.log(
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average ${load.join(' ')}`,
  );
  const results: Measured[] = [];
  for (const scenario of SCENARIOS) {
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order, so neither side always runs on a warmer (or more tired) machine.
      const order = round % 2 === 1 ? ['baseline', 'bulwark'] : ['bulwark', 'baseline'];
      for (const which of order) {
        const target = which === 'baseline' ? await baseline() : await bulwark();
        try {
          const name = which === 'baseline' ? 'plain reply.raw, per event' : 'Bulwark /runs/:id/stream';
          results.push(await measure(`${name} #${round}`, scenario, target.url, target.publish));
        } finally {
          await target.close();
        }
      }
    }
  }
  for (const scenario of SCENARIOS) {
    console.log(`\n${scenario.events} events, ${scenario.name}`);
    console.log(
      `${'latency ms'.padEnd(30)}${'p50'.padStart(8)}${'p90'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(8)}  ${'received'.padStart(15)}${'disord'.padStart(6)}${'CPU µs'.padStart(9)}${'pub lag'.padStart(8)}`,
    );
    const mine = results.filter((m) => m.scenario === scenario.name);
    for (const m of mine) console.log(row(m));
    const of = (prefix: string, key: 'p50' | 'p99' | 'max' | 'cpuUsPerMessageClient') =>
      median(mine.filter((m) => m.name.startsWith(prefix)).map((m) => m[key]));
    const ratios = (['p50', 'p99', 'max', 'cpuUsPerMessageClient'] as const)
      .map(
        (key) =>
          `${key === 'cpuUsPerMessageClient' ? 'CPU' : key} ${(of('plain', key) / of('Bulwark', key)).toFixed(2)}`,
      )
      .join(', ');
    console.log(`baseline ÷ Bulwark, medians of the rounds (above 1: Bulwark is better): ${ratios}`);
  }
  console.log(
    '\nCPU µs: server-process CPU while publishing, per event per client. pub lag: how late the last event went out.',
  );
  const out = new URL('./results/', import.meta.url);
  mkdirSync(out, { recursive: true });
  const file = new URL(`server-sse-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, out);
  writeFileSync(file, JSON.stringify({ clients: CLIENTS, scenarios: SCENARIOS, load, results }, null, 2));
  console.log(`written to ${file.pathname}`);
}

if (process.argv.includes('--clients')) {
  process.once('message', (job) => {
    runClients(job as ClientJob).catch((error) => {
      console.error(error);
      process.exit(1);
    });
  });
} else {
  await main();
}
