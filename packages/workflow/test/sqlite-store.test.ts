// The SQLite store: the conformance suite on a fresh file per test, then what only SQLite has
// (group commit, migrations across processes, options).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ErrorCodes, InvalidOptionsError } from '@bulwark/core';
import Database from 'better-sqlite3';
import { WorkflowEngine } from '../src/engine/engine.ts';
import { defineWorkflow } from '../src/engine/workflow.ts';
import { WorkflowErrorCodes } from '../src/errors.ts';
import { GroupCommit } from '../src/store/sqlite/group-commit.ts';
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions } from '../src/store/sqlite/index.ts';
import { sqliteSql } from '../src/store/sqlite/sql.ts';
import type { NewRun } from '../src/store/types.ts';
import { storeConformance } from './store-conformance.ts';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-sqlite-'));
let files = 0;

function freshPath(): string {
  return join(dir, `store-${process.pid}-${files++}.db`);
}

process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** How large the log grows over `commits` commits of one run each when nothing checkpoints it. */
async function logBytesWithoutCheckpoints(commits: number): Promise<number> {
  const path = freshPath();
  const store = await openSqliteStore({ path });
  try {
    await store.migrate();
    const db = new Database(path);
    db.pragma('wal_autocheckpoint = 0');
    // The store's own connection checkpoints automatically; holding a read transaction open on
    // a second connection keeps every checkpoint from copying (and so rewinding) the log.
    db.exec('BEGIN');
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    for (let i = 0; i < commits; i++) await store.enqueue([newRun()], T0);
    db.exec('COMMIT');
    db.close();
    return statSync(`${path}-wal`).size;
  } finally {
    await store.close();
  }
}

storeConformance('sqlite', async () => {
  const path = freshPath();
  const store = await openSqliteStore({ path });
  return {
    store,
    async close() {
      await store.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    },
  };
});

// ---------------------------------------------------------------------------------------------
// What only the SQLite store has

const T0 = 1_700_000_000_000;
const repoRoot = join(import.meta.dirname, '..', '..', '..');
const child = join(import.meta.dirname, 'fixtures', 'sqlite-child.ts');
const execFileAsync = promisify(execFile);

function newRun(overrides: Partial<NewRun> = {}): NewRun {
  return { id: randomUUID(), workflow: 'race', version: '1', input: null, priority: 1, ...overrides };
}

/** Opens a store on a fresh file, runs `body`, and always closes it. */
async function withStore(
  body: (store: SqliteStore, path: string) => Promise<void>,
  options: Partial<SqliteStoreOptions> = {},
) {
  const path = freshPath();
  const store = await openSqliteStore({ path, ...options });
  try {
    await body(store, path);
  } finally {
    await store.close();
  }
}

