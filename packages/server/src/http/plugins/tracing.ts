// Tracing: a server span for every request, continued from the caller's `traceparent`, and the
// trace context handed on to route handlers, the dependency calls they make and the runs they start.
import { withRequestContext } from '@bulwark/core';
import {
  type Context,
  createTraceState,
  isSpanContextValid,
  context as otelContext,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.ts';
import { routeOf } from '../route.ts';
import { isProbe, rootPlugin } from './security.ts';
import { formatTraceparent, randomTraceparent, remoteSpanContext } from './traceparent.ts';
import { TRACER_NAME, traceWorkflowSteps } from './workflow-tracing.ts';

const kTrace: unique symbol = Symbol('bulwark.trace');

interface RequestTrace {
  span: Span;
  /** The OpenTelemetry context with the server span active: handlers run in it. */
  context: Context;
  ended: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The trace context this request hands on (always a valid W3C traceparent): to
     * `engine.start(..., { traceparent })` and, through the request context, to dependency calls.
     */
    traceparent: string;
    [kTrace]: RequestTrace | null;
  }
}

// Longer than any sane list-member set (32 members of ~16 bytes): past it the header is dropped, not parsed.
const MAX_TRACESTATE = 512;

function parentContext(request: FastifyRequest): Context {
  const parent = remoteSpanContext(request.headers.traceparent);
  if (parent === undefined) return ROOT_CONTEXT;
  const state = request.headers.tracestate;
  if (typeof state === 'string' && state.length <= MAX_TRACESTATE)
    parent.traceState = createTraceState(state);
  return trace.setSpanContext(ROOT_CONTEXT, parent);
}

function end(request: FastifyRequest, status: number | undefined): void {
  const state = request[kTrace];
  if (state === null || state.ended) return;
  state.ended = true;
  if (status !== undefined) {
    state.span.setAttribute('http.response.status_code', status);
    if (status >= 500) state.span.setStatus({ code: SpanStatusCode.ERROR });
  } else {
    state.span.setAttribute('error.type', 'aborted');
  }
  state.span.end();
}

const plugin: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  // A proxy until an SDK registers a provider, so a provider installed after startup still takes effect.
  const tracer = trace.getTracer(TRACER_NAME);
  app.decorateRequest('traceparent', '');
  app.decorateRequest(kTrace, null);

  app.addHook('onRequest', (request, _reply, done) => {
    // Probes are polled every few seconds by every balancer: spans of them are noise in a trace
    // store, and they start no run and call no dependency, so they carry no context either.
    if (isProbe(request)) {
      done();
      return;
    }
    const route = routeOf(request).url;
    const parent = parentContext(request);
    const span = tracer.startSpan(
      route === undefined ? request.method : `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': request.method,
          ...(route === undefined ? {} : { 'http.route': route }),
        },
      },
      parent,
    );
    // Without an SDK the span is a no-op carrying its parent's ids, so this hands on the incoming
    // traceparent; with one, its own ids, so downstream spans nest under this server span.
    const own = span.spanContext();
    request.traceparent = isSpanContextValid(own) ? formatTraceparent(own) : randomTraceparent();
    request[kTrace] = { span, context: trace.setSpan(parent, span), ended: false };
    done();
  });

  // After body parsing and validation, so the handler itself runs inside both contexts (a hook
  // before the body is read would lose them to the socket's async context).
  app.addHook('preHandler', (request, _reply, done) => {
    const state = request[kTrace];
    if (state === null && request.traceparent === '') {
      done();
      return;
    }
    const handOn = () =>
      withRequestContext({ requestId: request.id, traceparent: request.traceparent }, done);
    if (state === null) handOn();
    else otelContext.with(state.context, handOn);
  });

  app.addHook('onResponse', (request, reply, done) => {
    end(request, reply.statusCode);
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    end(request, undefined);
    done();
  });

  const stop = traceWorkflowSteps(context.engine, context.store, tracer);
  app.addHook('onClose', async () => stop());
};

/** Registered at the root (not encapsulated), so its hooks see every route. */
export const tracingPlugin = rootPlugin(plugin, 'bulwark-tracing');
