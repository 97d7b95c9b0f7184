// Runs declarative workflows for real: YAML through the config loader, compiled, on an engine
// with a SQLite file in a fresh directory, against HTTP servers on loopback the tests control.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DependencyRegistry } from '@bulwark/core';
import { openSqliteStore, type RunRecord, type TimelineEvent, WorkflowEngine } from '@bulwark/workflow';
import { parseConfig } from '../src/config/load.ts';
import { compileWorkflows } from '../src/declarative/compile.ts';

export interface Declared {
  readonly engine: WorkflowEngine;
  readonly registry: DependencyRegistry;
  /** The storage directory `file.write` writes to. */
  readonly files: string;
  readonly dir: string;
  /** Starts a run and waits for its end; the record, whatever the status. */
  run(workflow: string, input?: unknown): Promise<RunRecord>;
  timeline(runId: string): Promise<TimelineEvent[]>;
  close(): Promise<void>;
}

/** Loads `yaml` (with `env` for `${NAME}`), compiles its workflows and starts an engine for them. */
export async function declared(yaml: string, env: Record<string, string> = {}): Promise<Declared> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-declarative-'));
  const config = parseConfig(yaml, { env });
  const registry = new DependencyRegistry(config);
  const files = config.storage?.dir ?? join(dir, 'files');
  const store = await openSqliteStore({ path: join(dir, 'bulwark.db'), durability: 'normal' });
  await store.migrate();
  const engine = new WorkflowEngine({ store, registry, pollMs: 20 });
  engine.register(...compileWorkflows(config.workflows ?? {}, { registry, storageDir: files }));
  engine.startWorker();
  return {
    engine,
    registry,
    files,
    dir,
    async run(workflow, input = {}) {
      const { id } = await engine.start(workflow, input);
      await engine.result(id).catch(() => {});
      return (await engine.getRun(id))!;
    },
    async timeline(runId) {
      const events: TimelineEvent[] = [];
      for await (const event of engine.timeline(runId)) events.push(event);
      return events;
    },
    async close() {
      await engine.stop();
      await registry.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Site {
  readonly url: string;
  /** Requests in the order they arrived: `METHOD /path`. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** A server on 127.0.0.1 and a free port, answering with `handle`. */
export async function site(
  handle: (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>,
): Promise<Site> {
  const requests: string[] = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    requests.push(`${req.method} ${req.url}`);
    try {
      await handle(req, res, body);
    } catch (error) {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A loopback URL where nothing listens: a server's port, closed again. */
export async function deadUrl(): Promise<string> {
  const gone = await site(() => {});
  await gone.close();
  return gone.url;
}
