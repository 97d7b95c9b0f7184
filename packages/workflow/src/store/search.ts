// What both stores share of the run search: the statement a search needs, the range a run-id
// prefix covers, and the offset's check.
import { type ListRunsFilter, MAX_RUN_OFFSET } from './types.ts';

/**
 * The least string above every string that starts with `prefix` (in code-unit order, which is
 * SQLite's BINARY and PostgreSQL's "C" order for the ASCII of run ids): `id >= prefix AND id <
 * prefixEnd(prefix)` is a prefix match that an index on `id` answers as a range.
 */
export function prefixEnd(prefix: string): string {
  const last = prefix.charCodeAt(prefix.length - 1);
  // Nothing follows an empty prefix or one ending in a surrogate or U+FFFF in one code unit.
  if (prefix === '' || last >= 0xd800) return `${prefix}\u{10FFFF}`;
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

/** `filter.offset`, checked: a whole number from 0 to `MAX_RUN_OFFSET`. */
export function runOffset(filter: ListRunsFilter): number {
  const offset = filter.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_RUN_OFFSET)
    throw new TypeError(`listRuns: offset must be a whole number from 0 to ${MAX_RUN_OFFSET}, got ${offset}`);
  return offset;
}

/** Of a store's three statements (no search, by text, by input), the one `filter.search` needs. */
export function bySearch<T>(filter: ListRunsFilter, plain: T, text: T, input: T): T {
  const { search } = filter;
  return search === undefined ? plain : 'text' in search ? text : input;
}
