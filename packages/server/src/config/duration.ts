// Durations in the config file: a number of milliseconds, or `<number><unit>` (`200ms`, `1.5s`,
// `2m`, `1h`), converted once to the milliseconds every API of the code takes.

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const PATTERN = /^(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)$/;

/** The message for a value that is not a duration; it shows the value so the fault is obvious. */
export function durationMessage(value: unknown): string {
  return `expected a duration like 200ms, 1.5s or 2m, got ${shown(value)}`;
}

/**
 * Milliseconds for a duration, or `undefined` when the value is not one. Fractions of a
 * millisecond are rounded, since every timer in the code counts whole milliseconds.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const match = PATTERN.exec(value.trim());
  if (match === null) return undefined;
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Formats milliseconds the way a person would write them in the file (`1500` → `1.5s`). */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1_000 && ms % 100 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a map' : String(value);
}
