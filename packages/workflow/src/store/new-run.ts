// A run to create: what both stores refuse before writing anything (a bad audit entry, a lease
// on a run that cannot start at once), and the record it becomes.
import { checkAuditEntry } from './audit.ts';
import type { Json, NewRun, RunRecord, RunStatus, StoredError } from './types.ts';

export function checkNewRun(run: NewRun, now: number): void {
  if (run.audit !== undefined) checkAuditEntry({ ...run.audit, target: run.id });
  const tick = run.scheduleTick;
  if (tick !== undefined && (typeof tick.schedule !== 'string' || !Number.isSafeInteger(tick.at)))
    throw new TypeError(`run ${run.id}: scheduleTick needs a schedule (string) and at (ms, an integer)`);
  const lease = run.leasedTo;
  if (lease === undefined) return;
  if (typeof lease.workerId !== 'string' || typeof lease.until !== 'number')
    throw new TypeError(`run ${run.id}: leasedTo needs a workerId (string) and until (ms)`);
  // Leased means executing now: a run that must wait (for parents, or until later) is claimed when due.
  if ((run.dependsOn?.length ?? 0) > 0)
    throw new TypeError(`run ${run.id}: a run with dependsOn cannot be leased at its start`);
  if (run.availableAt !== undefined && run.availableAt > now)
    throw new TypeError(`run ${run.id}: a run available later cannot be leased at its start`);
}

/** The record of a run as its enqueue creates it, from the facts only the enqueue knows. */
export function createdRecord(
  run: NewRun,
  now: number,
  created: { status: RunStatus; input: Json; pendingParents: number; error?: StoredError },
): RunRecord {
  return {
    id: run.id,
    workflow: run.workflow,
    version: run.version,
    status: created.status,
    priority: run.priority,
    input: created.input,
    output: undefined,
    error: created.error,
    degraded: false,
    progress: 0,
    idempotencyKey: run.idempotencyKey,
    parentRunId: run.parentRunId,
    concurrencyKey: run.concurrencyKey,
    pendingParents: created.pendingParents,
    availableAt: run.availableAt ?? now,
    waitingFor: undefined,
    leaseOwner: run.leasedTo?.workerId,
    leaseExpiresAt: run.leasedTo?.until,
    cancelRequested: undefined,
    deadlineAt: run.deadlineAt,
    correlationId: run.correlationId,
    traceparent: run.traceparent,
    createdAt: now,
    updatedAt: now,
    finishedAt: created.status === 'cancelled' ? now : undefined,
  };
}
