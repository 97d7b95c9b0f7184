// Creating runs: idempotency keys, dependsOn edges and the first timeline event, for one or
// many callers' batches at once, in as few statements as the batches allow.
import { UnknownRunError } from '../../errors.ts';
import { auditRow } from '../audit.ts';
import { cancelledError, parentCancelledData, queuedData } from '../events.ts';
import { createdRecord } from '../new-run.ts';
import type { EnqueueResult, Json, NewRun, RunStatus, WakeTopic } from '../types.ts';
import { json, jsonText, type Row } from './rows.ts';
import { MAX_PAYLOAD, RetryTransaction, type Session } from './session.ts';

export interface EnqueueBatch {
  runs: readonly NewRun[];
  now: number;
}

const FAILED_PARENT: ReadonlySet<string> = new Set(['failed', 'cancelled', 'compensated']);

/** A run to create, as decided before it is written. */
interface Planned {
  run: NewRun;
  now: number;
  /** `running` for a run leased at its start (`leasedTo`). */
  status: 'queued' | 'running' | 'cancelled';
  pending: number;
  /** The parent whose failure cancels this run at birth. */
  cancelledBy?: { parent: string; status: string };
  /** Parents by their real ids, with the plan of those created earlier in this flush. */
  parents: { id: string; plan: Planned | undefined }[];
  /** A leased run's input as stored, once written. */
  stored?: Json;
}

/** Reads of the batches' runs: what the database says or what this flush will create. */
type Known =
  | { id: string; status: RunStatus; created: false }
  | { id: string; planned: Planned; created: true };

/**
 * Applies the batches as if one after the other: a key used twice (in the database, or earlier
 * in these batches) returns the first run, and `dependsOn` may name runs given earlier. Throws
 * `UnknownRunError` for any other parent that does not exist, and `RetryTransaction` if a
 * concurrent enqueue took a key in the meantime.
 */
