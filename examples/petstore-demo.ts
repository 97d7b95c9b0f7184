// The petstore demo: a pet shop's checkout calls three simulated dependencies through Bulwark
// pipelines, under concurrent load and on the real clock, through a payment outage and a flash
// sale. Every live line below comes from a pipeline's event stream; the tables at the end come
// from the policies' own statistics.
//
//   npm run example:policies               about 13 s
//   npm run example:policies -- --fast     about 2 s (or BULWARK_DEMO_FAST=1); every duration × 0.15
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  type BulwarkEvent,
  bulkhead,
  circuitBreaker,
  constant,
  exponential,
  fallback,
  isTransient,
  type Pipeline,
  type PolicyDescription,
  pipeline,
  RetriesExhaustedError,
  retry,
  systemClock,
  TimeoutError,
  timeout,
} from '@bulwark/core';

const FAST = process.argv.includes('--fast') || process.env.BULWARK_DEMO_FAST === '1';
const SCALE = FAST ? 0.15 : 1;
/** A duration of the story, scaled so that the fast run tells the same story in less time. */
const ms = (n: number): number => Math.max(1, Math.round(n * SCALE));

// Seeded, so every run draws the same latencies and jitter; only the scheduler varies.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
const random = mulberry32(20_240_611);

// ---------------------------------------------------------------------------------------------
// The dependencies, simulated in process. They fail the way real ones do: by status code, by
// network error code, by stalling. Bulwark classifies them from those fields alone.

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Pet {
  id: string;
  name: string;
  priceCents: number;
}

const CATALOG: Pet[] = [
  { id: 'p1', name: 'Biscuit (beagle)', priceCents: 45_000 },
  { id: 'p2', name: 'Nimbus (ragdoll)', priceCents: 32_000 },
  { id: 'p3', name: 'Pickles (tortoise)', priceCents: 9_900 },
  { id: 'p4', name: 'Zazu (parrot)', priceCents: 21_000 },
];

/** The catalog cache: fast, but every 20th read stalls; it stops as soon as it is aborted. */
class CatalogCache {
  reads = 0;
  async get(signal: AbortSignal): Promise<Pet[]> {
    this.reads++;
    const stall = this.reads % 20 === 0;
    await systemClock.sleep(stall ? ms(1_000) : ms(2 + random() * 6), signal);
    return CATALOG;
  }
}

/** The inventory database: usually 30–80 ms, sometimes a slow query that ignores cancellation. */
class InventoryDb {
  queries = 0;
  async reserve(petId: string): Promise<{ petId: string; reservation: number }> {
    this.queries++;
    const slow = random() < 0.06;
    // No signal: like most drivers, a query once sent runs to its end whatever the caller does.
    await systemClock.sleep(slow ? ms(700) : ms(30 + random() * 50));
    return { petId, reservation: this.queries };
  }
}

/** The payment gateway: a socket reset now and then, and 503s for as long as `outage` is set. */
class PaymentGateway {
  outage = false;
  calls = 0;
  async charge(amountCents: number, signal: AbortSignal): Promise<{ status: 'paid'; id: string }> {
    this.calls++;
    const call = this.calls;
    await systemClock.sleep(ms(40 + random() * 60), signal);
    if (this.outage) throw new HttpError(503, 'payment gateway unavailable');
    if (call % 23 === 0) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    return { status: 'paid', id: `pay_${call}_${amountCents}` };
  }
}

const cache = new CatalogCache();
const db = new InventoryDb();
const gateway = new PaymentGateway();

// ---------------------------------------------------------------------------------------------
// The pipelines, outermost policy first. Policies are kept in variables for their statistics.

const catalogStale = fallback({ name: 'catalog.stale', fn: () => CATALOG });
const catalogTimeout = timeout({ name: 'catalog.timeout', ms: ms(50) });
const catalogPipeline = pipeline(catalogStale, catalogTimeout);

const inventoryRetry = retry({
  name: 'inventory.retry',
  maxAttempts: 2,
  backoff: constant({ ms: ms(50) }),
  // A full bulkhead is back-pressure: retrying at once would only add to the queue it refused.
  shouldRetry: (error) => !(error instanceof BulkheadRejectedError) && isTransient(error),
  random,
});
const inventoryBulkhead = bulkhead({
  name: 'inventory.bulkhead',
  maxConcurrent: 4,
  maxQueue: 6,
  queueTimeoutMs: ms(400),
});
const inventoryTimeout = timeout({ name: 'inventory.timeout', ms: ms(300) });
// The timeout sits inside the bulkhead, so a slow query it abandons keeps its slot until it ends.
const inventoryPipeline = pipeline(inventoryRetry, inventoryBulkhead, inventoryTimeout);

