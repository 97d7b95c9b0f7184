// The PostgreSQL workflow store: claims with FOR NO KEY UPDATE SKIP LOCKED, wake-ups with
// LISTEN/NOTIFY (polling when that is unavailable), and group commit of workers' progress.
import { readdir, readFile } from 'node:fs/promises';
import type { Client, ClientConfig, Pool, PoolClient } from 'pg';
import { StoreClosedError } from '../../errors.ts';
import { auditPage, auditRow, checkAuditEntry } from '../audit.ts';
import { cancelledError, contextOf, reasonData } from '../events.ts';
import { checkNewRun } from '../new-run.ts';
import { bySearch, prefixEnd, runOffset } from '../search.ts';
import type {
  AuditEntry,
  Change,
  ClaimedRun,
  ClaimRequest,
  CommitResult,
  EnqueueResult,
  FeedEvent,
  Json,
  ListAuditFilter,
  ListRunsFilter,
  NewAuditEntry,
  NewRun,
  ParkedRun,
  RetryOutcome,
  RunCount,
  RunRecord,
  RunStatus,
  Signal,
  StepRecord,
  TimelineEvent,
  Versions,
  WakeTopic,
  WorkflowStore,
} from '../types.ts';
import { FORGET_WORKERS_MS, versionsEncoder } from '../workers.ts';
import { settleDependents } from './commit.ts';
import { GroupCommitter } from './group.ts';
import { Wakeups } from './listen.ts';
import {
  type NormalizedPostgresStoreOptions,
  normalizePostgresStoreOptions,
  type PostgresStoreOptions,
} from './options.ts';
import {
  claimOrder,
  jsonText,
  toAudit,
  toClaimed,
  toEvent,
  toFeed,
  toParked,
  toRun,
  toSignal,
  toStep,
  types,
  useDefaultParsers,
} from './rows.ts';
import { Session } from './session.ts';
import {
  CLAIM_PLANS,
  commitFunctionStatements,
  INDEX_PLANS,
  migrationStatements,
  type Statements,
  statements,
} from './sql.ts';

type PgModule = typeof import('pg');

/** Loaded on first use, so that a service on SQLite never loads pg. */
let pgModule: Promise<PgModule> | undefined;
function loadPg(): Promise<PgModule> {
  pgModule ??= import('pg').then((m) => {
    const pg = ((m as unknown as { default?: PgModule }).default ?? m) as PgModule;
    useDefaultParsers(pg.types.getTypeParser as never);
    return pg;
  });
  return pgModule;
}

const MIGRATIONS = new URL('../../../migrations/postgres/', import.meta.url);

/** How many candidates a claim under concurrency limits looks at, per run it may take. */
const LIMITED_SCAN_FACTOR = 4;
const LIMITED_SCAN_MIN = 32;
/** A worker's versions as the jsonb { workflow: [versions] } the claim statements read. */
const encodeVersions = versionsEncoder(JSON.stringify);

export class PostgresStore implements WorkflowStore {
  readonly dialect = 'postgres';
  /** The schema, as given. */
  readonly schema: string;
  readonly #options: NormalizedPostgresStoreOptions;
  readonly #sql: Statements;
  readonly #quotedSchema: string;
  readonly #channel: string;
  readonly #quotedChannel: string;
  /** Claims under concurrency limits take this lock, so their counts are exact across processes. */
  readonly #claimLock: string;
  /**
   * Every transaction that writes events holds this lock, shared, from its BEGIN: the feed takes
   * it exclusively for an instant to wait out the writers in flight (see `#feedHorizon`).
   */
  readonly #feedLock: string;
  /** BEGIN of a transaction that may write events, in the same round trip. */
  readonly #beginWrite: string;
  readonly #group: GroupCommitter;
  readonly #wakeups: Wakeups;
  #pool: Pool | undefined;
  #poolReady: Promise<Pool> | undefined;
  /** Connections whose sessions plan by index (see `#indexedPool`), once one is needed. */
  #indexed: Promise<Pool> | undefined;
  /** The indexed pool's connections whose session settings are made. */
  readonly #planned = new WeakSet<PoolClient>();
  /** Clients that have this store's own 'error' listener (see `#guard`). */
  readonly #guarded = new WeakSet<PoolClient>();
  #closed = false;

