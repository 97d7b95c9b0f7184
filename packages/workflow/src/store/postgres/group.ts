// Group commit: the enqueue(), commit() and, under load, claim() calls of one tick (and those that
// arrive while a transaction is in flight) share one transaction, so many runs' progress costs one
// fsync.
import type { CommitResult, EnqueueResult, WakeTopic } from '../types.ts';
import { applyCommits, type CommitBatch, type CommitCall, planCommitCall } from './commit.ts';
import { applyEnqueues, type EnqueueBatch, planEnqueueAlone } from './enqueue.ts';
import type { Row } from './rows.ts';
import { isRetryable, type Session } from './session.ts';
import { CLAIM_PLANS, type Statements } from './sql.ts';

type Job =
  | {
      kind: 'enqueue';
      batch: EnqueueBatch;
      resolve: (r: EnqueueResult[]) => void;
      reject: (e: unknown) => void;
    }
  | { kind: 'commit'; batch: CommitBatch; resolve: (r: CommitResult) => void; reject: (e: unknown) => void }
  | {
      kind: 'claim';
      values: unknown[];
      /** The claim as a statement of its own, outside any transaction. */
      alone: () => Promise<Row[]>;
      resolve: (r: Row[]) => void;
      reject: (e: unknown) => void;
    };

export interface GroupHost {
  /** A session on a pooled connection, released after `work` settles. */
  withSession<T>(work: (session: Session) => Promise<T>): Promise<T>;
  /** What starts a transaction (BEGIN, and the feed lock its events need). */
  begin: string;
  /** The NOTIFY channel, and quoted. */
  channel: string;
  quotedChannel: string;
  /** The advisory lock's key that writers of events hold shared. */
  feedLock: string;
  /** The store's statements (the commit function's call among them). */
  sql: Statements;
  /** Tells this process's subscribers, once the transaction has committed. */
  emit(topics: Iterable<WakeTopic>): void;
}

/**
 * Refusals of the commit function that will not go away: the schema lacks this version's
 * function (migrated by another version), the role may not execute it, or the name is ambiguous.
 */
const LASTING: ReadonlySet<string> = new Set(['42883', '42501', '42725']);

/** An error PostgreSQL answered with (pg's DatabaseError), as opposed to one of the connection. */
function fromPostgres(error: unknown): boolean {
  return typeof (error as { severity?: unknown } | null)?.severity === 'string';
}

/** Deadlocks between two processes' transactions are rare and harmless to retry. */
const MAX_TRIES = 5;

export class GroupCommitter {
  readonly #host: GroupHost;
  readonly #grouped: boolean;
  #queue: Job[] = [];
  #scheduled = false;
  #inFlight = 0;
  /** Enough transactions in flight to keep the pool busy, few enough that calls pile up behind them. */
  readonly #maxInFlight: number;
  /**
   * Whether commits may go through the commit function; off for good after a refusal that lasts
   * (`LASTING`: a schema without this version's function, a role that may not execute it).
   */
  #commitFunction = true;
  /** Counters for tests and the benchmark. */
  readonly stats = { transactions: 0, batches: 0, retries: 0, commitCalls: 0 };

  constructor(host: GroupHost, grouped: boolean, maxInFlight: number) {
    this.#host = host;
    this.#grouped = grouped;
    this.#maxInFlight = grouped ? Math.max(1, maxInFlight) : Number.POSITIVE_INFINITY;
  }

