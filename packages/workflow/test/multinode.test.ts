// Proof that nothing is lost across machines: three worker processes share one PostgreSQL
// schema and 1,000 runs with mixed priorities and dependsOn chains; one worker is SIGKILLed
// mid-way and the others take its runs over when the leases expire. Every run must complete
// exactly once, every step be recorded once with its keyed side effect exactly once, only steps
// in flight on the killed worker may run twice, and no child may begin before all of its parents
// completed (both times read from the database's clock).
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type Priority, WorkflowEngine } from '@bulwark/workflow';
import pg from 'pg';
import {
  effectsSchemaSql,
  expectedOutput,
  type MultinodeInput,
  multinode,
  STEP_NAMES,
} from './fixtures/multinode.ts';
import { dropSchema, freshSchema, openStoreAt, PG_URL, postgresUnavailable } from './stores.ts';
import { seeded } from './support.ts';

const RUNS = 1_000;
/** Runs come in groups of five: a chain a→b→c→d→e, or a diamond a→{b,c}→d→e. */
const GROUP = 5;
const WORKERS = 3;
const LEASE_MS = 1_000;
const CONCURRENCY = 16;
/** The kill lands once this many runs are final. */
const KILL_AT = Math.floor(RUNS / 3);
const DEADLINE_MS = 50_000;
const PRIORITY_NAMES: Priority[] = ['low', 'normal', 'high', 'urgent', 'critical'];
const FINAL = `('completed', 'failed', 'cancelled', 'compensated')`;
const workerPath = join(import.meta.dirname, 'fixtures', 'multinode-worker.ts');

interface Planned {
  input: MultinodeInput;
  priority: Priority;
  /** Indexes (into the plan) of the runs this one depends on; always earlier in its group. */
  parents: number[];
}

function plan(): Planned[] {
  const random = seeded(5);
  const runs: Planned[] = [];
  for (let g = 0; g < RUNS / GROUP; g++) {
    const base = g * GROUP;
    const shape =
      g % 2 === 0
        ? [[], [base], [base + 1], [base + 2], [base + 3]]
        : [[], [base], [base], [base + 1, base + 2], [base + 3]];
    for (const parents of shape) {
      const n = runs.length;
      runs.push({
        input: { n, steps: random() < 0.5 ? 2 : 3 },
        priority: PRIORITY_NAMES[Math.floor(random() * PRIORITY_NAMES.length)]!,
        parents,
      });
    }
  }
  return runs;
}

