// Unit tests of the backoff strategies: exact delays, caps, jitter bounds and the decorrelated
// jitter formula. `delayMs(retry, random, memo)` is the internal seam the retry policy calls.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Backoff, constant, decorrelatedJitter, exponential, linear } from '@bulwark/core';
import fc from 'fast-check';
import { seeded } from './support.ts';

/** The delay before retry `retry` of a fresh call, with a random source that always answers `r`. */
function delayAt(backoff: Backoff, retry: number, r: number): number {
  return backoff.delayMs(retry, () => r, { prev: 0 });
}

/** The delays before retries 1..n of one call. */
function delays(backoff: Backoff, n: number, random: () => number = () => 0.5): number[] {
  const memo = { prev: 0 };
  return Array.from({ length: n }, (_, i) => backoff.delayMs(i + 1, random, memo));
}

describe('constant backoff', () => {
  test('waits the same time before every retry', () => {
    assert.deepEqual(delays(constant({ ms: 250 }), 5), [250, 250, 250, 250, 250]);
  });

  test('ms: 0 retries at once', () => {
    assert.deepEqual(delays(constant({ ms: 0 }), 3), [0, 0, 0]);
  });

  test('jitter spreads the delay within ±fraction, reaching both ends', () => {
    const b = constant({ ms: 1_000, jitter: 0.1 });
    assert.equal(delayAt(b, 1, 0), 900);
    assert.equal(delayAt(b, 1, 0.5), 1_000);
    assert.equal(delayAt(b, 1, 0.999_999), 1_100);
    const random = seeded(1);
    for (let i = 0; i < 1_000; i++) {
      const d = b.delayMs(1, random, { prev: 0 });
      assert.ok(d >= 900 && d <= 1_100, `delay ${d} outside [900, 1100]`);
    }
  });

  test('describe gives the normalised options', () => {
    assert.deepEqual(constant({ ms: 5 }).describe(), { kind: 'constant', ms: 5, jitter: 0 });
    assert.equal(constant({ ms: 5 }).kind, 'constant');
  });
});

describe('linear backoff', () => {
  test('grows by stepMs per retry from baseMs', () => {
    assert.deepEqual(delays(linear({ baseMs: 100, stepMs: 50 }), 4), [100, 150, 200, 250]);
  });

  test('stepMs defaults to baseMs', () => {
    assert.deepEqual(delays(linear({ baseMs: 100 }), 4), [100, 200, 300, 400]);
  });

  test('maxMs caps every delay', () => {
    assert.deepEqual(
      delays(linear({ baseMs: 100, stepMs: 50, maxMs: 220 }), 6),
      [100, 150, 200, 220, 220, 220],
    );
  });

  test('jitter never pushes a delay above maxMs', () => {
    const b = linear({ baseMs: 100, maxMs: 300, jitter: 0.5 });
    assert.equal(delayAt(b, 10, 0.999), 300);
    assert.equal(delayAt(b, 10, 0), 150);
  });

  test('describe gives the normalised options with defaults', () => {
    assert.deepEqual(linear({ baseMs: 10 }).describe(), {
      kind: 'linear',
      baseMs: 10,
      stepMs: 10,
      maxMs: Number.POSITIVE_INFINITY,
      jitter: 0,
    });
  });
});

