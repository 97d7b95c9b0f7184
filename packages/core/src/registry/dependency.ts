// One named dependency: its pipelines (one per configured operation), the stateful policies they
// share, its HTTP client or worker pool, its statistics, and its health check.
import type { CircuitBreakerPolicy, CircuitBreakerStats } from '../breaker/breaker.ts';
import type { CircuitState } from '../breaker/store.ts';
import type { BulkheadPolicy, BulkheadStats } from '../bulkhead/bulkhead.ts';
import type { Clock, TimerHandle } from '../clock/clock.ts';
import { InvalidOptionsError } from '../errors.ts';
import { EventStream } from '../events/events.ts';
import type { HttpClient } from '../http/client.ts';
import { fail, isRecord, knownKeys, oneOf, optionsObject, str } from '../internal/validate.ts';
import type { ExecuteOptions } from '../pipeline/context.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import type { Policy } from '../pipeline/policy.ts';
import type { RateLimiterPolicy, RateLimiterStats } from '../ratelimit/ratelimit.ts';
import type { RetryPolicy, RetryStats } from '../retry/retry.ts';
import type { ThreadPool } from '../threadpool/pool.ts';
import { CallContext, type DependencyContext } from './context.ts';
import {
  DEPENDENCY_KINDS,
  type DependencyKind,
  type DependencyOptions,
  type PolicySettings,
} from './options.ts';
import {
  type BuildContext,
  buildSection,
  checkSettingsKeys,
  resolveSettings,
  SECTIONS,
  withPath,
} from './settings.ts';
import {
  type CallOutcome,
  CallRecorder,
  type CallStats,
  MAX_OPERATIONS,
  OTHER_OPERATIONS,
  outcomeOf,
} from './stats.ts';

export interface DependencyStats {
  readonly name: string;
  readonly kind: DependencyKind;
  readonly critical: boolean;
  /** The dependency-level breaker's state (undefined: no breaker). */
  readonly state: CircuitState | undefined;
  /** Every call to the dependency. */
  readonly calls: CallStats;
  /** Per operation (at most 100 names; the rest under `(other)`). */
  readonly operations: Readonly<Record<string, CallStats>>;
  readonly breaker: CircuitBreakerStats | undefined;
  readonly bulkhead: BulkheadStats | undefined;
  readonly rateLimit: RateLimiterStats | undefined;
  readonly retry: RetryStats | undefined;
  /** Figures of the HTTP client (kind `http`) or the worker pool (kind `compute`). */
  readonly http: unknown;
  readonly pool: unknown;
}

/** Keys a dependency's options may have besides the policy sections. */
const DEPENDENCY_KEYS = ['kind', 'critical', 'description', 'operations', 'http', 'pool', 'health'];

/** Policies already built, by owner, section and settings: reused when a reload leaves them unchanged. @internal */
export type PolicyCache = Map<string, Policy<never>>;

/** Resources of the dependency that need closing. */
export interface DependencyResources {
  http?: HttpClient;
  pool?: ThreadPool;
}

export interface DependencyInit {
  clock: Clock;
  random: () => number;
  /** The dependency this one replaces (on reload): its policies are reused where their settings are unchanged. */
  previous: Dependency | undefined;
  createHttp: (name: string, options: NonNullable<DependencyOptions['http']>) => HttpClient;
  createPool: (
    name: string,
    options: NonNullable<DependencyOptions['pool']>,
    taskTimeoutMs: number | false,
  ) => ThreadPool;
}

export class Dependency {
  readonly name: string;
  readonly kind: DependencyKind;
  readonly critical: boolean;
  readonly description: string | undefined;
  readonly options: DependencyOptions;
  /** Events of every policy of this dependency, each once (policies shared by operations included). */
  readonly events = new EventStream();
  readonly policies: PolicyCache = new Map();
  readonly #clock: Clock;
  readonly #default: Pipeline;
  readonly #pipelines = new Map<string, Pipeline>();
  readonly #total: CallRecorder;
  readonly #operations: Map<string, CallRecorder>;
  readonly #breaker: CircuitBreakerPolicy | undefined;
  readonly #bulkhead: BulkheadPolicy | undefined;
  readonly #rateLimit: RateLimiterPolicy | undefined;
  readonly #retry: RetryPolicy | undefined;
  readonly #resources: DependencyResources;
  #poolTimeoutMs: number | false = false;
  #inFlight = 0;
  #retired: (() => void) | undefined;

