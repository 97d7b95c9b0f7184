// One server for bench/server-probe-instructions.sh: Bulwark as `bulwark start` runs it, or (with
// SERVER=bare) a bare Fastify route with the same liveness body; HEADERS=1 gives the bare route
// the same security headers and request id. Prints its URL; closes on SIGTERM.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startServer } from '@bulwark/server';
import Fastify from 'fastify';

let url: string;
let close: () => Promise<void>;
if (process.env.SERVER === 'bare') {
  const bare = Fastify({ logger: false });
  const body =
    '{"status":"pass","checks":{"uptime":[{"componentType":"system","observedValue":2.5,"observedUnit":"s","status":"pass","time":"2026-11-23T02:19:05.123Z"}]}}';
  const headers = {
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'content-security-policy':
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  };
  let n = 0;
  if (process.env.HEADERS) {
    bare.addHook('onRequest', (_request, reply, done) => {
      reply.headers(headers);
      reply.header('x-request-id', `abcdefgh-${(n++).toString(36)}`);
      done();
    });
  }
  bare.get('/health/live', (_request, reply) => {
    reply.header('cache-control', 'no-store').type('application/health+json').send(body);
  });
  await bare.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(bare.server.address() as { port: number }).port}`;
  close = () => bare.close();
} else {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'bulwark-probe-'));
  const server = await startServer({
    port: 0,
    dataDir,
    examples: false,
    env: {
      BULWARK_API_KEYS: 'bench:operator:bench-operator-0123456789abcdefghij',
      BULWARK_SERVER__RATELIMIT: 'false',
      BULWARK_SERVER__LOGLEVEL: 'silent',
    },
    stdout: { write: () => true },
  });
  url = server.url;
  close = async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
console.log(url);
process.on('SIGTERM', async () => {
  await close();
  process.exit(0);
});
