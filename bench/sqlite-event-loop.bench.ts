// What the SQLite store's disk work costs the event loop: 20 writers enqueue runs one after
// another on a file store, with SQLite syncing and checkpointing inside each commit (the
// default) and with `syncInThreadPool` (the log's fsync in libuv's thread pool, checkpoints in a
// worker thread), alternating, 3 rounds each. Prints enqueue latency and event-loop delay.
//   node --conditions=@bulwark/source --import tsx bench/sqlite-event-loop.bench.ts
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type NewRun, openSqliteStore } from '@bulwark/workflow';

const WRITERS = 20;
const PER_WRITER = 1_000;
const ROUNDS = 3;

interface Result {
  ms: number;
  p50: number;
  p99: number;
  max: number;
  loopP99: number;
  loopMax: number;
  checkpoints: number;
}

async function round(syncInThreadPool: boolean): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-loop-'));
  const store = await openSqliteStore({ path: join(dir, 'runs.db'), syncInThreadPool });
  try {
    await store.migrate();
    const delay = monitorEventLoopDelay({ resolution: 1 });
    const latencies: number[] = [];
    const started = performance.now();
    delay.enable();
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        for (let i = 0; i < PER_WRITER; i++) {
          const run: NewRun = {
            id: randomUUID(),
            workflow: 'bench',
            version: '1',
            priority: 1,
            input: { i },
          };
          const at = performance.now();
          await store.enqueue([run], Date.now());
          latencies.push(performance.now() - at);
        }
      }),
    );
    delay.disable();
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.floor(q * (latencies.length - 1))]!;
    return {
      ms: performance.now() - started,
      p50: at(0.5),
      p99: at(0.99),
      max: at(1),
      loopP99: delay.percentile(99) / 1e6,
      loopMax: delay.max / 1e6,
      checkpoints: store.stats().checkpoints,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const results: Record<string, Result[]> = { 'in the commit': [], 'thread pool + worker': [] };
for (let r = 0; r < ROUNDS; r++) {
  results['in the commit']!.push(await round(false));
  results['thread pool + worker']!.push(await round(true));
}
console.log(
  `${WRITERS} writers × ${PER_WRITER} enqueues, SQLite durability full, median of ${ROUNDS} rounds\n`,
);
console.log(
  '| sync and checkpoint | enqueues/s | enqueue p50 | p99 | max | event-loop delay p99 | max | checkpoints |',
);
console.log('|:--|--:|--:|--:|--:|--:|--:|--:|');
for (const [name, rs] of Object.entries(results)) {
  const m = (f: (r: Result) => number) => median(rs.map(f)).toFixed(1);
  const rate = median(rs.map((r) => (WRITERS * PER_WRITER) / (r.ms / 1000)));
  console.log(
    `| ${name} | ${Math.round(rate).toLocaleString('en')} | ${m((r) => r.p50)} ms | ${m((r) => r.p99)} ms | ${m((r) => r.max)} ms | ${m((r) => r.loopP99)} ms | ${m((r) => r.loopMax)} ms | ${m((r) => r.checkpoints)} |`,
  );
}
