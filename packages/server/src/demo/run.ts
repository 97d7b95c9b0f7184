// `bulwark demo` put together: the upstreams, the real server (or, without it, the registry and
// the engine alone) on the demo's configuration, the recorder, the load and the live view; then,
// when the time is up or the caller aborts, the runs drained, everything closed and the report written.
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DependencyRegistry } from '@bulwark/core';
import { openSqliteStore, WorkflowEngine } from '@bulwark/workflow';
import type { Env } from '../config/env.ts';
import { parseConfig } from '../config/load.ts';
import { ensureAdminKey, loginUrl } from '../http/keys.ts';
import { startServer } from '../start.ts';
import { DEMO_GROUP, demoConfig, demoWorkflow } from './config.ts';
import { aggregate, type DemoMeta, type Figures, recentLatency } from './figures.ts';
import { DEMO_LOAD, LoadDriver } from './load.ts';
import { Recorder } from './recorder.ts';
import { type WrittenReport, writeReport } from './report.ts';
import { LiveView, type Terminal } from './terminal.ts';
import { demoPhases, phaseAt, startUpstreams, type UpstreamName } from './upstreams.ts';

export interface DemoOptions {
  /** How long the load runs. */
  durationMs: number;
  /** Where the report goes. */
  reportDir: string;
  seed: number;
  /** Start the server, so the dashboard shows the demo live. @default true */
  server?: boolean;
  /** The server's port; 0 picks a free one. @default 0 */
  port?: number;
  out: Terminal;
  env: Env;
  /** Ends the load early; the report is still written. */
  signal?: AbortSignal;
}

export interface DemoResult {
  readonly report: WrittenReport;
  readonly figures: Figures;
}

/** The running parts, whichever way they were started, and how to close them. */
interface Parts {
  registry: DependencyRegistry;
  engine: WorkflowEngine;
  url: string | undefined;
  close(): Promise<void>;
}

/** How long the runs in progress at the end may take to finish before the demo closes anyway. */
function drainMs(durationMs: number): number {
  return Math.min(10_000, Math.max(3_000, Math.round(durationMs / 5)));
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { out, durationMs, seed } = options;
  const phases = demoPhases(durationMs);
  // Zero until the load starts: the upstreams are calm while everything starts up.
  let startedAt: number | undefined;
  const elapsed = () => (startedAt === undefined ? 0 : performance.now() - startedAt);

  const reportDir = resolve(options.reportDir);
  await mkdir(reportDir, { recursive: true });
  const dataDir = await mkdtemp(join(tmpdir(), 'bulwark-demo-'));
  const upstreams = await startUpstreams({ phases, seed, elapsed });
  const urls = Object.fromEntries(upstreams.map((u) => [u.name, u.url])) as Record<UpstreamName, string>;
  const closeAll: (() => Promise<unknown>)[] = [
    () => rm(dataDir, { recursive: true, force: true }),
    ...upstreams.map((u) => () => u.close()),
  ];
  try {
    const configFile = join(dataDir, 'bulwark.demo.yaml');
    await writeFile(configFile, demoConfig(urls, durationMs));
    const parts =
      options.server === false
        ? await withoutServer(configFile, urls, dataDir, durationMs)
        : await withServer(configFile, urls, dataDir, options, reportDir);
    let closing: Promise<void> | undefined;
    const closeParts = () => (closing ??= parts.close());
    closeAll.unshift(closeParts);

    const { registry, engine } = parts;
    const recorder = new Recorder({ registry, engine, elapsed });
    const load = new LoadDriver({ registry, engine, plan: DEMO_LOAD });
    const dependencies = registry.names.map((name) => {
      const s = registry.stats(name);
      return { name, retry: s.retry !== undefined, breaker: s.breaker !== undefined };
    });
    let loadMs = durationMs;
    let stoppedEarly = false;
    const meta = (): DemoMeta => ({
      seed,
      plannedMs: durationMs,
      loadMs: Math.round(Math.min(loadMs, elapsed())),
      elapsedMs: Math.round(elapsed()),
      stoppedEarly,
      phases: phases.map(({ name, title, fromMs, toMs }) => ({ name, title, fromMs, toMs })),
      dependencies,
      groups: [DEMO_GROUP],
    });
    const live: LiveView = new LiveView(out, {
      env: options.env,
      frame: () => {
        const now = elapsed();
        const phase = phaseAt(phases, now);
        return {
          elapsedMs: now,
          plannedMs: durationMs,
          phase,
          phaseIndex: phases.indexOf(phase),
          phaseCount: phases.length,
          figures: aggregate(recorder.events, meta(), { latency: false }),
          gauges: recorder.gauges(),
          recent: recentLatency(recorder.events, now, 2_000),
        };
      },
    });

    // On any failure below, the view's timer and the load must stop too, or the process would not exit.
    closeAll.unshift(async () => {
      live.stop();
      await load.stop();
    });

    out.write(
      `Phases: ${phases.map((p) => `${p.name} ${(p.fromMs / 1_000).toFixed(1)}s`).join(', ')}. Ctrl-C ends the demo early and still writes the report.\n\n`,
    );
    startedAt = performance.now();
    load.start();
    live.start();
    await sleepUntil(durationMs, elapsed, options.signal);
    if (options.signal?.aborted === true) {
      stoppedEarly = true;
      loadMs = Math.min(durationMs, elapsed());
    }
    await load.stop();
    // Runs still going (parked, or between steps) get a little time to finish, so the report
    // shows how they ended; those that do not are reported as unfinished.
    const drainUntil = elapsed() + drainMs(durationMs);
    while (load.openRuns > 0 && elapsed() < drainUntil && options.signal?.aborted !== true) {
      await new Promise((r) => setTimeout(r, 100));
    }
    live.stop();
    // Closed before the figures are taken: runs given back at shutdown are recorded as unfinished.
    await closeParts();
    recorder.dispose();

    const logs = upstreams.map((u) => u.log());
    const finalMeta = meta();
    const figures = aggregate(recorder.events, finalMeta);
    const report = await writeReport(reportDir, {
      meta: finalMeta,
      figures,
      events: recorder.events,
      upstreams: logs,
      server: parts.url,
      load: { plan: DEMO_LOAD, skipped: load.skipped },
    });
    return { report, figures };
  } finally {
    for (const close of closeAll) await close().catch(() => {});
  }
}