function runChild(args: string[]): Promise<{ stdout: string }> {
  return execFileAsync(
    process.execPath,
    ['--conditions=@bulwark/source', '--import', 'tsx', child, ...args],
    {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
}

describe('sqlite store: group commit', () => {
  test('writes made in the same tick share one transaction, and each caller gets its own result', async () => {
    await withStore(async (store) => {
      const runs = Array.from({ length: 20 }, () => newRun());
      await store.enqueue(runs, T0);
      const claimed = await store.claim({
        workerId: 'w',
        limit: 20,
        leaseMs: 1_000,
        now: T0,
        workflows: ['race'],
      });
      assert.equal(claimed.length, 20);
      const before = store.stats();
      const results = await Promise.all(
        claimed.map((run) =>
          store.commit(
            [{ kind: 'run', runId: run.id, workerId: 'w', update: { status: 'completed', output: run.id } }],
            T0 + 1,
          ),
        ),
      );
      const after = store.stats();
      assert.equal(after.transactions - before.transactions, 1, 'one transaction for 20 commits');
      assert.equal(after.writes - before.writes, 20);
      assert.ok(results.every((r) => r.lostLease.length === 0));
      for (const run of claimed) assert.equal((await store.getRun(run.id))?.output, run.id);
    });
  });

  test('a failing write rolls back alone; the others in its transaction are applied', async () => {
    await withStore(async (store) => {
      const good = newRun();
      const bad = newRun({ dependsOn: [randomUUID()] });
      const [first] = await store.enqueue([newRun()], T0);
      const before = store.stats();
      const calls = await Promise.allSettled([
        store.enqueue([good], T0),
        store.enqueue([bad], T0),
        // An event for a run that does not exist breaks a foreign key: this caller alone fails.
        store.commit(
          [
            {
              kind: 'event',
              runId: randomUUID(),
              event: { type: 'x', step: undefined, data: null, progress: 0, at: T0 },
            },
          ],
          T0,
        ),
        store.commit(
          [
            {
              kind: 'event',
              runId: first?.id ?? '',
              event: { type: 'note', step: undefined, data: 1, progress: 0, at: T0 },
            },
          ],
          T0,
        ),
      ]);
      assert.equal(store.stats().transactions - before.transactions, 1);
      assert.equal(calls[0].status, 'fulfilled');
      assert.equal(calls[1].status, 'rejected');
      assert.equal((calls[1] as PromiseRejectedResult).reason.code, WorkflowErrorCodes.UNKNOWN_RUN);
      assert.equal(calls[2].status, 'rejected');
      assert.equal((calls[2] as PromiseRejectedResult).reason.code, 'SQLITE_CONSTRAINT_FOREIGNKEY');
      assert.equal(calls[3].status, 'fulfilled');
      assert.ok(await store.getRun(good.id));
      assert.equal(await store.getRun(bad.id), undefined);
      assert.equal((await store.events(first?.id ?? '')).at(-1)?.type, 'note');
    });
  });

  test('writes of later ticks get transactions of their own', async () => {
    await withStore(async (store) => {
      const before = store.stats();
      await store.enqueue([newRun()], T0);
      await store.enqueue([newRun()], T0);
      assert.equal(store.stats().transactions - before.transactions, 2);
    });
  });

  test('wake-ups come after the transaction commits, before the caller resumes', async () => {
    await withStore(async (store, path) => {
      const seen: number[] = [];
      const other = new Database(path, { readonly: true });
      try {
        store.subscribe((topic) => {
          if (topic === 'runs')
            seen.push(other.prepare('SELECT count(*) AS n FROM bulwark_runs').pluck().get() as number);
        });
        await store.enqueue([newRun()], T0);
        assert.deepEqual(seen, [1], 'another connection already sees the run when the wake-up fires');
      } finally {
        other.close();
      }
    });
  });

  test('close waits for queued writes, which are durable', async () => {
    const path = freshPath();
    const store = await openSqliteStore({ path });
    const run = newRun();
    const pending = store.enqueue([run], T0);
    await store.close();
    assert.equal((await pending)[0]?.created, true);
    const reopened = await openSqliteStore({ path });
    try {
      assert.equal((await reopened.getRun(run.id))?.status, 'queued');
    } finally {
      await reopened.close();
    }
  });

  test("syncInThreadPool: a file's writes settle, and wake-ups fire, once the log's sync has ended", async () => {
    await withStore(
      async (store) => {
        const before = store.stats();
        const topics: string[] = [];
        store.subscribe((topic) => topics.push(topic));
        await Promise.all([store.enqueue([newRun()], T0), store.enqueue([newRun()], T0)]);
        const after = store.stats();
        assert.equal(after.transactions - before.transactions, 1);
        assert.equal(after.syncs - before.syncs, 1, 'one sync for the transaction, in the thread pool');
        assert.ok(topics.includes('runs'));
      },
      { syncInThreadPool: true },
    );
  });

  test('syncInThreadPool: an idle worker syncs for its announcements, not for each poll that finds nothing', async (t) => {
    const store = await openSqliteStore({
      path: join(dir, `idle-${randomUUID()}.db`),
      syncInThreadPool: true,
    });
    const probe = defineWorkflow({ name: 'idle' }, async (ctx) => ctx.step('one', () => 1));
    // A poll every 20 ms, an announcement every second (leaseMs / 3).
    const engine = new WorkflowEngine({ store, pollMs: 20, leaseMs: 3_000 });
    engine.register(probe).startWorker();
    try {
      await engine.result((await engine.start(probe, null)).id);
      const before = store.stats();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const after = store.stats();
      const transactions = after.transactions - before.transactions;
      const syncs = after.syncs - before.syncs;
      t.diagnostic(`idle for 1.5 s: ${transactions} transactions, ${syncs} syncs`);
      assert.ok(transactions >= 20, `the worker polled: ${transactions} transactions`);
      assert.ok(syncs <= 3, `${syncs} syncs: the announcements' alone (one a second)`);
    } finally {
      await engine.stop();
      await store.close();
    }
  });

  test('syncInThreadPool: the log is checkpointed in a worker thread, not in a commit, and stays bounded', async () => {
    const path = freshPath();
    const store = await openSqliteStore({ path, syncInThreadPool: true });
    try {
      await store.migrate();
      // SQLite's own checkpoint is off: it would run inside a commit, on the event loop.
      const db = new Database(path);
      assert.equal(
        db.pragma('wal_autocheckpoint', { simple: true }),
        1_000,
        'a new connection has the default',
      );
      db.close();
      const walBytes = () => statSync(`${path}-wal`).size;
      let largest = 0;
      for (let i = 0; i < 1_200; i++) {
        await store.enqueue([newRun()], T0);
        if (i % 50 === 0) largest = Math.max(largest, walBytes());
      }
      // Give the last checkpoint the worker was asked for time to end.
      for (let i = 0; i < 100 && store.stats().checkpoints < 5; i++)
        await new Promise((r) => setTimeout(r, 20));
      const { transactions, checkpoints } = store.stats();
      assert.ok(transactions >= 1_200);
      assert.ok(checkpoints >= 5, `${checkpoints} checkpoints for ${transactions} commits`);
      // Each commit appends its pages to the log; without checkpoints 1,200 of them would leave
      // it at several times this size. The log is rewound after each complete checkpoint.
      const unbounded = await logBytesWithoutCheckpoints(1_200);
      assert.ok(largest < unbounded / 2, `log reached ${largest} bytes; without checkpoints ${unbounded}`);
    } finally {
      await store.close();
    }
  });

  test('transactions go on committing during syncs, two syncs overlap, whichever ends settles what it covers; a failed sync rejects its writes and all later ones, and wakes nobody', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (n INTEGER)');
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    const count = db.prepare('SELECT count(*) FROM t').pluck();
    const pending: ((error: Error | null) => void)[] = [];
    const woken: string[] = [];
    const writes = new GroupCommit(
      db,
      (topic) => woken.push(topic),
      (done) => pending.push(done),
    );
    const write = (n: number) =>
      writes.run((topics) => {
        insert.run(n);
        topics.add(`run:${n}`);
        return n;
      });
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const settled: number[] = [];
    const track = (n: number) => {
      const p = write(n);
      p.then(
        () => settled.push(n),
        () => settled.push(n),
      );
      return p;
    };
    try {
      const first = track(1);
      await turn();
      assert.equal(pending.length, 1, 'the first commit is being synced');
      const second = track(2);
      const third = track(3);
      await turn();
      assert.equal(pending.length, 2, 'the second transaction has its own sync at once, beside the first');
      const fourth = track(4);
      await turn();
      assert.equal(count.get(), 4, 'commits go on while syncs are in flight');
      assert.equal(writes.stats.transactions, 3);
      assert.equal(
        pending.length,
        2,
        'at most two syncs at once: the third transaction waits for one to end',
      );
      assert.deepEqual(woken, [], 'committed, not yet durable: nobody is woken');
      assert.deepEqual(settled, []);
      const [syncA, syncB] = pending.splice(0, 2);
      // The later sync ends first: it covers every transaction committed before it began, the
      // first one's included, and they settle in commit order.
      syncB!(null);
      assert.equal(await first, 1);
      assert.equal(await third, 3);
      assert.deepEqual(settled, [1, 2, 3]);
      assert.deepEqual(woken, ['run:1', 'run:2', 'run:3']);
      assert.equal(pending.length, 1, 'a sync began at once for the transaction no sync covered');
      syncA!(null);
      await turn();
      assert.deepEqual(settled, [1, 2, 3], 'the first sync covers nothing that is not settled already');
      assert.equal(writes.stats.syncs, 3);
      pending.shift()?.(Object.assign(new Error('EIO'), { code: 'EIO' }));
      await assert.rejects(fourth, { code: 'EIO' });
      assert.deepEqual(woken, ['run:1', 'run:2', 'run:3'], 'a failed sync wakes nobody');
      await assert.rejects(write(5), { code: 'EIO' }, 'after a failed sync nothing more is written');
      await turn();
      assert.equal(count.get(), 4);
      await writes.drained();
      assert.equal(writes.stats.syncs, 3);
      await second;
    } finally {
      db.close();
    }
  });

  test('a transaction that changed nothing is not synced once a sync has covered what it may have read', async () => {
    // A file in WAL mode, two connections as two processes would have: syncs are the test's to end.
    const path = join(dir, `unchanged-${randomUUID()}.db`);
    const open = () => {
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      return db;
    };
    const db = open();
    db.exec('CREATE TABLE t (n INTEGER)');
    const other = open();
    const pending: ((error: Error | null) => void)[] = [];
    const otherPending: ((error: Error | null) => void)[] = [];
    const writes = new GroupCommit(
      db,
      () => {},
      (done) => pending.push(done),
    );
    const otherWrites = new GroupCommit(
      other,
      () => {},
      (done) => otherPending.push(done),
    );
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    const count = db.prepare('SELECT count(*) FROM t').pluck();
    const otherInsert = other.prepare('INSERT INTO t (n) VALUES (?)');
    const turn = async () => {
      for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    // A read in a write transaction, as a claim that finds no run is; `settled` tells when it ends.
    const look = () => {
      const state: { value?: number; error?: unknown } = {};
      const done = writes
        .run(() => count.get() as number)
        .then(
          (value) => {
            state.value = value;
          },
          (error: unknown) => {
            state.error = error;
          },
        );
      return { state, done };
    };
    try {
      // The first one is synced: the table's creation, outside any write, is covered by it.
      const first = look();
      await turn();
      assert.equal(pending.length, 1, 'the first transaction is synced, changed or not');
      pending.shift()!(null);
      await first.done;
      // From then on, one that changed nothing settles in its own turn, and no sync starts.
      const idle = look();
      await turn();
      assert.equal(idle.state.value, 0);
      assert.equal(pending.length, 0);
      assert.equal(writes.stats.syncs, 1);

      // It read this connection's commits not yet durable: it settles with the last one's sync,
      // and starts none of its own. Three commits: two synced at once, the third waiting.
      const written: Promise<unknown>[] = [];
      for (const n of [1, 2, 3]) {
        written.push(writes.run(() => insert.run(n)));
        await turn();
      }
      assert.equal(pending.length, 2, 'two syncs at most');
      const read = look();
      await turn();
      assert.equal(pending.length, 2, 'no sync of its own');
      pending.shift()!(null);
      await turn();
      assert.equal(pending.length, 2, 'the third commit has its sync now');
      pending.shift()!(null);
      await turn();
      assert.equal(read.state.value, undefined, 'not settled before the last commit it read is durable');
      pending.shift()!(null);
      await Promise.all([...written, read.done]);
      assert.equal(read.state.value, 3);

      // A failed sync rejects the unchanged transaction that waited for it, as it does the rest.
      const doomed = writes.run(() => insert.run(5));
      doomed.catch(() => {});
      await turn();
      const blind = look();
      await turn();
      pending.shift()!(Object.assign(new Error('EIO'), { code: 'EIO' }));
      await blind.done;
      assert.equal((blind.state.error as { code?: string } | undefined)?.code, 'EIO');
    } finally {
      db.close();
    }

    // Another connection's commit that it may have read: synced, as a change would be.
    const db2 = open();
    const mine = new GroupCommit(
      db2,
      () => {},
      (done) => pending.push(done),
    );
    const count2 = db2.prepare('SELECT count(*) FROM t').pluck();
    try {
      pending.length = 0;
      const warm = mine.run(() => count2.get());
      await turn();
      pending.shift()!(null);
      await warm;
      const theirs = otherWrites.run(() => otherInsert.run(6));
      await turn();
      assert.equal(otherPending.length, 1, 'the other connection committed; its sync has not ended');
      let seen: unknown;
      const read = mine
        .run(() => count2.get())
        .then((n) => {
          seen = n;
        });
      await turn();
      assert.equal(pending.length, 1, 'a sync of its own covers what the other connection committed');
      assert.equal(seen, undefined);
      pending.shift()!(null);
      await read;
      assert.equal(seen, 5, 'it read the other connection’s row');
      otherPending.shift()!(null);
      await theirs;
      // Nobody else has committed since: the next one settles without a sync.
      const again = mine.run(() => count2.get());
      await turn();
      assert.equal(pending.length, 0);
      await again;
    } finally {
      db2.close();
      other.close();
    }
  });

  test('a sync that fails while another is in flight: every write not yet settled is rejected, and the store drains', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (n INTEGER)');
    const pending: ((error: Error | null) => void)[] = [];
    const writes = new GroupCommit(
      db,
      () => {},
      (done) => pending.push(done),
    );
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    const write = (n: number) => writes.run(() => insert.run(n));
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    try {
      const first = write(1);
      await turn();
      const second = write(2);
      await turn();
      assert.equal(pending.length, 2);
      const [syncA, syncB] = pending.splice(0, 2);
      syncA!(Object.assign(new Error('EIO'), { code: 'EIO' }));
      await assert.rejects(first, { code: 'EIO' });
      await assert.rejects(second, { code: 'EIO' }, 'the later commit is not known durable either');
      let drained = false;
      void writes.drained().then(() => {
        drained = true;
      });
      await turn();
      assert.equal(drained, false, 'a sync is still in flight');
      syncB!(null);
      await turn();
      assert.equal(drained, true, 'the late sync ends, and the store drains without settling anything');
    } finally {
      db.close();
    }
  });

  test('upkeep after a sync (the checkpoint): the synced writes settle at once, the next transaction waits for it', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (n INTEGER)');
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    const count = db.prepare('SELECT count(*) FROM t').pluck();
    let resume: (() => void) | undefined;
    let upkeep = 0;
    const writes = new GroupCommit(
      db,
      () => {},
      (done) => setImmediate(() => done(null)),
      (next) => {
        upkeep++;
        if (upkeep > 1) return false;
        resume = next;
        return true;
      },
    );
    const write = (n: number) => writes.run(() => insert.run(n));
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    try {
      await write(1);
      assert.ok(resume !== undefined, 'upkeep started after the first sync, and the write has settled');
      const second = write(2);
      const third = write(3);
      for (let i = 0; i < 5; i++) await turn();
      assert.equal(count.get(), 1, 'no transaction while the upkeep runs');
      resume();
      await Promise.all([second, third]);
      assert.equal(count.get(), 3);
      assert.equal(writes.stats.transactions, 2, 'the writes made meanwhile share one transaction');
      await writes.drained();
    } finally {
      db.close();
    }
  });

  test("without syncInThreadPool, with durability 'normal' or in ':memory:', COMMIT is the only sync", async () => {
    for (const options of [
      {},
      { durability: 'normal' as const, syncInThreadPool: true },
      { path: ':memory:', syncInThreadPool: true },
    ]) {
      await withStore(async (store) => {
        await store.enqueue([newRun()], T0);
        assert.equal(store.stats().syncs, 0);
      }, options);
    }
  });

  test('a closed store rejects every call with BULWARK_WORKFLOW_STORE_CLOSED', async () => {
    const store = await openSqliteStore({ path: ':memory:' });
    await store.close();
    for (const call of [
      store.getRun('x'),
      store.enqueue([newRun()], T0),
      store.commit([], T0),
      store.migrate(),
    ]) {
      await assert.rejects(call, (e: { code?: string }) => e.code === WorkflowErrorCodes.STORE_CLOSED);
    }
    await store.close();
  });
});