export async function applyEnqueues(
  session: Session,
  batches: readonly EnqueueBatch[],
): Promise<EnqueueResult[][]> {
  const { sql } = session;
  const keys = [
    ...new Set(batches.flatMap((b) => b.runs.flatMap((r) => (r.idempotencyKey ? [r.idempotencyKey] : [])))),
  ];
  const byKey = new Map<string, Known>();
  if (keys.length > 0) {
    for (const row of await session.run(sql.runsByIdempotencyKey, [keys])) {
      byKey.set(row.idempotency_key as string, {
        id: row.id as string,
        status: row.status as RunStatus,
        created: false,
      });
    }
  }

  // Which runs are new; the ids of those that are not point at the run their key found.
  const known = new Map<string, Known>();
  // Statuses are known only once every plan is resolved, hence thunks.
  const order: (() => EnqueueResult)[][] = [];
  const planned: Planned[] = [];
  for (const batch of batches) {
    const results: (() => EnqueueResult)[] = [];
    for (const run of batch.runs) {
      const existing = run.idempotencyKey === undefined ? undefined : byKey.get(run.idempotencyKey);
      if (existing !== undefined) {
        known.set(run.id, existing);
        results.push(() => ({
          id: existing.id,
          created: false,
          status: existing.created ? existing.planned.status : existing.status,
        }));
        continue;
      }
      const parents = [...new Set(run.dependsOn ?? [])].map((id) => {
        const entry = known.get(id);
        return entry === undefined
          ? { id, plan: undefined }
          : { id: entry.id, plan: entry.created ? entry.planned : undefined };
      });
      const plan = planOf(run, batch.now, parents);
      const entry: Known = { id: run.id, planned: plan, created: true };
      if (run.idempotencyKey !== undefined) byKey.set(run.idempotencyKey, entry);
      known.set(run.id, entry);
      planned.push(plan);
      results.push(() => created(plan));
    }
    order.push(results);
  }

  // Parents already stored are locked: none may complete before the new edges are in.
  const outside = [
    ...new Set(planned.flatMap((p) => p.parents.flatMap((parent) => (parent.plan ? [] : [parent.id])))),
  ];
  const stored = new Map<string, string>();
  if (outside.length > 0) {
    for (const row of await session.run(sql.lockParents, [outside]))
      stored.set(row.id as string, row.status as string);
  }
  const missing = outside.find((id) => !stored.has(id));
  if (missing !== undefined) throw new UnknownRunError(missing);

  // Parents in the flush come earlier, so their own status is settled by the time it is read.
  for (const plan of planned) {
    for (const parent of plan.parents) {
      const status = parent.plan ? parent.plan.status : stored.get(parent.id)!;
      if (FAILED_PARENT.has(status)) {
        plan.status = 'cancelled';
        plan.cancelledBy ??= { parent: parent.id, status };
      } else if (status !== 'completed') plan.pending++;
    }
  }

  if (planned.length > 0) {
    const inserted = await session.run(sql.insertRuns, [JSON.stringify(planned.map(runRow))]);
    // Another transaction took one of the keys after we looked: it has committed by now (the
    // unique index waited for it), so a second try finds its run.
    if (inserted.length !== planned.length)
      throw new RetryTransaction('an idempotency key was taken concurrently');
    storeInputs(planned, new Map(inserted.map((row) => [row.id as string, json(row.leased_input)])));

    const parents: string[] = [];
    const children: string[] = [];
    // A run born cancelled keeps its edges too: retried, it waits for its parents again.
    for (const p of planned) {
      for (const parent of p.parents) {
        parents.push(parent.id);
        children.push(p.run.id);
      }
    }
    if (parents.length > 0) await session.run(sql.insertDeps, [parents, children]);
    const ticks = planned.flatMap(({ run }) =>
      run.scheduleTick === undefined
        ? []
        : [{ schedule: run.scheduleTick.schedule, tick: run.scheduleTick.at, run_id: run.id }],
    );
    if (ticks.length > 0) await session.run(sql.recordTicks, [JSON.stringify(ticks)]);

    await session.run(sql.insertEvents, [JSON.stringify(planned.map(firstEvent))]);
    const audits = auditRows(planned.map((p) => p.run));
    if (audits.length > 0) await session.run(sql.insertAudits, [JSON.stringify(audits)]);
    for (const p of planned) {
      session.topics.add(`run:${p.run.id}`);
      if (p.status === 'queued' && p.pending === 0) session.topics.add('runs');
    }
  }

  return order.map((results) => results.map((result) => result()));
}

/**
 * The short way for what most enqueues are (runs without parents or a schedule tick, and at
 * most one run in all if any has an idempotency key): one statement in its own transaction, for
 * every caller of the group at once, instead of four round trips. Planned before any connection
 * is taken: returns the statement's values and how to read its answer, or `undefined` if the
 * batches do not qualify or cannot be serialised (the long way then fails only the bad one).
 * `finish` gives each batch's results and the topics the commit told, or `undefined` if the key
 * was taken: the caller then goes the long way, which finds the key's run.
 */
