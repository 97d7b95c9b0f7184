-- 0004: claims read two indexes instead of one. The old claim index held every unfinished,
-- unleased run in priority order, waiting ones included, so each claim stepped over every run
-- waiting for an event or a timer ahead of the first one due: with 10,000 runs waiting, 4 ms a
-- claim instead of 0.4. Queued runs are read in claim order; waiting runs by when they are due,
-- only those due.

CREATE INDEX "{{prefix}}runs_ready" ON "{{prefix}}runs" (priority DESC, created_at, id)
  WHERE status = 'queued' AND pending_parents = 0 AND lease_owner IS NULL;

CREATE INDEX "{{prefix}}runs_due" ON "{{prefix}}runs" (available_at)
  WHERE status = 'waiting' AND lease_owner IS NULL;

DROP INDEX "{{prefix}}runs_claim";
