// `{{ path | filter }}` templates for declarative workflows: parsed once, then evaluated against
// a scope of plain data. Nothing is ever executed: a path reads own properties of the scope's
// objects and arrays, and the filters are a fixed list of pure string functions.

/** Where a template's path may start: what each root names is listed in the docs. */
export type Root = 'input' | 'steps' | 'run' | 'output' | 'error';

export type Literal = string | number | boolean | null;

export interface Filter {
  name: FilterName;
  args: Literal[];
}

/** One `{{ ... }}`: a path into the scope (or a literal), then its filters, left to right. */
export interface Expression {
  /** The text between the braces, trimmed, for messages. */
  source: string;
  /** Empty for a literal. */
  path: (string | number)[];
  literal?: Literal;
  filters: Filter[];
}

/** A parsed string: text and expressions. `whole` when it is exactly one expression (its value keeps its type). */
export interface Template {
  parts: (string | Expression)[];
  whole: boolean;
}

/** A value to build: templates where the declaration had strings, the rest as written. */
export type Compiled =
  | { kind: 'template'; template: Template }
  | { kind: 'list'; items: Compiled[] }
  | { kind: 'map'; entries: [string, Compiled][] }
  | { kind: 'value'; value: unknown };

/** A template that cannot be parsed: `offset` is where in the string the fault is. */
export class TemplateSyntaxError extends Error {
  override readonly name = 'TemplateSyntaxError';
  readonly code = 'BULWARK_TEMPLATE_SYNTAX';
  /** Never worth a retry. */
  readonly transient = false;
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/** A template that cannot be evaluated against its scope (a value that is not set). */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
  readonly code = 'BULWARK_TEMPLATE';
  readonly transient = false;
}

const FILTERS = {
  /** The argument when the value is not set (or null). */
  default: 1,
  /** The value as JSON text. */
  json: 0,
  /** Lower case ASCII words joined by `-`, at most 80 characters: a safe file name part. */
  slug: 0,
  lower: 0,
  upper: 0,
  trim: 0,
  /** Percent-encoded for a URL path segment or query value. */
  urlencode: 0,
  /** `&`, `<`, `>`, `"` and `'` escaped, for text put into HTML. */
  html: 0,
} as const;

export type FilterName = keyof typeof FILTERS;
export const FILTER_NAMES = Object.keys(FILTERS) as FilterName[];

/** Whether `name` is one of the filters. */
function isFilter(name: string): name is FilterName {
  return Object.hasOwn(FILTERS, name);
}

const IDENT = /[A-Za-z_][A-Za-z0-9_-]*/y;
const NUMBER = /-?\d+(?:\.\d+)?/y;
const SPACE = /\s*/y;

/** Parses a string; throws TemplateSyntaxError. A string without `{{` is plain text. */
export function parseTemplate(text: string): Template {
  const parts: (string | Expression)[] = [];
  let at = 0;
  while (at < text.length) {
    const open = text.indexOf('{{', at);
    if (open < 0) {
      parts.push(text.slice(at));
      break;
    }
    if (open > at) parts.push(text.slice(at, open));
    const { expression, end } = parseExpression(text, open + 2);
    parts.push(expression);
    at = end;
  }
  return { parts, whole: parts.length === 1 && typeof parts[0] !== 'string' };
}

function parseExpression(text: string, start: number): { expression: Expression; end: number } {
  let at = start;
  const skip = () => {
    SPACE.lastIndex = at;
    SPACE.exec(text);
    at = SPACE.lastIndex;
  };
  const fail = (message: string): never => {
    throw new TemplateSyntaxError(message, at);
  };
  const ident = (what: string): string => {
    IDENT.lastIndex = at;
    const match = IDENT.exec(text);
    if (match === null) fail(`expected ${what} at ${describeAt(text, at)}`);
    at = IDENT.lastIndex;
    return match![0];
  };
  const literal = (): Literal => {
    const c = text[at];
    if (c === '"' || c === "'") {
      let out = '';
      at++;
      for (;;) {
        if (at >= text.length) fail('a string literal is not closed');
        const ch = text[at]!;
        if (ch === c) {
          at++;
          return out;
        }
        if (ch === '\\' && at + 1 < text.length) {
          out += text[at + 1];
          at += 2;
          continue;
        }
        out += ch;
        at++;
      }
    }
    NUMBER.lastIndex = at;
    const number = NUMBER.exec(text);
    if (number !== null) {
      at = NUMBER.lastIndex;
      return Number(number[0]);
    }
    IDENT.lastIndex = at;
    const word = IDENT.exec(text);
    if (word !== null && (word[0] === 'true' || word[0] === 'false' || word[0] === 'null')) {
      at = IDENT.lastIndex;
      return word[0] === 'null' ? null : word[0] === 'true';
    }
    return fail(`expected a string, a number, true, false or null at ${describeAt(text, at)}`);
  };

  skip();
  const expression: Expression = { source: '', path: [], filters: [] };
  const c = text[at];
  if (c === '"' || c === "'") {
    expression.literal = literal();
  } else {
    expression.path.push(ident('a name (input, steps, run, ...)'));
    for (;;) {
      if (text[at] === '.') {
        at++;
        expression.path.push(ident('a name after "."'));
      } else if (text[at] === '[') {
        at++;
        skip();
        const key = literal();
        if (typeof key === 'number' && !(Number.isInteger(key) && key >= 0))
          fail(`an index must be a whole number, got ${key}`);
        if (typeof key !== 'number' && typeof key !== 'string')
          fail('expected an index or a quoted key in [ ]');
        expression.path.push(key as string | number);
        skip();
        if (text[at] !== ']') fail(`expected "]" at ${describeAt(text, at)}`);
        at++;
      } else break;
    }
  }
  skip();
  while (text[at] === '|') {
    at++;
    skip();
    const nameAt = at;
    const name = ident('a filter name after "|"');
    if (!isFilter(name)) {
      throw new TemplateSyntaxError(`unknown filter '${name}'`, nameAt);
    }
    const args: Literal[] = [];
    skip();
    if (text[at] === '(') {
      at++;
      skip();
      if (text[at] !== ')') {
        for (;;) {
          args.push(literal());
          skip();
          if (text[at] === ',') {
            at++;
            skip();
            continue;
          }
          break;
        }
      }
      if (text[at] !== ')') fail(`expected ")" at ${describeAt(text, at)}`);
      at++;
      skip();
    }
    if (args.length !== FILTERS[name]) {
      throw new TemplateSyntaxError(
        `filter '${name}' takes ${FILTERS[name] === 0 ? 'no arguments' : `${FILTERS[name]} argument`}, got ${args.length}`,
        nameAt,
      );
    }
    expression.filters.push({ name, args });
  }
  if (text.startsWith('}}', at)) {
    expression.source = text.slice(start, at).trim();
    return { expression, end: at + 2 };
  }
  if (at >= text.length) return fail('"{{" is not closed by "}}"');
  return fail(`expected "}}" at ${describeAt(text, at)}`);
}

