-- 0003: the dependency a waiting run is parked behind (its step found the circuit open), and
-- an index for finding runs by correlation id. Applied with search_path set to the store's
-- schema. Run ids (COLLATE "C": a prefix is a range) are found through the primary key and
-- idempotency keys through their UNIQUE index.

ALTER TABLE runs ADD COLUMN parked_on text;

-- Few rows: only runs parked now (a claim clears the column). Counts per dependency and the
-- list of one dependency's parked runs, soonest to resume first, read only these.
CREATE INDEX runs_parked ON runs (parked_on, available_at) WHERE parked_on IS NOT NULL;

CREATE INDEX runs_correlation ON runs (correlation_id) WHERE correlation_id IS NOT NULL;