export function planEnqueueAlone(
  batches: readonly EnqueueBatch[],
  feedLock: string,
  channel: string,
):
  | {
      values: unknown[];
      finish(row: Row): { results: EnqueueResult[][]; topics: WakeTopic[] } | undefined;
    }
  | undefined {
  let keys = 0;
  let count = 0;
  for (const { runs } of batches) {
    for (const run of runs) {
      // A schedule's tick is recorded by its own statement: the long way has it.
      if ((run.dependsOn !== undefined && run.dependsOn.length > 0) || run.scheduleTick !== undefined)
        return undefined;
      if (run.idempotencyKey !== undefined) keys++;
      count++;
    }
  }
  // Two keys could clash with each other, and one taken key would leave the others written.
  if (keys > 0 && count > 1) return undefined;
  const planned = batches.flatMap(({ runs, now }) => runs.map((run) => planOf(run, now, [])));
  const topics: WakeTopic[] = planned.map((p) => `run:${p.run.id}` as const);
  // A leased run is executing already: no worker needs waking for it.
  if (planned.some((p) => p.status === 'queued')) topics.push('runs');
  const payload = topics.join('\n');
  // One NOTIFY carries them all, or the long way splits them.
  if (payload.length > MAX_PAYLOAD) return undefined;
  let values: unknown[];
  try {
    values = [
      JSON.stringify(planned.map(runRow)),
      JSON.stringify(planned.map(firstEvent)),
      JSON.stringify(auditRows(planned.map((p) => p.run))),
      feedLock,
      channel,
      payload,
    ];
  } catch {
    return undefined;
  }
  return {
    values,
    finish(row) {
      if (row.created !== count) return undefined;
      // NULL when no run was leased.
      storeInputs(planned, new Map(Object.entries((json(row.leased) ?? {}) as Record<string, Json>)));
      let i = 0;
      const results = batches.map(({ runs }) => runs.map(() => created(planned[i++]!)));
      return { results, topics };
    },
  };
}

/** A run to create, before its parents are looked at: leased runs are created running. */
function planOf(run: NewRun, now: number, parents: Planned['parents']): Planned {
  return { run, now, status: run.leasedTo ? 'running' : 'queued', pending: 0, parents };
}

/** Leased runs keep their input as the store gave it back (undefined: a run not leased, SQL NULL). */
function storeInputs(planned: readonly Planned[], inputs: ReadonlyMap<string, Json | undefined>): void {
  for (const p of planned) {
    const input = inputs.get(p.run.id);
    if (p.status === 'running' && input !== undefined) p.stored = input;
  }
}

/** A created run's result: with the run as stored when it was leased at its start (the engine runs it). */
function created(p: Planned): EnqueueResult {
  const result: EnqueueResult = { id: p.run.id, created: true, status: p.status };
  if (p.stored !== undefined)
    result.run = createdRecord(p.run, p.now, { status: 'running', input: p.stored, pendingParents: 0 });
  return result;
}

/** The audit entries of the runs that carry one, each targeting its run. */
function auditRows(runs: readonly NewRun[]) {
  return runs.flatMap(({ id, audit }) =>
    audit === undefined ? [] : [auditRow({ ...audit, target: id }, jsonText)],
  );
}

/** A run's row, as `insertRuns` reads it. */
function runRow(p: Planned) {
  return {
    id: p.run.id,
    workflow: p.run.workflow,
    version: p.run.version,
    status: p.status,
    priority: p.run.priority,
    input: jsonText(p.run.input ?? null),
    error: p.cancelledBy ? jsonText(cancelledError(p.cancelledBy)) : null,
    idempotency_key: p.run.idempotencyKey ?? null,
    parent_run_id: p.run.parentRunId ?? null,
    concurrency_key: p.run.concurrencyKey ?? null,
    pending_parents: p.status === 'queued' ? p.pending : 0,
    lease_owner: p.status === 'running' ? p.run.leasedTo!.workerId : null,
    lease_expires_at: p.status === 'running' ? p.run.leasedTo!.until : null,
    available_at: p.run.availableAt ?? p.now,
    deadline_at: p.run.deadlineAt ?? null,
    correlation_id: p.run.correlationId ?? null,
    traceparent: p.run.traceparent ?? null,
    now: p.now,
  };
}

/** A run's first timeline event, as `insertEvents` reads it. */
function firstEvent(p: Planned, ord: number) {
  return {
    ord,
    run_id: p.run.id,
    type: p.status === 'cancelled' ? 'run:cancelled' : 'run:queued',
    step: null,
    data: jsonText(
      p.cancelledBy
        ? parentCancelledData(p.cancelledBy.parent, p.cancelledBy.status, p.run)
        : queuedData(p.run),
    ),
    progress: 0,
    at: p.now,
  };
}
