// The measurement harness shared by bench/core.bench.ts and bench/advanced.bench.ts: run loops, calibration, shuffled rounds, medians, tables and results.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

/** Measurement rounds per case; each case's figure is the median of its rounds. */
export const ROUNDS = 11;
/** Calls in flight at once in the concurrent mode. */
export const CONCURRENCY = 100;
export const MODES = ['seq', 'c100'] as const;
export type Mode = (typeof MODES)[number];

function requireGc(): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    console.error('Run with --expose-gc: npm run bench:core');
    process.exit(1);
  }
  return gc;
}
export const gc = requireGc();

/** One case in one mode: what runs, and the iterations and samples of its rounds. */
export interface Case {
  /** The comparison this case belongs to; cases of one group are compared with each other. */
  group: string;
  lib: string;
  /** What exactly runs, for the table. */
  label: string;
  mode: Mode;
  /** Starts one call. */
  call: () => Promise<unknown>;
  /** The call rejects (fast-fail cases); the loops swallow the rejections. */
  rejects?: boolean;
  /** Runs after each measurement. */
  after?: () => void;
  /** A fixed iteration count per mode instead of calibration (for slow libraries). */
  fixedN?: Readonly<Record<Mode, number>>;
  iterations: number;
  samples: number[];
}

// ---------------------------------------------------------------------------------------------
// Running a case: one loop per mode, shared by every case so that each pays the same harness.

const swallow = () => {};
/**
 * Every this many calls the loops let the event loop turn (setImmediate). A server's microtask
 * queue drains at every I/O event; a loop of awaits never does, and Node's bookkeeping of
 * promises rejected before a handler is attached (and of cleared timers) would pile up across
 * the whole loop. Costs every case the same, about 1 ns per call.
 */
const DRAIN_EVERY = 1000;
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

async function runSeq(call: () => Promise<unknown>, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) {
    await call();
    if (i % DRAIN_EVERY === 0) await drain();
  }
}

async function runSeqRejecting(call: () => Promise<unknown>, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) {
    try {
      await call();
    } catch {}
    if (i % DRAIN_EVERY === 0) await drain();
  }
}

const batch: Promise<unknown>[] = new Array(CONCURRENCY);

async function runConcurrent(call: () => Promise<unknown>, n: number): Promise<void> {
  for (let b = 1; b <= n / CONCURRENCY; b++) {
    for (let j = 0; j < CONCURRENCY; j++) batch[j] = call();
    await Promise.all(batch);
    if ((b * CONCURRENCY) % DRAIN_EVERY === 0) await drain();
  }
}

async function runConcurrentRejecting(call: () => Promise<unknown>, n: number): Promise<void> {
  for (let b = 1; b <= n / CONCURRENCY; b++) {
    for (let j = 0; j < CONCURRENCY; j++) batch[j] = call().then(undefined, swallow);
    await Promise.all(batch);
    if ((b * CONCURRENCY) % DRAIN_EVERY === 0) await drain();
  }
}

function runner(c: Case): (call: () => Promise<unknown>, n: number) => Promise<void> {
  if (c.mode === 'seq') return c.rejects ? runSeqRejecting : runSeq;
  return c.rejects ? runConcurrentRejecting : runConcurrent;
}

/** Runs `n` calls of the case and returns the ns per call. */
async function measure(c: Case, n: number): Promise<number> {
  const run = runner(c);
  const start = process.hrtime.bigint();
  await run(c.call, n);
  const ns = Number(process.hrtime.bigint() - start);
  c.after?.();
  return ns / n;
}

/**
 * Warms the case up for `warmupMs`, doubling its calls, and calibrates its iterations to `roundMs`;
 * a case with `fixedN` runs its count once instead.
 */
export async function calibrate(c: Case, warmupMs: number, roundMs: number): Promise<void> {
  if (c.fixedN) {
    c.iterations = c.fixedN[c.mode];
    await measure(c, c.iterations);
    return;
  }
  let n = 1000;
  const deadline = performance.now() + warmupMs;
  let nsPerOp = await measure(c, n);
  while (performance.now() < deadline) {
    n = Math.min(n * 2, 1_000_000);
    nsPerOp = await measure(c, n);
  }
  const iterations = Math.max(CONCURRENCY, Math.round((roundMs * 1e6) / nsPerOp));
  c.iterations = Math.ceil(iterations / CONCURRENCY) * CONCURRENCY;
}

