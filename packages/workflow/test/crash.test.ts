// Proof that nothing is lost: a worker process is SIGKILLed at random moments while it runs
// workflows; another worker takes the runs over once their leases expire. Every run must end
// completed, no step outcome may be recorded twice, and every step's side effect, keyed by its
// idempotency key, must exist exactly once.
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { WorkflowEngine, type WorkflowStore } from '@bulwark/workflow';
import Database from 'better-sqlite3';
import { crashy, openEffects } from './fixtures/crashy.ts';
import { dropSchema, freshSchema, openStoreAt, postgresUnavailable } from './stores.ts';
import { seeded } from './support.ts';

const TRIALS = 50;
/** Trials run side by side, each with its own files. */
const PARALLEL = 4;
const RUNS_PER_TRIAL = 12;
const LEASE_MS = 300;
const worker = join(import.meta.dirname, 'fixtures', 'crash-worker.ts');

async function trial(
  kind: 'sqlite' | 'postgres',
  n: number,
): Promise<{ unfinished: number; repeats: number }> {
  const random = seeded(n);
  const dir = mkdtempSync(join(tmpdir(), `bulwark-crash-${n}-`));
  const schema = freshSchema();
  const target = kind === 'sqlite' ? join(dir, 'runs.db') : `pg:${schema}`;
  const effectsPath = join(dir, 'effects.db');
  let child: ChildProcess | undefined;
  const store = await openStoreAt(target);
  const effectsDb = new Database(effectsPath);
  try {
    const starter = new WorkflowEngine({ store });
    starter.register(crashy(openEffects(effectsDb)));
    const ids: string[] = [];
    for (let i = 0; i < RUNS_PER_TRIAL; i++) ids.push((await starter.start('crashy', { n: i })).id);

    child = fork(worker, [target, effectsPath, String(LEASE_MS)], {
      execArgv: ['--conditions=@bulwark/source', '--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    await once(child, 'message');
    // Somewhere in the middle of the work: before, during or after any step.
    await new Promise((r) => setTimeout(r, 5 + Math.floor(random() * 120)));
    child.kill('SIGKILL');
    await once(child, 'exit');
    let unfinished = 0;
    for (const id of ids) if ((await store.getRun(id))?.status !== 'completed') unfinished++;

    const survivor = new WorkflowEngine({ store, pollMs: 10, leaseMs: LEASE_MS, concurrency: 8 });
    survivor.register(crashy(openEffects(effectsDb))).startWorker();
    try {
      for (const id of ids) assert.equal(await survivor.result(id), await expected(store, id));
    } finally {
      await survivor.stop();
    }
    for (const id of ids) {
      const steps = await store.steps(id);
      assert.deepEqual(
        steps.map((s) => s.name),
        ['one', 'two', 'three'],
        `trial ${n}: run ${id} recorded ${steps.map((s) => s.name).join(', ')}`,
      );
      const run = await store.getRun(id);
      assert.equal(run?.status, 'completed', `trial ${n}: run ${id} is ${run?.status}`);
    }
    const effects = effectsDb.prepare('SELECT key FROM effects').all() as { key: string }[];
    assert.equal(effects.length, RUNS_PER_TRIAL * 3, `trial ${n}: one effect per step`);
    const executions = effectsDb.prepare('SELECT count(*) AS n FROM executions').get() as { n: number };
    assert.ok(executions.n >= RUNS_PER_TRIAL * 3, 'every step ran at least once');
    return { unfinished, repeats: executions.n - RUNS_PER_TRIAL * 3 };
  } finally {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    effectsDb.close();
    await store.close();
    if (kind === 'postgres') await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What a `crashy` run returns: its input plus one per step. */
async function expected(store: WorkflowStore, id: string): Promise<number> {
  const run = await store.getRun(id);
  return (run!.input as { n: number }).n + 3;
}

async function trials(kind: 'sqlite' | 'postgres', t: TestContext): Promise<void> {
  const queue = Array.from({ length: TRIALS }, (_, i) => i + 1);
  let done = 0;
  let interrupted = 0;
  let repeats = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        const r = await trial(kind, n);
        done++;
        if (r.unfinished > 0) interrupted++;
        repeats += r.repeats;
      }
    }),
  );
  assert.equal(done, TRIALS);
  t.diagnostic(
    `${interrupted} of ${TRIALS} kills left runs unfinished; ${repeats} step executions were repeated after a kill`,
  );
  // The kills must really land mid-work, or the test proves nothing.
  assert.ok(interrupted >= TRIALS / 2, `only ${interrupted} kills interrupted work`);
}

const claim =
  'workers SIGKILLed mid-run; every run completes, each step recorded once, its effect exactly once';

test(`SQLite: ${TRIALS} ${claim}`, (t) => trials('sqlite', t));

const unavailable = await postgresUnavailable();
if (unavailable === undefined) {
  test(`PostgreSQL: ${TRIALS} ${claim}`, (t) => trials('postgres', t));
} else if (process.env.CI === 'true') {
  test('PostgreSQL is reachable (required under CI)', () => assert.fail(unavailable));
} else {
  test(`PostgreSQL: ${TRIALS} ${claim}`, { skip: unavailable }, () => {});
}
