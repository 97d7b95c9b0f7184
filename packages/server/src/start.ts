// `bulwark start`: the configuration (a file, or the built-in examples), the store, the registry,
// the engine and the HTTP server put together, a banner printed, and a graceful shutdown on
// SIGTERM/SIGINT (readiness fails at once, steps in progress finish, the store closes cleanly).
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { DependencyRegistry, type ReloadResult } from '@bulwark/core';
import {
  openPostgresStore,
  openSqliteStore,
  type WorkflowDefinition,
  WorkflowEngine,
  type WorkflowStore,
} from '@bulwark/workflow';
import type { Env } from './config/env.ts';
import { type BulwarkConfig, parseConfig } from './config/load.ts';
import { compileWorkflow, compileWorkflows } from './declarative/compile.ts';
import type { WorkflowDeclaration } from './declarative/types.ts';
import { EXAMPLES_CONFIG, EXAMPLES_URL_VARIABLE } from './examples/config.ts';
import { startExampleUpstream } from './examples/upstream.ts';
import { exampleWorkflows } from './examples/workflows.ts';
import type { ReloadSummary, WorkflowChanges } from './http/context.ts';
import { checkListenAddress, ensureAdminKey, loginUrl } from './http/keys.ts';
import { buildDashboard } from './http/plugins/dashboard.ts';
import { type BulwarkServer, createServer } from './http/server.ts';
import {
  normalizeServerSettings,
  parseApiKeys,
  type ServerSettings,
  type ServerSettingsInput,
} from './http/settings.ts';
import { openRegistry } from './registry.ts';
import { Schedules } from './schedules.ts';

/** Where the banner goes; also the JSON log's destination when given. */
export interface Output {
  write(text: string): unknown;
}

export interface StartServerOptions {
  /** The configuration file. @default ./bulwark.yaml if it exists, else the built-in defaults */
  config?: string;
  /**
   * Reload the configuration file on SIGHUP and when it changes (`POST /api/config/reload`
   * reloads it either way). @default true
   */
  watch?: boolean;
  /** Overrides `server.host`. */
  host?: string;
  /** Overrides `server.port`; 0 picks a free port. */
  port?: number;
  /** Overrides `server.dataDir` (relative to the working directory). */
  dataDir?: string;
  /**
   * Without a configuration file: start the built-in examples (a loopback pet shop API, three
   * dependencies on it and two workflows). Ignored with a file. @default true
   */
  examples?: boolean;
  /** More workflows to register (an embedding application's own). */
  workflows?: readonly WorkflowDefinition<any, any>[];
  /** Variables for the configuration, BULWARK_API_KEYS and BULWARK_DATABASE_URL. @default process.env */
  env?: Env;
  /** Shut down gracefully on SIGTERM and SIGINT, then exit the process (0 when clean). @default false */
  signals?: boolean;
  /** @default process.stdout */
  stdout?: Output;
  /**
   * Build the dashboard first if it is missing and Vite is installed (see docs/dashboard.md).
   * @default the value of `signals` (so `bulwark start` builds it, an embedding application not)
   */
  buildDashboard?: boolean;
}

export interface StartedServer {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  readonly server: BulwarkServer;
  readonly settings: ServerSettings;
  /**
   * Shuts down: readiness fails at once, the engine stops claiming and lets steps in progress
   * finish (up to `shutdownGraceMs`), then the HTTP server, the registry and the store close.
   */
  close(): Promise<void>;
}

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** What the configuration gave: the registry, the workflows, and what must be closed with them. */
interface Sources {
  readonly config: BulwarkConfig;
  readonly registry: DependencyRegistry;
  readonly workflows: WorkflowDefinition<any, any>[];
  readonly description: string;
  readonly reload: (() => Promise<ReloadSummary>) | undefined;
  /** Called with each configuration a reload put in effect (the file's only). */
  onConfig(apply: (config: BulwarkConfig) => WorkflowChanges): void;
  readonly close: () => Promise<void>;
}

