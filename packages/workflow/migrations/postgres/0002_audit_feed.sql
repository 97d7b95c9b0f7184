-- 0002: the audit log, and an index for the system-wide run feed.
-- Applied with search_path set to the store's schema, so names here are unqualified.

-- Who did what, kept apart from runs: prune never deletes it.
CREATE TABLE audit (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         bigint NOT NULL,
  actor      text NOT NULL,
  role       text NOT NULL,
  action     text NOT NULL,
  target     text,
  request_id text,
  data       jsonb,
  outcome    text NOT NULL
);

-- The run feed reads `run:*` events of every run in seq order from a cursor. Step events are
-- most of the timeline; this partial index holds only the run events, so the feed seeks to its
-- cursor and reads just the rows it returns instead of walking every event after it. (The
-- planner uses it because the feed's WHERE repeats this exact `type LIKE 'run:%'` term.)
CREATE INDEX events_run_feed ON events (seq) WHERE type LIKE 'run:%';
