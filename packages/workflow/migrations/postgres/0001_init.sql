-- 0001: runs, their dependencies, recorded steps, timeline events and signals.
-- Applied with search_path set to the store's schema, so names here are unqualified.
-- Rows of steps, events, signals and run_deps belong to a run without a foreign key: the store
-- writes them only for runs it has locked, and a per-row FK check would cost every insert
-- (prune deletes them with their run).
-- Times are BIGINT ms since the epoch, given by the engine's clock; values are jsonb. Ids sort
-- bytewise (COLLATE "C"), as in SQLite and in JavaScript, so every store orders ties alike.

CREATE TABLE runs (
  id               text COLLATE "C" PRIMARY KEY,
  workflow         text NOT NULL,
  version          text NOT NULL,
  status           text NOT NULL,
  priority         integer NOT NULL,
  input            jsonb NOT NULL,
  output           jsonb,
  error            jsonb,
  degraded         boolean NOT NULL DEFAULT false,
  progress         double precision NOT NULL DEFAULT 0,
  idempotency_key  text UNIQUE,
  parent_run_id    text,
  concurrency_key  text,
  pending_parents  integer NOT NULL DEFAULT 0,
  available_at     bigint NOT NULL,
  waiting_for      text,
  lease_owner      text,
  lease_expires_at bigint,
  cancel_requested text,
  deadline_at      bigint,
  correlation_id   text,
  traceparent      text,
  created_at       bigint NOT NULL,
  updated_at       bigint NOT NULL,
  finished_at      bigint
);

-- What a claim walks: unfinished runs whose parents are done, in claim order.
CREATE INDEX runs_claim_order ON runs (priority DESC, created_at, id)
  WHERE status IN ('queued', 'running', 'waiting', 'compensating') AND pending_parents = 0;
-- Concurrency limits count the runs under a live lease.
CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE lease_owner IS NOT NULL;
-- listRuns pages newest first; prune looks for old final runs.
CREATE INDEX runs_by_creation ON runs (created_at DESC, id DESC);
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;

-- dependsOn edges: a child waits for every parent to complete.
CREATE TABLE run_deps (
  parent_id text COLLATE "C" NOT NULL,
  child_id  text COLLATE "C" NOT NULL,
  PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX run_deps_child ON run_deps (child_id);

CREATE TABLE steps (
  run_id      text COLLATE "C" NOT NULL,
  name        text NOT NULL,
  seq         integer NOT NULL,
  status      text NOT NULL,
  output      jsonb,
  error       jsonb,
  attempts    integer NOT NULL,
  started_at  bigint NOT NULL,
  finished_at bigint NOT NULL,
  PRIMARY KEY (run_id, name),
  UNIQUE (run_id, seq)
);

CREATE TABLE events (
  seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id   text COLLATE "C" NOT NULL,
  type     text NOT NULL,
  step     text,
  data     jsonb,
  progress double precision NOT NULL,
  at       bigint NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE signals (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id      text COLLATE "C" NOT NULL,
  name        text NOT NULL,
  payload     jsonb NOT NULL,
  created_at  bigint NOT NULL,
  consumed_at bigint
);
CREATE INDEX signals_unconsumed ON signals (run_id, name, id) WHERE consumed_at IS NULL;
