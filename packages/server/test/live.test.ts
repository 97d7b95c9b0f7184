// Live streams over real sockets: a run's timeline as SSE and WebSocket (history, live, resume
// without loss or repeat, ping, end), slow consumers dropped with a gap marker, and /api/stream.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { defineWorkflow, type WorkflowStore } from '@bulwark/workflow';
import Fastify, { type FastifyInstance } from 'fastify';
// undici's own fetch: Node 20's bundled one leaves an idle connection open after an abort, which
// holds a server's close for its keep-alive timeout.
import { fetch } from 'undici';
import { WebSocket } from 'ws';
import { installProblemHandlers } from '../src/http/errors.ts';
import { type LiveOptions, livePlugin } from '../src/http/live/index.ts';
import { routeTable } from '../src/http/plugins/auth.ts';
import { problemSchema } from '../src/http/schemas.ts';
import { as, type TestServer, testServer } from './server-support.ts';

/** Every wait in this file ends here at the latest: a missing event fails the test, it does not hang it. */
const WAIT_MS = 8_000;

interface Message {
  id: string | undefined;
  event: string;
  data: any;
  comment: string | undefined;
}

function parseBlock(block: string): Message | undefined {
  let id: string | undefined;
  let event = 'message';
  let data: string | undefined;
  let comment: string | undefined;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) comment = line.slice(1).trim();
    else if (line.startsWith('id: ')) id = line.slice(4);
    else if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data = line.slice(6);
  }
  if (data === undefined && comment === undefined) return undefined; // retry: only
  return { id, event, data: data === undefined ? undefined : JSON.parse(data), comment };
}

