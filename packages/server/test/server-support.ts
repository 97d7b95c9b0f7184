// Builds a real server for a test: a SQLite file in a fresh directory, a registry with a few
// dependencies, an engine with a test workflow, and the Fastify app (for `inject` or `listen`).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Clock, type DependencyOptions, DependencyRegistry } from '@bulwark/core';
import { defineWorkflow, openSqliteStore, type WorkflowDefinition, WorkflowEngine } from '@bulwark/workflow';
import type { DestinationStream } from 'pino';
import { type BulwarkServer, createServer } from '../src/http/server.ts';
import {
  normalizeServerSettings,
  type ServerSettings,
  type ServerSettingsInput,
} from '../src/http/settings.ts';

export const ADMIN_KEY = 'admin-secret-0123456789abcdef';
export const OPERATOR_KEY = 'operator-secret-0123456789abcdef';
export const VIEWER_KEY = 'viewer-secret-0123456789abcdef';

/** Two steps and an event wait: enough to see a timeline move. */
export const greet = defineWorkflow(
  {
    name: 'greet',
    version: '1',
    description: 'Says hello, then waits for a reply',
    steps: ['hello', 'reply'],
  },
  async (ctx, input: { name: string; wait?: boolean; fail?: boolean }) => {
    const hello = await ctx.step('hello', () => `hello ${input.name}`);
    // No retries: a test that asks for a failure gets it at once.
    if (input.fail) await ctx.step('boom', { retry: false }, () => Promise.reject(new Error('boom')));
    const reply = input.wait ? await ctx.waitForEvent<string>('reply', { timeoutMs: 60_000 }) : 'none';
    return { hello, reply };
  },
);

export interface TestServer extends BulwarkServer {
  readonly engine: WorkflowEngine;
  readonly registry: DependencyRegistry;
  readonly dir: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** The server's clock (rate limits, sessions); the engine keeps the real one. */
  clock?: Clock;
  /** Where the server's JSON log goes (with settings.logLevel). */
  logStream?: DestinationStream;
  settings?: ServerSettingsInput;
  dependencies?: Record<string, DependencyOptions>;
  workflows?: WorkflowDefinition<any, any>[];
  /** Start the engine's worker. @default true */
  worker?: boolean;
}

/** The settings of a test server in `dir`: silent, the three test keys, `overrides` on top. */
export function testSettings(dir: string, overrides: ServerSettingsInput = {}): ServerSettings {
  return normalizeServerSettings({
    dataDir: dir,
    logLevel: 'silent',
    // A loaded test machine stalls the loop (fsync, GC) past the 200 ms default and would shed at
    // random; the shedding tests set their own limit.
    maxEventLoopDelayMs: 60_000,
    apiKeys: [
      { name: 'ada', role: 'admin', secret: ADMIN_KEY },
      { name: 'otto', role: 'operator', secret: OPERATOR_KEY },
      { name: 'vera', role: 'viewer', secret: VIEWER_KEY },
    ],
    ...overrides,
  });
}

export async function testServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-server-'));
  const store = await openSqliteStore({ path: join(dir, 'bulwark.db'), durability: 'normal' });
  await store.migrate();
  const registry = new DependencyRegistry({
    dependencies: options.dependencies ?? {
      payments: { kind: 'http', critical: true },
      cache: { kind: 'cache' },
    },
  });
  const engine = new WorkflowEngine({ store, registry, pollMs: 50 });
  engine.register(...(options.workflows ?? [greet]));
  if (options.worker !== false) engine.startWorker();
  const settings = testSettings(dir, options.settings);
  const server = await createServer({
    registry,
    engine,
    store,
    settings,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.logStream === undefined ? {} : { logStream: options.logStream }),
  });
  await server.app.ready();
  return {
    ...server,
    engine,
    registry,
    dir,
    async close() {
      await server.app.close();
      await engine.stop();
      await registry.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The header that authenticates as a role's test key. */
export function as(role: 'admin' | 'operator' | 'viewer'): { authorization: string } {
  const key = role === 'admin' ? ADMIN_KEY : role === 'operator' ? OPERATOR_KEY : VIEWER_KEY;
  return { authorization: `Bearer ${key}` };
}
