// Opens the stores for the engine's tests: a real SQLite file, or a fresh schema on the real
// PostgreSQL server (BULWARK_TEST_PG_URL), migrated.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  openPostgresStore,
  openSqliteStore,
  type SqliteStore,
  WorkflowEngine,
  type WorkflowEngineOptions,
  type WorkflowStore,
} from '@bulwark/workflow';
import pg from 'pg';

export const PG_URL = process.env.BULWARK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export function openTestStore(path: string): Promise<SqliteStore> {
  return openSqliteStore({ path });
}

/**
 * An engine on a fresh SQLite file (fast polls, short leases), stopped and its file removed
 * after the test.
 */
export async function engineOnFile(
  t: TestContext,
  options: Partial<WorkflowEngineOptions> = {},
): Promise<{ engine: WorkflowEngine; store: SqliteStore; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-engine-'));
  const path = join(dir, 'runs.db');
  const store = await openTestStore(path);
  const engine = new WorkflowEngine({ store, pollMs: 20, leaseMs: 2_000, ...options });
  t.after(async () => {
    await engine.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { engine, store, path };
}

/** A store on `target`: a SQLite file path, or `pg:<schema>`. */
export function openStoreAt(target: string): Promise<WorkflowStore> {
  if (target.startsWith('pg:'))
    return openPostgresStore({ connectionString: PG_URL, schema: target.slice(3), max: 4 });
  return openSqliteStore({ path: target });
}

export function freshSchema(): string {
  return `bw_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema.replaceAll('"', '""')}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Why PostgreSQL cannot be used, or undefined when it answers. */
export async function postgresUnavailable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return `PostgreSQL is not reachable at ${PG_URL} (${(error as Error).message}); set BULWARK_TEST_PG_URL`;
  } finally {
    await client.end().catch(() => {});
  }
}
