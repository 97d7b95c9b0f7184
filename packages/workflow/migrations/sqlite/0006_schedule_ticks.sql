-- 0006: each schedule's latest tick that has a run, written with that run, so that a scheduler's
-- catch-up does not start a tick again once retention has pruned its run (which frees its
-- idempotency key). One row per schedule name; pruning runs leaves it.

CREATE TABLE "{{prefix}}schedule_ticks" (
  schedule TEXT    PRIMARY KEY,
  tick     INTEGER NOT NULL,
  run_id   TEXT    NOT NULL
) STRICT;
