// How runs, steps and timeline events look in the API: the store's records with priorities by
// name and nothing internal (leases stay inside). Times are epoch milliseconds, like the store's.
import {
  type Json,
  PRIORITIES,
  RUN_STATUSES,
  type RunRecord,
  type StepRecord,
  type TimelineEvent,
} from '@bulwark/workflow';

const PRIORITY_NAMES = Object.fromEntries(Object.entries(PRIORITIES).map(([name, n]) => [n, name])) as Record<
  number,
  string
>;

const anyJson = { description: 'Any JSON value.' } as const;
const nullableString = { type: ['string', 'null'] } as const;
const nullableInteger = { type: ['integer', 'null'] } as const;
const storedError = {
  type: ['object', 'null'],
  properties: {
    name: { type: 'string' },
    message: { type: 'string' },
    code: { type: 'string' },
    transient: { type: 'boolean' },
    data: { type: 'object', additionalProperties: true },
  },
} as const;

export const runSchema = {
  $id: 'Run',
  type: 'object',
  required: ['id', 'workflow', 'version', 'status', 'priority', 'progress', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    workflow: { type: 'string' },
    version: { type: 'string' },
    status: { type: 'string', enum: RUN_STATUSES },
    priority: { type: 'string', enum: Object.keys(PRIORITIES) },
    input: anyJson,
    output: anyJson,
    error: storedError,
    degraded: {
      type: 'boolean',
      description: 'Completed through a fallback: usable, but not the real thing.',
    },
    progress: { type: 'number', minimum: 0, maximum: 100 },
    idempotencyKey: nullableString,
    parentRunId: nullableString,
    concurrencyKey: nullableString,
    pendingParents: { type: 'integer', description: 'Runs it depends on that have not completed yet.' },
    waitingFor: { ...nullableString, description: 'The event a waiting run waits for.' },
    cancelRequested: nullableString,
    correlationId: nullableString,
    availableAt: { type: 'integer' },
    deadlineAt: nullableInteger,
    createdAt: { type: 'integer', description: 'Epoch milliseconds, like every time in this API.' },
    updatedAt: { type: 'integer' },
    finishedAt: nullableInteger,
  },
} as const;

export const stepSchema = {
  $id: 'Step',
  type: 'object',
  required: ['name', 'seq', 'status', 'attempts', 'startedAt', 'finishedAt'],
  properties: {
    name: { type: 'string' },
    seq: { type: 'integer' },
    status: { type: 'string', enum: ['completed', 'failed'] },
    output: anyJson,
    error: storedError,
    attempts: { type: 'integer' },
    startedAt: { type: 'integer' },
    finishedAt: { type: 'integer' },
  },
} as const;

export const eventSchema = {
  $id: 'TimelineEvent',
  type: 'object',
  required: ['seq', 'runId', 'type', 'progress', 'at'],
  properties: {
    seq: { type: 'integer', description: 'Increases across the whole store: the cursor for resuming.' },
    runId: { type: 'string' },
    type: { type: 'string', description: '`run:queued`, `step:completed`, `compensation:failed`, ...' },
    step: nullableString,
    data: anyJson,
    progress: { type: 'number' },
    at: { type: 'integer' },
  },
} as const;

/** The stack stays in the store (and the log): an API answer shows what failed, not where in our code. */
function errorView(error: RunRecord['error']) {
  if (error === undefined) return null;
  const { stack: _stack, ...rest } = error;
  return rest;
}

export function runView(run: RunRecord) {
  return {
    id: run.id,
    workflow: run.workflow,
    version: run.version,
    status: run.status,
    priority: PRIORITY_NAMES[run.priority] ?? String(run.priority),
    input: run.input,
    output: run.output ?? null,
    error: errorView(run.error),
    degraded: run.degraded,
    progress: run.progress,
    idempotencyKey: run.idempotencyKey ?? null,
    parentRunId: run.parentRunId ?? null,
    concurrencyKey: run.concurrencyKey ?? null,
    pendingParents: run.pendingParents,
    waitingFor: run.waitingFor ?? null,
    cancelRequested: run.cancelRequested ?? null,
    correlationId: run.correlationId ?? null,
    availableAt: run.availableAt,
    deadlineAt: run.deadlineAt ?? null,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    finishedAt: run.finishedAt ?? null,
  };
}

export function stepView(step: StepRecord) {
  return {
    name: step.name,
    seq: step.seq,
    status: step.status,
    output: step.output ?? null,
    error: errorView(step.error),
    attempts: step.attempts,
    startedAt: step.startedAt,
    finishedAt: step.finishedAt,
  };
}

/** An event's data with any stored error's stack left in the store, as for run errors above. */
export function withoutStack(data: Json | undefined): Json {
  if (data === undefined) return null;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return data;
  const error = data.error;
  if (error === null || typeof error !== 'object' || Array.isArray(error) || !('stack' in error)) return data;
  const { stack: _stack, ...rest } = error;
  return { ...data, error: rest };
}

export function eventView(event: TimelineEvent) {
  return {
    seq: event.seq,
    runId: event.runId,
    type: event.type,
    step: event.step ?? null,
    data: withoutStack(event.data),
    progress: event.progress,
    at: event.at,
  };
}
