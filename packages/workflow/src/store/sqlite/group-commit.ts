// Group commit: every write made in the same turn of the event loop shares one transaction (one
// fsync), each in its own savepoint so one failing write does not undo the others. With a `sync`,
// the fsync runs off the event loop and the writes settle once it is done; transactions go on
// committing meanwhile, each synced at once (two syncs at most in flight). A transaction that
// changed nothing (an idle worker's poll) is not synced, unless what it read may not be durable.
import type { Database } from 'better-sqlite3';
import type { WakeTopic } from '../types.ts';

/** A write's work, run inside the shared transaction; it adds the wake-ups it causes to `topics`. */
export type Work<T> = (topics: Set<WakeTopic>) => T;

interface Job {
  work: Work<unknown>;
  topics: Set<WakeTopic>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** Set when the job's savepoint was rolled back. */
  failed: boolean;
  error: unknown;
  result: unknown;
}

export interface GroupCommitStats {
  /** Transactions committed. */
  transactions: number;
  /** Writes (enqueue, claim, commit, ...) applied in them. */
  writes: number;
  /** Syncs of the write-ahead log run off the event loop (`syncInThreadPool`): each covers every transaction committed before it began. */
  syncs: number;
}

/**
 * Makes every transaction committed so far durable, off the event loop, and calls back once it
 * is (or with the error that stopped it).
 */
export type Sync = (done: (error: Error | null) => void) => void;

/**
 * Upkeep after a sync (the log's checkpoint): returns false when there is none to do, or true
 * when it has started, and then no transaction begins until `resume`.
 */
export type Maintain = (resume: () => void) => boolean;

/**
 * Syncs in flight at once, each in one of libuv's four pool threads: two leave the others to the
 * rest of the process's file system work.
 */
const MAX_SYNCS = 2;

/** Says a write threw in the fast path: the batch runs again, each write in a savepoint. */
const retryWithSavepoints = Symbol('retryWithSavepoints');

export class GroupCommit {
  readonly stats: GroupCommitStats = { transactions: 0, writes: 0, syncs: 0 };
  #queue: Job[] = [];
  #scheduled = false;
  #idle: (() => void)[] = [];
  /** Committed transactions not yet known durable, oldest first, numbered in commit order. */
  #unsynced: { seq: number; jobs: Job[]; topics: Set<WakeTopic> }[] = [];
  /** The number of the last transaction committed. */
  #committedSeq = 0;
  /** The last transaction that a sync in flight (or done) covers: every one committed before it began. */
  #coveredSeq = 0;
  /** Syncs in flight. */
  #syncing = 0;
  /** Upkeep holds new transactions back until it resumes them. */
  #held = false;
  /** A sync failed: what was committed since may be lost, so nothing more is written. */
  #broken: unknown;
  readonly #sync: Sync | undefined;
  readonly #maintain: Maintain | undefined;
  readonly #db: Database;
  readonly #emit: (topic: WakeTopic) => void;
  readonly #begin: () => void;
  readonly #commit: () => void;
  readonly #rollback: () => void;
  readonly #savepoint: () => void;
  readonly #release: () => void;
  readonly #rollbackTo: () => void;
  /** Rows changed on the connection so far (`total_changes()`): a transaction that moved it wrote. */
  readonly #changes: () => number;
  /** `PRAGMA data_version`: it moves when another connection (process, store) commits to the file. */
  readonly #dataVersion: () => number;
  /**
   * `data_version` when the latest sync that ended had begun: while it has not moved, every commit
   * of other connections is in the log that sync made durable. Unset until a sync has ended, so
   * that the first unchanged transaction is synced, and covers the migrations' commits too.
   */
  #syncedVersion: number | undefined;

  /** Without `sync`, COMMIT itself is durable (or as durable as the connection's `synchronous`). */
  constructor(db: Database, emit: (topic: WakeTopic) => void, sync?: Sync, maintain?: Maintain) {
    this.#db = db;
    this.#emit = emit;
    this.#sync = sync;
    this.#maintain = maintain;
    const run = (sql: string) => {
      const statement = db.prepare(sql);
      return () => {
        statement.run();
      };
    };
    // IMMEDIATE takes the write lock at once (waiting up to busy_timeout for other processes),
    // so no transaction fails half-way on a lock it could not upgrade.
    this.#begin = run('BEGIN IMMEDIATE');
    this.#commit = run('COMMIT');
    this.#rollback = run('ROLLBACK');
    this.#savepoint = run('SAVEPOINT write');
    this.#release = run('RELEASE write');
    this.#rollbackTo = run('ROLLBACK TO write');
    const changes = db.prepare('SELECT total_changes()').pluck();
    this.#changes = () => changes.get() as number;
    const dataVersion = db.prepare('PRAGMA data_version').pluck();
    this.#dataVersion = () => dataVersion.get() as number;
  }