export async function startServer(options: StartServerOptions = {}): Promise<StartedServer> {
  const env = options.env ?? process.env;
  const stdout = options.stdout ?? process.stdout;
  const file = options.config ?? (existsSync('bulwark.yaml') ? 'bulwark.yaml' : undefined);
  // Undone in reverse order if a later part fails to start, so a failed start leaves nothing open.
  const cleanups: (() => Promise<unknown>)[] = [];
  const undo = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    // The log is set up once the settings are known; reloads before that have nobody to tell.
    let log: (message: string, data?: Record<string, unknown>) => void = () => {};
    const sources =
      file === undefined
        ? await embedded(options.examples ?? true, env)
        : await fromFile(file, env, options.watch ?? true, (message, data) => log(message, data));
    cleanups.push(sources.close);

    const settings = normalizeServerSettings(settingsInput(sources.config.server ?? {}, options, env));
    checkListenAddress(settings.host, settings.apiKeys.length > 0);
    await mkdir(settings.dataDir, { recursive: true, mode: 0o700 });
    // Without configured keys the generated admin key is the only one, printed when created.
    const admin = settings.apiKeys.length > 0 ? undefined : await ensureAdminKey(settings.dataDir);
    const effective =
      admin === undefined ? settings : normalizeServerSettings({ ...settings, apiKeys: [admin.key] });

    const { store, label: storeLabel } = await openStore(effective);
    cleanups.push(() => store.close());
    await store.migrate();

    const engine = new WorkflowEngine({
      store,
      registry: sources.registry,
      concurrency: effective.concurrency,
    });
    // Declared in the file: compiled at start, and again by each reload that takes effect.
    const storageDir = (config: BulwarkConfig) => config.storage?.dir ?? join(effective.dataDir, 'files');
    let applied = sources.config;
    const declared = compileWorkflows(applied.workflows ?? {}, {
      registry: sources.registry,
      storageDir: storageDir(applied),
    });
    engine.register(...sources.workflows, ...declared, ...(options.workflows ?? []));
    const schedules = new Schedules(engine, store);
    cleanups.push(() => schedules.stop());
    sources.onConfig((config) => {
      const next = config.workflows ?? {};
      // A new storage directory changes what every file step of every workflow does.
      const changes = workflowChanges(
        applied.workflows ?? {},
        next,
        storageDir(applied) !== storageDir(config),
      );
      const compiling = { registry: sources.registry, storageDir: storageDir(config) };
      engine.register(
        ...[...changes.added, ...changes.changed].map((name) =>
          compileWorkflow(name, next[name]!, compiling),
        ),
      );
      // After the workflows, which a new schedule may name; the new set replaces the old at once.
      void schedules
        .apply(config.schedules ?? {})
        .catch((error: unknown) => log('schedules not applied', { error: (error as Error).message }));
      applied = config;
      return changes;
    });
    cleanups.push(() => engine.stop());

    if (options.buildDashboard ?? options.signals === true) {
      await buildDashboard(effective.dashboardDir, (line) => stdout.write(`${line}\n`));
    }

    const server = await createServer({
      registry: sources.registry,
      engine,
      store,
      settings: effective,
      reload: sources.reload,
      schedules: () => schedules.list(),
      ...(options.stdout === undefined
        ? {}
        : { logStream: { write: (line: string) => void stdout.write(line) } }),
    });
    cleanups.push(() => server.app.close());
    log = (message, data = {}) => server.app.log.info(data, message);

    await server.app.listen({ host: effective.host, port: effective.port });
    const { port } = server.app.server.address() as AddressInfo;
    const url = `http://${hostForUrl(effective.host)}:${port}`;
    engine.startWorker();
    await schedules.apply(applied.schedules ?? {});

    const workflowCount = sources.workflows.length + declared.length + (options.workflows?.length ?? 0);
    const lines = [
      `Bulwark ${version} listening on ${url}`,
      `  store:        ${storeLabel}`,
      `  dependencies: ${sources.registry.names.length}, workflows: ${workflowCount} (${sources.description})`,
    ];
    if (admin?.created) {
      lines.push(
        `  admin key:    ${admin.key.secret}`,
        `                (shown once; kept in ${admin.file}, readable by you only)`,
        `  dashboard:    ${loginUrl(effective.host, port, admin.key.secret)}`,
      );
    } else if (admin !== undefined) {
      lines.push(`  admin key:    in ${admin.file}`);
    }
    stdout.write(`${lines.join('\n')}\n`);

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        const phase = (name: string, data: Record<string, unknown> = {}) =>
          server.app.log.info({ shutdown: name, ...data }, `shutdown: ${name}`);
        server.drain();
        phase('draining', { graceMs: effective.shutdownGraceMs });
        await schedules.stop();
        const stopped = await engine.stop({ drain: 'step', graceMs: effective.shutdownGraceMs });
        phase('engine stopped', { ...stopped });
        await server.app.close();
        phase('http closed');
        await sources.close();
        await store.close();
        phase('store closed');
      })();
      return closing;
    };
    if (options.signals === true) installSignals(server, close);
    return { url, server, settings: effective, close };
  } catch (error) {
    await undo();
    throw error;
  }
}

/**
 * A repeat of the signal sooner than this is the same Ctrl-C passed on by a parent (the bin
 * launcher, a process manager forwarding to its group), not a person asking twice.
 */
const ECHO_MS = 250;