/** Resolves once `elapsed()` reaches `ms`, or at once when `signal` aborts. */
async function sleepUntil(ms: number, elapsed: () => number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return;
  await new Promise<void>((done) => {
    const timer = setTimeout(finish, Math.max(0, ms - elapsed()));
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      done();
    }
    signal?.addEventListener('abort', finish, { once: true });
  });
}

/** The real server on the demo's configuration: the dashboard at its URL shows the demo live. */
async function withServer(
  configFile: string,
  urls: Record<UpstreamName, string>,
  dataDir: string,
  options: DemoOptions,
  reportDir: string,
): Promise<Parts> {
  // Made here, so that its secret is known and printed with the login link.
  const admin = await ensureAdminKey(dataDir);
  // The banner and the JSON log go to a file: the terminal is the live view's.
  const log = createWriteStream(join(reportDir, 'server.log'));
  const closeLog = () => new Promise((r) => log.end(r));
  let started: Awaited<ReturnType<typeof startServer>>;
  try {
    started = await startServer({
      config: configFile,
      port: options.port ?? 0,
      dataDir,
      workflows: [demoWorkflow(urls)],
      // The demo's own settings: none of the caller's BULWARK_ variables (keys, database, overrides).
      env: withoutBulwarkVariables(options.env),
      stdout: { write: (text: string) => log.write(text) },
    });
  } catch (error) {
    await closeLog();
    throw error;
  }
  const { port } = new URL(started.url);
  options.out.write(
    `Bulwark demo: the server is on ${started.url}; watch it live in the dashboard:\n` +
      `  ${loginUrl(started.settings.host, Number(port), admin.key.secret)}\n` +
      `  (admin key ${admin.key.secret}, valid while the demo runs)\n`,
  );
  return {
    registry: started.server.context.registry,
    engine: started.server.context.engine,
    url: started.url,
    close: async () => {
      await started.close();
      await closeLog();
    },
  };
}

/** The registry and the engine alone, on a SQLite store in the demo's data directory. */
async function withoutServer(
  configFile: string,
  urls: Record<UpstreamName, string>,
  dataDir: string,
  durationMs: number,
): Promise<Parts> {
  const config = parseConfig(await readFile(configFile, 'utf8'), { file: configFile, env: {} });
  const registry = new DependencyRegistry(config);
  const store = await openSqliteStore({ path: join(dataDir, 'bulwark.db') });
  await store.migrate();
  const engine = new WorkflowEngine({ store, registry, concurrency: config.server?.concurrency ?? 10 });
  engine.register(demoWorkflow(urls));
  engine.startWorker();
  return {
    registry,
    engine,
    url: undefined,
    close: async () => {
      await engine.stop({ drain: 'step', graceMs: drainMs(durationMs) });
      await registry.close();
      await store.close();
    },
  };
}

function withoutBulwarkVariables(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('BULWARK_')));
}
