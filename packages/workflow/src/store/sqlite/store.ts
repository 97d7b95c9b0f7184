// The SQLite workflow store (better-sqlite3, WAL): the embedded default, one file, no set-up.
// Writes are group-committed (see group-commit.ts); reads run at once on the same connection.
import { closeSync, fdatasync, openSync, readdirSync, readFileSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { StoreClosedError, UnknownRunError } from '../../errors.ts';
import { auditPage, auditRow, checkAuditEntry } from '../audit.ts';
import { cancelledError, contextOf, parentCancelledData, queuedData, reasonData } from '../events.ts';
import { checkNewRun, createdRecord } from '../new-run.ts';
import { type Row, rowReader } from '../rows.ts';
import { bySearch, prefixEnd, runOffset } from '../search.ts';
import {
  type AuditEntry,
  type Change,
  type ClaimedRun,
  type ClaimRequest,
  type CommitResult,
  type EnqueueResult,
  type FeedEvent,
  FINAL_STATUSES,
  type Json,
  type ListAuditFilter,
  type ListRunsFilter,
  type NewAuditEntry,
  type NewRun,
  type ParkedRun,
  type RetryOutcome,
  type RunCount,
  type RunRecord,
  type RunStatus,
  type RunUpdate,
  type Signal,
  type StepRecord,
  type StoredError,
  type TimelineEvent,
  type Versions,
  type WakeTopic,
  type WorkflowStore,
} from '../types.ts';
import { FORGET_WORKERS_MS, versionsEncoder } from '../workers.ts';
import { WalCheckpointer } from './checkpoint.ts';
import { GroupCommit, type GroupCommitStats } from './group-commit.ts';
import { type NormalizedSqliteOptions, normalizeSqliteOptions, type SqliteStoreOptions } from './options.ts';
import { type SqliteSql, sqliteSql, withPrefix } from './sql.ts';

const MIGRATIONS_DIR = new URL('../../../migrations/sqlite/', import.meta.url);
const FINAL = new Set<RunStatus>(FINAL_STATUSES);
/** Statuses that cancel a run's dependents. */
const FAILED = new Set<RunStatus>(['failed', 'cancelled', 'compensated']);

/**
 * Opens (creating if needed) a SQLite workflow store and applies its pending migrations.
 * Wake-ups (`subscribe`) reach listeners in this process only: other processes sharing the file
 * must poll (`claim` on an interval).
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const normalized = normalizeSqliteOptions(options);
  // Loaded here, not at import: a service on PostgreSQL never loads the native module.
  const { default: Sqlite } = await import('better-sqlite3');
  const db = new Sqlite(normalized.path);
  try {
    db.pragma(`busy_timeout = ${normalized.busyTimeoutMs}`);
    enableWal(db, normalized.busyTimeoutMs);
    // Syncing in the thread pool: SQLite commits without syncing (NORMAL) and the store syncs
    // the log itself before any write settles (see WalSync). Nothing is acknowledged before it
    // is on disk, as with FULL, but the event loop no longer blocks on fsync.
    const syncsItself = syncsInThreadPool(db, normalized);
    db.pragma(`synchronous = ${normalized.durability === 'full' && !syncsItself ? 'FULL' : 'NORMAL'}`);
    // The store checkpoints the log itself, in a worker thread (see checkpoint.ts).
    if (syncsItself) db.pragma('wal_autocheckpoint = 0');
    db.pragma('foreign_keys = ON');
    migrateDatabase(db, normalized.tablePrefix);
    return new SqliteStore(db, normalized);
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Switches a file to WAL (a setting stored in the file). On a new file two processes may race
 * to switch it, and the loser gets SQLITE_BUSY without SQLite's busy handler; so it waits 10 ms
 * and tries again, up to `busyTimeoutMs`, blocking as that handler would.
 */
function enableWal(db: Database.Database, busyTimeoutMs: number): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; ; waited += 10) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || waited >= busyTimeoutMs) throw error;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

function syncsInThreadPool(db: Database.Database, options: NormalizedSqliteOptions): boolean {
  return options.syncInThreadPool && options.durability === 'full' && walFile(db) !== undefined;
}

