// The core benchmark: Bulwark's policies against cockatiel, opossum and p-retry, in one process
// and one run. Run it with `npm run bench:core` (it needs `--expose-gc`); see bench/README.md.
//
// Three parts:
//  1. the success path of each policy, one call in flight and 100 in flight, as ns per call
//     against a bare `await fn()` baseline;
//  2. the fast-fail path of an open breaker, as ns per rejected call;
//  3. the bytes an idle breaker retains after GC, and the timers it leaves behind.
import { createHook } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import {
  BrokenCircuitError,
  bulkhead,
  circuitBreaker,
  fallback,
  pipeline,
  retry,
  timeout,
} from '@bulwark/core';
import * as cockatiel from 'cockatiel';
import CircuitBreaker from 'opossum';
import pRetry from 'p-retry';
import {
  type Case,
  CONCURRENCY,
  calibrate,
  fmt,
  gc,
  MODES,
  type Mode,
  printHeader,
  printRows,
  ROUNDS,
  type Row,
  runCases,
  table,
  toRows,
  writeResults,
} from './harness.ts';

// ---------------------------------------------------------------------------------------------
// Settings. The whole run takes about a minute and a half on a 2-core machine.

/** Target wall time of one case in one round; iteration counts are calibrated to it once. */
const ROUND_MS = 60;
/** Warm-up per case before calibration (JIT tiers, inline caches). */
const WARMUP_MS = 300;
/** Breakers created per library for the retained-memory measurement. */
const MEMORY_N = 10_000;
/** Breakers created per library for the timer count (with an async hook on). */
const TIMER_N = 100;

// ---------------------------------------------------------------------------------------------
// The operations under test and the policies' settings.

const op = async () => 1;
/** Reads the signal, as an operation that passes it to fetch() would. */
const opReadsSignal = async (ctx: { signal: AbortSignal }) => (ctx.signal.aborted ? 0 : 1);
const HALF_OPEN_AFTER_MS = 30_000;
/** Long enough that an opened breaker stays open for the whole run. */
const OPEN_FOREVER_MS = 1_000_000_000;

/** opossum's bucket rotation, driven by us between measurements instead of by an interval per breaker. */
const rotation = new EventEmitter();
rotation.setMaxListeners(0);
/**
 * opossum in the throughput cases: its per-call path is the default one (10 s timeout timer per
 * call, a latency sample pushed per call), but its two per-breaker intervals are replaced by
 * `rotation`. With defaults, the snapshot interval sorts every latency sample of the last 10 s
 * once a second, which at about a million calls a second would stall the cases of other libraries.
 */
const opossumBenchOptions = { enableSnapshots: false, rotateBucketController: rotation };
const opossumBreakers: CircuitBreaker[] = [];
function opossumBreaker<T>(
  action: () => Promise<T>,
  options: CircuitBreaker.Options = {},
): CircuitBreaker<[], T> {
  const b = new CircuitBreaker(action, { ...opossumBenchOptions, ...options });
  opossumBreakers.push(b);
  return b;
}
/** Drops opossum's latency samples (a full rotation of its 10 buckets) so they do not pile up. */
function flushOpossum(): void {
  for (let i = 0; i < 10; i++) rotation.emit('rotate');
}

// ---------------------------------------------------------------------------------------------
// Cases.

type Lib = 'bare' | 'bulwark' | 'cockatiel' | 'opossum' | 'p-retry';

interface CaseDef extends Pick<Case, 'group' | 'label' | 'call' | 'rejects' | 'after'> {
  lib: Lib;
  /** Validates one outcome during warm-up: a value for success cases, an error for rejections. */
  check: (outcome: unknown) => boolean;
}

const isOne = (v: unknown) => v === 1;