async function until(
  what: string,
  deadline: number,
  check: () => Promise<boolean>,
  describe: () => Promise<string>,
): Promise<void> {
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${await describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function multinodeRun(t: TestContext): Promise<void> {
  const began = Date.now();
  const deadline = began + DEADLINE_MS;
  const schema = freshSchema();
  const fx = freshSchema();
  const s = `"${schema}"`;
  const db = new pg.Pool({ connectionString: PG_URL, max: 3 });
  const store = await openStoreAt(`pg:${schema}`);
  const workers: { id: string; child: ChildProcess; ready: Promise<unknown> }[] = [];
  try {
    await db.query(effectsSchemaSql(fx, schema));
    for (let i = 0; i < WORKERS; i++) {
      const id = `multinode-worker-${i}`;
      const child = fork(workerPath, [schema, fx, id, String(LEASE_MS), String(CONCURRENCY)], {
        execArgv: ['--conditions=@bulwark/source', '--import', 'tsx'],
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        // Names its sessions, so that the test can tell when a killed worker's are gone.
        env: { ...process.env, PGAPPNAME: `${schema}-${id}` },
      });
      workers.push({ id, child, ready: once(child, 'message') });
    }

    // Enqueued while the workers start up: each group in order (a child needs its parents'
    // ids), the groups side by side.
    const runs = plan();
    const starter = new WorkflowEngine({ store });
    const definition = multinode(db, fx, 'starter');
    const ids: string[] = new Array(RUNS);
    const enqueued: Promise<string>[] = new Array(RUNS);
    await Promise.all(
      Array.from({ length: RUNS / GROUP }, async (_, g) => {
        for (let n = g * GROUP; n < (g + 1) * GROUP; n++) {
          const r = runs[n]!;
          enqueued[n] = (async () => {
            const dependsOn = await Promise.all(r.parents.map((p) => enqueued[p]!));
            const handle = await starter.start(definition, r.input, { priority: r.priority, dependsOn });
            return (ids[n] = handle.id);
          })();
        }
        await Promise.all(enqueued.slice(g * GROUP, (g + 1) * GROUP));
      }),
    );
    const enqueuedMs = Date.now() - began;
    await Promise.all(workers.map((w) => w.ready));

    const finalCount = async () =>
      Number((await db.query(`SELECT count(*) AS n FROM ${s}.runs WHERE status IN ${FINAL}`)).rows[0].n);
    const histogram = async () =>
      JSON.stringify(
        (await db.query(`SELECT status, count(*)::int AS n FROM ${s}.runs GROUP BY status`)).rows,
      );

    // Kill the worker holding the most runs at the moment a third of them are final.
    await until(
      'a third of the runs to be final',
      deadline,
      async () => (await finalCount()) >= KILL_AT,
      histogram,
    );
    const leased = await db.query(
      `SELECT lease_owner, count(*)::int AS n FROM ${s}.runs
       WHERE lease_owner IS NOT NULL AND status NOT IN ${FINAL} GROUP BY lease_owner ORDER BY n DESC`,
    );
    const victim = workers.find((w) => w.id === leased.rows[0]?.lease_owner) ?? workers[0]!;
    victim.child.kill('SIGKILL');
    await once(victim.child, 'exit');
    const killedAt = Date.now() - began;
    // A commit the victim sent just before dying may still land; what was durable at the kill is
    // known once its sessions are gone. (Its runs stay leased to it for a while yet.)
    await until(
      `the sessions of ${victim.id} to end`,
      deadline,
      async () =>
        Number(
          (
            await db.query('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [
              `${schema}-${victim.id}`,
            ])
          ).rows[0].n,
        ) === 0,
      async () => 'still open',
    );
    const finalAtKill = await finalCount();
    const inFlight = Number(
      (
        await db.query(
          `SELECT count(*) AS n FROM ${s}.runs WHERE lease_owner = $1 AND status NOT IN ${FINAL}`,
          [victim.id],
        )
      ).rows[0].n,
    );
    // Otherwise the kill proved nothing.
    assert.ok(inFlight > 0, `${victim.id} held no unfinished run when it was killed`);
    // The steps the victim had begun and not made durable: the only ones allowed to run twice.
    const inFlightSteps = new Set(
      (
        await db.query(
          `SELECT DISTINCT b.run_id || ':' || b.step AS key FROM "${fx}".began b
           WHERE b.worker = $1
             AND NOT EXISTS (SELECT 1 FROM ${s}.steps st WHERE st.run_id = b.run_id AND st.name = b.step)`,
          [victim.id],
        )
      ).rows.map((row) => row.key as string),
    );

    await until('every run to be final', deadline, async () => (await finalCount()) === RUNS, histogram);
    const finishedMs = Date.now() - began;
    const survivors = workers.filter((w) => w !== victim);
    await Promise.all(
      survivors.map((w) => {
        w.child.send('stop');
        return once(w.child, 'exit');
      }),
    );

    // Every run completed, once, with the right output.
    assert.equal(await histogram(), JSON.stringify([{ status: 'completed', n: RUNS }]));
    const completedEvents = await db.query(
      `SELECT run_id, count(*)::int AS n FROM ${s}.events WHERE type = 'run:completed' GROUP BY run_id`,
    );
    assert.equal(completedEvents.rows.length, RUNS, 'every run has a run:completed event');
    for (const row of completedEvents.rows)
      assert.equal(row.n, 1, `run ${row.run_id} completed ${row.n} times`);
    const completions = await db.query(
      `SELECT run_id, count(*)::int AS n FROM "${fx}".completions GROUP BY run_id`,
    );
    assert.equal(completions.rows.length, RUNS);
    for (const row of completions.rows)
      assert.equal(row.n, 1, `run ${row.run_id} became completed ${row.n} times`);

    // Each step recorded once per (run, step), and its keyed effect exactly once.
    const expectedKeys: string[] = [];
    for (let n = 0; n < RUNS; n++) {
      const id = ids[n]!;
      const { input } = runs[n]!;
      const names = STEP_NAMES.slice(0, input.steps);
      const steps = await store.steps(id);
      assert.deepEqual(
        steps.map((step) => `${step.name}:${step.status}`),
        names.map((name) => `${name}:completed`),
        `run ${n} (${id}) recorded ${steps.map((step) => step.name).join(', ')}`,
      );
      assert.equal((await store.getRun(id))?.output, expectedOutput(input), `run ${n} output`);
      for (const name of names) expectedKeys.push(`${id}:${name}`);
    }
    const effects = await db.query(`SELECT key FROM "${fx}".effects ORDER BY key`);
    assert.deepEqual(
      effects.rows.map((row) => row.key as string),
      expectedKeys.sort(),
      'one effect per step, under its idempotency key',
    );
    // The steps table keeps one row per (run, step) whatever the engine does; the timeline is
    // appended to, so an outcome recorded a second time would show here.
    const completedSteps = await countBy(
      db,
      `SELECT run_id || ':' || step AS key, count(*)::int AS n FROM ${s}.events
       WHERE type = 'step:completed' GROUP BY run_id, step`,
    );
    assert.deepEqual(
      notOnce(completedSteps, expectedKeys),
      [],
      'steps without exactly one step:completed event',
    );
    // Each step wrote its effect at least once; and began at most once per execution of its run:
    // twice when the victim had begun it without making it durable, or when a survivor that
    // stalled past its lease lost the run to the other (each such execution is a `run:resumed`).
    const resumptions = await countBy(
      db,
      `SELECT run_id AS key, count(*)::int AS n FROM ${s}.events WHERE type = 'run:resumed' GROUP BY run_id`,
    );
    const writes = await countBy(db, `SELECT key, count(*)::int AS n FROM "${fx}".executions GROUP BY key`);
    assert.deepEqual(
      expectedKeys.filter((key) => !((writes.get(key) ?? 0) >= 1)),
      [],
      'steps that never wrote their effect',
    );
    const starts = await countBy(
      db,
      `SELECT run_id || ':' || step AS key, count(*)::int AS n FROM "${fx}".began GROUP BY run_id, step`,
    );
    assert.deepEqual(
      expectedKeys
        .filter((key) => {
          const n = starts.get(key) ?? 0;
          const runId = key.slice(0, key.indexOf(':'));
          return n < 1 || n > 1 + (resumptions.get(runId) ?? 0);
        })
        .map((key) => `${key} began ${starts.get(key) ?? 0} times`),
      [],
      `steps begun other than once per execution of their run (${inFlightSteps.size} were in flight on ${victim.id})`,
    );
    const repeats = sum(starts) - starts.size;
    assert.ok(repeats > 0, `no step ran twice: the kill of ${victim.id} never hit the at-least-once window`);
    const rewrites = sum(writes) - writes.size;
    const byVictim = Number(
      (await db.query(`SELECT count(*) AS n FROM "${fx}".began WHERE worker = $1`, [victim.id])).rows[0].n,
    );
    assert.ok(byVictim > 0, `${victim.id} began no step before it was killed`);

    // No child's first step (by any worker, the killed one included) began before each of its
    // parents became completed: both instants from PostgreSQL's clock_timestamp(), the child's
    // taken before its step's pause.
    const edges = runs.flatMap((r, n) => r.parents.map((p) => [ids[p]!, ids[n]!]));
    const closest = await db.query(
      `SELECT e.parent, e.child, c.at AS parent_completed, first.at AS child_began,
              extract(epoch FROM first.at - c.at) * 1000 AS margin_ms
       FROM unnest($1::text[], $2::text[]) AS e (parent, child)
       LEFT JOIN "${fx}".completions c ON c.run_id = e.parent
       LEFT JOIN LATERAL (
         SELECT min(b.at) AS at FROM "${fx}".began b WHERE b.run_id = e.child) AS first ON true
       ORDER BY c.at IS NULL DESC, first.at IS NULL DESC, margin_ms`,
      [edges.map((e) => e[0]), edges.map((e) => e[1])],
    );
    const early = closest.rows.filter(
      (row) => row.parent_completed === null || row.child_began === null || Number(row.margin_ms) <= 0,
    );
    assert.deepEqual(early, [], 'children that began before a parent completed');
    const marginMs = Number(closest.rows[0].margin_ms);
    // The same on the engine's ms clock: the child's first step began at or after the parent finished.
    for (const [parent, child] of edges) {
      const finished = (await store.getRun(parent!))!.finishedAt!;
      const [first] = await store.steps(child!);
      assert.ok(first!.startedAt >= finished, `run ${child} started before its parent ${parent} finished`);
    }

    const takenOver = Number(
      (await db.query(`SELECT count(*) AS n FROM ${s}.events WHERE type = 'run:resumed'`)).rows[0].n,
    );
    t.diagnostic(
      `${RUNS} runs (${expectedKeys.length} steps, ${edges.length} dependency edges) enqueued in ${enqueuedMs} ms; ` +
        `${victim.id} killed at ${killedAt} ms with ${finalAtKill} runs final and ${inFlight} runs in flight ` +
        `(it had begun ${byVictim} steps, ${inFlightSteps.size} of them not durable); ${takenOver} resumptions; ` +
        `${repeats} step bodies repeated, ${rewrites} effect writes repeated (absorbed by the idempotency key); ` +
        `closest child began ${marginMs.toFixed(1)} ms after its parent completed; all final at ${finishedMs} ms`,
    );
  } finally {
    for (const w of workers)
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(
      workers.map((w) =>
        w.child.exitCode === null && w.child.signalCode === null ? once(w.child, 'exit') : undefined,
      ),
    );
    await store.close();
    await db.end();
    await dropSchema(fx);
    await dropSchema(schema);
  }
}

/** `key → n` from a query returning `key` and `n`. */
async function countBy(db: pg.Pool, sql: string): Promise<Map<string, number>> {
  return new Map((await db.query(sql)).rows.map((row) => [row.key as string, row.n as number]));
}

/** Keys counted other than once, or counted and not expected. */
function notOnce(counts: Map<string, number>, expected: string[]): string[] {
  const expectedSet = new Set(expected);
  return [
    ...expected.filter((key) => (counts.get(key) ?? 0) !== 1),
    ...[...counts.keys()].filter((key) => !expectedSet.has(key)),
  ].map((key) => `${key} ×${counts.get(key) ?? 0}`);
}

const sum = (counts: Map<string, number>): number => [...counts.values()].reduce((s, n) => s + n, 0);

const claim = `three workers, ${RUNS} runs with priorities and dependsOn chains, one SIGKILLed mid-way: every run completes once, no child starts before its parents`;

const unavailable = await postgresUnavailable();
if (unavailable === undefined) {
  test(`PostgreSQL: ${claim}`, { timeout: 90_000 }, (t) => multinodeRun(t));
} else if (process.env.CI === 'true') {
  test('PostgreSQL is reachable (required under CI)', () => assert.fail(unavailable));
} else {
  test(`PostgreSQL: ${claim}`, { skip: unavailable }, () => {});
}
