// The Prometheus families of one server: request and call latencies observed from events, and
// the policies' state read from the registry's statistics at scrape time (nothing between scrapes).
import type { Clock, DependencyRegistry, DependencyStats } from '@bulwark/core';
import {
  FINAL_STATUSES,
  type RunCount,
  type RunStatus,
  type WorkflowEngine,
  type WorkflowStore,
} from '@bulwark/workflow';
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Metric, Registry } from 'prom-client';

/** Bucket bounds in seconds. HTTP: API answers are ms; a long stream lands in +Inf. */
export const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Dependency calls: a cache hit (5 ms) up to a slow remote call with retries (30 s). */
export const DEPENDENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Workflow steps: a quick local step (10 ms) up to a long batch step (5 min). */
export const STEP_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

const BREAKER_STATES = [
  ['closed', 'closed'],
  ['open', 'open'],
  ['half-open', 'half_open'],
  ['isolated', 'isolated'],
] as const;
const CALL_OUTCOMES = ['success', 'failure', 'timeout', 'rejected', 'cancelled'] as const;
const ACTIVE_STATUSES: readonly RunStatus[] = ['queued', 'running', 'waiting', 'compensating'];
/** Step names come from code but may be built from data; past this many per workflow they share one label. */
const MAX_STEPS_PER_WORKFLOW = 100;
const OTHER_STEPS = '(other)';

export interface MetricsSources {
  registry: DependencyRegistry;
  engine: WorkflowEngine;
  store: WorkflowStore;
  clock: Clock;
  /** How long `store.countRuns()` is reused: a scrape storm reads the store once per this. @default 1_000 */
  runCountsMs?: number;
  /** Told when the store could not be read at a scrape (the run gauges are left out of that scrape). */
  onError?: (error: unknown) => void;
}

type ActiveRuns = Map<string, { count: number; oldestAt: number | undefined }>;

let processRegistry: Registry | undefined;