  enqueue(batch: EnqueueBatch): Promise<EnqueueResult[]> {
    return new Promise((resolve, reject) => this.#add({ kind: 'enqueue', batch, resolve, reject }));
  }

  commit(batch: CommitBatch): Promise<CommitResult> {
    return new Promise((resolve, reject) => this.#add({ kind: 'commit', batch, resolve, reject }));
  }

  /**
   * A claim (the statement without concurrency limits, with these values). It joins the group
   * transaction of other callers' writes, and its leases commit with them; a group of claims
   * alone runs each as a statement of its own (`alone`), without BEGIN and COMMIT, so an idle
   * worker's pickup costs one round trip.
   */
  claim(values: unknown[], alone: () => Promise<Row[]>): Promise<Row[]> {
    // Nothing in flight or queued: at once, without waiting for the turn's end.
    if (!this.#grouped || (this.#inFlight === 0 && this.#queue.length === 0)) return alone();
    return new Promise((resolve, reject) => this.#add({ kind: 'claim', values, alone, resolve, reject }));
  }

  #add(job: Job): void {
    if (!this.#grouped) {
      void this.#flush([job]);
      return;
    }
    this.#queue.push(job);
    if (!this.#scheduled && this.#inFlight < this.#maxInFlight) {
      this.#scheduled = true;
      // After the current tick's other callers have queued theirs.
      setImmediate(() => this.#next());
    }
  }

  #next(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0 || this.#inFlight >= this.#maxInFlight) return;
    const jobs = this.#queue;
    this.#queue = [];
    void this.#flush(jobs).finally(() => {
      if (this.#queue.length > 0 && !this.#scheduled) this.#next();
    });
  }

  async #flush(group: Job[]): Promise<void> {
    let jobs = group;
    this.#inFlight++;
    try {
      if (jobs.every((job) => job.kind === 'claim')) {
        await Promise.all(jobs.map((job) => job.alone().then(job.resolve, job.reject)));
        return;
      }
      // The enqueues in one statement and the rest through the commit function, side by side on
      // two connections: each its own transaction, where the long way takes five round trips.
      const enqueues = jobs.filter((job) => job.kind === 'enqueue');
      const others = jobs.filter((job) => job.kind !== 'enqueue');
      const [enqueuesLeft, othersLeft] = await Promise.all([
        enqueues.length === 0 ? [] : this.#enqueueAlone(enqueues),
        this.#commitFunction && others.length > 0 ? this.#commitAlone(others) : others,
      ]);
      jobs = [...enqueuesLeft, ...othersLeft];
      if (jobs.length === 0) return;
      const outcomes = await this.#host.withSession((session) => this.#transact(session, jobs));
      this.stats.transactions++;
      this.stats.batches += jobs.length;
      jobs.forEach((job, i) => {
        const outcome = outcomes.results[i]!;
        if (outcome.ok) (job.resolve as (r: unknown) => void)(outcome.value);
        else job.reject(outcome.error);
      });
      this.#host.emit(outcomes.topics);
    } catch (error) {
      for (const job of jobs) job.reject(error);
    } finally {
      this.#inFlight--;
    }
  }

  /** The group's enqueues in one round trip if they qualify; those left for the long way (all, or none). */
  async #enqueueAlone(jobs: Extract<Job, { kind: 'enqueue' }>[]): Promise<Job[]> {
    const planned = planEnqueueAlone(
      jobs.map((job) => job.batch),
      this.#host.feedLock,
      this.#host.channel,
    );
    if (planned === undefined) return jobs;
    let done: ReturnType<typeof planned.finish>;
    try {
      const [row] = await this.#host.withSession((session) =>
        session.run(session.sql.enqueueAlone, planned.values),
      );
      done = planned.finish(row!);
    } catch (error) {
      // Refused by PostgreSQL, nothing was written: the long way retries, and fails a bad batch
      // alone. Without an answer (a connection lost), whether it committed is unknown.
      if (fromPostgres(error) || isRetryable(error)) return jobs;
      for (const job of jobs) job.reject(error);
      return [];
    }
    if (done === undefined) return jobs;
    this.stats.transactions++;
    this.stats.batches += jobs.length;
    for (const [i, job] of jobs.entries()) job.resolve(done.results[i]!);
    this.#host.emit(done.topics);
    return [];
  }

  /**
   * Commits and claims without enqueues: the commits in one call to the commit function
   * (`planCommitCall`), each claim alone beside it. Returns the commits left for a transaction:
   * none, or all of them if they could not go the short way (nothing was written then).
   */
  async #commitAlone(jobs: Exclude<Job, { kind: 'enqueue' }>[]): Promise<Job[]> {
    const commits = jobs.filter((job) => job.kind === 'commit');
    const claims = Promise.all(
      jobs.flatMap((job) => (job.kind === 'claim' ? [job.alone().then(job.resolve, job.reject)] : [])),
    );
    if (commits.length === 0) {
      await claims;
      return [];
    }
    const { feedLock, channel } = this.#host;
    let done: ReturnType<CommitCall['finish']>;
    try {
      // A batch that cannot be planned fails alone on the long way, which plans each again.
      let planned: ReturnType<typeof planCommitCall>;
      try {
        planned = planCommitCall(
          this.#host.sql,
          commits.map((job) => job.batch),
          feedLock,
          channel,
        );
      } catch {
        planned = undefined;
      }
      if (planned === undefined) done = undefined;
      else {
        const { statement, call } = planned;
        const [row] = await this.#host.withSession((session) => session.run(statement, call.values));
        done = call.finish(row);
      }
    } catch (error) {
      if (!fromPostgres(error)) {
        // No answer from PostgreSQL (a connection lost): whether the call committed is unknown.
        for (const job of commits) job.reject(error);
        await claims;
        return [];
      }
      // PostgreSQL refused the call, so nothing was written. The long way retries a deadlock and,
      // if one batch is bad, fails it alone. A function this process cannot call is not tried again.
      if (LASTING.has((error as { code: string }).code)) this.#commitFunction = false;
      done = undefined;
    }
    await claims;
    if (done === undefined) return commits;
    this.stats.transactions++;
    this.stats.batches += commits.length;
    this.stats.commitCalls++;
    for (const [i, job] of commits.entries()) job.resolve(done.results[i]!);
    this.#host.emit(done.topics);
    return [];
  }

  async #transact(session: Session, jobs: Job[]) {
    // First all batches together, without savepoints (two round trips fewer): if one of several
    // fails, the transaction is rolled back and run again with each batch under its own savepoint,
    // so that a bad batch fails its caller alone. A lone batch needs no savepoint either way.
    let savepoints = false;
    for (let attempt = 1; ; attempt++) {
      session.topics.clear();
      try {
        await session.raw(this.#host.begin);
        const results = await this.#apply(session, jobs, savepoints);
        await session.raw(`${session.notifications(this.#host.quotedChannel)}COMMIT`);
        return { results, topics: [...session.topics] };
      } catch (error) {
        await session.raw('ROLLBACK').catch(() => {});
        if (!savepoints && jobs.length > 1 && !isRetryable(error)) {
          savepoints = true;
          continue;
        }
        if (attempt >= MAX_TRIES || !isRetryable(error)) throw error;
        this.stats.retries++;
      }
    }
  }

  /**
   * Enqueues first (a commit in the same group may complete a parent they name), then commits,
   * then claims (which may take the runs just enqueued): each kind merged into as few statements
   * as it allows, or (`savepoints`) each caller's batch under a savepoint of its own.
   */
  async #apply(session: Session, jobs: Job[], savepoints: boolean): Promise<Outcome[]> {
    const results: Outcome[] = new Array(jobs.length);
    const enqueues = jobs.flatMap((job, i) => (job.kind === 'enqueue' ? [{ i, batch: job.batch }] : []));
    const commits = jobs.flatMap((job, i) => (job.kind === 'commit' ? [{ i, batch: job.batch }] : []));
    const claims = jobs.flatMap((job, i) => (job.kind === 'claim' ? [{ i, batch: job.values }] : []));
    const apply = savepoints ? eachAlone : together;
    await apply(session, enqueues, (batches) => applyEnqueues(session, batches), results);
    await apply(session, commits, (batches) => applyCommits(session, batches), results);
    await apply(session, claims, (batches) => claimEach(session, batches), results);
    return results;
  }
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Each worker's claim in turn (one worker's claim never takes what an earlier one took: SKIP LOCKED). */
async function claimEach(session: Session, claims: unknown[][]): Promise<Row[][]> {
  const results: Row[][] = [];
  if (claims.length > 0) await session.raw(CLAIM_PLANS);
  for (const values of claims) results.push(await session.run(session.sql.claim, values));
  return results;
}

