// Input the stores cannot keep alike, refused as a 400 naming the field before any route runs:
// PostgreSQL keeps no U+0000 in text columns (ids, correlation ids, query values; its store escapes
// it inside jsonb, and the check refuses it there too so that both stores answer alike), neither
// store's JSON keeps a lone surrogate (half of a UTF-16 pair), and a body nested deeper than any
// input needs would overflow the stack where the engine copies it. Without this, each reached the
// store and came back as a 500.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type FieldProblem, invalidField } from './errors.ts';
import { addRouteHook } from './route.ts';

/** Deeper than any workflow input or event payload needs, far below what overflows the stack. */
const MAX_JSON_DEPTH = 128;

/** Escapes in JSON text that decode to U+0000 or to a surrogate: only then is a body walked for them. */
const SUSPECT_ESCAPE = /\\u(?:0000|[dD][89a-fA-F])/;

/** Why a string cannot be stored, or undefined. */
function badText(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain the character U+0000';
  // Node 20 has isWellFormed (ES2024); the project's lib is ES2023.
  if (!(text as string & { isWellFormed(): boolean }).isWellFormed())
    return 'must not contain a lone UTF-16 surrogate';
  return undefined;
}

/**
 * The first bad string or the first place too deep in `value`, as a pointer under `at`. `path`
 * holds the keys and indexes down to `value`; the pointer is written only for a problem found,
 * since every request's body is walked for its depth.
 */
function walk(
  value: unknown,
  at: string,
  path: (string | number)[],
  strings: boolean,
): FieldProblem | undefined {
  if (typeof value === 'string') {
    const detail = strings ? badText(value) : undefined;
    return detail === undefined ? undefined : { pointer: pointer(at, path), detail };
  }
  if (value === null || typeof value !== 'object') return undefined;
  if (path.length >= MAX_JSON_DEPTH)
    return { pointer: pointer(at, path), detail: `is nested deeper than ${MAX_JSON_DEPTH} levels` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const found = walk(value[i], at, path, strings);
      path.pop();
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    path.push(key);
    const detail = strings ? badText(key) : undefined;
    const found =
      detail !== undefined
        ? { pointer: pointer(at, path), detail: `(a key) ${detail}` }
        : walk((value as Record<string, unknown>)[key], at, path, strings);
    path.pop();
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A JSON pointer (RFC 6901) under `at`. */
function pointer(at: string, path: readonly (string | number)[]): string {
  let out = at;
  for (const part of path)
    out += `/${typeof part === 'number' ? part : part.replaceAll('~', '~0').replaceAll('/', '~1')}`;
  return out;
}

/** The first problem in a request's path parameters, query and body, if any. */
function textProblem(request: FastifyRequest, bodyText: boolean): FieldProblem | undefined {
  // A URL decodes to no lone surrogate (invalid UTF-8 is refused as bad percent-encoding), but
  // `%00` decodes to U+0000.
  // `path`, as validation names the parameters (errors.ts), so that a client sees one pointer.
  for (const [part, values] of [
    ['path', request.params],
    ['query', request.query],
  ] as const) {
    const found = walk(values, `#/${part}`, [], true);
    if (found !== undefined) return found;
  }
  // Strings are checked only when the JSON text had an escape that could make one bad; depth always.
  return walk(request.body, '#/body', [], bodyText);
}

/** Installs the check on every route, after parsing, before validation. */
export function installTextCheck(app: FastifyInstance): void {
  // The raw text is gone by preValidation: the parser notes whether it had a suspect escape.
  const suspect = new WeakSet<FastifyRequest>();
  // Fastify's own parser does the parsing (empty bodies, `__proto__` and `constructor` refused).
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, text, done) => {
    if (SUSPECT_ESCAPE.test(text as string)) suspect.add(request);
    parse(request, text as string, done);
  });
  // The probes take no input: their hook lists do not hold this check.
  addRouteHook(app, 'preValidation', (request, _reply, done) => {
    const found = textProblem(request, suspect.has(request));
    done(found === undefined ? undefined : invalidField(found.pointer, found.detail));
  });
}
