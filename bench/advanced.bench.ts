// The advanced policies on their pass-through path (the policy admits, hits, or does nothing
// special): the rate limiter against rate-limiter-flexible, p-limit and bottleneck, the cache hit
// against a plain Map, and hedge, chaos, adaptive concurrency and a retry budget against a bare
// `await fn()`. Same method and harness as bench/core.bench.ts (bench/harness.ts: interleaved shuffled
// rounds, medians). Run with `npm run bench:core` (it needs `--expose-gc`); see bench/README.md.
import {
  adaptiveConcurrency,
  cache,
  chaos,
  gradient2,
  hedge,
  pipeline,
  rateLimiter,
  retry,
  retryBudget,
} from '@bulwark/core';
import Bottleneck from 'bottleneck';
import pLimit from 'p-limit';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import {
  type Case,
  CONCURRENCY,
  calibrate,
  fmt,
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

/** Target wall time of one case in one round; iteration counts are calibrated to it once. */
const ROUND_MS = 50;
/** Warm-up per case before calibration. */
const WARMUP_MS = 250;
/** bottleneck costs milliseconds a call (its timers), so it runs a fixed, small count per round. */
const BOTTLENECK_N = { seq: 20, c100: 100 } as const;
/** The target: the token bucket's admitted path costs ≤ this × rate-limiter-flexible's (overhead). */
const TOKEN_BUCKET_TARGET = 0.3;

// ---------------------------------------------------------------------------------------------
// Cases. Every policy is configured so that it never limits, misses, hedges or injects; the
// counters are checked after the run (see `passThrough`).

const op = async () => 1;
type Lib = 'bare' | 'bulwark' | 'rate-limiter-flexible' | 'p-limit' | 'bottleneck' | 'Map';
interface CaseDef extends Pick<Case, 'group' | 'label' | 'call' | 'fixedN'> {
  lib: Lib;
}

/** A token bucket that refills a million permits a millisecond: it never limits here. */
const NEVER_LIMITS = { tokens: 1_000_000, perMs: 1, burst: 1_000_000 };
const tenant = { key: 'tenant-1' };
const cacheKey = { key: 'k' };

const bTokenBucket = rateLimiter({ tokenBucket: NEVER_LIMITS });
const bSliding = rateLimiter({ slidingWindow: { limit: 100_000, windowMs: 1 } });
const bKeyed = rateLimiter({ tokenBucket: NEVER_LIMITS });
/** The same, holding 999 other keys: its LRU touch (Map delete + set per call) then costs more. */
const bKeyed1000 = rateLimiter({ tokenBucket: NEVER_LIMITS });
const rlf = new RateLimiterMemory({ points: 1e12, duration: 1 });
const limit = pLimit(1000);
const bottleneck = new Bottleneck({ maxConcurrent: null, minTime: 0 });
const bCache = cache({ ttlMs: 60_000 });
/** The same, holding 999 other entries. */
const bCache1000 = cache({ ttlMs: 60_000 });
const map = new Map<string, number>([['k', 1]]);
const bHedge = hedge({ delayMs: 60_000 });
const chaosOff = { rate: 0, error: new Error('injected') };
const bChaosOff = chaos({
  enabled: false,
  fault: chaosOff,
  latency: { rate: 0, ms: 1000 },
  result: { rate: 0, value: 0 },
});
const bChaosZero = chaos({ fault: chaosOff, latency: { rate: 0, ms: 1000 }, result: { rate: 0, value: 0 } });
// The default algorithm and sample window, pinned at 1000 (min = max) so that it never refuses.
const bAdaptive = adaptiveConcurrency({ limit: gradient2({ initial: 1000, min: 1000 }) });
const bRetry = retry({ maxAttempts: 3 });
const budget = retryBudget();
const bRetryBudget = retry({ maxAttempts: 3, budget });
const empty = pipeline();

const defs: CaseDef[] = [
  { group: 'baseline', lib: 'bare', label: 'await fn()', call: () => op() },
  { group: 'baseline', lib: 'bulwark', label: 'pipeline() with no policies', call: () => empty.execute(op) },
  {
    group: 'rate limiter',
    lib: 'bulwark',
    label: 'rateLimiter({ tokenBucket: 1e6 per ms })',
    call: () => bTokenBucket.execute(op),
  },
  {
    group: 'rate limiter',
    lib: 'rate-limiter-flexible',
    label: "RateLimiterMemory.consume('k').then(fn)",
    call: () => rlf.consume('k').then(op),
  },
  { group: 'rate limiter', lib: 'p-limit', label: 'pLimit(1000)(fn)', call: () => limit(op) },
  {
    group: 'rate limiter',
    lib: 'bottleneck',
    label: `schedule(fn), n = ${BOTTLENECK_N.seq} / ${BOTTLENECK_N.c100} per round`,
    call: () => bottleneck.schedule(op),
    fixedN: BOTTLENECK_N,
  },
  {
    group: 'rate limiter, sliding window',
    lib: 'bulwark',
    label: 'rateLimiter({ slidingWindow: 1e5 per ms })',
    call: () => bSliding.execute(op),
  },
  {
    group: 'rate limiter, keyed',
    lib: 'bulwark',
    label: "tokenBucket, execute(fn, { key: 'tenant-1' })",
    call: () => bKeyed.execute(op, tenant),
  },
  {
    group: 'rate limiter, keyed, 1000 keys',
    lib: 'bulwark',
    label: 'the same, 999 other keys held',
    call: () => bKeyed1000.execute(op, tenant),
  },
  {
    group: 'cache hit',
    lib: 'bulwark',
    label: "cache({ ttlMs: 60_000 }), { key: 'k' }",
    call: () => bCache.execute(op, cacheKey),
  },
  {
    group: 'cache hit',
    lib: 'Map',
    label: "map.get('k') ?? await fn()",
    call: async () => map.get('k') ?? (await op()),
  },
  {
    group: 'cache hit, 1000 entries',
    lib: 'bulwark',
    label: 'the same, 999 other entries held',
    call: () => bCache1000.execute(op, cacheKey),
  },
  {
    group: 'hedge',
    lib: 'bulwark',
    label: 'hedge({ delayMs: 60_000 }) (never fires)',
    call: () => bHedge.execute(op),
  },
  {
    group: 'chaos, disabled',
    lib: 'bulwark',
    label: 'chaos({ enabled: false, … })',
    call: () => bChaosOff.execute(op),
  },
  {
    group: 'chaos, rates 0',
    lib: 'bulwark',
    label: 'chaos({ fault, latency, result: rate 0 })',
    call: () => bChaosZero.execute(op),
  },
  {
    group: 'adaptive concurrency',
    lib: 'bulwark',
    label: 'adaptiveConcurrency(gradient2, limit 1000)',
    call: () => bAdaptive.execute(op),
  },
  {
    group: 'retry (reference)',
    lib: 'bulwark',
    label: 'retry({ maxAttempts: 3 })',
    call: () => bRetry.execute(op),
  },
  {
    group: 'retry + budget',
    lib: 'bulwark',
    label: 'retry({ maxAttempts: 3, budget: retryBudget() })',
    call: () => bRetryBudget.execute(op),
  },
];

/** What must hold after the run for every case to have stayed on its pass-through path. */
function passThrough(): Record<string, boolean> {
  const c = bCache.stats();
  const h = bHedge.stats();
  return {
    'rate limiters rejected nothing, 1000 keys kept':
      [bTokenBucket, bSliding, bKeyed, bKeyed1000].every((l) => l.stats().rejected === 0) &&
      bKeyed1000.stats().keys === 1000,
    'caches missed only on their fills and hit otherwise':
      c.misses === 1 &&
      c.coalesced === 0 &&
      bCache1000.stats().misses === 1000 &&
      bCache1000.stats().size === 1000,
    'hedge never launched': h.hedgesLaunched === 0,
    'chaos injected nothing': [bChaosOff, bChaosZero].every((p) => {
      const s = p.stats();
      return s.faults + s.latencies + s.results === 0;
    }),
    'adaptive refused nothing, limit 1000': bAdaptive.stats().rejected === 0 && bAdaptive.limit === 1000,
    'retry budget refused nothing': budget.stats().refused === 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Running and reporting, with bench/harness.ts.

/** Checks the outcome, then warms the case up and calibrates it. */
async function warmUp(c: Case): Promise<void> {
  const outcome = await c.call();
  if (outcome !== 1) throw new Error(`${c.lib} ${c.group}: expected 1, got ${String(outcome)}`);
  await calibrate(c, WARMUP_MS, ROUND_MS);
}

function ratioCell(r: Row): string {
  if (r.bulwarkOverPeer !== undefined)
    return r.bulwarkOverPeer < 0.001 ? '< 0.001' : fmt(r.bulwarkOverPeer, 3);
  return r.lib === 'bare' || r.lib === 'bulwark' ? '' : 'n/a (peer ≤ 0)';
}

// ---------------------------------------------------------------------------------------------
// Main.

const machine = printHeader('Bulwark advanced policies benchmark', {
  '@bulwark/core': 'packages/core',
  'rate-limiter-flexible': 'node_modules/rate-limiter-flexible',
  'p-limit': 'node_modules/p-limit',
  bottleneck: 'node_modules/bottleneck',
});
console.log(
  `method:  median of ${ROUNDS} rounds of ~${ROUND_MS} ms per case, cases shuffled per round; ` +
    `bottleneck ${BOTTLENECK_N.seq} (seq) / ${BOTTLENECK_N.c100} (c100) calls per round\n`,
);

// The fills the cache hits are answered from, and the other keys of the 1000-key cases.
await bCache.execute(op, cacheKey);
for (let i = 0; i < 999; i++) {
  await bCache1000.execute(op, { key: `other-${i}` });
  await bKeyed1000.execute(op, { key: `other-${i}` });
}
await bCache1000.execute(op, cacheKey);

const cases: (CaseDef & Case)[] = [];
for (const mode of MODES) {
  for (const d of defs) cases.push({ ...d, mode, iterations: 0, samples: [] });
}
const started = await runCases(cases, warmUp);
await bottleneck.stop({ dropWaitingJobs: false });

const rows = toRows(cases, true);
printRows(
  rows,
  (mode) => (mode === 'seq' ? 'One call in flight (`seq`)' : `${CONCURRENCY} calls in flight (\`c100\`)`),
  ratioCell,
);

const checks = passThrough();
console.log('\n### Pass-through checks\n');
for (const [what, ok] of Object.entries(checks)) console.log(`- ${ok ? 'ok  ' : 'FAIL'} ${what}`);

const get = (group: string, mode: Mode, lib: Lib) =>
  rows.find((r) => r.group === group && r.mode === mode && r.lib === lib)!;
const parts: string[] = [];
let met = true;
for (const mode of MODES) {
  const b = get('rate limiter', mode, 'bulwark');
  const keyed = get('rate limiter, keyed', mode, 'bulwark');
  const p = get('rate limiter', mode, 'rate-limiter-flexible');
  const ratio = b.overheadNs / p.overheadNs;
  met &&= ratio <= TOKEN_BUCKET_TARGET;
  parts.push(
    `${mode}: ${fmt(b.overheadNs)} vs ${fmt(p.overheadNs)} ns = ${fmt(ratio, 3)} ` +
      `(keyed: ${fmt(keyed.overheadNs)} ns = ${fmt(keyed.overheadNs / p.overheadNs, 3)})`,
  );
}
const target = {
  target: `token bucket, admitted path: overhead ≤ ${TOKEN_BUCKET_TARGET} × rate-limiter-flexible's, in both modes`,
  figures: parts.join('; '),
  met,
};
console.log('\n### Target\n');
console.log(table(['target', 'figures', 'met'], [[target.target, target.figures, met ? 'yes' : 'NO']], 2));

writeResults(
  'advanced',
  machine,
  {
    settings: { ROUNDS, ROUND_MS, WARMUP_MS, CONCURRENCY, BOTTLENECK_N, TOKEN_BUCKET_TARGET },
    rows,
    passThrough: checks,
    target,
  },
  started,
);
