// Rows as PostgreSQL returns them, turned into the store's records; and values turned into the
// text the statements take.
import type { CustomTypesConfig } from 'pg';
import type {
  ClaimedRun,
  Json,
  RunRecord,
  RunStatus,
  Signal,
  StepRecord,
  StoredError,
  TimelineEvent,
} from '../types.ts';

const INT8 = 20;
const JSON_OID = 114;
const JSONB = 3802;
const identity = (value: string) => value;

/**
 * Parsers for this store's queries only (a pool brought by the caller keeps its own): BIGINT ms
 * as numbers, and jsonb as its text, parsed here, so that SQL NULL (no value) and JSON `null`
 * (a workflow that returned null) stay apart.
 */
export const types: CustomTypesConfig = {
  // pg-types' overloaded signature cannot be written as one function: cast once, here.
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8) return Number;
    if (oid === JSONB || oid === JSON_OID) return identity;
    return defaultParser(oid, format);
  }) as unknown as CustomTypesConfig['getTypeParser'],
};

let defaultParser: (oid: number, format?: 'text' | 'binary') => (value: string) => unknown = () => identity;

/** Set once pg is loaded: the parsers of every other type stay pg's own. */
export function useDefaultParsers(getTypeParser: typeof defaultParser): void {
  defaultParser = getTypeParser;
}

export type Row = Record<string, unknown>;

function json(value: unknown): Json | undefined {
  if (value === null || value === undefined) return undefined;
  const parsed = JSON.parse(value as string) as Json;
  return (value as string).includes(MARK) ? mapStrings(parsed, unescapeNul) : parsed;
}

function opt<T>(value: unknown): T | undefined {
  return value === null || value === undefined ? undefined : (value as T);
}

export function toRun(row: Row): RunRecord {
  return {
    id: row.id as string,
    workflow: row.workflow as string,
    version: row.version as string,
    status: row.status as RunStatus,
    priority: row.priority as number,
    input: json(row.input) ?? null,
    output: json(row.output),
    error: json(row.error) as StoredError | undefined,
    degraded: row.degraded as boolean,
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
  };
}

export function toClaimed(row: Row): ClaimedRun {
  return { ...toRun(row), takenOver: row.taken_over as boolean };
}

export function toStep(row: Row): StepRecord {
  return {
    runId: row.run_id as string,
    name: row.name as string,
    seq: row.seq as number,
    status: row.status as StepRecord['status'],
    output: json(row.output),
    error: json(row.error) as StoredError | undefined,
    attempts: row.attempts as number,
    startedAt: row.started_at as number,
    finishedAt: row.finished_at as number,
  };
}

export function toEvent(row: Row): TimelineEvent {
  return {
    seq: row.seq as number,
    runId: row.run_id as string,
    type: row.type as string,
    step: opt(row.step),
    data: json(row.data),
    progress: row.progress as number,
    at: row.at as number,
  };
}

export function toSignal(row: Row): Signal {
  return {
    id: row.id as number,
    runId: row.run_id as string,
    name: row.name as string,
    payload: json(row.payload) ?? null,
    createdAt: row.created_at as number,
  };
}

/** A value as the JSON text a statement casts to jsonb; undefined stays SQL NULL. */
export function jsonText(value: unknown): string | null {
  if (value === undefined) return null;
  const text = JSON.stringify(value);
  // jsonb cannot hold U+0000: such strings (and, to stay reversible, those with the mark) are escaped.
  return text.includes('\\u0000') || text.includes(MARK)
    ? JSON.stringify(mapStrings(value as Json, escapeNul))
    : text;
}

/**
 * U+0000 is stored as MARK + '0', and MARK itself as MARK + MARK: every MARK in a stored string
 * starts a pair, so the reading back is exact. MARK is a private-use character, so the cost of
 * the escape falls on text that almost never occurs.
 */
const MARK = '\uE000';

function escapeNul(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is the very character jsonb refuses.
  return text.replace(/[\uE000\u0000]/g, (c) => (c === MARK ? MARK + MARK : `${MARK}0`));
}

function unescapeNul(text: string): string {
  return text.replace(/\uE000([\uE0000])/g, (_, c: string) => (c === '0' ? '\u0000' : MARK));
}

/** A copy of `value` with every string, keys included, passed through `f`. */
function mapStrings(value: Json, f: (text: string) => string): Json {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const [k, v] of Object.entries(value)) out[f(k)] = mapStrings(v, f);
    return out;
  }
  return value;
}

/** Orders claimed runs as the claim did (RETURNING keeps no order). */
export function claimOrder(a: RunRecord, b: RunRecord): number {
  return b.priority - a.priority || a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