describe('sqlite store: enqueue', () => {
  test('the record an enqueue gives back is the run as stored, for every kind of new run', async () => {
    const store = await openSqliteStore({ path: freshPath() });
    try {
      const [done, failed, pending] = [newRun(), newRun(), newRun()];
      await store.enqueue([done, failed, pending], T0);
      const claimed = await store.claim({
        workerId: 'w',
        limit: 3,
        leaseMs: 1_000,
        now: T0,
        workflows: ['race'],
      });
      assert.equal(claimed.length, 3);
      await store.commit(
        [{ kind: 'run', runId: done.id, workerId: 'w', update: { status: 'completed' } }],
        T0,
      );
      await store.commit(
        [{ kind: 'run', runId: failed.id, workerId: 'w', update: { status: 'failed' } }],
        T0,
      );
      const runs: NewRun[] = [
        newRun({ input: { nested: [1, 'two', { three: null }] } }),
        newRun({
          idempotencyKey: 'key-1',
          concurrencyKey: 'tenant-a',
          correlationId: 'corr-1',
          traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
          deadlineAt: T0 + 60_000,
          availableAt: T0 + 5_000,
          priority: 4,
          parentRunId: done.id,
        }),
        newRun({ dependsOn: [done.id] }),
        newRun({ dependsOn: [done.id, pending.id] }),
        newRun({ dependsOn: [pending.id, failed.id] }),
      ];
      for (const run of runs) {
        const [result] = await store.enqueue([run], T0 + 7);
        assert.ok(result?.run, 'SQLite gives the record back');
        assert.deepEqual(result.run, await store.getRun(run.id), `run ${JSON.stringify(run)}`);
      }
      assert.equal((await store.getRun(runs[3]!.id))?.pendingParents, 1);
      assert.equal((await store.getRun(runs[4]!.id))?.status, 'cancelled');
    } finally {
      await store.close();
    }
  });
});