function describeAt(text: string, at: number): string {
  if (at >= text.length) return 'the end';
  return JSON.stringify(text.slice(at, at + 12));
}

/** Parses every string in a declared value (maps and lists walked); throws TemplateSyntaxError with the place. */
export function compileValue(value: unknown): Compiled {
  if (typeof value === 'string') return { kind: 'template', template: parseTemplate(value) };
  if (Array.isArray(value)) return { kind: 'list', items: value.map(compileValue) };
  if (typeof value === 'object' && value !== null) {
    return {
      kind: 'map',
      entries: Object.entries(value).map(([k, v]) => [k, compileValue(v)] as [string, Compiled]),
    };
  }
  return { kind: 'value', value };
}

/** Every expression in a compiled value, for checks at load. */
export function expressionsOf(compiled: Compiled): Expression[] {
  switch (compiled.kind) {
    case 'template':
      return compiled.template.parts.filter((p): p is Expression => typeof p !== 'string');
    case 'list':
      return compiled.items.flatMap(expressionsOf);
    case 'map':
      return compiled.entries.flatMap(([, v]) => expressionsOf(v));
    default:
      return [];
  }
}

/** The scope a template reads: plain data only. */
export type Scope = Readonly<Partial<Record<Root, unknown>>>;

/** Builds the value: a string that is one expression keeps its value's type; other strings are text. */
export function evaluate(compiled: Compiled, scope: Scope): unknown {
  switch (compiled.kind) {
    case 'template':
      return render(compiled.template, scope);
    case 'list':
      return compiled.items.map((item) => evaluate(item, scope));
    case 'map':
      // `fromEntries` defines each key as its own property: a key named `__proto__` stays a plain key.
      return Object.fromEntries(compiled.entries.map(([k, v]) => [k, evaluate(v, scope)]));
    default:
      return compiled.value;
  }
}

export function render(template: Template, scope: Scope): unknown {
  if (template.whole) return expressionValue(template.parts[0] as Expression, scope);
  let out = '';
  for (const part of template.parts)
    out += typeof part === 'string' ? part : toText(expressionValue(part, scope));
  return out;
}

function expressionValue(e: Expression, scope: Scope): unknown {
  let value: unknown = e.literal !== undefined || e.path.length === 0 ? e.literal : lookup(scope, e.path);
  for (const f of e.filters) value = applyFilter(f, value);
  if (value === undefined) {
    throw new TemplateError(
      `{{ ${e.source} }}: ${formatPath(e.path)} is not set (add | default(...) for a value to use instead)`,
    );
  }
  return value;
}

/** Own properties only: `constructor`, `__proto__` and the like are never reached. */
function lookup(scope: Scope, path: readonly (string | number)[]): unknown {
  let value: unknown = scope;
  for (const segment of path) {
    if (Array.isArray(value)) {
      const index = typeof segment === 'number' ? segment : /^\d+$/.test(segment) ? Number(segment) : -1;
      if (!(index >= 0 && index < value.length)) return undefined;
      value = value[index];
    } else if (typeof value === 'object' && value !== null) {
      const key = String(segment);
      if (!Object.hasOwn(value, key)) return undefined;
      const descriptor = Object.getOwnPropertyDescriptor(value, key);
      // Data only: a getter is never called.
      if (descriptor === undefined || !('value' in descriptor)) return undefined;
      value = descriptor.value;
    } else {
      return undefined;
    }
  }
  return value;
}

function applyFilter(f: Filter, value: unknown): unknown {
  switch (f.name) {
    case 'default':
      return value === undefined || value === null ? f.args[0] : value;
    case 'json':
      return value === undefined ? undefined : JSON.stringify(value);
    default:
      if (value === undefined) return undefined;
      return textFilter(f.name, toText(value));
  }
}

function textFilter(name: Exclude<FilterName, 'default' | 'json'>, text: string): string {
  switch (name) {
    case 'lower':
      return text.toLowerCase();
    case 'upper':
      return text.toUpperCase();
    case 'trim':
      return text.trim();
    case 'urlencode':
      return encodeURIComponent(text);
    case 'html':
      return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
    case 'slug':
      return slug(text);
  }
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** `"Hello, World!"` → `hello-world`; empty input gives `untitled`. */
export function slug(text: string): string {
  const words = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 80)
    .replace(/-+$/, '');
  return words === '' ? 'untitled' : words;
}

/** A value inside text: strings as they are, null as nothing, lists and maps as JSON. */
export function toText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}
