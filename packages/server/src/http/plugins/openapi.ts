// The OpenAPI 3.1 document, generated from the routes' own schemas at startup (so it cannot
// drift from what the server validates), and a plain reference page rendered from it.
import type { FastifyPluginAsync, RouteOptions } from 'fastify';

type Schema = Record<string, unknown>;

interface Collected {
  method: string;
  url: string;
  schema: Schema;
  access: string;
}

/** Rewrites Fastify's shared-schema refs (`Run#`) into component refs, and drops `$id`. */
function toOpenApi(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toOpenApi);
  if (value === null || typeof value !== 'object') return value;
  const out: Schema = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === '$id') continue;
    if (k === '$ref' && typeof v === 'string') out[k] = `#/components/schemas/${v.replace(/#$/, '')}`;
    else out[k] = toOpenApi(v);
  }
  return out;
}

function parameters(schema: Schema | undefined, where: 'path' | 'query' | 'header') {
  const properties = (schema?.properties ?? {}) as Record<string, Schema>;
  const required = (schema?.required ?? []) as string[];
  return Object.entries(properties).map(([name, s]) => {
    const { description, ...rest } = s;
    return {
      name,
      in: where,
      required: where === 'path' || required.includes(name),
      ...(description === undefined ? {} : { description }),
      schema: toOpenApi(rest),
      // `?status=a&status=b` is how arrays travel in a query.
      ...(rest.type === 'array' ? { style: 'form', explode: true } : {}),
    };
  });
}

const ROLE_TEXT: Record<string, string> = {
  public: 'No key needed.',
  viewer: 'Needs a viewer, operator or admin key.',
  operator: 'Needs an operator or admin key.',
  admin: 'Needs an admin key.',
};

/** Answers that carry no body: a description and no content. */
const BODILESS = new Set(['101', '204', '304']);

/** One documented response: a problem, a body in its declared media type (Fastify's `content`), or JSON. */
function responseOf(status: string, body: Schema): Schema {
  const problem = body.$ref === 'Problem#';
  const description =
    typeof body.description === 'string' ? body.description : problem ? 'A problem (RFC 9457)' : 'OK';
  if (BODILESS.has(status)) return { description };
  if (body.content !== undefined) {
    const content: Schema = {};
    for (const [type, media] of Object.entries(body.content as Record<string, Schema>)) {
      content[type] = { schema: toOpenApi(media.schema) };
    }
    return { description, content };
  }
  const type = problem ? 'application/problem+json' : 'application/json';
  return { description, content: { [type]: { schema: toOpenApi(body) } } };
}

/** Fastify validates a missing body as `null`: a body is optional where its schema's type takes null. */
function takesNull(body: Schema): boolean {
  return body.type === 'null' || (Array.isArray(body.type) && body.type.includes('null'));
}

const PROBLEM_RESPONSE = responseOf('4XX', { $ref: 'Problem#' });

export function buildDocument(
  routes: readonly Collected[],
  schemas: Record<string, unknown>,
  version: string,
) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const s = r.schema;
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const responses: Record<string, unknown> = {};
    for (const [status, body] of Object.entries((s.response ?? {}) as Record<string, Schema>)) {
      responses[status] = responseOf(status, body);
    }
    if (s.body !== undefined) {
      // The body parser refuses these before any route schema is looked at, on every route that reads a body.
      responses['413'] ??= PROBLEM_RESPONSE;
      responses['415'] ??= PROBLEM_RESPONSE;
    }
    if (Object.keys(responses).length === 0) responses['200'] = { description: 'OK' };
    const operation: Record<string, unknown> = {
      operationId: `${r.method.toLowerCase()}${r.url.replace(/\/:?(\w)(\w*)/g, (_m, a: string, b: string) => a.toUpperCase() + b).replace(/\W/g, '')}`,
      summary: s.summary,
      tags: s.tags,
      description: ROLE_TEXT[r.access],
      parameters: [
        ...parameters(s.params as Schema | undefined, 'path'),
        ...parameters(s.querystring as Schema | undefined, 'query'),
        ...parameters(s.headers as Schema | undefined, 'header'),
      ],
      responses,
      ...(r.access === 'public' ? { security: [] } : {}),
    };
    if (s.body !== undefined) {
      operation.requestBody = {
        required: !takesNull(s.body as Schema),
        content: { 'application/json': { schema: toOpenApi(s.body) } },
      };
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = operation;
  }
  const components: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(schemas)) components[id] = toOpenApi(schema);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Bulwark API',
      version,
      description:
        'Dependencies, workflows and runs of a Bulwark server. Errors are RFC 9457 problems with a stable `code`.',
    },
    // Relative to this document (/api/openapi.json): the root it is served under, prefix included.
    servers: [{ url: '..' }],
    security: [{ bearer: [] }, { apiKey: [] }],
    components: {
      schemas: components,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API key as a bearer token.' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    },
    paths,
  };
}

