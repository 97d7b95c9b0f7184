// /api/workflows: the registered workflows with their declared steps, and starting a run of one
// (idempotent with an `Idempotency-Key` header, with a priority and runs it depends on).
import { PRIORITIES, type Priority, type RunHandle, UnknownRunError } from '@bulwark/workflow';
import type { FastifyPluginAsync } from 'fastify';
import { auditEntry } from '../audit.ts';
import type { ServerContext } from '../context.ts';
import { ApiError, invalidField } from '../errors.ts';
import { nameParam, problemResponses } from '../schemas.ts';
import { runView } from './views.ts';

export const workflowSchema = {
  $id: 'Workflow',
  type: 'object',
  required: ['name', 'version', 'versions'],
  properties: {
    name: { type: 'string' },
    version: { type: 'string', description: 'The latest registered version: new runs start on it.' },
    versions: { type: 'array', items: { type: 'string' } },
    description: { type: ['string', 'null'] },
    steps: {
      type: ['array', 'null'],
      items: { type: 'string' },
      description: 'The steps it declares, in order.',
    },
    example: {
      description:
        'An input a run can start with (any JSON value), as the workflow declares it; absent when it declares none.',
    },
  },
} as const;

/**
 * `target`, a path from the server's root, as a reference relative to the request's own path
 * (`../../../api/runs/<id>`): resolved against the URL the client used, it stays under the path
 * prefix a reverse proxy stripped, where an absolute `/api/...` would leave it.
 */
function fromRequest(requestUrl: string, target: string): string {
  const depth = (requestUrl.split('?')[0] ?? '').split('/').length - 2;
  return `${'../'.repeat(Math.max(depth, 0))}${target.slice(1)}`;
}

interface StartBody {
  input?: unknown;
  priority?: Priority;
  dependsOn?: string[];
  concurrencyKey?: string;
  timeoutMs?: number;
  correlationId?: string;
}

const startBody = {
  type: 'object',
  properties: {
    input: { description: 'The run input: any JSON value. @default null' },
    priority: { type: 'string', enum: Object.keys(PRIORITIES), default: 'normal' },
    dependsOn: {
      type: 'array',
      maxItems: 100,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 100 },
      description: 'Runs that must complete first; if one fails or is cancelled, this run is cancelled.',
    },
    concurrencyKey: { type: 'string', minLength: 1, maxLength: 200 },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 31_536_000_000 },
    correlationId: { type: 'string', minLength: 1, maxLength: 200 },
  },
  additionalProperties: false,
} as const;

const startHeaders = {
  type: 'object',
  properties: {
    'idempotency-key': {
      type: 'string',
      minLength: 1,
      maxLength: 200,
      description: 'Starting twice with the same key returns the first run (200) instead of a new one (201).',
    },
  },
} as const;

function workflowView(info: ReturnType<ServerContext['engine']['definitions']>[number]) {
  return {
    name: info.name,
    version: info.version,
    versions: info.versions,
    description: info.description ?? null,
    steps: info.steps === undefined ? null : [...info.steps],
    ...(info.example === undefined ? {} : { example: info.example }),
  };
}

