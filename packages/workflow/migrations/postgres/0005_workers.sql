-- 0005: the workers alive and the workflow versions each runs, so that a claim leaves a run of a
-- version this worker lacks to the worker that has it (a rolling deploy), and fails it only when
-- no live worker has it. `versions` maps each workflow to its versions: {"name": ["1", "2"]}; a
-- worker counts as live until `live_until` (its announcement plus its own lease), `seen_at`
-- orders announcements. Applied with search_path set to the store's schema.

CREATE TABLE workers (
  id         text   PRIMARY KEY,
  versions   jsonb  NOT NULL,
  seen_at    bigint NOT NULL,
  live_until bigint NOT NULL
);

-- Claims read the live workers by `live_until`. The index also keeps the planner off a
-- sequential scan, which the claim sessions disable (`enable_seqscan = off`): a disabled scan's
-- cost would make PostgreSQL JIT-compile every claim (600 ms each, measured).
CREATE INDEX workers_live ON workers (live_until);