  constructor(options: PostgresStoreOptions = {}) {
    this.#options = normalizePostgresStoreOptions(options);
    this.schema = this.#options.schema;
    this.#quotedSchema = quoteIdentifier(this.schema);
    this.#sql = statements(this.#quotedSchema, tagOf(this.schema));
    this.#channel = `bulwark_${this.schema}`;
    this.#quotedChannel = quoteIdentifier(this.#channel);
    this.#claimLock = `bulwark:claim:${this.schema}`;
    this.#feedLock = `bulwark:feed:${this.schema}`;
    this.#beginWrite = `BEGIN; ${INDEX_PLANS}SELECT pg_advisory_xact_lock_shared(hashtextextended(${literal(this.#feedLock)}, 0))`;
    this.#pool = this.#options.pool;
    const max = this.#options.pool ? (this.#options.pool.options?.max ?? 10) : this.#options.max;
    this.#group = new GroupCommitter(
      {
        withSession: (work) => this.#withSession(work),
        begin: this.#beginWrite,
        channel: this.#channel,
        quotedChannel: this.#quotedChannel,
        feedLock: this.#feedLock,
        sql: this.#sql,
        emit: (topics) => this.#wakeups.emit(topics),
      },
      this.#options.groupCommit,
      Math.max(1, Math.min(2, max - 1)),
    );
    this.#wakeups = new Wakeups({
      channel: this.#channel,
      quotedChannel: this.#quotedChannel,
      listen: this.#options.listen,
      pollMs: this.#options.pollMs,
      clock: this.#options.clock,
      connect: () => this.#listenClient(),
      poll: async (afterSeq) => {
        const [row] = await this.#query(this.#sql.eventsSince, [afterSeq]);
        return { last: row!.last as number, runs: row!.runs as string[] };
      },
      lastSeq: async () => (await this.#query(this.#sql.lastEvent, []))[0]!.last as number,
    });
  }

  /**
   * Transactions and batches so far (group commit shares one transaction among many batches);
   * `commitCalls`: the transactions that were one call to the commit function.
   */
  get stats(): { transactions: number; batches: number; retries: number; commitCalls: number } {
    return { ...this.#group.stats };
  }

  /** Whether the LISTEN connection is up (false while polling). */
  get listening(): boolean {
    return this.#wakeups.listening;
  }

  /** The LISTEN connection's server process id, while it is up. */
  get listenerPid(): number | undefined {
    return this.#wakeups.listenerPid;
  }

  async migrate(): Promise<void> {
    const files = (await readdir(MIGRATIONS)).filter((f) => /^\d{4}_.+\.sql$/.test(f)).sort();
    const m = migrationStatements(this.#quotedSchema);
    const pool = await this.#getPool();
    const client = this.#guard(await pool.connect());
    try {
      await client.query('BEGIN');
      await client.query(m.lock, [`bulwark:migrate:${this.schema}`]);
      await client.query(m.createSchema);
      await client.query(m.createTable);
      const applied = new Set(
        (await client.query(m.applied)).rows.map((r: { version: number }) => r.version),
      );
      for (const file of files) {
        const version = Number(file.slice(0, 4));
        if (applied.has(version)) continue;
        await client.query(m.searchPath);
        await client.query(await readFile(new URL(file, MIGRATIONS), 'utf8'));
        await client.query(m.record, [version, file]);
      }
      // Made from this version's statements, not a numbered file: see commitFunctionStatements.
      const fn = commitFunctionStatements(this.#quotedSchema);
      if (!(await client.query(fn.exists, [fn.signature])).rows[0].present) await client.query(fn.create);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#wakeups.close();
    await this.#indexed?.then((pool) => pool.end()).catch(() => {});
    // Our own pool only: a pool the caller brought is theirs to end.
    if (this.#options.pool === undefined && this.#poolReady !== undefined) {
      const pool = await this.#poolReady;
      await pool.end();
    }
  }

  enqueue(runs: readonly NewRun[], now: number): Promise<EnqueueResult[]> {
    if (runs.length === 0) return Promise.resolve([]);
    try {
      for (const run of runs) checkNewRun(run, now);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#group.enqueue({ runs, now });
  }

  async lastTick(schedule: string): Promise<number | undefined> {
    const [row] = await this.#query(this.#sql.lastTick, [schedule]);
    return row === undefined ? undefined : Number(row.tick);
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const [row] = await this.#query(this.#sql.getRun, [id]);
    return row === undefined ? undefined : toRun(row);
  }

  async listRuns(filter: ListRunsFilter = {}): Promise<RunRecord[]> {
    const sql = this.#sql;
    const statement = bySearch(filter, sql.listRuns, sql.listRunsText, sql.listRunsInput);
    const rows = await this.#query(statement, [
      filter.status ? [...filter.status] : null,
      filter.workflow ?? null,
      filter.before ?? null,
      filter.limit ?? 100,
      runOffset(filter),
      ...searchValues(filter),
    ]);
    return rows.map(toRun);
  }

  async totalRuns(filter: ListRunsFilter = {}): Promise<number> {
    const sql = this.#sql;
    const statement = bySearch(filter, sql.totalRuns, sql.totalRunsText, sql.totalRunsInput);
    const [row] = await this.#query(statement, [
      filter.status ? [...filter.status] : null,
      filter.workflow ?? null,
      ...searchValues(filter),
    ]);
    return row!.n as number;
  }

  async parkedRuns(dependency: string, limit: number): Promise<{ runs: ParkedRun[]; total: number }> {
    // One snapshot: the total and the page agree.
    return this.#withSession(async (session) => {
      await session.raw('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const rows = await session.run(this.#sql.parkedRuns, [dependency, limit]);
        const [total] = await session.run(this.#sql.parkedTotal, [dependency]);
        await session.raw('COMMIT');
        return { runs: rows.map(toParked), total: total!.n as number };
      } catch (error) {
        await session.raw('ROLLBACK').catch(() => {});
        throw error;
      }
    });
  }

  async parkedCounts(): Promise<Record<string, number>> {
    const rows = await this.#query(this.#sql.parkedCounts, []);
    return Object.fromEntries(rows.map((r) => [r.name as string, r.n as number]));
  }

  async wakeParked(dependency: string, now: number): Promise<number> {
    const [row] = await this.#query(this.#sql.wakeParked, [dependency, now, this.#channel]);
    const woken = row!.n as number;
    if (woken > 0) this.#wakeups.emit(['runs']);
    return woken;
  }

  async claim(request: ClaimRequest): Promise<ClaimedRun[]> {
    const { workerId, limit, leaseMs, now, workflows, versions, perWorkflow, perKey } = request;
    if (limit <= 0 || workflows.length === 0) return [];
    const base = [workerId, [...workflows], now, limit, leaseMs];
    const versionsJson = versions === undefined ? null : encodeVersions(versions);
    const limited =
      (perWorkflow !== undefined && Object.keys(perWorkflow).length > 0) || perKey !== undefined;
    let rows: Record<string, unknown>[];
    if (!limited) {
      const values = [...base, versionsJson];
      rows = await this.#group.claim(values, () => this.#claimAlone(values));
    } else {
      rows = await this.#claimTransaction(
        `SELECT pg_advisory_xact_lock(hashtextextended(${literal(this.#claimLock)}, 0))`,
        (session) =>
          session.run(this.#sql.claimWithinLimits, [
            ...base,
            JSON.stringify(perWorkflow ?? {}),
            perKey ?? null,
            Math.max(limit * LIMITED_SCAN_FACTOR, LIMITED_SCAN_MIN),
            versionsJson,
          ]),
      );
    }
    return rows.map(toClaimed).sort(claimOrder);
  }

  async announce(workerId: string, versions: Versions, now: number, leaseMs: number): Promise<void> {
    await this.#query(this.#sql.announceWorker, [
      workerId,
      encodeVersions(versions),
      now,
      now + leaseMs,
      now - FORGET_WORKERS_MS,
    ]);
  }

  async retire(workerId: string): Promise<void> {
    await this.#query(this.#sql.retireWorker, [workerId]);
  }

  async renew(
    workerId: string,
    runIds: readonly string[],
    leaseMs: number,
    now: number,
  ): Promise<{ held: string[]; cancelRequested: string[] }> {
    if (runIds.length === 0) return { held: [], cancelRequested: [] };
    const rows = await this.#query(this.#sql.renew, [workerId, [...runIds], leaseMs, now]);
    return {
      held: rows.map((r) => r.id as string),
      cancelRequested: rows.filter((r) => r.cancel_requested !== null).map((r) => r.id as string),
    };
  }

  commit(changes: readonly Change[], now: number): Promise<CommitResult> {
    if (changes.length === 0) return Promise.resolve({ lostLease: [], duplicateSteps: [] });
    return this.#group.commit({ changes, now });
  }

  async steps(runId: string): Promise<StepRecord[]> {
    return (await this.#query(this.#sql.steps, [runId])).map(toStep);
  }

  async events(runId: string, afterSeq = 0, limit?: number): Promise<TimelineEvent[]> {
    return (await this.#query(this.#sql.events, [runId, afterSeq, limit ?? null])).map(toEvent);
  }

  async signal(runId: string, name: string, payload: Json, now: number): Promise<boolean> {
    const rows = await this.#query(this.#sql.signal, [
      runId,
      name,
      jsonText(payload ?? null),
      now,
      this.#channel,
    ]);
    if (rows.length === 0) return false;
    const topics: WakeTopic[] = [`run:${runId}`];
    if (rows[0]!.woken === true) topics.push('runs');
    this.#wakeups.emit(topics);
    return true;
  }

  async signals(runId: string, name: string): Promise<Signal[]> {
    return (await this.#query(this.#sql.signals, [runId, name])).map(toSignal);
  }

  async requestCancel(runId: string, reason: string, now: number): Promise<boolean> {
    return this.#transaction(async (session) => {
      const [row] = await session.run(this.#sql.lockRun, [runId]);
      if (row === undefined || FINAL.has(row.status as string)) return { answer: false, commit: false };
      session.topics.add(`run:${runId}`);
      const leased = row.lease_owner !== null && (row.lease_expires_at as number) > now;
      if (leased) {
        await session.run(this.#sql.requestCancel, [runId, reason, now]);
      } else if ((await session.run(this.#sql.requestCancelDue, [runId, reason, now])).length > 0) {
        session.topics.add('runs');
      } else {
        await session.run(this.#sql.cancelNow, [runId, jsonText(cancelledError(reason)), reason, now]);
        await session.run(this.#sql.insertEvents, [
          oneEvent(runId, 'run:cancelled', reasonData(reason, contextOf(row)), row.progress, now),
        ]);
        const state = { startStatus: row.status as never, status: 'cancelled' as const, finalAt: now };
        await settleDependents(session, new Map([[runId, state]]));
      }
      return { answer: true, commit: true };
    });
  }

  async prune(before: number): Promise<number> {
    const [row] = await this.#query(this.#sql.prune, [before]);
    return row!.pruned as number;
  }

  async retryRun(runId: string, reason: string, now: number): Promise<RetryOutcome> {
    return this.#transaction(async (session) => {
      const [row] = await session.run(this.#sql.lockRun, [runId]);
      const status = row?.status as string | undefined;
      if (status === undefined) return { answer: 'unknown' as const, commit: false };
      if (!RETRYABLE.has(status)) return { answer: 'not-retryable' as const, commit: false };
      await session.run(this.#sql.deleteRetriedSteps, [runId]);
      const [queued] = await session.run(this.#sql.requeueRun, [runId, now]);
      await session.run(this.#sql.insertEvents, [
        oneEvent(runId, 'run:retried', reasonData(reason, contextOf(row!)), queued!.progress, now),
      ]);
      session.topics.add(`run:${runId}`);
      if (queued!.pending_parents === 0) session.topics.add('runs');
      return { answer: 'retried' as const, commit: true };
    });
  }

  async appendAudit(entry: NewAuditEntry): Promise<AuditEntry> {
    checkAuditEntry(entry);
    const [row] = await this.#query(this.#sql.insertAudit, Object.values(auditRow(entry, jsonText)));
    return toAudit(row!);
  }

  async listAudit(filter?: ListAuditFilter): Promise<AuditEntry[]> {
    const { limit, before } = auditPage(filter);
    return (await this.#query(this.#sql.listAudit, [before, limit])).map(toAudit);
  }

  async runFeed(afterSeq: number, limit: number): Promise<FeedEvent[]> {
    const horizon = await this.#feedHorizon();
    if (horizon <= afterSeq) return [];
    return (await this.#query(this.#sql.runFeed, [afterSeq, horizon, limit])).map(toFeed);
  }

  latestSeq(): Promise<number> {
    return this.#feedHorizon();
  }

  async countRuns(): Promise<RunCount[]> {
    const rows = await this.#query(this.#sql.countRuns, []);
    return rows.map((r) => ({
      workflow: r.workflow as string,
      status: r.status as RunStatus,
      count: r.count as number,
      oldestCreatedAt: Number(r.oldest_created_at),
    }));
  }

  /**
   * The highest seq below which no event can still appear. PostgreSQL hands out seqs when rows
   * are inserted but shows them when their transaction commits, and two transactions may
   * commit out of order: a reader going on from seq 10 would never see a 9 committed after it.
   * So every event writer holds the feed lock (shared) from its BEGIN; here the last seq handed
   * out is read first, then the lock is taken exclusively, which waits for the writers in
   * flight (and holds new ones back for that instant only): after it, each seq up to the one
   * read is committed or rolled back, and reading up to it skips nothing.
   */
  async #feedHorizon(): Promise<number> {
    const [row] = await this.#query(this.#sql.feedHorizon, [`${this.#quotedSchema}.events`, this.#feedLock]);
    return row!.seq as number;
  }

  subscribe(listener: (topic: WakeTopic) => void): () => void {
    return this.#wakeups.subscribe(listener);
  }

  // -- Plumbing -----------------------------------------------------------------------------

  #getPool(): Promise<Pool> {
    if (this.#closed) return Promise.reject(new StoreClosedError(this.dialect));
    this.#poolReady ??= this.#pool
      ? Promise.resolve(this.#pool)
      : loadPg().then((pg) => {
          const pool = new pg.Pool({
            connectionString: this.#options.connectionString,
            max: this.#options.max,
          });
          // An idle client that errors (the server restarted) is dropped by the pool; without a
          // listener the error would end the process.
          pool.on('error', () => {});
          this.#pool = pool;
          return pool;
        });
    return this.#poolReady;
  }

  async #query(
    statement: { name: string; text: string },
    values: unknown[],
  ): Promise<Record<string, unknown>[]> {
    const pool = await this.#getPool();
    await loadPg();
    const result = await pool.query<Record<string, unknown>>({
      name: statement.name,
      text: statement.text,
      values,
      types,
    });
    return result.rows;
  }

  /**
   * A write transaction of its own (outside the group commit, for one run's lock): `work` answers
   * and says whether to commit; the topics it added are told once the transaction has committed.
   */
  async #transaction<T>(work: (session: Session) => Promise<{ answer: T; commit: boolean }>): Promise<T> {
    const { answer, topics } = await this.#withSession(async (session) => {
      try {
        await session.raw(this.#beginWrite);
        const { answer, commit } = await work(session);
        if (!commit) {
          await session.raw('ROLLBACK');
          return { answer, topics: undefined };
        }
        await session.raw(`${session.notifications(this.#quotedChannel)}COMMIT`);
        return { answer, topics: [...session.topics] };
      } catch (error) {
        await session.raw('ROLLBACK').catch(() => {});
        throw error;
      }
    });
    if (topics !== undefined) this.#wakeups.emit(topics);
    return answer;
  }

  async #withSession<T>(
    work: (session: Session) => Promise<T>,
    acquire: () => Promise<PoolClient> = async () => (await this.#getPool()).connect(),
  ): Promise<T> {
    await loadPg();
    const client = this.#guard(await acquire());
    let broken: Error | undefined;
    try {
      return await work(new Session(client, this.#sql));
    } catch (error) {
      // A connection that failed mid-transaction may be in any state: do not reuse it.
      if ((error as { code?: string }).code === undefined) broken = error as Error;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Gives a client out of the pool a listener for its 'error' events, once. The pool listens only
   * to its idle clients: a connection that drops while the store has it (the server restarted, a
   * claim sent before the client heard its backend was terminated) would otherwise be an uncaught
   * exception that ends the process. The statement in flight still rejects, and the session gives
   * the client back broken, so the pool discards it.
   */
  #guard(client: PoolClient): PoolClient {
    if (!this.#guarded.has(client)) {
      client.on('error', () => {});
      this.#guarded.add(client);
    }
    return client;
  }

  /** A claim outside any transaction, in one round trip, on the indexed pool (see `#indexedPool`). */
  #claimAlone(values: unknown[]): Promise<Record<string, unknown>[]> {
    // Behind a pooler in transaction mode (`listen: false`), a session's settings would stay on a
    // server connection other clients get next: there the claim takes them for its own
    // transaction, on the pool, for two round trips more.
    if (!this.#options.listen) {
      return this.#claimTransaction('SET LOCAL synchronous_commit = off', (session) =>
        session.run(this.#sql.claim, values),
      );
    }
    return this.#withIndexedSession((session) => session.run(this.#sql.claim, values));
  }

  /** `work` in a transaction of its own, on the pool, begun with the claims' planner settings and `first` (SQL). */
  #claimTransaction<T>(first: string, work: (session: Session) => Promise<T>): Promise<T> {
    return this.#withSession(async (session) => {
      try {
        await session.raw(`BEGIN; ${INDEX_PLANS}${CLAIM_PLANS}${first}`);
        const result = await work(session);
        await session.raw('COMMIT');
        return result;
      } catch (error) {
        await session.raw('ROLLBACK').catch(() => {});
        throw error;
      }
    });
  }

  /** A session on the indexed pool, released after `work` settles. */
  #withIndexedSession<T>(work: (session: Session) => Promise<T>): Promise<T> {
    return this.#withSession(work, async () => {
      const client = await (await this.#indexedPool()).connect();
      if (!this.#planned.has(client)) {
        try {
          await client.query(CLAIM_SESSION);
        } catch (error) {
          client.release(error as Error);
          throw error;
        }
        this.#planned.add(client);
      }
      return client;
    });
  }

  /**
   * Connections of the store's own, outside the pool (as the LISTEN connection is), for the
   * claims that run in no transaction of their own making (idle claims): their sessions keep
   * the write transactions' planner settings for good. On a
   * pool connection, a prepared statement keeps the plan it got there, whatever the settings of
   * the transaction it runs in: a claim planned while the runs table was small went on reading
   * every run for expired leases until autovacuum's ANALYZE; planning it afresh each time
   * would cost 0.4 ms, most of an idle pickup.
   */
  #indexedPool(): Promise<Pool> {
    if (this.#closed) return Promise.reject(new StoreClosedError(this.dialect));
    this.#indexed ??= loadPg().then((pg) => {
      const pool = new pg.Pool({ ...this.#clientConfig(), max: INDEXED_CONNECTIONS });
      pool.on('error', () => {});
      return pool;
    });
    return this.#indexed;
  }

  /** The connection settings of the pool: the store's own, or those of the pool it was given. */
  #clientConfig(): ClientConfig {
    return this.#options.pool
      ? { ...(this.#options.pool.options as ClientConfig) }
      : { connectionString: this.#options.connectionString };
  }

  async #listenClient(): Promise<Client> {
    const pg = await loadPg();
    const client = new pg.Client(this.#clientConfig());
    client.on('error', () => {});
    await client.connect();
    return client;
  }
}

/** Of the indexed pool: idle claims (several workers' at once queue behind two). */
const INDEXED_CONNECTIONS = 2;

/**
 * The settings of the indexed pool's sessions: the write transactions' planner settings, and
 * claims that do not wait for their WAL flush (a millisecond of an idle pickup here). A claim
 * lost in a server crash leaves its run to be claimed again, and the worker that thought it held
 * it is refused its next commit (its lease is not there): no step outcome depends on a claim
 * being durable, and any commit that follows it flushes it too, the log being written in order.
 */
const CLAIM_SESSION = `${(INDEX_PLANS + CLAIM_PLANS).replaceAll('SET LOCAL', 'SET')}SET synchronous_commit = off;`;

const FINAL: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'compensated']);
/** The final statuses a run can be retried from. */
const RETRYABLE: ReadonlySet<string> = new Set(['failed', 'cancelled', 'compensated']);

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A short, stable tag per schema for prepared statement names (63 bytes at most). */
function tagOf(schema: string): string {
  let h = 2166136261;
  for (let i = 0; i < schema.length; i++) h = Math.imul(h ^ schema.charCodeAt(i), 16777619);
  return (h >>> 0).toString(36);
}

/**
 * Opens a PostgreSQL workflow store and applies its pending migrations (safe when several
 * processes start at once). Wake-ups reach other processes through LISTEN/NOTIFY.
 */
export async function openPostgresStore(options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const store = new PostgresStore(options);
  try {
    await store.migrate();
    return store;
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** The search's two parameters: the text and the end of its prefix range, or the input's path and value. */
function searchValues(filter: ListRunsFilter): unknown[] {
  const { search } = filter;
  if (search === undefined) return [];
  if ('text' in search) return [search.text, prefixEnd(search.text)];
  return [[...search.path], search.equals];
}

/** One event of a run, as `insertEvents` takes a batch of them. */
function oneEvent(runId: string, type: string, data: Json, progress: unknown, at: number): string {
  return JSON.stringify([{ ord: 0, run_id: runId, type, step: null, data: jsonText(data), progress, at }]);
}
