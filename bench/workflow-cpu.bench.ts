// Where a burst of runs spends its time, beyond the rate: wall time, this process's CPU (its
// threads included), PostgreSQL's CPU (every `postgres` process, read from /proc), event-loop
// delay, the statements sent to PostgreSQL by kind and how its tables were read. One engine, one
// store, a warm-up first.
// Run: npm run bench:workflow-cpu -- [sqlite|sqlite-thread-pool|sqlite-normal|sqlite-memory|postgres] [one|three] [runs] [burst|loop]
// (`loop`: the closed loop, `CONCURRENCY` clients each awaiting its run's result before the next.
// `sqlite-normal` and `sqlite-memory` are ceilings, not products of the target: no fsync a commit,
// and no file at all.)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openPostgresStore, openSqliteStore, type WorkflowStore } from '@bulwark/workflow';
import pg from 'pg';
import { closedLoop, measure, oneStep, threeSteps } from './workflow-engine.bench.ts';

const [kind = 'postgres', shape = 'three', count = '10000', mode = 'burst'] = process.argv.slice(2);
if (mode !== 'burst' && mode !== 'loop') throw new TypeError(`mode: expected burst or loop, got ${mode}`);
const runs = Number(count);
const workflow = shape === 'one' ? oneStep : threeSteps;
const steps = shape === 'one' ? 1 : 3;
const PG_URL = process.env.BULWARK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Statements by name (prepared) or first words (plain SQL): counted where pg sends them. */
const statements = new Map<string, number>();
const send = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const [first] = args as [string | { name?: string; text?: string }];
  const key = typeof first === 'string' ? first : (first?.name ?? first?.text ?? '?');
  const label = key
    .replace(/\s+/g, ' ')
    .replace(/"[^"]*"/g, '"…"')
    .replace(/'[^']*'/g, "'…'")
    .slice(0, 48);
  statements.set(label, (statements.get(label) ?? 0) + 1);
  return (send as (...a: unknown[]) => unknown).apply(this, args);
} as typeof send;

/** CPU seconds by thread of this process (its name and id), from /proc. */
function threadCpu(): Map<string, number> {
  const byThread = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byThread.set(`${name} ${tid}`, (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return byThread;
}

/** CPU seconds of every PostgreSQL process (backends, WAL writer, checkpointer). */
function postgresCpu(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return ticks / 100;
}

const dir = mkdtempSync(join(tmpdir(), 'bulwark-cpu-bench-'));
const schema = `bw_cpu_${process.pid}`;
let store: WorkflowStore;
if (kind === 'postgres') {
  store = await openPostgresStore({ connectionString: PG_URL, schema, max: 8 });
} else {
  store = await openSqliteStore({
    path: kind === 'sqlite-memory' ? ':memory:' : join(dir, 'runs.db'),
    durability: kind === 'sqlite-normal' ? 'normal' : 'full',
    syncInThreadPool: kind === 'sqlite-thread-pool',
  });
}
try {
  const run = (n: number) =>
    mode === 'loop' ? closedLoop(store, workflow, n, 600_000) : measure(store, workflow, steps, n);
  await run(500);
  statements.clear();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const pgBefore = postgresCpu();
  const cpuBefore = process.cpuUsage();
  const threadsBefore = threadCpu();
  const t0 = performance.now();
  const result = await run(runs);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const threads = [...threadCpu()]
    .map(([name, s]) => [name, s - (threadsBefore.get(name) ?? 0)] as const)
    .filter(([, s]) => s >= 0.05 * wall)
    .sort((a, b) => b[1] - a[1]);
  const pgCpu = postgresCpu() - pgBefore;
  delay.disable();
  const nodeCpu = (cpu.user + cpu.system) / 1e6;
  const ms = (s: number) => ((s * 1000) / runs).toFixed(3);
  console.log(
    `${kind}, ${workflow.name}, ${mode}, ${runs} runs after a warm-up of 500, Node ${process.version}`,
  );
  console.log(`${Math.round(result.perSecond)} workflows/s; wall ${wall.toFixed(2)} s`);
  console.log(`this process: ${nodeCpu.toFixed(2)} s CPU (${ms(nodeCpu)} ms a run)`);
  // The first is the event loop's (the lowest id); the others are V8's and libuv's helpers.
  console.log(
    `  threads busy 5% or more of the time: ${threads.map(([name, s]) => `${name} ${Math.round((s / wall) * 100)}%`).join(', ')}`,
  );
  if (kind === 'postgres') {
    console.log(`PostgreSQL: ${pgCpu.toFixed(2)} s CPU (${ms(pgCpu)} ms a run)`);
    const total = [...statements.values()].reduce((a, b) => a + b, 0);
    console.log(`statements: ${total} (${(total / runs).toFixed(2)} a run)`);
    for (const [label, n] of [...statements].sort((a, b) => b[1] - a[1]).slice(0, 10))
      console.log(`  ${String(n).padStart(7)}  ${label}`);
  }
  console.log(
    `event-loop delay: p50 ${(delay.percentile(50) / 1e6).toFixed(2)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(2)} ms`,
  );
  if (kind === 'postgres') {
    await store.close();
    // The store's backends flush their statistics as they exit, which takes a moment after close.
    await new Promise((r) => setTimeout(r, 1_000));
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query(
        `SELECT relname AS "table", seq_scan AS "read in full", seq_tup_read AS "rows so read",
          idx_scan AS "index reads", n_tup_ins AS inserted, n_tup_upd AS updated, n_tup_hot_upd AS "HOT updates"
        FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY relname`,
        [schema],
      );
      console.log('tables, warm-up and migrations included (pg_stat_user_tables):');
      console.table(rows);
    } finally {
      await admin.end();
    }
  }
} finally {
  await store.close();
  if (kind === 'postgres') {
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
  rmSync(dir, { recursive: true, force: true });
}
