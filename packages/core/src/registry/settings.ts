// Turns a dependency's settings (data) into policies: kind defaults merged section by section,
// then each section built once, with errors named by their place in the registry's options.
import { circuitBreaker } from '../breaker/breaker.ts';
import { bulkhead } from '../bulkhead/bulkhead.ts';
import { isTransient } from '../classify.ts';
import type { Clock } from '../clock/clock.ts';
import { InvalidOptionsError, isLocalRejection } from '../errors.ts';
import { fail, isRecord, knownKeys, num, oneOf, optionsObject } from '../internal/validate.ts';
import type { Policy } from '../pipeline/policy.ts';
import { rateLimiter } from '../ratelimit/ratelimit.ts';
import { constant, decorrelatedJitter, exponential, linear } from '../retry/backoff.ts';
import type { RetryOptions } from '../retry/options.ts';
import { type RetryPolicy, retry } from '../retry/retry.ts';
import { timeout } from '../timeout/timeout.ts';
import { KIND_DEFAULTS } from './kinds.ts';
import type { DependencyKind, PolicySettings, RetrySettings } from './options.ts';

export const SECTIONS = ['timeoutMs', 'totalTimeoutMs', 'retry', 'breaker', 'bulkhead', 'rateLimit'] as const;
export type Section = (typeof SECTIONS)[number];

/** Every section decided: a setting, or `false` for off. */
export type ResolvedSettings = { [K in Section]: Exclude<PolicySettings[K], undefined> };

/** The kind's defaults, replaced section by section by the dependency's and then the operation's own. */
export function resolveSettings(
  kind: DependencyKind,
  dependency: PolicySettings,
  operation: PolicySettings | undefined,
): ResolvedSettings {
  const defaults = KIND_DEFAULTS[kind];
  const pick = <K extends Section>(key: K): ResolvedSettings[K] =>
    (operation?.[key] ?? dependency[key] ?? defaults[key] ?? false) as ResolvedSettings[K];
  return {
    timeoutMs: pick('timeoutMs'),
    totalTimeoutMs: pick('totalTimeoutMs'),
    retry: pick('retry'),
    breaker: pick('breaker'),
    bulkhead: pick('bulkhead'),
    rateLimit: pick('rateLimit'),
  };
}

/** Checks the section keys of a settings object (their contents are checked when built). */
export function checkSettingsKeys(
  path: string,
  value: Record<string, unknown>,
  extra: readonly string[],
): void {
  knownKeys(path, value, [...SECTIONS, ...extra]);
  for (const key of ['timeoutMs', 'totalTimeoutMs'] as const) {
    if (value[key] !== undefined && value[key] !== false) num(`${path}.${key}`, value[key], 0, { min: 1 });
  }
  for (const key of ['retry', 'breaker', 'bulkhead', 'rateLimit'] as const) {
    const v = value[key];
    if (v !== undefined && v !== false && !isRecord(v)) {
      fail(`${path}.${key}`, 'expected an options object or false');
    }
  }
}

const RETRY_KEYS = [
  'maxAttempts',
  'backoff',
  'baseMs',
  'maxMs',
  'jitter',
  'maxDurationMs',
  'retryAfterMaxMs',
];

export interface BuildContext {
  /** Where these settings sit in the registry's options, e.g. `dependencies.db.operations.get`. */
  path: string;
  /** Names the policies in events and statistics, e.g. `db`. */
  name: string;
  clock: Clock;
  random: () => number;
}

/** Builds one section's policy (or undefined when the section is off). */
export function buildSection(
  section: Section,
  settings: ResolvedSettings,
  ctx: BuildContext,
): Policy<never> | undefined {
  const value = settings[section];
  if (value === false) return undefined;
  const { clock, name } = ctx;
  return withPath(ctx.path, () => {
    switch (section) {
      case 'timeoutMs':
        return timeout({ ms: value as number, clock, name: `${name}.timeout` });
      case 'totalTimeoutMs':
        return timeout({ ms: value as number, clock, name: `${name}.total-timeout` });
      case 'retry':
        return buildRetry(value as Record<string, unknown>, ctx);
      case 'breaker':
        return circuitBreaker({ ...(value as object), clock, name: `${name}.breaker` });
      case 'bulkhead':
        return bulkhead({ ...(value as { maxConcurrent: number }), clock, name: `${name}.bulkhead` });
      case 'rateLimit':
        return rateLimiter({ ...(value as object), clock, name: `${name}.rate-limit` });
    }
  });
}

