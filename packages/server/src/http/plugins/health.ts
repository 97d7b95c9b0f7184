// The probes: liveness (the process only), readiness (the store and the critical dependencies;
// fails while draining) and the full report, all as application/health+json.
import type { HealthReport } from '@bulwark/core';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ServerContext } from '../context.ts';

const HEALTH_TYPE = 'application/health+json';

/**
 * The liveness body is rebuilt at most this often, so its uptime and `time` lag by up to 100 ms:
 * far below what a balancer polling every few seconds can see, and the probe then sends a constant.
 */
const LIVE_REFRESH_MS = 100;

/** A made-up id: reading it costs one indexed lookup and proves the store answers. */
const PROBE_RUN_ID = '00000000-0000-0000-0000-000000000000';

const report = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['pass', 'warn', 'fail'] },
    output: { type: 'string' },
    checks: { type: 'object', additionalProperties: true },
  },
  additionalProperties: true,
} as const;

function send(reply: FastifyReply, body: HealthReport): FastifyReply {
  // pass and warn both take traffic: a degraded dependency is the pipelines' job, not the balancer's.
  return reply
    .code(body.status === 'fail' ? 503 : 200)
    .header('cache-control', 'no-store')
    .type(HEALTH_TYPE)
    .send(body);
}

export const healthPlugin: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const { registry, store, clock } = context;
  const unregister = registry.health.register({
    name: 'store',
    componentType: 'datastore',
    critical: true,
    // Fresh on every readiness probe that finds it stale: a store that went away shows within seconds.
    intervalMs: 5_000,
    timeoutMs: 2_000,
    run: async () => {
      await store.getRun(PROBE_RUN_ID);
      return { observedValue: store.dialect, observedUnit: 'dialect' };
    },
  });
  app.addHook('onClose', async () => unregister());

  let liveBody = '';
  let liveAt = Number.NEGATIVE_INFINITY;

  const common = {
    config: { access: 'public' as const },
    schema: {
      tags: ['health'],
      // Per media type, so the document names application/health+json; Fastify serializes by it.
      response: {
        200: { description: 'pass or warn', content: { [HEALTH_TYPE]: { schema: report } } },
        503: { description: 'fail', content: { [HEALTH_TYPE]: { schema: report } } },
      },
    },
  };
  app.get(
    '/health/live',
    {
      ...common,
      schema: { ...common.schema, summary: 'Liveness: the process is up (never checks a dependency)' },
    },
    // Synchronous and sent as text: the probe every balancer polls should cost next to nothing.
    (_request, reply) => {
      const now = clock.now();
      // Also rebuilt when the clock went back (a test's clock, or a stepped wall clock).
      if (now - liveAt >= LIVE_REFRESH_MS || now < liveAt) {
        liveBody = JSON.stringify(registry.health.liveness());
        liveAt = now;
      }
      reply.code(200).header('cache-control', 'no-store').type(HEALTH_TYPE).send(liveBody);
    },
  );
  app.get(
    '/health/ready',
    {
      ...common,
      schema: {
        ...common.schema,
        summary: 'Readiness: the store and critical dependencies answer; fails while draining',
      },
    },
    async (_request, reply) => send(reply, await registry.health.readiness()),
  );
  app.get(
    '/health',
    { ...common, schema: { ...common.schema, summary: 'The full health report of every check' } },
    async (_request, reply) => send(reply, await registry.health.report()),
  );
};
