export type { TimeoutOptions } from './options.ts';
export { TimeoutPolicy, type TimeoutStats, timeout } from './timeout.ts';
