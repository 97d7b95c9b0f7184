// GET /metrics: Prometheus text from this server's own prom-client registry, plus the hook that
// times every request by its route template.
import type { FastifyPluginAsync } from 'fastify';
import type { ServerContext } from '../context.ts';
import { routeOf } from '../route.ts';
import { mediaResponse, problemResponses } from '../schemas.ts';
import { ServerMetrics } from './metrics-registry.ts';
import { rootPlugin } from './security.ts';

const plugin: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const metrics = new ServerMetrics({
    registry: context.registry,
    engine: context.engine,
    store: context.store,
    clock: context.clock,
    onError: (error) => app.log.warn({ err: error }, 'metrics: the store did not answer countRuns'),
  });
  app.addHook('onClose', async () => metrics.close());

  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request.method, routeOf(request).url, reply.statusCode, reply.elapsedTime / 1_000);
    done();
  });

  app.get(
    '/metrics',
    {
      config: { access: context.settings.metricsPublic ? 'public' : 'viewer' },
      schema: {
        tags: ['observability'],
        summary: 'Prometheus metrics: HTTP, dependencies, policies, workflows and the process',
        response: {
          200: mediaResponse(metrics.contentType, 'Prometheus text exposition format 0.0.4'),
          ...problemResponses,
        },
      },
    },
    async (_request, reply) => {
      const body = await metrics.render();
      return reply.header('cache-control', 'no-store').type(metrics.contentType).send(body);
    },
  );
};

/** Registered at the root (not encapsulated), so its response hook times every route. */
export const metricsPlugin = rootPlugin(plugin, 'bulwark-metrics');