  /** Queues a write; it settles once the transaction holding it has committed (durable) or failed. */
  run<T>(work: Work<T>): Promise<T> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        work,
        topics: new Set(),
        resolve: resolve as (value: unknown) => void,
        reject,
        failed: false,
        error: undefined,
        result: undefined,
      });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // setImmediate rather than a microtask: it gathers every write of this turn, including
        // those made by continuations that a microtask flush would run ahead of. It waits on
        // no timer, so it needs no clock. During upkeep, its end starts the flush.
        if (!this.#held) setImmediate(() => this.#flush());
      }
    });
  }

  /** Resolves when every queued write has settled. */
  drained(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Runs the batch in one transaction; returns the error that failed it all, if any. */
  #attempt(jobs: Job[], savepoints: boolean): unknown {
    let begun = false;
    try {
      this.#begin();
      begun = true;
      for (const job of jobs) {
        job.topics.clear();
        job.failed = false;
        if (savepoints) this.#savepoint();
        try {
          job.result = job.work(job.topics);
          if (savepoints) this.#release();
        } catch (error) {
          if (!savepoints) {
            this.#rollback();
            return retryWithSavepoints;
          }
          this.#rollbackTo();
          this.#release();
          job.failed = true;
          job.error = error;
        }
      }
      this.#commit();
      this.stats.transactions++;
      this.stats.writes += jobs.length;
      return undefined;
    } catch (error) {
      // BEGIN or COMMIT failed (a lock held too long, a full disk): nothing of this batch is stored.
      if (begun && this.#db.inTransaction) this.#rollback();
      return error;
    }
  }

  #flush(): void {
    if (this.#held) return;
    const jobs = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    if (this.#broken !== undefined) {
      for (const job of jobs) job.reject(this.#broken);
      this.#checkIdle();
      return;
    }
    // Savepoints cost two statements a write, which is most of a small write's cost; so the
    // batch first runs without them, and only when a write throws is it rolled back and run
    // again with one savepoint each. Writes touch nothing but the database and their own
    // job, so running one twice is safe.
    const changesBefore = this.#sync === undefined ? 0 : this.#changes();
    let failure = this.#attempt(jobs, false);
    if (failure === retryWithSavepoints) failure = this.#attempt(jobs, true);
    if (failure !== undefined) {
      // Nothing of the batch was stored: there is nothing to wait for.
      for (const job of jobs) job.reject(failure);
      this.#checkIdle();
      return;
    }
    const topics = new Set<WakeTopic>();
    for (const job of jobs) if (!job.failed) for (const topic of job.topics) topics.add(topic);
    // Without `sync`, COMMIT was durable. With it, a transaction that wrote nothing (a claim that
    // found no run) has nothing of its own to sync, but its writes may have read commits not yet
    // durable: they settle with the last of this connection's, or now if none; after another
    // connection's commit since the last sync began, they are synced as a change would be. A
    // change that a savepoint rolled back still counts (errs towards a sync). Beware INSERT OR
    // IGNORE into an AUTOINCREMENT table: it may write sqlite_sequence without counting a change.
    if (
      this.#sync === undefined ||
      (this.#changes() === changesBefore && this.#dataVersion() === this.#syncedVersion)
    ) {
      const last = this.#unsynced.at(-1);
      if (last === undefined) {
        this.#settle(jobs, topics);
        this.#checkIdle();
      } else {
        last.jobs.push(...jobs);
        for (const topic of topics) last.topics.add(topic);
      }
      return;
    }
    // Committed, not yet durable: it settles after a sync that begins after this commit. SQLite
    // appends commits to the log in order and recovery stops at the first one missing, so a sync
    // never makes a later commit durable without the earlier ones.
    this.#unsynced.push({ seq: ++this.#committedSeq, jobs, topics });
    this.#startSync();
  }

  /**
   * Syncs the commits no sync in flight covers, unless MAX_SYNCS are in flight (the end of one
   * starts the next). Syncs overlap, so a commit waits for one sync, not for the end of the one
   * in flight and then its own; whichever ends makes durable every commit made before it began.
   */
  #startSync(): void {
    if (this.#syncing >= MAX_SYNCS || this.#coveredSeq === this.#committedSeq) return;
    const covers = this.#committedSeq;
    const version = this.#dataVersion();
    this.#coveredSeq = covers;
    this.#syncing++;
    this.stats.syncs++;
    this.#sync!((error) => {
      this.#syncing--;
      if (this.#broken !== undefined) {
        this.#checkIdle();
        return;
      }
      if (error !== null) {
        this.#fail(error);
        return;
      }
      // Syncs may end out of order; the version only grows.
      if (this.#syncedVersion === undefined || version > this.#syncedVersion) this.#syncedVersion = version;
      let settled = 0;
      while (settled < this.#unsynced.length && this.#unsynced[settled]!.seq <= covers) settled++;
      for (const batch of this.#unsynced.splice(0, settled)) this.#settle(batch.jobs, batch.topics);
      // Counted in commits made durable: a sync that ended after another covered it brings none.
      if (settled > 0 && this.#maintain?.(() => this.#resume()) === true) this.#held = true;
      this.#startSync();
      this.#checkIdle();
    });
  }

  /**
   * A failed sync leaves its commits, and every later one, not known durable (the kernel may have
   * dropped the log's pages, and recovery stops at the first commit missing): none is
   * acknowledged, no listener is told, and every later write fails with the same error.
   */
  #fail(error: Error): void {
    this.#broken = error;
    const rest = [...this.#unsynced.splice(0), { jobs: this.#queue.splice(0) }];
    this.#scheduled = false;
    for (const batch of rest) for (const job of batch.jobs) job.reject(error);
    this.#checkIdle();
  }

  #resume(): void {
    this.#held = false;
    if (this.#scheduled) setImmediate(() => this.#flush());
    this.#startSync();
    this.#checkIdle();
  }

  /** Wakes listeners and settles the writes of a committed batch, once it is durable. */
  #settle(jobs: Job[], topics: Set<WakeTopic>): void {
    for (const topic of topics) this.#emit(topic);
    for (const job of jobs) {
      if (job.failed) job.reject(job.error);
      else job.resolve(job.result);
    }
  }

  #isIdle(): boolean {
    return !this.#scheduled && this.#syncing === 0 && !this.#held && this.#unsynced.length === 0;
  }

  #checkIdle(): void {
    if (this.#isIdle()) for (const resolve of this.#idle.splice(0)) resolve();
  }
}