describe('exponential backoff', () => {
  test('doubles from baseMs by default', () => {
    assert.deepEqual(delays(exponential({ baseMs: 100 }), 5), [100, 200, 400, 800, 1_600]);
  });

  test('grows by factor', () => {
    assert.deepEqual(delays(exponential({ baseMs: 10, factor: 3 }), 4), [10, 30, 90, 270]);
    assert.deepEqual(delays(exponential({ baseMs: 10, factor: 1 }), 3), [10, 10, 10]);
  });

  test('maxMs caps every delay', () => {
    assert.deepEqual(delays(exponential({ baseMs: 100, maxMs: 500 }), 6), [100, 200, 400, 500, 500, 500]);
  });

  test('maxMs defaults to 30 s', () => {
    assert.equal(exponential({ baseMs: 1_000 }).delayMs(20, Math.random, { prev: 0 }), 30_000);
  });

  test('jitter stays within ±fraction of the exact delay', () => {
    const b = exponential({ baseMs: 100, factor: 2, maxMs: 100_000, jitter: 0.25 });
    const random = seeded(42);
    for (let retry = 1; retry <= 8; retry++) {
      const exact = 100 * 2 ** (retry - 1);
      for (let i = 0; i < 200; i++) {
        const d = b.delayMs(retry, random, { prev: 0 });
        assert.ok(d >= Math.floor(exact * 0.75) && d <= Math.ceil(exact * 1.25), `retry ${retry}: ${d}`);
      }
    }
    assert.equal(delayAt(b, 3, 0), 300);
    assert.equal(delayAt(b, 3, 0.75), 450);
  });

  test('the cap applies with jitter included', () => {
    const b = exponential({ baseMs: 100, maxMs: 1_000, jitter: 0.5 });
    const random = seeded(7);
    for (let i = 0; i < 500; i++) assert.ok(b.delayMs(10, random, { prev: 0 }) <= 1_000);
  });

  test('a huge retry number neither overflows into NaN nor exceeds the cap', () => {
    assert.equal(delayAt(exponential({ baseMs: 100, maxMs: 5_000 }), 5_000, 0.5), 5_000);
    assert.equal(delayAt(exponential({ baseMs: 0 }), 5_000, 0.5), 0);
    const uncapped = exponential({ baseMs: 1, maxMs: Number.POSITIVE_INFINITY, jitter: 1 });
    assert.equal(delayAt(uncapped, 5_000, 0), Number.POSITIVE_INFINITY);
  });

  test('describe gives the normalised options with defaults', () => {
    assert.deepEqual(exponential({ baseMs: 200 }).describe(), {
      kind: 'exponential',
      baseMs: 200,
      factor: 2,
      maxMs: 30_000,
      jitter: 0,
    });
  });
});

describe('decorrelated jitter (v2)', () => {
  /** Polly's DecorrelatedJitterBackoffV2, written out independently from the implementation. */
  function reference(baseMs: number, maxMs: number, randoms: number[]): number[] {
    let prev = 0;
    return randoms.map((r, n) => {
      const t = n + r;
      const next = 2 ** t * Math.tanh(Math.sqrt(4 * t));
      const delay = ((next - prev) / 1.4) * baseMs;
      prev = next;
      return Math.min(maxMs, Math.round(delay));
    });
  }

  test('matches the formula for a fixed sequence of random values', () => {
    const randoms = [0.1, 0.9, 0.5, 0, 0.3, 0.7];
    let i = 0;
    const got = delays(
      decorrelatedJitter({ baseMs: 1_000, maxMs: 1_000_000 }),
      randoms.length,
      () => randoms[i++]!,
    );
    assert.deepEqual(got, reference(1_000, 1_000_000, randoms));
  });

  test('matches the formula for seeded random sequences', () => {
    for (const seed of [1, 2, 3, 99]) {
      const randoms = Array.from({ length: 10 }, seeded(seed));
      let i = 0;
      const got = delays(decorrelatedJitter({ baseMs: 200, maxMs: 50_000 }), 10, () => randoms[i++]!);
      assert.deepEqual(got, reference(200, 50_000, randoms));
    }
  });

  test('the first delay is about baseMs at the median random value', () => {
    // t = 0.5: 2^0.5 · tanh(√2) / 1.4 ≈ 0.897
    assert.equal(delayAt(decorrelatedJitter({ baseMs: 1_000 }), 1, 0.5), 897);
  });

  test('a delay never exceeds maxMs (the default cap is 30 s)', () => {
    assert.deepEqual(
      delays(decorrelatedJitter({ baseMs: 1_000, maxMs: 4_000 }), 10).slice(-3),
      [4_000, 4_000, 4_000],
    );
    assert.ok(delays(decorrelatedJitter({ baseMs: 1_000 }), 30).every((d) => d <= 30_000));
  });

  test('delays grow roughly exponentially on average until the cap', () => {
    const b = decorrelatedJitter({ baseMs: 100, maxMs: 1_000_000 });
    const n = 8;
    const sums = new Array<number>(n).fill(0);
    const random = seeded(2024);
    const runs = 2_000;
    for (let run = 0; run < runs; run++) {
      delays(b, n, random).forEach((d, i) => {
        sums[i]! += d;
      });
    }
    const means = sums.map((s) => s / runs);
    // The mean of retry n + 1 over retry n rises towards 2 (exponential growth) as n grows.
    for (let i = 1; i < n; i++) {
      const ratio = means[i]! / means[i - 1]!;
      assert.ok(ratio > 1.2 && ratio < 3, `mean delay ${i + 1} / ${i} = ${ratio}`);
    }
  });

  test('successive random values stay decorrelated: the same retry number spreads widely', () => {
    const b = decorrelatedJitter({ baseMs: 1_000, maxMs: 1_000_000 });
    const random = seeded(5);
    const third = Array.from({ length: 500 }, () => delays(b, 3, random)[2]!);
    const spread = Math.max(...third) - Math.min(...third);
    assert.ok(spread > 1_000, `spread ${spread}`);
  });

  test('past the overflow point (t ≈ 1024) it answers maxMs, never NaN or a negative delay', () => {
    const b = decorrelatedJitter({ baseMs: 100, maxMs: 7_000 });
    const memo = { prev: 0 };
    for (let retry = 1; retry <= 1_100; retry++) {
      const d = b.delayMs(retry, () => 0.5, memo);
      assert.ok(d >= 0 && d <= 7_000 && Number.isInteger(d), `retry ${retry}: ${d}`);
    }
    assert.equal(
      b.delayMs(1_100, () => 0.5, memo),
      7_000,
    );
  });

  test('describe gives the normalised options with defaults', () => {
    assert.deepEqual(decorrelatedJitter({ baseMs: 50 }).describe(), {
      kind: 'decorrelated-jitter',
      baseMs: 50,
      maxMs: 30_000,
    });
  });
});

