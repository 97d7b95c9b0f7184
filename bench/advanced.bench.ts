// The advanced policies on their pass-through path (the policy admits, hits, or does nothing
// special): the rate limiter against rate-limiter-flexible, p-limit and bottleneck, the cache hit
// against a plain Map, and hedge, chaos, adaptive concurrency and a retry budget against a bare
// `await fn()`. Same method as bench/core.bench.ts (interleaved shuffled rounds, medians), in a
// smaller harness of its own. Run with `npm run bench:core` (it needs `--expose-gc`); see bench/README.md.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
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

/** Measurement rounds per case; each case's figure is the median of its rounds. */
const ROUNDS = 11;
/** Target wall time of one case in one round; iteration counts are calibrated to it once. */
const ROUND_MS = 50;
/** Warm-up per case before calibration. */
const WARMUP_MS = 250;
const CONCURRENCY = 100;
/** bottleneck costs milliseconds a call (its timers), so it runs a fixed, small count per round. */
const BOTTLENECK_N = { seq: 20, c100: 100 } as const;
/** The issue's target: the token bucket's admitted path costs ≤ this × rate-limiter-flexible's (overhead). */
const TOKEN_BUCKET_TARGET = 0.3;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('Run with --expose-gc: npm run bench:core');
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Cases. Every policy is configured so that it never limits, misses, hedges or injects; the
// counters are checked after the run (see `passThrough`).

const op = async () => 1;
type Lib = 'bare' | 'bulwark' | 'rate-limiter-flexible' | 'p-limit' | 'bottleneck' | 'Map';
type Mode = 'seq' | 'c100';
interface CaseDef {
  group: string;
  lib: Lib;
  label: string;
  call: () => Promise<unknown>;
  /** A fixed iteration count per mode instead of calibration (bottleneck). */
  fixedN?: Readonly<Record<Mode, number>>;
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
// Running: the loops of bench/core.bench.ts (an event-loop turn every 1000 calls, as a server's).

const DRAIN_EVERY = 1000;
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));
const batch: Promise<unknown>[] = new Array(CONCURRENCY);

async function runSeq(call: () => Promise<unknown>, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) {
    await call();
    if (i % DRAIN_EVERY === 0) await drain();
  }
}

async function runConcurrent(call: () => Promise<unknown>, n: number): Promise<void> {
  for (let b = 1; b <= n / CONCURRENCY; b++) {
    for (let j = 0; j < CONCURRENCY; j++) batch[j] = call();
    await Promise.all(batch);
    if ((b * CONCURRENCY) % DRAIN_EVERY === 0) await drain();
  }
}

interface Case extends CaseDef {
  mode: Mode;
  iterations: number;
  samples: number[];
}

async function measure(c: Case, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  await (c.mode === 'seq' ? runSeq : runConcurrent)(c.call, n);
  return Number(process.hrtime.bigint() - start) / n;
}

