// The workflow engine end to end, on SQLite and on PostgreSQL: one-step and three-step no-op
// workflows per second, steps per second, start-to-finish latency (p50/p99) and idle pickup
// latency. The peers (pg-boss, graphile-worker, DBOS) are not installed yet: this measures
// Bulwark alone (bench/workflow.bench.ts imports these measurements and adds the peers).
// Run: npm run bench:workflow-engine [-- runs]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  defineWorkflow,
  FINAL_STATUSES,
  openPostgresStore,
  openSqliteStore,
  WorkflowEngine,
  type WorkflowStore,
} from '@bulwark/workflow';
import pg from 'pg';

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const RUNS = main ? Number(process.argv[2] ?? 2_000) : 2_000;
/**
 * Runs in flight: the engine's `concurrency`, and the clients of every closed loop (DBOS's too, in
 * `workflow.bench.ts`). `WF_BENCH_CONCURRENCY` changes it for all of them at once.
 */
export const CONCURRENCY = Number(process.env.WF_BENCH_CONCURRENCY ?? 64);
const PG_URL = process.env.BULWARK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export const oneStep = defineWorkflow({ name: 'one-step' }, async (ctx) => ctx.step('a', () => 1));
export const threeSteps = defineWorkflow({ name: 'three-steps' }, async (ctx) => {
  await ctx.step('a', () => 1);
  await ctx.step('b', () => 2);
  return ctx.step('c', () => 3);
});

export const quantile = (sorted: number[], q: number) =>
  sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;

/**
 * N runs enqueued at once, executed `CONCURRENCY` at a time. Latency is start to finish: from the
 * `start()` call to the engine saying the run is final (it says so once the store made the final
 * status durable), so it includes the time a run waited in the queue behind the others.
 * Throughput counts until every run is final, checked in the store at the end.
 */
export async function measure(store: WorkflowStore, workflow: typeof oneStep, steps: number, runs = RUNS) {
  const engine = new WorkflowEngine({ store, concurrency: CONCURRENCY, pollMs: 50 });
  engine.register(workflow).startWorker();
  const started = new Map<string, number>();
  // Finish times by run, matched with start times at the end: a run may finish before its
  // `start()` has even returned its id.
  const ends = new Map<string, number>();
  let final = 0;
  let allFinal: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allFinal = resolve;
  });
  // Any final status counts, so that a run that fails ends the wait (and the check below) too.
  const stopListening = engine.on((event) => {
    if (event.type !== 'run:status' || !FINAL_STATUSES.includes(event.status)) return;
    ends.set(event.runId, performance.now());
    if (++final === runs) allFinal();
  });
  const t0 = performance.now();
  const handles = await Promise.all(
    Array.from({ length: runs }, async () => {
      const at = performance.now();
      const h = await engine.start(workflow, null);
      started.set(h.id, at);
      return h;
    }),
  );
  await done;
  const seconds = (performance.now() - t0) / 1000;
  stopListening();
  await engine.stop();
  const completed = (await store.countRuns())
    .filter((c) => c.workflow === workflow.name && c.status === 'completed')
    .reduce((n, c) => n + c.count, 0);
  if (completed < runs) throw new Error(`${completed} of ${runs} runs completed`);
  const latencies = handles.map((h) => (ends.get(h.id) ?? Number.NaN) - started.get(h.id)!);
  latencies.sort((a, b) => a - b);
  return {
    perSecond: runs / seconds,
    stepsPerSecond: (runs * steps) / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  };
}

/**
 * `CONCURRENCY` clients, each starting a run and awaiting its result before starting the next
 * (as the issue measures DBOS): latency from the `start` call to `result()` resolving, for
 * `runs` runs or until `maxMs`, whichever comes first.
 */
