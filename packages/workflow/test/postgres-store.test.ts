// The PostgreSQL store: the conformance suite, each test in a schema of its own, then what only
// PostgreSQL does (claims across pools, LISTEN/NOTIFY and its polling fallback, migrations run
// at once, lease takeover, group commit). Without a server the tests skip, except under CI.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { ErrorCodes, InvalidOptionsError } from '@bulwark/core';
import pg from 'pg';
import { WorkflowErrorCodes } from '../src/errors.ts';
import { PostgresStore, type PostgresStoreOptions } from '../src/store/postgres/index.ts';
import { CLAIM_PLANS, INDEX_PLANS, statements } from '../src/store/postgres/sql.ts';
import type { ClaimedRun, NewRun, WakeTopic } from '../src/store/types.ts';
import { storeConformance } from './store-conformance.ts';
import { PG_URL, postgresUnavailable } from './stores.ts';

/** The application name of the tests' own admin connections. */
const ADMIN = 'bulwark-test-admin';

const T0 = 1_700_000_000_000;
const late = { type: 'run:late', step: undefined, data: undefined, progress: 0, at: T0 + 1 };

const unreachable = await postgresUnavailable();

if (unreachable !== undefined) {
  if (process.env.CI === 'true') {
    test('PostgreSQL is reachable (required under CI)', () => assert.fail(unreachable));
  } else {
    test('PostgreSQL store tests', { skip: unreachable }, () => {});
  }
} else {
  suites();
}