export const workflowsApi: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const { engine, store } = context;

  const find = (name: string) => {
    const info = engine.definitions().find((d) => d.name === name);
    if (info === undefined) throw new ApiError('NOT_FOUND', `No workflow named ${JSON.stringify(name)}`);
    return info;
  };

  app.get(
    '/workflows',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['workflows'],
        summary: 'The workflows this server runs, with their declared steps',
        response: {
          200: {
            type: 'object',
            required: ['items'],
            properties: { items: { type: 'array', items: { $ref: 'Workflow#' } } },
          },
          ...problemResponses,
        },
      },
    },
    async () => ({ items: engine.definitions().map(workflowView) }),
  );

  app.get(
    '/schedules',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['workflows'],
        summary:
          'The cron schedules this server runs (`schedules:` of its file), with their next and last ticks',
        response: {
          200: {
            type: 'object',
            required: ['items'],
            properties: {
              items: {
                type: 'array',
                items: {
                  type: 'object',
                  required: [
                    'name',
                    'cron',
                    'timezone',
                    'workflow',
                    'priority',
                    'catchUp',
                    'next',
                    'lastTick',
                  ],
                  properties: {
                    name: { type: 'string' },
                    cron: { type: 'string' },
                    timezone: { type: 'string' },
                    workflow: { type: 'string' },
                    priority: { type: 'string', enum: Object.keys(PRIORITIES) },
                    catchUp: {
                      description: "`'none'`, `'latest'` or `{ maxTicks }`.",
                      anyOf: [
                        { type: 'string', enum: ['none', 'latest'] },
                        {
                          type: 'object',
                          required: ['maxTicks'],
                          properties: { maxTicks: { type: 'integer' } },
                        },
                      ],
                    },
                    next: {
                      type: ['integer', 'null'],
                      description: 'Epoch ms of the next tick this server starts.',
                    },
                    lastTick: {
                      type: ['integer', 'null'],
                      description:
                        'Epoch ms of the latest tick that had a run, on any server; null if none has.',
                    },
                  },
                },
              },
            },
          },
          ...problemResponses,
        },
      },
    },
    async () => ({ items: (await context.schedules?.()) ?? [] }),
  );

  app.get<{ Params: { name: string } }>(
    '/workflows/:name',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['workflows'],
        summary: 'One workflow',
        params: nameParam,
        response: { 200: { $ref: 'Workflow#' }, ...problemResponses },
      },
    },
    async (request) => workflowView(find(request.params.name)),
  );

  app.post<{
    Params: { name: string };
    Body: StartBody | undefined;
    Headers: { 'idempotency-key'?: string };
  }>(
    '/workflows/:name/runs',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['runs'],
        summary: 'Start a run; durable when this answers',
        params: nameParam,
        headers: startHeaders,
        body: startBody,
        response: {
          200: { $ref: 'Run#' },
          201: { $ref: 'Run#' },
          409: { $ref: 'Problem#' },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      find(name);
      const body = request.body ?? {};
      const idempotencyKey = request.headers['idempotency-key'];
      let handle: RunHandle;
      try {
        handle = await engine.start(name, body.input ?? null, {
          priority: body.priority ?? 'normal',
          ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
          ...(body.dependsOn === undefined ? {} : { dependsOn: body.dependsOn }),
          ...(body.concurrencyKey === undefined ? {} : { concurrencyKey: body.concurrencyKey }),
          ...(body.timeoutMs === undefined ? {} : { timeoutMs: body.timeoutMs }),
          // The request's trace context (see plugins/tracing.ts): the run's steps continue it.
          traceparent: request.traceparent,
          correlationId: body.correlationId ?? request.id,
          // Written in the run's own transaction, so the 201 waits for one commit, not two.
          audit: auditEntry(context, request, { action: 'run.start', data: { workflow: name } }),
        });
      } catch (error) {
        if (error instanceof UnknownRunError) {
          const index = body.dependsOn?.indexOf(error.runId) ?? -1;
          throw invalidField(
            `#/body/dependsOn/${Math.max(index, 0)}`,
            `no run with id ${JSON.stringify(error.runId)}`,
          );
        }
        throw error;
      }
      // As created when the store gives it back: no second read, and the 201 shows it queued.
      const run = handle.run ?? (await store.getRun(handle.id));
      if (run === undefined) throw new ApiError('NOT_FOUND', `Run ${handle.id} was pruned already`);
      if (!handle.created && (run.workflow !== name || !sameJson(run.input, body.input ?? null))) {
        // Same key, different request: answering with the first run would hide the caller's mistake.
        throw new ApiError(
          'CONFLICT',
          `Idempotency-Key ${JSON.stringify(idempotencyKey)} was used for run ${run.id} of ${run.workflow} with a different input`,
          { runId: run.id },
        );
      }
      reply.header('location', fromRequest(request.url, `/api/runs/${run.id}`));
      return reply.code(handle.created ? 201 : 200).send(runView(run));
    },
  );
};

/**
 * Whether two JSON values are equal, whatever the order of their objects' keys: PostgreSQL's
 * jsonb gives an input back with its keys reordered, and a client may send them in any order.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((value, i) => sameJson(value, other[i]));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  return keys.every((key) => Object.hasOwn(right, key) && sameJson(left[key], right[key]));
}
