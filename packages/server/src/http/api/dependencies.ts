// /api/dependencies: each dependency with its live statistics, and the operator's two levers on
// its circuit breaker: isolate (hold it open) and reset (close it).
import type { DependencyStats } from '@bulwark/core';
import type { FastifyPluginAsync } from 'fastify';
import { audit } from '../audit.ts';
import type { ServerContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { looseObject, nameParam, nullableLooseObject, problemResponses } from '../schemas.ts';

export const dependencySchema = {
  $id: 'Dependency',
  type: 'object',
  required: ['name', 'kind', 'critical', 'state', 'calls'],
  properties: {
    name: { type: 'string' },
    kind: { type: 'string' },
    critical: { type: 'boolean' },
    state: { type: ['string', 'null'], description: 'The breaker state, or null without a breaker.' },
    calls: {
      ...looseObject,
      description: 'Totals by outcome and the last minute (calls, failures, latency quantiles).',
    },
    operations: looseObject,
    breaker: nullableLooseObject,
    bulkhead: nullableLooseObject,
    rateLimit: nullableLooseObject,
    retry: nullableLooseObject,
  },
} as const;

function view(stats: DependencyStats) {
  return {
    name: stats.name,
    kind: stats.kind,
    critical: stats.critical,
    state: stats.state ?? null,
    calls: stats.calls,
    operations: stats.operations,
    breaker: stats.breaker ?? null,
    bulkhead: stats.bulkhead ?? null,
    rateLimit: stats.rateLimit ?? null,
    retry: stats.retry ?? null,
  };
}

export const dependenciesApi: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const { registry } = context;

  const known = (name: string): void => {
    if (!registry.names.includes(name))
      throw new ApiError('NOT_FOUND', `No dependency named ${JSON.stringify(name)}`);
  };

  app.get(
    '/dependencies',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['dependencies'],
        summary: 'Every dependency with its live statistics',
        response: {
          200: {
            type: 'object',
            required: ['items'],
            properties: { items: { type: 'array', items: { $ref: 'Dependency#' } } },
          },
          ...problemResponses,
        },
      },
    },
    async () => ({ items: Object.values(registry.allStats()).map(view) }),
  );

  app.get<{ Params: { name: string } }>(
    '/dependencies/:name',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['dependencies'],
        summary: 'One dependency: its statistics and how its pipelines are built',
        params: nameParam,
        response: {
          200: {
            allOf: [{ $ref: 'Dependency#' }, { type: 'object', properties: { pipelines: looseObject } }],
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { name } = request.params;
      known(name);
      return { ...view(registry.stats(name)), pipelines: registry.describe()[name]?.pipelines ?? {} };
    },
  );

  for (const action of ['isolate', 'reset'] as const) {
    app.post<{ Params: { name: string } }>(
      `/dependencies/:name/${action}`,
      {
        config: { access: 'operator' },
        schema: {
          tags: ['dependencies'],
          summary:
            action === 'isolate'
              ? 'Hold the circuit open until reset: calls fail fast without reaching the dependency'
              : 'Close the circuit and clear its window',
          params: nameParam,
          response: { 200: { $ref: 'Dependency#' }, 409: { $ref: 'Problem#' }, ...problemResponses },
        },
      },
      async (request) => {
        const { name } = request.params;
        known(name);
        const breaker = registry.breaker(name);
        if (breaker === undefined) {
          throw new ApiError('CONFLICT', `Dependency ${name} has no circuit breaker to ${action}`);
        }
        if (action === 'isolate') breaker.isolate();
        else breaker.reset();
        await audit(context, request, { action: `dependency.${action}`, target: name });
        return view(registry.stats(name));
      },
    );
  }
};
