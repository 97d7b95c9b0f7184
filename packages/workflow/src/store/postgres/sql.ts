// Every statement the PostgreSQL store sends, in one place. The schema is quoted once, when the
// store is built; everything else travels as a parameter (batches as one JSON array, read with
// json_to_recordset: parsing it as jsonb first would build and key-sort every object, for nothing).
import { createHash } from 'node:crypto';

/** A statement and the name it is prepared under (per connection, so it is parsed once). */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

const UNFINISHED = `('queued', 'running', 'waiting', 'compensating')`;
const FINAL = `('completed', 'failed', 'cancelled', 'compensated')`;

/**
 * Planner settings for the write transactions. Their statements touch a few rows each, by key, in
 * tables that only grow; a plan cached while a table was small (a fresh schema, or before
 * autovacuum's first ANALYZE) would scan or hash the whole table on every commit from then on
 * (3-9 ms a statement at 20,000 steps, growing with the table). Index lookups are right at any size.
 */
const INDEX_SETTINGS = ['enable_seqscan', 'enable_hashjoin', 'enable_mergejoin'];

/** The settings for a transaction, as SQL to send with its BEGIN (`SET` for a whole session). */
export const INDEX_PLANS = INDEX_SETTINGS.map((name) => `SET LOCAL ${name} = off; `).join('');

/**
 * The claims' planner settings besides those above, for a transaction (`SET` for a session).
 * One generic plan: left to choose, PostgreSQL plans a claim afresh every time (0.7 ms, more
 * than the claim itself), since it estimates the generic plan of the versions' lookup higher
 * than one planned with the workflows given. No index-only scans: the lookup would read the
 * index alone, and while runs are claimed fast it stepped over the entries of runs claimed
 * since, 3-6 ms a claim (a plain index scan marks them dead for the next: PostgreSQL's CPU per
 * run in a burst doubled with it, `npm run bench:workflow-cpu -- postgres three 10000 burst`).
 */
export const CLAIM_PLANS =
  'SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_indexonlyscan = off; ';

/**
 * A workflow version (`w`: the alias of a row with `workflow` and `version`) that this worker runs
 * (`versions`: the placeholder of a jsonb { workflow: [versions] }), or that no worker live at $3
 * runs (gone: the claiming engine fails its runs). With null, any version.
 */
function versionMatch(versions: string, w: string): string {
  return `(${versions}::jsonb IS NULL
          OR ((${versions}::jsonb -> ${w}.workflow) ? ${w}.version)
          OR NOT EXISTS (SELECT 1 FROM %s.workers AS l
            WHERE l.live_until > $3::bigint AND ((l.versions -> ${w}.workflow) ? ${w}.version)))`;
}

/**
 * The runs a claim may take ($2 workflows, at $3), from three indexes, each read only as far as
 * `limit` (SQL) and `extra` (more conditions) need: queued runs of each version taken, in claim
 * order (runs_ready_by: the versions queued found by one seek each, then each version's runs);
 * waiting runs now due, soonest first (runs_due), never those waiting for later; and runs whose
 * worker let the lease expire (runs_leased). `lock` locks what is read, skipping what another
 * claim holds. The caller orders the union by priority, then age, then id.
 */
function claimSources(limit: string, extra: string, lock: string, versions: string): string {
  const columns = 'r.id, r.workflow, r.concurrency_key, r.priority, r.created_at, r.lease_owner';
  const common = `r.pending_parents = 0 AND r.workflow = ANY ($2::text[]) AND r.available_at <= $3
          AND ${versionMatch(versions, 'r')} ${extra}`;
  const queued = `r.status = 'queued' AND r.pending_parents = 0`;
  return `
      queued_versions AS (
        SELECT q.workflow, v.version FROM unnest($2::text[]) AS q (workflow)
        CROSS JOIN LATERAL (
          WITH RECURSIVE found (version) AS (
            (SELECT r.version FROM %s.runs AS r WHERE r.workflow = q.workflow AND ${queued}
              ORDER BY r.version LIMIT 1)
            UNION ALL
            SELECT (SELECT r.version FROM %s.runs AS r
                WHERE r.workflow = q.workflow AND ${queued} AND r.version > f.version
                ORDER BY r.version LIMIT 1)
            FROM found AS f WHERE f.version IS NOT NULL)
          SELECT version FROM found WHERE version IS NOT NULL) AS v
      ),
      -- Filtered before their runs are read: a version not taken has none of its runs locked.
      taken_versions AS (SELECT * FROM queued_versions AS q WHERE ${versionMatch(versions, 'q')}),
      ready AS (
        SELECT c.* FROM taken_versions AS q
        CROSS JOIN LATERAL (
          SELECT ${columns} FROM %s.runs AS r
          WHERE r.workflow = q.workflow AND r.version = q.version AND ${queued}
            AND r.available_at <= $3 ${extra}
            AND (r.lease_owner IS NULL OR r.lease_expires_at <= $3)
          ORDER BY r.priority DESC, r.created_at, r.id
          LIMIT ${limit} ${lock}) AS c
      ),
      due AS (
        SELECT ${columns} FROM %s.runs AS r
        WHERE r.status = 'waiting' AND ${common}
          AND (r.lease_owner IS NULL OR r.lease_expires_at <= $3)
        ORDER BY r.available_at
        LIMIT ${limit} ${lock}
      ),
      expired AS (
        SELECT ${columns} FROM %s.runs AS r
        WHERE r.lease_owner IS NOT NULL AND r.lease_expires_at <= $3
          AND r.status IN ('running', 'compensating') AND ${common}
        ORDER BY r.lease_expires_at
        LIMIT ${limit} ${lock}
      ),
      claimable AS (SELECT * FROM ready UNION ALL SELECT * FROM due UNION ALL SELECT * FROM expired)`;
}

