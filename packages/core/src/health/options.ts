// Health settings and the shape of a check, normalised once: when a probe is built or a check
// is registered, never on a run.
import { type Clock, systemClock } from '../clock/clock.ts';
import {
  clockOption,
  describe,
  fail,
  func,
  knownKeys,
  num,
  oneOf,
  optionsObject,
  str,
} from '../internal/validate.ts';

/** Per-dependency health settings: plain data (also written in YAML), plus an optional function from code. */
export interface HealthProbe {
  /**
   * `'passive'` judges the breaker state and the recent error rate; `'active'` runs `check`
   * (or, for an `http` dependency, GETs `path`: the registry wires that).
   * @default 'active' when `check` or `path` is given, else 'passive'
   */
  mode?: 'passive' | 'active';
  /** `http` dependencies: GET this path (relative to the dependency's base URL); a 2xx passes. */
  path?: string;
  /** How long a result is reused before the check runs again. @default the monitor's (30_000) */
  intervalMs?: number;
  /** A run still going after this long is reported `fail` and its signal aborted. @default the monitor's (5_000) */
  timeoutMs?: number;
  /** Passive: a recent failure rate at or above this (0 < rate ≤ 1) fails the dependency. @default 0.5 */
  errorRate?: number;
  /** Passive: recent calls needed before the error rate is judged. @default 5 */
  minimumCalls?: number;
  /** The active probe. A throw or a rejection fails it; a returned {@link HealthCheckResult} is used as is. */
  check?: (signal: AbortSignal) => unknown;
}

export type HealthStatus = 'pass' | 'warn' | 'fail';

/** What a check reports about one run; every field is optional (a run that returns nothing passed). */
export interface HealthCheckResult {
  /** @default 'pass' ('warn' when `breakerOpen`) */
  status?: HealthStatus;
  /** @default the run's duration when the measurement is `responseTime` */
  observedValue?: unknown;
  /** @default 'ms' when the duration is filled in */
  observedUnit?: string;
  /** Why the status is not `pass`; omitted from the report for `pass`, as the format asks. */
  output?: string;
  /** The component's circuit breaker is refusing calls: the service is degraded, so at least `warn`. */
  breakerOpen?: boolean;
}

/** A check the monitor runs: one per dependency, or a custom one. */
export interface HealthCheck {
  /** The component, e.g. `'payment_gateway'`: the `componentId` and the first part of the report key. No `:`. */
  name: string;
  /**
   * What is measured: the second part of the report key (`payment_gateway:responseTime`). No `:`.
   * @default 'responseTime' (the monitor times each run and reports it in ms)
   */
  measurement?: string;
  /** The format's pre-defined values are `'component'`, `'datastore'` and `'system'`. @default 'component' */
  componentType?: string;
  /** A critical check that fails makes the whole report `fail`; others make it `warn`. @default false */
  critical?: boolean;
  /** @default the monitor's `timeoutMs` */
  timeoutMs?: number;
  /** @default the monitor's `intervalMs` */
  intervalMs?: number;
  /** One run. Throw or reject to fail (the error's message becomes the output); honour `signal` to stop at the timeout. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a check written `async () => {}` returns Promise<void>, and passes.
  run(signal: AbortSignal): void | HealthCheckResult | PromiseLike<void | HealthCheckResult>;
}

export interface HealthMonitorOptions {
  /** @default systemClock */
  clock?: Clock;
  /** Default of each check's `intervalMs`: how long a result is reused. @default 30_000 */
  intervalMs?: number;
  /** Default of each check's `timeoutMs`. @default 5_000 */
  timeoutMs?: number;
  /** The report's `serviceId`. @default omitted */
  serviceId?: string;
  /** The report's `version`. @default omitted */
  version?: string;
  /** The report's `description`. @default omitted */
  description?: string;
}

/** @internal */
export interface NormalizedHealthMonitorOptions {
  clock: Clock;
  intervalMs: number;
  timeoutMs: number;
  serviceId: string | undefined;
  version: string | undefined;
  description: string | undefined;
}

/** @internal */
export interface NormalizedHealthCheck {
  name: string;
  measurement: string;
  /** `name:measurement`, the report key. */
  key: string;
  componentType: string;
  critical: boolean;
  timeoutMs: number;
  intervalMs: number;
  run: HealthCheck['run'];
}

/** @internal */
export interface NormalizedHealthProbe {
  mode: 'passive' | 'active';
  path: string | undefined;
  intervalMs: number | undefined;
  timeoutMs: number | undefined;
  errorRate: number;
  minimumCalls: number;
  check: ((signal: AbortSignal) => unknown) | undefined;
}

const DEFAULT_HEALTH_INTERVAL_MS = 30_000;
const DEFAULT_HEALTH_TIMEOUT_MS = 5_000;

