// Building blocks of the schema: documented fields, durations, sections that `false` turns
// off, and strict objects whose file keys become the code's keys.
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