type Payment = { status: 'paid'; id: string } | { status: 'queued' };
const paymentsQueued = fallback<Payment>({
  name: 'payments.fallback',
  // The order is accepted and the charge retried later by a batch job: degraded, not lost.
  fn: () => ({ status: 'queued' }),
});
const paymentsDeadline = timeout({ name: 'payments.deadline', ms: ms(2_000) });
const paymentsRetry = retry({
  name: 'payments.retry',
  maxAttempts: 3,
  backoff: exponential({ baseMs: ms(80), maxMs: ms(1_000), jitter: 0.2 }),
  // An open circuit answers at once; waiting out its retryAfterMs would only keep the customer.
  shouldRetry: (error) => !(error instanceof BrokenCircuitError) && isTransient(error),
  random,
});
const paymentsBreaker = circuitBreaker({
  name: 'payment-gateway',
  window: { kind: 'count', size: 10 },
  failureRate: 0.5,
  minimumCalls: 5,
  openMs: ms(800),
  openBackoff: { factor: 1.5, maxMs: ms(2_000) },
});
const paymentsAttempt = timeout({ name: 'payments.attempt', ms: ms(500) });
const paymentsPipeline = pipeline(
  paymentsQueued,
  paymentsDeadline,
  paymentsRetry,
  paymentsBreaker,
  paymentsAttempt,
);

// ---------------------------------------------------------------------------------------------
// Live output: rare events print at once; the frequent ones (rejections, fallbacks) are counted
// and printed as one line before the next rare event or within a second, so that an outage
// reads as a story rather than a flood.

const COLOR = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
const paint =
  (code: number) =>
  (text: string): string =>
    COLOR ? `\u001b[${code}m${text}\u001b[0m` : text;
const red = paint(31);
const green = paint(32);
const yellow = paint(33);
const cyan = paint(36);
const dim = paint(2);
const bold = paint(1);

const startedAt = performance.now();
const stamp = (): string => dim(`${((performance.now() - startedAt) / 1000).toFixed(2).padStart(6)}s`);
const say = (policy: string, text: string): void => console.log(`${stamp()}  ${policy.padEnd(19)} ${text}`);
/** Prints a rare event, after the counts gathered before it, so that the story stays in order. */
const tell = (policy: string, text: string): void => {
  flush();
  say(policy, text);
};

function describeError(error: unknown): string {
  if (error instanceof BrokenCircuitError) return 'circuit open';
  if (error instanceof BulkheadRejectedError) return error.reason;
  if (error instanceof TimeoutError) return `timeout ${error.timeoutMs} ms`;
  if (error instanceof RetriesExhaustedError)
    return `gave up after ${error.attempts}: ${describeError(error.cause)}`;
  if (error instanceof HttpError) return `HTTP ${error.status}`;
  if (error instanceof Error) return (error as { code?: string }).code ?? error.message;
  return String(error);
}

/** Counts of frequent events since the last flush, by policy and event, then by cause. */
const pending = new Map<string, Map<string, number>>();
function count(policy: string, what: string, cause: string): void {
  const key = `${policy}\u0000${what}`;
  let causes = pending.get(key);
  if (causes === undefined) pending.set(key, (causes = new Map()));
  causes.set(cause, (causes.get(cause) ?? 0) + 1);
}
function flush(): void {
  for (const [key, causes] of pending) {
    const [policy = '', what = ''] = key.split('\u0000');
    let total = 0;
    for (const n of causes.values()) total += n;
    const detail = [...causes].map(([cause, n]) => `${cause} ×${n}`).join(', ');
    say(policy, `${yellow(what)} ×${total} (${detail})`);
  }
  pending.clear();
}

/** Totals over the whole run, for the columns the statistics do not carry. */
const tally = new Map<string, number>();
const bump = (key: string): void => {
  tally.set(key, (tally.get(key) ?? 0) + 1);
};

