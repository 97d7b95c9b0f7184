// Checks built for a dependency: passive (its breaker and recent error rate) or active (a probe).
import { fail } from '../internal/validate.ts';
import {
  type HealthCheck,
  type HealthCheckResult,
  type HealthProbe,
  type HealthStatus,
  type NormalizedHealthProbe,
  normalizeHealthProbe,
} from './options.ts';

/** What a dependency tells its health check; the registry provides one per dependency. */
export interface HealthSource {
  name: string;
  /** The dependency's kind (`http`, `database`, ...): picks the reported `componentType`. */
  kind: string;
  critical: boolean;
  /** `undefined` when the dependency has no breaker. */
  breakerState(): 'closed' | 'open' | 'half-open' | 'isolated' | undefined;
  /** Calls and failures in the dependency's recent window (its breaker's, where it has one). */
  recentCalls(): { calls: number; failures: number };
}

/**
 * The format's pre-defined component types: stores of data are `datastore`, the rest
 * `component` (`system` is for the host itself, as in the liveness report's uptime).
 */
function componentTypeOf(kind: string): string {
  return kind === 'database' || kind === 'cache' || kind === 'queue' || kind === 'filesystem'
    ? 'datastore'
    : 'component';
}

/** How long a passive reading is reused unless the probe says otherwise. */
const PASSIVE_INTERVAL_MS = 1_000;

const probePath = (source: HealthSource) => `dependencies.${source.name}.health`;

/**
 * A passive check, keyed `name:errorRate`: it never calls the dependency. An open, isolated or
 * half-open breaker reads `warn` (the breaker is protecting the service: degraded, not down);
 * otherwise a recent failure rate at or above `errorRate`, over at least `minimumCalls` calls,
 * reads `fail`. The observed value is always the recent failure rate, in percent.
 */
export function passiveCheck(source: HealthSource, probe?: HealthProbe): HealthCheck {
  const p = normalizeHealthProbe(probePath(source), probe);
  return {
    ...checkBase(source, p),
    // It only reads memory, so it can be fresh: an open circuit shows within a second, not after
    // the 30 s an active probe's result is kept.
    intervalMs: p.intervalMs ?? PASSIVE_INTERVAL_MS,
    measurement: 'errorRate',
    run: () => judgePassive(source, p),
  };
}

function judgePassive(source: HealthSource, p: NormalizedHealthProbe): HealthCheckResult {
  const { calls, failures } = source.recentCalls();
  const rate = calls === 0 ? 0 : failures / calls;
  const observed = { observedValue: Math.round(rate * 1000) / 10, observedUnit: 'percent' };
  const state = source.breakerState();
  if (state === 'open' || state === 'isolated' || state === 'half-open') {
    return { ...observed, breakerOpen: true, output: breakerOutput(state) };
  }
  if (calls >= p.minimumCalls && rate >= p.errorRate) {
    return { ...observed, status: 'fail', output: `${failures} of ${calls} recent calls failed` };
  }
  return observed;
}

/**
 * An active check, keyed `name:responseTime`: runs `probe.check` (required) with the run's
 * signal and reports how long it took. A throw or rejection fails it; a returned object with a
 * `status` of `'pass' | 'warn' | 'fail'` is taken as its {@link HealthCheckResult}. A probe that
 * passes while the breaker refuses calls still reads `warn`.
 */
export function activeCheck(source: HealthSource, probe: HealthProbe): HealthCheck {
  const p = normalizeHealthProbe(probePath(source), probe);
  const check = p.check;
  if (check === undefined) fail(`${probePath(source)}.check`, 'an active check needs a probe function');
  return {
    ...checkBase(source, p),
    measurement: 'responseTime',
    run: async (signal) => {
      const value = await check(signal);
      const result = asResult(value);
      const state = source.breakerState();
      if (state === 'open' || state === 'isolated' || state === 'half-open') {
        return { ...result, breakerOpen: true, output: result.output ?? breakerOutput(state) };
      }
      return result;
    },
  };
}

/**
 * The check a dependency's `health` settings ask for: active when `mode` is `'active'` (or a
 * `check` is given), passive otherwise. An `http` dependency's `path` becomes a `check` in the
 * registry, which knows the base URL, before it gets here.
 */
export function dependencyCheck(source: HealthSource, probe?: HealthProbe): HealthCheck {
  const p = normalizeHealthProbe(probePath(source), probe);
  if (p.mode === 'passive') return passiveCheck(source, probe);
  if (p.check === undefined) {
    fail(
      `${probePath(source)}.check`,
      p.path === undefined
        ? "mode 'active' needs a probe function"
        : 'a probe path needs an http dependency with a base URL',
    );
  }
  return activeCheck(source, probe!);
}

function checkBase(source: HealthSource, p: NormalizedHealthProbe) {
  return {
    name: source.name,
    componentType: componentTypeOf(source.kind),
    critical: source.critical,
    ...(p.timeoutMs === undefined ? {} : { timeoutMs: p.timeoutMs }),
    ...(p.intervalMs === undefined ? {} : { intervalMs: p.intervalMs }),
  };
}

const STATUSES: readonly unknown[] = ['pass', 'warn', 'fail'];

function asResult(value: unknown): HealthCheckResult {
  if (typeof value !== 'object' || value === null) return {};
  const status = (value as { status?: unknown }).status;
  return STATUSES.includes(status) ? (value as HealthCheckResult & { status: HealthStatus }) : {};
}

function breakerOutput(state: 'open' | 'isolated' | 'half-open'): string {
  return state === 'half-open'
    ? 'circuit half-open: probing whether it recovered'
    : `circuit ${state}: calls are refused`;
}
