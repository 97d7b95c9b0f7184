// The health report in the "Health Check Response Format for HTTP APIs" (application/health+json,
// draft-inadarei-api-health-check), and the one rule that turns check results into its status.
import type { HealthCheckResult, HealthStatus, NormalizedHealthCheck } from './options.ts';

/** One reading of one check: an element of a `checks` array. */
export interface HealthCheckEntry {
  /** The check's `name` (every registered check's reading has one; liveness's `uptime` has none). */
  componentId?: string;
  componentType: string;
  observedValue?: unknown;
  observedUnit?: string;
  status: HealthStatus;
  /** When the reading was taken: ISO 8601, from the monitor's clock. */
  time: string;
  /** Why the status is not `pass` (absent for `pass`). Only an error's message, never its stack. */
  output?: string;
}

/** A whole report, ready to serve as `application/health+json`. */
export interface HealthReport {
  status: HealthStatus;
  version?: string;
  serviceId?: string;
  description?: string;
  /** For `warn` and `fail`: which checks are not passing, or why readiness fails. */
  output?: string;
  /** Keyed `component:measurement`; one reading per key (an array, as the format asks). */
  checks: Record<string, HealthCheckEntry[]>;
}

const STATUSES: readonly string[] = ['pass', 'warn', 'fail'];

/**
 * The service's status from its checks' readings: `fail` when a critical check fails; else
 * `warn` when any check fails or warns (an open breaker already reads `warn`); else `pass`.
 * @internal
 */
export function aggregate(readings: Iterable<{ critical: boolean; status: HealthStatus }>): HealthStatus {
  let status: HealthStatus = 'pass';
  for (const r of readings) {
    if (r.status === 'fail' && r.critical) return 'fail';
    if (r.status !== 'pass') status = 'warn';
  }
  return status;
}

/** Turns what a run returned into a reading. @internal */
export function readingOf(
  check: NormalizedHealthCheck,
  value: unknown,
  durationMs: number,
  nowMs: number,
): HealthCheckEntry {
  // A check may return anything (a probe's response, `true`): only a result object is read.
  const result: HealthCheckResult = typeof value === 'object' && value !== null ? value : {};
  let status: HealthStatus = 'pass';
  let output = result.output;
  if (result.status !== undefined) {
    if (STATUSES.includes(result.status)) status = result.status;
    else {
      status = 'fail';
      output = `the check returned an unknown status ${JSON.stringify(result.status)}`;
    }
  }
  if (result.breakerOpen === true && status === 'pass') {
    status = 'warn';
    output ??= 'circuit open';
  }
  return reading(check, status, nowMs, {
    observedValue: result.observedValue,
    observedUnit: result.observedUnit,
    durationMs,
    output: typeof output === 'string' ? output : undefined,
  });
}

/** A reading built by the monitor itself (a failure, a timeout). @internal */
export function reading(
  check: NormalizedHealthCheck,
  status: HealthStatus,
  nowMs: number,
  fields: { observedValue?: unknown; observedUnit?: string | undefined; durationMs: number; output?: string },
): HealthCheckEntry {
  let { observedValue, observedUnit } = fields;
  if (observedValue === undefined && check.measurement === 'responseTime') {
    observedValue = fields.durationMs;
    observedUnit ??= 'ms';
  }
  // Fields in the order the format lists them, so a served report reads naturally.
  const entry: HealthCheckEntry = {
    componentId: check.name,
    componentType: check.componentType,
    ...(observedValue === undefined ? {} : { observedValue }),
    ...(observedUnit === undefined ? {} : { observedUnit }),
    status,
    time: new Date(nowMs).toISOString(),
  };
  if (status !== 'pass' && fields.output !== undefined) entry.output = fields.output;
  return entry;
}

const MAX_OUTPUT = 500;

/**
 * What a failed check says: the error's message only. A stack would leak file paths and code,
 * and a probe's error may quote a URL with credentials in it, so those are masked.
 * @internal
 */
export function errorOutput(error: unknown): string {
  let message =
    error instanceof Error
      ? error.message || error.name
      : typeof error === 'string'
        ? error
        : 'the check failed';
  message = message.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1***@');
  return message.length > MAX_OUTPUT ? `${message.slice(0, MAX_OUTPUT - 1)}…` : message;
}