/** @internal */
export function normalizeHealthMonitorOptions(
  options: HealthMonitorOptions | undefined,
): NormalizedHealthMonitorOptions {
  const o = optionsObject('health', options);
  knownKeys('health', o, ['clock', 'intervalMs', 'timeoutMs', 'serviceId', 'version', 'description']);
  return {
    clock: clockOption('health.clock', o.clock, systemClock),
    intervalMs: positive('health.intervalMs', o.intervalMs, DEFAULT_HEALTH_INTERVAL_MS),
    timeoutMs: positive('health.timeoutMs', o.timeoutMs, DEFAULT_HEALTH_TIMEOUT_MS),
    serviceId: optionalStr('health.serviceId', o.serviceId),
    version: optionalStr('health.version', o.version),
    description: optionalStr('health.description', o.description),
  };
}

/**
 * Unknown keys are allowed here, unlike in options: a check is an object implementing an
 * interface, and may well carry state of its own.
 * @internal
 */
export function normalizeHealthCheck(
  check: HealthCheck,
  defaults: Pick<NormalizedHealthMonitorOptions, 'intervalMs' | 'timeoutMs'>,
): NormalizedHealthCheck {
  const o = optionsObject('health.check', check);
  const name = part('health.check.name', o.name);
  const path = `health.checks.${name}`;
  const measurement =
    o.measurement === undefined ? 'responseTime' : part(`${path}.measurement`, o.measurement);
  if (o.critical !== undefined && typeof o.critical !== 'boolean') {
    fail(`${path}.critical`, `expected true or false, got ${describe(o.critical)}`);
  }
  if (o.run === undefined) fail(`${path}.run`, 'is required');
  const run = func<HealthCheck['run']>(`${path}.run`, o.run)!;
  return {
    name,
    measurement,
    key: `${name}:${measurement}`,
    componentType: str(`${path}.componentType`, o.componentType, 'component'),
    critical: o.critical === true,
    timeoutMs: positive(`${path}.timeoutMs`, o.timeoutMs, defaults.timeoutMs),
    intervalMs: positive(`${path}.intervalMs`, o.intervalMs, defaults.intervalMs),
    // Called on the check itself, so a class's `run` keeps its `this`.
    run: (signal) => run.call(check, signal),
  };
}

/** Validates a dependency's `health` settings; `path` names them in errors (`dependencies.db.health`). @internal */
export function normalizeHealthProbe(path: string, probe: HealthProbe | undefined): NormalizedHealthProbe {
  const o = optionsObject(path, probe);
  knownKeys(path, o, ['mode', 'path', 'intervalMs', 'timeoutMs', 'errorRate', 'minimumCalls', 'check']);
  const check = func<(signal: AbortSignal) => unknown>(`${path}.check`, o.check);
  const probePath = o.path === undefined ? undefined : str(`${path}.path`, o.path, '');
  const mode = oneOf(
    `${path}.mode`,
    o.mode,
    ['passive', 'active'],
    check !== undefined || probePath !== undefined ? 'active' : 'passive',
  );
  // A probe given alongside `mode: passive` would silently never run: say so instead.
  if (mode === 'passive' && check !== undefined) fail(`${path}.check`, "is run only in mode 'active'");
  if (mode === 'passive' && probePath !== undefined) fail(`${path}.path`, "is fetched only in mode 'active'");
  const errorRate = num(`${path}.errorRate`, o.errorRate, 0.5, { min: 0, max: 1 });
  if (errorRate === 0) fail(`${path}.errorRate`, 'must be above 0, got 0');
  return {
    mode,
    path: probePath,
    intervalMs: o.intervalMs === undefined ? undefined : positive(`${path}.intervalMs`, o.intervalMs, 0),
    timeoutMs: o.timeoutMs === undefined ? undefined : positive(`${path}.timeoutMs`, o.timeoutMs, 0),
    errorRate,
    minimumCalls: num(`${path}.minimumCalls`, o.minimumCalls, 5, { min: 1, integer: true }),
    check,
  };
}

/**
 * A duration that must be above 0: a timeout of 0 would fail every run before it starts, and
 * an interval of 0 would turn the background refresh into a busy loop.
 */
function positive(path: string, value: unknown, fallback: number): number {
  const ms = num(path, value, fallback, { min: 0 });
  if (ms === 0) fail(path, 'must be above 0, got 0');
  return ms;
}

function optionalStr(path: string, value: unknown): string | undefined {
  return value === undefined ? undefined : str(path, value, '');
}

/** One part of a `component:measurement` key: the format uses the colon as the separator. */
function part(path: string, value: unknown): string {
  if (value === undefined) fail(path, 'is required');
  const s = str(path, value, '');
  if (s.includes(':'))
    fail(path, `must not contain ':' (it separates component and measurement), got '${s}'`);
  return s;
}