function successCases(): CaseDef[] {
  const defs: CaseDef[] = [];
  const add = (group: string, lib: Lib, label: string, call: () => Promise<unknown>, after?: () => void) =>
    defs.push({ group, lib, label, call, check: isOne, ...(after && { after }) });

  add('baseline', 'bare', 'await fn()', () => op());
  // Not a policy: the fixed cost of entering Bulwark (one scope object per call), for reference.
  const empty = pipeline();
  add('baseline', 'bulwark', 'pipeline() with no policies', () => empty.execute(op));

  // Retry: at most 3 calls in each library (cockatiel's maxAttempts and p-retry's retries count retries only).
  const bRetry = retry({ maxAttempts: 3 });
  const cRetry = cockatiel.retry(cockatiel.handleAll, { maxAttempts: 2 });
  add('retry', 'bulwark', 'retry({ maxAttempts: 3 })', () => bRetry.execute(op));
  add('retry', 'cockatiel', 'retry(handleAll, { maxAttempts: 2 })', () => cRetry.execute(op));
  add('retry', 'p-retry', 'pRetry(fn, { retries: 2 })', () => pRetry(op, { retries: 2 }));

  // Circuit breaker, closed.
  const bBreaker = circuitBreaker();
  const cBreaker = cockatiel.circuitBreaker(cockatiel.handleAll, {
    halfOpenAfter: HALF_OPEN_AFTER_MS,
    breaker: new cockatiel.ConsecutiveBreaker(5),
  });
  const oBreaker = opossumBreaker(op);
  const oBreakerLean = opossumBreaker(op, { timeout: false, rollingPercentilesEnabled: false });
  add('breaker', 'bulwark', 'circuitBreaker() (5 consecutive)', () => bBreaker.execute(op));
  add('breaker', 'cockatiel', 'circuitBreaker(handleAll, ConsecutiveBreaker(5))', () => cBreaker.execute(op));
  add(
    'breaker',
    'opossum',
    'new CircuitBreaker(fn) (default 10 s timeout)',
    () => oBreaker.fire(),
    flushOpossum,
  );
  add(
    'breaker',
    'opossum',
    'new CircuitBreaker(fn, { timeout: false, percentiles off })',
    () => oBreakerLean.fire(),
    flushOpossum,
  );

  // Bulkhead, never full.
  const bBulkhead = bulkhead({ maxConcurrent: 1000 });
  const cBulkhead = cockatiel.bulkhead(1000);
  add('bulkhead', 'bulwark', 'bulkhead({ maxConcurrent: 1000 })', () => bBulkhead.execute(op));
  add('bulkhead', 'cockatiel', 'bulkhead(1000)', () => cBulkhead.execute(op));

  // Timeout, never reached: the operation ignores its signal, then reads it.
  const bTimeout = timeout({ ms: 10_000 });
  const cTimeout = cockatiel.timeout(10_000, cockatiel.TimeoutStrategy.Cooperative);
  add('timeout', 'bulwark', 'timeout({ ms: 10_000 })', () => bTimeout.execute(op));
  add('timeout', 'cockatiel', 'timeout(10_000, Cooperative)', () => cTimeout.execute(op));
  const bTimeoutS = timeout({ ms: 10_000 });
  const cTimeoutS = cockatiel.timeout(10_000, cockatiel.TimeoutStrategy.Cooperative);
  add('timeout, op reads signal', 'bulwark', 'timeout({ ms: 10_000 }), ctx.signal', () =>
    bTimeoutS.execute(opReadsSignal),
  );
  add('timeout, op reads signal', 'cockatiel', 'timeout(10_000, Cooperative), ctx.signal', () =>
    cTimeoutS.execute(opReadsSignal),
  );

  // Fallback, not used.
  const bFallback = fallback({ value: 0 });
  const cFallback = cockatiel.fallback(cockatiel.handleAll, 0);
  add('fallback', 'bulwark', 'fallback({ value: 0 })', () => bFallback.execute(op));
  add('fallback', 'cockatiel', 'fallback(handleAll, 0)', () => cFallback.execute(op));

  // The full pipeline.
  const bPipeline = () =>
    pipeline(
      timeout({ ms: 10_000 }),
      retry({ maxAttempts: 3 }),
      circuitBreaker(),
      bulkhead({ maxConcurrent: 1000 }),
    );
  const cWrap = (withBulkhead: boolean) => {
    const r = cockatiel.retry(cockatiel.handleAll, { maxAttempts: 2 });
    const b = cockatiel.circuitBreaker(cockatiel.handleAll, {
      halfOpenAfter: HALF_OPEN_AFTER_MS,
      breaker: new cockatiel.ConsecutiveBreaker(5),
    });
    const t = cockatiel.timeout(10_000, cockatiel.TimeoutStrategy.Cooperative);
    return withBulkhead ? cockatiel.wrap(r, b, t, cockatiel.bulkhead(1000)) : cockatiel.wrap(r, b, t);
  };
  const bp = bPipeline();
  const cw3 = cWrap(false);
  const cw4 = cWrap(true);
  const oRetry = opossumBreaker(() => pRetry(op, { retries: 2 }), { timeout: 10_000, capacity: 1000 });
  add('pipeline', 'bulwark', 'pipeline(timeout, retry, circuitBreaker, bulkhead)', () => bp.execute(op));
  add('pipeline', 'cockatiel', 'wrap(retry, breaker, timeout)', () => cw3.execute(op));
  add('pipeline', 'cockatiel', 'wrap(retry, breaker, timeout, bulkhead)', () => cw4.execute(op));
  add('pipeline', 'opossum', 'opossum(pRetry(fn), { timeout, capacity })', () => oRetry.fire(), flushOpossum);
  const bpS = bPipeline();
  const cw3S = cWrap(false);
  add('pipeline, op reads signal', 'bulwark', 'pipeline(timeout, retry, breaker, bulkhead), ctx.signal', () =>
    bpS.execute(opReadsSignal),
  );
  add('pipeline, op reads signal', 'cockatiel', 'wrap(retry, breaker, timeout), ctx.signal', () =>
    cw3S.execute(opReadsSignal),
  );
  return defs;
}

