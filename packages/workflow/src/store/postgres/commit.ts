// Applying workers' changes (steps, run updates, events, consumed signals) for one or many
// callers' batches at once, with the lease check, and what a run's end does to its dependents.
import {
  type Change,
  type CommitResult,
  FINAL_STATUSES,
  type RunStatus,
  type RunUpdate,
  type WakeTopic,
} from '../types.ts';
import { jsonText, type Row } from './rows.ts';
import { payloads, type Session } from './session.ts';
import type { Statement, Statements } from './sql.ts';

export interface CommitBatch {
  changes: readonly Change[];
  now: number;
}

const FINAL: ReadonlySet<RunStatus> = new Set(FINAL_STATUSES);

/** A run as locked, then as the batches leave it. */
interface RunState {
  startStatus: RunStatus;
  status: RunStatus;
  owner: string | null;
  /** The merged update for the statement, once some batch changes the run. */
  update?: MergedUpdate;
  /** The `now` of the batch that made it final (for the dependents). */
  finalAt?: number;
}

interface MergedUpdate {
  id: string;
  now: number;
  status: RunStatus | null;
  set_output: boolean;
  output: string | null;
  set_error: boolean;
  error: string | null;
  degraded: boolean | null;
  progress: number | null;
  available_at: number | null;
  set_waiting_for: boolean;
  waiting_for: string | null;
  set_parked_on: boolean;
  parked_on: string | null;
  release_lease: boolean;
  finished: boolean;
}

/**
 * Applies the batches as if one after the other. A batch's changes to a run whose lease its
 * worker does not hold are dropped, events and consumed signals of that run included.
 */
export async function applyCommits(
  session: Session,
  batches: readonly CommitBatch[],
): Promise<CommitResult[]> {
  const { sql } = session;
  const ids = [...new Set(batches.flatMap((b) => b.changes.map((c) => c.runId)))];
  const runs = new Map<string, RunState>();
  if (ids.length > 0) {
    for (const row of await session.run(sql.lockRuns, [ids])) {
      const status = row.status as RunStatus;
      runs.set(row.id as string, { startStatus: status, status, owner: row.lease_owner as string | null });
    }
  }

  const planned = plan(batches, runs, session.topics);
  const { steps, updates, events, completed, signals, doomed } = planned;
  if (steps.length > 0 || updates.length > 0 || events.length > 0 || completed.ids.length > 0) {
    // One round trip for the commit's steps, updates, events and released children.
    const rows = await session.run(sql.applyCommit, writes(planned));
    const stored: [string, string][] = [];
    let released = false;
    for (const row of rows) {
      if (row.kind === 'step') stored.push([row.id as string, row.name as string]);
      else if (row.pending === 0) released = true;
    }
    if (released) session.topics.add('runs');
    refused(stored, planned);
  }
  if (signals.length > 0) {
    await session.run(sql.consumeSignals, [
      signals.map((s) => s.runId),
      signals.map((s) => s.id),
      signals.map((s) => s.now),
    ]);
  }
  if (doomed.length > 0) await cancelDependents(session, doomed);
  return planned.results;
}

/** A commit planned for the commit function: its parameters, and what to make of its answer. */
export interface CommitCall {
  values: unknown[];
  /** The results and wake-ups, or undefined if the function wrote nothing (a run not as expected). */
  finish(row: Row | undefined): { results: CommitResult[]; topics: Set<WakeTopic> } | undefined;
}

/**
 * The short way for what most commits are (workers recording their own runs' progress): the
 * batches in one call to the commit function, in its own transaction, without BEGIN, the lock's
 * round trip or COMMIT; the function locks the runs and checks them. Undefined if the batches need
 * more (consumed signals, dependents to cancel, two workers writing one run): the caller commits
 * the long way, as it does when the function finds a run not as its worker expects (a lease lost,
 * a run gone), which then reports what was refused. Sends nothing: a batch that cannot be
 * planned (a value with no JSON form) throws here, before any SQL.
 */
