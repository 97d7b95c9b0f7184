-- 0002: the audit log, and an index for the system-wide run feed.

-- Who did what, kept apart from runs: prune never deletes it. AUTOINCREMENT: an id is never
-- handed out twice, so paging by `before` stays stable.
CREATE TABLE "{{prefix}}audit" (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at         INTEGER NOT NULL,
  actor      TEXT    NOT NULL,
  role       TEXT    NOT NULL,
  action     TEXT    NOT NULL,
  target     TEXT,
  request_id TEXT,
  data       TEXT,
  outcome    TEXT    NOT NULL
) STRICT;

-- The run feed reads `run:*` events of every run in seq order from a cursor. Step events are
-- most of the timeline; this partial index holds only the run events, so the feed seeks to its
-- cursor and reads just the rows it returns instead of walking every event after it. (SQLite
-- uses it because the feed's WHERE repeats this exact `type LIKE 'run:%'` term.)
CREATE INDEX "{{prefix}}events_run_feed" ON "{{prefix}}events" (seq) WHERE type LIKE 'run:%';
