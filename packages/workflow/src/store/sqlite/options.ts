// Options of the SQLite workflow store, validated and normalised once when the store opens.
import { InvalidOptionsError } from '@bulwark/core';
import { PREFIX_PATTERN } from './sql.ts';

export interface SqliteStoreOptions {
  /** The database file (created if missing), or `':memory:'` for a store that lives and dies with the process. */
  path: string;
  /**
   * `PRAGMA synchronous`. `'full'` syncs the write-ahead log on every commit, so no start or
   * step is acknowledged before it survives a power loss; `'normal'` survives a process crash
   * but may lose the last commits on a power loss, for fewer fsyncs.
   * @default 'full'
   */
  durability?: 'full' | 'normal';
  /** Prefix of every table (letters, digits, underscores), so several stores can share one file. @default 'bulwark_' */
  tablePrefix?: string;
  /** How long a write waits for another process's lock on the file before failing. @default 5000 */
  busyTimeoutMs?: number;
}

export interface NormalizedSqliteOptions {
  path: string;
  durability: 'full' | 'normal';
  tablePrefix: string;
  busyTimeoutMs: number;
}

const KEYS = ['path', 'durability', 'tablePrefix', 'busyTimeoutMs'];

function fail(path: string, message: string): never {
  throw new InvalidOptionsError(path, message);
}

export function normalizeSqliteOptions(options: SqliteStoreOptions): NormalizedSqliteOptions {
  if (typeof options !== 'object' || options === null) fail('sqliteStore', 'expected an options object');
  for (const key of Object.keys(options)) {
    if (!KEYS.includes(key)) fail(`sqliteStore.${key}`, `unknown option; known: ${KEYS.join(', ')}`);
  }
  const { path, durability = 'full', tablePrefix = 'bulwark_', busyTimeoutMs = 5_000 } = options;
  if (typeof path !== 'string' || path.length === 0)
    fail('sqliteStore.path', 'expected a file path or ":memory:"');
  if (durability !== 'full' && durability !== 'normal') {
    fail('sqliteStore.durability', `expected 'full' or 'normal', got ${JSON.stringify(durability)}`);
  }
  if (typeof tablePrefix !== 'string' || (tablePrefix !== '' && !PREFIX_PATTERN.test(tablePrefix))) {
    fail('sqliteStore.tablePrefix', 'expected letters, digits and underscores, not starting with a digit');
  }
  if (typeof busyTimeoutMs !== 'number' || !Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    fail('sqliteStore.busyTimeoutMs', `expected a whole number of ms >= 0, got ${String(busyTimeoutMs)}`);
  }
  return { path, durability, tablePrefix, busyTimeoutMs };
}
