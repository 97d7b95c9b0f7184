// /api/dependencies: each dependency with its live statistics, its breaker's recent transitions
// and the runs parked behind it, the sparkline history, and the operator's two levers on its
// circuit breaker: isolate (hold it open, for a while or until reset: bound steps park) and reset
// (close it: the runs parked behind it are woken, as they are when an isolation expires).
import type { DependencyStats } from '@bulwark/core';
import type { FastifyPluginAsync } from 'fastify';
import { durationMessage, parseDuration } from '../../config/duration.ts';
import { audit } from '../audit.ts';
import type { ServerContext } from '../context.ts';
import { ApiError, invalidField } from '../errors.ts';
import { HISTORY_POINTS, HISTORY_WINDOWS, type HistoryWindow } from '../monitor/history.ts';
import { spoken } from '../monitor/monitor.ts';
import { dependencyView } from '../monitor/view.ts';
import { looseObject, nameParam, nullableLooseObject, problemResponses } from '../schemas.ts';

/** The longest isolation with an expiry; longer ones are isolations until reset. */
const MAX_ISOLATION_MS = 24 * 60 * 60 * 1000;

export const dependencySchema = {
  $id: 'Dependency',
  type: 'object',
  required: ['name', 'kind', 'critical', 'state', 'calls', 'parkedRuns'],
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
    breaker: {
      ...nullableLooseObject,
      description:
        'The breaker statistics, with `transitions` (`{ from, to, at, reason, code }`, newest last, at most 20), `since`, `halfOpenAt` and `isolatedUntil` (epoch ms or null).',
    },
    bulkhead: nullableLooseObject,
    rateLimit: nullableLooseObject,
    retry: nullableLooseObject,
    parkedRuns: {
      type: 'integer',
      description: 'Runs waiting now because a step found this breaker open (`/parked` lists them).',
    },
  },
} as const;

const seriesSchema = {
  type: 'object',
  required: ['calls', 'failures', 'slow', 'rejected', 'p50Ms', 'p99Ms'],
  properties: {
    calls: { type: 'array', items: { type: 'integer' } },
    failures: { type: 'array', items: { type: 'integer' } },
    slow: { type: 'array', items: { type: 'integer' } },
    rejected: { type: 'array', items: { type: 'integer' } },
    p50Ms: { type: 'array', items: { type: ['number', 'null'] } },
    p99Ms: { type: 'array', items: { type: ['number', 'null'] } },
  },
} as const;

const parkedItemSchema = {
  type: 'object',
  required: ['runId', 'workflow', 'step', 'policy', 'reason', 'since', 'resumeAt'],
  properties: {
    runId: { type: 'string' },
    workflow: { type: 'string' },
    step: { type: ['string', 'null'] },
    policy: { type: 'string', description: 'The policy that stopped the step: `circuit-breaker`.' },
    isolated: {
      type: 'boolean',
      description: 'Whether an operator isolated the circuit (else it opened on failures).',
    },
    breaker: { type: ['string', 'null'], description: 'The breaker policy’s name.' },
    reason: { type: 'string' },
    since: { type: 'integer', description: 'When the step parked (epoch ms).' },
    resumeAt: { type: 'integer', description: 'When the run tries the dependency again (epoch ms).' },
  },
} as const;

