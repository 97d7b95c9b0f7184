// /api/runs: list (filtered, searched, paged by cursor or by position) and its count, one run with its steps, its
// timeline, and the operator's actions on it: cancel, retry a failed run, send an event to a waiting run.
import {
  FINAL_STATUSES,
  type ListRunsFilter,
  MAX_RUN_OFFSET,
  RUN_STATUSES,
  type RunStatus,
  UnknownRunError,
  WorkflowError,
  WorkflowErrorCodes,
} from '@bulwark/workflow';
import type { FastifyPluginAsync } from 'fastify';
import { audit } from '../audit.ts';
import type { ServerContext } from '../context.ts';
import { ApiError, invalidField } from '../errors.ts';
import { idParam, problemResponses } from '../schemas.ts';
import { eventView, runView, stepView } from './views.ts';

interface FilterQuery {
  status?: string[];
  workflow?: string;
  q?: string;
}

interface ListQuery extends FilterQuery {
  limit?: number;
  cursor?: string;
  offset?: number;
}

const filterProperties = {
  status: {
    type: 'array',
    items: { type: 'string', pattern: `^(${RUN_STATUSES.join('|')})(,(${RUN_STATUSES.join('|')}))*$` },
    description:
      'Only runs in these statuses: `?status=failed&status=cancelled` or `?status=failed,cancelled`.',
  },
  workflow: { type: 'string', minLength: 1, maxLength: 200 },
  q: {
    type: 'string',
    minLength: 1,
    maxLength: 500,
    description:
      'A run id (whole or its beginning), a correlation id or an idempotency key; or `input.<path>=<value>` for a value of the input (`input.url=https://example.com`, `input.order.id=42`).',
  },
} as const;

/** `input.a.b=value`: a path of object keys, then the value compared as text. */
const INPUT_SEARCH = /^input\.([\w-]{1,100}(?:\.[\w-]{1,100}){0,9})=([\s\S]*)$/;

/** The filters of a list or a count, checked. */
function runFilter(query: FilterQuery): ListRunsFilter {
  // `status=a,b` and `status=a&status=b` both work; the schema's pattern has checked each name.
  const status = query.status?.flatMap((s) => s.split(',')) as RunStatus[] | undefined;
  const filter: ListRunsFilter = {
    ...(status === undefined ? {} : { status }),
    ...(query.workflow === undefined ? {} : { workflow: query.workflow }),
  };
  if (query.q === undefined) return filter;
  const q = query.q.trim();
  if (q.startsWith('input.')) {
    const match = INPUT_SEARCH.exec(q);
    if (match === null) {
      throw invalidField(
        '#/query/q',
        'expected input.<path>=<value>, the path made of keys (letters, digits, _ and -) joined by dots',
      );
    }
    return { ...filter, search: { path: match[1]!.split('.'), equals: match[2]! } };
  }
  if (q === '') throw invalidField('#/query/q', 'must not be blank');
  return { ...filter, search: { text: q } };
}

const listQuery = {
  type: 'object',
  properties: {
    ...filterProperties,
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
    cursor: {
      type: 'string',
      minLength: 1,
      maxLength: 100,
      description: 'The `nextCursor` of the previous page.',
    },
    offset: {
      type: 'integer',
      minimum: 0,
      maximum: MAX_RUN_OFFSET,
      description:
        'Skip this many runs of the list: a page at a position (a scrollbar dragged there). Not with `cursor`; each skipped run costs a step of the database.',
    },
  },
  additionalProperties: false,
} as const;

const timelineQuery = {
  type: 'object',
  properties: {
    after: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description: 'Events after this seq (the `next` of the previous page).',
    },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 500 },
  },
  additionalProperties: false,
} as const;

const accepted = {
  type: 'object',
  required: ['id', 'status'],
  properties: { id: { type: 'string' }, status: { type: 'string' } },
} as const;

