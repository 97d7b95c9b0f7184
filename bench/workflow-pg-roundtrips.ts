// What N concurrent three-step runs cost the PostgreSQL store, with group commit and without:
// round trips, write commits (counted at the client), WAL syncs (the server's count) and time.
// node --conditions=@bulwark/source --import tsx bench/workflow-pg-roundtrips.ts [N...]
import { randomUUID } from 'node:crypto';
import { PostgresStore } from '@bulwark/workflow';
import pg from 'pg';

const PG_URL = process.env.BULWARK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const T0 = 1_700_000_000_000;
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);

interface Counts {
  roundTrips: number;
  commits: number;
}

/** A pool whose clients count every query sent, and the ones that commit a write. */
function countingPool(counts: Counts): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 10 });
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    let inTransaction = false;
    (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text: string }).text;
      counts.roundTrips++;
      if (/^\s*BEGIN/i.test(text)) inTransaction = true;
      if (/COMMIT\s*$/i.test(text)) {
        counts.commits++;
        inTransaction = false;
      } else if (/ROLLBACK\s*$/i.test(text)) inTransaction = false;
      else if (!inTransaction && /\b(INSERT|UPDATE|DELETE)\b/i.test(text)) counts.commits++;
      return query(...args);
    };
  });
  return pool;
}

async function walSyncs(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query('SELECT wal_sync FROM pg_stat_wal');
  return Number(rows[0].wal_sync);
}

/** Enqueue N runs (one call each), claim them, then 3 steps and a completion per run, all at once. */
async function measure(n: number, groupCommit: boolean) {
  const counts: Counts = { roundTrips: 0, commits: 0 };
  const pool = countingPool(counts);
  const schema = `bw_bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const store = new PostgresStore({ pool, schema, groupCommit });
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await store.migrate();
    Object.assign(counts, { roundTrips: 0, commits: 0 });
    const walBefore = await walSyncs(admin);
    const started = performance.now();
    const ids = Array.from({ length: n }, () => randomUUID());
    await Promise.all(
      ids.map((id) =>
        store.enqueue([{ id, workflow: 'bench', version: '1', input: { id }, priority: 1 }], T0),
      ),
    );
    const claimed = [];
    while (claimed.length < n) {
      claimed.push(
        ...(await store.claim({ workerId: 'w', limit: n, leaseMs: 60_000, now: T0, workflows: ['bench'] })),
      );
    }
    await Promise.all(
      claimed.map(async (run) => {
        for (const [i, name] of ['a', 'b', 'c'].entries()) {
          await store.commit(
            [
              {
                kind: 'step',
                runId: run.id,
                workerId: 'w',
                step: {
                  name,
                  status: 'completed',
                  output: i,
                  error: undefined,
                  attempts: 1,
                  startedAt: T0,
                  finishedAt: T0,
                },
              },
              { kind: 'run', runId: run.id, workerId: 'w', update: { progress: (i + 1) * 33 } },
              {
                kind: 'event',
                runId: run.id,
                event: { type: 'step:completed', step: name, data: null, progress: 0, at: T0 },
              },
            ],
            T0,
          );
        }
        await store.commit(
          [
            {
              kind: 'run',
              runId: run.id,
              workerId: 'w',
              update: { status: 'completed', output: 'done', releaseLease: true },
            },
            {
              kind: 'event',
              runId: run.id,
              event: { type: 'run:completed', step: undefined, data: null, progress: 100, at: T0 },
            },
          ],
          T0,
        );
      }),
    );
    const ms = performance.now() - started;
    const snapshot = { ...counts };
    await store.close();
    await pool.end();
    // Backends flush their statistics when they exit, and the WAL writer's count settles.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const wal = (await walSyncs(admin)) - walBefore;
    return { n, groupCommit, ms, ...snapshot, wal, transactions: store.stats.transactions };
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
    await store.close();
  }
}

console.log(
  'runs  group  round trips (per run)  write commits (per run)  WAL syncs  store txns  ms     runs/s',
);
for (const n of sizes.length > 0 ? sizes : [100, 1000]) {
  for (const groupCommit of [true, false]) {
    const r = await measure(n, groupCommit);
    console.log(
      [
        String(r.n).padEnd(5),
        String(r.groupCommit).padEnd(6),
        `${r.roundTrips} (${(r.roundTrips / n).toFixed(2)})`.padEnd(22),
        `${r.commits} (${(r.commits / n).toFixed(3)})`.padEnd(24),
        String(r.wal).padEnd(10),
        String(r.transactions).padEnd(11),
        r.ms.toFixed(0).padEnd(6),
        ((n / r.ms) * 1000).toFixed(0),
      ].join(' '),
    );
  }
}
