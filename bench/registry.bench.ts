// What the dependency registry adds to a call: `registry.execute` against the same policies as a
// bare `pipeline().execute`, and against cockatiel's `wrap` of the same four policies. Same method
// and harness as bench/core.bench.ts (bench/harness.ts). Run with `npm run bench:registry`.

import { bulkhead, circuitBreaker, DependencyRegistry, pipeline, retry, timeout } from '@bulwark/core';
import * as cockatiel from 'cockatiel';
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

const ROUND_MS = 50;
const WARMUP_MS = 250;

const op = async () => 1;
type Lib = 'bare' | 'bulwark' | 'pipeline' | 'cockatiel';
interface CaseDef extends Pick<Case, 'group' | 'label' | 'call'> {
  lib: Lib;
}

// The database kind's policies, with a bulkhead wide enough that 100 calls in flight all run.
const settings = { kind: 'database' as const, bulkhead: { maxConcurrent: 1_000, maxQueue: 0 } };
const registry = new DependencyRegistry({
  dependencies: {
    petstore_database: settings,
    many_ops: { ...settings, operations: { get_pet: { timeoutMs: 5_000 } } },
  },
});
const bare = pipeline(
  retry({ maxAttempts: 3 }),
  circuitBreaker({ window: { kind: 'time', ms: 15_000, failures: 3 } }),
  bulkhead({ maxConcurrent: 1_000 }),
  timeout({ ms: 10_000 }),
);
const cWrap = cockatiel.wrap(
  cockatiel.retry(cockatiel.handleAll, { maxAttempts: 2 }),
  cockatiel.circuitBreaker(cockatiel.handleAll, {
    halfOpenAfter: 30_000,
    breaker: new cockatiel.ConsecutiveBreaker(3),
  }),
  cockatiel.bulkhead(1_000),
  cockatiel.timeout(10_000, cockatiel.TimeoutStrategy.Cooperative),
);
const wrapped = registry.wrap('petstore_database', 'get_pet', op);

const defs: CaseDef[] = [
  { group: 'baseline', lib: 'bare', label: 'await fn()', call: () => op() },
  {
    group: 'database dependency',
    lib: 'bulwark',
    label: "registry.execute('petstore_database', 'get_pet', fn)",
    call: () => registry.execute('petstore_database', 'get_pet', op),
  },
  {
    group: 'database dependency',
    lib: 'pipeline',
    label: 'pipeline(retry, breaker, bulkhead, timeout).execute(fn)',
    call: () => bare.execute(op),
  },
  {
    group: 'database dependency',
    lib: 'cockatiel',
    label: 'wrap(retry, breaker, bulkhead, timeout).execute(fn)',
    call: () => cWrap.execute(op),
  },
  {
    group: 'wrapped function',
    lib: 'bulwark',
    label: "registry.wrap('petstore_database', 'get_pet', fn)()",
    call: () => wrapped(),
  },
  {
    group: 'operation with its own pipeline',
    lib: 'bulwark',
    label: "registry.execute('many_ops', 'get_pet', fn) (operations.get_pet set)",
    call: () => registry.execute('many_ops', 'get_pet', op),
  },
];

async function warmUp(c: Case): Promise<void> {
  const outcome = await c.call();
  if (outcome !== 1) throw new Error(`${c.lib} ${c.group}: expected 1, got ${String(outcome)}`);
  await calibrate(c, WARMUP_MS, ROUND_MS);
}

function ratioCell(r: Row): string {
  return r.bulwarkOverPeer === undefined ? '' : fmt(r.bulwarkOverPeer, 2);
}

const machine = printHeader('Bulwark dependency registry benchmark', {
  '@bulwark/core': 'packages/core',
  cockatiel: 'node_modules/cockatiel',
});
console.log(`method:  median of ${ROUNDS} rounds of ~${ROUND_MS} ms per case, cases shuffled per round\n`);

const cases: (CaseDef & Case)[] = [];
for (const mode of MODES) for (const d of defs) cases.push({ ...d, mode, iterations: 0, samples: [] });
const started = await runCases(cases, warmUp);
const rows = toRows(cases, true);
printRows(
  rows,
  (mode) => (mode === 'seq' ? 'One call in flight (`seq`)' : `${CONCURRENCY} calls in flight (\`c100\`)`),
  ratioCell,
);

// What the registry adds on top of its own pipeline: its statistics, the event check and the context.
const get = (group: string, mode: Mode, lib: Lib) =>
  rows.find((r) => r.group === group && r.mode === mode && r.lib === lib)!;
const summary = MODES.map((mode) => {
  const reg = get('database dependency', mode, 'bulwark');
  const pipe = get('database dependency', mode, 'pipeline');
  const cock = get('database dependency', mode, 'cockatiel');
  return [
    mode,
    fmt(reg.overheadNs),
    fmt(pipe.overheadNs),
    fmt(reg.overheadNs - pipe.overheadNs),
    fmt(cock.overheadNs),
    fmt(reg.overheadNs / cock.overheadNs, 2),
  ];
});
console.log('\n### What the registry adds\n');
console.log(
  table(
    [
      'mode',
      'registry ns',
      'same pipeline ns',
      'registry adds ns',
      'cockatiel wrap ns',
      'registry / cockatiel',
    ],
    summary,
    1,
  ),
);
const s = registry.stats('petstore_database');
console.log(
  `\nchecks: ${s.calls.successes} successes, ${s.calls.failures + s.calls.rejections + s.calls.timeouts} other outcomes, ` +
    `p99 ${fmt(s.calls.recent.latencyMs?.p99 ?? Number.NaN, 3)} ms over the last minute`,
);
await registry.close();
writeResults(
  'registry',
  machine,
  { settings: { ROUNDS, ROUND_MS, WARMUP_MS, CONCURRENCY }, rows, summary },
  started,
);