export const runsApi: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const { engine, store } = context;

  const runOr404 = async (id: string) => {
    const run = await store.getRun(id);
    if (run === undefined) throw new ApiError('NOT_FOUND', `No run with id ${JSON.stringify(id)}`);
    return run;
  };

  app.get<{ Querystring: ListQuery }>(
    '/runs',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['runs'],
        summary:
          'Runs, newest first, filtered by status, workflow and a search, a page at a time (by cursor or offset)',
        querystring: listQuery,
        response: {
          200: {
            type: 'object',
            required: ['items', 'nextCursor'],
            properties: {
              items: { type: 'array', items: { $ref: 'Run#' } },
              nextCursor: {
                type: ['string', 'null'],
                description: 'Pass as `cursor` for the next page; null on the last.',
              },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { limit = 50, cursor, offset } = request.query;
      const filter = runFilter(request.query);
      // Either is a position in the list; both at once would be two answers to one question.
      if (cursor !== undefined && offset !== undefined)
        throw invalidField('#/query/offset', 'cannot be combined with cursor: page by one or the other');
      if (cursor !== undefined && (await store.getRun(cursor)) === undefined) {
        throw invalidField('#/query/cursor', 'is not a cursor this server gave out (or its run was pruned)');
      }
      // One more than asked tells whether there is a next page without a second query.
      const runs = await store.listRuns({
        ...filter,
        limit: limit + 1,
        ...(cursor === undefined ? {} : { before: cursor }),
        ...(offset === undefined ? {} : { offset }),
      });
      const page = runs.slice(0, limit);
      return { items: page.map(runView), nextCursor: runs.length > limit ? (page.at(-1)?.id ?? null) : null };
    },
  );

  // A static segment: matched before `/runs/:id`.
  app.get<{ Querystring: FilterQuery }>(
    '/runs/count',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['runs'],
        summary: 'How many runs the list has with these filters (a scrollbar’s length)',
        querystring: { type: 'object', properties: filterProperties, additionalProperties: false },
        response: {
          200: { type: 'object', required: ['total'], properties: { total: { type: 'integer' } } },
          ...problemResponses,
        },
      },
    },
    async (request) => ({ total: await store.totalRuns(runFilter(request.query)) }),
  );

  app.get<{ Params: { id: string } }>(
    '/runs/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['runs'],
        summary: 'One run with its recorded steps',
        params: idParam,
        response: {
          200: {
            allOf: [
              { $ref: 'Run#' },
              { type: 'object', properties: { steps: { type: 'array', items: { $ref: 'Step#' } } } },
            ],
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const run = await runOr404(request.params.id);
      const steps = await store.steps(run.id);
      return { ...runView(run), steps: steps.map(stepView) };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { after?: number; limit?: number } }>(
    '/runs/:id/timeline',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['runs'],
        summary: 'A page of the run’s timeline, oldest first (the live version is /stream)',
        params: idParam,
        querystring: timelineQuery,
        response: {
          200: {
            type: 'object',
            required: ['items', 'next'],
            properties: {
              items: { type: 'array', items: { $ref: 'TimelineEvent#' } },
              next: {
                type: ['integer', 'null'],
                description: 'Pass as `after` for more; null when this is all there is now.',
              },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const run = await runOr404(request.params.id);
      const { after = 0, limit = 500 } = request.query;
      const events = await store.events(run.id, after, limit);
      return {
        items: events.map(eventView),
        next: events.length === limit ? (events.at(-1)?.seq ?? null) : null,
      };
    },
  );

  app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>(
    '/runs/:id/cancel',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['runs'],
        summary: 'Cancel a run: at once if it has not run yet, else by a worker (which compensates)',
        params: idParam,
        body: {
          type: ['object', 'null'],
          properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } },
          additionalProperties: false,
        },
        response: { 202: accepted, 409: { $ref: 'Problem#' }, ...problemResponses },
      },
    },
    async (request, reply) => {
      const run = await runOr404(request.params.id);
      const reason = request.body?.reason ?? `cancelled by ${request.principal?.name ?? 'an operator'}`;
      const ok = await engine.cancel(run.id, reason);
      if (!ok)
        throw new ApiError('CONFLICT', `Run ${run.id} is ${run.status}: it is over and cannot be cancelled`);
      await audit(context, request, { action: 'run.cancel', target: run.id, data: { reason } });
      const now = await store.getRun(run.id);
      return reply.code(202).send({ id: run.id, status: now?.status ?? run.status });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/runs/:id/retry',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['runs'],
        summary:
          'Run a failed, compensated or cancelled run again: completed steps that were not undone are kept',
        params: idParam,
        response: { 202: accepted, 409: { $ref: 'Problem#' }, ...problemResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      try {
        await engine.retry(id, `retried by ${request.principal?.name ?? 'an operator'}`);
      } catch (error) {
        if (error instanceof UnknownRunError)
          throw new ApiError('NOT_FOUND', `No run with id ${JSON.stringify(id)}`);
        if (error instanceof WorkflowError && error.code === WorkflowErrorCodes.RUN_NOT_RETRYABLE) {
          throw new ApiError('CONFLICT', error.message);
        }
        throw error;
      }
      await audit(context, request, { action: 'run.retry', target: id });
      return reply.code(202).send({ id, status: (await store.getRun(id))?.status ?? 'queued' });
    },
  );

  app.post<{ Params: { id: string }; Body: { name: string; payload?: unknown } }>(
    '/runs/:id/events',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['runs'],
        summary:
          'Send an event to a run (what `ctx.waitForEvent(name)` waits for); kept until the run consumes it',
        params: idParam,
        body: {
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 200 },
            payload: { description: 'Any JSON value. @default null' },
          },
          additionalProperties: false,
        },
        response: { 202: accepted, 409: { $ref: 'Problem#' }, ...problemResponses },
      },
    },
    async (request, reply) => {
      const run = await runOr404(request.params.id);
      const { name, payload = null } = request.body;
      if (FINAL_STATUSES.includes(run.status)) {
        throw new ApiError('CONFLICT', `Run ${run.id} is ${run.status}: it takes no more events`);
      }
      const delivered = await engine.sendEvent(run.id, name, payload);
      if (!delivered) throw new ApiError('CONFLICT', `Run ${run.id} ended before the event arrived`);
      await audit(context, request, { action: 'run.event', target: run.id, data: { event: name } });
      return reply.code(202).send({ id: run.id, status: (await store.getRun(run.id))?.status ?? run.status });
    },
  );
};
