// The PostgreSQL workflow store: for many workers on many machines.
export type { PostgresStoreOptions } from './options.ts';
export { openPostgresStore, PostgresStore } from './store.ts';
