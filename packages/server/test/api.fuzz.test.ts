// No route answers 500 to any input: random methods, path segments, query strings, headers and
// bodies against every documented route of a real server, with an admin key (so input, not
// auth, is what is tested).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { as, type TestServer, testServer } from './server-support.ts';

let server: TestServer;
let routes: { method: string; path: string }[];
before(async () => {
  server = await testServer();
  const doc = (await server.app.inject({ url: '/api/openapi.json' })).json();
  routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
    Object.keys(ops)
      // Streams never end by themselves: their own tests cover their input.
      .filter(() => !/\/(stream|ws)$/.test(path))
      .map((method) => ({ method: method.toUpperCase(), path })),
  );
});
after(() => server.close());

const segment = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('greet', 'payments', 'cache', '0', '-1', '..', '%00', 'null', 'a'.repeat(300)),
);
const json = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record(
    {
      input: fc.jsonValue({ maxDepth: 2 }),
      priority: fc.oneof(fc.constantFrom('low', 'normal', 'critical'), fc.string()),
      dependsOn: fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
      name: fc.string({ maxLength: 10 }),
      reason: fc.string({ maxLength: 10 }),
      timeoutMs: fc.oneof(fc.integer(), fc.double()),
      // The timed isolation's length, as a duration or as ms.
      for: fc.oneof(fc.constantFrom('10m', '25h', '0s', '1.5s', 'soon'), fc.integer(), fc.string()),
      forMs: fc.oneof(fc.integer(), fc.double()),
    },
    { requiredKeys: [] },
  ),
);

test('no route answers 500 to any input', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 1_000 }),
      segment,
      fc.dictionary(
        fc.constantFrom(
          'status',
          'limit',
          'cursor',
          'offset',
          'after',
          'before',
          'workflow',
          'q',
          'window',
          'x',
        ),
        fc.oneof(
          fc.string({ maxLength: 30 }),
          // The run search's forms and the history's windows, well and badly formed.
          fc.constantFrom('input.url=https://x', 'input.=1', 'input.a..b=2', 'input.a', '5m', '60m', ' '),
        ),
      ),
      fc.oneof(
        json.map((v) => JSON.stringify(v)),
        fc.string({ maxLength: 50 }),
      ),
      fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', undefined),
      fc.option(fc.string({ maxLength: 30 })),
      async (pick, param, query, body, contentType, idempotencyKey) => {
        const route = routes[pick % routes.length]!;
        const url = route.path.replace(/\{\w+\}/g, encodeURIComponent(param));
        const headers: Record<string, string> = { ...as('admin') };
        if (contentType !== undefined) headers['content-type'] = contentType;
        if (idempotencyKey !== null) headers['idempotency-key'] = idempotencyKey;
        const r = await server.app.inject({
          method: route.method as 'GET',
          url,
          query,
          headers,
          ...(route.method === 'GET' ? {} : { payload: body }),
        });
        assert.ok(
          r.statusCode < 500,
          `${route.method} ${url} ${JSON.stringify(query)} ${body} → ${r.statusCode} ${r.body}`,
        );
        if (r.statusCode >= 400)
          assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
      },
    ),
    { numRuns: 400 },
  );
});
