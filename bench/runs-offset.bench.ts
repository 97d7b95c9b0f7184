// What reading the runs list by position costs on SQLite: a page of 500 at an offset (the
// dashboard's scrollbar dragged there) against the same page by cursor, in a store of 100,000 runs.
// Run: node --conditions=@bulwark/source --import tsx bench/runs-offset.bench.ts
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ListRunsFilter, openSqliteStore } from '@bulwark/workflow';

const RUNS = 100_000;
const PAGE = 500;
const ROUNDS = 21;
const T0 = 1_700_000_000_000;

const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-offset-'));
const store = await openSqliteStore({ path: join(dir, 'runs.db'), durability: 'normal' });
try {
  // Three runs per ms, so that the id breaks ties as it does in a busy store; two workflows.
  for (let i = 0; i < RUNS; i += 5_000) {
    const batch = Array.from({ length: 5_000 }, (_, j) => ({
      id: randomUUID(),
      workflow: (i + j) % 2 === 0 ? 'a' : 'b',
      version: '1',
      input: null,
      priority: 1,
    }));
    await store.enqueue(batch, T0 + Math.floor(i / 3));
  }
  const ids = (await store.listRuns({ limit: RUNS })).map((r) => r.id);

  /** The median ms of `ROUNDS` reads of one page. */
  const median = async (filter: ListRunsFilter): Promise<number> => {
    const times: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const start = performance.now();
      const page = await store.listRuns({ ...filter, limit: PAGE });
      times.push(performance.now() - start);
      if (page.length === 0) throw new Error(`empty page for ${JSON.stringify(filter)}`);
    }
    return times.sort((a, b) => a - b)[ROUNDS >> 1]!;
  };

  console.log(`SQLite, ${RUNS} runs, pages of ${PAGE}, median of ${ROUNDS} reads, ms:`);
  console.log('position  by offset  by cursor  by offset, workflow a');
  for (const at of [0, 25_000, 50_000, RUNS - PAGE]) {
    const offset = await median({ offset: at });
    const cursor = at === 0 ? await median({}) : await median({ before: ids[at - 1]! });
    const filtered = await median({ workflow: 'a', offset: Math.min(at, RUNS / 2 - PAGE) });
    console.log(
      `${String(at).padStart(8)}  ${offset.toFixed(2).padStart(9)}  ${cursor.toFixed(2).padStart(9)}  ${filtered.toFixed(2).padStart(9)}`,
    );
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
