// The demo's figures, computed from the recorder's events and nothing else: calls by outcome per
// dependency and group, requests sent, retries, latency over time, breaker transitions and runs.
// A pure function of the events, so the live view, the report and the tests all agree.
import { FINAL_STATUSES, type RunStatus } from '@bulwark/workflow';
import type { BreakerState, CallOutcome, DemoEvent } from './recorder.ts';

/** The outcomes the report shows, in order. `retried`: succeeded after at least one retry. */
export const OUTCOMES = [
  'success',
  'retried',
  'fallback',
  'short-circuited',
  'bulkhead-rejected',
  'rate-limited',
  'timed-out',
  'failed',
  'cancelled',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** What the demo was: needed beside the events to lay the figures out. */
export interface DemoMeta {
  readonly seed: number;
  /** The `--duration` asked for. */
  readonly plannedMs: number;
  /** How long the load ran (shorter when stopped with Ctrl-C). */
  readonly loadMs: number;
  /** How long the demo ran until its runs were drained and everything closed: the span of the charts. */
  readonly elapsedMs: number;
  readonly stoppedEarly: boolean;
  readonly phases: readonly { name: string; title: string; fromMs: number; toMs: number }[];
  /** Each dependency, and whether it has a retry policy (its attempts are counted from retry events) and a breaker. */
  readonly dependencies: readonly { name: string; retry: boolean; breaker: boolean }[];
  readonly groups: readonly string[];
}

export interface Latency {
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

export interface DependencyFigures {
  /** Calls made (each counted once, whatever its retries). */
  readonly calls: number;
  readonly outcomes: Record<Outcome, number>;
  /** Retries scheduled. */
  readonly retries: number;
  /** Requests that left the process: attempts not refused by a local policy. */
  readonly sent: number;
  /** Of the calls that reached the dependency (local refusals and cancellations left out), in ms. */
  readonly latency: Latency;
  readonly breaker:
    | {
        readonly opened: number;
        readonly halfOpened: number;
        readonly closed: number;
        readonly final: BreakerState;
      }
    | undefined;
}

export interface GroupFigures {
  readonly calls: number;
  /** `success` (a provider answered), `fallback` or `failed`. */
  readonly outcomes: Record<Outcome, number>;
}

export interface RunFigures {
  readonly started: number;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
  readonly compensated: number;
  /** Runs that were parked (waiting) at least once. */
  readonly parkedRuns: number;
  /** Times a run was parked. */
  readonly parks: number;
  /** Times a parked run was taken up again. */
  readonly resumed: number;
  /** Runs parked now (waiting: the demo's workflow has no other reason to wait). */
  readonly parkedNow: number;
  /** Runs not in a final state (at the end of the demo: unfinished). */
  readonly unfinished: number;
  readonly steps: { readonly completed: number; readonly failed: number };
}

export interface BreakerTransition {
  readonly t: number;
  readonly from: BreakerState;
  readonly to: BreakerState;
  readonly reason?: string;
}

export interface LatencyPoint {
  /** The start of the bucket, in ms since the demo started. */
  readonly t: number;
  readonly calls: number;
  readonly p50: number | null;
  readonly p99: number | null;
}

export interface Figures {
  readonly dependencies: Record<string, DependencyFigures>;
  readonly groups: Record<string, GroupFigures>;
  readonly runs: RunFigures;
  readonly latency: { readonly bucketMs: number; readonly points: readonly LatencyPoint[] };
  readonly breakers: Record<string, readonly BreakerTransition[]>;
  readonly totals: {
    readonly calls: number;
    readonly sent: number;
    readonly retries: number;
    readonly fallbacks: number;
  };
}

const FINAL: ReadonlySet<RunStatus> = new Set(FINAL_STATUSES);

/** Latency buckets: about 25 to 120 points on the chart whatever the duration. */
export function bucketMs(durationMs: number): number {
  if (durationMs <= 15_000) return 250;
  if (durationMs <= 120_000) return 1_000;
  return 5_000;
}

/** The nearest-rank percentile of sorted values (`p` in 0..1); null when there are none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

function zero(): Record<Outcome, number> {
  return Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
}

/** A call that reached the dependency: its duration says how the dependency behaved. */
export function reached(outcome: CallOutcome): boolean {
  return outcome === 'success' || outcome === 'failed' || outcome === 'timed-out';
}

function latencyOf(values: number[]): Latency {
  values.sort((a, b) => a - b);
  return { p50: percentile(values, 0.5), p99: percentile(values, 0.99), max: values.at(-1) ?? null };
}

/**
 * The figures of `events`. `latency: false` leaves the latency out (nulls, no points): the live
 * view takes only the last seconds' latency, and sorting every call's duration four times a
 * second would cost a long demo more than everything else together.
 */
export function aggregate(
  events: readonly DemoEvent[],
  meta: DemoMeta,
  options: { latency?: boolean } = {},
): Figures {
  const withLatency = options.latency !== false;
  interface Acc {
    calls: number;
    outcomes: Record<Outcome, number>;
    retries: number;
    sent: number;
    latencies: number[];
    retriedSuccesses: number;
  }
  const deps = new Map<string, Acc>();
  for (const d of meta.dependencies) {
    deps.set(d.name, { calls: 0, outcomes: zero(), retries: 0, sent: 0, latencies: [], retriedSuccesses: 0 });
  }
  const withRetry = new Set(meta.dependencies.filter((d) => d.retry).map((d) => d.name));
  const groups = new Map<string, { calls: number; outcomes: Record<Outcome, number> }>();
  for (const g of meta.groups) groups.set(g, { calls: 0, outcomes: zero() });
  const breakers = new Map<string, BreakerTransition[]>();
  const states = new Map<string, BreakerState>();
  for (const d of meta.dependencies) {
    if (d.breaker) {
      breakers.set(d.name, []);
      states.set(d.name, 'closed');
    }
  }
  const size = bucketMs(meta.plannedMs);
  const buckets: number[][] = [];
  const runs = new Map<string, { last: RunStatus; waiting: boolean }>();
  let parks = 0;
  let resumed = 0;
  let stepsCompleted = 0;
  let stepsFailed = 0;

  for (const e of events) {
    switch (e.type) {
      case 'call': {
        const d = deps.get(e.dependency);
        if (d === undefined) break;
        d.calls++;
        d.outcomes[e.outcome]++;
        // Without a retry policy each call is one attempt.
        if (!withRetry.has(e.dependency) && reached(e.outcome)) d.sent++;
        if (withLatency && reached(e.outcome)) {
          d.latencies.push(e.ms);
          const at = Math.floor(e.t / size);
          (buckets[at] ??= []).push(e.ms);
        }
        break;
      }
      case 'attempt': {
        const d = deps.get(e.dependency);
        if (d === undefined) break;
        if (e.sent) d.sent++;
        if (e.ok && e.attempt > 1) d.retriedSuccesses++;
        break;
      }
      case 'retry': {
        const d = deps.get(e.dependency);
        if (d !== undefined) d.retries++;
        break;
      }
      case 'breaker': {
        const list = breakers.get(e.dependency);
        if (list === undefined) break;
        const from = states.get(e.dependency) ?? 'closed';
        list.push({ t: e.t, from, to: e.to, ...(e.reason === undefined ? {} : { reason: e.reason }) });
        states.set(e.dependency, e.to);
        break;
      }
      case 'group': {
        const g = groups.get(e.group);
        if (g === undefined) break;
        g.calls++;
        g.outcomes[e.outcome]++;
        break;
      }
      case 'run': {
        const run = runs.get(e.run);
        if (run === undefined) {
          runs.set(e.run, { last: e.status, waiting: e.status === 'waiting' });
          if (e.status === 'waiting') parks++;
          break;
        }
        if (e.status === 'waiting') {
          parks++;
          run.waiting = true;
        } else if (e.status === 'running' && run.last === 'waiting') {
          resumed++;
        }
        run.last = e.status;
        break;
      }
      case 'step':
        if (e.status === 'completed') stepsCompleted++;
        else stepsFailed++;
        break;
    }
  }

  const dependencies: Record<string, DependencyFigures> = {};
  for (const [name, d] of deps) {
    // A success after a retry is `retried`, not `success`: each call is counted under one outcome.
    d.outcomes.retried = d.retriedSuccesses;
    d.outcomes.success -= d.retriedSuccesses;
    const list = breakers.get(name);
    dependencies[name] = {
      calls: d.calls,
      outcomes: d.outcomes,
      retries: d.retries,
      sent: d.sent,
      latency: latencyOf(d.latencies),
      breaker:
        list === undefined
          ? undefined
          : {
              opened: list.filter((x) => x.to === 'open').length,
              halfOpened: list.filter((x) => x.to === 'half-open').length,
              closed: list.filter((x) => x.to === 'closed').length,
              final: states.get(name) ?? 'closed',
            },
    };
  }

  const points: LatencyPoint[] = [];
  const last = withLatency ? Math.max(buckets.length, Math.ceil(meta.elapsedMs / size)) : 0;
  for (let i = 0; i < last; i++) {
    const values = (buckets[i] ?? []).sort((a, b) => a - b);
    points.push({
      t: i * size,
      calls: values.length,
      p50: percentile(values, 0.5),
      p99: percentile(values, 0.99),
    });
  }

  const all = [...runs.values()];
  const count = (status: RunStatus) => all.filter((r) => r.last === status).length;
  const runFigures: RunFigures = {
    started: all.length,
    completed: count('completed'),
    failed: count('failed'),
    cancelled: count('cancelled'),
    compensated: count('compensated'),
    parkedRuns: all.filter((r) => r.waiting).length,
    parks,
    resumed,
    parkedNow: all.filter((r) => r.last === 'waiting').length,
    unfinished: all.filter((r) => !FINAL.has(r.last)).length,
    steps: { completed: stepsCompleted, failed: stepsFailed },
  };

  const groupFigures: Record<string, GroupFigures> = Object.fromEntries(groups);
  const values = Object.values(dependencies);
  return {
    dependencies,
    groups: groupFigures,
    runs: runFigures,
    latency: { bucketMs: size, points },
    breakers: Object.fromEntries(breakers),
    totals: {
      calls: values.reduce((n, d) => n + d.calls, 0),
      sent: values.reduce((n, d) => n + d.sent, 0),
      retries: values.reduce((n, d) => n + d.retries, 0),
      fallbacks: Object.values(groupFigures).reduce((n, g) => n + g.outcomes.fallback, 0),
    },
  };
}

/**
 * Latency of the calls that reached each dependency in the last `windowMs` before `now`, by
 * dependency. Reads back from the newest event only as far as the window goes.
 */
export function recentLatency(
  events: readonly DemoEvent[],
  now: number,
  windowMs: number,
): Record<string, Latency> {
  const values = new Map<string, number[]>();
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.t < now - windowMs) break;
    if (e.type !== 'call' || !reached(e.outcome)) continue;
    let list = values.get(e.dependency);
    if (list === undefined) values.set(e.dependency, (list = []));
    list.push(e.ms);
  }
  return Object.fromEntries([...values].map(([name, list]) => [name, latencyOf(list)]));
}
