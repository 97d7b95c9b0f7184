// Option checks shared by every policy: run once at construction, each naming the field it rejects.
import type { Clock } from '../clock/clock.ts';
import { InvalidOptionsError } from '../errors.ts';

export function fail(path: string, message: string): never {
  throw new InvalidOptionsError(path, message);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An options object, or `{}` when omitted; anything else is rejected. */
export function optionsObject(path: string, value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isRecord(value)) fail(path, `expected an options object, got ${describe(value)}`);
  return value;
}

/** Rejects keys the policy does not know, suggesting the nearest known key. */
export function knownKeys(path: string, value: Record<string, unknown>, keys: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      const near = nearest(key, keys);
      fail(`${path}.${key}`, `unknown option${near ? `; did you mean '${near}'?` : ''}`);
    }
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return String(value);
  return typeof value;
}

interface NumberRule {
  min?: number;
  max?: number;
  integer?: boolean;
  /** `Infinity` is accepted (meaning "no limit"). */
  infinite?: boolean;
}

export function num(path: string, value: unknown, fallback: number, rule: NumberRule = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value))
    fail(path, `expected a number, got ${describe(value)}`);
  if (value === Number.POSITIVE_INFINITY && rule.infinite) return value;
  if (!Number.isFinite(value)) fail(path, `expected a finite number, got ${value}`);
  if (rule.integer && !Number.isInteger(value)) fail(path, `expected a whole number, got ${value}`);
  if (rule.min !== undefined && value < rule.min) fail(path, `must be at least ${rule.min}, got ${value}`);
  if (rule.max !== undefined && value > rule.max) fail(path, `must be at most ${rule.max}, got ${value}`);
  return value;
}

export function func<F extends (...args: any[]) => unknown>(path: string, value: unknown, fallback: F): F;
export function func<F extends (...args: any[]) => unknown>(
  path: string,
  value: unknown,
  fallback?: undefined,
): F | undefined;
export function func(path: string, value: unknown, fallback?: unknown): unknown {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') fail(path, `expected a function, got ${describe(value)}`);
  return value;
}

export function str(path: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0) {
    fail(path, `expected a non-empty string, got ${describe(value)}`);
  }
  return value;
}

export function oneOf<T extends string>(path: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    fail(path, `expected one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

/** A `Clock`: checked here so that a wrong value fails at construction, not on the first timer. */
export function clockOption(path: string, value: unknown, fallback: Clock): Clock {
  if (value === undefined) return fallback;
  const c = value as Partial<Record<keyof Clock, unknown>> | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.now !== 'function' ||
    typeof c.setTimeout !== 'function' ||
    typeof c.clearTimeout !== 'function' ||
    typeof c.sleep !== 'function'
  ) {
    fail(path, `expected a Clock (now, setTimeout, clearTimeout, sleep), got ${describe(value)}`);
  }
  return value as Clock;
}

/** The known key closest to `key` by edit distance, if close enough to be a likely typo. */
export function nearest(key: string, keys: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of keys) {
    const d = distance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
