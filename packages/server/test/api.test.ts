// The REST API through its public surface (Fastify's inject) on a real SQLite store: starting,
// listing, paging, acting on runs, and the problems bad input gets.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defineWorkflow } from '@bulwark/workflow';
import { as, greet, type TestServer, testServer } from './server-support.ts';

/** Fails until `flaky.heal()`; then a retry of the same run completes. */
const flaky = (() => {
  let healed = false;
  const workflow = defineWorkflow({ name: 'flaky', steps: ['first', 'second'] }, async (ctx) => {
    const first = await ctx.step('first', () => 'one');
    const second = await ctx.step('second', { retry: false }, () => {
      if (!healed) throw Object.assign(new Error('not yet'), { permanent: true });
      return 'two';
    });
    return [first, second];
  });
  return { workflow, heal: () => void (healed = true) };
})();

let server: TestServer;
before(async () => {
  server = await testServer({ workflows: [greet, flaky.workflow] });
});
after(() => server.close());

const operator = as('operator');
const viewer = as('viewer');

async function start(name: string, body: unknown, headers: Record<string, string> = {}) {
  return server.app.inject({
    method: 'POST',
    url: `/api/workflows/${name}/runs`,
    payload: body as object,
    headers: { ...operator, ...headers },
  });
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const runOf = async (id: string) =>
  (await server.app.inject({ url: `/api/runs/${id}`, headers: viewer })).json();

describe('workflows', () => {
  test('lists the registered workflows with their declared steps', async () => {
    const r = await server.app.inject({ url: '/api/workflows', headers: viewer });
    assert.equal(r.statusCode, 200);
    const greetInfo = r.json().items.find((w: { name: string }) => w.name === 'greet');
    assert.deepEqual(greetInfo, {
      name: 'greet',
      version: '1',
      versions: ['1'],
      description: 'Says hello, then waits for a reply',
      steps: ['hello', 'reply'],
    });
  });

  test('an unknown workflow is a 404 problem', async () => {
    const r = await server.app.inject({ url: '/api/workflows/nope', headers: viewer });
    assert.equal(r.statusCode, 404);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.equal(r.json().code, 'NOT_FOUND');
    assert.equal((await start('nope', {})).statusCode, 404);
  });
});

describe('starting runs', () => {
  test('201 with the run and its location; durable before the answer', async () => {
    const r = await start('greet', { input: { name: 'ada' }, priority: 'high' });
    assert.equal(r.statusCode, 201);
    const run = r.json();
    // Relative to the request's path, so it stays under a reverse proxy's prefix (e2e-prefix.test.ts).
    assert.equal(r.headers.location, `../../../api/runs/${run.id}`);
    assert.equal(
      new URL(r.headers.location!, 'http://h/api/workflows/greet/runs').pathname,
      `/api/runs/${run.id}`,
    );
    assert.equal(run.workflow, 'greet');
    assert.equal(run.priority, 'high');
    assert.deepEqual(run.input, { name: 'ada' });
    const done = await until(
      () => runOf(run.id),
      (x) => x.status === 'completed',
      'completion',
    );
    assert.deepEqual(done.output, { hello: 'hello ada', reply: 'none' });
    assert.deepEqual(
      done.steps.map((s: { name: string }) => s.name),
      ['hello'],
    );
  });

  test('the same Idempotency-Key returns the first run with 200; a different input with it is a 409', async () => {
    const first = await start('greet', { input: { name: 'bo' } }, { 'idempotency-key': 'order-17' });
    const again = await start('greet', { input: { name: 'bo' } }, { 'idempotency-key': 'order-17' });
    assert.equal(first.statusCode, 201);
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().id, first.json().id);
    const other = await start('greet', { input: { name: 'cy' } }, { 'idempotency-key': 'order-17' });
    assert.equal(other.statusCode, 409);
    assert.equal(other.json().code, 'CONFLICT');
    assert.equal(other.json().runId, first.json().id);
  });

  test('the same Idempotency-Key with the same input in another key order is the same request', async () => {
    const first = await start(
      'greet',
      { input: { name: 'di', id: 1, tags: [{ b: 2, a: 1 }] } },
      { 'idempotency-key': 'order-18' },
    );
    const again = await start(
      'greet',
      { input: { tags: [{ a: 1, b: 2 }], id: 1, name: 'di' } },
      { 'idempotency-key': 'order-18' },
    );
    assert.equal(first.statusCode, 201);
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().id, first.json().id);
    // Arrays keep their order: a different order is a different input.
    const other = await start(
      'greet',
      { input: { name: 'di', id: 1, tags: [{ a: 1 }, { b: 2 }] } },
      { 'idempotency-key': 'order-18' },
    );
    assert.equal(other.statusCode, 409);
  });

  test('a body nested deeper than 128 levels is a 400 naming where, not a 500', async () => {
    // Built as text: too deep for the test's own JSON.stringify.
    const r = await server.app.inject({
      method: 'POST',
      url: '/api/workflows/greet/runs',
      payload: `{"input":${'['.repeat(50_000)}"bottom"${']'.repeat(50_000)}}`,
      headers: { ...operator, 'content-type': 'application/json' },
    });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().code, 'VALIDATION_FAILED');
    const [problem] = r.json().errors;
    assert.equal(problem.pointer, `#/body/input${'/0'.repeat(127)}`);
    assert.match(problem.detail, /nested deeper than 128 levels/);
    let fine: unknown = 'bottom';
    for (let i = 0; i < 100; i++) fine = { next: fine };
    assert.equal((await start('greet', { input: fine })).statusCode, 201);
  });

  test('bad input names each field it got wrong', async () => {
    const r = await start('greet', { input: 1, priority: 'asap', extra: true, timeoutMs: -5 });
    assert.equal(r.statusCode, 400);
    const pointers = r
      .json()
      .errors.map((e: { pointer: string }) => e.pointer)
      .sort();
    assert.deepEqual(pointers, ['#/body/extra', '#/body/priority', '#/body/timeoutMs']);
    const malformed = await server.app.inject({
      method: 'POST',
      url: '/api/workflows/greet/runs',
      payload: '{"input": ',
      headers: { ...operator, 'content-type': 'application/json' },
    });
    assert.equal(malformed.statusCode, 400);
    assert.equal(malformed.json().code, 'MALFORMED_BODY');
  });

  test('dependsOn an unknown run is a 400 naming the entry', async () => {
    const parent = (await start('greet', { input: { name: 'p', wait: true } })).json();
    const r = await start('greet', { input: { name: 'c' }, dependsOn: [parent.id, 'no-such-run'] });
    assert.equal(r.statusCode, 400);
    assert.deepEqual(r.json().errors, [
      { pointer: '#/body/dependsOn/1', detail: 'no run with id "no-such-run"' },
    ]);
  });

  test('a run that depends on another waits for it', async () => {
    const parent = (await start('greet', { input: { name: 'p', wait: true } })).json();
    const child = (await start('greet', { input: { name: 'c' }, dependsOn: [parent.id] })).json();
    assert.equal(child.pendingParents, 1);
    await until(
      () => runOf(parent.id),
      (x) => x.status === 'waiting',
      'the parent to wait',
    );
    assert.equal((await runOf(child.id)).status, 'queued');
    const sent = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${parent.id}/events`,
      payload: { name: 'reply', payload: 'go' },
      headers: operator,
    });
    assert.equal(sent.statusCode, 202);
    await until(
      () => runOf(child.id),
      (x) => x.status === 'completed',
      'the child to complete',
    );
  });
});

describe('listing runs', () => {
  test('filters by status and workflow and pages with a cursor, newest first, without repeats', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await start('flaky', { input: i })).json().id);
    await until(
      async () =>
        (await server.app.inject({ url: '/api/runs?workflow=flaky&status=failed', headers: viewer })).json()
          .items.length,
      (n) => n >= 5,
      'five failed runs',
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `/api/runs?workflow=flaky&status=failed,compensated&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await server.app.inject({ url: q, headers: viewer })).json();
      assert.ok(page.items.length <= 2);
      for (const run of page.items) {
        assert.equal(run.workflow, 'flaky');
        assert.equal(run.status, 'failed');
        seen.push(run.id);
      }
      cursor = page.nextCursor;
    } while (cursor !== null);
    assert.equal(new Set(seen).size, seen.length);
    assert.deepEqual(seen.slice(0, 5), [...ids].reverse());
  });

  test('a bad status or cursor is a 400 naming the query field', async () => {
    const bad = await server.app.inject({ url: '/api/runs?status=done', headers: viewer });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().errors[0].pointer, '#/query/status/0');
    const cursor = await server.app.inject({ url: '/api/runs?cursor=forged', headers: viewer });
    assert.equal(cursor.statusCode, 400);
    assert.equal(cursor.json().errors[0].pointer, '#/query/cursor');
  });

  test('pages by offset as by cursor, each page still giving the next cursor', async () => {
    for (let i = 0; i < 5; i++) await start('flaky', { input: i });
    const list = async (q: string) => {
      const r = await server.app.inject({ url: `/api/runs?workflow=flaky&limit=2${q}`, headers: viewer });
      assert.equal(r.statusCode, 200, r.body);
      // Ids only: the runs just started are still changing status between the two reads.
      const page = r.json() as { items: { id: string }[]; nextCursor: string | null };
      return { ids: page.items.map((run) => run.id), nextCursor: page.nextCursor };
    };
    const total = (await server.app.inject({ url: '/api/runs/count?workflow=flaky', headers: viewer })).json()
      .total as number;
    const first = await list('');
    const second = await list(`&cursor=${first.nextCursor}`);
    const byOffset = await list('&offset=2');
    assert.deepEqual(byOffset, second, 'offset 2 is the page after the first by cursor, next cursor and all');
    // Continuing by cursor from an offset page gives the page at the following offset.
    assert.ok(total >= 5 && byOffset.nextCursor !== null);
    assert.deepEqual(await list(`&cursor=${byOffset.nextCursor}`), await list('&offset=4'));
    assert.deepEqual(await list(`&offset=${total}`), { ids: [], nextCursor: null });
  });

  test('an offset with a cursor, negative, fractional or too large is a 400 naming the query field', async () => {
    const some = (await server.app.inject({ url: '/api/runs?limit=1', headers: viewer })).json().items[0];
    assert.ok(some, 'a run to give as cursor');
    for (const q of [`offset=1&cursor=${some.id}`, 'offset=-1', 'offset=1.5', 'offset=1000001', 'offset=x']) {
      const r = await server.app.inject({ url: `/api/runs?${q}`, headers: viewer });
      assert.equal(r.statusCode, 400, q);
      assert.equal(r.json().errors[0].pointer, '#/query/offset', q);
    }
  });
});

