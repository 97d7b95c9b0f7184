// The environment's part in a configuration: `BULWARK_A__B=value` overrides, and `${NAME}`
// references resolved in string values (how secrets get in without being written down).
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import type { RawIssue } from './issues.ts';
import { isRecord, keysAt, type Segment } from './walk.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** An override applied: the variable and the path it set. */
export interface Override {
  variable: string;
  path: Segment[];
}

/** A raw issue caused by an override names the variable instead of a line. */
export interface EnvIssue extends RawIssue {
  variable: string;
}

const PREFIX = 'BULWARK_';

/**
 * Applies every `BULWARK_SECTION__KEY=value` variable to `data` (in place), in name order so the
 * result never depends on the environment's order. Each segment matches case-insensitively a key
 * already in the document or one the schema knows at that place; other names (a new dependency)
 * are lower-cased. The value is read as YAML (`3`, `true`, `20s`, `{ maxAttempts: 2 }`).
 */
export function applyOverrides(
  data: Record<string, unknown>,
  env: Env,
  schema: z.ZodType,
): { overrides: Override[]; issues: EnvIssue[] } {
  const overrides: Override[] = [];
  const issues: EnvIssue[] = [];
  for (const variable of Object.keys(env).sort()) {
    const raw = env[variable];
    if (!variable.startsWith(PREFIX) || !variable.includes('__') || raw === undefined) continue;
    const segments = variable.slice(PREFIX.length).split('__');
    if (segments.some((s) => s === '')) {
      issues.push({
        variable,
        path: [],
        message: `${variable} is not a valid override: empty segment between '__'`,
      });
      continue;
    }
    const path: Segment[] = [];
    let container = data;
    for (let i = 0; i < segments.length; i++) {
      const key = match(segments[i]!, container, keysAt(schema, path, data));
      path.push(key);
      if (i === segments.length - 1) {
        const value = parseValue(raw);
        if (value.ok) {
          container[key] = value.value;
          overrides.push({ variable, path });
        } else {
          // The value itself is not shown: it may be a secret.
          issues.push({ variable, path, message: `is not a valid YAML value (${value.error})` });
        }
        break;
      }
      const next = container[key];
      if (next === undefined || next === null) container[key] = {};
      else if (!isRecord(next)) {
        issues.push({
          variable,
          path: [...path],
          message: `cannot set ${segments.slice(i + 1).join('__')} here: this is not a map`,
        });
        break;
      }
      container = container[key] as Record<string, unknown>;
    }
  }
  return { overrides, issues };
}

function match(segment: string, container: Record<string, unknown>, known: readonly string[]): string {
  const lower = segment.toLowerCase();
  for (const key of Object.keys(container)) if (key.toLowerCase() === lower) return key;
  for (const key of known) if (key.toLowerCase() === lower) return key;
  return lower;
}

function parseValue(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  const doc = parseDocument(text, { prettyErrors: false });
  const error = doc.errors[0];
  if (error !== undefined) return { ok: false, error: error.message.split('\n')[0]! };
  try {
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    // An empty variable is an empty string, not YAML's null.
    return { ok: true, value: value === null && text.trim() === '' ? '' : value };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/** A string value that held `${NAME}` references: what the file said and what it became. */
export interface Interpolation {
  path: Segment[];
  template: string;
  resolved: string;
  /** The values of the variables used, so each can be hidden wherever it might be shown. */
  values: { name: string; value: string }[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Resolves `${NAME}` in every string value of `data` (in place); `$${` writes a literal `${`.
 * A missing variable is an issue, and the value is left as written.
 */
export function interpolate(
  data: unknown,
  env: Env,
): { interpolations: Interpolation[]; issues: RawIssue[] } {
  const interpolations: Interpolation[] = [];
  const issues: RawIssue[] = [];
  const visit = (value: unknown, path: Segment[]): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('$')) return value;
      const result = expand(value, env);
      for (const message of result.faults) issues.push({ path, message });
      if (result.faults.length > 0) return value;
      if (result.values.length > 0) {
        interpolations.push({ path, template: value, resolved: result.text, values: result.values });
      }
      return result.text;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = visit(value[i], [...path, i]);
    } else if (isRecord(value)) {
      for (const key of Object.keys(value)) value[key] = visit(value[key], [...path, key]);
    }
    return value;
  };
  visit(data, []);
  return { interpolations, issues };
}

function expand(
  text: string,
  env: Env,
): { text: string; faults: string[]; values: { name: string; value: string }[] } {
  let out = '';
  const faults: string[] = [];
  const values: { name: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
    } else if (text.startsWith('${', i)) {
      const end = text.indexOf('}', i + 2);
      if (end < 0) {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the message quotes the file's own syntax.
        faults.push("has '${' without a closing '}' (write '$${' for a literal '${')");
        break;
      }
      const name = text.slice(i + 2, end);
      const value = NAME.test(name) ? env[name] : undefined;
      if (!NAME.test(name)) faults.push(`\${${name}} is not a valid variable name (letters, digits and '_')`);
      else if (value === undefined)
        faults.push(`environment variable ${name} is not set (referenced as \${${name}})`);
      else {
        out += value;
        values.push({ name, value });
      }
      i = end + 1;
    } else {
      out += text[i];
      i++;
    }
  }
  return { text: out, faults, values };
}

/**
 * Replaces every resolved value a message might show by the reference that produced it. Messages
 * quote strings as JSON, so a quoted value is hidden whatever its length; bare occurrences only
 * from 3 characters, so that a value like "1" does not replace unrelated text ("at least 1").
 */
export function hideSecrets(message: string, interpolations: readonly Interpolation[]): string {
  let out = message;
  for (const { template, resolved } of interpolations) {
    out = out.split(JSON.stringify(resolved)).join(JSON.stringify(template));
    if (resolved.length >= 3) out = out.split(resolved).join(template);
  }
  for (const { values } of interpolations) {
    for (const { name, value } of values) {
      if (value.length < 3) continue;
      const escaped = JSON.stringify(value).slice(1, -1);
      out = out.split(value).join(`\${${name}}`).split(escaped).join(`\${${name}}`);
    }
  }
  return out;
}