type Apply<B> = (
  session: Session,
  items: { i: number; batch: B }[],
  apply: (batches: B[]) => Promise<unknown[]>,
  results: Outcome[],
) => Promise<void>;

/** All callers' batches of one kind at once; a failure fails the transaction. */
const together: Apply<any> = async (_session, items, apply, results) => {
  if (items.length === 0) return;
  const values = await apply(items.map((item) => item.batch));
  items.forEach((item, k) => {
    results[item.i] = { ok: true, value: values[k] };
  });
};

/** Each caller's batch under its own savepoint: a failing one is rolled back and fails its caller alone. */
const eachAlone: Apply<any> = async (session, items, apply, results) => {
  for (const item of items) {
    const before = new Set(session.topics);
    try {
      await session.raw('SAVEPOINT alone');
      const [value] = await apply([item.batch]);
      await session.raw('RELEASE SAVEPOINT alone');
      results[item.i] = { ok: true, value };
    } catch (error) {
      if (isRetryable(error)) throw error;
      await session.raw('ROLLBACK TO SAVEPOINT alone');
      restore(session, before);
      results[item.i] = { ok: false, error };
    }
  }
};

/** A rolled-back batch owes no wake-ups. */
function restore(session: Session, topics: Set<WakeTopic>): void {
  session.topics.clear();
  for (const topic of topics) session.topics.add(topic);
}
