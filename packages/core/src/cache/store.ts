// Where a cache keeps its entries: an interface that may be asynchronous (Redis later) and the
// synchronous in-memory LRU store that is the default.
import { Lru } from '../internal/lru.ts';
import { knownKeys, num, optionsObject } from '../internal/validate.ts';

/** One cached outcome. Times are the cache clock's epoch milliseconds. */
export interface CacheEntry {
  /** `true` for a result, `false` for a cached failure (`value` is then the error). */
  readonly ok: boolean;
  readonly value: unknown;
  /** Fresh until then. */
  readonly expiresAt: number;
  /** Usable as a stale answer until then; a store may drop the entry after it. */
  readonly staleUntil: number;
}

/**
 * A cache's storage. Each method may answer at once or with a promise; the cache keeps a
 * synchronous store's hits synchronous. Expiry is the cache's job (checked on read), though a
 * remote store should also drop an entry after `staleUntil` so that it does not grow forever.
 */
export interface CacheStore {
  get(key: string): CacheEntry | undefined | PromiseLike<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry): void | PromiseLike<void>;
  delete(key: string): void | PromiseLike<void>;
  /** Entries held, when the store can tell cheaply (reported in the cache's stats). */
  readonly size?: number;
}

/** An in-memory LRU store, bounded by `maxEntries`. */
export class MemoryCacheStore implements CacheStore {
  readonly maxEntries: number;
  readonly #entries: Lru<string, CacheEntry>;

  /** @param options.maxEntries entries kept, the least recently used evicted first. @default 1000 */
  constructor(options?: { maxEntries?: number }) {
    const o = optionsObject('MemoryCacheStore', options);
    knownKeys('MemoryCacheStore', o, ['maxEntries']);
    this.maxEntries = num('MemoryCacheStore.maxEntries', o.maxEntries, 1_000, { min: 1, integer: true });
    this.#entries = new Lru(this.maxEntries);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): CacheEntry | undefined {
    return this.#entries.get(key);
  }

  set(key: string, entry: CacheEntry): void {
    this.#entries.set(key, entry);
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** Drops every entry. */
  clear(): void {
    this.#entries.clear();
  }
}
