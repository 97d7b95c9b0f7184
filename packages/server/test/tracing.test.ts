// Tracing through the public surface: server spans continue the caller's traceparent, handlers
// and their dependency calls carry it, and workflow steps become spans in the same trace. No
// OpenTelemetry SDK is installed: a tiny recording TracerProvider stands in for one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  type Attributes,
  type Context,
  context as otelContext,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanOptions,
  type SpanStatus,
  type TimeInput,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import Fastify, { type FastifyInstance } from 'fastify';
import { tracingPlugin } from '../src/http/plugins/tracing.ts';
import { as, type TestServer, testServer } from './server-support.ts';

class RecordedSpan implements Span {
  readonly attributes: Attributes = {};
  readonly #context: SpanContext;
  status: SpanStatus | undefined;
  ended = false;
  endTime: TimeInput | undefined;

  constructor(
    readonly name: string,
    readonly kind: SpanKind | undefined,
    readonly startTime: TimeInput | undefined,
    readonly parent: SpanContext | undefined,
    attributes: Attributes | undefined,
    private readonly recorded: RecordedSpan[],
  ) {
    Object.assign(this.attributes, attributes);
    this.#context = {
      traceId: parent?.traceId ?? randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      traceFlags: 1,
    };
  }
  spanContext(): SpanContext {
    return this.#context;
  }
  setAttribute(key: string, value: Attributes[string]): this {
    this.attributes[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    Object.assign(this.attributes, attributes);
    return this;
  }
  addEvent(): this {
    return this;
  }
  addLink(): this {
    return this;
  }
  addLinks(): this {
    return this;
  }
  setStatus(status: SpanStatus): this {
    this.status = status;
    return this;
  }
  updateName(): this {
    return this;
  }
  end(endTime?: TimeInput): void {
    assert.equal(this.ended, false, `span ${this.name} ended twice`);
    this.ended = true;
    this.endTime = endTime;
    this.recorded.push(this);
  }
  isRecording(): boolean {
    return !this.ended;
  }
  recordException(): void {}
}

/** Records every ended span; parents come from the context, as an SDK's tracer takes them. */
class RecordingProvider implements TracerProvider {
  readonly spans: RecordedSpan[] = [];
  getTracer(): Tracer {
    const spans = this.spans;
    const startSpan = (name: string, options: SpanOptions = {}, context: Context = otelContext.active()) =>
      new RecordedSpan(
        name,
        options.kind,
        options.startTime,
        options.root ? undefined : trace.getSpanContext(context),
        options.attributes,
        spans,
      );
    return {
      startSpan,
      startActiveSpan: ((name: string, ...rest: unknown[]) => {
        const fn = rest.pop() as (span: Span) => unknown;
        return fn(startSpan(name, rest[0] as SpanOptions | undefined, rest[1] as Context | undefined));
      }) as Tracer['startActiveSpan'],
    };
  }
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;
const VALID = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** An upstream that records the headers of each call it gets. */
async function upstream(): Promise<{
  server: Server;
  url: string;
  seen: Record<string, string | undefined>[];
}> {
  const seen: Record<string, string | undefined>[] = [];
  const server = createServer((request, response) => {
    seen.push({
      traceparent: request.headers.traceparent as string | undefined,
      requestId: request.headers['x-request-id'] as string | undefined,
    });
    response.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, seen };
}

/** A bare app with only the tracing plugin and a route that calls a dependency after reading a body. */
async function callingApp(server: TestServer): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(tracingPlugin, { context: server.context });
  app.post('/call', async (request) => {
    await new Promise((resolve) => setImmediate(resolve));
    const response = await server.registry.fetch('upstream', 'echo');
    return { traceparent: request.traceparent, body: await response.text() };
  });
  await app.ready();
  return app;
}

let up: Awaited<ReturnType<typeof upstream>>;
before(async () => {
  up = await upstream();
});
after(() => new Promise<void>((resolve) => up.server.close(() => resolve())));

describe('without an SDK', () => {
  let server: TestServer;
  let app: FastifyInstance;
  before(async () => {
    trace.disable();
    server = await testServer({ dependencies: { upstream: { kind: 'http', http: { baseUrl: up.url } } } });
    app = await callingApp(server);
  });
  after(async () => {
    await app?.close();
    await server?.close();
  });

  test('a valid incoming traceparent is handed on, and dependency calls join its trace', async () => {
    up.seen.length = 0;
    const response = await app.inject({
      method: 'POST',
      url: '/call',
      headers: { traceparent: TRACEPARENT, 'x-request-id': 'req-42' },
      payload: { some: 'body' },
    });
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().traceparent, TRACEPARENT);
    const [call] = up.seen;
    const match = VALID.exec(call?.traceparent ?? '');
    assert.ok(match, `outgoing traceparent ${call?.traceparent}`);
    assert.equal(match[1], TRACE_ID);
    assert.notEqual(match[2], PARENT_ID, 'each outgoing call gets its own parent id');
  });

  test('without a usable traceparent a fresh, unsampled one is minted', async () => {
    for (const bad of [
      undefined,
      TRACEPARENT.toUpperCase(),
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `ff-${TRACE_ID}-${PARENT_ID}-01`,
      `${TRACEPARENT}-extra`,
    ]) {
      up.seen.length = 0;
      const response = await app.inject({
        method: 'POST',
        url: '/call',
        headers: bad === undefined ? {} : { traceparent: bad },
        payload: {},
      });
      const handedOn: string = response.json().traceparent;
      const match = VALID.exec(handedOn);
      assert.ok(match, `minted ${handedOn} for ${bad}`);
      assert.notEqual(match[1], TRACE_ID);
      assert.equal(match[3], '00');
      assert.equal(
        VALID.exec(up.seen[0]?.traceparent ?? '')?.[1],
        match[1],
        'the call joins the minted trace',
      );
    }
  });
});