/** The write-ahead log of a file database in WAL mode; undefined in memory or in another journal mode. */
function walFile(db: Database.Database): string | undefined {
  if (db.memory || db.name === '') return undefined;
  const mode = db.pragma('journal_mode', { simple: true });
  return mode === 'wal' ? `${db.name}-wal` : undefined;
}

/**
 * fdatasync of the write-ahead log in libuv's thread pool. SQLite appends each commit to the
 * log in order, so one sync makes every commit before it durable; SQLite itself still syncs the
 * log before a checkpoint copies it into the database, and the database after. The log's file
 * stays the same while the connection is open (a checkpoint rewinds it, never replaces it).
 */
class WalSync {
  readonly #path: string;
  /**
   * A descriptor per sync in flight, not one shared: Linux reports a write-back error to the
   * first fsync through a file description that checks for it, so of two overlapping syncs on
   * one descriptor, the other could succeed and settle writes that never reached the disk.
   */
  readonly #idle: number[] = [];
  readonly #all: number[] = [];

  constructor(path: string) {
    this.#path = path;
  }

  readonly sync = (done: (error: Error | null) => void): void => {
    let fd = this.#idle.pop();
    if (fd === undefined) {
      try {
        // Opened on first use: the log exists once a transaction has been written to it.
        fd = openSync(this.#path, 'r');
      } catch (error) {
        done(error as Error);
        return;
      }
      this.#all.push(fd);
    }
    const used = fd;
    fdatasync(used, (error) => {
      if (this.#all.includes(used)) this.#idle.push(used);
      done(error);
    });
  };

  close(): void {
    for (const fd of this.#all) closeSync(fd);
    this.#all.length = 0;
    this.#idle.length = 0;
  }
}

/** Applies the numbered .sql files not yet recorded, under one write lock (safe across processes). */
function migrateDatabase(db: Database.Database, prefix: string): void {
  const sql = sqliteSql(prefix);
  const files = readdirSync(MIGRATIONS_DIR)
    .filter((name) => /^\d+_.*\.sql$/.test(name))
    .sort();
  // IMMEDIATE: a second process migrating the same file waits here (busy_timeout), then sees
  // the versions the first recorded and applies nothing twice.
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(sql.createMigrations);
    const applied = new Set(
      db
        .prepare(sql.appliedMigrations)
        .pluck()
        .all()
        .map((v) => Number(v)),
    );
    const record = db.prepare(sql.recordMigration);
    for (const name of files) {
      const version = Number.parseInt(name, 10);
      if (applied.has(version)) continue;
      db.exec(withPrefix(readFileSync(new URL(name, MIGRATIONS_DIR), 'utf8'), prefix));
      record.run(version, name);
    }
    db.exec('COMMIT');
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

type Statements = { [K in keyof SqliteSql]: Database.Statement };

export interface SqliteStoreStats extends GroupCommitStats {
  /** Checkpoints of the log run in the store's worker thread (`syncInThreadPool` only). */
  checkpoints: number;
}

export class SqliteStore implements WorkflowStore {
  readonly dialect = 'sqlite';
  readonly #db: Database.Database;
  readonly #options: NormalizedSqliteOptions;
  readonly #sql: Statements;
  readonly #writes: GroupCommit;
  readonly #walSync: WalSync | undefined;
  readonly #checkpointer: WalCheckpointer | undefined;
  readonly #listeners = new Set<(topic: WakeTopic) => void>();
  readonly #candidateStatements: Database.Statement[] = [];
  #closed = false;

  /** Use `openSqliteStore`: it migrates before the statements are prepared. */
  constructor(db: Database.Database, options: NormalizedSqliteOptions) {
    this.#db = db;
    this.#options = options;
    const texts = sqliteSql(options.tablePrefix);
    this.#sql = Object.fromEntries(
      Object.entries(texts).map(([name, text]) => [name, db.prepare(text)]),
    ) as Statements;
    const wal = syncsInThreadPool(db, options) ? walFile(db) : undefined;
    if (wal === undefined) {
      this.#writes = new GroupCommit(db, (topic) => this.#emit(topic));
      return;
    }
    const walSync = new WalSync(wal);
    const checkpointer = new WalCheckpointer(db.name, options.busyTimeoutMs, () => {
      db.pragma('wal_checkpoint(PASSIVE)');
    });
    this.#walSync = walSync;
    this.#checkpointer = checkpointer;
    this.#writes = new GroupCommit(
      db,
      (topic) => this.#emit(topic),
      walSync.sync,
      (resume) => checkpointer.maintain(resume),
    );
  }

  /** Transactions committed and writes applied so far: writes per transaction is the batching gain. */
  stats(): SqliteStoreStats {
    return { ...this.#writes.stats, checkpoints: this.#checkpointer?.stats.checkpoints ?? 0 };
  }

  async migrate(): Promise<void> {
    this.#open();
    migrateDatabase(this.#db, this.#options.tablePrefix);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes.drained();
    this.#listeners.clear();
    await this.#checkpointer?.close();
    this.#db.close();
    this.#walSync?.close();
  }

  // -------------------------------------------------------------------------------------------
  // Runs

  async enqueue(runs: readonly NewRun[], now: number): Promise<EnqueueResult[]> {
    this.#open();
    for (const run of runs) checkNewRun(run, now);
    return this.#writes.run((topics) => runs.map((run) => this.#enqueueOne(run, now, topics)));
  }

  #enqueueOne(run: NewRun, now: number, topics: Set<WakeTopic>): EnqueueResult {
    const s = this.#sql;
    if (run.idempotencyKey !== undefined) {
      const existing = s.runByKey.get(run.idempotencyKey) as { id: string; status: RunStatus } | undefined;
      if (existing) return { id: existing.id, created: false, status: existing.status };
    }
    const parents = [...new Set(run.dependsOn ?? [])];
    const lease = run.leasedTo;
    let pending = 0;
    let failedParent: { id: string; status: RunStatus } | undefined;
    for (const parent of parents) {
      const state = s.runState.get(parent) as { status: RunStatus } | undefined;
      if (!state) throw new UnknownRunError(parent);
      if (state.status === 'completed') continue;
      if (FAILED.has(state.status)) failedParent ??= { id: parent, status: state.status };
      else pending++;
    }
    const status: RunStatus = failedParent ? 'cancelled' : lease ? 'running' : 'queued';
    const input = JSON.stringify(run.input ?? null);
    const error = failedParent
      ? cancelledError({ parent: failedParent.id, status: failedParent.status })
      : undefined;
    const availableAt = run.availableAt ?? now;
    s.insertRun.run({
      id: run.id,
      workflow: run.workflow,
      version: run.version,
      status,
      priority: run.priority,
      input,
      error: toJson(error),
      idempotencyKey: run.idempotencyKey ?? null,
      parentRunId: run.parentRunId ?? null,
      concurrencyKey: run.concurrencyKey ?? null,
      pendingParents: pending,
      availableAt,
      deadlineAt: run.deadlineAt ?? null,
      correlationId: run.correlationId ?? null,
      traceparent: run.traceparent ?? null,
      leaseOwner: lease?.workerId ?? null,
      leaseExpiresAt: lease?.until ?? null,
      now,
      finishedAt: failedParent ? now : null,
    });
    for (const parent of parents) s.insertDep.run(parent, run.id);
    if (run.scheduleTick !== undefined)
      s.recordTick.run(run.scheduleTick.schedule, run.scheduleTick.at, run.id);
    // A new run's events carry its progress: 0.
    const created = { step: undefined, progress: 0 };
    if (failedParent) {
      this.#insertEvent(
        run.id,
        'run:cancelled',
        parentCancelledData(failedParent.id, failedParent.status, run),
        now,
        created,
      );
    } else {
      this.#insertEvent(run.id, 'run:queued', queuedData(run), now, created);
      if (pending === 0 && lease === undefined) topics.add('runs');
    }
    if (run.audit !== undefined) s.insertAudit.get(auditRow({ ...run.audit, target: run.id }, toJson));
    topics.add(`run:${run.id}`);
    // The run as inserted, built here rather than read back (a claim committed after this
    // transaction would show it running); the input parsed from its stored text, as a read would.
    const record = createdRecord(run, now, {
      status,
      input: JSON.parse(input) as Json,
      pendingParents: pending,
      error,
    });
    return { id: run.id, created: true, status, run: record };
  }

  async lastTick(schedule: string): Promise<number | undefined> {
    this.#open();
    return (this.#sql.lastTick.get(schedule) as { tick: number } | undefined)?.tick;
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    this.#open();
    const row = this.#sql.getRun.get(id) as Row | undefined;
    return row ? read.run(row) : undefined;
  }

  async listRuns(filter: ListRunsFilter = {}): Promise<RunRecord[]> {
    this.#open();
    const s = this.#sql;
    const rows = bySearch(filter, s.listRuns, s.listRunsText, s.listRunsInput).all({
      ...runFilter(filter),
      before: filter.before ?? null,
      limit: filter.limit ?? 100,
      offset: runOffset(filter),
    }) as Row[];
    return rows.map(read.run);
  }

  async totalRuns(filter: ListRunsFilter = {}): Promise<number> {
    this.#open();
    const s = this.#sql;
    const statement = bySearch(filter, s.totalRuns, s.totalRunsText, s.totalRunsInput);
    return (statement.get(runFilter(filter)) as { n: number }).n;
  }

  async parkedRuns(dependency: string, limit: number): Promise<{ runs: ParkedRun[]; total: number }> {
    this.#open();
    // One read transaction: the total and the page agree.
    return this.#db.transaction(() => {
      const rows = this.#sql.parkedRuns.all(dependency, limit) as Row[];
      const { n } = this.#sql.parkedTotal.get(dependency) as { n: number };
      return {
        runs: rows.map(read.parked),
        total: n,
      };
    })();
  }

  async parkedCounts(): Promise<Record<string, number>> {
    this.#open();
    return Object.fromEntries(counts(this.#sql.parkedCounts.all() as Row[]));
  }

  async wakeParked(dependency: string, now: number): Promise<number> {
    this.#open();
    return this.#writes.run((topics) => {
      const woken = this.#sql.wakeParked.run({ dependency, now }).changes;
      if (woken > 0) topics.add('runs');
      return woken;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Claims and leases

  async claim(request: ClaimRequest): Promise<ClaimedRun[]> {
    this.#open();
    return this.#writes.run((topics) => this.#claim(request, topics));
  }

  #claim(request: ClaimRequest, topics: Set<WakeTopic>): ClaimedRun[] {
    const { workerId, limit, leaseMs, now, workflows, versions, perWorkflow, perKey } = request;
    if (limit <= 0 || workflows.length === 0) return [];
    const s = this.#sql;
    const byWorkflow = perWorkflow ? counts(s.leasedByWorkflow.all(now) as Row[]) : undefined;
    const byKey = perKey !== undefined ? counts(s.leasedByKey.all(now) as Row[]) : undefined;
    const params = {
      now,
      workflows: JSON.stringify(workflows),
      versions: versions === undefined ? null : encodeVersions(versions),
    };
    // Runs whose lease expired, and waiting runs now due: few, merged into the queued runs' order.
    const others = [
      ...(s.expiredCandidates.all(params) as Row[]),
      ...(s.dueCandidates.all({ ...params, limit }) as Row[]),
    ].sort((a, b) => (claimsBefore(a, b) ? -1 : claimsBefore(b, a) ? 1 : 0));
    const chosen: Row[] = [];
    /** Takes a candidate unless a concurrency limit is full; true once the claim has enough. */
    const consider = (row: Row): boolean => {
      const workflow = row.workflow as string;
      const key = row.concurrency_key as string | null;
      const workflowLimit = perWorkflow?.[workflow];
      if (byWorkflow && workflowLimit !== undefined && (byWorkflow.get(workflow) ?? 0) >= workflowLimit)
        return false;
      if (byKey && perKey !== undefined && key !== null && (byKey.get(key) ?? 0) >= perKey) return false;
      chosen.push(row);
      byWorkflow?.set(workflow, (byWorkflow.get(workflow) ?? 0) + 1);
      if (byKey && key !== null) byKey.set(key, (byKey.get(key) ?? 0) + 1);
      return chosen.length >= limit;
    };
    // Each version's queued runs in claim order, and `others`, merged: the best head each time.
    // The iterators read lazily (a claim of 1 reads a row or two of each) and must all close
    // before the updates below (one connection).
    const sources: Iterator<Row>[] = this.#claimedVersions(params.workflows, versions, now).map(
      ([workflow, version], i) =>
        this.#candidates(i).iterate({ workflow, version, now }) as IterableIterator<Row>,
    );
    sources.push(others[Symbol.iterator]());
    try {
      const heads = sources.map((source) => source.next().value as Row | undefined);
      for (;;) {
        let best = -1;
        for (let i = 0; i < heads.length; i++) {
          const row = heads[i];
          if (row !== undefined && (best < 0 || claimsBefore(row, heads[best]!))) best = i;
        }
        if (best < 0) break;
        const row = heads[best]!;
        heads[best] = sources[best]!.next().value as Row | undefined;
        if (consider(row)) break;
      }
    } finally {
      for (const source of sources) source.return?.();
    }
    const expiresAt = now + leaseMs;
    return chosen.map((row) => {
      s.leaseRun.run({ id: row.id, workerId, expiresAt, now });
      topics.add(`run:${row.id as string}`);
      const run = read.run(row);
      const takenOver = run.leaseOwner !== undefined;
      const status: RunStatus = run.status === 'queued' || run.status === 'waiting' ? 'running' : run.status;
      const hasSteps = s.hasSteps.get(row.id) !== undefined;
      return {
        ...run,
        status,
        leaseOwner: workerId,
        leaseExpiresAt: expiresAt,
        updatedAt: now,
        takenOver,
        hasSteps,
      };
    });
  }

  /**
   * The workflow versions whose queued runs a claim takes: each queued version of the workflows
   * asked for (`workflows`, as JSON; one index seek a version) that the worker runs, or that no live worker runs (the
   * claiming engine fails its runs); every queued version without `versions`.
   */
  #claimedVersions(workflows: string, versions: Versions | undefined, now: number): [string, string][] {
    const taken: [string, string][] = [];
    let live: Set<string> | undefined;
    const queued = this.#sql.queuedVersions.all({ workflows }) as {
      workflow: string;
      version: string;
    }[];
    for (const { workflow, version } of queued) {
      if (versions !== undefined && versions[workflow]?.includes(version) !== true) {
        live ??= this.#liveVersions(now);
        if (live.has(versionKey(workflow, version))) continue;
      }
      taken.push([workflow, version]);
    }
    return taken;
  }