/** An error every library counts as a failure (Bulwark classifies ECONNRESET as transient). */
function transientError(): Error {
  return Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
}
const failing = async () => {
  throw transientError();
};

async function openBreakerCases(): Promise<CaseDef[]> {
  const bare = transientError();
  const bBreaker = circuitBreaker({ openMs: OPEN_FOREVER_MS });
  const cBreaker = cockatiel.circuitBreaker(cockatiel.handleAll, {
    halfOpenAfter: OPEN_FOREVER_MS,
    breaker: new cockatiel.ConsecutiveBreaker(5),
  });
  for (let i = 0; i < 5; i++) {
    await bBreaker.execute(failing).catch(() => {});
    await cBreaker.execute(failing).catch(() => {});
  }
  // No fallback is registered: an open opossum breaker rejects with EOPENBREAKER.
  const oBreaker = opossumBreaker(op, { resetTimeout: OPEN_FOREVER_MS });
  oBreaker.open();
  if (bBreaker.state !== 'open' || cBreaker.state !== cockatiel.CircuitState.Open || !oBreaker.opened) {
    throw new Error('a breaker did not open');
  }
  return [
    {
      group: 'open breaker',
      lib: 'bare',
      label: 'await Promise.reject(err)',
      call: () => Promise.reject(bare),
      rejects: true,
      check: (e) => e === bare,
    },
    {
      group: 'open breaker',
      lib: 'bulwark',
      label: 'BrokenCircuitError',
      call: () => bBreaker.execute(op),
      rejects: true,
      check: (e) => e instanceof BrokenCircuitError,
    },
    {
      group: 'open breaker',
      lib: 'cockatiel',
      label: 'BrokenCircuitError',
      call: () => cBreaker.execute(op),
      rejects: true,
      check: (e) => e instanceof cockatiel.BrokenCircuitError,
    },
    {
      group: 'open breaker',
      lib: 'opossum',
      label: 'EOPENBREAKER (no fallback)',
      call: () => oBreaker.fire(),
      rejects: true,
      check: (e) => (e as { code?: unknown }).code === 'EOPENBREAKER',
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Running a case, with bench/harness.ts.

/** Checks one outcome, then warms the case up and calibrates it. */
async function warmUp(c: CaseDef & Case): Promise<void> {
  let outcome: unknown;
  try {
    outcome = await c.call();
    if (c.rejects) throw new Error(`${c.lib} ${c.group}: expected a rejection, got ${String(outcome)}`);
  } catch (error) {
    if (!c.rejects) throw error;
    outcome = error;
  }
  if (!c.check(outcome)) throw new Error(`${c.lib} ${c.group} (${c.label}): unexpected outcome ${outcome}`);
  await calibrate(c, WARMUP_MS, ROUND_MS);
}

// ---------------------------------------------------------------------------------------------
// Part 3: retained bytes and timers of idle breakers.

interface BreakerKind {
  lib: Lib;
  label: string;
  create: () => unknown;
  call: (breaker: unknown) => Promise<unknown>;
  dispose?: (breaker: unknown) => void;
}

const memoryRotation = new EventEmitter();
memoryRotation.setMaxListeners(0);

const breakerKinds: BreakerKind[] = [
  {
    lib: 'bulwark',
    label: 'circuitBreaker()',
    create: () => circuitBreaker(),
    call: (b) => (b as ReturnType<typeof circuitBreaker>).execute(op),
  },
  {
    lib: 'cockatiel',
    label: 'circuitBreaker(handleAll, ConsecutiveBreaker(5))',
    create: () =>
      cockatiel.circuitBreaker(cockatiel.handleAll, {
        halfOpenAfter: HALF_OPEN_AFTER_MS,
        breaker: new cockatiel.ConsecutiveBreaker(5),
      }),
    call: (b) => (b as cockatiel.CircuitBreakerPolicy).execute(op),
  },
  {
    lib: 'opossum',
    label: 'new CircuitBreaker(fn) (defaults)',
    create: () => new CircuitBreaker(op),
    call: (b) => (b as CircuitBreaker).fire(),
    dispose: (b) => (b as CircuitBreaker).shutdown(),
  },
  {
    lib: 'opossum',
    label: 'new CircuitBreaker(fn, { enableSnapshots: false, rotateBucketController })',
    create: () => new CircuitBreaker(op, { enableSnapshots: false, rotateBucketController: memoryRotation }),
    call: (b) => (b as CircuitBreaker).fire(),
    dispose: (b) => (b as CircuitBreaker).shutdown(),
  },
];

async function fullGc(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const countTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

interface MemoryResult {
  lib: Lib;
  label: string;
  n: number;
  bytesPerBreaker: number;
  /** Ref'd timers visible to process.getActiveResourcesInfo(), per breaker. */
  refTimersPerBreaker: number;
  /** Every live timer (ref'd or not) seen by an async hook, per breaker. */
  liveTimersPerBreaker: number;
}

async function measureMemory(kind: BreakerKind): Promise<Omit<MemoryResult, 'liveTimersPerBreaker'>> {
  const keep: unknown[] = new Array(MEMORY_N).fill(undefined);
  await fullGc();
  const before = process.memoryUsage().heapUsed;
  const refBefore = countTimeouts();
  for (let i = 0; i < MEMORY_N; i++) keep[i] = kind.create();
  for (let i = 0; i < MEMORY_N; i++) await kind.call(keep[i]);
  await fullGc();
  const after = process.memoryUsage().heapUsed;
  const refTimers = countTimeouts() - refBefore;
  // Keep the breakers reachable until the measurement is taken.
  if (keep.some((b) => b === undefined)) throw new Error('lost a breaker');
  if (kind.dispose) for (const b of keep) kind.dispose(b);
  keep.length = 0;
  return {
    lib: kind.lib,
    label: kind.label,
    n: MEMORY_N,
    bytesPerBreaker: (after - before) / MEMORY_N,
    refTimersPerBreaker: refTimers / MEMORY_N,
  };
}

/** Counts live timers (unref'd ones too, which getActiveResourcesInfo() does not list) with an async hook. */
async function countLiveTimers(kind: BreakerKind): Promise<number> {
  const live = new Set<number>();
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout') live.add(id);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  const keep: unknown[] = [];
  hook.enable();
  try {
    for (let i = 0; i < TIMER_N; i++) keep.push(kind.create());
    for (const b of keep) await kind.call(b);
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    hook.disable();
  }
  const count = live.size;
  if (kind.dispose) for (const b of keep) kind.dispose(b);
  return count / TIMER_N;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

interface Target {
  target: string;
  figures: string;
  met: boolean;
}

function evaluateTargets(rows: Row[], memory: MemoryResult[]): Target[] {
  const get = (group: string, mode: Mode, lib: Lib, label?: string) =>
    rows.find((r) => r.group === group && r.mode === mode && r.lib === lib && (!label || r.label === label))!;
  const targets: Target[] = [];
  const ratioTarget = (name: string, group: string, max: number, peerLabel?: string) => {
    const parts: string[] = [];
    let met = true;
    for (const mode of MODES) {
      const b = get(group, mode, 'bulwark');
      const p = get(group, mode, 'cockatiel', peerLabel);
      const ratio = b.overheadNs / p.overheadNs;
      met &&= ratio <= max;
      parts.push(`${mode}: ${fmt(b.overheadNs)} vs ${fmt(p.overheadNs)} ns = ${fmt(ratio, 3)}`);
    }
    targets.push({
      target: `${name}: overhead ≤ ${fmt(max, 3)} × cockatiel's`,
      figures: parts.join('; '),
      met,
    });
  };
  ratioTarget('retry', 'retry', 1 / 2);
  ratioTarget('breaker', 'breaker', 1 / 2);
  ratioTarget('bulkhead', 'bulkhead', 1 / 2);
  ratioTarget('timeout, op ignores signal', 'timeout', 1 / 15);
  ratioTarget('timeout, op reads signal', 'timeout, op reads signal', 1 / 5);
  ratioTarget('pipeline', 'pipeline', 1 / 20, 'wrap(retry, breaker, timeout)');
  {
    const seq = get('pipeline', 'seq', 'bulwark').overheadNs;
    const c100 = get('pipeline', 'c100', 'bulwark').overheadNs;
    targets.push({
      target: 'pipeline: overhead < 3 µs',
      figures: `seq: ${fmt(seq)} ns; c100: ${fmt(c100)} ns`,
      met: seq < 3000 && c100 < 3000,
    });
  }
  {
    const parts: string[] = [];
    let met = true;
    for (const mode of MODES) {
      const b = get('open breaker', mode, 'bulwark');
      for (const peer of ['cockatiel', 'opossum'] as const) {
        const p = get('open breaker', mode, peer);
        const raw = p.nsPerOp / b.nsPerOp;
        const ovh = p.overheadNs / b.overheadNs;
        met &&= raw >= 5;
        parts.push(`${mode} ${peer}: ${fmt(raw, 1)}× per call (${fmt(ovh, 1)}× on overhead)`);
      }
    }
    targets.push({
      target: 'open breaker rejects ≥ 5× faster than cockatiel and opossum',
      figures: parts.join('; '),
      met,
    });
  }
  {
    const b = memory.find((m) => m.lib === 'bulwark')!;
    const c = memory.find((m) => m.lib === 'cockatiel')!;
    const ratio = b.bytesPerBreaker / c.bytesPerBreaker;
    targets.push({
      target: "idle breaker retains ≤ ½ of cockatiel's bytes and no timer",
      figures: `${fmt(b.bytesPerBreaker)} vs ${fmt(c.bytesPerBreaker)} B = ${fmt(ratio, 3)}; timers per breaker: ${b.liveTimersPerBreaker}`,
      met: ratio <= 0.5 && b.liveTimersPerBreaker === 0 && b.refTimersPerBreaker === 0,
    });
  }
  return targets;
}

// ---------------------------------------------------------------------------------------------
// Main.

async function main(): Promise<void> {
  const machine = printHeader('Bulwark core benchmark', {
    '@bulwark/core': 'packages/core',
    cockatiel: 'node_modules/cockatiel',
    opossum: 'node_modules/opossum',
    'p-retry': 'node_modules/p-retry',
  });
  console.log(`method:  median of ${ROUNDS} rounds of ~${ROUND_MS} ms per case, cases shuffled per round\n`);

  const defs = [...successCases(), ...(await openBreakerCases())];
  const cases: (CaseDef & Case)[] = [];
  for (const mode of MODES) {
    for (const d of defs) cases.push({ ...d, mode, iterations: 0, samples: [] });
  }

  const started = await runCases(cases, warmUp);
  for (const b of opossumBreakers) b.shutdown();

  console.log('\nmeasuring retained bytes per idle breaker and leftover timers');
  const memory: MemoryResult[] = [];
  for (const kind of breakerKinds) {
    const m = await measureMemory(kind);
    await fullGc();
    const liveTimersPerBreaker = await countLiveTimers(kind);
    memory.push({ ...m, liveTimersPerBreaker });
  }

  const rows = toRows(cases);
  printRows(
    rows,
    (mode) =>
      mode === 'seq'
        ? 'One call in flight (sequential awaits)'
        : `${CONCURRENCY} calls in flight (Promise.all batches)`,
    (r) => (r.bulwarkOverPeer === undefined ? '' : fmt(r.bulwarkOverPeer, 3)),
  );

  console.log(
    `\n### Retained bytes per idle breaker (N = ${fmt(MEMORY_N)}, one successful call each, after GC)\n`,
  );
  console.log(
    table(
      ['library', 'created as', 'bytes/breaker', 'ref’d timers/breaker', 'all live timers/breaker'],
      memory.map((m) => [
        m.lib,
        m.label,
        fmt(m.bytesPerBreaker),
        fmt(m.refTimersPerBreaker, 2),
        fmt(m.liveTimersPerBreaker, 2),
      ]),
      2,
    ),
  );

  const targets = evaluateTargets(rows, memory);
  console.log('\n### Targets\n');
  console.log(
    table(
      ['target', 'figures', 'met'],
      targets.map((t) => [t.target, t.figures, t.met ? 'yes' : 'NO']),
      2,
    ),
  );

  writeResults(
    'core',
    machine,
    {
      settings: { ROUNDS, ROUND_MS, WARMUP_MS, CONCURRENCY, MEMORY_N, TIMER_N },
      rows,
      memory,
      targets,
    },
    started,
  );
}

await main();
