// The dependency registry: the one way application code calls out. Each named dependency has
// its pipeline(s), statistics and health check; failover groups sit on top of them.
import type { CircuitBreakerPolicy } from '../breaker/breaker.ts';
import { type Clock, systemClock } from '../clock/clock.ts';
import { GroupUnavailableError, UnknownDependencyError, withoutStack } from '../errors.ts';
import { EventStream } from '../events/events.ts';
import { dependencyCheck, type HealthSource } from '../health/checks.ts';
import { HealthMonitor } from '../health/monitor.ts';
import type { HealthCheck, HealthProbe } from '../health/options.ts';
import { HttpClient } from '../http/client.ts';
import { clockOption, fail, func, knownKeys, nearest, optionsObject } from '../internal/validate.ts';
import type { ExecuteOptions } from '../pipeline/context.ts';
import { ThreadPool } from '../threadpool/pool.ts';
import { type DependencyContext, runInCall } from './context.ts';
import { Dependency, type DependencyInit, type DependencyStats } from './dependency.ts';
import { FailoverGroup, type GroupStats } from './group.ts';
import type { DependencyOptions, FailoverGroupOptions, RegistryOptions } from './options.ts';

/** Options of one registry call (the operation is named separately). */
export type CallOptions = Omit<ExecuteOptions, 'operation'>;

/** What `configure` changed. */
export interface ReloadResult {
  readonly added: readonly string[];
  /** Rebuilt; stateful policies whose own settings did not change were carried over. */
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  /** Kept as they were: same pipelines, breaker state and counters. */
  readonly unchanged: readonly string[];
}

interface Built {
  dependencies: Map<string, Dependency>;
  groups: Map<string, FailoverGroup>;
  /** Health checks of the new and rebuilt dependencies. */
  checks: Map<Dependency, HealthCheck>;
}

/**
 * Named dependencies, each with the pipeline its kind and settings call for. Call out with
 * {@link DependencyRegistry.execute}, {@link DependencyRegistry.fetch} (HTTP),
 * {@link DependencyRegistry.run} (worker pool), {@link DependencyRegistry.wrap} or the
 * `@resilient` decorator; a failover group's name works wherever a dependency's does.
 */
export class DependencyRegistry {
  /** Every event of every dependency's policies, plus `dependency:call`, `group:*` and `registry:reloaded`. */
  readonly events = new EventStream();
  /** The health checks of the dependencies (one each), plus any custom checks you register. */
  readonly health: HealthMonitor;
  readonly #clock: Clock;
  readonly #random: () => number;
  #dependencies = new Map<string, Dependency>();
  #groups = new Map<string, FailoverGroup>();
  readonly #unregister = new Map<Dependency, () => void>();
  #closed = false;

  constructor(options: RegistryOptions = {}) {
    const o = optionsObject('registry', options);
    knownKeys('registry', o, ['dependencies', 'groups', 'clock', 'random']);
    this.#clock = clockOption('registry.clock', o.clock, systemClock);
    this.#random = func('registry.random', o.random, Math.random);
    this.health = new HealthMonitor({ clock: this.#clock });
    const built = this.#build(options, undefined);
    this.#commit(built, new Set());
  }

  /**
   * Calls `fn` through the pipeline of `dependency` (for `operation`). For a failover group, `fn`
   * is called for each provider in turn until one succeeds; `context.dependency` says which.
   */
  execute<T>(
    dependency: string,
    operation: string,
    fn: (context: DependencyContext) => T | Promise<T>,
    options?: CallOptions,
  ): Promise<Awaited<T>> {
    const dep = this.#dependencies.get(dependency);
    if (dep !== undefined)
      return dep.call(operation, fn, options, undefined, this.events) as Promise<Awaited<T>>;
    return this.#throughGroup(dependency, operation, options?.signal, (d, group) =>
      d.call(operation, fn, options, group, this.events),
    ) as Promise<Awaited<T>>;
  }

  /**
   * An HTTP request to an `http` dependency (or a group of them: a relative `url` resolves
   * against each provider's `baseUrl`). Statuses of 400 and above reject with
   * `HttpStatusError`. `init.operation` names the call in statistics. @default the method
   */
  fetch(
    dependency: string,
    url: string | URL,
    init?: RequestInit & { operation?: string },
    options?: CallOptions,
  ): Promise<Response> {
    const dep = this.#dependencies.get(dependency);
    if (dep !== undefined) return dep.fetch(url, init, options, undefined, this.events);
    return this.#throughGroup(
      dependency,
      init?.operation ?? init?.method ?? 'GET',
      options?.signal ?? init?.signal ?? undefined,
      (d, group) => d.fetch(url, init, options, group, this.events),
    );
  }