  /** The versions the workers live at `now` run, as `versionKey`s. */
  #liveVersions(now: number): Set<string> {
    const live = new Set<string>();
    for (const { versions } of this.#sql.liveVersions.all(now) as { versions: string }[]) {
      for (const [workflow, version] of JSON.parse(versions) as [string, string][])
        live.add(versionKey(workflow, version));
    }
    return live;
  }

  /**
   * The i-th copy of the claim's candidates statement: a claim iterates one per version at once,
   * and a statement has one iterator at a time. Prepared on first need, then kept.
   */
  #candidates(i: number): Database.Statement {
    let statement = this.#candidateStatements[i];
    if (statement === undefined) {
      statement = i === 0 ? this.#sql.claimCandidates : this.#db.prepare(this.#sql.claimCandidates.source);
      this.#candidateStatements[i] = statement;
    }
    return statement;
  }

  async announce(workerId: string, versions: Versions, now: number, leaseMs: number): Promise<void> {
    this.#open();
    const row = {
      id: workerId,
      versions: encodeVersions(versions),
      now,
      liveUntil: now + leaseMs,
    };
    await this.#writes.run(() => {
      this.#sql.announceWorker.run(row);
      this.#sql.forgetWorkers.run({ before: now - FORGET_WORKERS_MS });
    });
  }

  async retire(workerId: string): Promise<void> {
    this.#open();
    await this.#writes.run(() => {
      this.#sql.retireWorker.run(workerId);
    });
  }

  async renew(
    workerId: string,
    runIds: readonly string[],
    leaseMs: number,
    now: number,
  ): Promise<{ held: string[]; cancelRequested: string[] }> {
    this.#open();
    return this.#writes.run(() => {
      const rows = this.#sql.renew.all({
        ids: JSON.stringify(runIds),
        workerId,
        expiresAt: now + leaseMs,
      }) as Row[];
      const held = new Set(rows.map((r) => r.id as string));
      const cancel = new Set(rows.filter((r) => r.cancel_requested !== null).map((r) => r.id as string));
      // In the caller's order, whatever order SQLite returned them in.
      return {
        held: runIds.filter((id) => held.has(id)),
        cancelRequested: runIds.filter((id) => cancel.has(id)),
      };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Commits

  async commit(changes: readonly Change[], now: number): Promise<CommitResult> {
    this.#open();
    return this.#writes.run((topics) => this.#commit(changes, now, topics));
  }

  #commit(changes: readonly Change[], now: number, topics: Set<WakeTopic>): CommitResult {
    const s = this.#sql;
    // The lease guard runs before anything applies, so a run update that releases the lease
    // does not refuse the same worker's step later in the same commit.
    const lost = new Set<string>();
    for (const change of changes) {
      if (change.kind !== 'step' && change.kind !== 'run') continue;
      if (lost.has(change.runId)) continue;
      const state = s.leaseOwner.get(change.runId) as
        | { lease_owner: string | null; finished_at: number | null }
        | undefined;
      if (!state || state.lease_owner !== change.workerId || state.finished_at !== null)
        lost.add(change.runId);
    }
    const duplicateSteps: { runId: string; name: string }[] = [];
    for (const change of changes) {
      if (lost.has(change.runId)) continue;
      switch (change.kind) {
        case 'step': {
          const { step } = change;
          const inserted = s.insertStep.run(
            change.runId,
            step.name,
            change.runId,
            step.status,
            toJson(step.output),
            toJson(step.error),
            step.attempts,
            step.startedAt,
            step.finishedAt,
          );
          if (inserted.changes === 0) duplicateSteps.push({ runId: change.runId, name: step.name });
          break;
        }
        case 'run':
          this.#updateRun(change.runId, change.update, now, topics);
          break;
        case 'event':
          this.#insertEvent(
            change.runId,
            change.event.type,
            change.event.data,
            change.event.at,
            change.event,
          );
          break;
        case 'consume-signal':
          s.consumeSignal.run(change.signalId, change.runId);
          break;
      }
      topics.add(`run:${change.runId}`);
    }
    return { lostLease: [...lost], duplicateSteps };
  }

  #updateRun(id: string, update: RunUpdate, now: number, topics: Set<WakeTopic>): void {
    const s = this.#sql;
    // A run's dependents hear of its end: read the status before (to see a transition) only when
    // the status may change and there are dependents to tell, which most runs have not.
    const tells =
      update.status !== undefined &&
      (update.status === 'completed' || FAILED.has(update.status)) &&
      s.hasDependents.get(id) !== undefined;
    const before = tells ? (s.runState.get(id) as { status: RunStatus } | undefined) : undefined;
    const final = update.status !== undefined && FINAL.has(update.status);
    s.updateRun.run({
      id,
      now,
      status: update.status ?? null,
      setOutput: update.output !== undefined ? 1 : 0,
      output: toJson(update.output),
      setError: update.error !== undefined ? 1 : 0,
      error: toJson(update.error),
      degraded: update.degraded === undefined ? null : update.degraded ? 1 : 0,
      progress: update.progress ?? null,
      availableAt: update.availableAt ?? null,
      setWaitingFor: update.waitingFor !== undefined ? 1 : 0,
      waitingFor: update.waitingFor ?? null,
      setParkedOn: update.parkedOn !== undefined ? 1 : 0,
      parkedOn: update.parkedOn ?? null,
      release: update.releaseLease || final ? 1 : 0,
      final: final ? 1 : 0,
    });
    // A run given back unfinished (suspended for a shutdown) may be claimable now elsewhere.
    if (update.releaseLease && !final) topics.add('runs');
    if (!before || update.status === undefined || update.status === before.status) return;
    if (update.status === 'completed') this.#releaseDependents(id, now, topics);
    else if (FAILED.has(update.status)) this.#cancelDependents(id, now, topics);
  }

  #releaseDependents(parent: string, now: number, topics: Set<WakeTopic>): void {
    const released = this.#sql.releaseDependents.all({ parent, now }) as Row[];
    for (const row of released) {
      topics.add(`run:${row.id as string}`);
      if (row.pending_parents === 0) topics.add('runs');
    }
  }

  /** Cancels the open dependents of `root`, and theirs, each with an event naming its direct parent. */
  #cancelDependents(root: string, now: number, topics: Set<WakeTopic>): void {
    const s = this.#sql;
    const stack = [root];
    for (let parent = stack.pop(); parent !== undefined; parent = stack.pop()) {
      const status = (s.runState.get(parent) as { status: RunStatus } | undefined)?.status ?? 'cancelled';
      for (const row of s.openDependents.all(parent) as Row[]) {
        const id = row.id as string;
        s.cancelRun.run({ id, now, error: toJson(cancelledError({ parent, status })) });
        this.#insertEvent(id, 'run:cancelled', parentCancelledData(parent, status, contextOf(row)), now);
        topics.add(`run:${id}`);
        stack.push(id);
      }
    }
  }

  #insertEvent(
    runId: string,
    type: string,
    data: Json | undefined,
    at: number,
    event?: { step: string | undefined; progress: number },
  ): void {
    this.#sql.insertEvent.run(
      runId,
      type,
      event?.step ?? null,
      toJson(data),
      event?.progress ?? this.#progressOf(runId),
      at,
    );
  }

  /** Events the store writes itself carry the run's progress at the time. */
  #progressOf(runId: string): number {
    const row = this.#sql.runState.get(runId) as { progress: number } | undefined;
    return row?.progress ?? 0;
  }

  async steps(runId: string): Promise<StepRecord[]> {
    this.#open();
    return (this.#sql.steps.all(runId) as Row[]).map(read.step);
  }

  async events(runId: string, afterSeq = 0, limit?: number): Promise<TimelineEvent[]> {
    this.#open();
    return (this.#sql.events.all(runId, afterSeq, limit ?? -1) as Row[]).map(read.event);
  }

  // -------------------------------------------------------------------------------------------
  // Signals, cancellation, retention

  async signal(runId: string, name: string, payload: Json, now: number): Promise<boolean> {
    this.#open();
    return this.#writes.run((topics) => {
      const s = this.#sql;
      const state = s.runState.get(runId) as { finished_at: number | null } | undefined;
      if (!state || state.finished_at !== null) return false;
      s.insertSignal.run(runId, name, JSON.stringify(payload ?? null), now);
      if (s.wakeWaiting.run({ id: runId, name, now }).changes > 0) topics.add('runs');
      topics.add(`run:${runId}`);
      return true;
    });
  }

  async signals(runId: string, name: string): Promise<Signal[]> {
    this.#open();
    return (this.#sql.signals.all(runId, name) as Row[]).map(read.signal);
  }

  async requestCancel(runId: string, reason: string, now: number): Promise<boolean> {
    this.#open();
    return this.#writes.run((topics) => {
      const s = this.#sql;
      const state = s.runState.get(runId) as Row | undefined;
      if (!state || state.finished_at !== null) return false;
      topics.add(`run:${runId}`);
      if (state.lease_owner !== null && ((state.lease_expires_at as number | null) ?? 0) > now) {
        s.requestCancel.run({ id: runId, reason, now });
        return true;
      }
      if (s.requestCancelDue.run({ id: runId, reason, now }).changes > 0) {
        topics.add('runs');
        return true;
      }
      s.cancelRun.run({ id: runId, now, error: toJson(cancelledError(reason)) });
      this.#insertEvent(runId, 'run:cancelled', reasonData(reason, contextOf(state)), now);
      this.#cancelDependents(runId, now, topics);
      return true;
    });
  }

  async prune(before: number): Promise<number> {
    this.#open();
    return this.#writes.run(() => this.#sql.prune.run({ before }).changes);
  }

  async retryRun(runId: string, reason: string, now: number): Promise<RetryOutcome> {
    this.#open();
    return this.#writes.run((topics) => {
      const s = this.#sql;
      const state = s.runState.get(runId) as Row | undefined;
      if (!state) return 'unknown';
      if (!FAILED.has(state.status as RunStatus)) return 'not-retryable';
      s.deleteRetriedSteps.run({ id: runId });
      const row = s.requeueRun.get({ id: runId, now }) as { pending_parents: number };
      this.#insertEvent(runId, 'run:retried', reasonData(reason, contextOf(state)), now);
      topics.add(`run:${runId}`);
      if (row.pending_parents === 0) topics.add('runs');
      return 'retried';
    });
  }

  // -------------------------------------------------------------------------------------------
  // Audit, feed and counts

  async appendAudit(entry: NewAuditEntry): Promise<AuditEntry> {
    this.#open();
    checkAuditEntry(entry);
    const row = auditRow(entry, toJson);
    const id = await this.#writes.run(() => (this.#sql.insertAudit.get(row) as { id: number }).id);
    return read.audit({ ...row, id });
  }

  async listAudit(filter?: ListAuditFilter): Promise<AuditEntry[]> {
    this.#open();
    return (this.#sql.listAudit.all(auditPage(filter)) as Row[]).map(read.audit);
  }

  async runFeed(afterSeq: number, limit: number): Promise<FeedEvent[]> {
    this.#open();
    // One writer at a time, each taking the next seq inside its transaction: events commit in
    // seq order, so a cursor never skips one that commits later.
    return (this.#sql.runFeed.all(afterSeq, limit) as Row[]).map(read.feed);
  }

  async latestSeq(): Promise<number> {
    this.#open();
    return (this.#sql.latestSeq.get() as { seq: number }).seq;
  }

  async countRuns(): Promise<RunCount[]> {
    this.#open();
    return this.#sql.countRuns.all() as RunCount[];
  }

  subscribe(listener: (topic: WakeTopic) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #emit(topic: WakeTopic): void {
    for (const listener of this.#listeners) {
      try {
        listener(topic);
      } catch (error) {
        // A faulty listener must not stop the others nor fail the write that woke it.
        process.emitWarning(`A workflow store listener threw: ${String(error)}`, 'BulwarkWarning');
      }
    }
  }

  #open(): void {
    if (this.#closed) throw new StoreClosedError(this.dialect);
  }
}

// ---------------------------------------------------------------------------------------------
// Rows to records

/** The parameters of the run filters and searches (those a statement does not use are ignored). */
function runFilter(filter: ListRunsFilter) {
  const search = filter.search;
  const text = search !== undefined && 'text' in search ? search.text : null;
  return {
    statuses: filter.status ? JSON.stringify(filter.status) : null,
    workflow: filter.workflow ?? null,
    text,
    textEnd: text === null ? null : prefixEnd(text),
    path: search !== undefined && 'path' in search ? jsonPath(search.path) : null,
    equals: search !== undefined && 'path' in search ? search.equals : null,
  };
}

/** `['a', 'b']` → `$."a"."b"`: SQLite's JSON path, each key quoted. */
function jsonPath(path: readonly string[]): string {
  return `$${path.map((key) => `."${key.replaceAll('"', '\\"')}"`).join('')}`;
}

/** JSON text for a column; `undefined` is SQL NULL (and reads back as `undefined`). */
function toJson(value: Json | StoredError | undefined): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** The stores' JSON columns, read back (NULL is undefined). */
const read = rowReader((text) => fromJson<Json>(text));

function fromJson<T>(text: unknown): T | undefined {
  return text === null || text === undefined ? undefined : (JSON.parse(text as string) as T);
}

/** A worker's versions as the JSON `[workflow, version]` pairs the claim statements read. */
const encodeVersions = versionsEncoder((versions) =>
  JSON.stringify(
    Object.entries(versions).flatMap(([workflow, list]) => list.map((v): [string, string] => [workflow, v])),
  ),
);

/** A workflow version as one string, for sets of them. */
function versionKey(workflow: string, version: string): string {
  return `${version.length}:${version}:${workflow}`;
}

/** Claim order: priority (highest first), then creation time, then id. */
function claimsBefore(a: Row, b: Row): boolean {
  if (a.priority !== b.priority) return (a.priority as number) > (b.priority as number);
  if (a.created_at !== b.created_at) return (a.created_at as number) < (b.created_at as number);
  return (a.id as string) < (b.id as string);
}

function counts(rows: Row[]): Map<string, number> {
  return new Map(rows.map((row) => [row.name as string, row.n as number]));
}
