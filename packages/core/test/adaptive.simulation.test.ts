// Adaptive concurrency against a simulated dependency on the virtual clock: the limit must find
// the dependency's knee, and under overload the low-priority partition must be shed first.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type AdaptiveConcurrencyPolicy,
  adaptiveConcurrency,
  aimd,
  type ConcurrencyLimit,
  ConcurrencyLimitError,
  gradient2,
  TimeoutError,
  VirtualClock,
} from '@bulwark/core';
import { seeded } from './support.ts';

/** The dependency's capacity: up to K calls at once it answers in BASE_MS. */
const K = 20;
const BASE_MS = 10;
/** The client's timeout: a call slower than this fails with TimeoutError (a drop). */
const CLIENT_TIMEOUT_MS = 3 * BASE_MS;
/** Calls per ms the dependency completes at its knee (K calls every BASE_MS). */
const CAPACITY_PER_MS = K / BASE_MS;

/**
 * A dependency that shares K workers among the calls in flight: beyond K, each call's latency
 * grows in proportion to the concurrency it found (base × n / K), so throughput stays K / base
 * and only latency grows, as a saturated server behaves.
 */
function dependency(clock: VirtualClock) {
  let inflight = 0;
  return async (): Promise<string> => {
    inflight++;
    try {
      const latency = BASE_MS * Math.max(1, inflight / K);
      if (latency > CLIENT_TIMEOUT_MS) {
        await clock.sleep(CLIENT_TIMEOUT_MS);
        throw new TimeoutError(CLIENT_TIMEOUT_MS);
      }
      await clock.sleep(latency);
      return 'ok';
    } finally {
      inflight--;
    }
  };
}

interface Tally {
  ok: number;
  shed: number;
  failed: number;
}

/**
 * Drives an open loop: every virtual ms, `perMs` new calls (each given a priority by `pick`),
 * for `ms`; records the limit each ms after `settleMs`. Returns the tallies by priority.
 */
async function openLoop(
  clock: VirtualClock,
  policy: AdaptiveConcurrencyPolicy,
  {
    perMs,
    ms,
    settleMs,
    pick,
  }: { perMs: number; ms: number; settleMs: number; pick: () => string | undefined },
) {
  const call = dependency(clock);
  const tallies = new Map<string | undefined, Tally>();
  const limits: number[] = [];
  const calls: Promise<unknown>[] = [];
  for (let t = 0; t < ms; t++) {
    for (let i = 0; i < perMs; i++) {
      const priority = pick();
      let tally = tallies.get(priority);
      if (tally === undefined) tallies.set(priority, (tally = { ok: 0, shed: 0, failed: 0 }));
      const counts = tally;
      calls.push(
        policy.execute(call, { priority }).then(
          () => counts.ok++,
          (error) => (error instanceof ConcurrencyLimitError ? counts.shed++ : counts.failed++),
        ),
      );
    }
    await clock.advance(1);
    if (t >= settleMs) limits.push(policy.limit);
  }
  await clock.runAll();
  await Promise.all(calls);
  assert.equal(clock.pendingTimers, 0);
  const total = [...tallies.values()].reduce((a, b) => ({
    ok: a.ok + b.ok,
    shed: a.shed + b.shed,
    failed: a.failed + b.failed,
  }));
  return { tallies, total, limits };
}

function settlesAtTheKnee(limit: () => ConcurrencyLimit, maxFactor: number) {
  return async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({ limit: limit(), clock });
    const ms = 4_000;
    // Twice what the dependency can serve, so the limit is always in use.
    const { total, limits } = await openLoop(clock, policy, {
      perMs: 2 * CAPACITY_PER_MS,
      ms,
      settleMs: 1_000,
      pick: () => undefined,
    });
    const low = Math.min(...limits);
    const high = Math.max(...limits);
    assert.ok(low >= 0.5 * K && high <= maxFactor * K, `limit ranged ${low}..${high} around knee ${K}`);
    // Near the knee and not beyond it: the dependency serves at its capacity, and calls rarely time out.
    assert.ok(
      total.ok >= 0.9 * CAPACITY_PER_MS * ms,
      `served ${total.ok} of a capacity of ${CAPACITY_PER_MS * ms}`,
    );
    assert.ok(total.failed <= 0.01 * total.ok, `${total.failed} timeouts`);
  };
}

describe('adaptive concurrency: simulation', () => {
  test(
    'aimd settles near the knee of a dependency whose latency grows beyond its capacity',
    // AIMD reads only drops: a call slower than 1.5 × the base latency counts as one.
    settlesAtTheKnee(() => aimd({ timeoutMs: 1.5 * BASE_MS }), 2),
  );

  test(
    'gradient2 settles near the knee of a dependency whose latency grows beyond its capacity',
    // Gradient2 keeps latency near rttTolerance × its long-term RTT, which itself creeps up under
    // sustained load (Netflix's design accepts it): a band a little wider than AIMD's.
    settlesAtTheKnee(() => gradient2(), 2.5),
  );

  test('under 3x overload critical keeps at least 90% success while batch is shed', async () => {
    const clock = new VirtualClock();
    const policy = adaptiveConcurrency({
      limit: gradient2(),
      partitions: { critical: 0.5, normal: 0.4, batch: 0.1 },
      clock,
    });
    const random = seeded(7);
    // 10% critical, 30% normal, 60% batch, at three times the dependency's capacity.
    const pick = () => {
      const r = random();
      return r < 0.1 ? 'critical' : r < 0.4 ? 'normal' : 'batch';
    };
    const { tallies, total } = await openLoop(clock, policy, {
      perMs: 3 * CAPACITY_PER_MS,
      ms: 3_000,
      settleMs: 0,
      pick,
    });
    const critical = tallies.get('critical')!;
    const batch = tallies.get('batch')!;
    const rate = (t: Tally) => t.ok / (t.ok + t.shed + t.failed);
    assert.ok(rate(critical) >= 0.9, `critical success ${rate(critical)}`);
    assert.ok(rate(batch) < 0.5, `batch success ${rate(batch)}`);
    assert.ok(batch.shed > 0.6 * total.shed, `batch took ${batch.shed} of ${total.shed} rejections`);
    const stats = policy.stats();
    assert.equal(stats.partitions.batch!.rejected, batch.shed);
    assert.equal(stats.rejected, total.shed);
    assert.equal(stats.inflight, 0);
  });
});
