// The SQLite workflow store: the embedded default.
export type { GroupCommitStats } from './group-commit.ts';
export type { SqliteStoreOptions } from './options.ts';
export { openSqliteStore, SqliteStore, type SqliteStoreStats } from './store.ts';
