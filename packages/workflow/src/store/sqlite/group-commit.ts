// Group commit: every write made in the same turn of the event loop shares one transaction (one
// fsync), each in its own savepoint so one failing write does not undo the others. With a `sync`,
// the fsync runs off the event loop: the writes settle once it is done, and the writes made
// meanwhile wait for it, then share the next transaction.
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
  /** Syncs of the write-ahead log run off the event loop (`syncInThreadPool`): one per transaction. */
  syncs: number;
}

/**
 * Makes every transaction committed so far durable, off the event loop, and calls back once it
 * is (or with the error that stopped it).
 */
export type Sync = (done: (error: Error | null) => void) => void;

/**
 * Upkeep between two transactions, after a sync (the log's checkpoint): returns false when there
 * is none to do, or true when it has started, and then the next transaction waits for `resume`.
 */
export type Maintain = (resume: () => void) => boolean;

/** Says a write threw in the fast path: the batch runs again, each write in a savepoint. */
const retryWithSavepoints = Symbol('retryWithSavepoints');

export class GroupCommit {
  readonly stats: GroupCommitStats = { transactions: 0, writes: 0, syncs: 0 };
  #queue: Job[] = [];
  #scheduled = false;
  #idle: (() => void)[] = [];
  /** A committed transaction is being synced: the next one waits for it. */
  #syncing = false;
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
  }

  /** Queues a write; it settles once the transaction holding it has committed (durable) or failed. */
  run<T>(work: Work<T>): Promise<T> {
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
        // no timer, so it needs no clock. During a sync, its end starts the flush.
        if (!this.#syncing) setImmediate(() => this.#flush());
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
    const jobs = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    // Savepoints cost two statements a write, which is most of a small write's cost; so the
    // batch first runs without them, and only when a write throws is it rolled back and run
    // again with one savepoint each. Writes touch nothing but the database and their own
    // job, so running one twice is safe.
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
    if (this.#sync === undefined) {
      this.#settle(jobs, topics, null);
      this.#checkIdle();
      return;
    }
    // Nothing more is written until this transaction is durable: so at most one commit is ever
    // unsynced, a write's continuation runs before any later write is applied (as without a
    // sync), and the writes made during the sync share one transaction after it.
    this.#syncing = true;
    this.stats.syncs++;
    this.#sync((error) => {
      this.#settle(jobs, topics, error);
      // The writes are acknowledged; the next transaction may still wait for upkeep.
      if (error === null && this.#maintain?.(() => this.#resume()) === true) return;
      this.#resume();
    });
  }

  #resume(): void {
    this.#syncing = false;
    if (this.#scheduled) setImmediate(() => this.#flush());
    this.#checkIdle();
  }

  /** Wakes listeners and settles the writes of a committed batch, once it is durable. */
  #settle(jobs: Job[], topics: Set<WakeTopic>, syncError: Error | null): void {
    // A failed sync leaves the writes committed but not known durable: none is acknowledged,
    // and no listener is told (a reader may still see them, as after a crash it may not).
    if (syncError === null) for (const topic of topics) this.#emit(topic);
    for (const job of jobs) {
      if (syncError !== null) job.reject(syncError);
      else if (job.failed) job.reject(job.error);
      else job.resolve(job.result);
    }
  }

  #isIdle(): boolean {
    return !this.#scheduled && !this.#syncing;
  }

  #checkIdle(): void {
    if (this.#isIdle()) for (const resolve of this.#idle.splice(0)) resolve();
  }
}