export function planCommitCall(
  sql: Statements,
  batches: readonly CommitBatch[],
  feedLock: string,
  channel: string,
): { statement: Statement; call: CommitCall } | undefined {
  /** Each run's expected owner: the worker of its leased changes, or null if it only gets events. */
  const owners = new Map<string, string | null>();
  for (const batch of batches) {
    for (const change of batch.changes) {
      if (change.kind === 'consume-signal') return undefined;
      const owner = change.kind === 'step' || change.kind === 'run' ? change.workerId : null;
      const known = owners.get(change.runId);
      if (known === undefined || known === null) owners.set(change.runId, owner);
      else if (owner !== null && owner !== known) return undefined;
    }
  }
  if (owners.size === 0) return undefined;
  // The runs as the lock finds them if their workers are right (unfinished, leased to them); the
  // function checks that they are.
  const runs = new Map<string, RunState>();
  for (const [id, owner] of owners) runs.set(id, { startStatus: 'running', status: 'running', owner });
  const topics = new Set<WakeTopic>();
  const planned = plan(batches, runs, topics);
  if (planned.signals.length > 0 || planned.doomed.length > 0) return undefined;
  const values = [
    ...writes(planned),
    [...owners.keys()],
    [...owners.values()],
    feedLock,
    channel,
    payloads(topics),
  ];
  const finish = (row: Row | undefined) => {
    if (row?.held !== true) return undefined;
    const names = (row.step_names as string[] | null) ?? [];
    refused(
      ((row.step_runs as string[] | null) ?? []).map((run, i) => [run, names[i]!]),
      planned,
    );
    if (row.woke === true) topics.add('runs');
    return { results: planned.results, topics };
  };
  return { statement: sql.applyCommitAlone, call: { values, finish } };
}

/** What the batches do to runs in these states: the rows to write, and each batch's result so far. */
function plan(batches: readonly CommitBatch[], runs: Map<string, RunState>, topics: Set<WakeTopic>) {
  const results: CommitResult[] = batches.map(() => ({ lostLease: [], duplicateSteps: [] }));
  const steps: Record<string, unknown>[] = [];
  /** Which batch each step row came from, to report refused steps to their caller. */
  const stepBatch: number[] = [];
  const events: Record<string, unknown>[] = [];
  const signals: { runId: string; id: number; now: number }[] = [];

  batches.forEach((batch, b) => {
    const byRun = new Map<string, Change[]>();
    for (const change of batch.changes) {
      const list = byRun.get(change.runId);
      if (list === undefined) byRun.set(change.runId, [change]);
      else list.push(change);
    }
    for (const [runId, changes] of byRun) {
      const state = runs.get(runId);
      const leased = changes.filter((c) => c.kind === 'step' || c.kind === 'run');
      if (leased.some((c) => state === undefined || state.owner === null || c.workerId !== state.owner)) {
        results[b]!.lostLease.push(runId);
        continue;
      }
      if (state === undefined) continue; // Only events or signals, for a run that is gone.
      topics.add(`run:${runId}`);
      for (const change of changes) {
        switch (change.kind) {
          case 'step':
            stepBatch.push(b);
            steps.push({
              ord: steps.length,
              run_id: runId,
              name: change.step.name,
              status: change.step.status,
              output: jsonText(change.step.output),
              error: jsonText(change.step.error),
              attempts: change.step.attempts,
              started_at: change.step.startedAt,
              finished_at: change.step.finishedAt,
            });
            break;
          case 'run':
            merge(runId, state, change.update, batch.now);
            if (state.update?.release_lease && !FINAL.has(state.status)) topics.add('runs');
            break;
          case 'event':
            events.push({
              ord: events.length,
              run_id: runId,
              type: change.event.type,
              step: change.event.step ?? null,
              data: jsonText(change.event.data),
              progress: change.event.progress,
              at: change.event.at,
            });
            break;
          case 'consume-signal':
            signals.push({ runId, id: change.signalId, now: batch.now });
            break;
        }
      }
    }
  });

  const updates = [...runs.values()].flatMap((r) => (r.update ? [r.update] : []));
  return { results, steps, stepBatch, events, signals, updates, ...ended(runs) };
}

/** The parameters of applyCommit's writes, which the commit function takes first too. */
function writes({ steps, updates, events, completed }: ReturnType<typeof plan>): unknown[] {
  return [
    steps.length > 0 ? JSON.stringify(steps) : null,
    updates.length > 0 ? JSON.stringify(updates) : null,
    events.length > 0 ? JSON.stringify(events) : null,
    completed.ids,
    completed.now,
  ];
}

