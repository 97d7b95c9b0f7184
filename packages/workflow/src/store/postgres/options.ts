// PostgreSQL store options and their one-time normalisation.
import { type Clock, InvalidOptionsError, systemClock } from '@bulwark/core';
import type { Pool } from 'pg';

export interface PostgresStoreOptions {
  /** Where the store's own pool connects. @default the `PG*` environment variables (pg's defaults) */
  connectionString?: string;
  /** A pool of your own (the store never ends it); excludes `connectionString` and `max`. */
  pool?: Pool;
  /** The schema holding the store's tables; created by `migrate()`. @default 'bulwark' */
  schema?: string;
  /** Connections in the store's own pool (the store opens up to three more: LISTEN, and two for idle claims). @default 10 */
  max?: number;
  /**
   * Concurrent `commit()` and `enqueue()` calls of one tick share one transaction (each call's
   * batch under its own savepoint if one fails), so many runs' progress costs one commit. @default true
   */
  groupCommit?: boolean;
  /** Wake-ups from other processes by LISTEN/NOTIFY; false polls instead (e.g. behind PgBouncer in transaction mode). @default true */
  listen?: boolean;
  /** How often subscribers are woken while LISTEN is off or its connection is down. @default 1000 */
  pollMs?: number;
  /** Timers for polling and reconnecting (the store reads no time otherwise). @default systemClock */
  clock?: Clock;
}

/** @internal */
export interface NormalizedPostgresStoreOptions {
  connectionString: string | undefined;
  pool: Pool | undefined;
  schema: string;
  max: number;
  groupCommit: boolean;
  listen: boolean;
  pollMs: number;
  clock: Clock;
}

const KEYS = ['connectionString', 'pool', 'schema', 'max', 'groupCommit', 'listen', 'pollMs', 'clock'];
/** The channel `bulwark_<schema>` must fit PostgreSQL's 63-byte identifiers. */
const MAX_SCHEMA_BYTES = 63 - 'bulwark_'.length;

function fail(path: string, message: string): never {
  throw new InvalidOptionsError(path, message);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return typeof value === 'number' ? String(value) : typeof value;
}

function bool(path: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(path, `expected true or false, got ${describe(value)}`);
  return value;
}

function int(path: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value))
    fail(path, `expected a whole number, got ${describe(value)}`);
  if (value < min) fail(path, `must be at least ${min}, got ${value}`);
  return value;
}

function text(path: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0)
    fail(path, `expected a non-empty string, got ${describe(value)}`);
  return value;
}

/** @internal */
export function normalizePostgresStoreOptions(
  options: PostgresStoreOptions = {},
): NormalizedPostgresStoreOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    fail('postgresStore', `expected an options object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!KEYS.includes(key)) fail(`postgresStore.${key}`, 'unknown option');
  }
  const o = options as Record<string, unknown>;
  const pool = o.pool as Pool | undefined;
  if (
    pool !== undefined &&
    (typeof pool !== 'object' || pool === null || typeof pool.connect !== 'function')
  ) {
    fail('postgresStore.pool', `expected a pg Pool, got ${describe(pool)}`);
  }
  if (pool !== undefined && o.connectionString !== undefined) {
    fail('postgresStore.connectionString', 'give a connection string or a pool, not both');
  }
  if (pool !== undefined && o.max !== undefined)
    fail('postgresStore.max', 'sizes the store’s own pool; yours keeps its size');
  const schema = text('postgresStore.schema', o.schema) ?? 'bulwark';
  if (Buffer.byteLength(schema) > MAX_SCHEMA_BYTES) {
    fail(
      'postgresStore.schema',
      `must be at most ${MAX_SCHEMA_BYTES} bytes (the wake-up channel is bulwark_<schema>)`,
    );
  }
  const clock = o.clock as Clock | undefined;
  if (
    clock !== undefined &&
    (typeof clock?.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function')
  ) {
    fail('postgresStore.clock', `expected a Clock, got ${describe(clock)}`);
  }
  return {
    connectionString: text('postgresStore.connectionString', o.connectionString),
    pool,
    schema,
    max: int('postgresStore.max', o.max, 10, 1),
    groupCommit: bool('postgresStore.groupCommit', o.groupCommit, true),
    listen: bool('postgresStore.listen', o.listen, true),
    pollMs: int('postgresStore.pollMs', o.pollMs, 1000, 1),
    clock: clock ?? systemClock,
  };
}