/** The claimed rows get the lease; a queued or waiting run is running from now on. */
const TAKE_LEASE = `
  UPDATE %s.runs AS r SET
    status = CASE WHEN r.status IN ('queued', 'waiting') THEN 'running' ELSE r.status END,
    lease_owner = $1,
    lease_expires_at = $3::bigint + $5::bigint,
    updated_at = $3,
    -- Claimed: a parked run is trying its dependency again.
    parked_on = NULL
  FROM chosen
  WHERE r.id = chosen.id
  RETURNING r.*, chosen.taken_over,
    EXISTS (SELECT 1 FROM %s.steps AS s WHERE s.run_id = r.id) AS has_steps`;

const FILTERS = `($1::text[] IS NULL OR status = ANY ($1)) AND ($2::text IS NULL OR workflow = $2)`;

/**
 * A run id by its beginning (a range of the "C"-collated primary key), a correlation id or an
 * idempotency key equal to the text `a`; `b` is the end of the prefix range.
 */
function textMatch(a: string, b: string): string {
  return `AND id IN (
        SELECT id FROM %s.runs WHERE id >= ${a}::text AND id < ${b}::text
        UNION SELECT id FROM %s.runs WHERE correlation_id = ${a}::text
        UNION SELECT id FROM %s.runs WHERE idempotency_key = ${a}::text)`;
}

/** The input's value at the path `a` (text[]) equal to `b`, as text (`#>>` writes numbers and booleans as JSON does). */
function inputMatch(a: string, b: string): string {
  return `AND input #>> ${a}::text[] = ${b}::text`;
}

/**
 * Newest first; `before` ($3) pages by (created_at, id) of the run named; $4 is the limit, $5
 * the offset (walking runs_by_creation over the skipped runs).
 */
function listRuns(match: string): string {
  return `
      SELECT * FROM %s.runs
      WHERE ${FILTERS} ${match}
        AND ($3::text IS NULL OR (created_at, id) < (SELECT created_at, id FROM %s.runs WHERE id = $3))
      ORDER BY created_at DESC, id DESC
      LIMIT $4 OFFSET $5`;
}

function totalRuns(match: string): string {
  return `SELECT count(*)::integer AS n FROM %s.runs WHERE ${FILTERS} ${match}`;
}

/**
 * Builds the statements for one schema. `schema` is the identifier already quoted; `tag` keeps
 * the prepared names of two stores on one pool (two schemas) apart.
 */
// The parts of a commit, as statements of their own and merged into one (`applyCommit`); each
// takes the SQL of its parameters.

/** Steps (a JSON array), numbered after each run's last one; a name already recorded is skipped. */
const insertStepsSql = (steps: string) =>
  `
      INSERT INTO %s.steps (run_id, name, seq, status, output, error, attempts, started_at, finished_at)
      SELECT
        n.run_id, n.name,
        coalesce((SELECT max(seq) + 1 FROM %s.steps AS x WHERE x.run_id = n.run_id), 0)
          + row_number() OVER (PARTITION BY n.run_id ORDER BY n.ord) - 1,
        n.status, n.output::jsonb, n.error::jsonb, n.attempts, n.started_at, n.finished_at
      FROM (
        SELECT DISTINCT ON (run_id, name) *
        FROM json_to_recordset(${steps}::json) AS n (
          ord integer, run_id text, name text, status text, output text, error text,
          attempts integer, started_at bigint, finished_at bigint)
        ORDER BY run_id, name, ord
      ) AS n
      WHERE NOT EXISTS (SELECT 1 FROM %s.steps AS x WHERE x.run_id = n.run_id AND x.name = n.name)
      ORDER BY n.ord
      RETURNING run_id, name`;

/** Merged run updates (a JSON array), one row per run; a `set_*` flag tells "set to null" from "leave". */
const updateRunsSql = (updates: string) =>
  `
      UPDATE %s.runs AS r SET
        status           = coalesce(u.status, r.status),
        output           = CASE WHEN u.set_output THEN u.output::jsonb ELSE r.output END,
        error            = CASE WHEN u.set_error THEN u.error::jsonb ELSE r.error END,
        degraded         = coalesce(u.degraded, r.degraded),
        progress         = coalesce(u.progress, r.progress),
        -- A run given back with a cancel pending is due at once: its worker, suspending before its
        -- next heartbeat, never heard of the request, and the next claim is where it is acted on
        -- (a wait without a timeout would otherwise keep it forever). A signal that came while
        -- the worker was deciding to wait makes the wait end at once too.
        available_at     = CASE
          WHEN u.release_lease AND r.cancel_requested IS NOT NULL THEN u.now
          WHEN u.set_waiting_for AND u.waiting_for IS NOT NULL AND EXISTS (
            SELECT 1 FROM %s.signals s
            WHERE s.run_id = r.id AND s.name = u.waiting_for AND s.consumed_at IS NULL)
          THEN u.now
          ELSE coalesce(u.available_at, r.available_at) END,
        waiting_for      = CASE WHEN u.set_waiting_for THEN u.waiting_for ELSE r.waiting_for END,
        parked_on        = CASE WHEN u.set_parked_on THEN u.parked_on ELSE r.parked_on END,
        lease_owner      = CASE WHEN u.release_lease THEN NULL ELSE r.lease_owner END,
        lease_expires_at = CASE WHEN u.release_lease THEN NULL ELSE r.lease_expires_at END,
        finished_at      = CASE WHEN u.finished THEN u.now ELSE r.finished_at END,
        updated_at       = u.now
      FROM json_to_recordset(${updates}::json) AS u (
        id text, now bigint, status text, set_output boolean, output text, set_error boolean,
        error text, degraded boolean, progress double precision, available_at bigint,
        set_waiting_for boolean, waiting_for text, set_parked_on boolean, parked_on text,
        release_lease boolean, finished boolean)
      WHERE r.id = u.id`;