/** The first SIGTERM/SIGINT shuts down gracefully, then exits 0; a second one exits at once. */
function installSignals(server: BulwarkServer, close: () => Promise<void>): void {
  const CODES = { SIGINT: 130, SIGTERM: 143 } as const;
  let first: { signal: string; at: number } | undefined;
  const onSignal = (signal: keyof typeof CODES) => {
    if (first !== undefined) {
      if (signal === first.signal && performance.now() - first.at < ECHO_MS) return;
      server.app.log.warn(
        { signal, exitCode: CODES[signal] },
        `shutdown: second signal (${signal}); exiting at once, steps in progress are re-run on the next start`,
      );
      process.exit(CODES[signal]);
    }
    first = { signal, at: performance.now() };
    server.app.log.info({ signal }, `shutdown: ${signal} received; send it again to exit at once`);
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.app.log.error({ err: error }, 'shutdown: failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/** Defaults, then the file's `server:` section, then the environment, then the command line. */
export function settingsInput(
  fromConfig: ServerSettingsInput,
  flags: { host?: string; port?: number; dataDir?: string; databaseUrl?: string },
  env: Env,
): ServerSettingsInput {
  const input: ServerSettingsInput = { ...fromConfig };
  const databaseUrl = flags.databaseUrl ?? env.BULWARK_DATABASE_URL;
  if (databaseUrl !== undefined && databaseUrl !== '') input.databaseUrl = databaseUrl;
  const keys = parseApiKeys(env.BULWARK_API_KEYS);
  if (keys.length > 0) input.apiKeys = keys;
  if (flags.host !== undefined) input.host = flags.host;
  if (flags.port !== undefined) input.port = flags.port;
  if (flags.dataDir !== undefined) input.dataDir = resolve(flags.dataDir);
  return input;
}

/** The built-in configuration: the examples (or nothing), read through the same parser as a file. */
async function embedded(examples: boolean, env: Env): Promise<Sources> {
  if (!examples) {
    const config = parseConfig('', { file: '(built-in defaults)', env });
    return {
      config,
      registry: new DependencyRegistry(config),
      workflows: [],
      description: 'built-in defaults, no examples',
      reload: undefined,
      onConfig: () => {},
      close: async () => {},
    };
  }
  const upstream = await startExampleUpstream();
  try {
    const config = parseConfig(EXAMPLES_CONFIG, {
      file: '(built-in examples)',
      env: { ...env, [EXAMPLES_URL_VARIABLE]: upstream.url },
    });
    const registry = new DependencyRegistry(config);
    return {
      config,
      registry,
      workflows: exampleWorkflows(upstream.url),
      description: `built-in examples; their pet shop API is on ${upstream.url}`,
      reload: undefined,
      onConfig: () => {},
      close: async () => {
        await registry.close();
        await upstream.close();
      },
    };
  } catch (error) {
    await upstream.close();
    throw error;
  }
}

/**
 * A configuration file: its registry and its declarative workflows follow the file (SIGHUP,
 * edits, and the admin reload).
 */
async function fromFile(
  file: string,
  env: Env,
  watch: boolean,
  log: (message: string, data?: Record<string, unknown>) => void,
): Promise<Sources> {
  // The file is checked whole when it loads (its workflows against its dependencies): a reload
  // that gets here takes effect, dependencies first, then the workflows.
  let follow: (config: BulwarkConfig) => WorkflowChanges = () => NO_CHANGES;
  const summary = (result: ReloadResult, config: BulwarkConfig): ReloadSummary => ({
    added: [...result.added],
    changed: [...result.changed],
    removed: [...result.removed],
    workflows: follow(config),
  });
  const opened = await openRegistry(file, {
    env,
    watch,
    onReload: (result, config) => log('configuration reloaded', { file, ...summary(result, config) }),
  });
  return {
    // Read when the server is built: a reload while the store opens is not lost.
    get config() {
      return opened.config;
    },
    registry: opened.registry,
    workflows: [],
    description: file,
    // Through the registry's own reload: one at a time with the watch's, and its config kept.
    reload: async () => {
      const { result, config } = await opened.reload();
      const changes = summary(result, config);
      log('configuration reloaded', { file, by: 'api', ...changes });
      return changes;
    },
    onConfig: (apply) => {
      follow = apply;
    },
    close: () => opened.close(),
  };
}

const NO_CHANGES: WorkflowChanges = { added: [], changed: [], removed: [] };

/**
 * Declarations by name, before and after a reload: which are new, which differ (all that stay,
 * if `everything` changed around them), which are gone.
 */
function workflowChanges(
  before: Readonly<Record<string, WorkflowDeclaration>>,
  after: Readonly<Record<string, WorkflowDeclaration>>,
  everything: boolean,
): WorkflowChanges {
  const names = (o: object) => Object.keys(o).sort();
  return {
    added: names(after).filter((name) => !Object.hasOwn(before, name)),
    changed: names(after).filter(
      (name) =>
        Object.hasOwn(before, name) &&
        (everything || JSON.stringify(before[name]) !== JSON.stringify(after[name])),
    ),
    removed: names(before).filter((name) => !Object.hasOwn(after, name)),
  };
}

/** Opens (but does not migrate) the store the settings name; the label never shows a password. */
export async function openStore(settings: ServerSettings): Promise<{ store: WorkflowStore; label: string }> {
  if (settings.databaseUrl !== undefined) {
    const store = await openPostgresStore({ connectionString: settings.databaseUrl });
    return { store, label: `PostgreSQL ${withoutPassword(settings.databaseUrl)}` };
  }
  const path = join(settings.dataDir, 'bulwark.db');
  // The log's fsync off the event loop: a start is still durable before it is answered.
  const store = await openSqliteStore({ path, syncInThreadPool: true });
  return { store, label: `SQLite ${path}` };
}

/** `postgres://user:secret@host/db` → `postgres://user@host/db`. */
export function withoutPassword(text: string): string {
  try {
    const url = new URL(text);
    url.password = '';
    return url.toString();
  } catch {
    return '(unparsable URL)';
  }
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
