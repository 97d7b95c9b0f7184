// How times, rates and values read on screen: one place, so every view says them the same way.
export { formatDuration } from '../waterfall.ts';

const pad = (n: number) => String(n).padStart(2, '0');

/** `14:03:27`, local time. */
export function clockTime(at: number): string {
  const d = new Date(at);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `2025-11-23 14:03:27`, local time. */
export function dateTime(at: number | null | undefined): string {
  if (at === null || at === undefined) return '—';
  const d = new Date(at);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(at)}`;
}

export function percent(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '—';
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0)}%`;
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

export function json(value: unknown): string {
  return value === undefined ? 'null' : JSON.stringify(value, null, 2);
}