/** New runs (a JSON array), one row each; a taken idempotency key skips the row. */
const insertRunsSql = (runs: string) =>
  `
      INSERT INTO %s.runs (
        id, workflow, version, status, priority, input, error, idempotency_key, parent_run_id,
        concurrency_key, pending_parents, available_at, deadline_at, correlation_id, traceparent,
        lease_owner, lease_expires_at, created_at, updated_at, finished_at)
      SELECT
        n.id, n.workflow, n.version, n.status, n.priority, n.input::jsonb, n.error::jsonb,
        n.idempotency_key, n.parent_run_id, n.concurrency_key, n.pending_parents, n.available_at,
        n.deadline_at, n.correlation_id, n.traceparent, n.lease_owner, n.lease_expires_at, n.now,
        n.now, CASE WHEN n.status = 'cancelled' THEN n.now END
      FROM json_to_recordset(${runs}::json) AS n (
        id text, workflow text, version text, status text, priority integer, input text,
        error text, idempotency_key text, parent_run_id text, concurrency_key text,
        pending_parents integer, available_at bigint, deadline_at bigint, correlation_id text,
        traceparent text, lease_owner text, lease_expires_at bigint, now bigint)
      ON CONFLICT (idempotency_key) DO NOTHING
      RETURNING id, CASE WHEN lease_owner IS NOT NULL THEN input END AS leased_input`;

/** Audit entries (a JSON array of `auditRow`s); those that pass `where`, if given. */
const insertAuditsSql = (audits: string, where = '') =>
  `
      INSERT INTO %s.audit (at, actor, role, action, target, request_id, data, outcome)
      SELECT a.at, a.actor, a.role, a.action, a.target, a.request_id, a.data::jsonb, a.outcome
      FROM json_to_recordset(${audits}::json) AS a (
        at bigint, actor text, role text, action text, target text, request_id text, data text,
        outcome text)
      ${where === '' ? '' : `WHERE ${where}`}`;

/** Timeline events (a JSON array), numbered in the order given; those that pass `where`, if given. */
const insertEventsSql = (events: string, where = '') =>
  `
      INSERT INTO %s.events (run_id, type, step, data, progress, at)
      SELECT e.run_id, e.type, e.step, e.data::jsonb, e.progress, e.at
      FROM json_to_recordset(${events}::json) AS e (
        ord integer, run_id text, type text, step text, data text, progress double precision, at bigint)
      ${where === '' ? '' : `WHERE ${where}`}
      ORDER BY e.ord`;

/** Children of the completed `parents` (text[]) wait for one parent fewer; at 0 they are claimable from `now`. */
const releaseDependentsSql = (parents: string, now: string) =>
  `
      UPDATE %s.runs AS c SET
        pending_parents = c.pending_parents - d.n,
        available_at = CASE WHEN c.pending_parents = d.n THEN ${now} ELSE c.available_at END,
        updated_at = ${now}
      FROM (
        SELECT child_id, count(*) AS n FROM %s.run_deps
        WHERE parent_id = ANY (${parents}::text[]) GROUP BY child_id
      ) AS d
      WHERE c.id = d.child_id AND c.status = 'queued' AND c.pending_parents > 0
        -- The children's ids up front: runs is read by its key, never scanned, whatever the
        -- planner thinks of the table's size.
        AND c.id = ANY (ARRAY(SELECT child_id FROM %s.run_deps WHERE parent_id = ANY (${parents}::text[])))
      RETURNING c.id, c.pending_parents`;

/** A commit's writes in one statement: steps ($1), run updates ($2), events ($3), children of the completed runs ($4, at $5). */
const applyCommitSql = `
      WITH recorded AS (${insertStepsSql('$1')}),
      updated AS (${updateRunsSql('$2')} RETURNING r.id),
      appended AS (${insertEventsSql('$3')} RETURNING seq),
      released AS (${releaseDependentsSql('$4', '$5')})`;

/**
 * A commit in one call and its own transaction, as a function: its statements run one after the
 * other, each with a fresh snapshot (a VOLATILE function's do), as the transaction's would. One
 * statement could not do it: it reads from the snapshot taken before it waited for the runs' locks,
 * so a child enqueued or a signal sent by the transaction it waited for would go unseen.
 * Parameters: applyCommit's ($1-$5); the runs ($6) and the owner each must have ($7: the worker
 * whose lease its changes need, or null for a run that only gets events); the feed lock's key ($8);
 * the NOTIFY channel ($9) and payloads ($10). Writes nothing unless every run is as expected.
 * The planner settings are the write transactions' (see INDEX_PLANS), for the function's cached plans.
 */
