// What a claim costs while many runs wait (for an event, or a later time): 10,000 runs parked in
// `waiting` ahead of one queued run, then the p50 and p90 of 50 claims of one run each, on SQLite
// and on PostgreSQL, against the same with nothing waiting. Then a rolling deploy: 10,000 queued
// runs of version 1 (its worker alive) ahead of a run of version 2, claimed by a version-2 worker;
// and 10,000 queued runs of a workflow that only another worker runs, ahead of one of this one's;
// and a worker of 200 workflows.
// Run: npm run bench:workflow-claim [-- waiting]
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPostgresStore, openSqliteStore, type WorkflowStore } from '@bulwark/workflow';
import pg from 'pg';

const WAITING = Number(process.argv[2] ?? 10_000);
const PG_URL = process.env.BULWARK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const T0 = 1_700_000_000_000;
const newRun = () => ({ id: randomUUID(), workflow: 'w', version: '1', input: null, priority: 1 });

/** `waiting` runs made to wait far beyond T0, then 50 claims of one queued run each, in ms. */
async function claims(store: WorkflowStore, waiting: number): Promise<number[]> {
  for (let i = 0; i < waiting; i += 1_000) {
    await store.enqueue(Array.from({ length: Math.min(1_000, waiting - i) }, newRun), T0);
    const claimed = await store.claim({
      workerId: 'a',
      limit: 1_000,
      leaseMs: 60_000,
      now: T0,
      workflows: ['w'],
    });
    await store.commit(
      claimed.map((c) => ({
        kind: 'run' as const,
        runId: c.id,
        workerId: 'a',
        update: {
          status: 'waiting' as const,
          availableAt: T0 + 1e12,
          waitingFor: 'approval',
          releaseLease: true,
        },
      })),
      T0,
    );
  }
  return timedClaims(store, '1');
}

/**
 * `queued` runs of version 1, whose worker is alive, then 50 claims of one run each by a worker:
 * of version 2 (stepping over them to a run of its version queued behind), or of version 1.
 */
async function deployClaims(store: WorkflowStore, queued: number, version: '1' | '2'): Promise<number[]> {
  for (let i = 0; i < queued; i += 1_000)
    await store.enqueue(Array.from({ length: Math.min(1_000, queued - i) }, newRun), T0);
  await store.announce('old', { w: ['1'] }, T0, 1e12);
  return timedClaims(store, version, { w: [version] });
}

/** `queued` runs of workflow `x`, which only another (live) worker runs, then 50 claims by a worker of `w`. */
async function otherWorkflowClaims(store: WorkflowStore, queued: number): Promise<number[]> {
  for (let i = 0; i < queued; i += 1_000)
    await store.enqueue(
      Array.from({ length: Math.min(1_000, queued - i) }, () => ({ ...newRun(), workflow: 'x' })),
      T0,
    );
  await store.announce('other', { x: ['1'] }, T0, 1e12);
  return timedClaims(store, '1', { w: ['1'] });
}

/** A worker of 200 workflows (version 1 of each), nothing else queued: 50 claims of one run. */
async function manyWorkflowsClaims(store: WorkflowStore): Promise<number[]> {
  const workflows = ['w', ...Array.from({ length: 199 }, (_, i) => `w-${i}`)];
  return timedClaims(store, '1', Object.fromEntries(workflows.map((w) => [w, ['1']])));
}

/**
 * 50 times: one run of `version` queued, then claimed alone by a worker (of these versions, if
 * given), which must take it; the claims' times in ms, sorted.
 */
async function timedClaims(
  store: WorkflowStore,
  version: string,
  versions?: Record<string, string[]>,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < 50; i++) {
    await store.enqueue([{ ...newRun(), version }], T0 + 10);
    const at = performance.now();
    const got = await store.claim({
      workerId: 'b',
      limit: 1,
      leaseMs: 60_000,
      now: T0 + 10,
      workflows: versions === undefined ? ['w'] : Object.keys(versions),
      ...(versions === undefined ? {} : { versions }),
    });
    times.push(performance.now() - at);
    if (got.length !== 1 || got[0]!.version !== version) throw new Error('the queued run was not claimed');
  }
  return times.sort((a, b) => a - b);
}

const dir = mkdtempSync(join(tmpdir(), 'bulwark-claim-bench-'));
const admin = new pg.Client({ connectionString: PG_URL });
await admin.connect();
console.log(
  `One claim of one queued run, with runs waiting for later (median and p90 of 50), Node ${process.version}\n`,
);
console.log('| store | runs waiting | claim p50 ms | claim p90 ms |');
console.log('|:--|--:|--:|--:|');
/** One row per store: `label` and the p50/p90 of `measure` on a fresh SQLite file and PostgreSQL schema. */
async function onBothStores(
  tag: string,
  label: string,
  measure: (store: WorkflowStore) => Promise<number[]>,
): Promise<void> {
  const sqlite = await openSqliteStore({ path: join(dir, `${tag}.db`) });
  const schema = `bw_claim_bench_${process.pid}_${tag}`;
  const postgres = await openPostgresStore({ connectionString: PG_URL, schema, max: 4 });
  for (const [name, store] of [
    ['SQLite', sqlite],
    ['PostgreSQL', postgres],
  ] as const) {
    try {
      const t = await measure(store);
      console.log(`| ${name} | ${label} | ${t[25]!.toFixed(2)} | ${t[45]!.toFixed(2)} |`);
    } finally {
      await store.close();
    }
  }
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

try {
  for (const waiting of [0, WAITING]) {
    await onBothStores(`claims-${waiting}`, waiting.toLocaleString('en-US'), (store) =>
      claims(store, waiting),
    );
  }
  console.log(
    `\nA rolling deploy: ${WAITING.toLocaleString('en-US')} queued runs of version 1, its worker alive\n`,
  );
  console.log('| store | the claiming worker runs | claim p50 ms | claim p90 ms |');
  console.log('|:--|:--|--:|--:|');
  for (const version of ['1', '2'] as const) {
    const what = version === '1' ? 'version 1 (its runs first)' : 'version 2 (behind them)';
    await onBothStores(`deploy-${version}`, what, (store) => deployClaims(store, WAITING, version));
  }
  await onBothStores('other-workflow', 'version 1 of `w`, behind runs of `x` only another runs', (store) =>
    otherWorkflowClaims(store, WAITING),
  );
  await onBothStores(
    'many-workflows',
    'version 1 of 200 workflows, nothing else queued',
    manyWorkflowsClaims,
  );
} finally {
  await admin.end();
  rmSync(dir, { recursive: true, force: true });
}