  constructor(name: string, options: DependencyOptions, init: DependencyInit) {
    const path = `dependencies.${name}`;
    const o = optionsObject(path, options);
    knownKeys(path, o, [...SECTIONS, ...DEPENDENCY_KEYS]);
    checkSettingsKeys(path, o, DEPENDENCY_KEYS);
    this.name = name;
    this.kind = oneOf(`${path}.kind`, o.kind, DEPENDENCY_KINDS, 'generic');
    if (o.critical !== undefined && typeof o.critical !== 'boolean')
      fail(`${path}.critical`, 'expected true or false');
    this.critical = o.critical === true;
    this.description =
      o.description === undefined ? undefined : str(`${path}.description`, o.description, '');
    this.options = options;
    this.#clock = init.clock;
    // Stats survive a reload: they describe the dependency, not its pipeline.
    const previous = init.previous;
    this.#total = previous === undefined ? new CallRecorder() : previous.#total;
    this.#operations = previous === undefined ? new Map() : previous.#operations;
    const reuse = init.previous?.policies;
    const build = (owner: string, settings: PolicySettings | undefined, at: string): Pipeline => {
      const resolved = resolveSettings(this.kind, options, settings);
      const ctx: BuildContext = { path: at, name, clock: init.clock, random: init.random };
      const layers: Policy<never>[] = [];
      // Outermost first: the whole call's deadline, retries, then per-attempt protection.
      for (const section of [
        'totalTimeoutMs',
        'retry',
        'breaker',
        'rateLimit',
        'bulkhead',
        'timeoutMs',
      ] as const) {
        if (resolved[section] === false) continue;
        // A section the operation does not set is the dependency's: one shared instance.
        const from = settings?.[section] !== undefined ? owner : '';
        const key = `${from}|${section}|${JSON.stringify(resolved[section])}`;
        let policy = this.policies.get(key) ?? reuse?.get(key);
        policy ??= buildSection(section, resolved, from === '' ? { ...ctx, path } : ctx);
        if (policy === undefined) continue;
        if (!this.policies.has(key)) {
          this.policies.set(key, policy);
          policy.events.forwardTo(this.events);
        }
        layers.push(policy);
      }
      return new Pipeline(layers, at);
    };
    this.#default = build('', undefined, path);
    const operations = optionsObject(`${path}.operations`, o.operations);
    for (const [op, settings] of Object.entries(operations)) {
      const at = `${path}.operations.${op}`;
      if (!isRecord(settings)) fail(at, 'expected an options object');
      checkSettingsKeys(at, settings, []);
      this.#pipelines.set(op, build(op, settings as PolicySettings, at));
    }
    const shared = (section: string): Policy<never> | undefined => {
      for (const [key, policy] of this.policies) if (key.startsWith(`|${section}|`)) return policy;
      return undefined;
    };
    this.#breaker = shared('breaker') as CircuitBreakerPolicy | undefined;
    this.#bulkhead = shared('bulkhead') as BulkheadPolicy | undefined;
    this.#rateLimit = shared('rateLimit') as RateLimiterPolicy | undefined;
    this.#retry = shared('retry') as RetryPolicy | undefined;
    // Built here so that bad settings fail the whole (re)configuration before anything changes;
    // both are lazy (no socket, no thread) until first used.
    this.#resources = {};
    if (o.http !== undefined || this.kind === 'http') {
      const http = withPath(path, () =>
        init.createHttp(name, (o.http ?? {}) as NonNullable<DependencyOptions['http']>),
      );
      http?.events.forwardTo(this.events);
      this.#resources.http = http;
    }
    if (o.pool !== undefined) {
      this.#poolTimeoutMs = resolveSettings(this.kind, options, undefined).timeoutMs;
      const timeoutMs = this.#poolTimeoutMs;
      const pool = withPath(path, () =>
        init.createPool(name, o.pool as NonNullable<DependencyOptions['pool']>, timeoutMs),
      );
      pool?.events.forwardTo(this.events);
      this.#resources.pool = pool;
    }
  }

