// Cache options and their one-time normalisation.
import { type Clock, systemClock } from '../clock/clock.ts';
import {
  clockOption,
  describe,
  fail,
  func,
  isRecord,
  knownKeys,
  num,
  optionsObject,
  str,
} from '../internal/validate.ts';
import type { ExecutionContext } from '../pipeline/context.ts';
import { type CacheStore, MemoryCacheStore } from './store.ts';

export interface CacheOptions {
  /**
   * How long a result stays fresh. `0` stores nothing: the policy then only coalesces
   * concurrent calls with the same key (single-flight).
   */
  ttlMs: number;
  /** Entries the default memory store keeps, least recently used evicted first. @default 1000 */
  maxEntries?: number;
  /**
   * The key of a call; `undefined` bypasses the cache (the call runs as if there were none).
   * @default the call's `key` option (`context.key`)
   */
  key?: (context: ExecutionContext) => string | undefined;
  /** Cache failures too, for `ttlMs` (never served stale). @default false: only successes are cached */
  cacheErrors?: false | { ttlMs: number };
  /**
   * For `maxStaleMs` after an entry expires, answer with it at once and refresh it in the
   * background (one refresh at a time per key).
   * @default false
   */
  staleWhileRevalidate?: false | { maxStaleMs: number };
  /**
   * For `maxStaleMs` after an entry expires, answer with it when the fresh call fails; the
   * outcome is marked degraded.
   * @default false
   */
  staleIfError?: false | { maxStaleMs: number };
  /** Where entries live. Give `maxEntries` to the store itself when you pass one. @default new MemoryCacheStore({ maxEntries }) */
  store?: CacheStore;
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events and statistics. @default 'cache' */
  name?: string;
}

/** @internal */
export interface NormalizedCacheOptions {
  ttlMs: number;
  maxEntries: number | undefined;
  key: (context: ExecutionContext) => string | undefined;
  /** Time to live of a cached failure; `-1` when failures are not cached. */
  errorTtlMs: number;
  /** `-1` when off. */
  revalidateMs: number;
  /** `-1` when off. */
  staleIfErrorMs: number;
  /** How long an entry is kept past its expiry for either stale use. */
  keepStaleMs: number;
  store: CacheStore;
  clock: Clock;
  name: string;
}

const byCallKey = (context: ExecutionContext): string | undefined => context.key;

/** `false`/omitted gives -1; otherwise `{ [field]: ms }`. */
function window(path: string, value: unknown, field: string): number {
  if (value === undefined || value === false) return -1;
  if (!isRecord(value)) fail(path, `expected false or { ${field} }, got ${describe(value)}`);
  knownKeys(path, value, [field]);
  if (value[field] === undefined) fail(`${path}.${field}`, 'is required');
  return num(`${path}.${field}`, value[field], 0, { min: 0, infinite: true });
}

function isStore(value: unknown): value is CacheStore {
  const s = value as Partial<Record<keyof CacheStore, unknown>> | null;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s.get === 'function' &&
    typeof s.set === 'function' &&
    typeof s.delete === 'function'
  );
}

/** @internal */
export function normalizeCacheOptions(options: CacheOptions): NormalizedCacheOptions {
  const o = optionsObject('cache', options);
  knownKeys('cache', o, [
    'ttlMs',
    'maxEntries',
    'key',
    'cacheErrors',
    'staleWhileRevalidate',
    'staleIfError',
    'store',
    'clock',
    'name',
  ]);
  if (o.ttlMs === undefined) fail('cache.ttlMs', 'is required');
  const ttlMs = num('cache.ttlMs', o.ttlMs, 0, { min: 0, infinite: true });
  let store: CacheStore;
  let maxEntries: number | undefined;
  if (o.store !== undefined) {
    if (!isStore(o.store))
      fail('cache.store', `expected a CacheStore (get, set, delete), got ${describe(o.store)}`);
    if (o.maxEntries !== undefined)
      fail('cache.maxEntries', 'give it to the store you pass, not to the cache');
    store = o.store;
  } else {
    maxEntries = num('cache.maxEntries', o.maxEntries, 1_000, { min: 1, integer: true });
    store = new MemoryCacheStore({ maxEntries });
  }
  const revalidateMs = window('cache.staleWhileRevalidate', o.staleWhileRevalidate, 'maxStaleMs');
  const staleIfErrorMs = window('cache.staleIfError', o.staleIfError, 'maxStaleMs');
  // With ttlMs 0 nothing is ever stored, so there is never a stale entry to serve.
  if (ttlMs === 0 && revalidateMs > 0) fail('cache.staleWhileRevalidate', 'needs ttlMs above 0');
  if (ttlMs === 0 && staleIfErrorMs > 0) fail('cache.staleIfError', 'needs ttlMs above 0');
  return {
    ttlMs,
    maxEntries,
    key: func('cache.key', o.key, byCallKey),
    errorTtlMs: window('cache.cacheErrors', o.cacheErrors, 'ttlMs'),
    revalidateMs,
    staleIfErrorMs,
    keepStaleMs: Math.max(0, revalidateMs, staleIfErrorMs),
    store,
    clock: clockOption('cache.clock', o.clock, systemClock),
    name: str('cache.name', o.name, 'cache'),
  };
}