/**
 * The default process metrics, collected once per process: prom-client installs a GC observer
 * and an event-loop monitor for them that can never be removed, so a registry per server (tests
 * build hundreds) would leak one of each. Each server's registry lists these same objects.
 */
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class ServerMetrics {
  /** This server's registry (never prom-client's global one). */
  readonly registry = new Registry();
  readonly #sources: MetricsSources;
  readonly #runCountsMs: number;
  readonly #http: Histogram<'method' | 'route' | 'status_code'>;
  readonly #httpChildren = new Map<string, Histogram.Internal<'method' | 'route' | 'status_code'>>();
  readonly #calls: Histogram<'name' | 'outcome'>;
  readonly #runs: Counter<'workflow' | 'status'>;
  readonly #steps: Histogram<'workflow' | 'step' | 'status'>;
  readonly #stepNames = new Map<string, Set<string>>();
  readonly #unsubscribe: (() => void)[];
  #stats: DependencyStats[] | undefined;
  #runCounts: { at: number; runs: Promise<ActiveRuns | undefined> } | undefined;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    this.#runCountsMs = sources.runCountsMs ?? 1_000;
    const registers = [this.registry];
    for (const metric of processMetrics().getMetricsAsArray()) {
      // prom-client names three gauges `nodejs_active_{handles,requests,resources}_total`, which
      // promtool rejects (only counters end in _total); the same counts by type remain, unsummed.
      // (The typings declare `type` a numeric enum; at run time it is the string.)
      if (String(metric.type) !== 'counter' && metric.name.endsWith('_total')) continue;
      this.registry.registerMetric(metric as unknown as Metric);
    }

    this.#http = new Histogram({
      name: 'http_server_request_duration_seconds',
      help: 'HTTP requests served, by method, route template (unmatched: no route) and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS,
      registers,
    });

    const breakerState = new Gauge({
      name: 'bulwark_circuitbreaker_state',
      help: 'Circuit breaker state of each dependency: 1 for the current state, 0 for the others.',
      labelNames: ['name', 'state'],
      registers,
      collect: () => {
        breakerState.reset();
        for (const { name, breaker } of this.#dependencies()) {
          if (breaker === undefined) continue;
          for (const [state, label] of BREAKER_STATES)
            breakerState.set({ name, state: label }, breaker.state === state ? 1 : 0);
        }
      },
    });
    const breakerCalls = new Counter({
      name: 'bulwark_circuitbreaker_calls_total',
      help: 'Calls seen by each circuit breaker since it was built, by kind.',
      labelNames: ['name', 'kind'],
      registers,
      collect: () => {
        breakerCalls.reset();
        for (const { name, breaker } of this.#dependencies()) {
          if (breaker === undefined) continue;
          breakerCalls.inc({ name, kind: 'successful' }, breaker.successful);
          breakerCalls.inc({ name, kind: 'failed' }, breaker.failed);
          breakerCalls.inc({ name, kind: 'not_permitted' }, breaker.notPermitted);
          breakerCalls.inc({ name, kind: 'ignored' }, breaker.ignored);
        }
      },
    });
    const retryCalls = new Counter({
      name: 'bulwark_retry_calls_total',
      help: 'Calls through each retry policy since it was built, by how they ended.',
      labelNames: ['name', 'kind'],
      registers,
      collect: () => {
        retryCalls.reset();
        for (const { name, retry } of this.#dependencies()) {
          if (retry === undefined) continue;
          retryCalls.inc({ name, kind: 'successful_without_retry' }, retry.successfulWithoutRetry);
          retryCalls.inc({ name, kind: 'successful_with_retry' }, retry.successfulWithRetry);
          retryCalls.inc({ name, kind: 'failed_with_retry' }, retry.failedWithRetry);
          retryCalls.inc({ name, kind: 'failed_without_retry' }, retry.failedWithoutRetry);
        }
      },
    });
    const bulkhead = new Gauge({
      name: 'bulwark_bulkhead_available_concurrent_calls',
      help: 'Free slots in each dependency bulkhead.',
      labelNames: ['name'],
      registers,
      collect: () => {
        bulkhead.reset();
        for (const { name, bulkhead: stats } of this.#dependencies())
          if (stats !== undefined) bulkhead.set({ name }, stats.available);
      },
    });
    const permits = new Gauge({
      name: 'bulwark_ratelimiter_available_permits',
      help: 'Whole permits free now in each dependency rate limiter (its default limit).',
      labelNames: ['name'],
      registers,
      collect: () => {
        permits.reset();
        for (const { name, rateLimit } of this.#dependencies())
          if (rateLimit?.available !== undefined) permits.set({ name }, rateLimit.available);
      },
    });

    this.#calls = new Histogram({
      name: 'bulwark_dependency_call_duration_seconds',
      help: 'Calls through the dependency registry, by dependency and outcome.',
      labelNames: ['name', 'outcome'],
      buckets: DEPENDENCY_BUCKETS,
      registers,
    });

    this.#runs = new Counter({
      name: 'bulwark_workflow_runs_total',
      help: 'Runs this process brought to a final status, by workflow and status.',
      labelNames: ['workflow', 'status'],
      registers,
      collect: () => {
        // Zero series for every registered workflow, so rate() sees the first run of each status.
        for (const { name } of this.#sources.engine.definitions())
          for (const status of FINAL_STATUSES) this.#runs.inc({ workflow: name, status }, 0);
      },
    });
    const active = new Gauge({
      name: 'bulwark_workflow_active_runs',
      help: 'Runs not yet final (queued, running, waiting, compensating) across the cluster, by workflow.',
      labelNames: ['workflow'],
      registers,
      collect: async () => {
        const runs = await this.#activeRuns();
        active.reset();
        for (const [workflow, { count }] of runs ?? []) active.set({ workflow }, count);
      },
    });
    const oldest = new Gauge({
      name: 'bulwark_workflow_oldest_active_run_age_seconds',
      help: 'Age of the oldest run not yet final, by workflow (0 when there is none).',
      labelNames: ['workflow'],
      registers,
      collect: async () => {
        const runs = await this.#activeRuns();
        const now = this.#sources.clock.now();
        oldest.reset();
        for (const [workflow, { count, oldestAt }] of runs ?? []) {
          // Active runs of unknown age (a store that does not report it) get no series, not a 0
          // that would keep an age alert quiet.
          if (count === 0) oldest.set({ workflow }, 0);
          else if (oldestAt !== undefined) oldest.set({ workflow }, Math.max(0, (now - oldestAt) / 1_000));
        }
      },
    });
    this.#steps = new Histogram({
      name: 'bulwark_workflow_step_duration_seconds',
      help: 'Steps this process ran, by workflow, step and final status.',
      labelNames: ['workflow', 'step', 'status'],
      buckets: STEP_BUCKETS,
      registers,
    });

    const { registry, engine } = sources;
    this.#unsubscribe = [
      registry.events.on('dependency:call', (event) => {
        this.#calls.observe({ name: event.dependency, outcome: event.outcome }, event.durationMs / 1_000);
      }),
      // The statistics-derived families forget a removed dependency at once (they are rebuilt at
      // every scrape); the histogram has to be told.
      registry.events.on('registry:reloaded', (event) => {
        for (const name of event.removed)
          for (const outcome of CALL_OUTCOMES) this.#calls.remove({ name, outcome });
      }),
      engine.on((event) => {
        if (event.type === 'run:status') {
          if (FINAL_STATUSES.includes(event.status))
            this.#runs.inc({ workflow: event.workflow, status: event.status });
        } else if (event.type === 'step:finished') {
          this.#steps.observe(
            {
              workflow: event.workflow,
              step: this.#stepLabel(event.workflow, event.step),
              status: event.status,
            },
            event.durationMs / 1_000,
          );
        }
      }),
    ];
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One answered request; `route` undefined when no route matched (ids must never become labels). */
  observeRequest(method: string, route: string | undefined, status: number, seconds: number): void {
    // One child per label set, found by a string key: prom-client would otherwise hash the label
    // object on every request. Bounded: routes are templates, methods and statuses few.
    const key = `${method} ${status} ${route}`;
    let child = this.#httpChildren.get(key);
    if (child === undefined) {
      child = this.#http.labels(method, route ?? 'unmatched', String(status));
      this.#httpChildren.set(key, child);
    }
    child.observe(seconds);
  }

  /** The exposition text. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  /**
   * The registry's statistics, read once per scrape: every collect of a scrape runs in the same
   * synchronous pass, and the snapshot is dropped right after it.
   */
  #dependencies(): DependencyStats[] {
    if (this.#stats === undefined) {
      this.#stats = Object.values(this.#sources.registry.allStats());
      queueMicrotask(() => {
        this.#stats = undefined;
      });
    }
    return this.#stats;
  }

  #stepLabel(workflow: string, step: string): string {
    let names = this.#stepNames.get(workflow);
    if (names === undefined) this.#stepNames.set(workflow, (names = new Set()));
    if (names.has(step)) return step;
    if (names.size >= MAX_STEPS_PER_WORKFLOW) return OTHER_STEPS;
    names.add(step);
    return step;
  }

  /**
   * Runs not yet final by workflow, from one `countRuns()` reused for `runCountsMs`. A store that
   * does not answer gives undefined: the series are left out rather than reported stale or zero.
   */
  #activeRuns(): Promise<ActiveRuns | undefined> {
    const now = this.#sources.clock.now();
    if (this.#runCounts === undefined || now - this.#runCounts.at >= this.#runCountsMs) {
      this.#runCounts = {
        at: now,
        runs: this.#sources.store.countRuns().then(
          (rows) => this.#byWorkflow(rows),
          (error: unknown) => {
            this.#sources.onError?.(error);
            return undefined;
          },
        ),
      };
    }
    return this.#runCounts.runs;
  }

  #byWorkflow(rows: readonly RunCount[]): ActiveRuns {
    const runs: ActiveRuns = new Map();
    // Every workflow known here or in the store gets a series, 0 when it has nothing active.
    for (const { name } of this.#sources.engine.definitions())
      runs.set(name, { count: 0, oldestAt: undefined });
    for (const row of rows) {
      let entry = runs.get(row.workflow);
      if (entry === undefined) runs.set(row.workflow, (entry = { count: 0, oldestAt: undefined }));
      if (!ACTIVE_STATUSES.includes(row.status)) continue;
      entry.count += row.count;
      const at = row.oldestCreatedAt;
      if (typeof at === 'number' && (entry.oldestAt === undefined || at < entry.oldestAt))
        entry.oldestAt = at;
    }
    return runs;
  }
}
