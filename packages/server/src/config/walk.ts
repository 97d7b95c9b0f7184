// Reads the schema as data: which keys are valid at a place (for did-you-mean and for matching
// environment overrides) and, for the reference generator, what each field is.
import type { z } from 'zod';

export type Segment = string | number;

/** The parts of zod's internal definition this module reads. */
export interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  shape?: Record<string, z.ZodType>;
  valueType?: z.ZodType;
  element?: z.ZodType;
  values?: unknown[];
  entries?: Record<string, unknown>;
  getter?: () => z.ZodType;
}

export function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'nonoptional', 'readonly', 'catch']);

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The schemas a value at this place is checked against: wrappers and transforms removed, unions
 * split, and a discriminated union narrowed to the member the value names (when it names one).
 */
export function concrete(schema: z.ZodType, value?: unknown): z.ZodType[] {
  const def = defOf(schema);
  if (WRAPPERS.has(def.type)) return concrete(def.innerType!, value);
  if (def.type === 'pipe') return concrete(def.in!, value);
  if (def.type === 'lazy') return concrete(def.getter!(), value);
  if (def.type === 'union') {
    const members = def.options!.flatMap((o) => concrete(o, value));
    const key = def.discriminator;
    if (key !== undefined && isRecord(value)) {
      const named = members.filter((m) => literalOf(m, key) === value[key]);
      if (named.length > 0) return named;
    }
    return members;
  }
  return [schema];
}

/** The literal an object schema's field must equal (a discriminated union's `kind`), if any. */
export function literalOf(schema: z.ZodType, key: string): unknown {
  const shape = defOf(schema).shape;
  const field = shape?.[key];
  if (field === undefined) return undefined;
  const [inner] = concrete(field);
  const def = inner === undefined ? undefined : defOf(inner);
  return def?.type === 'literal' ? def.values?.[0] : undefined;
}

/** The schemas of the value at `path` of `data`. */
export function schemasAt(root: z.ZodType, path: readonly Segment[], data: unknown): z.ZodType[] {
  let schemas = [root];
  let value = data;
  for (const segment of path) {
    const next: z.ZodType[] = [];
    for (const s of schemas) {
      for (const c of concrete(s, value)) {
        const def = defOf(c);
        if (def.type === 'object' && typeof segment === 'string' && def.shape![segment] !== undefined) {
          next.push(def.shape![segment]!);
        } else if (def.type === 'record') next.push(def.valueType!);
        else if (def.type === 'array' && typeof segment === 'number') next.push(def.element!);
      }
    }
    schemas = next;
    value =
      isRecord(value) || Array.isArray(value) ? (value as Record<Segment, unknown>)[segment] : undefined;
  }
  return schemas;
}

/** The keys an object at `path` may have; empty where any key goes (a map of names) or none does. */
export function keysAt(root: z.ZodType, path: readonly Segment[], data: unknown): string[] {
  const value = valueAt(data, path);
  const keys = new Set<string>();
  for (const s of schemasAt(root, path, data)) {
    for (const c of concrete(s, value)) {
      const def = defOf(c);
      if (def.type === 'object') for (const key of Object.keys(def.shape!)) keys.add(key);
    }
  }
  return [...keys];
}

export function valueAt(data: unknown, path: readonly Segment[]): unknown {
  let value = data;
  for (const segment of path) {
    if (!isRecord(value) && !Array.isArray(value)) return undefined;
    value = (value as Record<Segment, unknown>)[segment];
  }
  return value;
}

/** `dependencies.db.retry`, `groups.ai.providers[1]`. */
export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

/** The nearest of `candidates` to `word` by edit distance, if it is near enough to be a likely typo. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = distance(word.toLowerCase(), candidate.toLowerCase());
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
