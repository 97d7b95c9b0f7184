export { BulkheadPolicy, type BulkheadStats, bulkhead } from './bulkhead.ts';
export type { BulkheadOptions } from './options.ts';