describe('acting on runs', () => {
  test('the timeline pages by seq', async () => {
    const run = (await start('greet', { input: { name: 't' } })).json();
    await until(
      () => runOf(run.id),
      (x) => x.status === 'completed',
      'completion',
    );
    const all = (await server.app.inject({ url: `/api/runs/${run.id}/timeline`, headers: viewer })).json();
    const types = all.items.map((e: { type: string }) => e.type);
    assert.equal(types[0], 'run:queued');
    assert.equal(types.at(-1), 'run:completed');
    const first = (
      await server.app.inject({ url: `/api/runs/${run.id}/timeline?limit=1`, headers: viewer })
    ).json();
    assert.equal(first.items.length, 1);
    const rest = (
      await server.app.inject({ url: `/api/runs/${run.id}/timeline?after=${first.next}`, headers: viewer })
    ).json();
    assert.deepEqual([...first.items, ...rest.items], all.items);
  });

  test('a failed step shows what failed, never where in the code (no stack)', async () => {
    const run = (await start('greet', { input: { name: 'f', fail: true } })).json();
    const failed = await until(
      () => runOf(run.id),
      (x) => x.status === 'failed',
      'failure',
    );
    assert.equal(failed.error.message, 'boom');
    assert.equal(failed.error.stack, undefined);
    const timeline = (
      await server.app.inject({ url: `/api/runs/${run.id}/timeline`, headers: viewer })
    ).json();
    const stepFailed = timeline.items.find((e: { type: string }) => e.type === 'step:failed');
    assert.equal(stepFailed.data.error.message, 'boom');
    assert.doesNotMatch(JSON.stringify(timeline), /"stack"/);
  });

  test('cancel: a waiting run is cancelled; a finished one is a 409; an unknown one a 404', async () => {
    const run = (await start('greet', { input: { name: 'w', wait: true } })).json();
    await until(
      () => runOf(run.id),
      (x) => x.status === 'waiting',
      'waiting',
    );
    const r = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${run.id}/cancel`,
      payload: { reason: 'test' },
      headers: operator,
    });
    assert.equal(r.statusCode, 202);
    await until(
      () => runOf(run.id),
      (x) => x.status === 'cancelled',
      'cancelled',
    );
    const again = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${run.id}/cancel`,
      headers: operator,
    });
    assert.equal(again.statusCode, 409);
    const unknown = await server.app.inject({
      method: 'POST',
      url: '/api/runs/nope/cancel',
      headers: operator,
    });
    assert.equal(unknown.statusCode, 404);
  });

  test('retry: a failed run runs again, keeping its completed step', async () => {
    const run = (await start('flaky', { input: 'retry-me' })).json();
    const failed = await until(
      () => runOf(run.id),
      (x) => x.status === 'failed',
      'failure',
    );
    const firstStep = failed.steps.find((s: { name: string }) => s.name === 'first');
    const notYet = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${run.id}/events`,
      payload: { name: 'x' },
      headers: operator,
    });
    assert.equal(notYet.statusCode, 409, 'a failed run takes no events');
    flaky.heal();
    const r = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${run.id}/retry`,
      headers: operator,
    });
    assert.equal(r.statusCode, 202);
    const done = await until(
      () => runOf(run.id),
      (x) => x.status === 'completed',
      'completion after retry',
    );
    assert.deepEqual(done.output, ['one', 'two']);
    assert.deepEqual(
      done.steps.find((s: { name: string }) => s.name === 'first'),
      firstStep,
      'the completed step was not run again',
    );
    const twice = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${run.id}/retry`,
      headers: operator,
    });
    assert.equal(twice.statusCode, 409, 'a completed run is not retried');
    const unknown = await server.app.inject({
      method: 'POST',
      url: '/api/runs/nope/retry',
      headers: operator,
    });
    assert.equal(unknown.statusCode, 404);
  });

  test('operator actions land in the audit log with who did them', async () => {
    const r = await server.app.inject({ url: '/api/audit?limit=1000', headers: as('admin') });
    assert.equal(r.statusCode, 200);
    const actions = new Set(r.json().items.map((e: { action: string }) => e.action));
    for (const a of ['run.start', 'run.cancel', 'run.retry', 'run.event']) assert.ok(actions.has(a), a);
    const entry = r.json().items.find((e: { action: string }) => e.action === 'run.cancel');
    assert.equal(entry.actor, 'otto');
    assert.equal(entry.role, 'operator');
    assert.equal(entry.outcome, 'ok');
  });

  test('isolate and reset a dependency’s circuit', async () => {
    const isolated = await server.app.inject({
      method: 'POST',
      url: '/api/dependencies/payments/isolate',
      headers: operator,
    });
    assert.equal(isolated.statusCode, 200);
    assert.equal(isolated.json().state, 'isolated');
    const reset = await server.app.inject({
      method: 'POST',
      url: '/api/dependencies/payments/reset',
      headers: operator,
    });
    assert.equal(reset.json().state, 'closed');
    const noBreaker = await server.app.inject({
      method: 'POST',
      url: '/api/dependencies/cache/isolate',
      headers: operator,
    });
    assert.equal(noBreaker.statusCode, 409);
  });

  test('config reload without a file is a 409', async () => {
    const r = await server.app.inject({ method: 'POST', url: '/api/config/reload', headers: as('admin') });
    assert.equal(r.statusCode, 409);
  });
});

describe('OpenAPI', () => {
  test('documents every API route, and every $ref resolves', async () => {
    const doc = (await server.app.inject({ url: '/api/openapi.json' })).json();
    assert.equal(doc.openapi, '3.1.0');
    for (const [path, method] of [
      ['/api/runs', 'get'],
      ['/api/runs/{id}', 'get'],
      ['/api/runs/{id}/timeline', 'get'],
      ['/api/runs/{id}/cancel', 'post'],
      ['/api/runs/{id}/retry', 'post'],
      ['/api/runs/{id}/events', 'post'],
      ['/api/workflows', 'get'],
      ['/api/workflows/{name}/runs', 'post'],
      ['/api/dependencies', 'get'],
      ['/api/dependencies/{name}/isolate', 'post'],
      ['/api/audit', 'get'],
      ['/health/ready', 'get'],
    ] as const) {
      assert.ok(doc.paths[path]?.[method], `${method} ${path}`);
    }
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const ref of refs) {
      const name = ref.slice('"$ref":"#/components/schemas/'.length, -1);
      assert.ok(doc.components.schemas[name], `unresolved ${ref}`);
    }
    const start = doc.paths['/api/workflows/{name}/runs'].post;
    assert.ok(
      start.parameters.some(
        (p: { name: string; in: string }) => p.name === 'idempotency-key' && p.in === 'header',
      ),
    );
    assert.ok(start.requestBody);
  });

  test('documents what each route really answers: media types, 101, headers, body problems, required bodies', async () => {
    const doc = (await server.app.inject({ url: '/api/openapi.json' })).json();
    const media = (path: string, status: string) =>
      Object.keys(doc.paths[path].get.responses[status].content);
    assert.deepEqual(media('/api/runs/{id}/stream', '200'), ['text/event-stream']);
    assert.deepEqual(media('/api/stream', '200'), ['text/event-stream']);
    assert.match(media('/metrics', '200').join(), /^text\/plain; version=0\.0\.4/);
    assert.deepEqual(media('/health/ready', '503'), ['application/health+json']);
    // What the server sends, checked against what the document says.
    const metrics = await server.app.inject({ url: '/metrics', headers: viewer });
    assert.equal(metrics.headers['content-type'], media('/metrics', '200')[0]);

    const ws = doc.paths['/api/runs/{id}/ws'].get.responses;
    assert.deepEqual(ws['101'], { description: 'Switching Protocols: the WebSocket is open' });
    assert.equal(ws['200'], undefined);
    assert.ok(ws['426'], 'a plain GET is a 426 problem');

    for (const path of ['/api/runs/{id}/stream', '/api/stream', '/api/runs/{id}/ws']) {
      const params = doc.paths[path].get.parameters as { name: string; in: string }[];
      assert.ok(
        params.some((p) => p.name === 'last-event-id' && p.in === 'header'),
        `${path} takes Last-Event-ID`,
      );
      assert.ok(params.some((p) => p.name === 'lastEventId' && p.in === 'query'));
    }

    const bodies: [string, string, boolean][] = [];
    for (const [path, operations] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(operations)) {
        if (op.requestBody === undefined) continue;
        bodies.push([path, method, op.requestBody.required]);
        for (const status of ['413', '415']) {
          assert.equal(
            op.responses[status]?.content?.['application/problem+json']?.schema?.$ref,
            '#/components/schemas/Problem',
            `${method} ${path} lists ${status}`,
          );
        }
      }
    }
    const required = (path: string) => bodies.find(([p, m]) => p === path && m === 'post')?.[2];
    assert.equal(required('/api/runs/{id}/events'), true);
    assert.equal(required('/api/workflows/{name}/runs'), true);
    assert.equal(required('/api/runs/{id}/cancel'), false, 'its body may be left out');
    assert.equal(required('/api/dependencies/{name}/isolate'), false);
    // What the server does: no body to a route whose body is required is a 400.
    const run = (await start('greet', { input: { name: 'doc', wait: true } })).json();
    const empty = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${run.id}/events`,
      headers: operator,
    });
    assert.equal(empty.statusCode, 400);
    const cancel = await server.app.inject({
      method: 'POST',
      url: `/api/runs/${run.id}/cancel`,
      headers: operator,
    });
    assert.equal(cancel.statusCode, 202);
  });

  test('the reference page is HTML without scripts', async () => {
    const r = await server.app.inject({ url: '/api/docs' });
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    assert.match(r.body, /POST<\/span> <code>\/api\/workflows\/\{name\}\/runs<\/code>/);
    assert.doesNotMatch(r.body, /<script/i);
  });
});