/** Checks the outcome, warms the case up, and calibrates its iterations to ROUND_MS. */
async function warmUp(c: Case): Promise<void> {
  const outcome = await c.call();
  if (outcome !== 1) throw new Error(`${c.lib} ${c.group}: expected 1, got ${String(outcome)}`);
  if (c.fixedN) {
    c.iterations = c.fixedN[c.mode];
    await measure(c, c.iterations);
    return;
  }
  let n = 1000;
  let nsPerOp = await measure(c, n);
  for (const deadline = performance.now() + WARMUP_MS; performance.now() < deadline; ) {
    n = Math.min(n * 2, 1_000_000);
    nsPerOp = await measure(c, n);
  }
  c.iterations = Math.ceil(Math.max(CONCURRENCY, (ROUND_MS * 1e6) / nsPerOp) / CONCURRENCY) * CONCURRENCY;
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const median = (values: readonly number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---------------------------------------------------------------------------------------------
// Reporting.

interface Row {
  group: string;
  mode: Mode;
  lib: Lib;
  label: string;
  iterations: number;
  samplesNs: number[];
  nsPerOp: number;
  spreadPct: number;
  timesBare: number;
  overheadNs: number;
  /** On peers' rows: Bulwark's overhead in this group and mode ÷ this peer's (undefined if the peer's ≤ 0). */
  bulwarkOverPeer: number | undefined;
}

function toRows(cases: Case[]): Row[] {
  const rows: Row[] = cases.map((c) => {
    const ns = median(c.samples);
    const bare = median(cases.find((x) => x.lib === 'bare' && x.mode === c.mode)!.samples);
    return {
      group: c.group,
      mode: c.mode,
      lib: c.lib,
      label: c.label,
      iterations: c.iterations,
      samplesNs: c.samples,
      nsPerOp: ns,
      spreadPct: ((Math.max(...c.samples) - Math.min(...c.samples)) / ns) * 100,
      timesBare: ns / bare,
      overheadNs: ns - bare,
      bulwarkOverPeer: undefined,
    };
  });
  for (const r of rows) {
    if (r.lib === 'bulwark' || r.lib === 'bare') continue;
    const b = rows.find((x) => x.lib === 'bulwark' && x.group === r.group && x.mode === r.mode);
    if (b && r.overheadNs > 0) r.bulwarkOverPeer = b.overheadNs / r.overheadNs;
  }
  return rows;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(headers: string[], rows: string[][], alignLeft: number): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < alignLeft ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

function ratioCell(r: Row): string {
  if (r.bulwarkOverPeer !== undefined)
    return r.bulwarkOverPeer < 0.001 ? '< 0.001' : fmt(r.bulwarkOverPeer, 3);
  return r.lib === 'bare' || r.lib === 'bulwark' ? '' : 'n/a (peer ≤ 0)';
}

function printRows(rows: Row[]): void {
  for (const mode of ['seq', 'c100'] as const) {
    console.log(
      `\n### ${mode === 'seq' ? 'One call in flight (`seq`)' : `${CONCURRENCY} calls in flight (\`c100\`)`}\n`,
    );
    const body = rows
      .filter((r) => r.mode === mode)
      .map((r) => [
        r.group,
        r.lib,
        r.label,
        fmt(r.nsPerOp),
        `±${fmt(r.spreadPct / 2)}%`,
        `${fmt(r.timesBare, 2)}×`,
        fmt(r.overheadNs),
        ratioCell(r),
      ]);
    console.log(
      table(
        ['case', 'library', 'what runs', 'ns/op', 'range', '× bare', 'overhead ns', 'Bulwark ovh / peer ovh'],
        body,
        3,
      ),
    );
  }
}

function readVersion(pkg: string): string {
  const url = new URL(`../${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

// ---------------------------------------------------------------------------------------------
// Main.

const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  node: process.version,
  loadAverageAtStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  versions: Object.fromEntries(
    [
      'packages/core',
      'node_modules/rate-limiter-flexible',
      'node_modules/p-limit',
      'node_modules/bottleneck',
    ].map((p) => [p === 'packages/core' ? '@bulwark/core' : p.slice('node_modules/'.length), readVersion(p)]),
  ),
};
console.log('# Bulwark advanced policies benchmark\n');
console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.platform}`);
console.log(`node:    ${machine.node}`);
console.log(`load:    ${machine.loadAverageAtStart.join(' ')} (1, 5, 15 min) at start`);
if (machine.loadAverageAtStart[0]! > machine.cores / 2) {
  console.log('warning: the machine is busy; absolute figures will be noisy (ratios less so)');
}
console.log(
  `libs:    ${Object.entries(machine.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}`,
);
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

const cases: Case[] = [];
for (const mode of ['seq', 'c100'] as const) {
  for (const d of defs) cases.push({ ...d, mode, iterations: 0, samples: [] });
}
const started = performance.now();
process.stdout.write(`warming up ${cases.length} cases `);
for (const c of cases) {
  await warmUp(c);
  process.stdout.write('.');
}
console.log(` ${fmt((performance.now() - started) / 1000, 1)} s`);
const random = mulberry32(0xb01a);
for (let round = 1; round <= ROUNDS; round++) {
  process.stdout.write(`round ${round}/${ROUNDS} `);
  for (const c of shuffled(cases, random)) {
    gc();
    c.samples.push(await measure(c, c.iterations));
  }
  console.log(`${fmt((performance.now() - started) / 1000, 1)} s`);
}
await bottleneck.stop({ dropWaitingJobs: false });

const rows = toRows(cases);
printRows(rows);

const checks = passThrough();
console.log('\n### Pass-through checks\n');
for (const [what, ok] of Object.entries(checks)) console.log(`- ${ok ? 'ok  ' : 'FAIL'} ${what}`);

const get = (group: string, mode: Mode, lib: Lib) =>
  rows.find((r) => r.group === group && r.mode === mode && r.lib === lib)!;
const parts: string[] = [];
let met = true;
for (const mode of ['seq', 'c100'] as const) {
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

const loadAverageAtEnd = os.loadavg().map((l) => Number(l.toFixed(2)));
console.log(`\nload average at end: ${loadAverageAtEnd.join(' ')}`);
const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });
const file = new URL(`advanced-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(
  file,
  `${JSON.stringify(
    {
      machine: { ...machine, loadAverageAtEnd },
      settings: { ROUNDS, ROUND_MS, WARMUP_MS, CONCURRENCY, BOTTLENECK_N, TOKEN_BUCKET_TARGET },
      rows,
      passThrough: checks,
      target,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nresults written to ${file.pathname}`);
console.log(`total ${fmt((performance.now() - started) / 1000, 1)} s`);
