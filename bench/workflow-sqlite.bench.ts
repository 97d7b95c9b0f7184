// What group commit buys the SQLite workflow store: commits/s and three-step workflows/s (the
// store calls a three-step workflow makes, without the engine) one at a time and many in flight.
// Run: node --conditions=@bulwark/source --import tsx bench/workflow-sqlite.bench.ts [full|normal]
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Change, openSqliteStore, type SqliteStore } from '@bulwark/workflow';

const durability = (process.argv[2] ?? 'full') as 'full' | 'normal';
const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-'));
let files = 0;
let now = 1_700_000_000_000;

async function withStore<T>(body: (store: SqliteStore) => Promise<T>): Promise<T> {
  const store = await openSqliteStore({ path: join(dir, `bench-${files++}.db`), durability });
  try {
    return await body(store);
  } finally {
    await store.close();
  }
}

/** `total` commits of one event each, `inFlight` at a time. */
async function commits(total: number, inFlight: number) {
  return withStore(async (store) => {
    const [run] = await store.enqueue(
      [{ id: randomUUID(), workflow: 'b', version: '1', input: null, priority: 1 }],
      now,
    );
    const runId = run?.id ?? '';
    const change: Change[] = [
      { kind: 'event', runId, event: { type: 'tick', step: undefined, data: null, progress: 0, at: now } },
    ];
    const before = store.stats();
    const start = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next++ < total) await store.commit(change, now);
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    const after = store.stats();
    return { perSecond: total / seconds, transactions: after.transactions - before.transactions };
  });
}

/** One three-step workflow's store calls: start, claim, three checkpoints, completion. */
async function threeSteps(store: SqliteStore, worker: string): Promise<void> {
  const id = randomUUID();
  await store.enqueue([{ id, workflow: 'three', version: '1', input: { n: 1 }, priority: 1 }], now);
  // Claims what it can; in a real engine a claim picks up many runs. Here each "worker" loops
  // until it gets its own run or another took it (then it works that one instead).
  const claimed = await store.claim({
    workerId: worker,
    limit: 1,
    leaseMs: 30_000,
    now,
    workflows: ['three'],
  });
  const run = claimed[0];
  if (!run) return;
  for (const [i, step] of ['a', 'b', 'c'].entries()) {
    await store.commit(
      [
        {
          kind: 'step',
          runId: run.id,
          workerId: worker,
          step: {
            name: step,
            status: 'completed',
            output: { i },
            error: undefined,
            attempts: 1,
            startedAt: now,
            finishedAt: now,
          },
        },
        { kind: 'run', runId: run.id, workerId: worker, update: { progress: (i + 1) * 30 } },
        {
          kind: 'event',
          runId: run.id,
          event: { type: 'step:completed', step, data: null, progress: (i + 1) * 30, at: now },
        },
      ],
      now,
    );
  }
  await store.commit(
    [
      {
        kind: 'run',
        runId: run.id,
        workerId: worker,
        update: { status: 'completed', output: 'done', progress: 100 },
      },
      {
        kind: 'event',
        runId: run.id,
        event: { type: 'run:completed', step: undefined, data: null, progress: 100, at: now },
      },
    ],
    now,
  );
}

async function workflows(total: number, inFlight: number) {
  return withStore(async (store) => {
    const before = store.stats();
    const start = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async (_, w) => {
        while (next++ < total) await threeSteps(store, `w${w}`);
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    const after = store.stats();
    const completed = (await store.listRuns({ status: ['completed'], limit: total + 1 })).length;
    return {
      perSecond: completed / seconds,
      transactions: after.transactions - before.transactions,
      completed,
    };
  });
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(`SQLite workflow store, durability '${durability}', node ${process.version}`);
for (const inFlight of [1, 16, 256]) {
  const total = inFlight === 1 ? 2_000 : 20_000;
  const r = await commits(total, inFlight);
  console.log(
    `commits, ${String(inFlight).padStart(3)} in flight: ${fmt(r.perSecond).padStart(8)} commits/s, ${(total / r.transactions).toFixed(1)} commits per transaction`,
  );
}
for (const inFlight of [1, 16, 256]) {
  const total = inFlight === 1 ? 500 : 10_000;
  const r = await workflows(total, inFlight);
  console.log(
    `three-step workflows, ${String(inFlight).padStart(3)} in flight: ${fmt(r.perSecond).padStart(7)} workflows/s (${fmt(r.perSecond * 3)} steps/s), ${(r.transactions / r.completed).toFixed(2)} transactions per workflow`,
  );
}
now++;
rmSync(dir, { recursive: true, force: true });
