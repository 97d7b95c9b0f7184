// The health monitor: runs checks in parallel under their own timeouts, caches each reading for
// its interval, refreshes in the background without overlapping runs, and builds the reports.
import type { TimerHandle } from '../clock/clock.ts';
import { InvalidOptionsError, TimeoutError } from '../errors.ts';
import {
  type HealthCheck,
  type HealthMonitorOptions,
  type NormalizedHealthCheck,
  type NormalizedHealthMonitorOptions,
  normalizeHealthCheck,
  normalizeHealthMonitorOptions,
} from './options.ts';
import {
  aggregate,
  errorOutput,
  type HealthCheckEntry,
  type HealthReport,
  reading,
  readingOf,
} from './report.ts';

/** One registered check and what the monitor knows of it. */
class Registration {
  /** The last reading, reused until `freshUntil`. */
  reading: HealthCheckEntry | undefined;
  freshUntil = Number.NEGATIVE_INFINITY;
  /** The run in progress, shared by every caller that asks meanwhile. */
  running: Promise<HealthCheckEntry> | undefined;
  /**
   * The check's own work has not settled. It outlives `running` when it ignored its signal at
   * the timeout; no new run starts until it settles, so hung probes never pile up.
   */
  working = false;
  constructor(readonly check: NormalizedHealthCheck) {}
}

export class HealthMonitor {
  readonly #o: NormalizedHealthMonitorOptions;
  readonly #checks = new Map<string, Registration>();
  readonly #startedAt: number;
  #draining = false;
  #started = false;
  #timer: TimerHandle | undefined;
  readonly #tick = () => this.#refreshDue();

  constructor(options?: HealthMonitorOptions) {
    this.#o = normalizeHealthMonitorOptions(options);
    this.#startedAt = this.#o.clock.now();
  }

