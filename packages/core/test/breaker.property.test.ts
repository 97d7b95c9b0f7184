// The circuit breaker held against a small reference model: random sequences of sequential
// calls (success, transient failure, permanent error; each taking some virtual time), clock
// advances and state reads. The state and the accept/reject decision must match at every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BrokenCircuitError,
  type CircuitBreakerOptions,
  type CircuitState,
  circuitBreaker,
  VirtualClock,
} from '@bulwark/core';
import fc from 'fast-check';
import { permanent, transient } from './support.ts';

type WindowConfig =
  | { kind: 'consecutive'; failures: number }
  | { kind: 'count'; size: number }
  | { kind: 'time'; width: number; buckets: number };

interface Config {
  window: WindowConfig;
  minimumCalls: number;
  failureRate: number;
  slow: { thresholdMs: number; rate: number } | undefined;
  openMs: number;
  backoff: { factor: number; maxMs: number } | undefined;
  successes: number;
}

type Action =
  | { kind: 'call'; outcome: 'success' | 'failure' | 'permanent'; durationMs: number }
  | { kind: 'advance'; ms: number }
  /** Advance to just before, exactly at, or just after the end of the current opening. */
  | { kind: 'to-open-end'; delta: -1 | 0 | 1 }
  /** Advance to `k` bucket edges ahead (a time window's boundaries), or 1 ms short of it. */
  | { kind: 'to-bucket-edge'; k: number; delta: -1 | 0 }
  | { kind: 'read' };

interface Entry {
  at: number; // the time the outcome was recorded
  failure: boolean;
  slow: boolean;
}

/** What the breaker should do, written as plainly as possible. */
class Model {
  state: CircuitState = 'closed';
  openedAt = 0;
  openFor = 0;
  openings = 0;
  probeSuccesses = 0;
  entries: Entry[] = [];

  constructor(readonly c: Config) {}

  /** Open becomes half-open when its time is up, whoever looks. */
  look(now: number): CircuitState {
    if (this.state === 'open' && now >= this.openedAt + this.openFor) {
      this.state = 'half-open';
      this.probeSuccesses = 0;
    }
    return this.state;
  }

  retryAfter(now: number): number {
    return this.look(now) === 'open' ? this.openedAt + this.openFor - now : 0;
  }

  /** The outcomes the window holds at `now`. */
  held(now: number): Entry[] {
    const w = this.c.window;
    if (w.kind === 'count') return this.entries.slice(-w.size);
    if (w.kind === 'time') {
      const current = Math.floor(now / w.width);
      return this.entries.filter((e) => Math.floor(e.at / w.width) > current - w.buckets);
    }
    // consecutive: the current runs of failures and of slow calls
    let failures = 0;
    for (let i = this.entries.length - 1; i >= 0 && this.entries[i]!.failure; i--) failures++;
    let slow = 0;
    for (let i = this.entries.length - 1; i >= 0 && this.entries[i]!.slow; i--) slow++;
    const run: Entry[] = [];
    for (let i = 0; i < Math.max(failures, slow); i++)
      run.push({ at: now, failure: i < failures, slow: i < slow });
    return run;
  }

  counts(now: number): { calls: number; failures: number; slow: number } {
    const held = this.held(now);
    return {
      calls: held.length,
      failures: held.filter((e) => e.failure).length,
      slow: held.filter((e) => e.slow).length,
    };
  }

  open(now: number): void {
    this.openings++;
    const base = this.c.openMs;
    const b = this.c.backoff;
    this.openFor = b === undefined ? base : Math.min(b.maxMs, base * b.factor ** (this.openings - 1));
    this.openedAt = now;
    this.state = 'open';
  }

  close(): void {
    this.state = 'closed';
    this.openings = 0;
    this.entries = [];
  }

  /** Closed or half-open: the call runs. Its outcome, at `end` after starting at `start`: */
  settle(probe: boolean, outcome: 'success' | 'failure' | 'permanent', start: number, end: number): void {
    if (outcome === 'permanent') return; // not recorded at all; a probe just gives its permit back
    const slow = this.c.slow !== undefined && end - start >= this.c.slow.thresholdMs;
    const failure = outcome === 'failure';
    if (probe) {
      if (failure || slow) this.open(end);
      else if (++this.probeSuccesses >= this.c.successes) this.close();
      return;
    }
    this.entries.push({ at: end, failure, slow });
    const w = this.c.window;
    const c = this.counts(end);
    if (w.kind === 'consecutive') {
      if (c.failures >= w.failures || c.slow >= w.failures) this.open(end);
      return;
    }
    const minimum = w.kind === 'count' ? Math.min(w.size, this.c.minimumCalls) : this.c.minimumCalls;
    if (c.calls < minimum) return;
    if (c.failures / c.calls >= this.c.failureRate) this.open(end);
    else if (this.c.slow !== undefined && c.slow / c.calls >= this.c.slow.rate) this.open(end);
  }
}

const rates = fc.constantFrom(0.1, 0.25, 0.5, 0.6, 0.75, 1);

const windowArb: fc.Arbitrary<WindowConfig> = fc.oneof(
  fc.record({ kind: fc.constant('consecutive' as const), failures: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ kind: fc.constant('count' as const), size: fc.integer({ min: 1, max: 10 }) }),
  fc.record({
    kind: fc.constant('time' as const),
    width: fc.integer({ min: 100, max: 2_000 }),
    buckets: fc.integer({ min: 1, max: 10 }),
  }),
);

