// Every SQL statement of the SQLite store, in one place. Table names are escaped once, here;
// the store prepares each statement once, after migrating.

/** A table prefix is used inside quoted identifiers, so it is kept to a safe alphabet. */
export const PREFIX_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Quotes an identifier for SQLite (doubling any quote, though the prefix check leaves none). */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Replaces `{{prefix}}` in a migration file's text. */
export function withPrefix(sql: string, prefix: string): string {
  return sql.replaceAll('{{prefix}}', prefix);
}

/** Columns of a run, in the order `toRun` reads them (one list, so every query returns the same shape). */
const RUN_COLUMNS = `id, workflow, version, status, priority, input, output, error, degraded, progress,
  idempotency_key, parent_run_id, concurrency_key, pending_parents, available_at, waiting_for,
  lease_owner, lease_expires_at, cancel_requested, deadline_at, correlation_id, traceparent,
  created_at, updated_at, finished_at`;

export function sqliteSql(prefix: string) {
  const runs = ident(`${prefix}runs`);
  const deps = ident(`${prefix}run_deps`);
  const steps = ident(`${prefix}steps`);
  const events = ident(`${prefix}events`);
  const signals = ident(`${prefix}signals`);
  const audit = ident(`${prefix}audit`);
  const workers = ident(`${prefix}workers`);
  const ticks = ident(`${prefix}schedule_ticks`);
  const migrations = ident(`${prefix}migrations`);
  const sequences = 'sqlite_sequence';
  const readyIndex = ident(`${prefix}runs_ready_by`);
  const dueIndex = ident(`${prefix}runs_due`);
  const leasedIndex = ident(`${prefix}runs_leased`);
  const feedIndex = ident(`${prefix}events_run_feed`);
  const parkedIndex = ident(`${prefix}runs_parked`);

  const filters = `(@statuses IS NULL OR status IN (SELECT value FROM json_each(@statuses)))
        AND (@workflow IS NULL OR workflow = @workflow)`;
  // A run id by its beginning (a range of the primary key), a correlation id, an idempotency key.
  const textMatch = `id IN (
          SELECT id FROM ${runs} WHERE id >= @text AND id < @textEnd
          UNION SELECT id FROM ${runs} WHERE correlation_id = @text
          UNION SELECT id FROM ${runs} WHERE idempotency_key = @text)`;
  // The input's value at a path, as text; booleans as JSON writes them (SQLite has no boolean).
  const inputMatch = `CASE json_type(input, @path) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
          ELSE CAST(json_extract(input, @path) AS TEXT) END = @equals`;
  const listRuns = (match: string) => `SELECT ${RUN_COLUMNS} FROM ${runs}
      WHERE ${filters} ${match}
        AND (@before IS NULL OR (created_at, id) < (SELECT created_at, id FROM ${runs} WHERE id = @before))
      ORDER BY created_at DESC, id DESC
      LIMIT @limit OFFSET @offset`;
  // A run on a version this worker runs (@versions: [workflow, version] pairs), or on one no
  // live worker runs (gone: the claiming engine fails it). Without @versions, any version.
  const versionMatch = `(@versions IS NULL
          OR EXISTS (SELECT 1 FROM json_each(@versions) AS v WHERE v.value ->> 0 = workflow AND v.value ->> 1 = version)
          OR NOT EXISTS (SELECT 1 FROM ${workers} AS w, json_each(w.versions) AS v
            WHERE w.live_until > @now AND v.value ->> 0 = workflow AND v.value ->> 1 = version))`;
  const totalRuns = (match: string) => `SELECT count(*) AS n FROM ${runs} WHERE ${filters} ${match}`;

  return {
    // -- migrations ------------------------------------------------------------------------
    createMigrations: `CREATE TABLE IF NOT EXISTS ${migrations} (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at INTEGER NOT NULL
    ) STRICT`,
    appliedMigrations: `SELECT version FROM ${migrations} ORDER BY version`,
    // The one place the store reads the time: when a migration ran is bookkeeping, not scheduling.
    recordMigration: `INSERT INTO ${migrations} (version, name, applied_at)
      VALUES (?, ?, CAST(unixepoch('subsec') * 1000 AS INTEGER))`,

    // -- runs ------------------------------------------------------------------------------
    getRun: `SELECT ${RUN_COLUMNS} FROM ${runs} WHERE id = ?`,
    runByKey: `SELECT id, status FROM ${runs} WHERE idempotency_key = ?`,
    runState: `SELECT status, progress, finished_at, lease_owner, lease_expires_at, correlation_id, traceparent
      FROM ${runs} WHERE id = ?`,
    insertRun: `INSERT INTO ${runs} (
        id, workflow, version, status, priority, input, error, idempotency_key, parent_run_id,
        concurrency_key, pending_parents, available_at, deadline_at, correlation_id, traceparent,
        lease_owner, lease_expires_at, created_at, updated_at, finished_at)
      VALUES (
        @id, @workflow, @version, @status, @priority, @input, @error, @idempotencyKey, @parentRunId,
        @concurrencyKey, @pendingParents, @availableAt, @deadlineAt, @correlationId, @traceparent,
        @leaseOwner, @leaseExpiresAt, @now, @now, @finishedAt)`,
    // A tick recorded later than this one (a catch-up behind a live tick) stays.
    recordTick: `INSERT INTO ${ticks} (schedule, tick, run_id) VALUES (?, ?, ?)
      ON CONFLICT (schedule) DO UPDATE SET tick = excluded.tick, run_id = excluded.run_id
      WHERE excluded.tick > tick`,
    lastTick: `SELECT tick FROM ${ticks} WHERE schedule = ?`,
    insertDep: `INSERT OR IGNORE INTO ${deps} (parent_id, child_id) VALUES (?, ?)`,

    // Newest first; `before` pages by (created_at, id) of the run named, `offset` by position
    // (walking the runs_created index over the skipped runs). One statement per kind
    // of search, so that each has its own plan: a search reads the few rows its index finds.
    listRuns: listRuns(''),
    listRunsText: listRuns(`AND ${textMatch}`),
    listRunsInput: listRuns(`AND ${inputMatch}`),
    totalRuns: totalRuns(''),
    totalRunsText: totalRuns(`AND ${textMatch}`),
    totalRunsInput: totalRuns(`AND ${inputMatch}`),

    // -- parked runs -----------------------------------------------------------------------
    // Through the parked index; each run's step and time from its last `step:parked` event,
    // found by walking its events back from the newest.
    parkedRuns: `SELECT r.id, r.workflow, r.available_at, e.step, e.data, e.at
      FROM ${runs} r INDEXED BY ${parkedIndex}
      LEFT JOIN ${events} e ON e.seq = (
        SELECT x.seq FROM ${events} x WHERE x.run_id = r.id AND x.type = 'step:parked'
        ORDER BY x.seq DESC LIMIT 1)
      WHERE r.parked_on = ? AND r.status = 'waiting'
      ORDER BY r.available_at, r.id LIMIT ?`,
    parkedTotal: `SELECT count(*) AS n FROM ${runs} INDEXED BY ${parkedIndex}
      WHERE parked_on = ? AND status = 'waiting'`,
    parkedCounts: `SELECT parked_on AS name, count(*) AS n FROM ${runs} INDEXED BY ${parkedIndex}
      WHERE parked_on IS NOT NULL AND status = 'waiting' GROUP BY parked_on`,
    // The circuit may let calls through again: due now. parked_on stays until a claim clears it.
    wakeParked: `UPDATE ${runs} INDEXED BY ${parkedIndex} SET available_at = @now, updated_at = @now
      WHERE parked_on = @dependency AND status = 'waiting' AND available_at > @now`,

    // -- claim -----------------------------------------------------------------------------
    // The versions of the workflows asked for (@workflows) that have queued runs, one seek of
    // the index each (a loose scan), however many runs each has; in one statement for them all.
    queuedVersions: `WITH RECURSIVE found (workflow, version) AS (
        SELECT w.value, (SELECT min(version) FROM ${runs} INDEXED BY ${readyIndex}
          WHERE workflow = w.value AND status = 'queued' AND pending_parents = 0 AND lease_owner IS NULL)
        FROM json_each(@workflows) AS w
        UNION ALL
        SELECT found.workflow, (SELECT min(version) FROM ${runs} INDEXED BY ${readyIndex}
          WHERE workflow = found.workflow AND status = 'queued' AND pending_parents = 0
            AND lease_owner IS NULL AND version > found.version)
        FROM found WHERE found.version IS NOT NULL)
      SELECT workflow, version FROM found WHERE version IS NOT NULL`,
    // The workflow versions the live workers run, for a claim that meets a version not its own.
    liveVersions: `SELECT versions FROM ${workers} WHERE live_until > ?`,
    // One workflow version's queued runs, in claim order; the caller merges the versions it
    // takes and stops at its limit.
    claimCandidates: `SELECT ${RUN_COLUMNS} FROM ${runs} INDEXED BY ${readyIndex}
      WHERE workflow = @workflow AND version = @version
        AND status = 'queued' AND pending_parents = 0 AND lease_owner IS NULL
        AND available_at <= @now
      ORDER BY priority DESC, created_at, id`,
    // Waiting runs now due (a timer ended, an event came), soonest first, at most @limit: only
    // those due are read, however many wait for later. Merged into the claim order by the caller.
    dueCandidates: `SELECT ${RUN_COLUMNS} FROM ${runs} INDEXED BY ${dueIndex}
      WHERE status = 'waiting' AND lease_owner IS NULL AND available_at <= @now
        AND pending_parents = 0
        AND workflow IN (SELECT value FROM json_each(@workflows)) AND ${versionMatch}
      ORDER BY available_at LIMIT @limit`,
    // Runs whose worker let the lease expire (it died): few, merged into the order by the caller.
    expiredCandidates: `SELECT ${RUN_COLUMNS} FROM ${runs} INDEXED BY ${leasedIndex}
      WHERE lease_owner IS NOT NULL AND lease_expires_at <= @now
        AND finished_at IS NULL AND pending_parents = 0 AND available_at <= @now
        AND workflow IN (SELECT value FROM json_each(@workflows)) AND ${versionMatch}
      ORDER BY priority DESC, created_at, id`,
    leasedByWorkflow: `SELECT workflow AS name, count(*) AS n FROM ${runs}
      WHERE lease_owner IS NOT NULL AND lease_expires_at > ? GROUP BY workflow`,
    leasedByKey: `SELECT concurrency_key AS name, count(*) AS n FROM ${runs}
      WHERE lease_owner IS NOT NULL AND lease_expires_at > ? AND concurrency_key IS NOT NULL
      GROUP BY concurrency_key`,
    leaseRun: `UPDATE ${runs}
      SET status = CASE WHEN status IN ('queued', 'waiting') THEN 'running' ELSE status END,
          lease_owner = @workerId, lease_expires_at = @expiresAt, updated_at = @now,
          -- Claimed: a parked run is trying its dependency again.
          parked_on = NULL
      WHERE id = @id`,

    // -- workers ---------------------------------------------------------------------------
    // An announcement older than the one stored (two in flight) changes nothing.
    announceWorker: `INSERT INTO ${workers} (id, versions, seen_at, live_until)
      VALUES (@id, @versions, @now, @liveUntil)
      ON CONFLICT (id) DO UPDATE SET versions = excluded.versions, seen_at = excluded.seen_at,
        live_until = excluded.live_until
      WHERE excluded.seen_at >= seen_at`,
    forgetWorkers: `DELETE FROM ${workers} WHERE live_until < @before`,
    retireWorker: `DELETE FROM ${workers} WHERE id = ?`,

    // -- renew -----------------------------------------------------------------------------
    renew: `UPDATE ${runs} SET lease_expires_at = @expiresAt
      WHERE id IN (SELECT value FROM json_each(@ids)) AND lease_owner = @workerId AND finished_at IS NULL
      RETURNING id, cancel_requested`,

    // -- commit ----------------------------------------------------------------------------
    leaseOwner: `SELECT lease_owner, finished_at FROM ${runs} WHERE id = ?`,
    hasSteps: `SELECT 1 FROM ${steps} WHERE run_id = ? LIMIT 1`,
    // One statement for every RunUpdate: each `set*` flag says whether the field was given.
    updateRun: `UPDATE ${runs} SET
        status           = coalesce(@status, status),
        output           = CASE WHEN @setOutput THEN @output ELSE output END,
        error            = CASE WHEN @setError THEN @error ELSE error END,
        degraded         = coalesce(@degraded, degraded),
        progress         = coalesce(@progress, progress),
        -- A run given back with a cancel pending is due at once: its worker, suspending before its
        -- next heartbeat, never heard of the request, and the next claim is where it is acted on
        -- (a wait without a timeout would otherwise keep it forever). A signal that came while
        -- the worker was deciding to wait makes the wait end at once too.
        available_at     = CASE
          WHEN @release AND cancel_requested IS NOT NULL THEN @now
          WHEN @setWaitingFor AND @waitingFor IS NOT NULL AND EXISTS (
            SELECT 1 FROM ${signals} s WHERE s.run_id = @id AND s.name = @waitingFor)
          THEN @now
          ELSE coalesce(@availableAt, available_at) END,
        waiting_for      = CASE WHEN @setWaitingFor THEN @waitingFor ELSE waiting_for END,
        parked_on        = CASE WHEN @setParkedOn THEN @parkedOn ELSE parked_on END,
        lease_owner      = CASE WHEN @release THEN NULL ELSE lease_owner END,
        lease_expires_at = CASE WHEN @release THEN NULL ELSE lease_expires_at END,
        finished_at      = CASE WHEN @final THEN coalesce(finished_at, @now) ELSE finished_at END,
        updated_at       = @now
      WHERE id = @id`,
    // The two most frequent writes take positional values: binding by name looks each one up,
    // about a fifth of a small insert's cost. (The run id twice: for the row and for its seq.)
    insertStep: `INSERT INTO ${steps}
        (run_id, name, seq, status, output, error, attempts, started_at, finished_at)
      VALUES (?, ?, (SELECT coalesce(max(seq) + 1, 0) FROM ${steps} WHERE run_id = ?),
        ?, ?, ?, ?, ?, ?)
      ON CONFLICT (run_id, name) DO NOTHING`,
    insertEvent: `INSERT INTO ${events} (run_id, type, step, data, progress, at)
      VALUES (?, ?, ?, ?, ?, ?)`,
    consumeSignal: `DELETE FROM ${signals} WHERE id = ? AND run_id = ?`,

    // Whether a run has dependents at all: most have none, and this costs a tenth of the update below.
    hasDependents: `SELECT 1 FROM ${deps} WHERE parent_id = ? LIMIT 1`,
    // A completed parent: each dependent has one parent fewer; at 0 it is available now.
    releaseDependents: `UPDATE ${runs}
      SET pending_parents = pending_parents - 1,
          available_at = CASE WHEN pending_parents = 1 THEN @now ELSE available_at END,
          updated_at = @now
      WHERE id IN (SELECT child_id FROM ${deps} WHERE parent_id = @parent) AND finished_at IS NULL
      RETURNING id, pending_parents`,
    openDependents: `SELECT d.child_id AS id, r.correlation_id, r.traceparent
      FROM ${deps} d JOIN ${runs} r ON r.id = d.child_id
      WHERE d.parent_id = ? AND r.finished_at IS NULL`,
    cancelRun: `UPDATE ${runs}
      SET status = 'cancelled', error = @error, finished_at = @now, updated_at = @now,
          lease_owner = NULL, lease_expires_at = NULL
      WHERE id = @id AND finished_at IS NULL`,
    requestCancel: `UPDATE ${runs} SET cancel_requested = @reason, updated_at = @now WHERE id = @id`,
    // No worker holds it, but it has run (it has steps): due now, so that a worker claims it,
    // replays it and compensates what it did before it ends it cancelled.
    requestCancelDue: `UPDATE ${runs} SET cancel_requested = @reason, available_at = @now, updated_at = @now
      WHERE id = @id AND pending_parents = 0 AND EXISTS (SELECT 1 FROM ${steps} WHERE run_id = @id)`,

    // -- reads -----------------------------------------------------------------------------
    steps: `SELECT run_id, name, seq, status, output, error, attempts, started_at, finished_at
      FROM ${steps} WHERE run_id = ? ORDER BY seq`,
    events: `SELECT seq, run_id, type, step, data, progress, at FROM ${events}
      WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`,

    // -- signals ---------------------------------------------------------------------------
    insertSignal: `INSERT INTO ${signals} (run_id, name, payload, created_at) VALUES (?, ?, ?, ?)`,
    wakeWaiting: `UPDATE ${runs} SET available_at = @now, updated_at = @now
      WHERE id = @id AND status = 'waiting' AND waiting_for = @name`,
    signals: `SELECT id, run_id, name, payload, created_at FROM ${signals}
      WHERE run_id = ? AND name = ? ORDER BY id`,

    // -- retry -----------------------------------------------------------------------------
    // The failed records, and those of steps whose compensation completed since the last retry
    // (their effects were undone) with the compensations' own: the replay runs them again.
    deleteRetriedSteps: `WITH since AS (
        SELECT coalesce(max(seq), 0) AS seq FROM ${events} WHERE run_id = @id AND type = 'run:retried'),
      undone AS (
        SELECT e.step AS name FROM ${events} e, since
        WHERE e.run_id = @id AND e.type = 'compensation:completed' AND e.seq > since.seq
          AND e.step IS NOT NULL)
      DELETE FROM ${steps}
      WHERE run_id = @id AND (status = 'failed'
        OR name IN (SELECT name FROM undone)
        OR name IN (SELECT 'compensate:' || name FROM undone)
        -- A wait that got no event (it timed out, or the run was cancelled while it waited)
        -- waits afresh: its recorded deadline goes.
        OR (name LIKE 'wait:%' AND NOT EXISTS (SELECT 1 FROM ${steps} x
          WHERE x.run_id = @id AND x.name = 'event:' || substr(${steps}.name, 6) AND x.status = 'completed')))`,
    // Queued again as if new; it waits for the parents that have not completed (a parent that
    // failed must be retried and complete first).
    requeueRun: `UPDATE ${runs} SET
        status = 'queued', output = NULL, error = NULL, finished_at = NULL, cancel_requested = NULL,
        lease_owner = NULL, lease_expires_at = NULL, waiting_for = NULL,
        available_at = @now, updated_at = @now,
        pending_parents = (
          SELECT count(*) FROM ${deps} d JOIN ${runs} p ON p.id = d.parent_id
          WHERE d.child_id = @id AND p.status <> 'completed')
      WHERE id = @id
      RETURNING pending_parents`,

    // -- feed and counts -------------------------------------------------------------------
    // The `type LIKE 'run:%'` term is the feed index's own, which lets SQLite use it.
    runFeed: `SELECT e.seq, e.run_id, e.type, e.step, e.data, e.progress, e.at, r.workflow
      FROM ${events} e INDEXED BY ${feedIndex} JOIN ${runs} r ON r.id = e.run_id
      WHERE e.type LIKE 'run:%' AND e.seq > ?
      ORDER BY e.seq LIMIT ?`,
    // AUTOINCREMENT keeps the last seq handed out here, even after its events were pruned.
    latestSeq: `SELECT coalesce((SELECT seq FROM ${sequences} WHERE name = '${prefix}events'), 0) AS seq`,
    countRuns: `SELECT workflow, status, count(*) AS count, min(created_at) AS oldestCreatedAt FROM ${runs}
      GROUP BY workflow, status ORDER BY workflow, status`,

    // -- audit -----------------------------------------------------------------------------
    insertAudit: `INSERT INTO ${audit} (at, actor, role, action, target, request_id, data, outcome)
      VALUES (@at, @actor, @role, @action, @target, @request_id, @data, @outcome)
      RETURNING id`,
    listAudit: `SELECT id, at, actor, role, action, target, request_id, data, outcome FROM ${audit}
      WHERE (@before IS NULL OR id < @before)
      ORDER BY id DESC LIMIT @limit`,

    // -- retention -------------------------------------------------------------------------
    // Steps, events, signals and dependency links go with their run (ON DELETE CASCADE).
    // A parent that did not complete is kept while a run that depends on it is (and its own such
    // parents with it): pruned, it would take the dependency along, and a retry of the dependent
    // would run at once instead of waiting for it. A completed parent released its dependents.
    prune: `WITH RECURSIVE held (id) AS (
        SELECT d.parent_id FROM ${deps} d JOIN ${runs} c ON c.id = d.child_id
          JOIN ${runs} p ON p.id = d.parent_id
        WHERE (c.finished_at IS NULL OR c.finished_at >= @before) AND p.status <> 'completed'
        UNION
        SELECT d.parent_id FROM ${deps} d JOIN held h ON d.child_id = h.id
          JOIN ${runs} p ON p.id = d.parent_id
        WHERE p.status <> 'completed')
      DELETE FROM ${runs} WHERE finished_at IS NOT NULL AND finished_at < @before
        AND id NOT IN (SELECT id FROM held)`,
  } as const;
}

export type SqliteSql = ReturnType<typeof sqliteSql>;
