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
  /**
   * With durability `'full'` on a file: SQLite commits without syncing and the store runs the
   * log's fdatasync in libuv's thread pool, settling each write (and waking listeners) once a
   * sync begun after its commit has ended. As durable as `'full'`, but the event loop never
   * waits on the disk, and syncs overlap (two at most), each covering every commit before it. After
   * a failed sync every write fails with its error: reopen the store. The log's
   * checkpoints move off it too, into a worker thread with its own connection. Writes settle
   * on an I/O callback, not in the turn after they were made, so tests that drive a virtual
   * clock over store writes should leave it off.
   * @default false
   */
  syncInThreadPool?: boolean;
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
  syncInThreadPool: boolean;
}

const KEYS = ['path', 'durability', 'tablePrefix', 'busyTimeoutMs', 'syncInThreadPool'];

function fail(path: string, message: string): never {
  throw new InvalidOptionsError(path, message);
}

export function normalizeSqliteOptions(options: SqliteStoreOptions): NormalizedSqliteOptions {
  if (typeof options !== 'object' || options === null) fail('sqliteStore', 'expected an options object');
  for (const key of Object.keys(options)) {
    if (!KEYS.includes(key)) fail(`sqliteStore.${key}`, `unknown option; known: ${KEYS.join(', ')}`);
  }
  const {
    path,
    durability = 'full',
    tablePrefix = 'bulwark_',
    busyTimeoutMs = 5_000,
    syncInThreadPool = false,
  } = options;
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
  if (typeof syncInThreadPool !== 'boolean') {
    fail('sqliteStore.syncInThreadPool', `expected a boolean, got ${String(syncInThreadPool)}`);
  }
  return { path, durability, tablePrefix, busyTimeoutMs, syncInThreadPool };
}
