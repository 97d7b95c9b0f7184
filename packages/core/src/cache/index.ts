export { CachePolicy, type CacheStats, cache } from './cache.ts';
export type { CacheOptions } from './options.ts';
export { type CacheEntry, type CacheStore, MemoryCacheStore } from './store.ts';