  /**
   * Takes over the client and pool of the dependency this one replaces where their settings are
   * unchanged, so keep-alive sockets and worker threads stay warm across a reload.
   */
  adopt(previous: Dependency): void {
    const mine = this.#resources;
    const theirs = previous.#resources;
    if (
      mine.http !== undefined &&
      theirs.http !== undefined &&
      sameData(previous.options.http, this.options.http)
    ) {
      void mine.http.close();
      mine.http = theirs.http;
      theirs.http = undefined;
      mine.http.events.unforwardTo(previous.events);
      mine.http.events.forwardTo(this.events);
    }
    if (
      mine.pool !== undefined &&
      theirs.pool !== undefined &&
      sameData(previous.options.pool, this.options.pool) &&
      previous.#poolTimeoutMs === this.#poolTimeoutMs
    ) {
      void mine.pool.close();
      mine.pool = theirs.pool;
      theirs.pool = undefined;
      mine.pool.events.unforwardTo(previous.events);
      mine.pool.events.forwardTo(this.events);
    }
  }

  /** The pipeline calls of `operation` go through. */
  pipelineFor(operation: string): Pipeline {
    return this.#pipelines.get(operation) ?? this.#default;
  }

  /** The dependency-level breaker's state, read now (an expired open state becomes half-open). */
  breakerState(): CircuitState | undefined {
    return this.#breaker?.state;
  }