describe('with an SDK', () => {
  const provider = new RecordingProvider();
  let server: TestServer;
  let app: FastifyInstance;
  before(async () => {
    trace.disable();
    assert.ok(trace.setGlobalTracerProvider(provider));
    server = await testServer({ dependencies: { upstream: { kind: 'http', http: { baseUrl: up.url } } } });
    app = await callingApp(server);
  });
  after(async () => {
    await app?.close();
    await server?.close();
    trace.disable();
  });

  test('each request gets a server span, child of the incoming traceparent', async () => {
    provider.spans.length = 0;
    const response = await server.app.inject({
      url: '/api/dependencies/upstream',
      headers: { ...as('viewer'), traceparent: TRACEPARENT },
    });
    assert.equal(response.statusCode, 200);
    const span = provider.spans.find((s) => s.name === 'GET /api/dependencies/:name');
    assert.ok(span, `spans: ${provider.spans.map((s) => s.name).join(', ')}`);
    assert.equal(span.kind, 1 /* SERVER */);
    assert.equal(span.parent?.traceId, TRACE_ID);
    assert.equal(span.parent?.spanId, PARENT_ID);
    assert.equal(span.parent?.isRemote, true);
    assert.equal(span.spanContext().traceId, TRACE_ID);
    assert.deepEqual(span.attributes, {
      'http.request.method': 'GET',
      'http.route': '/api/dependencies/:name',
      'http.response.status_code': 200,
    });
  });

  test('refused and unmatched requests are traced too; a server error marks the span', async () => {
    provider.spans.length = 0;
    await server.app.inject({ url: '/api/dependencies', headers: { traceparent: TRACEPARENT } });
    await server.app.inject({ url: '/no/such/route' });
    const refused = provider.spans.find((s) => s.name === 'GET /api/dependencies');
    assert.equal(refused?.attributes['http.response.status_code'], 401);
    assert.equal(refused?.status, undefined);
    const unmatched = provider.spans.find((s) => s.name === 'GET');
    assert.equal(unmatched?.attributes['http.route'], undefined);
    assert.equal(unmatched?.attributes['http.response.status_code'], 404);
    assert.equal(unmatched?.parent, undefined);
  });

  test('dependency calls made by a handler are children of its server span', async () => {
    provider.spans.length = 0;
    up.seen.length = 0;
    const response = await app.inject({
      method: 'POST',
      url: '/call',
      headers: { traceparent: TRACEPARENT },
      payload: { a: 1 },
    });
    const span = provider.spans.find((s) => s.name === 'POST /call');
    assert.ok(span);
    const own = span.spanContext();
    assert.equal(response.json().traceparent, `00-${own.traceId}-${own.spanId}-01`);
    assert.equal(VALID.exec(up.seen[0]?.traceparent ?? '')?.[1], TRACE_ID);
  });

  test('a run started with a traceparent records its steps as spans in that trace', async () => {
    provider.spans.length = 0;
    const started = await server.app.inject({
      method: 'POST',
      url: '/api/workflows/greet/runs',
      headers: { ...as('operator'), traceparent: TRACEPARENT },
      payload: { input: { name: 'ada' } },
    });
    assert.equal(started.statusCode, 201, started.body);
    const { id } = started.json();
    await server.engine.result(id);
    const run = await server.engine.getRun(id);
    const parent = VALID.exec(run?.traceparent ?? '');
    assert.ok(parent, `the run's traceparent: ${run?.traceparent}`);
    assert.equal(parent[1], TRACE_ID);

    const deadline = Date.now() + 5_000;
    let step: RecordedSpan | undefined;
    while ((step = provider.spans.find((s) => s.name === 'workflow.step hello')) === undefined) {
      assert.ok(Date.now() < deadline, 'no step span recorded');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(step.parent?.traceId, TRACE_ID);
    assert.equal(step.parent?.spanId, parent[2]);
    assert.equal(step.spanContext().traceId, TRACE_ID);
    assert.equal(step.attributes['workflow.run_id'], id);
    assert.equal(step.attributes['workflow.name'], 'greet');
    assert.equal(step.attributes['workflow.step.status'], 'completed');
    assert.ok(typeof step.startTime === 'number' && typeof step.endTime === 'number');
    assert.ok(step.startTime <= step.endTime);
  });
});
