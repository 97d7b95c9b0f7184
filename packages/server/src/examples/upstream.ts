// A small, flaky pet shop API on loopback, for the built-in examples: occasional 503s and some
// latency (what the example dependencies' retries and breakers are for), and a payments endpoint
// that honours Idempotency-Key, so a retried charge is never taken twice.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ExampleUpstreamOptions {
  /** The share of calls answered 503 (not `/health`). @default 0.08 */
  failureRate?: number;
  /** Each answer waits a random time up to this. @default 60 */
  maxLatencyMs?: number;
  /** @default Math.random */
  random?: () => number;
}

export interface ExampleUpstream {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  close(): Promise<void>;
}

interface Charge {
  id: string;
  amountCents: number;
  refunded: boolean;
}

/** A page with the usual chrome around its content, for the `extract` step to see through. */
const ADOPTION_GUIDE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Adopting a pet: a short guide</title>
  <style>body { font-family: sans-serif }</style>
  <script>console.log('analytics')</script>
</head>
<body>
  <header><nav><a href="/">Home</a> | <a href="/pets">Pets</a></nav></header>
  <main>
    <h1>Adopting a pet</h1>
    <p>Every pet in the shop is <strong>vaccinated</strong> and looking for a home.
       See <a href="/pets">the pets available today</a>.</p>
    <h2>How it works</h2>
    <ol>
      <li>Reserve a pet: it is held for you.</li>
      <li>Pay the adoption fee (<em>refunded</em> if anything goes wrong).</li>
      <li>Take your new friend home.</li>
    </ol>
    <blockquote><p>The best pet is the one that picks you.</p></blockquote>
  </main>
  <footer>Pet shop example, served by Bulwark for its built-in workflows.</footer>
</body>
</html>
`;

const PETS = ['rex', 'tom', 'luna', 'milo', 'bella', 'coco', 'max', 'kiki'];

/** Starts the upstream on 127.0.0.1 and a free port. */
export async function startExampleUpstream(options: ExampleUpstreamOptions = {}): Promise<ExampleUpstream> {
  const failureRate = options.failureRate ?? 0.08;
  const maxLatencyMs = options.maxLatencyMs ?? 60;
  const random = options.random ?? Math.random;
  /** pet → hold id, while reserved or adopted. */
  const holds = new Map<string, string>();
  const adopted = new Set<string>();
  const charges = new Map<string, Charge>();
  /** Idempotency-Key → charge id: the same key answers with the same charge. */
  const byKey = new Map<string, string>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const path = url.pathname;
    if (path === '/health') return send(res, 200, { status: 'pass' });
    await new Promise((r) => setTimeout(r, Math.floor(random() * maxLatencyMs)));
    if (random() < failureRate) {
      return send(res, 503, { error: 'temporarily unavailable' }, { 'retry-after': '0' });
    }
    const body = req.method === 'POST' ? await readJson(req) : {};
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && path === '/pets') {
      return send(
        res,
        200,
        PETS.map((name) => ({
          name,
          status: adopted.has(name) ? 'adopted' : holds.has(name) ? 'reserved' : 'available',
        })),
      );
    }
    if (req.method === 'POST' && (m = /^\/pets\/([\w-]+)\/reserve$/.exec(path)) !== null) {
      const pet = m[1]!;
      if (!PETS.includes(pet)) return send(res, 404, { error: `no pet ${pet}` });
      const hold = holds.get(pet);
      // The same request repeated (a retry) gets its hold back; another adopter is refused.
      if (hold !== undefined && hold !== body.hold)
        return send(res, 409, { error: `${pet} is not available` });
      const id = typeof body.hold === 'string' ? body.hold : `hold-${randomUUID().slice(0, 8)}`;
      holds.set(pet, id);
      return send(res, 200, { pet, hold: id });
    }
    if (req.method === 'POST' && (m = /^\/pets\/([\w-]+)\/release$/.exec(path)) !== null) {
      if (!adopted.has(m[1]!)) holds.delete(m[1]!);
      return send(res, 200, { pet: m[1], status: 'available' });
    }
    if (req.method === 'POST' && (m = /^\/pets\/([\w-]+)\/adopt$/.exec(path)) !== null) {
      const pet = m[1]!;
      if (holds.get(pet) !== body.hold)
        return send(res, 409, { error: `no hold ${String(body.hold)} on ${pet}` });
      adopted.add(pet);
      return send(res, 200, { pet, status: 'adopted', adopter: body.adopter });
    }
    if (req.method === 'POST' && path === '/payments') {
      const key = req.headers['idempotency-key'];
      if (typeof key !== 'string' || key === '')
        return send(res, 400, { error: 'Idempotency-Key is required' });
      const known = byKey.get(key);
      if (known !== undefined) return send(res, 200, charges.get(known));
      const amountCents = Number(body.amountCents);
      if (!Number.isInteger(amountCents) || amountCents <= 0)
        return send(res, 400, { error: 'amountCents must be a positive integer' });
      // A card limit: a permanent refusal, which the workflow's saga then compensates.
      if (amountCents > 100_000) return send(res, 402, { error: 'card declined' });
      const charge: Charge = { id: `ch-${randomUUID().slice(0, 8)}`, amountCents, refunded: false };
      charges.set(charge.id, charge);
      byKey.set(key, charge.id);
      return send(res, 201, charge);
    }
    if (req.method === 'POST' && (m = /^\/payments\/([\w-]+)\/refund$/.exec(path)) !== null) {
      const charge = charges.get(m[1]!);
      if (charge === undefined) return send(res, 404, { error: `no charge ${m[1]}` });
      charge.refunded = true;
      return send(res, 200, charge);
    }
    if (req.method === 'GET' && path === '/reports/sales') {
      const all = [...charges.values()];
      return send(res, 200, {
        charges: all.length,
        refunded: all.filter((c) => c.refunded).length,
        revenueCents: all.filter((c) => !c.refunded).reduce((sum, c) => sum + c.amountCents, 0),
        adopted: adopted.size,
      });
    }
    if (req.method === 'POST' && path === '/notifications') return send(res, 202, { queued: true });
    if (req.method === 'GET' && path === '/pages/adoption-guide') {
      // The page the built-in site-to-document workflow fetches by default.
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(ADOPTION_GUIDE);
      return;
    }
    return send(res, 404, { error: `no route ${req.method} ${path}` });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => send(res, 500, { error: 'internal' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += chunk;
  try {
    const value = JSON.parse(text || '{}') as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
