// A failover group: providers of the same service tried in order (or by weight), skipping those
// whose circuit is open or that asked to be left alone for a while (429/503 with Retry-After, or
// their own rate limiter refusing), with one fallback for the group when none can answer.
import { BulwarkError, ErrorCodes } from '../errors.ts';
import { fail, isRecord, knownKeys, nearest, num, oneOf, optionsObject } from '../internal/validate.ts';
import type { FailoverGroupOptions } from './options.ts';

export interface GroupStats {
  readonly name: string;
  readonly strategy: 'ordered' | 'weighted';
  readonly providers: readonly string[];
  readonly calls: number;
  /** Calls answered, by the provider that answered. */
  readonly servedBy: Readonly<Record<string, number>>;
  /** Times a provider was given up on (failed or skipped) and the next one tried. */
  readonly failovers: number;
  /** Calls answered by the group's fallback. */
  readonly fallbacks: number;
  /** Calls that failed: every provider failed or was skipped and there was no fallback. */
  readonly failures: number;
}

interface Member {
  readonly dependency: string;
  readonly weight: number;
}

/** @internal */
export class FailoverGroup {
  readonly name: string;
  readonly strategy: 'ordered' | 'weighted';
  readonly members: readonly Member[];
  readonly fallback: ((error: unknown) => unknown) | undefined;
  readonly options: FailoverGroupOptions;
  calls = 0;
  failovers = 0;
  fallbacks = 0;
  failures = 0;
  readonly servedBy = new Map<string, number>();
  /**
   * Providers that answered "not now" with a time to come back, and when that is (clock ms).
   * Entries are dropped when found expired, so the map holds only providers cooling down.
   */
  readonly #coolingUntil = new Map<string, number>();

  constructor(name: string, options: FailoverGroupOptions, dependencies: readonly string[]) {
    const path = `groups.${name}`;
    const o = optionsObject(path, options);
    knownKeys(path, o, ['strategy', 'providers', 'fallback']);
    this.name = name;
    this.options = options;
    this.strategy = oneOf(`${path}.strategy`, o.strategy, ['ordered', 'weighted'], 'ordered');
    if (!Array.isArray(o.providers) || o.providers.length === 0) {
      fail(`${path}.providers`, 'expected a non-empty list of dependency names');
    }
    const seen = new Set<string>();
    this.members = o.providers.map((m: unknown, i: number) => {
      const at = `${path}.providers.${i}`;
      const member = typeof m === 'string' ? { dependency: m } : m;
      if (!isRecord(member) || typeof member.dependency !== 'string') {
        fail(at, 'expected a dependency name or { dependency, weight }');
      }
      knownKeys(at, member, ['dependency', 'weight']);
      const dependency = member.dependency;
      if (!dependencies.includes(dependency)) {
        fail(at, `'${dependency}' is not a dependency${nearestName(dependency, dependencies)}`);
      }
      if (seen.has(dependency)) fail(at, `'${dependency}' is listed twice`);
      seen.add(dependency);
      return { dependency, weight: num(`${at}.weight`, member.weight, 1, { min: 0 }) };
    });
    if (this.strategy === 'weighted' && this.members.every((m) => m.weight === 0)) {
      fail(`${path}.providers`, 'a weighted group needs at least one provider with a weight above 0');
    }
    const f = o.fallback;
    if (f === undefined) this.fallback = undefined;
    else if (typeof f === 'function') this.fallback = f as (error: unknown) => unknown;
    else {
      if (!isRecord(f) || !('value' in f))
        fail(`${path}.fallback`, 'expected { value } or a function of the error');
      knownKeys(`${path}.fallback`, f, ['value']);
      const value = f.value;
      this.fallback = () => value;
    }
  }

  /**
   * The order to try providers in for one call. Weighted: drawn by weight without replacement,
   * so every provider is still tried once if the ones before it fail; weight 0 goes last.
   */
  order(random: () => number): string[] {
    if (this.strategy === 'ordered') return this.members.map((m) => m.dependency);
    const left = [...this.members];
    const out: string[] = [];
    while (left.length > 0) {
      const total = left.reduce((sum, m) => sum + m.weight, 0);
      let at = 0;
      if (total > 0) {
        let r = random() * total;
        at = left.findIndex((m) => (r -= m.weight) < 0);
        if (at < 0) at = left.findLastIndex((m) => m.weight > 0);
      }
      out.push(left[at]!.dependency);
      left.splice(at, 1);
    }
    return out;
  }

  /**
   * How long `provider` should still be left alone (ms), or 0. A provider cools down after a
   * failure that says when to come back: HTTP 429 or 503 with `Retry-After`, or its own rate
   * limiter's refusal. Trying it before then would only spend the caller's time and its quota.
   */
  coolingFor(provider: string, now: number): number {
    const until = this.#coolingUntil.get(provider);
    if (until === undefined) return 0;
    if (until > now) return until - now;
    this.#coolingUntil.delete(provider);
    return 0;
  }

  /** Records `error` from `provider`: a cool-down starts if it names when to come back. */
  failed(provider: string, error: unknown, now: number): void {
    const wait = comeBackAfterMs(error);
    if (wait > 0) this.#coolingUntil.set(provider, now + wait);
  }

  stats(): GroupStats {
    return {
      name: this.name,
      strategy: this.strategy,
      providers: this.members.map((m) => m.dependency),
      calls: this.calls,
      servedBy: Object.fromEntries(this.servedBy),
      failovers: this.failovers,
      fallbacks: this.fallbacks,
      failures: this.failures,
    };
  }
}

/**
 * The wait a "not now" failure asks for: 429/503 with Retry-After, or a rate limiter's refusal,
 * also when the provider's own retry gave up on it (the last attempt's error is the cause).
 */
function comeBackAfterMs(error: unknown): number {
  if (!(error instanceof BulwarkError)) return 0;
  const code = error.code;
  if (code === ErrorCodes.RETRIES_EXHAUSTED) return comeBackAfterMs(error.cause);
  const status = (error as { status?: unknown }).status;
  const wait = (error as { retryAfterMs?: unknown }).retryAfterMs;
  if (typeof wait !== 'number' || !(wait > 0)) return 0;
  if (code === ErrorCodes.RATE_LIMITED) return wait;
  if (code === ErrorCodes.HTTP_STATUS && (status === 429 || status === 503)) return wait;
  return 0;
}

function nearestName(name: string, names: readonly string[]): string {
  const near = nearest(name, names);
  return near === undefined ? '' : `; did you mean '${near}'?`;
}
