// A quick cross-check of bench/core.bench.ts for the cheapest policies: no forced GC between
// rounds, 7 interleaved rounds, one call in flight and 100 in flight. Run: npm run bench:core:quick
import { bulkhead, circuitBreaker, retry } from '@bulwark/core';
import {
  ConsecutiveBreaker,
  circuitBreaker as cBreaker,
  bulkhead as cBulkhead,
  retry as cRetry,
  handleAll,
} from 'cockatiel';

const op = async () => 1;
type Call = () => Promise<unknown>;

async function seq(call: Call, n: number): Promise<number> {
  for (let i = 0; i < n / 8; i++) await call();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await call();
  return Number(process.hrtime.bigint() - t) / n;
}

async function c100(call: Call, n: number): Promise<number> {
  const batch = async () => {
    const calls: Promise<unknown>[] = [];
    for (let j = 0; j < 100; j++) calls.push(call());
    await Promise.all(calls);
  };
  for (let i = 0; i < n / 800; i++) await batch();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n / 100; i++) await batch();
  return Number(process.hrtime.bigint() - t) / n;
}

const r = retry();
const b = circuitBreaker();
const bh = bulkhead(1000);
const cr = cRetry(handleAll, { maxAttempts: 2 });
const cb = cBreaker(handleAll, { halfOpenAfter: 30_000, breaker: new ConsecutiveBreaker(5) });
const cbh = cBulkhead(1000);
const cases: [string, Call][] = [
  ['bare', () => op()],
  ['retry', () => r.execute(op)],
  ['cockatiel retry', () => cr.execute(op)],
  ['breaker', () => b.execute(op)],
  ['cockatiel breaker', () => cb.execute(op)],
  ['bulkhead', () => bh.execute(op)],
  ['cockatiel bulkhead', () => cbh.execute(op)],
];
const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

for (const [mode, measure] of [
  ['seq', seq],
  ['c100', c100],
] as const) {
  const samples = new Map<string, number[]>();
  for (let round = 0; round < 7; round++) {
    for (const [name, call] of cases)
      samples.set(name, [...(samples.get(name) ?? []), await measure(call, 400_000)]);
  }
  const bare = median(samples.get('bare')!);
  const overhead = (name: string) => median(samples.get(name)!) - bare;
  console.log(`${mode}: overhead ns over a bare await (${bare.toFixed(0)} ns)`);
  for (const policy of ['retry', 'breaker', 'bulkhead']) {
    const ours = overhead(policy);
    const theirs = overhead(`cockatiel ${policy}`);
    console.log(
      `  ${policy.padEnd(9)} bulwark ${ours.toFixed(0).padStart(4)}  cockatiel ${theirs.toFixed(0).padStart(4)}  ratio ${(ours / theirs).toFixed(2)}`,
    );
  }
}