export const dependenciesApi: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const { registry, monitor, store, engine } = context;

  /** The circuit may let calls through again: the parked runs try now, not at their resume time. */
  const wake = (name: string, log: { warn(data: object, message: string): void }) =>
    engine.wakeParked(name).catch((error: unknown) => {
      // The reset itself happened; the runs still resume at their own time.
      log.warn({ err: error, dependency: name }, 'waking the runs parked behind the dependency failed');
    });
  const stopWaking = monitor.onIsolationExpired((name) => void wake(name, app.log));
  app.addHook('onClose', async () => stopWaking());

  const known = (name: string): void => {
    if (!registry.names.includes(name))
      throw new ApiError('NOT_FOUND', `No dependency named ${JSON.stringify(name)}`);
  };

  const view = (stats: DependencyStats, parked: Record<string, number>) =>
    dependencyView(monitor, stats, parked);

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
    async () => {
      const parked = await store.parkedCounts();
      return { items: Object.values(registry.allStats()).map((stats) => view(stats, parked)) };
    },
  );

  // A static segment: the router matches it before `/dependencies/:name` (so a dependency
  // named `history` is reached through the list, not here).
  app.get<{ Querystring: { window?: HistoryWindow } }>(
    '/dependencies/history',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['dependencies'],
        summary: `Sparklines: ${HISTORY_POINTS} points per series over the last 5, 15 or 60 minutes, oldest first`,
        querystring: {
          type: 'object',
          properties: {
            window: { type: 'string', enum: Object.keys(HISTORY_WINDOWS), default: '15m' },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            required: ['window', 'bucketMs', 'end', 'dependencies'],
            properties: {
              window: { type: 'string' },
              bucketMs: { type: 'integer' },
              end: { type: 'integer', description: 'Epoch ms at the end of the last bucket.' },
              dependencies: { type: 'object', additionalProperties: seriesSchema },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const window = request.query.window ?? '15m';
      return { window, ...monitor.history(window) };
    },
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
      const parked = await store.parkedCounts();
      return {
        ...view(registry.stats(name), parked),
        pipelines: registry.describe()[name]?.pipelines ?? {},
      };
    },
  );

  app.get<{ Params: { name: string }; Querystring: { limit?: number } }>(
    '/dependencies/:name/parked',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['dependencies'],
        summary: 'The runs parked behind this dependency’s open circuit, the soonest to resume first',
        params: nameParam,
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'total'],
            properties: {
              items: { type: 'array', items: parkedItemSchema },
              total: { type: 'integer', description: 'All of them, beyond `limit` too.' },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { name } = request.params;
      known(name);
      const { runs, total } = await store.parkedRuns(name, request.query.limit ?? 100);
      return {
        items: runs.map((run) => {
          const data = (run.data ?? {}) as {
            breaker?: unknown;
            message?: unknown;
            retryAfterMs?: unknown;
            isolated?: unknown;
          };
          return {
            runId: run.runId,
            workflow: run.workflow,
            step: run.step ?? null,
            policy: 'circuit-breaker',
            breaker: typeof data.breaker === 'string' ? data.breaker : null,
            isolated: data.isolated === true,
            reason:
              typeof data.message === 'string'
                ? data.message
                : typeof data.retryAfterMs === 'number'
                  ? `the circuit was open; retry after ${spoken(data.retryAfterMs)}`
                  : 'the circuit was open',
            since: run.since,
            resumeAt: run.resumeAt,
          };
        }),
        total,
      };
    },
  );

  const breakerOf = (name: string, action: string) => {
    known(name);
    if (registry.breaker(name) === undefined) {
      throw new ApiError('CONFLICT', `Dependency ${name} has no circuit breaker to ${action}`);
    }
  };
  const actor = (request: { principal?: { name: string } | undefined }) =>
    request.principal?.name ?? 'an operator';

  app.post<{ Params: { name: string }; Body: { for?: unknown; forMs?: number } | null | undefined }>(
    '/dependencies/:name/isolate',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['dependencies'],
        summary:
          'Hold the circuit open, until reset or for a while (`{ "for": "10m" }`): calls fail fast without reaching the dependency',
        params: nameParam,
        body: {
          type: ['object', 'null'],
          properties: {
            // Checked by the handler, which names the field and shows the value it got.
            for: { description: 'How long, as in the config file (`90s`, `10m`, `2h`); at most 24h.' },
            forMs: { type: 'number', description: 'How long in ms (instead of `for`).' },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            allOf: [
              { $ref: 'Dependency#' },
              {
                type: 'object',
                required: ['isolatedUntil'],
                properties: {
                  isolatedUntil: {
                    type: ['integer', 'null'],
                    description: 'When it closes by itself (epoch ms); null: until reset.',
                  },
                },
              },
            ],
          },
          409: { $ref: 'Problem#' },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { name } = request.params;
      breakerOf(name, 'isolate');
      const forMs = isolationMs(request.body ?? undefined);
      const isolatedUntil = monitor.isolate(name, forMs, actor(request));
      // Steps bound to it park until the isolation's end (until reset: re-checking every 30 s).
      engine.isolated(name, isolatedUntil);
      await audit(context, request, {
        action: 'dependency.isolate',
        target: name,
        ...(isolatedUntil === null ? {} : { data: { forMs: forMs!, until: isolatedUntil } }),
      });
      return { ...view(registry.stats(name), await store.parkedCounts()), isolatedUntil };
    },
  );

  app.post<{ Params: { name: string } }>(
    '/dependencies/:name/reset',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['dependencies'],
        summary: 'Close the circuit and clear its window (ends an isolation)',
        params: nameParam,
        response: { 200: { $ref: 'Dependency#' }, 409: { $ref: 'Problem#' }, ...problemResponses },
      },
    },
    async (request) => {
      const { name } = request.params;
      breakerOf(name, 'reset');
      monitor.reset(name, actor(request));
      await wake(name, request.log);
      await audit(context, request, { action: 'dependency.reset', target: name });
      return view(registry.stats(name), await store.parkedCounts());
    },
  );
};

/** The isolation's length from the body, checked: a 400 names the field; undefined is until reset. */
function isolationMs(body: { for?: unknown; forMs?: number } | undefined): number | undefined {
  if (body === undefined) return undefined;
  if (body.for !== undefined && body.forMs !== undefined) {
    throw invalidField('#/body/forMs', 'give either for or forMs, not both');
  }
  let ms: number | undefined;
  let pointer: string;
  if (body.for !== undefined) {
    pointer = '#/body/for';
    ms = parseDuration(body.for);
    if (ms === undefined) throw invalidField(pointer, durationMessage(body.for));
  } else if (body.forMs !== undefined) {
    pointer = '#/body/forMs';
    ms = body.forMs;
    if (!Number.isFinite(ms)) throw invalidField(pointer, `expected a number of ms, got ${String(ms)}`);
  } else {
    return undefined;
  }
  if (ms <= 0) throw invalidField(pointer, 'must be longer than 0 (leave it out to isolate until reset)');
  if (ms > MAX_ISOLATION_MS) {
    throw invalidField(
      pointer,
      `must be at most 24h (got ${spoken(ms)}); leave it out to isolate until reset`,
    );
  }
  return Math.round(ms);
}