  get breaker(): CircuitBreakerPolicy | undefined {
    return this.#breaker;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Calls `fn` through the operation's pipeline, recording the outcome. */
  async call<T>(
    operation: string,
    fn: (context: DependencyContext) => T | Promise<T>,
    options: ExecuteOptions | undefined,
    group: string | undefined,
    events: EventStream,
  ): Promise<T> {
    const clock = this.#clock;
    const stats = this.#recorder(operation);
    const started = clock.now();
    this.#inFlight++;
    this.#total.start();
    stats.start();
    const name = this.name;
    let outcome: CallOutcome = 'success';
    let failure: unknown;
    try {
      return (await this.pipelineFor(operation).execute((ctx) => fn(new CallContext(ctx, name, group)), {
        signal: options?.signal,
        key: options?.key,
        priority: options?.priority,
        operation,
      })) as T;
    } catch (error) {
      outcome = outcomeOf(error, options?.signal);
      failure = error;
      throw error;
    } finally {
      const now = clock.now();
      this.#total.end(now, outcome, now - started);
      stats.end(now, outcome, now - started);
      if (events.demand !== 0) {
        events.emit({
          type: 'dependency:call',
          policy: name,
          operation,
          dependency: name,
          outcome,
          durationMs: now - started,
          error: failure,
          group,
        });
      }
      if (--this.#inFlight === 0 && this.#retired !== undefined) this.#retired();
    }
  }

  /** An HTTP request through the dependency's pipeline and client. */
  fetch(
    url: string | URL,
    init: (RequestInit & { operation?: string }) | undefined,
    options: ExecuteOptions | undefined,
    group: string | undefined,
    events: EventStream,
  ): Promise<Response> {
    const http = this.#resources.http;
    if (http === undefined) {
      return Promise.reject(
        new InvalidOptionsError(
          `dependencies.${this.name}.http`,
          'this dependency has no HTTP client (kind is not http)',
        ),
      );
    }
    const { operation, ...request } = init ?? {};
    const signal = options?.signal ?? request.signal ?? undefined;
    return this.call(
      operation ?? (request.method ?? 'GET').toUpperCase(),
      (ctx) => http.fetch(url, { ...request, signal: ctx.signal }),
      { ...options, signal },
      group,
      events,
    );
  }

  /** A task of the dependency's worker pool, through its pipeline. */
  run<T>(
    task: string,
    input: unknown,
    options: ExecuteOptions | undefined,
    group: string | undefined,
    events: EventStream,
  ): Promise<T> {
    const pool = this.#resources.pool;
    if (pool === undefined) {
      return Promise.reject(
        new InvalidOptionsError(
          `dependencies.${this.name}.pool`,
          'this dependency has no worker pool (set pool.module)',
        ),
      );
    }
    return this.call(
      task,
      (ctx) => pool.run(task, input, { signal: ctx.signal }) as Promise<T>,
      options,
      group,
      events,
    );
  }

  /** The HTTP client's fetch without the pipeline (for health probes, which have their own timeout). */
  probeFetch(url: string, signal: AbortSignal): Promise<Response> | undefined {
    return this.#resources.http?.fetch(url, { signal });
  }

  stats(): DependencyStats {
    const now = this.#clock.now();
    const operations: Record<string, CallStats> = {};
    for (const [op, recorder] of this.#operations) operations[op] = recorder.snapshot(now);
    return {
      name: this.name,
      kind: this.kind,
      critical: this.critical,
      state: this.#breaker?.state,
      calls: this.#total.snapshot(now),
      operations,
      breaker: this.#breaker?.stats(),
      bulkhead: this.#bulkhead?.stats(),
      rateLimit: this.#rateLimit?.stats(),
      retry: this.#retry?.stats(),
      http: this.#resources.http?.stats(),
      pool: this.#resources.pool?.stats(),
    };
  }

  /** Recent calls that reached the dependency, for passive health. */
  recentCalls(): { calls: number; failures: number } {
    const r = this.#total.recent.snapshot(this.#clock.now());
    return { calls: r.calls, failures: r.failures };
  }

  /**
   * Releases the HTTP client and worker pool once the calls in flight have settled. Policies are
   * left alone: a replacement may have taken them over.
   */
  retire(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#retired = () => {
        this.#retired = undefined;
        // Policies reused by the replacement keep forwarding there, not here.
        for (const policy of this.policies.values()) policy.events.unforwardTo(this.events);
        for (const p of [this.#default, ...this.#pipelines.values()]) {
          for (const policy of p.policies) policy.events.unforwardTo(p.events);
        }
        const closing: Promise<void>[] = [];
        const { http, pool } = this.#resources;
        if (http !== undefined) closing.push(closeWithin(http, this.#clock));
        if (pool !== undefined) closing.push(closeWithin(pool, this.#clock));
        Promise.allSettled(closing).then(() => resolve());
      };
      if (this.#inFlight === 0) this.#retired();
    });
  }

  /** Settings that changed between `this` and `next` options, compared as data (functions by identity). */
  static sameOptions(a: DependencyOptions, b: DependencyOptions): boolean {
    return sameData(a, b);
  }

  #recorder(operation: string): CallRecorder {
    let r = this.#operations.get(operation);
    if (r !== undefined) return r;
    const name = this.#operations.size < MAX_OPERATIONS ? operation : OTHER_OPERATIONS;
    r = this.#operations.get(name);
    if (r === undefined) {
      r = new CallRecorder();
      this.#operations.set(name, r);
    }
    return r;
  }
}

/** Structural equality for plain data; functions and other objects compare by identity. */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => sameData(v, b[i]));
  }
  if (
    isRecord(a) &&
    isRecord(b) &&
    Object.getPrototypeOf(a) === Object.prototype &&
    Object.getPrototypeOf(b) === Object.prototype
  ) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => sameData(a[k], b[k]));
  }
  return false;
}

/** How long a retired client or pool may take to finish its work before it is forced shut. */
const CLOSE_GRACE_MS = 10_000;

/**
 * Closes gracefully, then by force after the grace period: an HTTP response whose body nobody
 * reads, or a task that never ends, must not hold a reload or a shutdown forever.
 */
async function closeWithin(
  resource: { close(options?: { force?: boolean }): Promise<void> },
  clock: Clock,
): Promise<void> {
  let timer: TimerHandle | undefined;
  const forced = new Promise<void>((resolve) => {
    timer = clock.setTimeout(() => resolve(resource.close({ force: true })), CLOSE_GRACE_MS);
  });
  try {
    await Promise.race([resource.close(), forced]);
  } finally {
    clock.clearTimeout(timer!);
  }
}
