// The thread-pool bulkhead against real worker threads (piscina): results and errors, isolation
// of the event loop, the queue bound, timeouts and aborts that terminate threads, heap limits.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  BulkheadRejectedError,
  bulkhead,
  classify,
  ErrorCodes,
  PoolClosedError,
  pipeline,
  type ThreadPool,
  type ThreadPoolInit,
  TimeoutError,
  threadPool,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import { recordEvents, rejectsWith, repoRoot, throwsInvalid, track, withWarnings } from './support.ts';

const moduleUrl = new URL('./fixtures/compute-worker.mjs', import.meta.url);
const modulePath = fileURLToPath(moduleUrl);

/** A pool over the fixture module, closed when `body` ends however it ends. */
async function withPool(
  options: Partial<ThreadPoolInit>,
  body: (pool: ThreadPool) => Promise<void>,
): Promise<void> {
  const pool = threadPool({ module: modulePath, ...options });
  try {
    await body(pool);
  } finally {
    await pool.close({ force: true });
  }
}

/** Waits (bounded, real time) until `condition` holds: for things only a worker thread can make true. */
async function until(condition: () => boolean, what: string, limitMs = 2_000): Promise<void> {
  const end = performance.now() + limitMs;
  while (!condition()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Starts the `runaway` task and waits until it is spinning; `state` is its shared report. */
async function startRunaway(pool: ThreadPool, signal?: AbortSignal) {
  const state = new Int32Array(new SharedArrayBuffer(8));
  const call = track(pool.run('runaway', state.buffer, { signal }));
  await until(() => Atomics.load(state, 1) > 0, 'the runaway task to start');
  return { call, state, threadId: Atomics.load(state, 0) };
}

/**
 * Asserts that the thread behind `state` stopped counting: it was terminated, not merely given up
 * on. A live thread counts millions a second; a still count for 150 ms (longer than any time
 * slice a busy machine withholds) means the thread is gone.
 */
async function assertTerminated(state: Int32Array): Promise<void> {
  const end = performance.now() + 3_000;
  let last = Atomics.load(state, 1);
  let stillSince = performance.now();
  while (performance.now() - stillSince < 150) {
    if (performance.now() > end) assert.fail('the runaway thread kept running');
    await sleep(20);
    const count = Atomics.load(state, 1);
    if (count !== last) {
      last = count;
      stillSince = performance.now();
    }
  }
}

describe('thread pool: tasks', () => {
  test('runs the named exports of the worker module and returns their results', async () => {
    await withPool({ size: 2 }, async (pool) => {
      assert.equal(await pool.run('add', { a: 2, b: 3 }), 5);
      assert.equal(await pool.run('addLater', { a: 1, b: 1 }), 2);
      const threads = await Promise.all([pool.run('spin', 50), pool.run('spin', 50)]);
      assert.notEqual(threads[0], threads[1], 'two tasks at once run on two threads');
      assert.notEqual(await pool.run('whoAmI'), 0, 'never on the main thread');
    });
  });

  test('accepts a file: URL as the module', async () => {
    await withPool({ module: moduleUrl.href, size: 1 }, async (pool) => {
      assert.equal(await pool.run('add', { a: 20, b: 22 }), 42);
    });
  });

  test('an error thrown in the worker reaches the caller with its class and message', async () => {
    await withPool({ size: 1 }, async (pool) => {
      const error = await rejectsWith(pool.run('fail', 'bad input'), RangeError);
      assert.equal(error.message, 'bad input');
      await assert.rejects(pool.run('noSuchTask'), /No handler function/);
      assert.equal(await pool.run('add', { a: 1, b: 2 }), 3, 'the pool goes on');
      assert.equal(pool.stats().failed, 2);
    });
  });
});

describe('thread pool: a module that does not load', () => {
  test('fails its tasks instead of leaving them waiting for a thread', async () => {
    const missing = fileURLToPath(new URL('./fixtures/no-such-module.mjs', import.meta.url));
    await withWarnings(async (warnings) => {
      await withPool({ module: missing, size: 1, maxQueue: 2 }, async (pool) => {
        const calls = [1, 2, 3].map(() =>
          pool.run('add', { a: 1, b: 2 }).then(
            () => assert.fail('ran'),
            (e: unknown) => e,
          ),
        );
        for (const error of await Promise.all(calls)) {
          assert.equal((error as { code?: string }).code, 'ERR_MODULE_NOT_FOUND');
          assert.equal(classify(error), 'permanent');
        }
        assert.equal(pool.stats().failed, 3);
        assert.equal(pool.stats().threads, 0);
        // The next task starts afresh (the module may have been deployed since), and fails alike.
        await assert.rejects(pool.run('add', { a: 1, b: 2 }), { code: 'ERR_MODULE_NOT_FOUND' });
      });
      await new Promise(setImmediate);
      assert.ok(warnings.some((w) => w.name === 'BulwarkThreadPoolWarning'));
    });
  });
});

describe('thread pool: isolation', () => {
  test('a saturated pool delays neither other pipelines nor the event loop', async () => {
    const SPIN_MS = 500;
    // Leave the main thread a core of its own, so the test measures isolation, not the machine.
    const size = Math.max(1, Math.min(2, availableParallelism() - 1));
    await withPool({ size, maxQueue: size }, async (pool) => {
      await pool.run('add', { a: 0, b: 0 }); // threads started, so the spins below start at once
      const other = pipeline(timeout({ ms: 1_000 }), bulkhead({ maxConcurrent: 10 }));
      const histogram = monitorEventLoopDelay({ resolution: 5 });
      histogram.enable();
      const started = performance.now();
      const spins = Array.from({ length: 2 * size }, () => pool.run<number>('spin', SPIN_MS));
      assert.deepEqual([pool.stats().active, pool.stats().queued], [size, size], 'threads busy, queue full');
      await rejectsWith(pool.run('spin', SPIN_MS), BulkheadRejectedError);

      const latencies: number[] = [];
      while (performance.now() - started < 2 * SPIN_MS - 100) {
        const t0 = performance.now();
        await other.execute(({ signal }) => sleep(5, undefined, { signal }));
        latencies.push(performance.now() - t0);
      }
      const spinThreads = await Promise.all(spins);
      const elapsed = performance.now() - started;
      histogram.disable();

      assert.ok(elapsed >= 2 * SPIN_MS, `the spins took two rounds (${elapsed} ms)`);
      assert.equal(new Set(spinThreads).size, size);
      assert.ok(latencies.length >= 20, `other calls kept going (${latencies.length})`);
      assert.ok(Math.max(...latencies) < 200, `other calls stayed prompt: ${Math.max(...latencies)} ms`);
      const maxDelayMs = histogram.max / 1e6;
      // A blocked loop would stall a whole spin; the slack is for a busy machine's scheduler.
      assert.ok(maxDelayMs < SPIN_MS / 2, `event loop delay ${maxDelayMs} ms while a spin is ${SPIN_MS} ms`);
    });
  });
});

describe('thread pool: queue bound', () => {
  test('rejects at once when every thread is busy and the queue is full', async () => {
    await withPool({ size: 1, maxQueue: 1, name: 'render' }, async (pool) => {
      const events = recordEvents(pool);
      const first = track(pool.run('spin', 300));
      const second = track(pool.run('spin', 10));
      const third = track(pool.run('spin', 10));
      await new Promise(setImmediate);
      assert.equal(third.status, 'rejected', 'refused without waiting for a thread');
      assert.equal(first.status, 'pending');
      const error = await rejectsWith<BulkheadRejectedError>(third.promise, BulkheadRejectedError, {
        code: ErrorCodes.BULKHEAD_REJECTED,
        reason: 'queue-full',
        bulkhead: 'render',
      });
      assert.equal(error.stack?.split('\n').length, 1, 'a fast-fail carries no stack trace');
      assert.equal(classify(error), 'transient');
      assert.deepEqual(events, [
        {
          type: 'pool:rejected',
          policy: 'render',
          operation: 'spin',
          reason: 'queue-full',
          active: 1,
          queued: 1,
        },
      ]);
      await Promise.all([first.promise, second.promise]);
      assert.equal(pool.stats().rejected, 1);
      assert.equal(await pool.run('add', { a: 1, b: 1 }), 2, 'room again once the queue drained');
    });
  });

  test('maxQueue 0 admits only as many tasks as threads', async () => {
    await withPool({ size: 2, maxQueue: 0 }, async (pool) => {
      const running = [pool.run('spin', 100), pool.run('spin', 100)];
      await rejectsWith(pool.run('add', { a: 1, b: 1 }), BulkheadRejectedError);
      await Promise.all(running);
    });
  });
});

describe('thread pool: timeouts', () => {
  test('a runaway task fails with TimeoutError and its thread is terminated and replaced', async () => {
    const clock = new VirtualClock();
    await withPool({ size: 1, taskTimeoutMs: 200, clock, name: 'parser' }, async (pool) => {
      const events = recordEvents(pool);
      const { call, state, threadId } = await startRunaway(pool);
      await until(() => clock.pendingTimers === 1, 'one timer for the running task');
      await clock.advance(199);
      assert.equal(call.status, 'pending');
      await clock.advance(1);
      await rejectsWith(call.promise, TimeoutError, { code: ErrorCodes.TIMEOUT, timeoutMs: 200 });
      assert.deepEqual(events, [
        { type: 'pool:timeout', policy: 'parser', operation: 'runaway', timeoutMs: 200 },
      ]);
      await assertTerminated(state);

      const next = await pool.run<number>('whoAmI');
      assert.notEqual(next, threadId, 'the next task runs on a new thread');
      assert.equal(clock.pendingTimers, 0, 'no timer once the pool is idle');
      assert.equal(pool.stats().timedOut, 1);
      assert.equal(pool.stats().threads, 1);
    });
  });

  test("a thread's start-up does not count against the task's timeout", async () => {
    const clock = new VirtualClock();
    await withPool({ size: 1, taskTimeoutMs: 200, clock }, async (pool) => {
      const state = new Int32Array(new SharedArrayBuffer(8));
      const call = track(pool.run('runaway', state.buffer));
      // The task is handed to piscina as soon as its thread exists, long before that thread has
      // started (Node, the loader hooks and the module take tens of milliseconds).
      await until(() => pool.stats().threads === 1, 'the thread to be created', 2_000);
      await clock.advance(10_000);
      assert.equal(call.status, 'pending');
      await until(() => clock.pendingTimers === 1, 'the timer, once the thread has started');
      await clock.advance(200);
      await rejectsWith(call.promise, TimeoutError);
      await assertTerminated(state);
    });
  });

  test('a runaway task on the real clock is stopped after taskTimeoutMs', async () => {
    await withPool({ size: 1, taskTimeoutMs: 200 }, async (pool) => {
      const state = new Int32Array(new SharedArrayBuffer(8));
      const started = performance.now();
      await rejectsWith(pool.run('runaway', state.buffer), TimeoutError);
      const took = performance.now() - started;
      assert.ok(took >= 190 && took < 1_500, `timed out after ${took} ms`);
      await assertTerminated(state);
    });
  });

  test('a task that finishes in time clears its timer', async () => {
    const clock = new VirtualClock();
    await withPool({ size: 1, taskTimeoutMs: 1_000, clock }, async (pool) => {
      assert.equal(await pool.run('add', { a: 1, b: 2 }), 3);
      assert.equal(clock.pendingTimers, 0);
      assert.equal(pool.stats().timedOut, 0);
    });
  });
});

describe('thread pool: caller aborts', () => {
  test('aborting a running task terminates its thread and surfaces the caller reason', async () => {
    await withPool({ size: 1 }, async (pool) => {
      const controller = new AbortController();
      const { call, state } = await startRunaway(pool, controller.signal);
      const reason = new Error('user navigated away');
      controller.abort(reason);
      await assert.rejects(call.promise, (e) => e === reason);
      await assertTerminated(state);
      assert.equal(await pool.run('add', { a: 1, b: 2 }), 3);
      assert.equal(pool.stats().aborted, 1);
    });
  });

  test('aborting a queued task takes it out of the queue before it starts', async () => {
    await withPool({ size: 1, maxQueue: 1 }, async (pool) => {
      const running = new AbortController();
      const { call, state } = await startRunaway(pool, running.signal);
      const queuedState = new Int32Array(new SharedArrayBuffer(8));
      const queuedAbort = new AbortController();
      const queued = track(pool.run('runaway', queuedState.buffer, { signal: queuedAbort.signal }));
      assert.equal(pool.stats().queued, 1);
      queuedAbort.abort('not needed');
      await assert.rejects(queued.promise, (e) => e === 'not needed');
      assert.equal(pool.stats().queued, 0);
      // The freed queue place takes another task.
      const next = track(pool.run('add', { a: 1, b: 2 }));
      running.abort('done');
      await assert.rejects(call.promise, (e) => e === 'done');
      assert.equal(await next.promise, 3);
      await assertTerminated(state);
      assert.equal(Atomics.load(queuedState, 1), 0, 'the aborted queued task never ran');
      assert.equal(pool.stats().aborted, 2);
    });
  });

  test('a signal aborted already rejects without running anything', async () => {
    await withPool({ size: 1 }, async (pool) => {
      const reason = new Error('too late');
      await assert.rejects(
        pool.run('add', { a: 1, b: 2 }, { signal: AbortSignal.abort(reason) }),
        (e) => e === reason,
      );
      assert.equal(pool.stats().threads, 0, 'no thread was started for it');
    });
  });
});

describe('thread pool: memory limit', () => {
  test('a task over maxHeapMb fails with ERR_WORKER_OUT_OF_MEMORY, the process and the pool survive', async () => {
    await withPool({ size: 1, maxHeapMb: 32 }, async (pool) => {
      const error = await pool.run('hog').then(
        () => assert.fail('the hog finished'),
        (e: unknown) => e as Error & { code: string },
      );
      assert.equal(error.code, 'ERR_WORKER_OUT_OF_MEMORY');
      assert.equal(classify(error), 'permanent', 'the same input would run out again');
      assert.equal(await pool.run('add', { a: 1, b: 2 }), 3);
      assert.equal(pool.stats().failed, 1);
    });
  });
});

describe('thread pool: statistics and closing', () => {
  test('stats count every way a task can end', async () => {
    const clock = new VirtualClock();
    await withPool({ size: 1, maxQueue: 0, taskTimeoutMs: 300, clock }, async (pool) => {
      assert.deepEqual(pool.stats(), {
        size: 1,
        threads: 0,
        active: 0,
        queued: 0,
        maxQueue: 0,
        completed: 0,
        failed: 0,
        rejected: 0,
        timedOut: 0,
        aborted: 0,
        runTimeMs: { p50: 0, p90: 0, p99: 0, max: 0 },
      });
      await pool.run('add', { a: 1, b: 1 });
      await assert.rejects(pool.run('fail', 'x'));
      const spin = pool.run('spin', 50);
      await rejectsWith(pool.run('add', { a: 1, b: 1 }), BulkheadRejectedError);
      await spin;
      const { call } = await startRunaway(pool);
      await until(() => clock.pendingTimers === 1, 'the runaway task timer');
      await clock.advance(300);
      await rejectsWith(call.promise, TimeoutError);
      await assert.rejects(pool.run('add', {}, { signal: AbortSignal.abort() }));
      const stats = pool.stats();
      assert.deepEqual(
        { ...stats, runTimeMs: undefined },
        {
          size: 1,
          threads: 1,
          active: 0,
          queued: 0,
          maxQueue: 0,
          completed: 2,
          failed: 1,
          rejected: 1,
          timedOut: 1,
          aborted: 1,
          runTimeMs: undefined,
        },
      );
      const { p50, p99, max } = stats.runTimeMs;
      assert.ok(p50 > 0 && p50 <= p99 && p99 <= max, `run times ${JSON.stringify(stats.runTimeMs)}`);
    });
  });

  test('close lets running tasks finish, rejects queued ones, and is idempotent', async () => {
    const pool = threadPool({ module: modulePath, size: 1, maxQueue: 2 });
    const running = pool.run('spin', 100);
    const queued = pool.run('add', { a: 1, b: 1 });
    const closing = pool.close();
    assert.equal(pool.close(), closing, 'the same promise');
    await rejectsWith(queued, PoolClosedError, { code: ErrorCodes.POOL_CLOSED });
    assert.notEqual(await running, 0);
    await closing;
    const after = await rejectsWith(pool.run('add', { a: 1, b: 1 }), PoolClosedError);
    assert.equal(classify(after), 'permanent');
    assert.equal(pool.stats().threads, 0, 'every worker thread is gone');
  });

  test('close with force terminates running tasks', async () => {
    const pool = threadPool({ module: modulePath, size: 1 });
    const { call, state } = await startRunaway(pool);
    const closing = pool.close();
    await pool.close({ force: true });
    await closing;
    await rejectsWith(call.promise, PoolClosedError);
    await assertTerminated(state);
    assert.equal(pool.stats().threads, 0);
  });

  test('a pool never used closes at once without loading anything', async () => {
    const pool = threadPool({ module: modulePath });
    await pool.close();
    await pool.close();
    assert.equal(pool.stats().threads, 0);
  });
});

describe('thread pool: options', () => {
  test('invalid options name the field', () => {
    const module = modulePath;
    throwsInvalid(() => threadPool(undefined as never), 'threadPool.module');
    throwsInvalid(() => threadPool({ module: 'relative/worker.mjs' }), 'threadPool.module');
    throwsInvalid(() => threadPool({ module: '' }), 'threadPool.module');
    throwsInvalid(() => threadPool({ module, size: 0 }), 'threadPool.size');
    throwsInvalid(() => threadPool({ module, size: 1.5 }), 'threadPool.size');
    throwsInvalid(() => threadPool({ module, maxQueue: -1 }), 'threadPool.maxQueue');
    throwsInvalid(() => threadPool({ module, taskTimeoutMs: 0 }), 'threadPool.taskTimeoutMs');
    throwsInvalid(() => threadPool({ module, maxHeapMb: 4 }), 'threadPool.maxHeapMb');
    throwsInvalid(() => threadPool({ module, name: '' }), 'threadPool.name');
    throwsInvalid(() => threadPool({ module, clock: {} as never }), 'threadPool.clock');
    const message = throwsInvalid(() => threadPool({ module, sise: 2 } as never), 'threadPool.sise');
    assert.match(message, /did you mean 'size'/);
  });

  test('defaults: min(4, cores) threads, a queue of four per thread', () => {
    const stats = threadPool({ module: modulePath }).stats();
    assert.ok(stats.size >= 1 && stats.size <= 4);
    assert.equal(stats.maxQueue, stats.size * 4);
  });
});

describe('thread pool: piscina is optional', () => {
  test('without piscina the core still imports, and a task rejects naming the fix', async () => {
    // A resolve hook that hides piscina, as if it were not installed.
    const hide = `data:text/javascript,${encodeURIComponent(
      `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`export async function resolve(s, c, next) {
  if (s === 'piscina') throw Object.assign(new Error('Cannot find package piscina'), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(s, c);
}\`));`,
    )}`;
    const script = `
import { threadPool } from '@bulwark/core';
const pool = threadPool({ module: ${JSON.stringify(modulePath)}, size: 1 });
const error = await pool.run('add', { a: 1, b: 2 }).catch((e) => e);
console.log(JSON.stringify({ message: error.message, transient: error.transient, stats: pool.stats().failed }));
await pool.close();`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        '--conditions=@bulwark/source',
        '--import',
        'tsx',
        '--import',
        hide,
        '--input-type=module',
        '-e',
        script,
      ],
      { cwd: repoRoot, timeout: 10_000, encoding: 'utf8' },
    );
    const out = JSON.parse(stdout) as { message: string; transient: boolean; stats: number };
    assert.match(out.message, /npm install piscina/);
    assert.equal(out.transient, false);
    assert.equal(out.stats, 1);
  });
});