/** Reports the steps not recorded (`stored` are those that were: one of that name was already there) to their batches. */
function refused(stored: readonly [run: string, name: string][], planned: ReturnType<typeof plan>): void {
  const recorded = new Set(stored.map(([run, name]) => `${run}\u0000${name}`));
  planned.steps.forEach((step, i) => {
    const key = `${step.run_id as string}\u0000${step.name as string}`;
    // The first of two same-named steps in these batches is the one recorded.
    if (recorded.delete(key)) return;
    planned.results[planned.stepBatch[i]!]!.duplicateSteps.push({
      runId: step.run_id as string,
      name: step.name as string,
    });
  });
}

type Ended = ReadonlyMap<string, { startStatus: RunStatus; status: RunStatus; finalAt?: number }>;

/** The runs that became final here: completed (their children are released) or not (theirs are cancelled). */
function ended(runs: Ended) {
  const completed: { ids: string[]; now: number } = { ids: [], now: 0 };
  const doomed: { id: string; status: string; now: number }[] = [];
  for (const [id, r] of runs) {
    if (FINAL.has(r.startStatus) || !FINAL.has(r.status) || r.finalAt === undefined) continue;
    if (r.status === 'completed') {
      completed.ids.push(id);
      completed.now = Math.max(completed.now, r.finalAt);
    } else doomed.push({ id, status: r.status, now: r.finalAt });
  }
  return { completed, doomed };
}

/** Later batches win field by field, as if each had been applied in turn. */
function merge(id: string, state: RunState, update: RunUpdate, now: number): void {
  const u: MergedUpdate = (state.update ??= {
    id,
    now,
    status: null,
    set_output: false,
    output: null,
    set_error: false,
    error: null,
    degraded: null,
    progress: null,
    available_at: null,
    set_waiting_for: false,
    waiting_for: null,
    set_parked_on: false,
    parked_on: null,
    release_lease: false,
    finished: false,
  });
  u.now = now;
  if (update.status !== undefined) {
    if (!FINAL.has(state.status) && FINAL.has(update.status)) {
      u.finished = true;
      state.finalAt = now;
    }
    u.status = update.status;
    state.status = update.status;
  }
  if ('output' in update) {
    u.set_output = true;
    u.output = jsonText(update.output);
  }
  if (update.error !== undefined) {
    u.set_error = true;
    u.error = jsonText(update.error);
  }
  if (update.degraded !== undefined) u.degraded = update.degraded;
  if (update.progress !== undefined) u.progress = update.progress;
  if (update.availableAt !== undefined) u.available_at = update.availableAt;
  if (update.waitingFor !== undefined) {
    u.set_waiting_for = true;
    u.waiting_for = update.waitingFor;
  }
  if (update.parkedOn !== undefined) {
    u.set_parked_on = true;
    u.parked_on = update.parkedOn;
  }
  // A final run holds no lease, whether or not the worker said so.
  if (update.releaseLease || FINAL.has(state.status)) {
    u.release_lease = true;
    state.owner = null;
  }
}

/**
 * Runs that completed here release their dependents (those left with no pending parent are
 * claimable at once); runs that failed, were cancelled or compensated cancel theirs, transitively.
 */
export async function settleDependents(session: Session, runs: Ended): Promise<void> {
  const { completed, doomed } = ended(runs);
  if (completed.ids.length > 0) {
    const released = await session.run(session.sql.releaseDependents, [completed.ids, completed.now]);
    if (released.some((row) => row.pending_parents === 0)) session.topics.add('runs');
  }
  if (doomed.length > 0) await cancelDependents(session, doomed);
}

async function cancelDependents(
  session: Session,
  doomed: readonly { id: string; status: string; now: number }[],
): Promise<void> {
  const now = Math.max(...doomed.map((c) => c.now));
  const cancelled = await session.run(session.sql.cancelDependents, [
    doomed.map((d) => d.id),
    doomed.map((d) => d.status),
    now,
  ]);
  for (const row of cancelled) session.topics.add(`run:${row.run_id as string}`);
}