const commitFunctionBody = `
  RETURNS TABLE (held boolean, step_runs text[], step_names text[], woke boolean)
  LANGUAGE plpgsql VOLATILE
  ${INDEX_SETTINGS.map((name) => `SET ${name} = off`).join(' ')}
  AS $body$
  DECLARE
    v_held boolean;
    v_runs text[];
    v_names text[];
    v_woke boolean;
  BEGIN
    -- Before the first event's seq, as BEGIN takes it on the transaction path.
    PERFORM pg_advisory_xact_lock_shared(hashtextextended($8, 0));
    SELECT count(*) = cardinality($6) INTO v_held
    FROM (
      SELECT r.id, r.status, r.lease_owner FROM %s.runs AS r
      WHERE r.id = ANY ($6) ORDER BY r.id FOR NO KEY UPDATE
    ) AS l
    JOIN unnest($6, $7) AS e (id, owner) ON e.id = l.id
    WHERE e.owner IS NULL OR (l.lease_owner = e.owner AND l.status NOT IN ${FINAL});
    IF NOT v_held THEN
      RETURN QUERY SELECT false, NULL::text[], NULL::text[], false;
      RETURN;
    END IF;
    ${applyCommitSql},
      stored AS (SELECT array_agg(run_id) AS runs, array_agg(name) AS names FROM recorded)
    SELECT stored.runs, stored.names, EXISTS (SELECT FROM released WHERE pending_parents = 0)
    INTO v_runs, v_names, v_woke
    FROM stored;
    PERFORM pg_notify($9, p) FROM unnest($10) AS p;
    IF v_woke THEN
      PERFORM pg_notify($9, 'runs');
    END IF;
    RETURN QUERY SELECT true, v_runs, v_names, v_woke;
  END
  $body$`;

const COMMIT_PARAMETERS = '(json, json, json, text[], bigint, text[], text[], text, text, text[])';

/** The function as created, but for its name and schema (`%n`, `%s`). */
const commitFunctionText = `CREATE FUNCTION %s.%n ${COMMIT_PARAMETERS} ${commitFunctionBody}`;

/**
 * The commit function's name: a hash of all its text, so that processes on two versions of
 * Bulwark (a rolling deploy) each call their own, and a changed statement or parameter is never
 * run under an old definition.
 */
const commitFunctionName = `apply_commit_${createHash('sha256').update(commitFunctionText).digest('hex').slice(0, 16)}`;

/**
 * Creating the commit function in the schema (run by `migrate()`, under its lock): `exists`
 * ($1, the function's regprocedure text) first, then `create` if it does not. Never replaced:
 * its name says what it is, and only the owner of a function may replace it, while every role
 * that migrates may create one.
 */
export function commitFunctionStatements(schema: string) {
  return {
    signature: `${schema}.${commitFunctionName}${COMMIT_PARAMETERS}`,
    exists: 'SELECT to_regprocedure($1) IS NOT NULL AS present',
    create: commitFunctionText.replaceAll('%s', schema).replace('%n', commitFunctionName),
  };
}

