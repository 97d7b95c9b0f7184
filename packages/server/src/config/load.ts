// Reads a configuration: YAML parsed with positions kept, environment applied, the schema and the
// cross-checks run, and every issue located at its line and column (or at its variable).
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { DependencyOptions, FailoverGroupOptions } from '@bulwark/core';
import type { Schedule } from '@bulwark/workflow';
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
} from 'yaml';
import type { StorageSettings, WorkflowDeclaration } from '../declarative/types.ts';
import type { ServerSettingsInput } from '../http/settings.ts';
import { crossCheck } from './checks.ts';
import {
  applyOverrides,
  type Env,
  type EnvIssue,
  hideSecrets,
  type Interpolation,
  interpolate,
  type Override,
} from './env.ts';
import { ConfigError, type ConfigIssue } from './errors.ts';
import { fromZod, type RawIssue } from './issues.ts';
import { configSchema } from './schema.ts';
import { formatPath, isRecord, type Segment } from './walk.ts';

/** A configuration as the registry takes it: `new DependencyRegistry(config)`. */
export interface BulwarkConfig {
  dependencies: Record<string, DependencyOptions>;
  groups: Record<string, FailoverGroupOptions>;
  /**
   * The `server` section, for `normalizeServerSettings` (`dataDir` made absolute against the
   * file's directory). Not enumerable: the registry refuses keys it does not know, and this
   * keeps `new DependencyRegistry(config)` and `registry.configure(config)` working as they are.
   */
  readonly server?: ServerSettingsInput;
  /** The declarative workflows (`workflows:`), for `compileWorkflows`. Not enumerable, like `server`. */
  readonly workflows?: Record<string, WorkflowDeclaration>;
  /** The `storage` section, `dir` made absolute against the file's directory. Not enumerable. */
  readonly storage?: StorageSettings;
  /** The cron schedules (`schedules:`), by name, for a `WorkflowScheduler`. Not enumerable. */
  readonly schedules?: Record<string, ScheduleDeclaration>;
}

/** A schedule as the file declares it; its name is its key under `schedules:`. */
export type ScheduleDeclaration = Omit<Schedule<unknown>, 'name' | 'workflow'> & { workflow: string };

export interface ParseOptions {
  /** Names the file in issues. @default 'bulwark.yaml' */
  file?: string;
  /** Variables for overrides and `${NAME}`. @default process.env */
  env?: Env;
  /** Relative `pool.module` paths are resolved against it. @default the file's directory, else the working directory */
  baseDir?: string;
}

export interface LoadOptions {
  /** @default process.env */
  env?: Env;
}

/** Reads, checks and converts a configuration file; rejects with ConfigError listing every issue. */
export async function loadConfig(file: string, options: LoadOptions = {}): Promise<BulwarkConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new ConfigError([{ path: '', source: file, message: `cannot read the file: ${reason}` }], file);
  }
  return parseConfig(text, { file, env: options.env, baseDir: dirname(resolve(file)) });
}

/** Checks and converts configuration text; throws ConfigError listing every issue. */
export function parseConfig(text: string, options: ParseOptions = {}): BulwarkConfig {
  const file = options.file ?? 'bulwark.yaml';
  const env = options.env ?? process.env;
  const baseDir =
    options.baseDir ?? (options.file === undefined ? process.cwd() : dirname(resolve(options.file)));
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const position = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const path = pathAtOffset(doc, e.pos[0]);
        return {
          path: formatPath(path),
          ...position(e.pos[0]),
          source: file,
          message:
            e.code === 'DUPLICATE_KEY'
              ? `duplicate key '${String(path.at(-1) ?? '')}'`
              : yamlMessage(e.message),
        };
      }),
      file,
    );
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError([{ path: '', source: file, message: (error as Error).message }], file);
  }
  // An empty file (or one of comments) configures nothing, which is valid.
  if (data === null || data === undefined) data = {};

  // Overrides need a map to go into; a file that is not one is reported by the schema.
  const { overrides, issues: envIssues } = isRecord(data)
    ? applyOverrides(data, env, configSchema)
    : { overrides: [] as Override[], issues: [] as EnvIssue[] };
  const { interpolations, issues: refIssues } = interpolate(data, env);
  const unresolved = new Set(refIssues.map((i) => formatPath(i.path)));

  const raw: RawIssue[] = [...refIssues];
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    // A value left unresolved already has its issue; the schema's complaint about it adds nothing.
    raw.push(
      ...fromZod(parsed.error.issues, configSchema, data).filter((i) => !unresolved.has(formatPath(i.path))),
    );
  }
  raw.push(...crossCheck(data));

  if (raw.length > 0 || envIssues.length > 0) {
    const locate = locator(doc, overrides, position);
    const issues = [
      ...dedupe(raw).map((i) => finish(locate(i), i, file, interpolations)),
      ...envIssues.map((i) => ({
        path: formatPath(i.path),
        source: `env ${i.variable}`,
        message: hideSecrets(i.message, interpolations),
      })),
    ];
    throw new ConfigError(sortIssues(issues), file);
  }
  const { server, workflows, storage, schedules, ...registryOptions } = parsed.data as BulwarkConfig & {
    server: ServerSettingsInput;
    workflows: Record<string, WorkflowDeclaration>;
    storage: StorageSettings;
    schedules: Record<string, ScheduleDeclaration>;
  };
  const config = withModulePaths(registryOptions, baseDir);
  if (server.dataDir !== undefined) server.dataDir = resolve(baseDir, server.dataDir);
  if (storage.dir !== undefined) storage.dir = resolve(baseDir, storage.dir);
  Object.defineProperty(config, 'server', { value: server, enumerable: false });
  Object.defineProperty(config, 'workflows', { value: workflows, enumerable: false });
  Object.defineProperty(config, 'storage', { value: storage, enumerable: false });
  Object.defineProperty(config, 'schedules', { value: schedules, enumerable: false });
  return config;
}

