// What both stores check before they write an audit entry or read the log: the same rules, in
// one place, with errors that name the field.
import type { Json, ListAuditFilter, NewAuditEntry } from './types.ts';

const OUTCOMES: ReadonlySet<string> = new Set(['ok', 'denied', 'failed']);

/** Entries per page of `listAudit`. */
const AUDIT_DEFAULT_LIMIT = 100;
const AUDIT_MAX_LIMIT = 1_000;

/** Throws a TypeError naming the first field that is wrong. */
export function checkAuditEntry(entry: NewAuditEntry): void {
  if (entry === null || typeof entry !== 'object')
    throw new TypeError('appendAudit: expected an entry object');
  if (!Number.isFinite(entry.at))
    throw new TypeError(`appendAudit: at must be a time in ms, got ${entry.at}`);
  for (const field of ['actor', 'role', 'action'] as const) {
    if (typeof entry[field] !== 'string' || entry[field].length === 0)
      throw new TypeError(`appendAudit: ${field} must be a non-empty string`);
  }
  for (const field of ['target', 'requestId'] as const) {
    if (entry[field] !== undefined && typeof entry[field] !== 'string')
      throw new TypeError(`appendAudit: ${field} must be a string when given`);
  }
  if (!OUTCOMES.has(entry.outcome))
    throw new TypeError(
      `appendAudit: outcome must be one of ok, denied, failed, got ${String(entry.outcome)}`,
    );
}

/** The page size and cursor of a `listAudit` call: limit 1 to 1000 (default 100), `before` an id or null. */
export function auditPage(filter: ListAuditFilter = {}): { limit: number; before: number | null } {
  const limit = filter.limit ?? AUDIT_DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1)
    throw new TypeError(`listAudit: limit must be a whole number of at least 1, got ${limit}`);
  const before = filter.before ?? null;
  if (before !== null && !Number.isFinite(before))
    throw new TypeError(`listAudit: before must be an entry id, got ${before}`);
  return { limit: Math.min(limit, AUDIT_MAX_LIMIT), before };
}

/**
 * An entry as both stores write it: the audit table's columns, in their order, its data as the
 * store's JSON text.
 */
export function auditRow(entry: NewAuditEntry, json: (value: Json | undefined) => string | null) {
  return {
    at: entry.at,
    actor: entry.actor,
    role: entry.role,
    action: entry.action,
    target: entry.target ?? null,
    request_id: entry.requestId ?? null,
    data: json(entry.data),
    outcome: entry.outcome,
  };
}