function buildRetry(value: Record<string, unknown>, ctx: BuildContext): Policy<never> {
  return retryFromSettings(value as unknown as RetrySettings, {
    shouldRetry: retriesWorthTrying,
    random: ctx.random,
    clock: ctx.clock,
    name: `${ctx.name}.retry`,
  });
}

/**
 * A retry policy from {@link RetrySettings} (data, as a config file or a workflow step gives
 * them, the backoff named rather than built). Invalid settings throw `InvalidOptionsError`
 * naming the field (`retry.baseMs`).
 */
export function retryFromSettings(
  settings: RetrySettings,
  init: Pick<RetryOptions, 'shouldRetry' | 'random' | 'clock' | 'name'> = {},
): RetryPolicy {
  const o = optionsObject('retry', settings);
  knownKeys('retry', o, RETRY_KEYS);
  if (o.baseMs === undefined) fail('retry.baseMs', 'is required');
  const kind = oneOf(
    'retry.backoff',
    o.backoff,
    ['exponential', 'constant', 'linear', 'decorrelated'],
    'exponential',
  );
  const baseMs = num('retry.baseMs', o.baseMs, 0, { min: 0 });
  const maxMs = o.maxMs as number | undefined;
  const jitter = o.jitter as number | undefined;
  const backoff =
    kind === 'constant'
      ? constant({ ms: baseMs, jitter })
      : kind === 'linear'
        ? linear({ baseMs, maxMs, jitter })
        : kind === 'decorrelated'
          ? decorrelatedJitter({ baseMs, maxMs })
          : exponential({ baseMs, maxMs, jitter });
  return retry({
    ...init,
    maxAttempts: o.maxAttempts as number,
    maxDurationMs: o.maxDurationMs as number | undefined,
    retryAfter: o.retryAfterMaxMs === undefined ? undefined : { maxMs: o.retryAfterMaxMs as number },
    backoff,
  });
}

/**
 * Transient failures, except the dependency's own load shedding: a full bulkhead, an open circuit
 * or a rate limit refused the call to protect the dependency, and retrying would only press on it
 * again (the seeds' "15 calls against a bulkhead of 10 give 5 rejections", not 5 delayed retries).
 */
function retriesWorthTrying(error: unknown): boolean {
  return isTransient(error) && !isLocalRejection(error);
}

/** The policies' own paths (`circuitBreaker.openMs`) renamed to the settings' (`<path>.breaker.openMs`). */
const PATH_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ['circuitBreaker', 'breaker'],
  ['rateLimiter', 'rateLimit'],
  ['bulkhead', 'bulkhead'],
  ['retry', 'retry'],
  ['constant.ms', 'retry.baseMs'],
  ['exponential', 'retry'],
  ['linear', 'retry'],
  ['constant', 'retry'],
  ['decorrelatedJitter', 'retry'],
  ['http', 'http'],
  ['threadPool', 'pool'],
];

export function withPath<T>(path: string, build: () => T): T {
  // Timeouts are checked in checkSettingsKeys, so their policies' paths never need renaming.
  try {
    return build();
  } catch (error) {
    if (!(error instanceof InvalidOptionsError)) throw error;
    let inner = error.path;
    for (const [from, to] of PATH_PREFIXES) {
      if (inner === from || inner.startsWith(`${from}.`)) {
        inner = to + inner.slice(from.length);
        break;
      }
    }
    throw new InvalidOptionsError(`${path}.${inner}`, error.message.slice(error.path.length + 2));
  }
}
