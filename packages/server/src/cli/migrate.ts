// `bulwark migrate`: brings the workflow store the configuration names (PostgreSQL, or SQLite in
// the data directory) to the latest schema, and says which store and whether it was new.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from '../config/env.ts';
import { loadConfig } from '../config/load.ts';
import { normalizeServerSettings } from '../http/settings.ts';
import { openStore, settingsInput } from '../start.ts';
import type { Terminal } from './run.ts';

export interface MigrateOptions {
  config?: string;
  database?: string;
  dataDir?: string;
}

export async function migrateCommand(options: MigrateOptions, out: Terminal, env: Env): Promise<number> {
  const file = options.config ?? (existsSync('bulwark.yaml') ? 'bulwark.yaml' : undefined);
  const fromFile = file === undefined ? {} : ((await loadConfig(file, { env })).server ?? {});
  const settings = normalizeServerSettings(
    settingsInput(fromFile, { dataDir: options.dataDir, databaseUrl: options.database }, env),
  );
  const sqliteFile = join(settings.dataDir, 'bulwark.db');
  const isNew = settings.databaseUrl === undefined && !existsSync(sqliteFile);
  if (settings.databaseUrl === undefined) await mkdir(settings.dataDir, { recursive: true, mode: 0o700 });
  const started = performance.now();
  const { store, label } = await openStore(settings);
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  const ms = Math.round(performance.now() - started);
  out.write(
    `${label}: ${isNew ? 'created with' : 'migrated to'} the latest schema in ${ms}ms` +
      ` (every migration is applied once; running this again changes nothing)\n`,
  );
  return 0;
}
