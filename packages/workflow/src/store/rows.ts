// Rows of the runs, steps, events, signals and audit tables as records. Both stores name their columns
// alike and keep JSON as text; they differ only in how that text is read (`json`).
import type {
  AuditEntry,
  FeedEvent,
  Json,
  ParkedRun,
  RunRecord,
  RunStatus,
  Signal,
  StepRecord,
  StoredError,
  TimelineEvent,
} from './types.ts';

export type Row = Record<string, unknown>;

export interface RowReader {
  run(row: Row): RunRecord;
  step(row: Row): StepRecord;
  event(row: Row): TimelineEvent;
  signal(row: Row): Signal;
  /** An event row joined with its run's `workflow`. */
  feed(row: Row): FeedEvent;
  audit(row: Row): AuditEntry;
  /** A parked run (`id`, `workflow`, `available_at`) joined with its last `step:parked` event (`step`, `data`, `at`). */
  parked(row: Row): ParkedRun;
}

/** The readers for a store whose JSON columns `json` decodes (NULL to undefined). */
export function rowReader(json: (value: unknown) => Json | undefined): RowReader {
  const event = (row: Row): TimelineEvent => ({
    seq: row.seq as number,
    runId: row.run_id as string,
    type: row.type as string,
    step: opt(row.step),
    data: json(row.data),
    progress: row.progress as number,
    at: row.at as number,
  });
  return {
    run: (row) => ({
      id: row.id as string,
      workflow: row.workflow as string,
      version: row.version as string,
      status: row.status as RunStatus,
      priority: row.priority as number,
      input: json(row.input) ?? null,
      output: json(row.output),
      error: json(row.error) as StoredError | undefined,
      // SQLite has no booleans: 0 or 1.
      degraded: row.degraded === true || row.degraded === 1,
      progress: row.progress as number,
      idempotencyKey: opt(row.idempotency_key),
      parentRunId: opt(row.parent_run_id),
      concurrencyKey: opt(row.concurrency_key),
      pendingParents: row.pending_parents as number,
      availableAt: row.available_at as number,
      waitingFor: opt(row.waiting_for),
      leaseOwner: opt(row.lease_owner),
      leaseExpiresAt: opt(row.lease_expires_at),
      cancelRequested: opt(row.cancel_requested),
      deadlineAt: opt(row.deadline_at),
      correlationId: opt(row.correlation_id),
      traceparent: opt(row.traceparent),
      createdAt: row.created_at as number,
      updatedAt: row.updated_at as number,
      finishedAt: opt(row.finished_at),
    }),
    step: (row) => ({
      runId: row.run_id as string,
      name: row.name as string,
      seq: row.seq as number,
      status: row.status as StepRecord['status'],
      output: json(row.output),
      error: json(row.error) as StoredError | undefined,
      attempts: row.attempts as number,
      startedAt: row.started_at as number,
      finishedAt: row.finished_at as number,
    }),
    event,
    signal: (row) => ({
      id: row.id as number,
      runId: row.run_id as string,
      name: row.name as string,
      payload: json(row.payload) ?? null,
      createdAt: row.created_at as number,
    }),
    feed: (row) => ({ ...event(row), workflow: row.workflow as string }),
    parked: (row) => ({
      runId: row.id as string,
      workflow: row.workflow as string,
      step: opt(row.step),
      // Without its event (pruned by hand), the run still shows, from when it resumes.
      since: (opt<number>(row.at) ?? row.available_at) as number,
      resumeAt: row.available_at as number,
      data: json(row.data),
    }),
    audit: (row) => {
      const entry: AuditEntry = {
        id: row.id as number,
        at: row.at as number,
        actor: row.actor as string,
        role: row.role as string,
        action: row.action as string,
        outcome: row.outcome as AuditEntry['outcome'],
      };
      // Absent fields stay absent (not `undefined` keys), as the caller gave them.
      if (row.target !== null && row.target !== undefined) entry.target = row.target as string;
      if (row.request_id !== null && row.request_id !== undefined) entry.requestId = row.request_id as string;
      const data = json(row.data);
      if (data !== undefined) entry.data = data;
      return entry;
    },
  };
}

function opt<T>(value: unknown): T | undefined {
  return value === null || value === undefined ? undefined : (value as T);
}
