// The rate limiter's rules held against step-by-step reference models under random arrivals
// and costs: every decision and retryAfterMs matches the model, no window of windowMs ever
// admits more than `limit`, and in mode 'wait' waiters go first in first out at the earliest
// time the model allows.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimitedError, rateLimiter, VirtualClock } from '@bulwark/core';
import fc from 'fast-check';

/** The permits a rule allows; `admits(t, n)` must not change state, `record` does. */
interface Model {
  admits(now: number, permits: number): boolean;
  record(now: number, permits: number): void;
}

/** A token bucket refilled one millisecond at a time (no closed form to share bugs with). */
function bucketModel(tokens: number, perMs: number, burst: number): Model {
  const capacity = burst * perMs;
  let level = capacity;
  let last = 0;
  const levelAt = (now: number) => {
    let l = level;
    for (let t = last; t < now; t++) l = Math.min(capacity, l + tokens);
    return l;
  };
  return {
    admits: (now, n) => levelAt(now) >= n * perMs,
    record: (now, n) => {
      level = levelAt(now) - n * perMs;
      last = now;
    },
  };
}

/** A sliding window that keeps every permit's time and counts those in (now - windowMs, now]. */
function windowModel(limit: number, windowMs: number): Model {
  const stamps: number[] = [];
  return {
    admits: (now, n) => stamps.filter((t) => t > now - windowMs).length + n <= limit,
    record: (now, n) => {
      for (let i = 0; i < n; i++) stamps.push(now);
    },
  };
}

/** The smallest d ≥ 1 such that the model admits n at now + d, or Infinity within `horizon`. */
function retryAfter(model: Model, now: number, n: number, horizon: number): number {
  for (let d = 1; d <= horizon; d++) if (model.admits(now + d, n)) return d;
  return Number.POSITIVE_INFINITY;
}

const ruleArb = fc.oneof(
  fc.record({
    kind: fc.constant('bucket' as const),
    tokens: fc.integer({ min: 1, max: 5 }),
    perMs: fc.integer({ min: 1, max: 50 }),
    burst: fc.integer({ min: 1, max: 6 }),
  }),
  fc.record({
    kind: fc.constant('window' as const),
    limit: fc.integer({ min: 1, max: 6 }),
    windowMs: fc.integer({ min: 1, max: 60 }),
  }),
);
type Rule = typeof ruleArb extends fc.Arbitrary<infer R> ? R : never;

const arrivalsArb = fc.array(
  fc.record({ gap: fc.integer({ min: 0, max: 30 }), cost: fc.integer({ min: 0, max: 3 }) }),
  {
    maxLength: 60,
  },
);

function build(rule: Rule, clock: VirtualClock, mode: 'reject' | 'wait', costs: number[]) {
  let i = 0;
  const common = { clock, mode, cost: () => costs[i++]! };
  return rule.kind === 'bucket'
    ? rateLimiter({ ...common, tokenBucket: { tokens: rule.tokens, perMs: rule.perMs, burst: rule.burst } })
    : rateLimiter({ ...common, slidingWindow: { limit: rule.limit, windowMs: rule.windowMs } });
}

const modelOf = (rule: Rule): Model =>
  rule.kind === 'bucket'
    ? bucketModel(rule.tokens, rule.perMs, rule.burst)
    : windowModel(rule.limit, rule.windowMs);
const capacityOf = (rule: Rule) => (rule.kind === 'bucket' ? rule.burst : rule.limit);

/** No window of windowMs holds more than `limit` admitted permits (checked at each admission). */
function assertWindowBound(rule: Rule, admitted: { at: number; cost: number }[]): void {
  if (rule.kind !== 'window') return;
  for (const a of admitted) {
    const inWindow = admitted.filter((b) => b.at > a.at - rule.windowMs && b.at <= a.at);
    assert.ok(inWindow.reduce((s, b) => s + b.cost, 0) <= rule.limit, `window ending at ${a.at} over limit`);
  }
}

test("mode 'reject' matches the reference model decision by decision, retryAfterMs included", async () => {
  await fc.assert(
    fc.asyncProperty(ruleArb, arrivalsArb, async (rule, arrivals) => {
      const clock = new VirtualClock();
      const limiter = build(
        rule,
        clock,
        'reject',
        arrivals.map((a) => a.cost),
      );
      const model = modelOf(rule);
      const admitted: { at: number; cost: number }[] = [];
      for (const { gap, cost } of arrivals) {
        await clock.advance(gap);
        const now = clock.now();
        const expected = model.admits(now, cost);
        const got = await limiter
          .execute(() => 'ok')
          .then(
            () => 0,
            (e: unknown) => {
              assert.ok(e instanceof RateLimitedError);
              return e.retryAfterMs;
            },
          );
        if (expected) {
          assert.equal(got, 0, `at ${now} cost ${cost} should be admitted`);
          model.record(now, cost);
          admitted.push({ at: now, cost });
        } else {
          const horizon = cost > capacityOf(rule) ? 0 : 10_000;
          assert.equal(got, retryAfter(model, now, cost, horizon), `retryAfterMs at ${now} for cost ${cost}`);
        }
      }
      assertWindowBound(rule, admitted);
      assert.equal(clock.pendingTimers, 0);
    }),
    { numRuns: 300 },
  );
});

test("mode 'wait' admits in arrival order, each at the earliest time the model allows", async () => {
  await fc.assert(
    fc.asyncProperty(ruleArb, arrivalsArb, async (rule, arrivals) => {
      const capacity = capacityOf(rule);
      const fitting = arrivals.map((a) => ({ ...a, cost: Math.min(a.cost, capacity) }));
      const clock = new VirtualClock();
      const limiter = build(
        rule,
        clock,
        'wait',
        fitting.map((a) => a.cost),
      );
      const admitted: { index: number; at: number; cost: number; arrived: number }[] = [];
      const calls: Promise<unknown>[] = [];
      for (const [index, { gap, cost }] of fitting.entries()) {
        await clock.advance(gap);
        const arrived = clock.now();
        calls.push(limiter.execute(() => admitted.push({ index, at: clock.now(), cost, arrived })));
      }
      await clock.runAll();
      await Promise.all(calls);
      assert.deepEqual(
        admitted.map((a) => a.index),
        fitting.map((_, i) => i),
      );
      // Replay through the model: each admission is allowed at its time, and was not allowed a
      // millisecond earlier unless it could not have gone earlier (its arrival or its predecessor).
      const model = modelOf(rule);
      let previous = 0;
      for (const a of admitted) {
        assert.ok(model.admits(a.at, a.cost), `admission ${a.index} at ${a.at} breaks the limit`);
        const earliest = Math.max(a.arrived, previous);
        if (a.at > earliest) assert.ok(!model.admits(a.at - 1, a.cost), `admission ${a.index} came late`);
        model.record(a.at, a.cost);
        previous = a.at;
      }
      assertWindowBound(rule, admitted);
      assert.equal(limiter.stats().waiting, 0);
      assert.equal(clock.pendingTimers, 0);
    }),
    { numRuns: 300 },
  );
});
