export type { ThreadPoolInit, ThreadPoolOptions } from './options.ts';
export { ThreadPool, type ThreadPoolRunOptions, type ThreadPoolStats, threadPool } from './pool.ts';
