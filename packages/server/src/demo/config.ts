// The demo's configuration, as a bulwark.yaml would declare it (parsed by the same loader), and
// its workflow: three dependencies with every policy between them, a group with a fallback, and
// an order workflow whose steps park behind an open breaker and resume when it closes.
import { defineWorkflow, type StepContext, type WorkflowDefinition } from '@bulwark/workflow';
import type { UpstreamName } from './upstreams.ts';

/** The demo workflow's name. */
export const DEMO_WORKFLOW = 'demo-order';
/** The failover group in front of `search`, whose fallback answers when search cannot. */
export const DEMO_GROUP = 'catalog';

/** How long a breaker stays open: a twentieth of the demo, so a short demo sees it close again. */
function breakerOpenMs(durationMs: number): number {
  return Math.min(5_000, Math.max(500, Math.round(durationMs / 20)));
}

/** The configuration text, with the upstreams' URLs written in; `port` and `dataDir` come from flags. */
export function demoConfig(urls: Readonly<Record<UpstreamName, string>>, durationMs: number): string {
  const open = `${breakerOpenMs(durationMs)}ms`;
  // Enough sockets that no request waits for one: every request sent is one the upstream sees.
  const http = (url: string) => `{ baseUrl: "${url}", connections: 128 }`;
  return `# Written by \`bulwark demo\`: its dependencies on three misbehaving upstreams on loopback.
server:
  logLevel: warn
  concurrency: 20
  shutdownGrace: 5s
dependencies:
  inventory:
    kind: http
    description: Stock levels (the demo slows it down past its timeout)
    timeout: 300ms
    retry: { maxAttempts: 2, base: 50ms, jitter: 0.2 }
    bulkhead: { maxConcurrent: 4, maxQueue: 4, queueTimeout: 150ms }
    breaker: { window: { kind: count, size: 20 }, failureRate: 0.5, minimumCalls: 10, open: ${open} }
    http: ${http(urls.inventory)}
  payments:
    kind: http
    critical: true
    description: Card payments (the demo resets its connections, then takes it down)
    timeout: 500ms
    retry: { maxAttempts: 3, base: 40ms, max: 400ms, jitter: 0.2 }
    breaker: { window: { kind: count, size: 10 }, failureRate: 0.5, minimumCalls: 5, open: ${open}, halfOpen: { probes: 1 } }
    http: ${http(urls.payments)}
  search:
    kind: http
    description: Product search (the demo makes it hang, then fail half its requests)
    timeout: 250ms
    retry: { maxAttempts: 2, base: 20ms }
    rateLimit: { tokenBucket: { tokens: 1, per: 80ms, burst: 4 } }
    breaker: { window: { kind: count, size: 20 }, failureRate: 0.5, minimumCalls: 10, open: ${open} }
    http: ${http(urls.search)}
groups:
  ${DEMO_GROUP}:
    providers: [search]
    fallback: { value: { items: [], stale: true } }
`;
}

export interface DemoOrderInput {
  order: number;
}

/** An answer of 400 and above keeps its status, so the pipelines judge it: 503 is retried. */
class UpstreamStatusError extends Error {
  override readonly name = 'UpstreamStatusError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Step retries, on top of the dependency's own: few and quick, so a short demo sees runs end. */
const STEP_RETRY = { maxAttempts: 3, baseMs: 200, maxMs: 1_000, jitter: 0.2 };

/** The order workflow: reserve stock, charge, then recommend (through the group, so a fallback answers). */
export function demoWorkflow(
  urls: Readonly<Record<UpstreamName, string>>,
): WorkflowDefinition<DemoOrderInput, unknown> {
  const call = async (base: string, path: string, s: StepContext, method = 'POST'): Promise<unknown> => {
    const response = await fetch(new URL(path, base), {
      method,
      signal: s.signal,
      headers: { 'idempotency-key': s.idempotencyKey },
    });
    const body = (await response.json().catch(() => null)) as unknown;
    if (!response.ok) throw new UpstreamStatusError(`${method} ${path}: ${response.status}`, response.status);
    return body;
  };
  return defineWorkflow(
    {
      name: DEMO_WORKFLOW,
      version: '1',
      description: 'Reserves stock, charges the card (parked while the payments breaker is open), recommends',
      steps: ['reserve', 'charge', 'recommend'],
    },
    async (ctx, input: DemoOrderInput) => {
      await ctx.step('reserve', { dependency: 'inventory', retry: STEP_RETRY }, (s) =>
        call(urls.inventory, '/reserve', s),
      );
      ctx.progress(33, 'reserved');
      await ctx.step('charge', { dependency: 'payments', retry: STEP_RETRY }, (s) =>
        call(urls.payments, '/charges', s),
      );
      ctx.progress(66, 'charged');
      const picks = await ctx.step('recommend', { dependency: DEMO_GROUP, retry: false }, (s) =>
        call(urls.search, '/items', s, 'GET'),
      );
      return { order: input.order, picks };
    },
  );
}