const configArb: fc.Arbitrary<Config> = fc.record({
  window: windowArb,
  minimumCalls: fc.integer({ min: 1, max: 8 }),
  failureRate: rates,
  slow: fc.option(fc.record({ thresholdMs: fc.constantFrom(1, 50, 100, 200), rate: rates }), {
    nil: undefined,
  }),
  openMs: fc.integer({ min: 1, max: 5_000 }),
  backoff: fc.option(
    fc.record({ factor: fc.constantFrom(1.5, 2, 3), maxMs: fc.integer({ min: 5_000, max: 40_000 }) }),
    { nil: undefined },
  ),
  successes: fc.integer({ min: 1, max: 3 }),
});

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('call' as const),
      outcome: fc.constantFrom(
        'success' as const,
        'failure' as const,
        'failure' as const,
        'permanent' as const,
      ),
      // Durations on and around the slow-call thresholds the configs use.
      durationMs: fc.oneof(
        fc.constantFrom(0, 1, 49, 50, 99, 100, 199, 200),
        fc.integer({ min: 0, max: 400 }),
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 0, max: 60_000 })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('to-open-end' as const),
      delta: fc.constantFrom(-1 as const, 0 as const, 1 as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('to-bucket-edge' as const),
      k: fc.integer({ min: 1, max: 11 }),
      delta: fc.constantFrom(-1 as const, 0 as const),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'read' as const }) },
);

function optionsOf(c: Config, clock: VirtualClock): CircuitBreakerOptions {
  const w = c.window;
  return {
    clock,
    window:
      w.kind === 'time'
        ? { kind: 'time', ms: w.width * w.buckets, buckets: w.buckets }
        : (w as CircuitBreakerOptions['window']),
    minimumCalls: c.minimumCalls,
    failureRate: c.failureRate,
    ...(c.slow !== undefined ? { slowCall: c.slow } : {}),
    openMs: c.openMs,
    ...(c.backoff !== undefined ? { openBackoff: c.backoff } : {}),
    halfOpen: { probes: 1, successes: c.successes },
  };
}

function errorOf(outcome: 'failure' | 'permanent'): Error {
  return outcome === 'failure' ? transient() : permanent();
}

async function check(config: Config, actions: Action[]): Promise<void> {
  const clock = new VirtualClock(1_000_000);
  const breaker = circuitBreaker(optionsOf(config, clock));
  const model = new Model(config);
  for (const [step, action] of actions.entries()) {
    const at = `step ${step} (${JSON.stringify(action)})`;
    if (action.kind === 'advance') {
      await clock.advance(action.ms);
      continue;
    }
    if (action.kind === 'to-open-end') {
      const left = model.retryAfter(clock.now());
      if (left > 0) await clock.advance(Math.max(0, left + action.delta));
      continue;
    }
    if (action.kind === 'to-bucket-edge') {
      const width = config.window.kind === 'time' ? config.window.width : 1_000;
      const edge = (Math.floor(clock.now() / width) + action.k) * width + action.delta;
      await clock.advance(Math.max(0, edge - clock.now()));
      continue;
    }
    if (action.kind === 'read') {
      assert.equal(breaker.state, model.look(clock.now()), `${at}: state`);
      const stats = breaker.stats();
      const counts = model.counts(clock.now());
      assert.equal(stats.retryAfterMs, model.retryAfter(clock.now()), `${at}: retryAfterMs`);
      assert.deepEqual(
        [stats.bufferedCalls, stats.bufferedFailures, stats.bufferedSlowCalls],
        [counts.calls, counts.failures, counts.slow],
        `${at}: window counts`,
      );
      continue;
    }
    const start = clock.now();
    const expected = model.look(start);
    let ran = false;
    const call = breaker.execute(async () => {
      ran = true;
      if (action.durationMs > 0) await clock.sleep(action.durationMs);
      if (action.outcome !== 'success') throw errorOf(action.outcome);
      return 'ok';
    });
    const settled = call.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    if (expected === 'open') {
      const result = await settled;
      assert.equal(ran, false, `${at}: an open circuit ran the operation`);
      assert.ok(
        !result.ok && result.error instanceof BrokenCircuitError,
        `${at}: expected BrokenCircuitError`,
      );
      assert.equal(
        (result.error as BrokenCircuitError).retryAfterMs,
        model.retryAfter(start),
        `${at}: retryAfterMs`,
      );
      continue;
    }
    assert.equal(ran, true, `${at}: a ${expected} circuit refused the call`);
    if (action.durationMs > 0) await clock.advance(action.durationMs);
    const result = await settled;
    assert.equal(result.ok, action.outcome === 'success', `${at}: outcome`);
    model.settle(expected === 'half-open', action.outcome, start, clock.now());
    assert.equal(breaker.state, model.look(clock.now()), `${at}: state after the call`);
  }
  assert.equal(clock.pendingTimers, 0, 'the breaker never sets a timer');
}

test('the breaker matches the reference model under random calls, advances and reads', async () => {
  await fc.assert(fc.asyncProperty(configArb, fc.array(actionArb, { minLength: 1, maxLength: 60 }), check), {
    numRuns: 500,
  });
});

test('the breaker matches the model on long failure-heavy runs of a time window', async () => {
  const timeConfig = configArb.map((c) => ({
    ...c,
    window: { kind: 'time' as const, width: 500, buckets: 10 },
  }));
  await fc.assert(
    fc.asyncProperty(timeConfig, fc.array(actionArb, { minLength: 50, maxLength: 150 }), check),
    { numRuns: 60 },
  );
});
