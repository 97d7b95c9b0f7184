// Regressions: bugs seen in the libraries Bulwark is measured against, and bugs found in its own
// breaker and bulkhead. Each test names the bug it guards against.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BrokenCircuitError,
  bulkhead,
  type CircuitBreakerPolicy,
  circuitBreaker,
  ErrorCodes,
  flushMicrotasks,
  VirtualClock,
} from '@bulwark/core';

function transient(): Error {
  return Object.assign(new Error('upstream unavailable'), { status: 503 });
}

async function failWith(b: CircuitBreakerPolicy): Promise<void> {
  const error = transient();
  await assert.rejects(
    b.execute(() => Promise.reject(error)),
    (e) => e === error,
  );
}

describe('regressions: circuit breaker', () => {
  test("cockatiel's sampling breaker: failures from before an idle spell do not count after it", async () => {
    // cockatiel's SamplingBreaker kept stale windows across idle time: 4 failures, 5 quiet
    // minutes, then 1 failure opened a breaker whose window is 5 s.
    const clock = new VirtualClock(1_700_000_000_000);
    const b = circuitBreaker({
      clock,
      window: { kind: 'time', ms: 5_000 },
      minimumCalls: 5,
      failureRate: 0.5,
    });
    for (let i = 0; i < 4; i++) await failWith(b);
    await clock.advance(5 * 60 * 1000);
    await failWith(b);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().bufferedCalls, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a count window, by contrast, keeps its last N calls across idle time (that is what it means)', async () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const b = circuitBreaker({
      clock,
      window: { kind: 'count', size: 10 },
      minimumCalls: 5,
      failureRate: 0.5,
    });
    for (let i = 0; i < 4; i++) await failWith(b);
    await clock.advance(5 * 60 * 1000);
    await failWith(b);
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
    await assert.rejects(
      b.execute(() => 'x'),
      (e) =>
        e instanceof BrokenCircuitError && e.code === ErrorCodes.BROKEN_CIRCUIT && e.retryAfterMs === 30_000,
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
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const running = [b.execute(() => gate), b.execute(() => gate)];
    for (let round = 0; round < 5; round++) {
      const controllers = [new AbortController(), new AbortController(), new AbortController()];
      const queued = controllers.map((c) => b.execute(() => 'never', { signal: c.signal }));
      for (const c of controllers) c.abort(new Error('gone'));
      await Promise.allSettled(queued);
      assert.equal(b.stats().queued, 0);
    }
    release();
    await Promise.all(running);
    assert.deepEqual([b.stats().active, b.stats().queued, b.stats().rejected], [0, 0, 0]);
    const fresh = await Promise.all([b.execute(() => 'a'), b.execute(() => 'b')]);
    assert.deepEqual(fresh, ['a', 'b']);
    let gate2!: () => void;
    const held = [
      b.execute(() => new Promise<void>((r) => (gate2 = r))),
      b.execute(() => new Promise<void>(() => {})),
    ];
    await flushMicrotasks();
    const waiting = [b.execute(() => 'w1'), b.execute(() => 'w2'), b.execute(() => 'w3')];
    assert.equal(b.stats().queued, 3, 'the whole queue is available again');
    gate2();
    await held[0];
    assert.equal(await waiting[0], 'w1');
    assert.equal(clock.pendingTimers, 0);
  });
});

describe('regressions: timers kept alive while idle', () => {
  test('a process with 10,000 breakers and busy bulkheads, retries and timeouts exits on its own', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/idle-exit.ts', import.meta.url));
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const started = performance.now();
    const { code, signal, stdout, stderr } = await new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      execFile(
        process.execPath,
        ['--conditions=@bulwark/source', '--import', 'tsx', fixture],
        { cwd: root, timeout: 30_000, killSignal: 'SIGKILL' },
        (error, stdout, stderr) => {
          const e = error as (Error & { code?: number; signal?: NodeJS.Signals }) | null;
          resolve({
            code: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
            signal: e?.signal ?? null,
            stdout,
            stderr,
          });
        },
      );
    });
    const elapsed = performance.now() - started;
    assert.equal(signal, null, `the child had to be killed after ${Math.round(elapsed)} ms: ${stderr}`);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^done \d+\n$/);
    assert.ok(elapsed < 20_000, `the child took ${Math.round(elapsed)} ms to exit`);
  });
});
