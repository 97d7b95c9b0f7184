-- 0006: each schedule's latest tick that has a run, written with that run, so that a scheduler's
-- catch-up does not start a tick again once retention has pruned its run (which frees its
-- idempotency key). One row per schedule name; pruning runs leaves it. Applied with search_path
-- set to the store's schema.

CREATE TABLE schedule_ticks (
  schedule text   PRIMARY KEY,
  tick     bigint NOT NULL,
  run_id   text   NOT NULL
);