describe('backoff properties', () => {
  const arbBackoff = fc.oneof(
    fc.record({
      kind: fc.constant('constant' as const),
      ms: fc.nat(100_000),
      jitter: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
    fc.record({
      kind: fc.constant('linear' as const),
      baseMs: fc.nat(100_000),
      stepMs: fc.nat(100_000),
      maxMs: fc.nat(1_000_000),
      jitter: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
    fc.record({
      kind: fc.constant('exponential' as const),
      baseMs: fc.nat(100_000),
      factor: fc.double({ min: 1, max: 10, noNaN: true }),
      maxMs: fc.nat(1_000_000),
      jitter: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
    fc.record({
      kind: fc.constant('decorrelated' as const),
      baseMs: fc.nat(100_000),
      maxMs: fc.nat(1_000_000),
    }),
  );

  type Spec = typeof arbBackoff extends fc.Arbitrary<infer S> ? S : never;

  /** The backoff, and the largest delay it may give (a constant has no cap: its ms plus jitter). */
  function build(spec: Spec): { backoff: Backoff; maxMs: number } {
    switch (spec.kind) {
      case 'constant':
        return {
          backoff: constant({ ms: spec.ms, jitter: spec.jitter }),
          maxMs: spec.ms * (1 + spec.jitter),
        };
      case 'linear': {
        const { kind: _, ...options } = spec;
        return { backoff: linear(options), maxMs: spec.maxMs };
      }
      case 'exponential': {
        const { kind: _, ...options } = spec;
        return { backoff: exponential(options), maxMs: spec.maxMs };
      }
      default:
        return { backoff: decorrelatedJitter({ baseMs: spec.baseMs, maxMs: spec.maxMs }), maxMs: spec.maxMs };
    }
  }

  test('every delay is a whole number within [0, maxMs]', () => {
    fc.assert(
      fc.property(
        arbBackoff,
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), {
          minLength: 1,
          maxLength: 60,
        }),
        (spec, randoms) => {
          const { backoff, maxMs } = build(spec);
          let i = 0;
          const got = delays(backoff, randoms.length, () => randoms[i++]!);
          for (const d of got) {
            if (!(Number.isInteger(d) && d >= 0 && d <= Math.ceil(maxMs))) return false;
          }
          return true;
        },
      ),
      { numRuns: 500 },
    );
  });

  test('decorrelated jitter stays within [0, maxMs] for any retry number and random values', () => {
    fc.assert(
      fc.property(
        fc.nat(100_000),
        fc.nat(1_000_000),
        fc.integer({ min: 1, max: 2_000 }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), {
          minLength: 1,
          maxLength: 30,
        }),
        (baseMs, maxMs, start, randoms) => {
          const b = decorrelatedJitter({ baseMs, maxMs });
          const memo = { prev: 0 };
          // Start anywhere in the sequence: the memory of the previous value must not break the bound.
          return randoms.every((r, i) => {
            const d = b.delayMs(start + i, () => r, memo);
            return d >= 0 && d <= maxMs;
          });
        },
      ),
      { numRuns: 500 },
    );
  });

  test('without jitter, linear and exponential delays never decrease', () => {
    fc.assert(
      fc.property(
        fc.nat(10_000),
        fc.double({ min: 1, max: 5, noNaN: true }),
        fc.nat(1_000_000),
        (baseMs, factor, maxMs) => {
          for (const b of [linear({ baseMs, maxMs }), exponential({ baseMs, factor, maxMs })]) {
            const d = delays(b, 40);
            for (let i = 1; i < d.length; i++) if (d[i]! < d[i - 1]!) return false;
          }
          return true;
        },
      ),
    );
  });
});