/** A small deterministic PRNG, so each round's case order is shuffled the same way on every run. */
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

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Warms every case up (with `warmUp`, in order), then runs ROUNDS rounds, each measuring every
 * case once in a shuffled order after a GC. Returns the time it started, for the total.
 */
export async function runCases<C extends Case>(cases: C[], warmUp: (c: C) => Promise<void>): Promise<number> {
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
  return started;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

export interface Row<L extends string = string> {
  group: string;
  mode: Mode;
  lib: L;
  label: string;
  iterations: number;
  samplesNs: number[];
  nsPerOp: number;
  spreadPct: number;
  timesBare: number;
  overheadNs: number;
  /** On peers' rows: Bulwark's overhead in this group and mode divided by this peer's overhead. */
  bulwarkOverPeer: number | undefined;
}

/**
 * One row per case, against the `bare` case of its mode (and of its kind, rejecting or not).
 * With `positivePeersOnly`, a peer whose overhead is ≤ 0 gets no Bulwark / peer ratio.
 */
export function toRows<C extends Case>(cases: C[], positivePeersOnly = false): Row<C['lib']>[] {
  const bareOf = (mode: Mode, rejects: boolean) =>
    median(cases.find((c) => c.lib === 'bare' && c.mode === mode && !!c.rejects === rejects)!.samples);
  const rows: Row<C['lib']>[] = cases.map((c) => {
    const ns = median(c.samples);
    const bare = bareOf(c.mode, !!c.rejects);
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
    if (b && (!positivePeersOnly || r.overheadNs > 0)) r.bulwarkOverPeer = b.overheadNs / r.overheadNs;
  }
  return rows;
}

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function table(headers: string[], rows: string[][], alignLeft: number): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < alignLeft ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

/**
 * Prints one table per mode under `heading(mode)`: groups in order of first appearance, and in
 * each group the bare case, then Bulwark, then its peers.
 */
export function printRows(rows: Row[], heading: (mode: Mode) => string, ratioCell: (r: Row) => string): void {
  const order = (r: Row) => (r.lib === 'bare' ? 0 : r.lib === 'bulwark' ? 1 : 2);
  for (const mode of MODES) {
    console.log(`\n### ${heading(mode)}\n`);
    const groups = [...new Set(rows.map((r) => r.group))];
    const body: string[][] = [];
    for (const g of groups) {
      const rs = rows.filter((r) => r.group === g && r.mode === mode).sort((a, b) => order(a) - order(b));
      for (const r of rs) {
        body.push([
          r.group,
          r.lib,
          r.label,
          fmt(r.nsPerOp),
          `±${fmt(r.spreadPct / 2)}%`,
          `${fmt(r.timesBare, 2)}×`,
          fmt(r.overheadNs),
          ratioCell(r),
        ]);
      }
    }
    console.log(
      table(
        ['case', 'library', 'what runs', 'ns/op', 'range', '× bare', 'overhead ns', 'Bulwark ovh / peer ovh'],
        body,
        3,
      ),
    );
  }
}

/** The version in the package.json of `pkg`, a path from the repository's root. */
function readVersion(pkg: string): string {
  const url = new URL(`../${pkg}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

interface Machine {
  cpu: string;
  cores: number;
  platform: string;
  node: string;
  loadAverageAtStart: number[];
  versions: Record<string, string>;
}

/**
 * Prints the title and the machine, Node and library versions (`packages` maps each name to its
 * path from the repository's root), and returns them for the results file.
 */
export function printHeader(title: string, packages: Record<string, string>): Machine {
  const machine: Machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((l) => Number(l.toFixed(2))),
    versions: Object.fromEntries(Object.entries(packages).map(([name, path]) => [name, readVersion(path)])),
  };
  console.log(`# ${title}\n`);
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
  return machine;
}

/**
 * Prints the load average at the end, writes bench/results/<prefix>-<timestamp>.json (the machine,
 * then `results`), and prints its path and the total time since `started`.
 */
export function writeResults(
  prefix: string,
  machine: Machine,
  results: Record<string, unknown>,
  started: number,
): void {
  const loadAverageAtEnd = os.loadavg().map((l) => Number(l.toFixed(2)));
  console.log(`\nload average at end: ${loadAverageAtEnd.join(' ')}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const file = new URL(`${prefix}-${stamp}.json`, dir);
  writeFileSync(
    file,
    `${JSON.stringify({ machine: { ...machine, loadAverageAtEnd }, ...results }, null, 2)}\n`,
  );
  console.log(`\nresults written to ${file.pathname}`);
  console.log(`total ${fmt((performance.now() - started) / 1000, 1)} s`);
}