function onEvent(event: BulwarkEvent): void {
  bump(`${event.policy}:${event.type}`);
  switch (event.type) {
    case 'retry:scheduled':
      tell(
        event.policy,
        `retry: ${event.operation} attempt ${event.attempt} failed (${describeError(event.error)}); next in ${event.delayMs} ms`,
      );
      break;
    case 'retry:exhausted':
      tell(
        event.policy,
        red(`retries exhausted after ${event.attempts} attempts (${describeError(event.error)})`),
      );
      break;
    case 'timeout:fired':
      tell(event.policy, red(`${event.operation} timed out after ${event.timeoutMs} ms`));
      break;
    case 'breaker:opened':
      tell(
        event.policy,
        bold(
          red(
            event.reason === 'probe-failed'
              ? `breaker opened again: the probe failed; open for ${event.openMs} ms`
              : `breaker opened: ${event.reason} ${Math.round(event.failureRate * 100)}%; open for ${event.openMs} ms`,
          ),
        ),
      );
      break;
    case 'breaker:half-opened':
      tell(event.policy, yellow('breaker half-open: letting one probe through'));
      break;
    case 'breaker:closed':
      tell(event.policy, bold(green('breaker closed: the probe succeeded')));
      break;
    case 'breaker:rejected':
      count(event.policy, 'breaker rejected', event.state);
      break;
    case 'bulkhead:rejected':
      count(event.policy, 'bulkhead rejected', event.reason);
      break;
    case 'fallback:used':
      count(event.policy, 'fallback used', describeError(event.error));
      break;
    default:
      // Timeout warnings (75% and 90% of a budget) are only tallied: every slow call raises two.
      break;
  }
}

for (const p of [catalogPipeline, inventoryPipeline, paymentsPipeline]) p.events.onAny(onEvent);

// ---------------------------------------------------------------------------------------------
// The checkout, and the load that drives it.

type Result = 'paid' | 'queued' | 'refused' | 'failed';
const results = new Map<Result, number>();
let staleCatalogs = 0;

async function checkout(order: number): Promise<void> {
  const catalog = await catalogPipeline.executeOutcome(({ signal }) => cache.get(signal), {
    operation: 'catalog',
  });
  if (catalog.ok && catalog.degraded) staleCatalogs++;
  const pets = catalog.ok ? catalog.value : CATALOG;
  const pet = pets[order % pets.length]!;
  let result: Result;
  try {
    await inventoryPipeline.execute(() => db.reserve(pet.id), { operation: 'reserve' });
    const payment = await paymentsPipeline.execute(({ signal }) => gateway.charge(pet.priceCents, signal), {
      operation: 'charge',
    });
    result = payment.status;
  } catch (error) {
    // Only the inventory can fail an order: payments always answer, if need be through the fallback.
    result = error instanceof BulkheadRejectedError ? 'refused' : 'failed';
  }
  results.set(result, (results.get(result) ?? 0) + 1);
}

interface Peaks {
  active: number;
  queued: number;
  lingering: number;
}
const peaks: Peaks = { active: 0, queued: 0, lingering: 0 };
function sample(): void {
  const s = inventoryBulkhead.stats();
  peaks.active = Math.max(peaks.active, s.active);
  peaks.queued = Math.max(peaks.queued, s.queued);
  peaks.lingering = Math.max(peaks.lingering, s.lingering);
}

const orders: Promise<void>[] = [];
let next = 1;

interface Phase {
  title: string;
  durationMs: number;
  enter?: () => void;
}

const PHASES: Phase[] = [
  { title: 'steady traffic: 10 orders a second', durationMs: 3_000 },
  {
    title: 'the payment gateway goes down (503 on every call)',
    durationMs: 4_000,
    enter: () => {
      gateway.outage = true;
    },
  },
  {
    title: 'the gateway is back; a flash sale sends 30 orders at once',
    durationMs: 2_000,
    enter: () => {
      gateway.outage = false;
      for (let i = 0; i < 30; i++) orders.push(checkout(next++));
    },
  },
  { title: 'steady traffic again', durationMs: 3_000 },
];

async function drive(): Promise<void> {
  const interval = ms(100);
  for (const phase of PHASES) {
    flush();
    console.log(`\n${stamp()}  ${bold(cyan(`── ${phase.title}`))}`);
    phase.enter?.();
    const end = performance.now() + ms(phase.durationMs);
    let lastFlush = performance.now();
    while (performance.now() < end) {
      orders.push(checkout(next++));
      sample();
      if (performance.now() - lastFlush >= ms(1_000)) {
        flush();
        lastFlush = performance.now();
      }
      await systemClock.sleep(interval);
    }
  }
  await Promise.all(orders);
  // Queries abandoned by the inventory timeout still hold their bulkhead slots: wait them out.
  while (inventoryBulkhead.stats().active > 0) {
    sample();
    await systemClock.sleep(ms(20));
  }
  flush();
}

