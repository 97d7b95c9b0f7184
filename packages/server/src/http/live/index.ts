// Live streams: a run's timeline as Server-Sent Events (/api/runs/:id/stream) or over a
// WebSocket (/api/runs/:id/ws), and the system's changes (/api/stream). Resumable by event id.
import { InvalidOptionsError } from '@bulwark/core';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { WebSocket } from 'ws';
import type { ServerContext } from '../context.ts';
import { ApiError, invalidField, sendProblem } from '../errors.ts';
import { idParam, mediaResponse, problemResponses } from '../schemas.ts';
import { RunHubs } from './hub.ts';
import { Keepalive } from './keepalive.ts';
import { SseRunSubscriber, SseStream } from './sse.ts';
import { parseSystemCursor, type SystemCursor, SystemFeed } from './system.ts';
import { WsRunSubscriber } from './ws.ts';

export interface LiveOptions {
  context: ServerContext;
  /** How often every connection is pinged (SSE comment, WebSocket ping). @default 15_000 */
  pingIntervalMs?: number;
  /**
   * Bytes that may queue for one client. A client over it is sent a gap marker and dropped;
   * it reconnects and resumes from the store. @default 1_048_576 (1 MiB)
   */
  maxBufferBytes?: number;
  /** How often a watched run is read again without a wake-up (other processes' writes). @default 1_000 */
  pollMs?: number;
  /** Run-feed reads of /api/stream happen at most this often. @default 100 */
  feedCoalesceMs?: number;
  /** Dependency events kept for clients of /api/stream that resume. @default 1_000 */
  dependencyHistory?: number;
  /** A dependency's snapshot on /api/stream goes out at most this often (latest wins). @default 250 */
  snapshotMs?: number;
}

interface Normalized {
  pingIntervalMs: number;
  maxBufferBytes: number;
  pollMs: number;
  feedCoalesceMs: number;
  dependencyHistory: number;
  snapshotMs: number;
}

function positive(field: string, value: number | undefined, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value <= 0 ||
    (integer && !Number.isInteger(value))
  ) {
    throw new InvalidOptionsError(
      `live.${field}`,
      `expected a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`,
    );
  }
  return value;
}

function normalizeLiveOptions(options: Omit<LiveOptions, 'context'>): Normalized {
  return {
    pingIntervalMs: positive('pingIntervalMs', options.pingIntervalMs, 15_000),
    maxBufferBytes: positive('maxBufferBytes', options.maxBufferBytes, 1_048_576, true),
    pollMs: positive('pollMs', options.pollMs, 1_000),
    feedCoalesceMs: positive('feedCoalesceMs', options.feedCoalesceMs, 100),
    dependencyHistory: positive('dependencyHistory', options.dependencyHistory, 1_000, true),
    snapshotMs: positive('snapshotMs', options.snapshotMs, 250),
  };
}

const RUN_CURSOR = /^\d{1,15}$/;
const runQuery = {
  type: 'object',
  properties: {
    lastEventId: {
      type: 'string',
      pattern: RUN_CURSOR.source,
      description: 'Resume after this event id (for clients that cannot send the Last-Event-ID header).',
    },
  },
} as const;
const systemQuery = {
  type: 'object',
  properties: {
    lastEventId: {
      type: 'string',
      pattern: '^\\d{1,15}(\\.\\d{1,16})?$',
      description: 'Resume after this event id (`<runSeq>.<dependencySeq>`).',
    },
  },
} as const;
/**
 * The header a reconnecting EventSource sends. No pattern here: an empty one falls back to the
 * query, and `runCursor` / `systemCursor` refuse a bad one with a 400 naming the header.
 */
function resumeHeader(format: string) {
  return {
    type: 'object',
    properties: {
      'last-event-id': {
        type: 'string',
        description: `Resume after this event id (${format}); wins over \`?lastEventId=\`.`,
      },
    },
  } as const;
}
const runHeaders = resumeHeader('digits');
const systemHeaders = resumeHeader('`<runSeq>.<dependencySeq>`');
const eventStream = mediaResponse(
  'text/event-stream',
  'Server-Sent Events: `id:`, `event:` and `data:` (JSON) lines per event; see docs/live.md.',
);

/**
 * Where to resume: the Last-Event-ID header (a reconnecting EventSource sends it, and it is newer
 * than a `?lastEventId=` left in the URL), else the query.
 */
function resumeFrom(request: FastifyRequest<{ Querystring: { lastEventId?: string } }>): string | undefined {
  const header = request.headers['last-event-id'];
  if (typeof header === 'string' && header.trim() !== '') return header.trim();
  return request.query.lastEventId;
}

function runCursor(request: FastifyRequest<{ Querystring: { lastEventId?: string } }>): number {
  const value = resumeFrom(request);
  if (value === undefined) return 0;
  if (!RUN_CURSOR.test(value)) throw invalidField('#/header/last-event-id', 'must be an event id (digits)');
  return Number(value);
}

function systemCursor(
  request: FastifyRequest<{ Querystring: { lastEventId?: string } }>,
): SystemCursor | undefined {
  const value = resumeFrom(request);
  if (value === undefined) return undefined;
  const cursor = parseSystemCursor(value);
  if (cursor === undefined) {
    throw invalidField(
      '#/header/last-event-id',
      'must be an event id of this stream (<runSeq>.<dependencySeq>)',
    );
  }
  return cursor;
}

