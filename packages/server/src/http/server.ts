// Builds the Bulwark HTTP server: a Fastify instance with one plugin per concern (security,
// auth, health, metrics, the REST API, live streams, OpenAPI), all given the same ServerContext.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Clock, DependencyRegistry } from '@bulwark/core';
import { systemClock } from '@bulwark/core';
import type { WorkflowEngine, WorkflowStore } from '@bulwark/workflow';
import Fastify, { type FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { adminApi, auditEntrySchema } from './api/admin.ts';
import { dependenciesApi, dependencySchema } from './api/dependencies.ts';
import { runsApi } from './api/runs.ts';
import { eventSchema, runSchema, stepSchema } from './api/views.ts';
import { workflowSchema, workflowsApi } from './api/workflows.ts';
import type { ReloadSummary, ScheduleView, ServerContext } from './context.ts';
import { answerClientError, installProblemHandlers, sendProblem } from './errors.ts';
import { livePlugin } from './live/index.ts';
import { DependencyMonitor } from './monitor/monitor.ts';
import { authPlugin, sessionApi } from './plugins/auth.ts';
import { dashboardPlugin } from './plugins/dashboard.ts';
import { healthPlugin } from './plugins/health.ts';
import { metricsPlugin } from './plugins/metrics.ts';
import { openApiPlugin } from './plugins/openapi.ts';
import { rateLimitPlugin } from './plugins/rate-limit.ts';
import { securityPlugin, serializeRequest } from './plugins/security.ts';
import { shedPlugin } from './plugins/shed.ts';
import { tracingPlugin } from './plugins/tracing.ts';
import { installRouteCache } from './route.ts';
import { problemSchema } from './schemas.ts';
import type { ServerSettings } from './settings.ts';
import { installTextCheck } from './text-check.ts';

export interface CreateServerOptions {
  registry: DependencyRegistry;
  engine: WorkflowEngine;
  store: WorkflowStore;
  settings: ServerSettings;
  /** @default systemClock */
  clock?: Clock;
  /** Reloads the configuration file; enables `POST /api/config/reload`. */
  reload?: () => Promise<ReloadSummary>;
  /** The schedules the server runs, for `GET /api/schedules`. @default none */
  schedules?: () => Promise<ScheduleView[]>;
  /** Where the JSON log goes. @default stdout */
  logStream?: DestinationStream;
}

/** What `createServer` returns: the Fastify app (for `inject` and `listen`) and its shutdown switch. */
export interface BulwarkServer {
  readonly app: FastifyInstance;
  readonly context: ServerContext;
  /** Readiness fails from now on and new runs are refused; the caller then stops the engine. */
  drain(): void;
}

/** A request id from the client is kept only if it is short and plain, so logs cannot be forged through it. */
const REQUEST_ID = /^[\w.:@-]{1,128}$/;

const { version: VERSION } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as {
  version: string;
};

// A random prefix per process and a counter: unique across restarts and replicas for any log
// search, and a tenth of the cost of a UUID per request.
const REQUEST_ID_PREFIX = randomBytes(6).toString('base64url');
let requestCounter = 0;
function nextRequestId(): string {
  requestCounter++;
  return `${REQUEST_ID_PREFIX}-${requestCounter.toString(36)}`;
}

export async function createServer(options: CreateServerOptions): Promise<BulwarkServer> {
  const { settings } = options;
  let draining = false;
  const clock = options.clock ?? systemClock;
  const context: ServerContext = {
    registry: options.registry,
    engine: options.engine,
    store: options.store,
    clock,
    settings,
    monitor: new DependencyMonitor(options.registry, clock),
    draining: () => draining,
    reload: options.reload,
    schedules: options.schedules,
  };
  const app = Fastify({
    logger: {
      level: settings.logLevel,
      ...(options.logStream === undefined ? {} : { stream: options.logStream }),
      // Keys travel in these headers; a log line must never carry one.
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers["x-api-key"]',
          'req.headers.cookie',
          'req.query.key',
        ],
        censor: '[redacted]',
      },
      // The default one, with secret query values (`?key=`) redacted from the logged URL.
      serializers: { req: serializeRequest },
    },
    bodyLimit: settings.bodyLimitBytes,
    trustProxy: settings.trustProxy,
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : nextRequestId();
    },
    // A malformed URL or an over-long path segment is refused before any hook runs: without
    // this it would leave as Fastify's own JSON, with no request id and not as a problem.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      sendProblem(reply, 'VALIDATION_FAILED', error.message);
    },
    // What Node's parser refuses before a request exists leaves as a problem too.
    clientErrorHandler: answerClientError,
    // Routes answer the same with or without a trailing slash, and ids are matched whole.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: true } },
  });
  app.decorateRequest('principal', undefined);
  // Its listeners and any isolation timer end with the server.
  app.addHook('onClose', async () => context.monitor.close());
  installRouteCache(app);
  installProblemHandlers(app);
  // The API reads JSON only. Fastify's default text/plain parser would hand a JSON route a string,
  // which then fails validation as a 400; without it a text body is a 415 like any other non-JSON.
  app.removeContentTypeParser('text/plain');
  installTextCheck(app);
  // First of the plugins: its span covers every later hook, refusals included.
  await app.register(tracingPlugin, { context });
  // In this order: headers and CORS, shedding, who is calling, their rate limit; all before routes.
  await app.register(securityPlugin, { context });
  await app.register(shedPlugin, { context });
  await app.register(authPlugin, { context });
  await app.register(rateLimitPlugin, { context });
  // Shared schemas live at the root, where every route and the OpenAPI document can see them.
  for (const schema of [
    problemSchema,
    dependencySchema,
    workflowSchema,
    runSchema,
    stepSchema,
    eventSchema,
    auditEntrySchema,
  ]) {
    app.addSchema(schema);
  }
  await app.register(openApiPlugin, { version: VERSION });

  await app.register(healthPlugin, { context });
  await app.register(sessionApi, { context, prefix: '/api' });
  await app.register(metricsPlugin, { context });
  await app.register(dependenciesApi, { context, prefix: '/api' });
  await app.register(workflowsApi, { context, prefix: '/api' });
  await app.register(runsApi, { context, prefix: '/api' });
  await app.register(adminApi, { context, prefix: '/api' });
  await app.register(livePlugin, { context, prefix: '/api' });
  await app.register(dashboardPlugin, { context });

  return {
    app,
    context,
    drain() {
      draining = true;
      options.registry.health.setDraining(true);
    },
  };
}
