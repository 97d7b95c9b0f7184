// Building blocks of the schema: documented fields, durations and sizes, sections that `false`
// turns off, and strict objects whose file keys become the code's keys.
import { z } from 'zod';
import { durationMessage, parseDuration } from './duration.ts';

/** What the reference shows of a field: `description`, its `default`, and `label` for a type zod cannot name. */
export interface FieldMeta {
  description: string;
  default?: string;
  label?: string;
}

/** Documents a field; every field of the schema goes through here so none is left undocumented. */
export function doc<T extends z.ZodType>(schema: T, description: string, defaultText?: string): T {
  const meta: FieldMeta = { description };
  if (defaultText !== undefined) meta.default = defaultText;
  return schema.meta(meta as unknown as z.GlobalMeta);
}

/**
 * A duration: milliseconds, or `<number><unit>` with unit ms, s, m or h. A custom check rather
 * than a union, so that every fault gets the one message that shows what was expected.
 */
export function duration(min = 0) {
  return z
    .any()
    .transform((value: unknown, ctx): number => {
      if (value === undefined) {
        ctx.addIssue({ code: 'custom', message: 'is required' });
        return z.NEVER;
      }
      if (typeof value === 'number' && value < 0) {
        ctx.addIssue({ code: 'custom', message: `must not be negative, got ${value}` });
        return z.NEVER;
      }
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: durationMessage(value) });
        return z.NEVER;
      }
      if (ms < min) {
        ctx.addIssue({ code: 'custom', message: `must be at least ${min}ms, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return ms;
    })
    .meta({ label: 'duration' } as unknown as z.GlobalMeta);
}

/** A section that `false` turns off. */
export function offable<T extends z.ZodType>(schema: T) {
  return z.union([z.literal(false), schema]);
}

/** A strict object whose file keys are renamed to the code's keys (`base` → `baseMs`) once valid. */
export function renamed<S extends z.core.$ZodLooseShape>(
  shape: S,
  renames: Readonly<Record<string, string>>,
) {
  return z.strictObject(shape).transform((value) => {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) if (v !== undefined) out[renames[key] ?? key] = v;
    return out;
  });
}

export const count = (min: number) => z.number().int().min(min);
/** A share in (0, 1]: a rate of 0 would judge every call, successes included. */
export const rate = () => z.number().gt(0).max(1);
/** A whole number, or `.inf` for no bound. */
export const bound = (min: number) => z.union([count(min), z.literal(Number.POSITIVE_INFINITY)]);

const SIZE_UNITS = { B: 1, KB: 1_000, KiB: 1_024, MB: 1_000_000, MiB: 1_048_576 } as const;
const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB)$/;

/** Bytes for a size (`1MiB`, `512KiB`, `64KB`, or a number of bytes), or undefined when it is not one. */
function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = SIZE.exec(value.trim());
  if (match === null) return undefined;
  const bytes = Math.round(Number(match[1]) * SIZE_UNITS[match[2] as keyof typeof SIZE_UNITS]);
  return bytes > 0 ? bytes : undefined;
}

/** A size in bytes: a custom check so that every fault gets one message showing what was expected. */
export function size() {
  return z
    .any()
    .transform((value: unknown, ctx): number => {
      const bytes = parseSize(value);
      if (bytes === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a size like 1MiB, 512KiB or a number of bytes, got ${JSON.stringify(value) ?? String(value)}`,
        });
        return z.NEVER;
      }
      return bytes;
    })
    .meta({ label: 'size' } as unknown as z.GlobalMeta);
}
