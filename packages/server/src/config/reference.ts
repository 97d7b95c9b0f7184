// Writes the configuration reference (markdown) from the schema itself, so that the documented
// keys, types and defaults are the ones the loader accepts and cannot drift from them.
import type { z } from 'zod';
import type { FieldMeta } from './fields.ts';
import { configSchema } from './schema.ts';
import { concrete, defOf } from './walk.ts';

export const REFERENCE_START = '<!-- generated:start -->';
export const REFERENCE_END = '<!-- generated:end -->';

interface Section {
  title: string;
  description: string | undefined;
  object: z.ZodType;
}

/** The reference: one table per map of the file, in the order a reader meets them. */
export function configReference(): string {
  const out: string[] = [];
  const titles = new Map<z.ZodType, string>();
  const queue: Section[] = [{ title: '(top level)', description: undefined, object: configSchema }];
  titles.set(concrete(configSchema)[0]!, '(top level)');
  while (queue.length > 0) {
    const section = queue.shift()!;
    out.push(`### \`${section.title}\``, '');
    if (section.description !== undefined) out.push(section.description, '');
    out.push('| key | type | default | description |', '| --- | --- | --- | --- |');
    const shape = defOf(concrete(section.object)[0]!).shape!;
    for (const [key, field] of Object.entries(shape)) {
      const meta = metaOf(field);
      const path = section.title === '(top level)' ? key : `${section.title}.${key}`;
      // Nested maps get their own table; a map met before (operations share the policy sections) links to it.
      const nested = (schema: z.ZodType, at: string): void => {
        const objects = concrete(schema).filter((c) => defOf(c).type === 'object');
        const union = objects.length > 1;
        for (const object of objects) {
          if (titles.has(object)) continue;
          const kind = union ? variantOf(object) : undefined;
          const title = kind === undefined ? at : `${at} (${kind})`;
          titles.set(object, title);
          queue.push({ title, description: union ? metaOf(object)?.description : meta?.description, object });
        }
      };
      for (const c of concrete(field)) {
        const def = defOf(c);
        if (def.type === 'record') nested(def.valueType!, `${path}.<name>`);
        else if (def.type === 'array') nested(def.element!, `${path}[]`);
      }
      nested(field, path);
      const required = defOf(field).type !== 'optional';
      const defaultText = required ? 'required' : defaultCell(meta?.default);
      out.push(
        `| \`${key}\` | ${typeLabel(field, titles)} | ${defaultText} | ${cell(meta?.description ?? '')} |`,
      );
    }
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** Puts `reference` between the markers of `markdown`. */
export function withReference(markdown: string, reference: string = configReference()): string {
  const start = markdown.indexOf(REFERENCE_START);
  const end = markdown.indexOf(REFERENCE_END);
  if (start < 0 || end < start)
    throw new Error(`expected ${REFERENCE_START} and ${REFERENCE_END} in the page`);
  return `${markdown.slice(0, start + REFERENCE_START.length)}\n\n${reference}\n${markdown.slice(end)}`;
}

/** Metadata is kept on whichever layer `.meta()` was called on: the outermost found wins. */
function metaOf(schema: z.ZodType): FieldMeta | undefined {
  let s: z.ZodType | undefined = schema;
  while (s !== undefined) {
    const meta = s.meta() as FieldMeta | undefined;
    if (meta?.description !== undefined || meta?.label !== undefined) return meta;
    const def = defOf(s);
    s = def.innerType ?? def.in;
  }
  return undefined;
}

function variantOf(object: z.ZodType): string | undefined {
  for (const [key, field] of Object.entries(defOf(object).shape!)) {
    const [inner] = concrete(field);
    const def = inner === undefined ? undefined : defOf(inner);
    if (def?.type === 'literal') return `${key}: ${String(def.values![0])}`;
  }
  return undefined;
}

/** A value (`30s`, `{ probes: 1 }`) as code; words (`by kind: ...`) as text. */
function defaultCell(text: string | undefined): string {
  if (text === undefined) return '';
  return /^[^\s`]+$|^\{.*\}$/.test(text) ? `\`${text}\`` : cell(text);
}

/** Like `concrete`, but a layer with a `label` (a duration) is a leaf: what it wraps is an implementation. */
function leaves(schema: z.ZodType): z.ZodType[] {
  if ((schema.meta() as FieldMeta | undefined)?.label !== undefined) return [schema];
  const def = defOf(schema);
  if (def.type === 'union') return def.options!.flatMap(leaves);
  const inner = def.innerType ?? def.in;
  return inner === undefined ? [schema] : leaves(inner);
}

function typeLabel(schema: z.ZodType, titles: ReadonlyMap<z.ZodType, string>): string {
  const parts = leaves(schema).map((c) => {
    const meta = c.meta() as FieldMeta | undefined;
    if (meta?.label !== undefined) return meta.label;
    const def = defOf(c);
    switch (def.type) {
      case 'object': {
        const title = titles.get(c);
        return title === undefined ? 'map' : `map (see \`${title.replace(/ \(.*\)$/, '')}\`)`;
      }
      case 'record':
        return `map of names to ${typeLabel(def.valueType!, titles)}`;
      case 'array':
        return `list of ${typeLabel(def.element!, titles)}`;
      case 'literal':
        return def
          .values!.map((v) => (v === Number.POSITIVE_INFINITY ? '`.inf`' : `\`${String(v)}\``))
          .join(', ');
      case 'enum':
        return Object.values(def.entries!)
          .map((v) => `\`${String(v)}\``)
          .join(', ');
      case 'number':
        return numberLabel(c);
      case 'boolean':
        return '`true`, `false`';
      case 'unknown':
        return 'any';
      default:
        return def.type;
    }
  });
  // A discriminated union lists its members once.
  return [...new Set(parts)].join(' or ');
}

function numberLabel(schema: z.ZodType): string {
  const checks = (
    (defOf(schema) as { checks?: { _zod: { def: Record<string, unknown> } }[] }).checks ?? []
  ).map((c) => c._zod.def);
  let label = checks.some((c) => c.check === 'number_format') ? 'whole number' : 'number';
  const bounds: string[] = [];
  for (const c of checks) {
    if (c.check === 'greater_than') bounds.push(`${c.inclusive ? '≥' : '>'} ${String(c.value)}`);
    if (c.check === 'less_than') bounds.push(`${c.inclusive ? '≤' : '<'} ${String(c.value)}`);
  }
  if (bounds.length > 0) label += ` ${bounds.join(', ')}`;
  return label;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}