// ---------------------------------------------------------------------------------------------
// Reporting.

function summarise(d: PolicyDescription): string {
  const o = d.options as Record<string, any>;
  switch (d.kind) {
    case 'fallback':
      return 'fallback';
    case 'timeout':
      return `timeout ${o.ms} ms`;
    case 'retry':
      return `retry ×${o.maxAttempts} (${o.backoff.kind} from ${o.backoff.baseMs ?? o.backoff.ms} ms)`;
    case 'bulkhead':
      return `bulkhead ${o.maxConcurrent} + queue ${o.maxQueue}`;
    case 'circuit-breaker':
      return `breaker (last ${o.window.size} calls, opens at ${o.failureRate * 100}%)`;
    default:
      return d.kind;
  }
}

function table(title: string, head: string[], rows: (string | number)[][]): void {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n${bold(title)}`);
  console.log(dim(line(head)));
  for (const r of cells.slice(1)) console.log(line(r));
}

function report(): void {
  const n = (key: string): number => tally.get(key) ?? 0;
  const get = (r: Result): number => results.get(r) ?? 0;
  console.log(`\n${bold('Orders')}`);
  console.log(
    `${next - 1} placed: ${get('paid')} paid, ${get('queued')} accepted with the payment queued (fallback), ` +
      `${get('refused')} refused while the inventory was busy, ${get('failed')} failed; ` +
      `${staleCatalogs} served from the stale catalog`,
  );

  table(
    'Retry',
    ['policy', 'ok first try', 'ok after retry', 'failed first try', 'failed after retry', 'retries'],
    [paymentsRetry, inventoryRetry].map((p) => {
      const s = p.stats();
      return [
        p.name,
        s.successfulWithoutRetry,
        s.successfulWithRetry,
        s.failedWithoutRetry,
        s.failedWithRetry,
        n(`${p.name}:retry:scheduled`),
      ];
    }),
  );

  const b = paymentsBreaker.stats();
  table(
    'Circuit breakers',
    ['breaker', 'state', 'successful', 'failed', 'ignored', 'not permitted', 'opened', 'closed'],
    [
      [
        paymentsBreaker.name,
        b.state,
        b.successful,
        b.failed,
        b.ignored,
        b.notPermitted,
        n(`${paymentsBreaker.name}:breaker:opened`),
        n(`${paymentsBreaker.name}:breaker:closed`),
      ],
    ],
  );

  const k = inventoryBulkhead.stats();
  table(
    'Bulkheads',
    ['bulkhead', 'max', 'active', 'queued', 'rejected', 'peak active', 'peak queued', 'peak lingering'],
    [
      [
        inventoryBulkhead.name,
        k.maxConcurrent,
        k.active,
        k.queued,
        k.rejected,
        peaks.active,
        peaks.queued,
        peaks.lingering,
      ],
    ],
  );

  table(
    'Fallbacks',
    ['fallback', 'used'],
    [catalogStale, paymentsQueued].map((p) => [p.name, p.stats().used]),
  );

  table(
    'Timeouts',
    ['timeout', 'budget ms', 'timed out', 'still running', 'warnings'],
    [catalogTimeout, inventoryTimeout, paymentsDeadline, paymentsAttempt].map((p) => {
      const s = p.stats();
      return [
        p.name,
        p.describe().options.ms as number,
        s.timedOut,
        s.running,
        n(`${p.name}:timeout:warning`),
      ];
    }),
  );
}

function pipelinesOverview(entries: [string, Pipeline<unknown>][]): void {
  console.log(bold('Pipelines, outermost policy first'));
  for (const [name, p] of entries) {
    const layers = (p.describe().options.policies as PolicyDescription[]).map(summarise);
    console.log(`  ${name.padEnd(10)} ${layers.join(' → ')}`);
  }
}

console.log(bold('Bulwark petstore demo: a checkout calling a cache, a database and a payment gateway'));
if (FAST) console.log(dim(`fast mode: every duration × ${SCALE}`));
pipelinesOverview([
  ['catalog', catalogPipeline],
  ['inventory', inventoryPipeline],
  ['payments', paymentsPipeline],
]);

await drive();
report();

// Nothing should be left scheduled: policies keep no timers while idle.
const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
console.log(`\npending timers: ${timers}`);
if (timers !== 0) process.exitCode = 1;