describe('sqlite store: claims', () => {
  test('a claim reads each version queued by a seek, its runs in claim order, and only the waiting runs now due, through their indexes', async () => {
    const path = freshPath();
    const store = await openSqliteStore({ path });
    await store.close();
    const db = new Database(path);
    try {
      const texts = sqliteSql('bulwark_');
      // With and without the versions a worker runs.
      for (const versions of [null, '[["w","1"]]']) {
        const plan = (text: string) =>
          (
            db
              .prepare(`EXPLAIN QUERY PLAN ${text}`)
              .all({ now: 1, workflows: '[]', limit: 1, versions, workflow: 'w', version: '1' }) as {
              detail: string;
            }[]
          )
            .map((row) => row.detail)
            .join('\n');
        // One version's runs, already in claim order: no sort, and no other version's read.
        assert.equal(
          plan(texts.claimCandidates),
          'SEARCH bulwark_runs USING INDEX bulwark_runs_ready_by (workflow=? AND version=?)',
        );
        // The versions queued: a seek for the first, then one past each.
        const versionsPlan = plan(texts.queuedVersions);
        assert.match(versionsPlan, /SEARCH bulwark_runs USING INDEX bulwark_runs_ready_by \(workflow=\?\)/);
        assert.match(
          versionsPlan,
          /SEARCH bulwark_runs USING INDEX bulwark_runs_ready_by \(workflow=\? AND version>\?\)/,
        );
        assert.doesNotMatch(versionsPlan, /SCAN bulwark_runs/);
        assert.match(
          plan(texts.dueCandidates),
          /SEARCH bulwark_runs USING INDEX bulwark_runs_due \(available_at<\?\)/,
        );
      }
    } finally {
      db.close();
    }
  });
});

