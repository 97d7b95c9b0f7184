-- The workflow store's tables. `{{prefix}}` is replaced by the store's table prefix
-- (checked to be letters, digits and underscores). Times are ms since the epoch; JSON is TEXT,
-- and a NULL JSON column reads as `undefined` (the text 'null' is JSON null).

CREATE TABLE "{{prefix}}runs" (
  id               TEXT    PRIMARY KEY,
  workflow         TEXT    NOT NULL,
  version          TEXT    NOT NULL,
  status           TEXT    NOT NULL,
  priority         INTEGER NOT NULL,
  input            TEXT    NOT NULL,
  output           TEXT,
  error            TEXT,
  degraded         INTEGER NOT NULL DEFAULT 0,
  progress         REAL    NOT NULL DEFAULT 0,
  idempotency_key  TEXT    UNIQUE,
  parent_run_id    TEXT,
  concurrency_key  TEXT,
  pending_parents  INTEGER NOT NULL DEFAULT 0,
  available_at     INTEGER NOT NULL,
  waiting_for      TEXT,
  lease_owner      TEXT,
  lease_expires_at INTEGER,
  cancel_requested TEXT,
  deadline_at      INTEGER,
  correlation_id   TEXT,
  traceparent      TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  -- Set exactly when the status becomes final: "not final" is `finished_at IS NULL`.
  finished_at      INTEGER
) STRICT;

-- Claim order over the unleased runs that may be claimable: the claim reads it in order and
-- stops at its limit. Final, leased, and still-waiting-for-parents runs are not in it, so the
-- runs in flight cost a claim nothing.
CREATE INDEX "{{prefix}}runs_claim" ON "{{prefix}}runs" (priority DESC, created_at, id)
  WHERE finished_at IS NULL AND pending_parents = 0 AND lease_owner IS NULL;

-- Leased runs: the concurrency limits count them, and the claim looks here for expired leases
-- (few rows: as many as runs in flight).
CREATE INDEX "{{prefix}}runs_leased" ON "{{prefix}}runs" (lease_expires_at)
  WHERE lease_owner IS NOT NULL;

-- Listing newest first, and pruning by age.
CREATE INDEX "{{prefix}}runs_created" ON "{{prefix}}runs" (created_at, id);
CREATE INDEX "{{prefix}}runs_finished" ON "{{prefix}}runs" (finished_at) WHERE finished_at IS NOT NULL;

-- dependsOn: a row per (parent, child). The primary key finds a parent's dependents.
CREATE TABLE "{{prefix}}run_deps" (
  parent_id TEXT NOT NULL REFERENCES "{{prefix}}runs" (id) ON DELETE CASCADE,
  child_id  TEXT NOT NULL REFERENCES "{{prefix}}runs" (id) ON DELETE CASCADE,
  PRIMARY KEY (parent_id, child_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX "{{prefix}}run_deps_child" ON "{{prefix}}run_deps" (child_id);

CREATE TABLE "{{prefix}}steps" (
  run_id      TEXT    NOT NULL REFERENCES "{{prefix}}runs" (id) ON DELETE CASCADE,
  name        TEXT    NOT NULL,
  seq         INTEGER NOT NULL,
  status      TEXT    NOT NULL,
  output      TEXT,
  error       TEXT,
  attempts    INTEGER NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, name),
  UNIQUE (run_id, seq)
) STRICT, WITHOUT ROWID;

-- AUTOINCREMENT: a pruned event's seq is never handed out again, so a reader's `afterSeq`
-- stays meaningful.
CREATE TABLE "{{prefix}}events" (
  seq      INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id   TEXT    NOT NULL REFERENCES "{{prefix}}runs" (id) ON DELETE CASCADE,
  type     TEXT    NOT NULL,
  step     TEXT,
  data     TEXT,
  progress REAL    NOT NULL,
  at       INTEGER NOT NULL
) STRICT;
CREATE INDEX "{{prefix}}events_run" ON "{{prefix}}events" (run_id, seq);

CREATE TABLE "{{prefix}}signals" (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id     TEXT    NOT NULL REFERENCES "{{prefix}}runs" (id) ON DELETE CASCADE,
  name       TEXT    NOT NULL,
  payload    TEXT    NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX "{{prefix}}signals_run" ON "{{prefix}}signals" (run_id, name, id);
