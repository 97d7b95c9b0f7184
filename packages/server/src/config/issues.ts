// Turns zod's issues into the file's terms: one issue per fault, unions resolved to the member
// that was meant, and messages that say what was expected and suggest what was meant.
import type { z } from 'zod';
import { keysAt, type Segment, suggest, valueAt } from './walk.ts';

/** An issue before it is located in the file. */
export interface RawIssue {
  path: Segment[];
  message: string;
  /** The fault is the key itself (an unknown key, a bad name), not its value. */
  atKey?: boolean;
}

type ZodIssue = z.core.$ZodIssue;

export function fromZod(issues: readonly ZodIssue[], root: z.ZodType, data: unknown): RawIssue[] {
  return issues.flatMap((issue) => convert(issue, issue.path as Segment[], root, data));
}

function convert(issue: ZodIssue, path: Segment[], root: z.ZodType, data: unknown): RawIssue[] {
  const input = valueAt(data, path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = keysAt(root, path, data);
      return issue.keys.map((key) => {
        const near = suggest(key, known);
        const hint =
          near !== undefined
            ? `; did you mean '${near}'?`
            : known.length > 0
              ? ` (expected one of ${list(known)})`
              : '';
        return { path: [...path, key], message: `unknown key${hint}`, atKey: true };
      });
    }
    case 'invalid_union': {
      const u = issue as ZodIssue & { note?: string; discriminator?: string; options?: unknown[] };
      if (u.note === 'No matching discriminator') {
        // zod puts the discriminator in the path when the value is an object.
        const at = path[path.length - 1] === u.discriminator ? path : [...path, u.discriminator ?? 'kind'];
        const value = valueAt(data, at);
        return [{ path: at, message: oneOfMessage((u.options ?? []) as unknown[], value) }];
      }
      return fromUnion(issue.errors, path, root, data);
    }
    case 'invalid_type': {
      if (input === undefined || issue.expected === 'nonoptional') return [{ path, message: 'is required' }];
      return [{ path, message: `expected ${typeName(issue.expected)}, got ${describe(input)}` }];
    }
    case 'too_small': {
      if (issue.origin === 'array')
        return [{ path, message: `must have at least ${plural(Number(issue.minimum), 'entry', 'entries')}` }];
      if (issue.origin === 'string') return [{ path, message: 'must not be empty' }];
      const bound = issue.inclusive === false ? 'above' : 'at least';
      return [{ path, message: `must be ${bound} ${issue.minimum}, got ${describe(input)}` }];
    }
    case 'too_big': {
      const bound = issue.inclusive === false ? 'below' : 'at most';
      return [{ path, message: `must be ${bound} ${issue.maximum}, got ${describe(input)}` }];
    }
    case 'invalid_value':
      return [{ path, message: oneOfMessage(issue.values, input) }];
    case 'invalid_key': {
      const inner = issue.issues[0];
      const why =
        inner?.code === 'invalid_format' && !inner.message.startsWith('Invalid')
          ? inner.message
          : 'is not a valid name';
      return [{ path, message: why, atKey: true }];
    }
    case 'invalid_format':
      return [
        {
          path,
          message: issue.message.startsWith('Invalid') ? `is not valid: ${describe(input)}` : issue.message,
        },
      ];
    default:
      return [{ path, message: issue.message }];
  }
}

/**
 * A union failed: if some member matched the value's type (an object where `false | {...}` was
 * allowed), its issues are the real faults; otherwise the value had none of the types allowed.
 */
function fromUnion(
  branches: readonly (readonly ZodIssue[])[],
  path: Segment[],
  root: z.ZodType,
  data: unknown,
): RawIssue[] {
  const mismatch = (i: ZodIssue) =>
    i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value');
  const meant = branches
    .filter((b) => b.length > 0 && !b.every(mismatch))
    .sort((a, b) => a.length - b.length);
  if (meant[0] !== undefined) {
    return meant[0].flatMap((i) => convert(i, [...path, ...(i.path as Segment[])], root, data));
  }
  const expected = new Set<string>();
  for (const b of branches) {
    for (const i of b) {
      if (i.code === 'invalid_type') expected.add(typeName(i.expected));
      else if (i.code === 'invalid_value') for (const v of i.values) expected.add(shown(v));
    }
  }
  const input = valueAt(data, path);
  if (input === undefined) return [{ path, message: 'is required' }];
  return [{ path, message: `expected ${[...expected].join(' or ')}, got ${describe(input)}` }];
}

function oneOfMessage(values: readonly unknown[], input: unknown): string {
  if (input === undefined) return `is required: one of ${values.map(shown).join(', ')}`;
  if (values.length === 1) return `expected ${shown(values[0])}, got ${describe(input)}`;
  const near =
    typeof input === 'string'
      ? suggest(
          input,
          values.filter((v) => typeof v === 'string'),
        )
      : undefined;
  return `expected one of ${values.map(shown).join(', ')}, got ${describe(input)}${near ? `; did you mean '${near}'?` : ''}`;
}

function typeName(expected: string): string {
  switch (expected) {
    case 'object':
    case 'record':
      return 'a map';
    case 'array':
      return 'a list';
    case 'boolean':
      return 'true or false';
    case 'int':
      return 'a whole number';
    case 'number':
    case 'string':
      return `a ${expected}`;
    default:
      return expected;
  }
}

function shown(value: unknown): string {
  if (value === Number.POSITIVE_INFINITY) return '.inf';
  return typeof value === 'string' ? `'${value}'` : String(value);
}

/** A value as the message shows it: scalars as written, collections by their kind only. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a map' : typeof value;
}

function list(keys: readonly string[]): string {
  return keys.map((k) => `'${k}'`).join(', ');
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