export const livePlugin: FastifyPluginAsync<LiveOptions> = async (app, { context, ...rest }) => {
  const options = normalizeLiveOptions(rest);
  const { store, clock, registry } = context;
  const keepalive = new Keepalive(clock, options.pingIntervalMs, options.maxBufferBytes);
  const hubs = new RunHubs({ store, clock, log: app.log, pollMs: options.pollMs });
  const system = new SystemFeed({
    store,
    registry,
    monitor: context.monitor,
    clock,
    log: app.log,
    pollMs: options.pollMs,
    coalesceMs: options.feedCoalesceMs,
    ringSize: options.dependencyHistory,
    snapshotMs: options.snapshotMs,
  });
  // @fastify/websocket's type declarations add a route overload to every Fastify instance of the
  // program, and TypeScript then types the handlers of every other route as WebSocket handlers.
  // Loaded by a computed name its declarations stay out; its one route is typed by hand below.
  const websocketPlugin: string = '@fastify/websocket';
  const { default: websocket } = (await import(websocketPlugin)) as {
    default: FastifyPluginAsync<{ options: { maxPayload: number } }>;
  };
  // Clients send nothing but pongs (control frames); a large message is no client of ours.
  await app.register(websocket, { options: { maxPayload: 4096 } });

  // Streams never end on their own while a run is live: a server closing must end them, or its
  // close would wait for every viewer to leave. (WebSockets are closed by @fastify/websocket.)
  app.addHook('preClose', async () => {
    for (const client of keepalive.clients()) client.destroy();
  });
  app.addHook('onClose', async () => {
    hubs.close();
    system.close();
  });

  const knownRun = async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const { id } = request.params;
    if ((await store.getRun(id)) === undefined) {
      throw new ApiError('NOT_FOUND', `No run with id ${JSON.stringify(id)}`);
    }
  };

  app.get<{ Params: { id: string }; Querystring: { lastEventId?: string } }>(
    '/runs/:id/stream',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['live'],
        summary:
          'A run’s timeline as Server-Sent Events: history, then live events; resumable with Last-Event-ID',
        params: idParam,
        querystring: runQuery,
        headers: runHeaders,
        response: { 200: eventStream, ...problemResponses },
      },
      preHandler: knownRun,
    },
    async (request, reply) => {
      const cursor = runCursor(request);
      const { id } = request.params;
      const stream = new SseStream(reply, options.maxBufferBytes, keepalive);
      const subscriber = new SseRunSubscriber(stream, cursor);
      stream.onClose(() => hubs.leave(id, subscriber));
      try {
        await hubs.join(id, subscriber);
      } catch (error) {
        // Headers are gone: the client sees the stream end and reconnects from its last id.
        request.log.warn({ err: error, runId: id }, 'live: reading a run history failed');
        stream.destroy();
      }
    },
  );

  const wsHandler = async (
    socket: WebSocket,
    request: FastifyRequest<{ Params: { id: string }; Querystring: { lastEventId?: string } }>,
  ): Promise<void> => {
    const { id } = request.params;
    // As for SSE: the Last-Event-ID header, else the query (checked before the upgrade).
    const cursor = runCursor(request);
    const subscriber: WsRunSubscriber = new WsRunSubscriber(
      socket,
      cursor,
      options.maxBufferBytes,
      keepalive,
      () => hubs.leave(id, subscriber),
    );
    try {
      await hubs.join(id, subscriber);
    } catch (error) {
      request.log.warn({ err: error, runId: id }, 'live: reading a run history failed');
      socket.terminate();
    }
  };
  app.route({
    method: 'GET',
    url: '/runs/:id/ws',
    config: { access: 'viewer' },
    schema: {
      tags: ['live'],
      summary: 'A run’s timeline over a WebSocket: one JSON message per event; resume with ?lastEventId=',
      params: idParam,
      querystring: runQuery,
      headers: runHeaders,
      response: {
        101: { description: 'Switching Protocols: the WebSocket is open' },
        426: { $ref: 'Problem#' },
        ...problemResponses,
      },
    },
    // A bad resume id is a 400 while it still can be: before the upgrade, not after it.
    preHandler: [
      knownRun,
      async (request: FastifyRequest<{ Querystring: { lastEventId?: string } }>) => void runCursor(request),
    ],
    // A request without `Upgrade: websocket` reaches this one. @fastify/websocket's own (what
    // `websocket: true` installs) answers an empty 404, which reads as if the run did not exist.
    handler: (_request: FastifyRequest, reply: FastifyReply) =>
      sendProblem(reply, 'UPGRADE_REQUIRED', 'This route needs a WebSocket upgrade (Upgrade: websocket)', {
        headers: { upgrade: 'websocket' },
      }),
    wsHandler,
  } as unknown as RouteOptions);

  app.get<{ Querystring: { lastEventId?: string } }>(
    '/stream',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['live'],
        summary:
          'System changes as Server-Sent Events: dependency events, dependency snapshots (coalesced) and run status changes',
        querystring: systemQuery,
        headers: systemHeaders,
        response: { 200: eventStream, ...problemResponses },
      },
    },
    async (request, reply) => {
      const resume = systemCursor(request);
      const stream = new SseStream(reply, options.maxBufferBytes, keepalive);
      try {
        await system.attach(stream, resume);
      } catch (error) {
        request.log.warn({ err: error }, 'live: reading the run feed failed');
        stream.destroy();
      }
    },
  );
};
