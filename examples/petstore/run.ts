// The petstore of seed 004, for real: its five dependencies come from bulwark.yaml, the payment
// gateway is an HTTP server on loopback that refuses large charges, and the ML advisor scores pets
// in worker threads. Run with `npm run example:petstore`.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { BrokenCircuitError, BulkheadRejectedError, type DependencyStats } from '@bulwark/core';
import { openRegistry } from '@bulwark/server';

const log = (line = '') => process.stdout.write(`${line}\n`);

// The payment gateway: charges up to 1,000 go through; larger ones fail as a sick processor would.
const TOKEN = 'demo-token';
let gatewayRequests = 0;
const gateway = createServer((req, res) => {
  gatewayRequests++;
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
  });
  req.on('end', () => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401).end();
      return;
    }
    const { amount } = JSON.parse(body) as { amount: number };
    if (amount > 1_000) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('Payment amount exceeds processor limit');
      return;
    }
    res
      .writeHead(201, { 'content-type': 'application/json' })
      .end(JSON.stringify({ id: `ch_${gatewayRequests}` }));
  });
});
gateway.listen(0, '127.0.0.1');
await once(gateway, 'listening');
const { port } = gateway.address() as AddressInfo;

const opened = await openRegistry(join(import.meta.dirname, 'bulwark.yaml'), {
  env: {
    ...process.env,
    PAYMENT_GATEWAY_URL: `http://127.0.0.1:${port}`,
    PAYMENT_GATEWAY_TOKEN: TOKEN,
  },
});
const { registry } = opened;
log(`Loaded bulwark.yaml: ${registry.names.join(', ')}`);

// 1. Bulkhead isolation: 15 concurrent queries against a bulkhead of 10.
log();
log('1. 15 concurrent database queries against a bulkhead of 10');
const query = (id: number) =>
  registry.execute('petstore_database', 'get_pet', async ({ signal }) => {
    // A query that holds its connection for 50 ms (a real driver would take `signal`).
    await new Promise((resolve) => setTimeout(resolve, 50, { signal }));
    return { id, name: `pet-${id}` };
  });
const queries = await Promise.allSettled(Array.from({ length: 15 }, (_, i) => query(i)));
const ok = queries.filter((q) => q.status === 'fulfilled').length;
const refused = queries.filter(
  (q) => q.status === 'rejected' && q.reason instanceof BulkheadRejectedError,
).length;
log(`   ${ok} succeeded, ${refused} rejected by the bulkhead (protected the database from overload)`);

// 2. The payment breaker: three failing charges open it; the fourth never reaches the gateway.
log();
log('2. Payments: three charges the gateway fails, then one more');
const charge = (amount: number) =>
  registry.fetch('payment_gateway', '/charges', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ amount }),
    operation: 'process_payment',
  });
await (await charge(120)).json();
log(`   charge of 120: accepted (circuit ${registry.stats('payment_gateway').state})`);
for (let i = 1; i <= 3; i++) {
  const error = await charge(5_000).then(
    () => undefined,
    (e: Error) => e,
  );
  const s = registry.stats('payment_gateway');
  log(`   charge of 5000 #${i} failed: ${error?.message} -> circuit ${s.state}`);
}
const before = gatewayRequests;
const fastFail = await charge(80).then(
  () => undefined,
  (e: unknown) => e,
);
log(
  `   charge of 80: ${fastFail instanceof BrokenCircuitError ? `refused at once, retry after ${Math.round(fastFail.retryAfterMs / 1000)} s` : 'not refused?'}; ` +
    `requests that reached the gateway: ${gatewayRequests - before}`,
);

// 3. The ML advisor: CPU-bound scoring in worker threads while the event loop stays free.
log();
log('3. Six recommendation requests on the ML pool, with cache and queue calls alongside');
const pets = Array.from({ length: 40 }, (_, id) => ({
  id,
  species: id % 3 === 0 ? 'cat' : 'dog',
  price: 100 + ((id * 37) % 900),
}));
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const cache = new Map<string, string>([['catalogue', '40 pets']]);
const recommendations = Promise.all(
  Array.from({ length: 6 }, () =>
    registry.run<{ id: number }[]>('ml_advisor', 'recommend', {
      preferences: { species: 'cat', maxPrice: 400 },
      pets,
      count: 3,
    }),
  ),
);
let sideCalls = 0;
const started = performance.now();
const sideWork = (async () => {
  for (let i = 0; i < 20; i++) {
    await registry.execute('redis_cache', 'get_catalogue', () => cache.get('catalogue'));
    await registry.execute('event_queue', 'publish', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
    });
    sideCalls += 2;
  }
})();
const [best] = await Promise.all([recommendations, sideWork]);
delay.disable();
log(`   best pets for a cat lover: ${best[0]!.map((p) => `#${p.id}`).join(', ')}`);
log(
  `   ${sideCalls} cache and queue calls completed meanwhile (in ${Math.round(performance.now() - started)} ms); ` +
    `event loop delay at most ${(delay.max / 1e6).toFixed(0)} ms`,
);

// 4. Statistics and health, as the server will serve them.
log();
log('4. Statistics per dependency');
const row = (cells: string[]) => log(`   ${cells.map((c, i) => c.padEnd(i === 0 ? 18 : 10)).join('')}`);
row(['dependency', 'calls', 'ok', 'failed', 'rejected', 'p95 ms', 'circuit']);
for (const [name, s] of Object.entries(registry.allStats()) as [string, DependencyStats][]) {
  const p95 = s.calls.recent.latencyMs?.p95;
  row([
    name,
    String(s.calls.calls),
    String(s.calls.successes),
    String(s.calls.failures + s.calls.timeouts),
    String(s.calls.rejections),
    p95 === undefined ? '-' : p95.toFixed(1),
    s.state ?? '-',
  ]);
}
const health = await registry.health.report();
log();
log(`5. Health: ${health.status}`);
for (const [key, [entry]] of Object.entries(health.checks)) {
  log(`   ${key.padEnd(32)} ${entry!.status}${entry!.output ? ` (${entry!.output})` : ''}`);
}

await opened.close();
gateway.close();