function suites(): void {
  /** For creating and dropping the tests' schemas; named, so that no test's termination picks it. */
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2, application_name: ADMIN });
  // An idle connection dropped from under the pool (a server restart) is an 'error' event on the
  // pool: unhandled, it would end the whole file. The pool replaces the connection by itself.
  admin.on('error', () => {});
  after(() => admin.end());

  function freshSchema(): string {
    return `bw_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  }

  async function dropSchema(schema: string): Promise<void> {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema.replaceAll('"', '""')}" CASCADE`);
  }

  /** A store (not migrated) on a fresh schema; `close` also drops the schema. */
  function openStore(options: PostgresStoreOptions = {}) {
    const schema = options.schema ?? freshSchema();
    const store = new PostgresStore({ connectionString: PG_URL, max: 4, ...options, schema });
    return {
      store,
      schema,
      async close() {
        await store.close();
        await dropSchema(schema);
      },
    };
  }

  /** `count` more stores on the same schema, each with its own pool (as other processes would). */
  function peers(schema: string, count: number, options: PostgresStoreOptions = {}): PostgresStore[] {
    return Array.from(
      { length: count },
      () => new PostgresStore({ connectionString: PG_URL, max: 3, schema, ...options }),
    );
  }

  /** Terminates the backends whose last statement was a claim on `schema`'s runs; how many. */
  async function terminateClaimConnections(schema: string): Promise<number> {
    const { rows } = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE pid <> pg_backend_pid() AND application_name <> $2 AND query LIKE $1`,
      // The claim's text as pg_stat_activity keeps it: its first 1,024 bytes.
      [`%queued_versions%"${schema}".runs%`, ADMIN],
    );
    return rows.length;
  }

  /** A pool of `max` connections that records the text of every statement sent through it. */
  function recordingPool(max: number): { pool: pg.Pool; sent: string[] } {
    const pool = new pg.Pool({ connectionString: PG_URL, max });
    const sent: string[] = [];
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as { query: unknown }).query = (config: unknown, ...rest: unknown[]) => {
        sent.push(typeof config === 'string' ? config : String((config as { text: string }).text));
        return query(config, ...rest);
      };
    });
    return { pool, sent };
  }

  /** Runs `body` on a fresh, migrated schema and always cleans up (peers included). */
  async function withSchema(
    body: (
      store: PostgresStore,
      schema: string,
      track: (s: PostgresStore[]) => PostgresStore[],
    ) => Promise<void>,
    options: PostgresStoreOptions = {},
  ): Promise<void> {
    const opened = openStore(options);
    const others: PostgresStore[] = [];
    try {
      await opened.store.migrate();
      await body(opened.store, opened.schema, (s) => {
        others.push(...s);
        return s;
      });
    } finally {
      await Promise.all(others.map((s) => s.close()));
      await opened.close();
    }
  }

  function newRun(overrides: Partial<NewRun> = {}): NewRun {
    return { id: randomUUID(), workflow: 'pg', version: '1', input: null, priority: 1, ...overrides };
  }

  /** Waits (bounded) until `check` holds, polling every 5 ms: wake-ups cross a connection. */
  async function eventually(check: () => boolean, what: string, ms = 3_000): Promise<void> {
    const deadline = performance.now() + ms;
    while (!check()) {
      if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  storeConformance('postgres', async () => {
    const opened = openStore();
    return { store: opened.store, close: opened.close };
  });

  describe('PostgreSQL store', () => {
    // -----------------------------------------------------------------------------------------
    describe('claims across pools', () => {
      test('concurrent claims from several pools never return the same run (SKIP LOCKED)', async () => {
        await withSchema(async (store, schema, track) => {
          const runs = Array.from({ length: 300 }, (_, i) => newRun({ priority: i % 5 }));
          const workers = track(peers(schema, 5));
          // Each pool's claim connection open before the race: a claim takes well under a
          // millisecond, so a pool still connecting could find the runs all taken.
          const idle = { workerId: 'warm-up', limit: 1, leaseMs: 60_000, now: T0, workflows: ['none'] };
          await Promise.all(workers.map((worker) => worker.claim(idle)));
          await store.enqueue(runs, T0);
          const claimed = await Promise.all(
            workers.map(async (worker, w) => {
              const mine: string[] = [];
              for (;;) {
                const batch = await worker.claim({
                  workerId: `w${w}`,
                  limit: 7,
                  leaseMs: 60_000,
                  now: T0,
                  workflows: ['pg'],
                });
                if (batch.length === 0) return mine;
                mine.push(...batch.map((r) => r.id));
              }
            }),
          );
          const all = claimed.flat();
          assert.equal(new Set(all).size, all.length, 'no run claimed twice');
          assert.equal(all.length, runs.length, 'every run claimed');
          assert.ok(claimed.filter((c) => c.length > 0).length > 1, 'the claims really ran side by side');
        });
      });

      test('concurrent claims under a perWorkflow limit never exceed it across pools', async () => {
        await withSchema(async (store, schema, track) => {
          await store.enqueue(
            Array.from({ length: 60 }, () => newRun()),
            T0,
          );
          const workers = track(peers(schema, 6));
          const claimed = await Promise.all(
            workers.map((worker, w) =>
              worker.claim({
                workerId: `w${w}`,
                limit: 4,
                leaseMs: 60_000,
                now: T0,
                workflows: ['pg'],
                perWorkflow: { pg: 5 },
              }),
            ),
          );
          assert.equal(claimed.flat().length, 5);
          const leased = await store.listRuns({ status: ['running'] });
          assert.equal(leased.length, 5);
        });
      });

      test('concurrent claims under a perKey limit never exceed it across pools', async () => {
        await withSchema(async (store, schema, track) => {
          await store.enqueue(
            Array.from({ length: 40 }, (_, i) => newRun({ concurrencyKey: `tenant-${i % 4}` })),
            T0,
          );
          const workers = track(peers(schema, 6));
          const claimed = await Promise.all(
            workers.map((worker, w) =>
              worker.claim({
                workerId: `w${w}`,
                limit: 5,
                leaseMs: 60_000,
                now: T0,
                workflows: ['pg'],
                perKey: 2,
              }),
            ),
          );
          const perKey = new Map<string, number>();
          for (const run of claimed.flat())
            perKey.set(run.concurrencyKey!, (perKey.get(run.concurrencyKey!) ?? 0) + 1);
          assert.deepEqual([...perKey.values()], [2, 2, 2, 2]);
        });
      });

      test('a lease that expired is taken over by another pool, and the old worker writes nothing', async () => {
        await withSchema(async (store, schema, track) => {
          const [other] = track(peers(schema, 1));
          const [run] = await store.enqueue([newRun()], T0);
          const [mine] = await store.claim({
            workerId: 'a',
            limit: 1,
            leaseMs: 1_000,
            now: T0,
            workflows: ['pg'],
          });
          assert.equal(mine?.id, run?.id);
          assert.deepEqual(
            await other!.claim({ workerId: 'b', limit: 1, leaseMs: 1_000, now: T0 + 999, workflows: ['pg'] }),
            [],
          );
          const [taken] = await other!.claim({
            workerId: 'b',
            limit: 1,
            leaseMs: 1_000,
            now: T0 + 1_000,
            workflows: ['pg'],
          });
          assert.equal(taken?.id, run?.id);
          assert.equal(taken?.takenOver, true);
          const stale = await store.commit(
            [
              {
                kind: 'step',
                runId: run!.id,
                workerId: 'a',
                step: {
                  name: 's',
                  status: 'completed',
                  output: 1,
                  error: undefined,
                  attempts: 1,
                  startedAt: T0,
                  finishedAt: T0,
                },
              },
            ],
            T0 + 1_001,
          );
          assert.deepEqual(stale.lostLease, [run?.id]);
          assert.deepEqual(await store.renew('a', [run!.id], 1_000, T0 + 1_001), {
            held: [],
            cancelRequested: [],
          });
          assert.deepEqual(await store.steps(run!.id), []);
        });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('wake-ups', () => {
      test('subscribe sees runs and run:<id> after changes made through another store on another pool (LISTEN/NOTIFY)', async () => {
        // Polling every minute: only NOTIFY can deliver within the test's bounds.
        await withSchema(
          async (store, schema, track) => {
            const [writer] = track(peers(schema, 1));
            const heard: WakeTopic[] = [];
            const stop = store.subscribe((t) => heard.push(t));
            try {
              await eventually(() => store.listening, 'the LISTEN connection');
              const [run] = await writer!.enqueue([newRun()], T0);
              await eventually(() => heard.includes('runs'), "'runs' from the other store");
              const [claimed] = await writer!.claim({
                workerId: 'w',
                limit: 1,
                leaseMs: 1_000,
                now: T0,
                workflows: ['pg'],
              });
              assert.equal(claimed?.id, run?.id);
              // The enqueue's own NOTIFY named the run too: only what the commit sends counts.
              await eventually(() => heard.includes(`run:${run!.id}`), 'the enqueue’s wake-up');
              const [child] = await writer!.enqueue([newRun({ dependsOn: [run!.id] })], T0);
              await eventually(() => heard.includes(`run:${child!.id}`), 'the child’s enqueue heard');
              heard.length = 0;
              const calls = writer!.stats.commitCalls;
              await writer!.commit(
                [
                  {
                    kind: 'event',
                    runId: run!.id,
                    event: { type: 'x', step: undefined, data: null, progress: 0, at: T0 },
                  },
                ],
                T0,
              );
              await eventually(
                () => heard.includes(`run:${run!.id}`),
                `'run:${run!.id}' from the other store`,
              );
              assert.ok(!heard.includes('runs'), 'nothing to claim yet');
              heard.length = 0;
              // Its completion releases the child: claimable, so idle workers hear 'runs'.
              await writer!.commit(
                [{ kind: 'run', runId: run!.id, workerId: 'w', update: { status: 'completed', output: 1 } }],
                T0 + 1,
              );
              assert.equal(writer!.stats.commitCalls - calls, 2, 'both through the commit function');
              assert.equal((await store.getRun(child!.id))?.pendingParents, 0);
              await eventually(() => heard.includes('runs'), "'runs' for the released child");
              await writer!.signal(run!.id, 'poke', null, T0);
            } finally {
              stop();
            }
          },
          { pollMs: 60_000 },
        );
      });

      test('with listen: false, subscribers are woken by polling', async () => {
        await withSchema(
          async (store, schema, track) => {
            const [writer] = track(peers(schema, 1));
            const heard: WakeTopic[] = [];
            const stop = store.subscribe((t) => heard.push(t));
            try {
              await new Promise((resolve) => setTimeout(resolve, 30));
              assert.equal(store.listening, false);
              const [run] = await writer!.enqueue([newRun()], T0);
              await eventually(() => heard.includes(`run:${run!.id}`), 'a polled run:<id>');
              assert.ok(heard.includes('runs'));
            } finally {
              stop();
            }
          },
          { listen: false, pollMs: 20 },
        );
      });

      test("with listen: false, a claim takes the claims' planner settings for its own transaction only", async () => {
        const { pool, sent } = recordingPool(1);
        const schema = freshSchema();
        const store = new PostgresStore({ pool, schema, listen: false, pollMs: 60_000 });
        try {
          await store.migrate();
          const runs = [newRun({ priority: 1 }), newRun({ priority: 3 })];
          await store.enqueue(runs, T0);
          sent.length = 0;
          const claimed = await store.claim({
            workerId: 'w',
            limit: 1,
            leaseMs: 60_000,
            now: T0,
            workflows: ['pg'],
          });
          assert.deepEqual(
            claimed.map((r) => r.id),
            [runs[1]!.id],
          );
          assert.equal(sent.length, 3, sent.join(' | '));
          assert.ok(sent[0]!.startsWith(`BEGIN; ${INDEX_PLANS}${CLAIM_PLANS}`), sent[0]);
          assert.match(sent[1]!, /queued_versions/);
          assert.equal(sent[2], 'COMMIT');
          // The one connection, which a pooler would hand to other clients next, kept nothing.
          const { rows } = await pool.query(
            "SELECT current_setting('plan_cache_mode') AS mode, current_setting('enable_indexonlyscan') AS ios, current_setting('enable_seqscan') AS seq",
          );
          assert.deepEqual(rows, [{ mode: 'auto', ios: 'on', seq: 'on' }]);
        } finally {
          await store.close();
          await pool.end();
          await dropSchema(schema);
        }
      });

      test('when the LISTEN connection drops, the store polls, then listens again', async () => {
        await withSchema(
          async (store, schema, track) => {
            const [writer] = track(peers(schema, 1));
            const heard: WakeTopic[] = [];
            const stop = store.subscribe((t) => heard.push(t));
            try {
              await eventually(() => store.listening, 'the LISTEN connection');
              const pid = store.listenerPid;
              assert.ok(pid);
              await admin.query('SELECT pg_terminate_backend($1)', [pid]);
              await eventually(() => !store.listening || store.listenerPid !== pid, 'the drop to be noticed');
              const [run] = await writer!.enqueue([newRun()], T0);
              await eventually(() => heard.includes(`run:${run!.id}`), 'a wake-up after the drop');
              await eventually(() => store.listening && store.listenerPid !== pid, 'a new LISTEN connection');
              heard.length = 0;
              const [second] = await writer!.enqueue([newRun()], T0);
              await eventually(() => heard.includes(`run:${second!.id}`), 'a wake-up on the new connection');
            } finally {
              stop();
            }
          },
          { pollMs: 50 },
        );
      });

      test('unsubscribing the last listener closes the LISTEN connection', async () => {
        await withSchema(async (store) => {
          const stop = store.subscribe(() => {});
          await eventually(() => store.listening, 'the LISTEN connection');
          stop();
          await eventually(() => !store.listening, 'the connection to close');
        });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('run feed', () => {
      /** Waits (bounded) until some session waits for an advisory lock: a feed or writer held back. */
      async function untilLockWaited(): Promise<void> {
        const deadline = performance.now() + 3_000;
        for (;;) {
          const { rows } = await admin.query(
            `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
          );
          if (rows[0].n > 0) return;
          if (performance.now() > deadline) assert.fail('no session waited for the feed lock');
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }

      test('an event committed after a later seq is not skipped: the feed waits for writers in flight', async () => {
        await withSchema(async (store, schema) => {
          const [run] = await store.enqueue([newRun()], T0);
          // A writer as the store's own: the feed lock shared from BEGIN, a seq taken, not committed.
          const writer = new pg.Client({ connectionString: PG_URL });
          await writer.connect();
          try {
            await writer.query('BEGIN');
            await writer.query('SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))', [
              `bulwark:feed:${schema}`,
            ]);
            await writer.query(
              `INSERT INTO "${schema}".events (run_id, type, progress, at) VALUES ($1, 'run:early', 0, $2)`,
              [run?.id, T0],
            );
            // A later seq, committed first.
            await store.commit([{ kind: 'event', runId: run?.id ?? '', event: late }], T0 + 1);
            const feed = store.runFeed(0, 10);
            await untilLockWaited();
            await writer.query('COMMIT');
            assert.deepEqual(
              (await feed).map((e) => e.type),
              ['run:queued', 'run:early', 'run:late'],
            );
          } finally {
            await writer.end();
          }
        });
      });

      test('the store’s writers hold the feed lock before their first event, so a feed read cannot pass them', async () => {
        await withSchema(async (store, schema) => {
          const lastSeq = async () =>
            (
              await admin.query(
                `SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, 'seq')::regclass), 0) AS n`,
                [`"${schema}".events`],
              )
            ).rows[0].n;
          /** Runs `write` while a feed reader holds the lock: it must wait, having taken no seq. */
          const heldBack = async (what: string, write: () => Promise<unknown>) => {
            const reader = await admin.connect();
            try {
              await reader.query('BEGIN');
              await reader.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
                `bulwark:feed:${schema}`,
              ]);
              const before = await lastSeq();
              let done = false;
              const written = write().then(() => {
                done = true;
              });
              await untilLockWaited();
              assert.equal(done, false, `${what} waits for the feed reader`);
              assert.equal(await lastSeq(), before, `${what} took no seq before the lock`);
              await reader.query('COMMIT');
              await written;
            } finally {
              reader.release();
            }
          };
          const run = newRun();
          await heldBack('the enqueue (one statement)', () => store.enqueue([run], T0));
          await store.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] });
          const event = { type: 'x', step: undefined, data: null, progress: 0, at: T0 };
          await heldBack('the commit', () => store.commit([{ kind: 'event', runId: run.id, event }], T0));
          await heldBack('the enqueue (a transaction)', () =>
            store.enqueue([newRun({ dependsOn: [run.id] })], T0),
          );
        });
      });

      test('the feed reads through its partial index', async () => {
        await withSchema(async (store, schema) => {
          await store.enqueue([newRun()], T0);
          const client = await admin.connect();
          try {
            await client.query('BEGIN');
            await client.query('SET LOCAL enable_seqscan = off');
            const text = statements(`"${schema}"`, 'x')
              .runFeed.text.replace('$1', '0')
              .replace('$2', '100')
              .replace('$3', '10');
            const { rows } = await client.query(`EXPLAIN ${text}`);
            const plan = rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
            assert.match(plan, /events_run_feed/);
            await client.query('ROLLBACK');
          } finally {
            client.release();
          }
        });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('write plans and claims under load', () => {
      test('write statements read runs and steps by key, even with plans cached while the tables were small', async () => {
        await withSchema(async (store, schema) => {
          // A fresh schema: the planner thinks every table tiny, as it does until the first ANALYZE.
          await store.enqueue(
            Array.from({ length: 50 }, () => newRun()),
            T0,
          );
          const sql = statements(`"${schema}"`, 'x');
          const writes = {
            lockRuns: ["'{a,b}'::text[]"],
            releaseDependents: ["'{a}'::text[]", '1'],
            cancelDependents: ["'{a}'::text[]", "'{failed}'::text[]", '1'],
            applyCommit: [
              `'[{"ord":0,"run_id":"a","name":"s"}]'::jsonb`,
              `'[{"id":"a","now":1}]'::jsonb`,
              `'[{"ord":0,"run_id":"a","type":"t","progress":0,"at":1}]'::jsonb`,
              "'{a}'::text[]",
              '1',
            ],
          } as const;
          /** The scans of runs, steps and run_deps in the generic plan that read a table, or a whole index, without a key. */
          const unkeyed = async (settings: string): Promise<string[]> => {
            const client = await admin.connect();
            const found: string[] = [];
            try {
              for (const [name, args] of Object.entries(writes)) {
                await client.query(`BEGIN; ${settings}SET LOCAL plan_cache_mode = force_generic_plan`);
                const text = sql[name as keyof typeof writes].text;
                await client.query(`PREPARE p AS ${text}`);
                const { rows } = await client.query(`EXPLAIN (FORMAT JSON) EXECUTE p(${args.join(', ')})`);
                await client.query('ROLLBACK; DEALLOCATE p');
                const walk = (node: Record<string, unknown>): void => {
                  const relation = node['Relation Name'];
                  if (
                    (relation === 'runs' || relation === 'steps' || relation === 'run_deps') &&
                    String(node['Node Type']).endsWith('Scan') &&
                    node['Index Cond'] === undefined &&
                    node['Recheck Cond'] === undefined
                  )
                    found.push(`${name}: ${String(node['Node Type'])} on ${relation}`);
                  for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? [])
                    walk(child);
                };
                walk((rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
              }
            } finally {
              await client.query('ROLLBACK').catch(() => {});
              client.release();
            }
            return found;
          };
          assert.deepEqual(await unkeyed(INDEX_PLANS), []);
          // The check can fail: without the settings, these plans scan tables that only grow.
          assert.ok((await unkeyed('')).length > 0);
        });
      });

      test('an idle claim reads runs through their indexes, even on a connection that claimed while the table was small', async () => {
        const schema = freshSchema();
        /**
         * The runs table's statistics once every backend that used the schema has exited (they
         * flush their statistics as they do) and `flushed` holds.
         */
        const stats = async (flushed: (row: { seqScans: number; inserted: number }) => boolean) => {
          const deadline = performance.now() + 5_000;
          for (;;) {
            const { rows: left } = await admin.query(
              'SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE $1',
              [`%${schema}%`],
            );
            const { rows } = await admin.query(
              'SELECT seq_scan, n_tup_ins FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2',
              [schema, 'runs'],
            );
            const row = {
              seqScans: Number(rows[0]?.seq_scan ?? -1),
              inserted: Number(rows[0]?.n_tup_ins ?? 0),
            };
            if (left[0].n === 0 && flushed(row)) return row;
            if (performance.now() > deadline) assert.fail('the store’s statistics were not flushed');
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        };
        try {
          // Creating the indexes reads the table: counted before the claims.
          const migrating = new PostgresStore({ connectionString: PG_URL, schema });
          await migrating.migrate();
          await migrating.close();
          // Flushed once the migrating backend has exited: its index builds read the table.
          const before = await stats((row) => row.seqScans > 0);
          // One connection, so that the claims below share whatever plan it caches.
          const store = new PostgresStore({ connectionString: PG_URL, max: 1, schema });
          const request = { workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] };
          try {
            await store.enqueue(
              Array.from({ length: 20 }, () => newRun()),
              T0,
            );
            // More than the five custom plans after which PostgreSQL keeps a generic one.
            for (let i = 0; i < 8; i++) assert.equal((await store.claim(request)).length, 1);
            await store.enqueue(
              Array.from({ length: 2_000 }, () => newRun()),
              T0,
            );
            for (let i = 0; i < 3; i++) assert.equal((await store.claim(request)).length, 1);
          } finally {
            await store.close();
          }
          const after = await stats((row) => row.inserted >= 2_020);
          assert.equal(after.seqScans - before.seqScans, 0, 'no claim read the runs table in full');
        } finally {
          await dropSchema(schema);
        }
      });

      test('an idle claim’s connection that drops is replaced at the next claim', async () => {
        await withSchema(async (store, schema) => {
          await store.enqueue([newRun(), newRun()], T0);
          const request = { workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] };
          assert.equal((await store.claim(request)).length, 1);
          assert.equal(await terminateClaimConnections(schema), 1, 'the claim connection');
          // A claim sent before the client hears of the drop fails; the next one reconnects.
          let claimed: ClaimedRun[] | undefined;
          for (let i = 0; i < 50 && claimed === undefined; i++) {
            claimed = await store.claim(request).catch(async () => {
              await new Promise((resolve) => setTimeout(resolve, 20));
              return undefined;
            });
          }
          assert.equal(claimed?.length, 1);
        });
      });

      test('a connection that drops while the store has it checked out fails its call, not the process', async () => {
        await withSchema(async (store, schema) => {
          const request = { workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] };
          // A socket error on a client out of the pool has no listener of the pool's: unhandled,
          // it is an uncaught exception, which ends the process (and fails this test).
          for (let i = 0; i < 20; i++) {
            await store.claim(request).catch(() => {});
            await terminateClaimConnections(schema);
            // At once: the claim takes the connection before it hears of the drop, most times.
            await store.claim(request).catch(() => {});
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
          // The dropped connections were discarded: the store answers again.
          let answer: ClaimedRun[] | undefined;
          for (let i = 0; i < 50 && answer === undefined; i++) {
            answer = await store.claim(request).catch(() => undefined);
          }
          assert.deepEqual(answer, []);
        });
      });

      test('a claim reads each version queued by a seek, its runs in claim order, and waiting runs and expired leases only as far as those due, through their indexes', async () => {
        await withSchema(async (store, schema) => {
          await store.enqueue([newRun()], T0);
          const sql = statements(`"${schema}"`, 'x');
          const client = await admin.connect();
          try {
            // With and without the versions a worker runs.
            for (const [statement, args] of [
              [sql.claim, "'w', '{pg}'::text[], 1, 10, 1000, NULL"],
              [sql.claim, `'w', '{pg}'::text[], 1, 10, 1000, '{"pg":["1"]}'::jsonb`],
              [sql.claimWithinLimits, "'w', '{pg}'::text[], 1, 10, 1000, '{}'::jsonb, NULL, 40, NULL"],
              [
                sql.claimWithinLimits,
                `'w', '{pg}'::text[], 1, 10, 1000, '{}'::jsonb, NULL, 40, '{"pg":["1"]}'::jsonb`,
              ],
            ] as const) {
              // As a group transaction plans it (a claim alone is planned afresh each time).
              await client.query(`BEGIN; ${INDEX_PLANS}${CLAIM_PLANS}`);
              await client.query(`PREPARE p AS ${statement.text}`);
              const { rows } = await client.query(`EXPLAIN (COSTS OFF) EXECUTE p(${args})`);
              await client.query('ROLLBACK; DEALLOCATE p');
              const plan = rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
              // The versions queued, a seek each (never an index-only scan: CLAIM_PLANS); then
              // each version's runs, in claim order.
              assert.match(
                plan,
                /Index Scan using runs_ready_by on runs r_\d+\s+Index Cond: \(workflow = \$\d+\)/,
                plan,
              );
              assert.doesNotMatch(plan, /Index Only Scan/, plan);
              assert.match(
                plan,
                /Index Scan using runs_ready_by on runs r_\d+\s+Index Cond: \(\(workflow = q\.workflow\) AND \(version = v\.version\)\)/,
                plan,
              );
              assert.doesNotMatch(plan, /Seq Scan on runs/, plan);
              // A disabled sequential scan (the claim sessions disable them) would cost so much
              // that PostgreSQL JIT-compiles the claim: the live workers are read by their index.
              assert.doesNotMatch(plan, /Seq Scan on workers/, plan);
              // Bitmap or plain, each index below is read by its key: only the runs due, only the leases expired.
              assert.match(
                plan,
                /Index Scan (using|on) runs_due( on runs r_\d+)?\s+Index Cond: \(available_at <= \$3\)/,
                plan,
              );
              assert.match(
                plan,
                /Index Scan (using|on) runs_leased( on runs r_\d+)?\s+Index Cond: \(lease_expires_at <= \$3\)/,
                plan,
              );
            }
          } finally {
            await client.query('ROLLBACK').catch(() => {});
            client.release();
          }
        });
      });

      test('a claim beside an enqueue runs on its own, as an idle one does', async () => {
        await withSchema(async (store) => {
          const [a, b, c] = [newRun(), newRun(), newRun()];
          await store.enqueue([a, b], T0);
          const request = { workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] };
          const idle = store.stats.transactions;
          const [first] = await store.claim(request);
          assert.equal(
            store.stats.transactions,
            idle,
            'an idle claim is its own statement, outside any group',
          );
          const busy = store.stats;
          const [, claimed] = await Promise.all([
            store.enqueue([{ ...c, priority: 0 }], T0 + 1),
            store.claim({ ...request, now: T0 + 1 }),
          ]);
          assert.equal(claimed.length, 1);
          assert.equal(claimed[0]?.id, first?.id === a.id ? b.id : a.id, 'by priority, not the new run');
          assert.equal(claimed[0]?.leaseOwner, 'w');
          assert.equal(store.stats.transactions - busy.transactions, 1, 'the enqueue’s statement');
          assert.equal(store.stats.batches - busy.batches, 1, 'the claim was no batch of it');
          assert.equal((await store.getRun(claimed[0]!.id))?.status, 'running');
          assert.equal((await store.getRun(first!.id))?.status, 'running');
        });
      });

      test('beside commits that go through the commit function, a claim runs on its own', async () => {
        await withSchema(async (store) => {
          const [a, b] = [newRun(), newRun()];
          await store.enqueue([a, b], T0);
          const request = { workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] };
          const [first] = await store.claim(request);
          const busy = store.stats;
          const [committed, claimed] = await Promise.all([
            store.commit(
              [{ kind: 'run', runId: first!.id, workerId: 'w', update: { progress: 50 } }],
              T0 + 1,
            ),
            store.claim({ ...request, now: T0 + 1 }),
          ]);
          assert.deepEqual(committed.lostLease, []);
          assert.equal(claimed.length, 1);
          assert.notEqual(claimed[0]?.id, first?.id);
          assert.equal(store.stats.transactions - busy.transactions, 1, 'the commit’s call');
          assert.equal(store.stats.commitCalls - busy.commitCalls, 1, 'through the commit function');
          assert.equal(store.stats.batches - busy.batches, 1, 'the claim was no batch of it');
          assert.equal((await store.getRun(claimed[0]!.id))?.status, 'running');
          assert.equal((await store.getRun(first!.id))?.progress, 50);
        });
      });

      test('in a group of commits, a run whose lease was taken over is refused alone and nothing of it is written', async () => {
        await withSchema(async (store, schema) => {
          const runs = [newRun(), newRun(), newRun()];
          await store.enqueue(runs, T0);
          await store.claim({ workerId: 'w', limit: 3, leaseMs: 60_000, now: T0, workflows: ['pg'] });
          const step = (name: string) => ({
            name,
            status: 'completed' as const,
            output: name,
            error: undefined,
            attempts: 1,
            startedAt: T0,
            finishedAt: T0,
          });
          const event = (type: string) => ({ type, step: undefined, data: null, progress: 0, at: T0 });
          const results = await Promise.all(
            runs.map((r) =>
              store.commit(
                [
                  { kind: 'step', runId: r.id, workerId: 'w', step: step('a') },
                  { kind: 'event', runId: r.id, event: event('step:completed') },
                ],
                T0 + 1,
              ),
            ),
          );
          assert.ok(results.every((r) => r.lostLease.length === 0 && r.duplicateSteps.length === 0));

          // Another worker took the last run over: its batch and the first run's share a group.
          await admin.query(`UPDATE "${schema}".runs SET lease_owner = 'other' WHERE id = $1`, [runs[2]!.id]);
          const [kept, lost] = await Promise.all([
            store.commit(
              [
                { kind: 'step', runId: runs[0]!.id, workerId: 'w', step: step('b') },
                { kind: 'event', runId: runs[0]!.id, event: event('late') },
              ],
              T0 + 2,
            ),
            store.commit(
              [
                { kind: 'step', runId: runs[2]!.id, workerId: 'w', step: step('b') },
                { kind: 'event', runId: runs[2]!.id, event: event('late') },
              ],
              T0 + 2,
            ),
          ]);
          assert.deepEqual(kept, { lostLease: [], duplicateSteps: [] });
          assert.deepEqual(lost, { lostLease: [runs[2]!.id], duplicateSteps: [] });
          assert.deepEqual(
            (await store.steps(runs[0]!.id)).map((s) => s.name),
            ['a', 'b'],
          );
          assert.deepEqual(
            (await store.steps(runs[2]!.id)).map((s) => s.name),
            ['a'],
            'nothing of the lost run was written',
          );
          assert.deepEqual(
            (await store.events(runs[2]!.id)).map((e) => e.type),
            ['run:queued', 'step:completed'],
          );
          assert.equal((await store.events(runs[0]!.id)).filter((e) => e.type === 'late').length, 1);
        });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('commits that wait for a run another transaction holds', () => {
      /** Waits (bounded) until some session waits for a lock; what that session is running. */
      async function untilSomeoneWaits(): Promise<string> {
        const deadline = performance.now() + 3_000;
        for (;;) {
          const { rows } = await admin.query(
            `SELECT a.query FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
             WHERE NOT l.granted LIMIT 1`,
          );
          if (rows.length > 0) return rows[0].query as string;
          if (performance.now() > deadline) assert.fail('no session waited for a lock');
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }

      /** The commit function is what waits: these tests are about its statements' snapshots. */
      const THE_FUNCTION = /\.apply_commit_[0-9a-f]+ \(/;

      // A commit's writes must read what was committed while it waited for the run's lock: a
      // single statement would read from the snapshot it took before waiting.
      test('a child enqueued while its parent’s completion waits is released by it', async () => {
        await withSchema(async (store, schema) => {
          const parent = newRun();
          await store.enqueue([parent], T0);
          await store.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] });
          const child = newRun();
          const enqueuer = await admin.connect();
          try {
            // As an enqueue naming the parent does: the parent locked, then the child and its edge.
            await enqueuer.query('BEGIN');
            await enqueuer.query(`SELECT 1 FROM "${schema}".runs WHERE id = $1 FOR SHARE`, [parent.id]);
            const completing = store.commit(
              [{ kind: 'run', runId: parent.id, workerId: 'w', update: { status: 'completed', output: 1 } }],
              T0 + 1,
            );
            const calls = store.stats.commitCalls;
            assert.match(await untilSomeoneWaits(), THE_FUNCTION);
            await enqueuer.query(
              `INSERT INTO "${schema}".runs (id, workflow, version, status, priority, input, pending_parents,
                available_at, created_at, updated_at) VALUES ($1, 'pg', '1', 'queued', 1, 'null', 1, $2, $2, $2)`,
              [child.id, T0],
            );
            await enqueuer.query(`INSERT INTO "${schema}".run_deps (parent_id, child_id) VALUES ($1, $2)`, [
              parent.id,
              child.id,
            ]);
            await enqueuer.query('COMMIT');
            assert.deepEqual((await completing).lostLease, []);
            assert.equal(store.stats.commitCalls - calls, 1, 'committed by the function, not the long way');
          } finally {
            enqueuer.release();
          }
          assert.equal((await store.getRun(child.id))?.pendingParents, 0);
        });
      });

      test('a signal stored while the wait for it commits ends the wait', async () => {
        await withSchema(async (store, schema) => {
          const run = newRun();
          await store.enqueue([run], T0);
          await store.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] });
          const sender = await admin.connect();
          try {
            await sender.query('BEGIN');
            await sender.query(`SELECT 1 FROM "${schema}".runs WHERE id = $1 FOR NO KEY UPDATE`, [run.id]);
            const waiting = store.commit(
              [
                {
                  kind: 'run',
                  runId: run.id,
                  workerId: 'w',
                  update: { status: 'waiting', waitingFor: 'x', availableAt: T0 + 1e9, releaseLease: true },
                },
              ],
              T0 + 1,
            );
            const calls = store.stats.commitCalls;
            assert.match(await untilSomeoneWaits(), THE_FUNCTION);
            await sender.query(
              `INSERT INTO "${schema}".signals (run_id, name, payload, created_at) VALUES ($1, 'x', '1', $2)`,
              [run.id, T0],
            );
            await sender.query('COMMIT');
            await waiting;
            assert.equal(store.stats.commitCalls - calls, 1, 'committed by the function, not the long way');
          } finally {
            sender.release();
          }
          assert.equal((await store.getRun(run.id))?.availableAt, T0 + 1, 'due at once');
        });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('migrations', () => {
      test('several stores migrating one new schema at once all succeed, applying each migration once', async () => {
        const schema = freshSchema();
        const stores = peers(schema, 4);
        try {
          await Promise.all(stores.map((s) => s.migrate()));
          const { rows } = await admin.query(
            `SELECT version, name FROM "${schema}".migrations ORDER BY version`,
          );
          const files = readdirSync(new URL('../migrations/postgres/', import.meta.url))
            .filter((f) => f.endsWith('.sql'))
            .sort();
          assert.deepEqual(
            rows,
            files.map((name) => ({ version: Number.parseInt(name, 10), name })),
          );
          const [run] = await stores[0]!.enqueue([newRun()], T0);
          assert.equal((await stores[3]!.getRun(run!.id))?.status, 'queued');
        } finally {
          await Promise.all(stores.map((s) => s.close()));
          await dropSchema(schema);
        }
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('group commit', () => {
      test('callers’ enqueues of one tick share one statement; a run PostgreSQL refuses fails its caller alone', async () => {
        await withSchema(async (store) => {
          const runs = [newRun(), newRun(), newRun()];
          const before = store.stats;
          const results = await Promise.all(runs.map((run) => store.enqueue([run], T0)));
          assert.deepEqual(
            results.map(([r]) => r?.id),
            runs.map((r) => r.id),
          );
          assert.equal(store.stats.transactions - before.transactions, 1, 'one statement for all three');
          assert.equal(store.stats.batches - before.batches, 3);
          // A priority past the integer column: the statement of both is refused, and the long way
          // fails this one alone.
          const bad = newRun({ priority: 2 ** 40 });
          const [good, refused] = await Promise.allSettled([
            store.enqueue([newRun()], T0),
            store.enqueue([bad], T0),
          ]);
          assert.equal(good.status, 'fulfilled');
          assert.equal(refused.status, 'rejected');
          assert.match(String((refused as PromiseRejectedResult).reason), /out of range/);
          assert.equal((await store.listRuns({ limit: 10 })).length, 4);
          assert.equal(await store.getRun(bad.id), undefined);
          // An input with no JSON form fails before any SQL: its caller alone, as well.
          const [fine, unwritable] = await Promise.allSettled([
            store.enqueue([newRun()], T0),
            store.enqueue([newRun({ input: { n: 1n } as never })], T0),
          ]);
          assert.equal(fine.status, 'fulfilled');
          assert.equal(unwritable.status, 'rejected');
          assert.equal((await store.listRuns({ limit: 10 })).length, 5);
        });
      });

      test('a batch that cannot be written fails alone, beside one that goes through the commit function', async () => {
        await withSchema(async (store) => {
          const [a, b] = [newRun(), newRun()];
          await store.enqueue([a, b], T0);
          const claimed = await store.claim({
            workerId: 'w',
            limit: 2,
            leaseMs: 60_000,
            now: T0,
            workflows: ['pg'],
          });
          assert.equal(claimed.length, 2);
          const [good, bad] = await Promise.allSettled([
            store.commit([{ kind: 'run', runId: a.id, workerId: 'w', update: { progress: 42 } }], T0 + 1),
            store.commit(
              [
                {
                  kind: 'event',
                  runId: b.id,
                  // No JSON form: fails when the batch is serialised, before any SQL.
                  event: { type: 'x', step: undefined, data: { n: 1n } as never, progress: 0, at: T0 },
                },
              ],
              T0 + 1,
            ),
          ]);
          assert.equal(good.status, 'fulfilled');
          assert.equal(bad.status, 'rejected');
          assert.equal((await store.getRun(a.id))?.progress, 42);
          assert.deepEqual(
            (await store.events(b.id, 0, 10)).map((e) => e.type),
            ['run:queued'],
            'nothing of the bad batch',
          );
        });
      });

      test('a role that does not own the commit function migrates, and commits the long way where it may not call it', async () => {
        const role = `bw_role_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
        const url = new URL(PG_URL);
        url.username = role;
        await admin.query(`CREATE ROLE ${role} LOGIN`);
        await withSchema(async (owner, schema) => {
          const q = `"${schema}"`;
          const { rows } = await admin.query('SELECT current_database() AS db');
          // CREATE SCHEMA IF NOT EXISTS asks for it even when the schema exists.
          await admin.query(`GRANT CREATE ON DATABASE "${rows[0].db}" TO ${role}`);
          await admin.query(`GRANT USAGE, CREATE ON SCHEMA ${q} TO ${role}`);
          await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA ${q} TO ${role}`);
          await admin.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA ${q} TO ${role}`);
          const other = new PostgresStore({ connectionString: url.href, max: 2, schema });
          try {
            await other.migrate(); // `must be owner of function` if it replaced the function
            const [run] = [newRun()];
            await owner.enqueue([run], T0);
            await other.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] });
            await other.commit(
              [{ kind: 'run', runId: run.id, workerId: 'w', update: { progress: 1 } }],
              T0 + 1,
            );
            assert.equal(other.stats.commitCalls, 1, 'it calls the function it did not create');

            await admin.query(`REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ${q} FROM PUBLIC`);
            for (const progress of [2, 3]) {
              const result = await other.commit(
                [{ kind: 'run', runId: run.id, workerId: 'w', update: { progress } }],
                T0 + progress,
              );
              assert.deepEqual(result.lostLease, []);
            }
            assert.equal((await owner.getRun(run.id))?.progress, 3);
            assert.equal(other.stats.commitCalls, 1, 'the long way since');
            assert.equal(owner.stats.commitCalls, 0);
          } finally {
            await other.close();
          }
        });
        await admin.query(`DROP OWNED BY ${role}`);
        await admin.query(`DROP ROLE ${role}`);
      });

      test('without the commit function (a schema migrated by another version), commits go the long way', async () => {
        await withSchema(async (store, schema) => {
          const [a, b] = [newRun(), newRun()];
          await store.enqueue([a, b], T0);
          const [first] = await store.claim({
            workerId: 'w',
            limit: 1,
            leaseMs: 60_000,
            now: T0,
            workflows: ['pg'],
          });
          const { rows } = await admin.query(
            `SELECT p.oid::regprocedure::text AS f FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
             WHERE n.nspname = $1 AND p.proname LIKE 'apply_commit_%'`,
            [schema],
          );
          assert.equal(rows.length, 1, 'migrate() made it');
          await admin.query(
            `DROP FUNCTION ${rows[0].f.replace(/^apply_commit/, `"${schema}".apply_commit`)}`,
          );
          for (const progress of [10, 20]) {
            const result = await store.commit(
              [
                { kind: 'run', runId: first!.id, workerId: 'w', update: { progress } },
                {
                  kind: 'event',
                  runId: first!.id,
                  event: { type: 'run:progress', step: undefined, data: null, progress, at: T0 + progress },
                },
              ],
              T0 + progress,
            );
            assert.deepEqual(result, { lostLease: [], duplicateSteps: [] });
          }
          assert.equal((await store.getRun(first!.id))?.progress, 20);
          assert.equal(store.stats.commitCalls, 0);
          const events = await store.events(first!.id, 0, 10);
          assert.deepEqual(
            events.filter((e) => e.type === 'run:progress').map((e) => e.progress),
            [10, 20],
            'each written once',
          );
        });
      });

      test('concurrent commits and enqueues share transactions, each caller getting its own result', async () => {
        await withSchema(async (store) => {
          const runs = Array.from({ length: 50 }, () => newRun());
          await Promise.all(runs.map((r) => store.enqueue([r], T0)));
          await store.claim({ workerId: 'w', limit: 50, leaseMs: 60_000, now: T0, workflows: ['pg'] });
          const before = store.stats;
          const results = await Promise.all(
            runs.map((r) =>
              store.commit(
                [
                  {
                    kind: 'step',
                    runId: r.id,
                    workerId: 'w',
                    step: {
                      name: 'a',
                      status: 'completed',
                      output: r.id,
                      error: undefined,
                      attempts: 1,
                      startedAt: T0,
                      finishedAt: T0,
                    },
                  },
                  {
                    kind: 'run',
                    runId: r.id,
                    workerId: 'w',
                    update: { status: 'completed', releaseLease: true },
                  },
                ],
                T0 + 1,
              ),
            ),
          );
          const after = store.stats;
          assert.ok(results.every((r) => r.lostLease.length === 0 && r.duplicateSteps.length === 0));
          assert.equal(after.batches - before.batches, 50);
          assert.ok(
            after.transactions - before.transactions <= 5,
            `50 commits in ${after.transactions - before.transactions} transactions`,
          );
          for (const r of runs) {
            const run = await store.getRun(r.id);
            assert.equal(run?.status, 'completed');
            assert.deepEqual(
              (await store.steps(r.id)).map((s) => s.output),
              [r.id],
            );
          }
        });
      });

      test('a bad batch fails only its caller; the others in its transaction commit', async () => {
        await withSchema(async (store) => {
          const good = Array.from({ length: 5 }, () => newRun());
          const bad = newRun({ dependsOn: [randomUUID()] });
          const outcomes = await Promise.allSettled([
            ...good.slice(0, 2).map((r) => store.enqueue([r], T0)),
            store.enqueue([bad], T0),
            ...good.slice(2).map((r) => store.enqueue([r], T0)),
          ]);
          assert.equal(outcomes[2]?.status, 'rejected');
          assert.equal(
            ((outcomes[2] as PromiseRejectedResult).reason as { code?: string }).code,
            WorkflowErrorCodes.UNKNOWN_RUN,
          );
          assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 5);
          for (const r of good) assert.equal((await store.getRun(r.id))?.status, 'queued');
          assert.equal(await store.getRun(bad.id), undefined);
          assert.equal(store.stats.transactions, 1, 'one transaction for all six callers');
        });
      });

      test('an enqueue naming a parent completed in the same group is released', async () => {
        await withSchema(async (store) => {
          const [parent] = await store.enqueue([newRun()], T0);
          await store.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: T0, workflows: ['pg'] });
          const child = newRun({ dependsOn: [parent!.id] });
          await Promise.all([
            store.commit(
              [{ kind: 'run', runId: parent!.id, workerId: 'w', update: { status: 'completed' } }],
              T0 + 1,
            ),
            store.enqueue([child], T0 + 1),
          ]);
          const run = await store.getRun(child.id);
          assert.equal(run?.pendingParents, 0);
        });
      });

      test('a lone enqueue is one statement: its runs, first events, audit entries and wake-up', async () => {
        const { pool, sent } = recordingPool(3);
        const schema = freshSchema();
        const store = new PostgresStore({ pool, schema, pollMs: 60_000 });
        try {
          await store.migrate();
          const heard: WakeTopic[] = [];
          const stop = store.subscribe((t) => heard.push(t));
          await eventually(() => store.listening, 'the LISTEN connection');
          const audit = {
            at: T0,
            actor: 'ops',
            role: 'operator',
            action: 'run.start',
            outcome: 'ok',
          } as const;
          const keyed = newRun({ idempotencyKey: 'k', audit, correlationId: 'c-1' });
          sent.length = 0;
          const [first] = await store.enqueue([keyed], T0);
          assert.deepEqual(first, { id: keyed.id, created: true, status: 'queued' });
          assert.equal(sent.length, 1, `one statement, sent: ${sent.join(' | ')}`);
          const twins = [newRun(), newRun()];
          sent.length = 0;
          await store.enqueue(twins, T0);
          assert.equal(sent.length, 1, 'several runs without keys, one statement too');

          const run = await store.getRun(keyed.id);
          assert.equal(run?.status, 'queued');
          assert.equal(run?.correlationId, 'c-1');
          assert.deepEqual(
            (await store.events(keyed.id)).map((e) => e.type),
            ['run:queued'],
          );
          assert.deepEqual(
            (await store.listAudit({ limit: 10 })).map((e) => [e.action, e.target]),
            [['run.start', keyed.id]],
          );
          // The NOTIFY came back through LISTEN too: this store polls once a minute.
          await eventually(
            () => twins.every((t) => heard.includes(`run:${t.id}`)),
            'the wake-ups of the lone enqueue',
          );
          stop();

          // A taken key writes nothing on the short way, and the long way finds the key's run.
          const again = newRun({ idempotencyKey: 'k', audit });
          assert.deepEqual(await store.enqueue([again], T0 + 1), [
            { id: keyed.id, created: false, status: 'queued' },
          ]);
          assert.equal(await store.getRun(again.id), undefined);
          assert.equal((await store.listAudit({ limit: 10 })).length, 1);
          // Parents go the long way, which checks them.
          const child = newRun({ dependsOn: [keyed.id] });
          sent.length = 0;
          await store.enqueue([child], T0 + 1);
          assert.ok(sent.length > 1, 'a run with parents takes the transaction');
          assert.equal((await store.getRun(child.id))?.pendingParents, 1);
        } finally {
          await store.close();
          await pool.end();
          await dropSchema(schema);
        }
      });

      test('groupCommit: false gives every call its own transaction', async () => {
        await withSchema(
          async (store) => {
            await Promise.all(Array.from({ length: 10 }, () => store.enqueue([newRun()], T0)));
            assert.deepEqual(store.stats, { transactions: 10, batches: 10, retries: 0, commitCalls: 0 });
          },
          { groupCommit: false },
        );
      });

      test('concurrent enqueues with one idempotency key from several pools create one run', async () => {
        await withSchema(async (store, schema, track) => {
          const stores = [store, ...track(peers(schema, 4))];
          const results = await Promise.all(
            stores.map((s) => s.enqueue([newRun({ idempotencyKey: 'once' })], T0)),
          );
          const ids = new Set(results.map((r) => r[0]?.id));
          assert.equal(ids.size, 1);
          assert.equal(results.filter((r) => r[0]?.created).length, 1);
          assert.equal((await store.listRuns()).length, 1);
        });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('options and lifecycle', () => {
      function invalid(options: unknown, path: string): void {
        assert.throws(
          () => new PostgresStore(options as PostgresStoreOptions),
          (e: unknown) =>
            e instanceof InvalidOptionsError &&
            e.code === ErrorCodes.INVALID_OPTIONS &&
            e.message.includes(path),
        );
      }

      test('rejects unknown options, a pool with a connection string, and a schema too long for its channel', () => {
        invalid({ schemaName: 'x' }, 'postgresStore.schemaName');
        invalid(
          { pool: new pg.Pool({ connectionString: PG_URL }), connectionString: PG_URL },
          'postgresStore.connectionString',
        );
        invalid({ schema: 'x'.repeat(60) }, 'postgresStore.schema');
        invalid({ max: 0 }, 'postgresStore.max');
        invalid({ pollMs: 1.5 }, 'postgresStore.pollMs');
        invalid({ listen: 'yes' }, 'postgresStore.listen');
      });

      test('works on a pool of your own, leaving it open and its type parsers untouched', async () => {
        const pool = new pg.Pool({ connectionString: PG_URL, max: 3 });
        const schema = freshSchema();
        const store = new PostgresStore({ pool, schema });
        try {
          await store.migrate();
          const [run] = await store.enqueue([newRun({ input: { n: 1 } })], T0);
          assert.deepEqual((await store.getRun(run!.id))?.input, { n: 1 });
          await store.close();
          const { rows } = await pool.query('SELECT 1::bigint AS n');
          assert.equal(rows[0].n, '1', "the pool's own parsers still give BIGINT as a string");
        } finally {
          await store.close();
          await pool.end();
          await dropSchema(schema);
        }
      });

      test('a schema name that needs quoting works', async () => {
        await withSchema(
          async (store, schema) => {
            assert.equal(schema, 'Odd "name"; DROP');
            const [run] = await store.enqueue([newRun()], T0);
            assert.equal((await store.getRun(run!.id))?.status, 'queued');
          },
          { schema: 'Odd "name"; DROP' },
        );
      });

      test('a closed store rejects with BULWARK_WORKFLOW_STORE_CLOSED', async () => {
        const opened = openStore();
        await opened.store.migrate();
        await opened.close();
        await assert.rejects(
          opened.store.getRun('x'),
          (e: { code?: string }) => e.code === WorkflowErrorCodes.STORE_CLOSED,
        );
      });
    });
  });
}
