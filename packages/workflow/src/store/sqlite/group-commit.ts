// Group commit: every write made in the same turn of the event loop shares one transaction (one
// fsync), each in its own savepoint so one failing write does not undo the others.
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
}

/** Says a write threw in the fast path: the batch runs again, each write in a savepoint. */
const retryWithSavepoints = Symbol('retryWithSavepoints');

export class GroupCommit {
  readonly stats: GroupCommitStats = { transactions: 0, writes: 0 };
  #queue: Job[] = [];
  #scheduled = false;
  #idle: (() => void)[] = [];
  readonly #db: Database;
  readonly #emit: (topic: WakeTopic) => void;
  readonly #begin: () => void;
  readonly #commit: () => void;
  readonly #rollback: () => void;
  readonly #savepoint: () => void;
  readonly #release: () => void;
  readonly #rollbackTo: () => void;

  constructor(db: Database, emit: (topic: WakeTopic) => void) {
    this.#db = db;
    this.#emit = emit;
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
        // no timer, so it needs no clock.
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Resolves when every queued write has settled. */
  drained(): Promise<void> {
    if (!this.#scheduled) return Promise.resolve();
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
    if (failure === undefined) {
      const topics = new Set<WakeTopic>();
      for (const job of jobs) if (!job.failed) for (const topic of job.topics) topics.add(topic);
      for (const topic of topics) this.#emit(topic);
    }
    for (const job of jobs) {
      if (failure !== undefined) job.reject(failure);
      else if (job.failed) job.reject(job.error);
      else job.resolve(job.result);
    }
    if (!this.#scheduled) for (const resolve of this.#idle.splice(0)) resolve();
  }
}