function finish(
  where: { line?: number; column?: number; source?: string },
  issue: RawIssue,
  file: string,
  interpolations: readonly Interpolation[],
): ConfigIssue {
  return {
    path: formatPath(issue.path),
    ...where,
    source: where.source ?? file,
    message: hideSecrets(issue.message, interpolations),
  };
}

/** Where an issue is: the variable that set its value, or the line and column of its node. */
function locator(
  doc: Document,
  overrides: readonly Override[],
  position: (offset: number) => { line: number; column: number },
): (issue: RawIssue) => { line?: number; column?: number; source?: string } {
  return (issue) => {
    const found = findNode(doc, issue.path, issue.atKey === true);
    for (const o of overrides) {
      if (isPrefix(o.path, issue.path) || (!found.complete && isPrefix(issue.path, o.path))) {
        return { source: `env ${o.variable}` };
      }
    }
    return found.offset === undefined ? {} : position(found.offset);
  };
}

function isPrefix(prefix: readonly Segment[], path: readonly Segment[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}

/** The node at `path` (its key when `atKey`), or the deepest one on the way when the path ends early. */
function findNode(
  doc: Document,
  path: readonly Segment[],
  atKey: boolean,
): { offset?: number; complete: boolean } {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const segment = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(segment));
      if (pair === undefined) return { offset, complete: false };
      const last = i === path.length - 1;
      if (last && atKey) return { offset: rangeStart(pair.key) ?? offset, complete: true };
      // `key:` with no value has no value node: point at the key.
      node = pair.value;
      offset = rangeStart(pair.value) ?? rangeStart(pair.key) ?? offset;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      node = node.items[segment];
      offset = rangeStart(node) ?? offset;
    } else {
      return { offset, complete: false };
    }
  }
  return { offset, complete: true };
}

function rangeStart(node: unknown): number | undefined {
  return node !== null && typeof node === 'object' && 'range' in node ? (node as Node).range?.[0] : undefined;
}

/** The path of the innermost node that holds `offset` (to name the place of a syntax error). */
function pathAtOffset(doc: Document, offset: number): Segment[] {
  const path: Segment[] = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => within(p.key, offset) || within(p.value, offset));
      if (pair === undefined || !isPair(pair)) return path;
      path.push(String(isScalar(pair.key) ? pair.key.value : pair.key));
      if (within(pair.key, offset)) return path;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => within(item, offset));
      if (index < 0) return path;
      path.push(index);
      node = node.items[index];
    } else {
      return path;
    }
  }
}

function within(node: unknown, offset: number): boolean {
  const range =
    node !== null && typeof node === 'object' && 'range' in node ? (node as Node).range : undefined;
  return range !== undefined && range !== null && range[0] <= offset && offset <= range[2];
}

function yamlMessage(message: string): string {
  const first = message.split('\n')[0]!;
  return `YAML syntax error: ${first.charAt(0).toLowerCase()}${first.slice(1)}`;
}

function dedupe(issues: readonly RawIssue[]): RawIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${formatPath(i.path)}\0${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** File issues in the order of the file, then the environment's by variable. */
function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => {
      const la = a.issue.line ?? Number.POSITIVE_INFINITY;
      const lb = b.issue.line ?? Number.POSITIVE_INFINITY;
      return (
        la - lb ||
        (a.issue.column ?? 0) - (b.issue.column ?? 0) ||
        (a.issue.line === undefined ? (a.issue.source ?? '').localeCompare(b.issue.source ?? '') : 0) ||
        a.index - b.index
      );
    })
    .map(({ issue }) => issue);
}

/** Compute dependencies' worker modules are written relative to the file; the pool wants them absolute. */
function withModulePaths(config: BulwarkConfig, baseDir: string): BulwarkConfig {
  for (const dep of Object.values(config.dependencies)) {
    const pool = dep.pool;
    if (pool !== undefined && !pool.module.startsWith('file:') && !isAbsolute(pool.module)) {
      dep.pool = { ...pool, module: resolve(baseDir, pool.module) };
    }
  }
  return config;
}