export async function closedLoop(
  store: WorkflowStore,
  workflow: typeof oneStep,
  runs = RUNS,
  maxMs = 10_000,
) {
  const engine = new WorkflowEngine({ store, concurrency: CONCURRENCY, pollMs: 50 });
  engine.register(workflow).startWorker();
  // Its first look at the queue done, as DBOS's clients start once `DBOS.launch()` has resolved.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const latencies: number[] = [];
  let issued = 0;
  const t0 = performance.now();
  const client = async () => {
    while (issued < runs && performance.now() - t0 < maxMs) {
      issued++;
      const at = performance.now();
      await engine.result((await engine.start(workflow, null)).id);
      latencies.push(performance.now() - at);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  const seconds = (performance.now() - t0) / 1000;
  await engine.stop();
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / seconds,
    count: latencies.length,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  };
}

/**
 * An idle engine: how long from `start` until the run's first step runs. With `producer` (a
 * second store on the same database), the runs are started there, by an engine that does not
 * work, so that the worker hears of them as another process would (LISTEN/NOTIFY), as
 * graphile-worker's probe does through WorkerUtils; without, by the worker's own engine.
 */
export async function pickup(store: WorkflowStore, producer?: WorkflowStore): Promise<number> {
  const samples: number[] = [];
  let seen: (() => void) | undefined;
  const probe = defineWorkflow({ name: 'pickup' }, async (ctx) => ctx.step('seen', () => seen?.()));
  const engine = new WorkflowEngine({ store, pollMs: 1_000 });
  engine.register(probe).startWorker();
  const starter = producer === undefined ? engine : new WorkflowEngine({ store: producer }).register(probe);
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < 50; i++) {
    const at = performance.now();
    const ran = new Promise<void>((resolve) => {
      seen = resolve;
    });
    await starter.start(probe, null);
    await ran;
    samples.push(performance.now() - at);
    await new Promise((r) => setTimeout(r, 20));
  }
  await engine.stop();
  samples.sort((a, b) => a - b);
  return quantile(samples, 0.5);
}

const fmt = (n: number, d = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const rows: string[][] = [];

async function bench(name: string, open: () => Promise<{ store: WorkflowStore; close(): Promise<void> }>) {
  for (const [workflow, steps] of [
    [oneStep, 1],
    [threeSteps, 3],
  ] as const) {
    const { store, close } = await open();
    try {
      const r = await measure(store, workflow, steps, RUNS);
      rows.push([
        name,
        workflow.name,
        fmt(r.perSecond),
        fmt(r.stepsPerSecond),
        fmt(r.p50, 1),
        fmt(r.p99, 1),
        '',
      ]);
    } finally {
      await close();
    }
  }
  const { store, close } = await open();
  try {
    rows.push([name, 'idle pickup', '', '', '', '', fmt(await pickup(store), 1)]);
  } finally {
    await close();
  }
}

if (main) {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-engine-bench-'));
  let file = 0;
  console.log(
    `Bulwark workflow engine: ${RUNS} runs per case, ${CONCURRENCY} in flight per engine, Node ${process.version}\n`,
  );
  await bench('SQLite (durability full)', async () => {
    const store = await openSqliteStore({ path: join(dir, `b${file++}.db`) });
    return { store, close: () => store.close() };
  });
  try {
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await bench('PostgreSQL', async () => {
      const schema = `bw_bench_${file++}_${process.pid}`;
      const store = await openPostgresStore({ connectionString: PG_URL, schema, max: 8 });
      return {
        store,
        async close() {
          await store.close();
          await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        },
      };
    });
    await admin.end();
  } catch (error) {
    console.log(`PostgreSQL skipped: ${(error as Error).message}`);
  }
  rmSync(dir, { recursive: true, force: true });

  const headers = ['store', 'case', 'workflows/s', 'steps/s', 'p50 ms', 'p99 ms', 'pickup p50 ms'];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(headers));
  console.log(
    `|${widths.map((w, i) => (i < 2 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
  );
  for (const r of rows) console.log(line(r));
}