  /** Runs `task` (a named export of the worker module) on a `compute` dependency's worker pool. */
  run<T = unknown>(dependency: string, task: string, input?: unknown, options?: CallOptions): Promise<T> {
    const dep = this.#dependencies.get(dependency);
    if (dep !== undefined) return dep.run<T>(task, input, options, undefined, this.events);
    return this.#throughGroup(dependency, task, options?.signal, (d, group) =>
      d.run<T>(task, input, options, group, this.events),
    );
  }

  /**
   * `fn` with the dependency's protection: each call of the returned function goes through
   * `execute`. Inside `fn`, {@link currentCall} gives the attempt's signal.
   */
  wrap<A extends unknown[], T>(
    dependency: string,
    operation: string,
    fn: (...args: A) => T | Promise<T>,
  ): (...args: A) => Promise<Awaited<T>> {
    const registry = this;
    return function (this: unknown, ...args: A) {
      return registry.execute(dependency, operation, (ctx) => runInCall(ctx, () => fn.apply(this, args)));
    };
  }

  /**
   * A standard (TC39) method decorator: `@registry.resilient('petstore_database', 'get_pet')`.
   * Each call of the method goes through `execute`; inside it {@link currentCall} gives the
   * attempt's signal. The operation defaults to the method's name. Bound, so it can be
   * destructured: `const { resilient } = registry`.
   */
  readonly resilient = (dependency: string, operation?: string) => {
    const registry = this;
    return <This, A extends unknown[], R>(
      method: (this: This, ...args: A) => R | Promise<R>,
      context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => R | Promise<R>>,
    ): ((this: This, ...args: A) => Promise<Awaited<R>>) => {
      const op = operation ?? String(context.name);
      return function (this: This, ...args: A) {
        return registry.execute(dependency, op, (ctx) => runInCall(ctx, () => method.apply(this, args)));
      };
    };
  };

  /** The names of the dependencies. */
  get names(): string[] {
    return [...this.#dependencies.keys()];
  }

  /** The names of the failover groups. */
  get groupNames(): string[] {
    return [...this.#groups.keys()];
  }

  /** Statistics of one dependency. */
  stats(dependency: string): DependencyStats {
    return this.#dependency(dependency).stats();
  }

  /** Statistics of every dependency, by name. */
  allStats(): Record<string, DependencyStats> {
    const out: Record<string, DependencyStats> = {};
    for (const [name, dep] of this.#dependencies) out[name] = dep.stats();
    return out;
  }

  groupStats(group: string): GroupStats {
    const g = this.#groups.get(group);
    if (g === undefined) throw this.#unknown(group);
    return g.stats();
  }

  /** The dependency's breaker (for isolate/reset by an operator), if it has one. */
  breaker(dependency: string): CircuitBreakerPolicy | undefined {
    return this.#dependency(dependency).breaker;
  }

  /** How each dependency's pipelines are built (kind defaults applied). */
  describe(): Record<string, { kind: string; critical: boolean; pipelines: Record<string, unknown> }> {
    const out: Record<string, { kind: string; critical: boolean; pipelines: Record<string, unknown> }> = {};
    for (const [name, dep] of this.#dependencies) {
      const pipelines: Record<string, unknown> = { '*': dep.pipelineFor('').describe() };
      for (const op of Object.keys(dep.options.operations ?? {}))
        pipelines[op] = dep.pipelineFor(op).describe();
      out[name] = { kind: dep.kind, critical: dep.critical, pipelines };
    }
    return out;
  }

  /**
   * Takes a new configuration (a reload). Everything is built and checked first: invalid
   * options throw and leave the running configuration as it was. Dependencies whose options
   * are unchanged keep everything; changed ones get new pipelines but keep their statistics and
   * any breaker, bulkhead, rate limiter or retry whose own settings did not change; removed
   * ones finish their calls in flight, then release their HTTP client and worker pool.
   */
  configure(options: Pick<RegistryOptions, 'dependencies' | 'groups'>): ReloadResult {
    if (this.#closed) throw new Error('the registry is closed');
    const o = optionsObject('registry', options);
    knownKeys('registry', o, ['dependencies', 'groups']);
    const unchanged = new Set<string>();
    const next = optionsObject('dependencies', o.dependencies);
    for (const [name, dep] of this.#dependencies) {
      if (name in next && Dependency.sameOptions(dep.options, next[name] as DependencyOptions))
        unchanged.add(name);
    }
    const built = this.#build(options, unchanged);
    const before = new Set(this.#dependencies.keys());
    const result: ReloadResult = {
      added: [...built.dependencies.keys()].filter((n) => !before.has(n)),
      changed: [...built.dependencies.keys()].filter((n) => before.has(n) && !unchanged.has(n)),
      removed: [...before].filter((n) => !built.dependencies.has(n)),
      unchanged: [...unchanged],
    };
    this.#commit(built, unchanged);
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'registry:reloaded',
        policy: 'registry',
        operation: undefined,
        added: result.added,
        changed: result.changed,
        removed: result.removed,
      });
    }
    return result;
  }

  /** Stops health refreshes, waits for calls in flight, and closes HTTP clients and worker pools. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.health.stop();
    await Promise.all([...this.#dependencies.values()].map((d) => this.#retire(d)));
  }

  /** Builds dependencies and groups from options without touching the running ones. */
  #build(
    options: Pick<RegistryOptions, 'dependencies' | 'groups'>,
    unchanged: Set<string> | undefined,
  ): Built {
    const dependencies = new Map<string, Dependency>();
    const init: Omit<DependencyInit, 'previous'> = {
      clock: this.#clock,
      random: this.#random,
      createHttp: (name, http) => new HttpClient(name, http, { clock: this.#clock }),
      createPool: (name, pool, timeoutMs) =>
        new ThreadPool({
          ...pool,
          taskTimeoutMs: pool.taskTimeoutMs ?? (timeoutMs === false ? undefined : timeoutMs),
          name,
          clock: this.#clock,
        }),
    };
    try {
      for (const [name, value] of Object.entries(optionsObject('dependencies', options.dependencies))) {
        const current = this.#dependencies.get(name);
        if (current !== undefined && unchanged?.has(name)) {
          dependencies.set(name, current);
          continue;
        }
        // The name is the first half of its health check's key (`name:measurement`).
        if (name.includes(':')) fail(`dependencies.${name}`, "a dependency's name cannot contain ':'");
        dependencies.set(
          name,
          new Dependency(name, value as DependencyOptions, { ...init, previous: current }),
        );
      }
      const groups = new Map<string, FailoverGroup>();
      const names = [...dependencies.keys()];
      for (const [name, value] of Object.entries(optionsObject('groups', options.groups))) {
        if (dependencies.has(name)) fail(`groups.${name}`, 'a dependency already has this name');
        groups.set(name, new FailoverGroup(name, value as FailoverGroupOptions, names));
      }
      const checks = new Map<Dependency, HealthCheck>();
      for (const [name, dep] of dependencies)
        if (!unchanged?.has(name)) checks.set(dep, this.#healthCheck(dep));
      return { dependencies, groups, checks };
    } catch (error) {
      // Release what was built for nothing (clients and pools are lazy, so this is cheap).
      for (const [name, dep] of dependencies) if (!unchanged?.has(name)) void dep.retire();
      throw error;
    }
  }

  /** Swaps in what `#build` made, retiring what it replaces. */
  #commit(built: Built, unchanged: Set<string>): void {
    const previous = this.#dependencies;
    // Retired first, so that a replacement's health check takes over its predecessor's key.
    for (const [name, old] of previous) {
      if (built.dependencies.get(name) !== old) void this.#retire(old);
    }
    for (const [name, dep] of built.dependencies) {
      if (unchanged.has(name)) continue;
      const old = previous.get(name);
      if (old !== undefined) dep.adopt(old);
      dep.events.forwardTo(this.events);
      this.#unregister.set(dep, this.health.register(built.checks.get(dep)!));
    }
    this.#dependencies = built.dependencies;
    this.#groups = built.groups;
  }

  #retire(dep: Dependency): Promise<void> {
    this.#unregister.get(dep)?.();
    this.#unregister.delete(dep);
    dep.events.unforwardTo(this.events);
    return dep.retire();
  }

  #healthCheck(dep: Dependency) {
    const probe = dep.options.health as HealthProbe | undefined;
    // A dependency is its own health source: name, kind, criticality, breaker, recent calls.
    const source: HealthSource = dep;
    if (probe?.path !== undefined && probe.check === undefined && dep.kind === 'http') {
      const path = probe.path;
      // The client alone, not the pipeline: the check has its own timeout, and a probe
      // should neither be retried nor count against the breaker.
      return dependencyCheck(source, {
        ...probe,
        check: async (signal: AbortSignal) => {
          const response = await dep.probeFetch(path, signal);
          await response?.body?.cancel();
        },
      });
    }
    return dependencyCheck(source, probe);
  }

  #dependency(name: string): Dependency {
    const dep = this.#dependencies.get(name);
    if (dep === undefined) throw this.#unknown(name);
    return dep;
  }

  #unknown(name: string): UnknownDependencyError {
    return new UnknownDependencyError(
      name,
      nearest(name, [...this.#dependencies.keys(), ...this.#groups.keys()]),
    );
  }

  async #throughGroup<T>(
    name: string,
    operation: string,
    signal: AbortSignal | undefined | null,
    call: (dependency: Dependency, group: string) => Promise<T>,
  ): Promise<T> {
    const group = this.#groups.get(name);
    if (group === undefined) throw this.#unknown(name);
    group.calls++;
    const order = group.order(this.#random);
    const tried: string[] = [];
    let lastError: unknown;
    let soonest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < order.length; i++) {
      const dep = this.#dependencies.get(order[i]!)!;
      const state = dep.breakerState();
      if (state === 'open' || state === 'isolated') {
        const wait = dep.breaker?.stats().retryAfterMs ?? Number.POSITIVE_INFINITY;
        if (wait < soonest) soonest = wait;
        this.#failover(group, operation, dep.name, order[i + 1], 'circuit-open', undefined);
        continue;
      }
      const cooling = group.coolingFor(dep.name, this.#clock.now());
      if (cooling > 0) {
        if (cooling < soonest) soonest = cooling;
        this.#failover(group, operation, dep.name, order[i + 1], 'rate-limited', undefined);
        continue;
      }
      tried.push(dep.name);
      try {
        const value = await call(dep, name);
        group.servedBy.set(dep.name, (group.servedBy.get(dep.name) ?? 0) + 1);
        this.#served(group, operation, dep.name, tried, false);
        return value;
      } catch (error) {
        // The caller gave up: no other provider should be tried on its behalf.
        if (signal?.aborted) throw error;
        lastError = error;
        group.failed(dep.name, error, this.#clock.now());
        this.#failover(group, operation, dep.name, order[i + 1], 'failed', error);
      }
    }
    if (group.fallback !== undefined) {
      group.fallbacks++;
      this.#served(group, operation, undefined, tried, true);
      return group.fallback(lastError) as T;
    }
    group.failures++;
    this.#served(group, operation, undefined, tried, false);
    if (tried.length === 0) {
      throw withoutStack(() => new GroupUnavailableError(name, Number.isFinite(soonest) ? soonest : 0));
    }
    throw lastError;
  }

  #failover(
    group: FailoverGroup,
    operation: string,
    from: string,
    to: string | undefined,
    reason: 'failed' | 'circuit-open' | 'rate-limited',
    error: unknown,
  ): void {
    group.failovers++;
    if (this.events.demand === 0) return;
    this.events.emit({
      type: 'group:failover',
      policy: group.name,
      operation,
      group: group.name,
      from,
      to,
      reason,
      error,
    });
  }

  #served(
    group: FailoverGroup,
    operation: string,
    provider: string | undefined,
    tried: string[],
    degraded: boolean,
  ): void {
    if (this.events.demand === 0) return;
    this.events.emit({
      type: 'group:served',
      policy: group.name,
      operation,
      group: group.name,
      provider,
      tried,
      degraded,
    });
  }
}