  /** Adds a check; its key (`name:measurement`) must be new. Returns a function that removes it. */
  register(check: HealthCheck): () => void {
    const c = normalizeHealthCheck(check, this.#o);
    if (this.#checks.has(c.key)) {
      throw new InvalidOptionsError(
        `health.checks.${c.name}`,
        `a check keyed '${c.key}' is already registered`,
      );
    }
    const registration = new Registration(c);
    this.#checks.set(c.key, registration);
    if (this.#started) {
      void this.#refresh(registration);
      this.#schedule();
    }
    return () => {
      if (this.#checks.get(c.key) !== registration) return;
      this.#checks.delete(c.key);
      this.#schedule();
    };
  }

  /**
   * The full (readiness) report: fresh readings are reused, stale ones refreshed, all in
   * parallel. Callers that ask while a check runs share that run.
   */
  async report(): Promise<HealthReport> {
    const registrations = [...this.#checks.values()];
    const now = this.#o.clock.now();
    const readings = await Promise.all(
      registrations.map((r) =>
        r.reading !== undefined && now < r.freshUntil ? r.reading : this.#refresh(r),
      ),
    );
    return this.#build(registrations, readings, undefined);
  }

  /**
   * Whether the process is up: never runs a check nor reads a dependency, so a dependency's
   * outage can never get a healthy process restarted. Reports the monitor's uptime.
   */
  liveness(): HealthReport {
    const now = this.#o.clock.now();
    return {
      status: 'pass',
      ...this.#service(),
      checks: {
        uptime: [
          {
            componentType: 'system',
            observedValue: (now - this.#startedAt) / 1000,
            observedUnit: 's',
            status: 'pass',
            time: new Date(now).toISOString(),
          },
        ],
      },
    };
  }

  /**
   * Whether the process should get traffic: the full report, except that while draining it
   * fails at once, with the last readings and without running any check.
   */
  readiness(): Promise<HealthReport> {
    if (!this.#draining) return this.report();
    const registrations = [...this.#checks.values()].filter((r) => r.reading !== undefined);
    const report = this.#build(
      registrations,
      registrations.map((r) => r.reading!),
      'draining: the service is shutting down',
    );
    return Promise.resolve(report);
  }

  /** While draining, readiness fails (the load balancer stops sending traffic); liveness is untouched. */
  setDraining(draining: boolean): void {
    this.#draining = draining;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Refreshes every check now and then each again when its reading goes stale, so that a report
   * is served from cache. One timer (unref'd: it never keeps the process alive), and none while
   * nothing is registered.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#refreshDue();
  }

  /** Stops the background refresh. Runs in progress finish (within their timeouts). */
  stop(): void {
    this.#started = false;
    this.#clearTimer();
  }

  #refreshDue(): void {
    this.#timer = undefined;
    if (!this.#started) return;
    const now = this.#o.clock.now();
    for (const r of this.#checks.values()) {
      if (r.running === undefined && !(now < r.freshUntil)) void this.#refresh(r);
    }
    this.#schedule();
  }

  /** Arms the one timer for the earliest reading to go stale; runs in progress re-arm it when they end. */
  #schedule(): void {
    this.#clearTimer();
    if (!this.#started) return;
    let due = Number.POSITIVE_INFINITY;
    for (const r of this.#checks.values()) {
      if (r.running === undefined && r.freshUntil < due) due = r.freshUntil;
    }
    if (due === Number.POSITIVE_INFINITY) return;
    const clock = this.#o.clock;
    this.#timer = clock.setTimeout(this.#tick, Math.max(0, due - clock.now()));
    clock.keepAlive?.(this.#timer, false);
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The run in progress, or a new one; stores its reading when it ends. */
  #refresh(r: Registration): Promise<HealthCheckEntry> {
    if (r.running !== undefined) return r.running;
    const c = r.check;
    if (r.working) {
      // The last run timed out and its work is still going: report that rather than start another.
      const now = this.#o.clock.now();
      this.#store(
        r,
        reading(c, 'fail', now, {
          durationMs: c.timeoutMs,
          output: `timed out after ${c.timeoutMs} ms; that run has still not finished`,
        }),
      );
      return Promise.resolve(r.reading!);
    }
    const running = this.#run(r).then((entry) => {
      r.running = undefined;
      this.#store(r, entry);
      this.#schedule();
      return entry;
    });
    r.running = running;
    return running;
  }

  #store(r: Registration, entry: HealthCheckEntry): void {
    r.reading = entry;
    r.freshUntil = this.#o.clock.now() + r.check.intervalMs;
  }

  /** One run under the check's timeout. Never rejects: every way a run ends is a reading. */
  #run(r: Registration): Promise<HealthCheckEntry> {
    const c = r.check;
    const clock = this.#o.clock;
    const started = clock.now();
    const controller = new AbortController();
    let value: unknown;
    try {
      value = c.run(controller.signal);
    } catch (error) {
      return Promise.resolve(this.#failed(c, started, error));
    }
    // A synchronous check (a passive one) needs no timer.
    if (!isThenable(value)) return Promise.resolve(readingOf(c, value, clock.now() - started, clock.now()));
    r.working = true;
    return new Promise<HealthCheckEntry>((resolve) => {
      let settled = false;
      const timer = clock.setTimeout(() => {
        settled = true;
        resolve(
          reading(c, 'fail', clock.now(), {
            durationMs: c.timeoutMs,
            output: `timed out after ${c.timeoutMs} ms`,
          }),
        );
        controller.abort(new TimeoutError(c.timeoutMs));
      }, c.timeoutMs);
      const end = (entry: () => HealthCheckEntry) => {
        r.working = false;
        if (settled) return; // a late result: the timeout already answered for this run
        settled = true;
        clock.clearTimeout(timer);
        resolve(entry());
      };
      Promise.resolve(value).then(
        (result) => end(() => readingOf(c, result, clock.now() - started, clock.now())),
        (error: unknown) => end(() => this.#failed(c, started, error)),
      );
    });
  }

  #failed(c: NormalizedHealthCheck, started: number, error: unknown): HealthCheckEntry {
    const now = this.#o.clock.now();
    return reading(c, 'fail', now, { durationMs: now - started, output: errorOutput(error) });
  }

  #build(
    registrations: readonly Registration[],
    readings: readonly HealthCheckEntry[],
    drainingOutput: string | undefined,
  ): HealthReport {
    const checks: Record<string, HealthCheckEntry[]> = {};
    const notPassing: string[] = [];
    for (let i = 0; i < registrations.length; i++) {
      const key = registrations[i]!.check.key;
      const entry = readings[i]!;
      checks[key] = [entry];
      if (entry.status !== 'pass') notPassing.push(`${key} ${entry.status}`);
    }
    const status =
      drainingOutput !== undefined
        ? 'fail'
        : aggregate(
            registrations.map((r, i) => ({ critical: r.check.critical, status: readings[i]!.status })),
          );
    const output = drainingOutput ?? (status === 'pass' ? undefined : notPassing.join('; '));
    return { status, ...this.#service(), ...(output === undefined ? {} : { output }), checks };
  }

  /** The report's identifying fields, only those configured. */
  #service(): Pick<HealthReport, 'version' | 'serviceId' | 'description'> {
    const { version, serviceId, description } = this.#o;
    return {
      ...(version === undefined ? {} : { version }),
      ...(serviceId === undefined ? {} : { serviceId }),
      ...(description === undefined ? {} : { description }),
    };
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