export function statements(schema: string, tag: string) {
  const s = schema;
  const make = (name: string, text: string): Statement => ({
    name: `bulwark_${tag}_${name}`,
    text: text.replaceAll('%s', s).trim(),
  });

  return {
    // -- Runs: reading --------------------------------------------------------------------------

    getRun: make('get_run', `SELECT * FROM %s.runs WHERE id = $1`),

    /** Newest first; each filter is off when its parameter is null. */
    listRuns: make('list_runs', listRuns('')),
    // One statement per kind of search, so that each is planned for it: a search reads the few
    // rows its index finds. The search's two parameters follow the paging's.
    listRunsText: make('list_runs_text', listRuns(textMatch('$6', '$7'))),
    listRunsInput: make('list_runs_input', listRuns(inputMatch('$6', '$7'))),
    totalRuns: make('total_runs', totalRuns('')),
    totalRunsText: make('total_runs_text', totalRuns(textMatch('$3', '$4'))),
    totalRunsInput: make('total_runs_input', totalRuns(inputMatch('$3', '$4'))),

    /** Through the parked index; each run's step and time from its last `step:parked` event. */
    parkedRuns: make(
      'parked_runs',
      `
      SELECT r.id, r.workflow, r.available_at, e.step, e.data, e.at
      FROM %s.runs AS r
      LEFT JOIN LATERAL (
        SELECT x.step, x.data, x.at FROM %s.events AS x
        WHERE x.run_id = r.id AND x.type = 'step:parked' ORDER BY x.seq DESC LIMIT 1) AS e ON true
      WHERE r.parked_on = $1 AND r.status = 'waiting'
      ORDER BY r.available_at, r.id LIMIT $2`,
    ),
    parkedTotal: make(
      'parked_total',
      `SELECT count(*)::integer AS n FROM %s.runs WHERE parked_on = $1 AND status = 'waiting'`,
    ),
    parkedCounts: make(
      'parked_counts',
      `
      SELECT parked_on AS name, count(*)::integer AS n FROM %s.runs
      WHERE parked_on IS NOT NULL AND status = 'waiting' GROUP BY parked_on`,
    ),

    /**
     * The circuit may let calls through again: the runs parked behind it are due now (parked_on
     * stays until a claim clears it), and the workers hear of it in the same transaction.
     */
    wakeParked: make(
      'wake_parked',
      `
      WITH woken AS (
        UPDATE %s.runs SET available_at = $2, updated_at = $2
        WHERE parked_on = $1 AND status = 'waiting' AND available_at > $2
        RETURNING id
      )
      SELECT count(*)::integer AS n,
        CASE WHEN count(*) > 0 THEN pg_notify($3, 'runs') END AS notified
      FROM woken`,
    ),

    steps: make('steps', `SELECT * FROM %s.steps WHERE run_id = $1 ORDER BY seq`),

    /** LIMIT NULL is no limit. */
    events: make('events', `SELECT * FROM %s.events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`),

    signals: make(
      'signals',
      `
      SELECT * FROM %s.signals
      WHERE run_id = $1 AND name = $2 AND consumed_at IS NULL
      ORDER BY id`,
    ),

    // -- Enqueue ------------------------------------------------------------------------------

    runsByIdempotencyKey: make(
      'runs_by_key',
      `SELECT id, status, idempotency_key FROM %s.runs WHERE idempotency_key = ANY ($1::text[])`,
    ),

    /**
     * Parents of new runs, locked so that a parent cannot complete (and release its dependents)
     * between this read and the commit that adds the new edges.
     */
    lockParents: make(
      'lock_parents',
      `SELECT id, status FROM %s.runs WHERE id = ANY ($1::text[]) ORDER BY id FOR SHARE`,
    ),

    /** New runs, one row each; a taken idempotency key skips the row (the caller retries). */
    insertRuns: make('insert_runs', insertRunsSql('$1')),

    /**
     * A lone enqueue of runs without parents, in one round trip and its own transaction: the runs
     * ($1), their first events ($2) and audit entries ($3), the feed lock ($4) taken before any
     * event's seq, and the wake-up ($5 channel, $6 payload) sent on commit. A run whose key was
     * taken writes nothing: `created` counts the runs written, and the caller goes the long way
     * for the rest. `leased` gives the inputs of leased runs as stored (jsonb orders their keys).
     */
    enqueueAlone: make(
      'enqueue_alone',
      `
      WITH feed AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(hashtextextended($4, 0)) AS held),
      created AS (${insertRunsSql('$1')}),
      -- The lock is a one-time filter of the events' insert: held before its first nextval.
      appended AS (${insertEventsSql('$2', 'EXISTS (SELECT FROM feed) AND e.run_id IN (SELECT id FROM created)')}),
      audited AS (${insertAuditsSql('$3', 'a.target IN (SELECT id FROM created)')})
      SELECT count(*)::integer AS created, CASE WHEN count(*) > 0 THEN pg_notify($5, $6) END AS notified,
        json_object_agg(id, leased_input) FILTER (WHERE leased_input IS NOT NULL) AS leased
      FROM created`,
    ),

    /** Audit entries of new runs (a JSON array of `auditRow`s), in one statement. */
    insertAudits: make('insert_audits', insertAuditsSql('$1')),

    insertDeps: make(
      'insert_deps',
      `
      INSERT INTO %s.run_deps (parent_id, child_id)
      SELECT parent_id, child_id FROM unnest($1::text[], $2::text[]) AS d (parent_id, child_id)
      ON CONFLICT DO NOTHING`,
    ),

    /**
     * Each schedule's latest tick that has a run ($1: a JSON array of {schedule, tick, run_id});
     * a later tick recorded already stays. One row a schedule, as ON CONFLICT needs.
     */
    recordTicks: make(
      'record_ticks',
      `
      INSERT INTO %s.schedule_ticks AS t (schedule, tick, run_id)
      SELECT DISTINCT ON (schedule) schedule, tick, run_id
      FROM json_to_recordset($1::json) AS r (schedule text, tick bigint, run_id text)
      ORDER BY schedule, tick DESC
      ON CONFLICT (schedule) DO UPDATE SET tick = excluded.tick, run_id = excluded.run_id
      WHERE excluded.tick > t.tick`,
    ),
    lastTick: make('last_tick', `SELECT tick FROM %s.schedule_ticks WHERE schedule = $1`),

    // -- Claims and leases --------------------------------------------------------------------

    /** Without concurrency limits: the best `$4` claimable runs that no one else is locking ($6 versions). */
    claim: make(
      'claim',
      `
      WITH ${claimSources('$4', '', 'FOR NO KEY UPDATE SKIP LOCKED', '$6')},
      chosen AS (
        SELECT c.id, c.lease_owner IS NOT NULL AS taken_over FROM claimable AS c
        ORDER BY c.priority DESC, c.created_at, c.id
        LIMIT $4
      )
      ${TAKE_LEASE}`,
    ),

    /**
     * With limits ($6 jsonb { workflow: max }, $7 max per concurrency key, or null; $9 versions). The caller
     * holds the claim lock, so the leased counts cannot change under this statement. Workflows
     * and keys already at their limit are not scanned at all; among the `$8` best remaining
     * candidates, each run is ranked within its key, then (among those within their key's
     * limit) within its workflow, and taken while both ranks fit.
     */
    claimWithinLimits: make(
      'claim_limited',
      `
      WITH leased AS (
        SELECT workflow, concurrency_key FROM %s.runs
        WHERE lease_owner IS NOT NULL AND lease_expires_at > $3 AND status IN ${UNFINISHED}
      ),
      workflow_load AS (SELECT workflow, count(*) AS n FROM leased GROUP BY workflow),
      key_load AS (
        SELECT concurrency_key, count(*) AS n FROM leased
        WHERE concurrency_key IS NOT NULL GROUP BY concurrency_key
      ),
      workflow_limit AS (SELECT key AS workflow, value::integer AS max FROM jsonb_each_text($6::jsonb)),${claimSources(
        '$8',
        `AND NOT EXISTS (
            SELECT 1 FROM workflow_limit AS l LEFT JOIN workflow_load AS w USING (workflow)
            WHERE l.workflow = r.workflow AND coalesce(w.n, 0) >= l.max)
          AND (r.concurrency_key IS NULL OR $7::integer IS NULL
            OR coalesce((SELECT n FROM key_load AS k WHERE k.concurrency_key = r.concurrency_key), 0) < $7)`,
        'FOR NO KEY UPDATE OF r SKIP LOCKED',
        '$9',
      )},
      candidates AS (
        SELECT * FROM claimable ORDER BY priority DESC, created_at, id LIMIT $8
      ),
      ranked_in_key AS (
        SELECT c.*, coalesce(k.n, 0) + row_number() OVER (
          PARTITION BY c.concurrency_key ORDER BY c.priority DESC, c.created_at, c.id) AS key_rank
        FROM candidates AS c LEFT JOIN key_load AS k USING (concurrency_key)
      ),
      ranked_in_workflow AS (
        SELECT c.*, coalesce(w.n, 0) + row_number() OVER (
          PARTITION BY c.workflow ORDER BY c.priority DESC, c.created_at, c.id) AS workflow_rank
        FROM ranked_in_key AS c LEFT JOIN workflow_load AS w USING (workflow)
        WHERE c.concurrency_key IS NULL OR $7::integer IS NULL OR c.key_rank <= $7
      ),
      chosen AS (
        SELECT c.id, c.lease_owner IS NOT NULL AS taken_over
        FROM ranked_in_workflow AS c LEFT JOIN workflow_limit AS l USING (workflow)
        WHERE l.max IS NULL OR c.workflow_rank <= l.max
        ORDER BY c.priority DESC, c.created_at, c.id
        LIMIT $4
      )
      ${TAKE_LEASE}`,
    ),

    announceWorker: make(
      'announce_worker',
      `
      WITH forgotten AS (DELETE FROM %s.workers WHERE live_until < $5::bigint AND id <> $1)
      INSERT INTO %s.workers AS w (id, versions, seen_at, live_until) VALUES ($1, $2::jsonb, $3, $4)
      -- An announcement older than the one stored (two in flight) changes nothing.
      ON CONFLICT (id) DO UPDATE SET versions = excluded.versions, seen_at = excluded.seen_at,
        live_until = excluded.live_until
      WHERE excluded.seen_at >= w.seen_at`,
    ),
    retireWorker: make('retire_worker', `DELETE FROM %s.workers WHERE id = $1`),

    renew: make(
      'renew',
      // Rows locked in id order first, as a commit locks them, so the two cannot deadlock.
      `
      WITH held AS (
        SELECT id FROM %s.runs
        WHERE id = ANY ($2::text[]) AND lease_owner = $1 AND status IN ${UNFINISHED}
        ORDER BY id FOR NO KEY UPDATE
      )
      UPDATE %s.runs r SET lease_expires_at = $4::bigint + $3::bigint, updated_at = $4
      FROM held WHERE r.id = held.id
      RETURNING r.id, r.cancel_requested`,
    ),

    // -- Commit -------------------------------------------------------------------------------

    /** Every run a commit touches, locked in id order (so two commits cannot deadlock on them). */
    lockRuns: make(
      'lock_runs',
      `
      SELECT id, status, lease_owner, lease_expires_at, progress FROM %s.runs
      WHERE id = ANY ($1::text[]) ORDER BY id FOR NO KEY UPDATE`,
    ),

    /** Timeline events, numbered in the order given. */
    insertEvents: make('insert_events', insertEventsSql('$1')),

    consumeSignals: make(
      'consume_signals',
      `
      UPDATE %s.signals AS s SET consumed_at = c.now
      FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS c (run_id, id, now)
      WHERE s.id = c.id AND s.run_id = c.run_id AND s.consumed_at IS NULL`,
    ),

    /** Parents that completed: their children wait for one parent fewer, and are claimable now at 0. */
    releaseDependents: make('release_dependents', releaseDependentsSql('$1', '$2')),

    /**
     * A commit's writes in one round trip: steps ($1), run updates ($2), events ($3), and the
     * children of the runs that completed ($4 ids, at $5). Rows: each step recorded
     * (`kind` 'step', `id` its run, `name`), each child released (`kind` 'released', `pending`).
     * The children are queued runs waiting for a parent, never among the runs updated.
     */
    applyCommit: make(
      'apply_commit',
      `${applyCommitSql}
      SELECT 'step' AS kind, run_id AS id, name, NULL::integer AS pending FROM recorded
      UNION ALL
      SELECT 'released', id, NULL, pending_parents FROM released`,
    ),

    /** A commit in one round trip, through the commit function (see `commitFunctionStatements`). */
    applyCommitAlone: make(
      'apply_commit_alone',
      `SELECT * FROM %s.${commitFunctionName} ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    ),

    /**
     * Parents that failed, were cancelled or compensated ($1 ids, $2 their statuses): their
     * dependents, and theirs, are cancelled, each with a `run:cancelled` event naming the
     * parent it followed; its data is `parentCancelledData`'s (store/events.ts), with the run's
     * correlation id and traceparent when it has them.
     */
    cancelDependents: make(
      'cancel_dependents',
      `
      WITH RECURSIVE doomed (id, parent, parent_status) AS (
        SELECT d.child_id, d.parent_id, root.status
        FROM unnest($1::text[], $2::text[]) AS root (id, status)
        JOIN %s.run_deps AS d ON d.parent_id = root.id
        UNION
        SELECT d.child_id, d.parent_id, 'cancelled'
        FROM doomed JOIN %s.run_deps AS d ON d.parent_id = doomed.id
      ),
      victims AS (
        SELECT DISTINCT ON (id) id, parent, parent_status,
          'parent ' || parent || ' ' || parent_status AS reason
        FROM doomed ORDER BY id, parent
      ),
      cancelled AS (
        UPDATE %s.runs AS r SET
          status = 'cancelled',
          error = jsonb_build_object(
            'name', 'RunCancelledError', 'message', 'Run cancelled: ' || v.reason,
            'code', 'BULWARK_WORKFLOW_CANCELLED', 'transient', false,
            'data', jsonb_build_object('reason', v.reason, 'parent', v.parent, 'parentStatus', v.parent_status)),
          lease_owner = NULL, lease_expires_at = NULL, finished_at = $3, updated_at = $3
        FROM victims AS v
        WHERE r.id = v.id AND r.status NOT IN ${FINAL}
          AND r.id = ANY (ARRAY(SELECT id FROM victims))
        RETURNING r.id, r.progress, v.parent, v.parent_status, v.reason, r.correlation_id, r.traceparent
      )
      INSERT INTO %s.events (run_id, type, step, data, progress, at)
      SELECT id, 'run:cancelled', NULL,
        jsonb_build_object('reason', reason, 'parent', parent, 'parentStatus', parent_status)
          || jsonb_strip_nulls(jsonb_build_object('correlationId', correlation_id, 'traceparent', traceparent)),
        progress, $3
      FROM cancelled ORDER BY id
      RETURNING run_id`,
    ),

    // -- Signals and cancellation -------------------------------------------------------------

    /**
     * Stores a signal for an unfinished run and, if the run waits for this name, makes it
     * claimable now; the wake-ups leave with the same commit. One statement, one round trip.
     */
    signal: make(
      'signal',
      `
      WITH target AS (
        SELECT id FROM %s.runs WHERE id = $1 AND status IN ${UNFINISHED} FOR NO KEY UPDATE
      ),
      sent AS (
        INSERT INTO %s.signals (run_id, name, payload, created_at)
        SELECT id, $2, $3::jsonb, $4 FROM target
        RETURNING run_id
      ),
      woken AS (
        UPDATE %s.runs AS r SET available_at = $4, updated_at = $4
        FROM target
        WHERE r.id = target.id AND r.status = 'waiting' AND r.waiting_for = $2
        RETURNING r.id
      )
      SELECT
        sent.run_id,
        woken.id IS NOT NULL AS woken,
        pg_notify($5, 'run:' || sent.run_id) AS notified,
        CASE WHEN woken.id IS NOT NULL THEN pg_notify($5, 'runs') END AS notified_runs
      FROM sent LEFT JOIN woken ON woken.id = sent.run_id`,
    ),

    lockRun: make(
      'lock_run',
      `
      SELECT id, status, lease_owner, lease_expires_at, progress, correlation_id, traceparent
      FROM %s.runs WHERE id = $1 FOR NO KEY UPDATE`,
    ),

    /** The run's worker sees this on its next renewal and finishes the cancellation. */
    requestCancel: make(
      'request_cancel',
      `UPDATE %s.runs SET cancel_requested = $2, updated_at = $3 WHERE id = $1`,
    ),

    /**
     * No worker holds it, but it has run (it has steps): due now, so that a worker claims it,
     * replays it and compensates what it did before it ends it cancelled. Returns it if so.
     */
    requestCancelDue: make(
      'request_cancel_due',
      `
      UPDATE %s.runs SET cancel_requested = $2, available_at = $3, updated_at = $3
      WHERE id = $1 AND pending_parents = 0 AND EXISTS (SELECT 1 FROM %s.steps WHERE run_id = $1)
      RETURNING id`,
    ),

    /** An unleased run that has not run is cancelled on the spot (the caller adds the event and the cascade). */
    cancelNow: make(
      'cancel_now',
      `
      UPDATE %s.runs SET
        status = 'cancelled', error = $2::jsonb, cancel_requested = $3,
        lease_owner = NULL, lease_expires_at = NULL, finished_at = $4, updated_at = $4
      WHERE id = $1`,
    ),

    // -- Retention ----------------------------------------------------------------------------

    /** Old final runs, and with them their steps, events, signals and edges. */
    prune: make(
      'prune',
      `
      WITH RECURSIVE held (id) AS (
        -- Parents that did not complete, kept with the runs that depend on them (see the SQLite
        -- store's prune).
        SELECT d.parent_id FROM %s.run_deps AS d JOIN %s.runs AS c ON c.id = d.child_id
          JOIN %s.runs AS p ON p.id = d.parent_id
        WHERE NOT (c.status IN ${FINAL} AND c.finished_at < $1) AND p.status <> 'completed'
        UNION
        SELECT d.parent_id FROM %s.run_deps AS d JOIN held AS h ON d.child_id = h.id
          JOIN %s.runs AS p ON p.id = d.parent_id
        WHERE p.status <> 'completed'
      ),
      doomed AS (
        DELETE FROM %s.runs WHERE status IN ${FINAL} AND finished_at < $1
          AND id NOT IN (SELECT id FROM held)
        RETURNING id
      ),
      steps AS (DELETE FROM %s.steps WHERE run_id IN (SELECT id FROM doomed)),
      events AS (DELETE FROM %s.events WHERE run_id IN (SELECT id FROM doomed)),
      signals AS (DELETE FROM %s.signals WHERE run_id IN (SELECT id FROM doomed)),
      edges AS (
        DELETE FROM %s.run_deps
        WHERE parent_id IN (SELECT id FROM doomed) OR child_id IN (SELECT id FROM doomed)
      )
      SELECT count(*)::integer AS pruned FROM doomed`,
    ),

    // -- Retry --------------------------------------------------------------------------------

    /**
     * The failed records, and those of steps whose compensation completed since the last retry
     * (their effects were undone) with the compensations' own: the replay runs them again.
     */
    deleteRetriedSteps: make(
      'delete_retried_steps',
      `
      WITH since AS (
        SELECT coalesce(max(seq), 0) AS seq FROM %s.events WHERE run_id = $1 AND type = 'run:retried'
      ),
      undone AS (
        SELECT e.step AS name FROM %s.events AS e, since
        WHERE e.run_id = $1 AND e.type = 'compensation:completed' AND e.seq > since.seq
          AND e.step IS NOT NULL
      )
      DELETE FROM %s.steps AS s
      WHERE s.run_id = $1 AND (s.status = 'failed'
        OR s.name IN (SELECT name FROM undone)
        OR s.name IN (SELECT 'compensate:' || name FROM undone)
        -- A wait that got no event (it timed out, or the run was cancelled while it waited)
        -- waits afresh: its recorded deadline goes.
        OR (s.name LIKE 'wait:%' AND NOT EXISTS (SELECT 1 FROM %s.steps x
          WHERE x.run_id = $1 AND x.name = 'event:' || substr(s.name, 6) AND x.status = 'completed')))`,
    ),

    /**
     * Queued again as if new; it waits for the parents that have not completed (a parent that
     * failed must be retried and complete first).
     */
    requeueRun: make(
      'requeue_run',
      `
      UPDATE %s.runs SET
        status = 'queued', output = NULL, error = NULL, finished_at = NULL, cancel_requested = NULL,
        lease_owner = NULL, lease_expires_at = NULL, waiting_for = NULL,
        available_at = $2, updated_at = $2,
        pending_parents = (
          SELECT count(*) FROM %s.run_deps AS d JOIN %s.runs AS p ON p.id = d.parent_id
          WHERE d.child_id = $1 AND p.status <> 'completed')
      WHERE id = $1
      RETURNING pending_parents, progress`,
    ),

    // -- Feed and counts ----------------------------------------------------------------------

    /**
     * The last seq handed out, read BEFORE waiting for the writers in flight (the feed lock,
     * taken exclusively for an instant): once they are done, every seq up to it is committed or
     * rolled back. The CTE is materialized so the read happens first.
     */
    feedHorizon: make(
      'feed_horizon',
      `
      WITH last AS MATERIALIZED (
        SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, 'seq')::regclass), 0) AS seq
      )
      SELECT last.seq, pg_advisory_xact_lock(hashtextextended($2, 0)) AS waited FROM last`,
    ),

    /** The `type LIKE 'run:%'` term is the feed index's own, which lets the planner use it. */
    runFeed: make(
      'run_feed',
      `
      SELECT e.*, r.workflow FROM %s.events AS e JOIN %s.runs AS r ON r.id = e.run_id
      WHERE e.type LIKE 'run:%' AND e.seq > $1 AND e.seq <= $2
      ORDER BY e.seq LIMIT $3`,
    ),

    countRuns: make(
      'count_runs',
      `
      SELECT workflow, status, count(*)::integer AS count, min(created_at) AS oldest_created_at FROM %s.runs
      GROUP BY workflow, status ORDER BY workflow, status`,
    ),

    // -- Audit --------------------------------------------------------------------------------

    insertAudit: make(
      'insert_audit',
      `
      INSERT INTO %s.audit (at, actor, role, action, target, request_id, data, outcome)
      VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
      RETURNING *`,
    ),

    listAudit: make(
      'list_audit',
      `
      SELECT * FROM %s.audit WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2`,
    ),

    // -- Wake-ups without LISTEN --------------------------------------------------------------

    /** Runs with timeline events after `$1`: what a polling subscriber reports. */
    eventsSince: make(
      'events_since',
      `
      SELECT coalesce(max(seq), $1) AS last, coalesce(array_agg(DISTINCT run_id), '{}') AS runs
      FROM %s.events WHERE seq > $1`,
    ),

    lastEvent: make('last_event', `SELECT coalesce(max(seq), 0) AS last FROM %s.events`),
  };
}

export type Statements = ReturnType<typeof statements>;

/** The migration runner's statements (plain text: they run once per start). */
export function migrationStatements(schema: string) {
  return {
    /** Creating a schema is not safe against a concurrent create: hold the lock first. */
    lock: `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
    createSchema: `CREATE SCHEMA IF NOT EXISTS ${schema}`,
    createTable: `
      CREATE TABLE IF NOT EXISTS ${schema}.migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint
      )`,
    applied: `SELECT version FROM ${schema}.migrations ORDER BY version`,
    record: `INSERT INTO ${schema}.migrations (version, name) VALUES ($1, $2)`,
    searchPath: `SET LOCAL search_path TO ${schema}`,
  };
}
