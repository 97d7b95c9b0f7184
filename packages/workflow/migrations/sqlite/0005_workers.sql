-- 0005: the workers alive and the workflow versions each runs, so that a claim leaves a run of a
-- version this worker lacks to the worker that has it (a rolling deploy), and fails it only when
-- no live worker has it. `versions` is a JSON array of [workflow, version] pairs; a worker counts
-- as live until `live_until` (its announcement plus its own lease), `seen_at` orders announcements.

CREATE TABLE "{{prefix}}workers" (
  id         TEXT    PRIMARY KEY,
  versions   TEXT    NOT NULL,
  seen_at    INTEGER NOT NULL,
  live_until INTEGER NOT NULL
) STRICT;