const html = (s: unknown) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A readable page with no script and no inline style, so the strict CSP holds for it too. */
export function renderReference(document: ReturnType<typeof buildDocument>): string {
  const sections: string[] = [];
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(operations) as [string, Record<string, any>][]) {
      const params = (op.parameters as Record<string, any>[])
        .map(
          (p) =>
            `<li><code>${html(p.name)}</code> <em>${html(p.in)}${p.required ? ', required' : ''}</em> ${html(p.description ?? '')}</li>`,
        )
        .join('');
      const body =
        op.requestBody === undefined
          ? ''
          : `<details><summary>Request body${op.requestBody.required ? ' (required)' : ''}</summary><pre>${html(JSON.stringify(op.requestBody.content['application/json'].schema, null, 2))}</pre></details>`;
      const statuses = Object.keys(op.responses).join(', ');
      sections.push(
        `<section id="${html(op.operationId)}"><h3><span class="m ${html(method)}">${html(method.toUpperCase())}</span> <code>${html(path)}</code></h3><p>${html(op.summary)}</p><p class="role">${html(op.description)}</p>${params ? `<ul>${params}</ul>` : ''}${body}<p class="st">Responses: ${html(statuses)}</p></section>`,
      );
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Bulwark API reference</title><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="docs.css"></head><body><h1>Bulwark API <small>${html(document.info.version)}</small></h1><p>${html(document.info.description)} The machine-readable document is <a href="openapi.json">/api/openapi.json</a>.</p><p>Send an API key as <code>Authorization: Bearer &lt;key&gt;</code> or <code>X-API-Key</code>.</p>${sections.join('')}<details><summary>Schemas</summary><pre>${html(JSON.stringify(document.components.schemas, null, 2))}</pre></details></body></html>`;
}

const CSS = `body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1 small{font-size:.5em;color:#667}section{border-top:1px solid #dde;padding:.5rem 0}
h3{margin:.3rem 0;font-size:1rem}.m{display:inline-block;min-width:4.5rem;font:600 .8rem monospace;padding:.1rem .4rem;border-radius:3px;background:#e8eefc;color:#1b4bb8}
.m.post{background:#e6f5ea;color:#17702f}.m.delete{background:#fbe9e9;color:#a12020}.role{color:#556;font-size:.9em}.st{color:#667;font-size:.85em}
pre{background:#f6f7f9;padding:.6rem;overflow:auto;font-size:.8rem}code{font-size:.9em}`;

export const openApiPlugin: FastifyPluginAsync<{ version: string }> = async (app, { version }) => {
  const routes: Collected[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const schema = route.schema as Schema | undefined;
    if (schema === undefined || schema.hide === true) return;
    for (const method of methods) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: route.url, schema, access: route.config?.access ?? 'admin' });
    }
  });
  let document: ReturnType<typeof buildDocument> | undefined;
  let page: string | undefined;
  const build = () => {
    document ??= buildDocument(routes, app.getSchemas(), version);
    return document;
  };
  const hidden = { config: { access: 'public' as const }, schema: { hide: true } };
  app.get('/api/openapi.json', hidden, async () => build());
  app.get('/api/docs', hidden, async (_request, reply) => {
    page ??= renderReference(build());
    return reply.type('text/html; charset=utf-8').send(page);
  });
  app.get('/api/docs.css', hidden, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(CSS),
  );
};

// Not encapsulated (what fastify-plugin does): its onRoute hook must see the routes of every other plugin.
(openApiPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
