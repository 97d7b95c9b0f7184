// The data of the timeline events the stores write themselves, one shape per event for every
// store, so that a timeline reads the same whichever store wrote it. Each carries the run's
// correlation id and traceparent, as the engine's own events do, so that a search of the logs or
// a trace by either finds these events too. (PostgreSQL's cascade of cancellations builds its
// events in SQL: `cancelDependents` in postgres/sql.ts writes `parentCancelledData`'s shape.)
import { WorkflowErrorCodes } from '../errors.ts';
import type { Json, NewRun, StoredError } from './types.ts';

type Data = { [key: string]: Json };

/** What of a run its events carry besides their own data. */
type RunContext = Pick<NewRun, 'correlationId' | 'traceparent'>;

/** `run:queued`: what was queued, and at which priority. */
export function queuedData(run: Pick<NewRun, 'workflow' | 'version' | 'priority'> & RunContext): Data {
  return withContext({ workflow: run.workflow, version: run.version, priority: run.priority }, run);
}

/**
 * `run:cancelled` of a run whose parent failed, was cancelled or compensated (at its enqueue, or
 * in the cascade): `reason` in words, where readers of an operator's cancellation look, and the
 * parent with its status for those that act on it.
 */
export function parentCancelledData(parent: string, parentStatus: string, run: RunContext): Data {
  return withContext({ reason: parentReason(parent, parentStatus), parent, parentStatus }, run);
}

/** `run:cancelled` of a run cancelled on request while no worker held it, and `run:retried`. */
export function reasonData(reason: string, run: RunContext): Data {
  return withContext({ reason }, run);
}

/** Why a run was cancelled for its parent, in words. */
function parentReason(parent: string, parentStatus: string): string {
  return `parent ${parent} ${parentStatus}`;
}

/**
 * The error a run cancelled by the store is left with, as the engine's RunCancelledError would
 * store it: on request (`reason`), or for its parent (`cancelDependents` in postgres/sql.ts builds
 * the same in SQL).
 */
export function cancelledError(by: { parent: string; status: string } | string): StoredError {
  const reason = typeof by === 'string' ? by : parentReason(by.parent, by.status);
  const data: Data =
    typeof by === 'string' ? { reason } : { reason, parent: by.parent, parentStatus: by.status };
  return {
    name: 'RunCancelledError',
    message: `Run cancelled: ${reason}`,
    code: WorkflowErrorCodes.CANCELLED,
    transient: false,
    data,
  };
}

/** The run's correlation id and traceparent, from a row of either store that selected them. */
export function contextOf(row: Record<string, unknown>): RunContext {
  return {
    correlationId: (row.correlation_id as string | null) ?? undefined,
    traceparent: (row.traceparent as string | null) ?? undefined,
  };
}

function withContext(data: Data, run: RunContext): Data {
  if (run.correlationId !== undefined) data.correlationId = run.correlationId;
  if (run.traceparent !== undefined) data.traceparent = run.traceparent;
  return data;
}
