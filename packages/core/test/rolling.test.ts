// The registry's rolling statistics (an internal module): bounded memory, quantiles within
// their stated error, and nothing kept across idle time.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { RollingWindow } from '../src/registry/rolling.ts';

/** Nearest-rank quantile of exact samples: what the estimator approximates. */
function exact(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

describe('rolling window', () => {
  test('quantiles are within 5% of the exact nearest-rank values (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.05, max: 3_000_000, noNaN: true }), { minLength: 1, maxLength: 400 }),
        (samples) => {
          const w = new RollingWindow();
          for (const ms of samples) w.record(0, false, ms);
          const s = w.snapshot(0).latencyMs!;
          for (const [q, got] of [
            [0.5, s.p50],
            [0.95, s.p95],
            [0.99, s.p99],
          ] as const) {
            const want = exact(samples, q);
            assert.ok(Math.abs(got - want) <= want * 0.05 + 1e-9, `q${q}: ${got} vs ${want}`);
          }
          assert.equal(s.max, Math.max(...samples));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('counts and latencies leave the window slot by slot, and idle time forgets them all', () => {
    const w = new RollingWindow(60_000, 6);
    w.record(0, true, 5);
    w.record(10_000, false, 7);
    assert.deepEqual([w.snapshot(59_999).calls, w.snapshot(59_999).failures], [2, 1]);
    assert.deepEqual([w.snapshot(60_000).calls, w.snapshot(60_000).failures], [1, 0]);
    assert.equal(w.snapshot(70_000).calls, 0);
    assert.equal(w.snapshot(70_000).latencyMs, null);
    // A slot reused a whole window later starts empty.
    w.record(120_000, false, 9);
    assert.deepEqual(w.snapshot(120_000).latencyMs, { p50: 9, p95: 9, p99: 9, max: 9 });
    assert.equal(w.snapshot(120_000).calls, 1);
  });

  test('untimed calls count without touching the latencies', () => {
    const w = new RollingWindow();
    w.record(0, true);
    assert.deepEqual([w.snapshot(0).calls, w.snapshot(0).failures, w.snapshot(0).latencyMs], [1, 1, null]);
  });

  test('memory is bounded: a million samples take no more than the fixed slots', () => {
    const w = new RollingWindow(60_000, 6);
    for (let i = 0; i < 60_000; i++) w.record(i, false, (i % 5_000) + 0.5);
    const full = w.footprint;
    assert.ok(full > 0);
    for (let i = 0; i < 1_000_000; i++) w.record(60_000 + i / 10, i % 7 === 0, (i % 5_000) + 0.5);
    assert.equal(w.footprint, full);
  });
});
