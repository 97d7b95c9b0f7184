// Rows as PostgreSQL returns them, turned into the store's records; and values turned into the
// text the statements take.
import type { CustomTypesConfig } from 'pg';
import { type Row, rowReader } from '../rows.ts';
import type { ClaimedRun, Json, RunRecord } from '../types.ts';

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

export type { Row } from '../rows.ts';

/** A jsonb column's text as the value stored (U+0000 unescaped); SQL NULL is undefined. */
export function json(value: unknown): Json | undefined {
  if (value === null || value === undefined) return undefined;
  const parsed = JSON.parse(value as string) as Json;
  return (value as string).includes(MARK) ? mapStrings(parsed, unescapeNul) : parsed;
}

const read = rowReader(json);

export const toRun = read.run;
export const toStep = read.step;
export const toEvent = read.event;
export const toSignal = read.signal;
export const toFeed = read.feed;
export const toAudit = read.audit;
export const toParked = read.parked;

export function toClaimed(row: Row): ClaimedRun {
  return { ...toRun(row), takenOver: row.taken_over as boolean, hasSteps: row.has_steps as boolean };
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