/** An SSE client on fetch: reads messages one at a time. */
async function sse(url: string, headers: Record<string, string> = as('viewer')) {
  const abort = new AbortController();
  const response = await fetch(url, { headers, signal: abort.signal });
  assert.equal(response.status, 200, await (response.status === 200 ? '' : response.text()));
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const queue: Message[] = [];
  let done = false;
  const next = async (): Promise<Message | undefined> => {
    for (;;) {
      const queued = queue.shift();
      if (queued !== undefined) return queued;
      if (done) return undefined;
      const chunk = await reader.read();
      if (chunk.done) {
        done = true;
        continue;
      }
      buffer += chunk.value;
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const message = parseBlock(buffer.slice(0, end));
        if (message !== undefined) queue.push(message);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
  };
  return {
    next,
    /** Messages (pings left out unless asked) until `stop` matches one, inclusive. */
    async until(stop: (m: Message) => boolean, pings = false): Promise<Message[]> {
      const seen: Message[] = [];
      const timer = setTimeout(() => abort.abort(new Error('waited too long')), WAIT_MS);
      try {
        for (;;) {
          const message = await next();
          if (message === undefined) throw new Error(`stream ended; saw ${seen.map((m) => m.event)}`);
          if (message.comment !== undefined && !pings) continue;
          seen.push(message);
          if (stop(message)) return seen;
        }
      } finally {
        clearTimeout(timer);
      }
    },
    /** True once the server has ended the stream (after reading what is left). */
    async ended(): Promise<boolean> {
      const timer = setTimeout(() => abort.abort(new Error('waited too long')), WAIT_MS);
      try {
        while ((await next()) !== undefined);
        return true;
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => abort.abort(),
  };
}

async function listen(app: FastifyInstance): Promise<string> {
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return address;
}

/**
 * Shedding and rate limits off: many connections opened at once on a busy test machine must not
 * be refused, which is what they are for.
 */
function liveServer(options: { worker?: boolean } = {}): Promise<TestServer> {
  return testServer({ ...options, settings: { rateLimit: false, maxEventLoopDelayMs: 60_000 } });
}

/** The live plugin alone, with test options, on the test server's store, engine and registry. */
async function liveApp(server: TestServer, options: Omit<LiveOptions, 'context'>): Promise<FastifyInstance> {
  const app = Fastify();
  installProblemHandlers(app);
  app.addSchema(problemSchema);
  await app.register(livePlugin, { context: server.context, prefix: '/api', ...options });
  return app;
}

async function seqs(store: WorkflowStore, runId: string): Promise<number[]> {
  return (await store.events(runId)).map((e) => e.seq);
}

async function waitForStatus(server: TestServer, runId: string, status: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while ((await server.engine.getRun(runId))?.status !== status) {
    if (Date.now() > deadline) throw new Error(`run ${runId} never became ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const isEnd = (m: Message) => m.event === 'end';

test('a run stream sends the stored history, then live events in order, then end', async () => {
  const server = await liveServer();
  try {
    const base = await listen(server.app);
    const { id } = await server.engine.start('greet', { name: 'ada', wait: true });
    await waitForStatus(server, id, 'waiting');
    const stream = await sse(`${base}/api/runs/${id}/stream`);
    const history = await stream.until((m) => m.event === 'run:waiting');
    assert.deepEqual(
      history.slice(0, 3).map((m) => m.event),
      ['run:queued', 'run:started', 'step:started'],
    );
    assert.equal(history[2]!.data.step, 'hello');
    await server.engine.sendEvent(id, 'reply', 'hi');
    const rest = await stream.until(isEnd);
    const all = [...history, ...rest];
    const end = all.pop()!;
    assert.deepEqual(end.data, { status: 'completed' });
    assert.equal(all.at(-1)!.event, 'run:completed');
    // Every stored event once, in order, each with its seq as id and in its data.
    assert.deepEqual(
      all.map((m) => Number(m.id)),
      await seqs(server.context.store, id),
    );
    for (const m of all) {
      assert.equal(m.data.id, Number(m.id));
      assert.equal(m.data.type, m.event);
      assert.deepEqual(Object.keys(m.data).sort(), ['at', 'data', 'id', 'progress', 'step', 'type']);
    }
    assert.equal(await stream.ended(), true);
  } finally {
    await server.close();
  }
});

test('a client that reconnects with Last-Event-ID mid-run gets exactly the rest', async () => {
  const server = await liveServer();
  try {
    const base = await listen(server.app);
    const { id } = await server.engine.start('greet', { name: 'ada', wait: true });
    await waitForStatus(server, id, 'waiting');
    const first = await sse(`${base}/api/runs/${id}/stream`);
    const before = await first.until((m) => m.event === 'step:started');
    first.close();
    const lastId = before.at(-1)!.id!;

    // Header: the rest of the history, then live events once the run moves on.
    const second = await sse(`${base}/api/runs/${id}/stream`, { ...as('viewer'), 'last-event-id': lastId });
    const history = await second.until((m) => m.event === 'run:waiting');
    await server.engine.sendEvent(id, 'reply', 'hi');
    const live = await second.until(isEnd);
    const received = [...before, ...history, ...live.slice(0, -1)].map((m) => Number(m.id));
    assert.deepEqual(received, await seqs(server.context.store, id));

    // Query (for clients that cannot set the header), after the run is over: the rest, then end.
    const third = await sse(`${base}/api/runs/${id}/stream?lastEventId=${history.at(-1)!.id}`);
    const tail = await third.until(isEnd);
    assert.deepEqual(
      tail.slice(0, -1).map((m) => Number(m.id)),
      live.slice(0, -1).map((m) => Number(m.id)),
    );
    // Resuming from the last event of a finished run: nothing but the end.
    const fourth = await sse(`${base}/api/runs/${id}/stream?lastEventId=${live.at(-2)!.id}`);
    assert.deepEqual(
      (await fourth.until(isEnd)).map((m) => m.event),
      ['end'],
    );
  } finally {
    await server.close();
  }
});

test('many subscribers of one run share its hub and each gets every event once', async () => {
  const server = await liveServer();
  try {
    const base = await listen(server.app);
    const { id } = await server.engine.start('greet', { name: 'ada', wait: true });
    await waitForStatus(server, id, 'waiting');
    const streams = await Promise.all(Array.from({ length: 20 }, () => sse(`${base}/api/runs/${id}/stream`)));
    const waited = await Promise.all(streams.map((s) => s.until((m) => m.event === 'run:waiting')));
    const upToWaiting = waited[0]!.map((m) => Number(m.id));
    for (const history of waited)
      assert.deepEqual(
        history.map((m) => Number(m.id)),
        upToWaiting,
      );
    // Commits while subscribers are still joining land at the seam: none lost, none twice.
    const late = Array.from({ length: 10 }, () => sse(`${base}/api/runs/${id}/stream`));
    await server.engine.sendEvent(id, 'reply', 'hi');
    const expected = await (async () => {
      await server.engine.result(id);
      return seqs(server.context.store, id);
    })();
    const early = await Promise.all(streams.map((s) => s.until(isEnd)));
    for (const [i, s] of (await Promise.all(late)).entries()) {
      const got = (await s.until(isEnd)).slice(0, -1).map((m) => Number(m.id));
      assert.deepEqual(got, expected, `late subscriber ${i}`);
    }
    // The early ones read up to run:waiting before: the rest came live through the hub.
    for (const [i, rest] of early.entries()) {
      const got = rest.slice(0, -1).map((m) => Number(m.id));
      assert.deepEqual(got, expected.slice(expected.length - got.length), `early subscriber ${i}`);
      assert.ok(got.length > 0 && got[0]! > Math.min(...expected));
    }
  } finally {
    await server.close();
  }
});

test('SSE clients are pinged with a comment while connected', async () => {
  const server = await liveServer();
  const app = await liveApp(server, { pingIntervalMs: 30 });
  try {
    const base = await listen(app);
    const { id } = await server.engine.start('greet', { name: 'ada', wait: true });
    const stream = await sse(`${base}/api/runs/${id}/stream`);
    const seen = await stream.until((m) => m.comment === 'ping', true);
    assert.equal(seen.at(-1)!.comment, 'ping');
    stream.close();
  } finally {
    await app.close();
    await server.close();
  }
});

/** A WebSocket client collecting messages. */
async function wsClient(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}) {
  const socket = new WebSocket(url, { headers: as('viewer'), ...options });
  const messages: any[] = [];
  let wake: (() => void) | undefined;
  socket.on('message', (data) => {
    messages.push(JSON.parse(String(data)));
    wake?.();
  });
  const closed = once(socket, 'close');
  await once(socket, 'open');
  return {
    socket,
    messages,
    closed,
    async until(stop: (m: any) => boolean): Promise<any[]> {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const at = messages.findIndex(stop);
        if (at >= 0) return messages.slice(0, at + 1);
        if (Date.now() > deadline) throw new Error(`waited too long; saw ${messages.map((m) => m.type)}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
    },
  };
}

test('a WebSocket gets history, live events and end; ?lastEventId= resumes without loss or repeat', async () => {
  const server = await liveServer();
  try {
    const base = (await listen(server.app)).replace('http', 'ws');
    const { id } = await server.engine.start('greet', { name: 'ada', wait: true });
    await waitForStatus(server, id, 'waiting');
    const first = await wsClient(`${base}/api/runs/${id}/ws`);
    const history = await first.until((m) => m.type === 'run:waiting');
    assert.deepEqual(Object.keys(history[0]).sort(), ['at', 'data', 'id', 'progress', 'step', 'type']);
    first.socket.close();
    await first.closed;

    const resumed = await wsClient(`${base}/api/runs/${id}/ws?lastEventId=${history[1].id}`);
    await resumed.until((m) => m.type === 'run:waiting');
    await server.engine.sendEvent(id, 'reply', 'hi');
    const rest = await resumed.until((m) => m.type === 'end');
    assert.deepEqual(rest.at(-1), { type: 'end', data: { status: 'completed' } });
    const [code] = (await resumed.closed) as [number];
    assert.equal(code, 1000);
    const ids = [...history.slice(0, 2), ...rest.slice(0, -1)].map((m) => m.id);
    assert.deepEqual(ids, await seqs(server.context.store, id));

    // The Last-Event-ID header resumes as on SSE, and wins over the query; a bad one is a 400.
    const byHeader = await wsClient(`${base}/api/runs/${id}/ws?lastEventId=1`, {
      headers: { ...as('viewer'), 'last-event-id': String(history[1].id) },
    });
    const replayed = await byHeader.until((m) => m.type === 'end');
    assert.deepEqual(
      replayed.slice(0, -1).map((m) => m.id),
      ids.slice(2),
    );
    const bad = new WebSocket(`${base}/api/runs/${id}/ws`, {
      headers: { ...as('viewer'), 'last-event-id': 'abc' },
    });
    bad.on('error', () => {});
    const [, refused] = (await once(bad, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(refused.statusCode, 400);
    bad.terminate();
  } finally {
    await server.close();
  }
});

test('a WebSocket client that answers no pings is terminated after missing two pongs', async () => {
  const server = await liveServer();
  const app = await liveApp(server, { pingIntervalMs: 30 });
  try {
    const base = (await listen(app)).replace('http', 'ws');
    const { id } = await server.engine.start('greet', { name: 'ada', wait: true });
    const polite = await wsClient(`${base}/api/runs/${id}/ws`);
    let pings = 0;
    polite.socket.on('ping', () => pings++);
    const mute = await wsClient(`${base}/api/runs/${id}/ws`, { autoPong: false });
    const started = Date.now();
    const [code] = (await mute.closed) as [number];
    assert.equal(code, 1006, 'terminated, not closed politely');
    // Two unanswered pings take two intervals; the third tick cuts it.
    assert.ok(Date.now() - started >= 2 * 30 - 5);
    assert.ok(pings >= 2, `the polite client saw ${pings} pings`);
    assert.equal(polite.socket.readyState, WebSocket.OPEN, 'a client that answers stays');
    polite.socket.close();
  } finally {
    await app.close();
    await server.close();
  }
});

/** An HTTP client that sends its request and then reads nothing until told to. */
async function stalledClient(
  port: number,
  path: string,
): Promise<{ socket: Socket; read(): Promise<string> }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.pause();
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${as('viewer').authorization}\r\n\r\n`,
  );
  return {
    socket,
    /** Reads until the response ends (the last chunk; the connection itself is kept alive). */
    async read() {
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        socket.on('data', (c: Buffer) => {
          chunks.push(c);
          if (c.toString('latin1').endsWith('\r\n0\r\n\r\n')) resolve();
        });
        socket.once('close', () => reject(new Error('closed before the response ended')));
        socket.resume();
      });
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

/** Reassembles a chunked HTTP/1.1 body and parses its SSE messages. */
function sseMessages(raw: string): Message[] {
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  let text = '';
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    const size = Number.parseInt(body.slice(at, lineEnd), 16);
    if (!(size > 0)) break;
    text += body.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
  return text
    .split('\n\n')
    .map(parseBlock)
    .filter((m): m is Message => m !== undefined);
}

async function openConnections(app: FastifyInstance): Promise<number> {
  return new Promise((resolve, reject) =>
    app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );
}

/**
 * A client that does what EventSource does: on the end of the stream it reconnects with the
 * last id it got. Collects every id until `last()` is among them; counts the gaps.
 */
async function follow(url: string, last: () => number | undefined) {
  const ids: number[] = [];
  let gaps = 0;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const headers: Record<string, string> = as('viewer');
    if (ids.length > 0) headers['last-event-id'] = String(ids.at(-1));
    const stream = await sse(url, headers);
    try {
      for (;;) {
        const message = await stream.next();
        if (message === undefined) break;
        if (message.event === 'gap') gaps++;
        else if (message.id !== undefined) ids.push(Number(message.id));
        if (ids.at(-1) !== undefined && ids.at(-1) === last()) return { ids, gaps };
      }
    } catch {
      // Cut by the server (a reader over the bound too long): reconnect, as a browser would.
    } finally {
      stream.close();
    }
    assert.ok(Date.now() < deadline, 'the follower never caught up');
  }
}

test('a slow SSE consumer is dropped with a gap marker and resumes from the store without loss', async () => {
  const server = await liveServer();
  // No pings (so no cuts) here: the slow client reads only once everything was sent.
  const app = await liveApp(server, { maxBufferBytes: 256 * 1024, pingIntervalMs: 60_000 });
  const strict = await liveApp(server, { maxBufferBytes: 256 * 1024, pingIntervalMs: 100 });
  try {
    const base = await listen(app);
    await listen(strict);
    const { id } = await server.engine.start('greet', { name: 'ada', wait: true });
    await waitForStatus(server, id, 'waiting');
    const path = `/api/runs/${id}/stream`;
    const slow = await stalledClient((app.server.address() as { port: number }).port, path);
    const deaf = await stalledClient((strict.server.address() as { port: number }).port, path);
    const slowWs = await wsClient(`${base.replace('http', 'ws')}/api/runs/${id}/ws`);
    await slowWs.until((m) => m.type === 'run:waiting');
    const wsTcp = (slowWs.socket as unknown as { _socket: Socket })._socket;
    wsTcp.pause();
    let lastSeq: number | undefined;
    const follower = follow(`${base}${path}`, () => lastSeq);

    // 10 MB of events: more than the kernel's socket buffers (about 4 MB on loopback) and the bound.
    const blob = 'x'.repeat(8 * 1024);
    const { store } = server.context;
    for (let commit = 0; commit < 60; commit++) {
      const now = Date.now();
      await store.commit(
        Array.from({ length: 20 }, (_, i) => ({
          kind: 'event' as const,
          runId: id,
          event: { type: 'test:blob', step: undefined, data: { i, blob }, progress: 0, at: now },
        })),
        now,
      );
    }
    const all = await seqs(store, id);
    lastSeq = all.at(-1);
    const followed = await follower;
    assert.deepEqual(followed.ids, all, 'a client that reconnects on drops gets every event once');

    const messages = sseMessages(await slow.read());
    const gap = messages.at(-1)!;
    assert.equal(gap.event, 'gap');
    assert.equal(gap.id, undefined, 'a gap has no id: the last real id stays the resume point');
    const got = messages.slice(0, -1).map((m) => Number(m.id));
    assert.ok(got.length < all.length, 'the slow client was not sent everything');
    assert.deepEqual(got, all.slice(0, got.length), 'what it got is an unbroken prefix');
    assert.equal(gap.data.from, all[got.length], 'the gap starts at the first event it missed');
    assert.ok(gap.data.to >= gap.data.from);

    // It reconnects with its last id and reads the rest from the store.
    const again = await sse(`${base}${path}`, { ...as('viewer'), 'last-event-id': String(got.at(-1)) });
    const rest = await again.until((m) => Number(m.id) === lastSeq);
    assert.deepEqual([...got, ...rest.map((m) => Number(m.id))], all);
    again.close();
    slow.socket.destroy();

    // The same over a WebSocket: a gap message, then a close saying "try again later".
    wsTcp.resume();
    const [code] = (await slowWs.closed) as [number];
    assert.equal(code, 1013);
    const wsGap = slowWs.messages.at(-1);
    assert.equal(wsGap.type, 'gap');
    const wsIds = slowWs.messages.slice(0, -1).map((m) => m.id);
    assert.deepEqual(wsIds, all.slice(0, wsIds.length));
    assert.equal(wsGap.data.from, all[wsIds.length]);

    // The client that reads nothing at all is cut two ping intervals after it went over.
    const deadline = Date.now() + WAIT_MS;
    while ((await openConnections(strict)) > 0) {
      assert.ok(Date.now() < deadline, 'the deaf client is still connected');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    deaf.socket.destroy();
  } finally {
    await strict.close();
    await app.close();
    await server.close();
  }
});

test('/api/stream sends breaker changes and run status changes, and resumes by its two-part id', async () => {
  const server = await liveServer();
  try {
    const base = await listen(server.app);
    const stream = await sse(`${base}/api/stream`);
    const response = await fetch(`${base}/api/dependencies/payments/isolate`, {
      method: 'POST',
      headers: as('operator'),
    });
    assert.equal(response.status, 200);
    // Dependency snapshots (every dependency on connect, then those that change) come between.
    const isolated = (await stream.until((m) => m.event === 'breaker:isolated')).at(-1);
    assert.equal(isolated!.data.dependency, 'payments');
    assert.match(isolated!.id!, /^\d+\.\d+$/);

    const { id } = await server.engine.start('greet', { name: 'ada' });
    const runEvents = await stream.until((m) => m.event === 'run:completed' && m.data.runId === id);
    const queued = runEvents.find((m) => m.event === 'run:queued')!;
    assert.equal(queued.data.workflow, 'greet');
    assert.equal(queued.data.runId, id);
    assert.ok(runEvents.every((m) => m.event.startsWith('run:') || m.event === 'dependency:snapshot'));
    const last = runEvents.at(-1)!;
    stream.close();

    // Missed while away: a breaker reset and a whole run.
    server.registry.breaker('payments')!.reset();
    const second = await server.engine.start('greet', { name: 'bob' });
    await server.engine.result(second.id);
    const resumed = await sse(`${base}/api/stream`, { ...as('viewer'), 'last-event-id': last.id! });
    const missed = await resumed.until((m) => m.event === 'breaker:closed');
    const runIds = new Set(missed.filter((m) => m.event.startsWith('run:')).map((m) => m.data.runId));
    assert.deepEqual([...runIds], [second.id], 'nothing of the first run again, all of the second');
    assert.deepEqual(
      missed.filter((m) => m.event.startsWith('run:')).map((m) => m.data.seq),
      (await server.context.store.events(second.id))
        .filter((e) => e.type.startsWith('run:'))
        .map((e) => e.seq),
    );
    resumed.close();
  } finally {
    await server.close();
  }
});

test('/api/stream loses nothing committed while a new client is being joined', async () => {
  const server = await liveServer({ worker: false });
  // The parked counts are the last read before a client joins: held there while a run starts and
  // the shared reader sends its event to the clients already joined.
  const store = server.context.store;
  const count = store.parkedCounts.bind(store);
  const feed = store.runFeed.bind(store);
  let held: (() => void) | undefined;
  let holding = false;
  let entered!: () => void;
  const inCount = new Promise<void>((resolve) => {
    entered = resolve;
  });
  store.parkedCounts = async () => {
    if (holding) {
      holding = false;
      entered();
      await new Promise<void>((resolve) => {
        held = resolve;
      });
    }
    return count();
  };
  let runId: string | undefined;
  let readerSent!: () => void;
  const sent = new Promise<void>((resolve) => {
    readerSent = resolve;
  });
  store.runFeed = async (after, limit) => {
    const page = await feed(after, limit);
    if (runId !== undefined && page.some((e) => e.runId === runId)) readerSent();
    return page;
  };
  try {
    const base = await listen(server.app);
    holding = true;
    const joining = sse(`${base}/api/stream`);
    await inCount;
    runId = (await server.engine.start('greet', { name: 'during the join' })).id;
    await sent;
    held!();
    const stream = await joining;
    const got = await stream.until((m) => m.event === 'run:queued' && m.data.runId === runId);
    assert.equal(got.filter((m) => m.event === 'run:queued').length, 1, 'once');
    stream.close();
  } finally {
    held?.();
    await server.close();
  }
});

test("/api/stream resumes when nothing after the client's last run event is a run event", async () => {
  // A step that runs until let go: its step:started is the newest event when the client resumes.
  let letGo!: () => void;
  const held = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  const holding = defineWorkflow({ name: 'holding' }, async (ctx) => ctx.step('hold', () => held));
  const server = await testServer({
    workflows: [holding],
    settings: { rateLimit: false, maxEventLoopDelayMs: 60_000 },
  });
  // Reads of the feed, counted: a resuming client used to read an empty page again and again.
  const store = server.context.store;
  const feed = store.runFeed.bind(store);
  let reads = 0;
  store.runFeed = async (after, limit) => {
    reads++;
    await new Promise((r) => setImmediate(r));
    return feed(after, limit);
  };
  try {
    const base = await listen(server.app);
    const { id } = await server.engine.start('holding', null);
    const deadline = Date.now() + WAIT_MS;
    while (!(await store.events(id)).some((e) => e.type === 'step:started')) {
      if (Date.now() > deadline) throw new Error('the step never started');
      await new Promise((r) => setTimeout(r, 10));
    }
    const lastRun = (await store.events(id)).filter((e) => e.type.startsWith('run:')).at(-1)!;
    reads = 0;
    const resumed = await sse(`${base}/api/stream?lastEventId=${lastRun.seq}.0`);
    await new Promise((r) => setTimeout(r, 100));
    letGo();
    const got = await resumed.until((m) => m.event === 'run:completed' && m.data.runId === id);
    assert.equal(got.filter((m) => m.event === 'run:completed').length, 1);
    assert.ok(reads < 50, `the feed was read ${reads} times`);
    resumed.close();
  } finally {
    letGo();
    await server.close();
  }
});

test('/api/stream sends a gap marker when the dependency events a client missed left the ring', async () => {
  const server = await liveServer();
  const app = await liveApp(server, { dependencyHistory: 2 });
  try {
    const base = await listen(app);
    const stream = await sse(`${base}/api/stream`);
    const breaker = server.registry.breaker('payments')!;
    breaker.isolate();
    const first = (await stream.until((m) => m.event === 'breaker:isolated')).at(-1);
    stream.close();
    for (let i = 0; i < 2; i++) {
      breaker.reset();
      breaker.isolate();
    }
    const resumed = await sse(`${base}/api/stream?lastEventId=${first!.id}`);
    const [gap, ...kept] = await resumed.until((m) => m.event === 'breaker:isolated');
    assert.equal(gap!.event, 'gap');
    const [, dep] = first!.id!.split('.').map(Number) as [number, number];
    assert.deepEqual(gap!.data, { dependencies: { from: dep + 1, to: dep + 2 } });
    assert.deepEqual(
      kept.map((m) => m.event),
      ['breaker:closed', 'breaker:isolated'],
    );
    resumed.close();
    // The gap carries an id past what was lost: resuming from it is not told of the gap again.
    assert.equal(gap!.id, `${first!.id!.split('.')[0]}.${dep + 2}`);
    const again = await sse(`${base}/api/stream?lastEventId=${gap!.id}`);
    const next = await again.until((m) => m.event === 'breaker:isolated');
    assert.deepEqual(
      next.map((m) => m.event),
      ['breaker:closed', 'breaker:isolated'],
    );
    again.close();
  } finally {
    await app.close();
    await server.close();
  }
});

test('an unknown run is a 404 problem before any stream starts, on SSE and WebSocket', async () => {
  const server = await liveServer();
  try {
    const base = await listen(server.app);
    const response = await fetch(`${base}/api/runs/no-such-run/stream`, { headers: as('viewer') });
    assert.equal(response.status, 404);
    assert.match(response.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal(((await response.json()) as { code: string }).code, 'NOT_FOUND');

    const socket = new WebSocket(`${base.replace('http', 'ws')}/api/runs/no-such-run/ws`, {
      headers: as('viewer'),
    });
    socket.on('error', () => {});
    const [, upgrade] = (await once(socket, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(upgrade.statusCode, 404);
    socket.terminate();

    const bad = await fetch(`${base}/api/stream?lastEventId=nope`, { headers: as('viewer') });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'VALIDATION_FAILED');
  } finally {
    await server.close();
  }
});

test('the streams need a viewer key', async () => {
  const server = await liveServer();
  try {
    const routes = routeTable(server.app).filter((r) => r.method === 'GET');
    for (const url of ['/api/runs/:id/stream', '/api/runs/:id/ws', '/api/stream']) {
      assert.equal(routes.find((r) => r.url === url)?.access, 'viewer', url);
    }
    const base = await listen(server.app);
    const { id } = await server.engine.start('greet', { name: 'ada' });
    for (const path of [`/api/runs/${id}/stream`, '/api/stream']) {
      assert.equal((await fetch(`${base}${path}`)).status, 401, path);
    }
    const socket = new WebSocket(`${base.replace('http', 'ws')}/api/runs/${id}/ws`);
    socket.on('error', () => {});
    const [, upgrade] = (await once(socket, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(upgrade.statusCode, 401);
    socket.terminate();
  } finally {
    await server.close();
  }
});

test('the plugin refuses invalid options, naming the field', async () => {
  const server = await liveServer({ worker: false });
  try {
    for (const [field, value] of [
      ['pingIntervalMs', 0],
      ['maxBufferBytes', 1.5],
      ['pollMs', Number.NaN],
    ] as const) {
      const app = Fastify();
      app.register(livePlugin, { context: server.context, [field]: value });
      await assert.rejects(
        async () => {
          await app.ready();
        },
        (error: Error & { code?: string }) =>
          error.code === 'BULWARK_INVALID_OPTIONS' && error.message.startsWith(`live.${field}:`),
      );
      await app.close();
    }
  } finally {
    await server.close();
  }
});