describe('sqlite store: files, processes and options', () => {
  test('two processes migrating one new file at once apply each migration once', async () => {
    const path = freshPath();
    const startAt = Date.now() + 1_500;
    await Promise.all([
      runChild(['migrate', path, String(startAt)]),
      runChild(['migrate', path, String(startAt)]),
    ]);
    const db = new Database(path, { readonly: true });
    try {
      const versions = db.prepare('SELECT version FROM bulwark_migrations ORDER BY version').pluck().all();
      const files = readdirSync(join(import.meta.dirname, '..', 'migrations', 'sqlite')).filter((f) =>
        f.endsWith('.sql'),
      );
      assert.deepEqual(
        versions,
        files.map((f) => Number.parseInt(f, 10)).sort((a, b) => a - b),
      );
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
  });

  test('two processes claiming from one file never get the same run', async () => {
    const path = freshPath();
    const store = await openSqliteStore({ path });
    const runs = Array.from({ length: 400 }, () => newRun());
    await store.enqueue(runs, T0);
    await store.close();
    const startAt = Date.now() + 1_500;
    const outputs = await Promise.all(
      ['a', 'b'].map((worker) => runChild(['claim', path, String(Math.max(startAt, T0)), worker])),
    );
    const [a, b] = outputs.map((o) => JSON.parse(o.stdout) as string[]);
    assert.ok(a && b);
    const all = [...a, ...b];
    assert.equal(new Set(all).size, all.length, 'no run claimed by both');
    assert.equal(all.length, runs.length, 'every run claimed');
    assert.ok(a.length > 0 && b.length > 0, `both processes claimed (${a.length} / ${b.length})`);
  });

  test('stores with different table prefixes share a file without seeing each other', async () => {
    const path = freshPath();
    const one = await openSqliteStore({ path, tablePrefix: 'one_' });
    const two = await openSqliteStore({ path, tablePrefix: 'two_' });
    try {
      const run = newRun();
      await one.enqueue([run], T0);
      assert.ok(await one.getRun(run.id));
      assert.equal(await two.getRun(run.id), undefined);
      assert.deepEqual(await two.listRuns(), []);
    } finally {
      await one.close();
      await two.close();
    }
  });

  test("':memory:' and durability 'normal' give a working store", async () => {
    const store = await openSqliteStore({ path: ':memory:', durability: 'normal' });
    try {
      const [result] = await store.enqueue([newRun()], T0);
      assert.equal(result?.created, true);
      assert.equal(store.dialect, 'sqlite');
    } finally {
      await store.close();
    }
  });

  test('rejects invalid options, naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ path: '' }, 'sqliteStore.path'],
      [{ path: ':memory:', durability: 'fast' }, 'sqliteStore.durability'],
      [{ path: ':memory:', tablePrefix: 'bad"prefix' }, 'sqliteStore.tablePrefix'],
      [{ path: ':memory:', tablePrefix: '1x' }, 'sqliteStore.tablePrefix'],
      [{ path: ':memory:', busyTimeoutMs: -1 }, 'sqliteStore.busyTimeoutMs'],
      [{ path: ':memory:', durabilty: 'full' }, 'sqliteStore.durabilty'],
      [{ path: ':memory:', syncInThreadPool: 'yes' }, 'sqliteStore.syncInThreadPool'],
    ];
    for (const [options, path] of cases) {
      await assert.rejects(openSqliteStore(options as SqliteStoreOptions), (e: unknown) => {
        assert.ok(e instanceof InvalidOptionsError, String(e));
        assert.equal(e.code, ErrorCodes.INVALID_OPTIONS);
        assert.equal(e.path, path);
        return true;
      });
    }
  });
});
