-- 0003: the dependency a waiting run is parked behind (its step found the circuit open), and
-- an index for finding runs by correlation id. Run ids are found through the primary key and
-- idempotency keys through their UNIQUE index.

ALTER TABLE "{{prefix}}runs" ADD COLUMN parked_on TEXT;

-- Few rows: only runs parked now (a claim clears the column). Counts per dependency and the
-- list of one dependency's parked runs, soonest to resume first, read only these.
CREATE INDEX "{{prefix}}runs_parked" ON "{{prefix}}runs" (parked_on, available_at)
  WHERE parked_on IS NOT NULL;

CREATE INDEX "{{prefix}}runs_correlation" ON "{{prefix}}runs" (correlation_id)
  WHERE correlation_id IS NOT NULL;
