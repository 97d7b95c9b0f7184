// Regressions: bugs seen in the libraries Bulwark is measured against, and bugs found in its own
// breaker and bulkhead. Each test names the bug it guards against.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type BreakerWindowOptions,
  BrokenCircuitError,
  bulkhead,
  circuitBreaker,
  ErrorCodes,
  flushMicrotasks,
  VirtualClock,
} from '@bulwark/core';
import { deferred, failWith, hang, rejectsWith, runTypeScript } from './support.ts';

describe('regressions: circuit breaker', () => {
  /** 4 failures, 5 quiet minutes, then 1 failure, on a breaker that needs 5 calls and trips at 50%. */
  async function failuresAcrossAnIdleSpell(window: BreakerWindowOptions) {
    const clock = new VirtualClock(1_700_000_000_000);
    const b = circuitBreaker({ clock, window, minimumCalls: 5, failureRate: 0.5 });
    for (let i = 0; i < 4; i++) await failWith(b);
    await clock.advance(5 * 60 * 1000);
    await failWith(b);
    return { b, clock };
  }

  test("cockatiel's sampling breaker: failures from before an idle spell do not count after it", async () => {
    // cockatiel's SamplingBreaker kept stale windows across idle time: 4 failures, 5 quiet
    // minutes, then 1 failure opened a breaker whose window is 5 s.
    const { b, clock } = await failuresAcrossAnIdleSpell({ kind: 'time', ms: 5_000 });
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().bufferedCalls, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a count window, by contrast, keeps its last N calls across idle time (that is what it means)', async () => {
    const { b } = await failuresAcrossAnIdleSpell({ kind: 'count', size: 10 });
    assert.equal(b.state, 'open');
  });

  test('a success that completes minimumCalls trips the breaker when the failure rate is at the threshold', async () => {
    // The breaker judged the window only after failures (and slow successes), so F F F S S
    // (3 of 5 = 60%, minimum 5, threshold 50%) stayed closed.
    const b = circuitBreaker({
      clock: new VirtualClock(),
      window: { kind: 'count', size: 10 },
      minimumCalls: 5,
      failureRate: 0.5,
    });
    for (let i = 0; i < 3; i++) await failWith(b);
    await b.execute(() => 'ok');
    await b.execute(() => 'ok');
    assert.equal(b.state, 'open');
  });

  test('a circuit opened by a success on an untimed count window stays open for openMs from now', async () => {
    // Untimed windows are judged at time 0; opening must still read the clock.
    const clock = new VirtualClock(1_700_000_000_000);
    const b = circuitBreaker({
      clock,
      window: { kind: 'count', size: 2 },
      minimumCalls: 2,
      failureRate: 0.5,
      openMs: 30_000,
    });
    await failWith(b);
    await b.execute(() => 'ok');
    await rejectsWith(
      b.execute(() => 'x'),
      BrokenCircuitError,
      { code: ErrorCodes.BROKEN_CIRCUIT, retryAfterMs: 30_000 },
    );
  });

  test('an untouched time window exports a JSON-safe snapshot (no -Infinity turning into null)', () => {
    const b = circuitBreaker({ clock: new VirtualClock(), window: { kind: 'time', ms: 10_000 } });
    const snapshot = b.exportState();
    assert.deepEqual(JSON.parse(JSON.stringify(snapshot)), snapshot);
    // and a snapshot of an empty window whose start JSON turned into null still imports
    const legacy = JSON.parse(
      JSON.stringify({ ...snapshot, window: { ...snapshot.window, start: -Infinity } }),
    );
    assert.equal(legacy.window.start, null);
    b.importState(legacy);
    assert.equal(b.stats().bufferedCalls, 0);
  });
});

describe('regressions: bulkhead', () => {
  test("cockatiel's bulkhead: callers aborted while queued do not starve it", async () => {
    // cockatiel kept aborted waiters in its queue count, so after enough aborts new callers were
    // rejected (or waited) although nothing was running.
    const clock = new VirtualClock();
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 3, clock });
    const gate = deferred<void>();
    const running = [b.execute(() => gate.promise), b.execute(() => gate.promise)];
    for (let round = 0; round < 5; round++) {
      const controllers = [new AbortController(), new AbortController(), new AbortController()];
      const queued = controllers.map((c) => b.execute(() => 'never', { signal: c.signal }));
      for (const c of controllers) c.abort(new Error('gone'));
      await Promise.allSettled(queued);
      assert.equal(b.stats().queued, 0);
    }
    gate.resolve();
    await Promise.all(running);
    assert.deepEqual([b.stats().active, b.stats().queued, b.stats().rejected], [0, 0, 0]);
    const fresh = await Promise.all([b.execute(() => 'a'), b.execute(() => 'b')]);
    assert.deepEqual(fresh, ['a', 'b']);
    const gate2 = deferred<void>();
    const held = [b.execute(() => gate2.promise), b.execute(hang)];
    await flushMicrotasks();
    const waiting = [b.execute(() => 'w1'), b.execute(() => 'w2'), b.execute(() => 'w3')];
    assert.equal(b.stats().queued, 3, 'the whole queue is available again');
    gate2.resolve();
    await held[0];
    assert.equal(await waiting[0], 'w1');
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('regressions: timers kept alive while idle', () => {
  test('a process with 10,000 breakers and busy bulkheads, retries and timeouts exits on its own', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/idle-exit.ts', import.meta.url));
    const started = performance.now();
    type Exit = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };
    const { code, signal, stdout, stderr } = await runTypeScript(fixture, [], {
      timeout: 30_000,
      killSignal: 'SIGKILL',
    }).then(
      ({ stdout, stderr }): Exit => ({ code: 0, signal: null, stdout, stderr }),
      (e: Error & Partial<Exit>): Exit => ({
        code: typeof e.code === 'number' ? e.code : null,
        signal: e.signal ?? null,
        stdout: e.stdout ?? '',
        stderr: e.stderr ?? '',
      }),
    );
    const elapsed = performance.now() - started;
    assert.equal(signal, null, `the child had to be killed after ${Math.round(elapsed)} ms: ${stderr}`);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^done \d+\n$/);
    assert.ok(elapsed < 20_000, `the child took ${Math.round(elapsed)} ms to exit`);
  });
});
