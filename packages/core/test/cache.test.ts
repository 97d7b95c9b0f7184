// Unit tests of the cache policy: hits, lazy expiry, LRU eviction, single-flight, the caller's
// abort, cached errors, stale-while-revalidate, stale-if-error, stores, events and options.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BrokenCircuitError,
  bulkhead,
  type CacheEntry,
  type CacheOptions,
  type CacheStore,
  cache,
  circuitBreaker,
  type ExecutionContext,
  fallback,
  flushMicrotasks,
  InvalidOptionsError,
  IsolatedCircuitError,
  MemoryCacheStore,
  pipeline,
  VirtualClock,
} from '@bulwark/core';
import fc from 'fast-check';
import { deferred, recordEvents, rejectsWith, throwsInvalid, track, withWarnings } from './support.ts';

/** A cache on a fresh virtual clock. */
function setup(options: Partial<CacheOptions> = {}) {
  const clock = new VirtualClock();
  const c = cache({ ttlMs: 1_000, clock, ...options });
  return { clock, c };
}

/** An operation that counts its runs and answers `value-N` for the N-th run. */
function counting() {
  const op = Object.assign(
    () => {
      op.runs++;
      return `value-${op.runs}`;
    },
    { runs: 0 },
  );
  return op;
}

describe('cache: hits and expiry', () => {
  test('a second call with the same key is answered from the cache without running', async () => {
    const { c } = setup();
    const op = counting();
    assert.equal(await c.execute(op, { key: 'a' }), 'value-1');
    assert.equal(await c.execute(op, { key: 'a' }), 'value-1');
    assert.equal(op.runs, 1);
    assert.deepEqual(c.stats(), {
      hits: 1,
      misses: 1,
      coalesced: 0,
      staleServed: 0,
      revalidations: 0,
      inFlight: 0,
      size: 1,
    });
  });

  test('different keys are cached apart', async () => {
    const { c } = setup();
    const op = counting();
    assert.equal(await c.execute(op, { key: 'a' }), 'value-1');
    assert.equal(await c.execute(op, { key: 'b' }), 'value-2');
    assert.equal(await c.execute(op, { key: 'a' }), 'value-1');
  });

  test('an entry is fresh until exactly ttlMs, then the call runs again (expiry checked on read, no timer)', async () => {
    const { clock, c } = setup({ ttlMs: 1_000 });
    const op = counting();
    await c.execute(op, { key: 'a' });
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(999);
    assert.equal(await c.execute(op, { key: 'a' }), 'value-1');
    await clock.advance(1);
    assert.equal(await c.execute(op, { key: 'a' }), 'value-2');
    assert.equal(clock.pendingTimers, 0);
  });

  test('a call without a key bypasses the cache', async () => {
    const { c } = setup();
    const op = counting();
    await c.execute(op);
    await c.execute(op);
    assert.equal(op.runs, 2);
    const { hits, misses, size } = c.stats();
    assert.deepEqual({ hits, misses, size }, { hits: 0, misses: 0, size: 0 });
  });

  test('a key() that throws fails the call, not execute itself', async () => {
    const boom = new Error('boom');
    const { c } = setup({
      key: () => {
        throw boom;
      },
    });
    let call: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      call = c.execute(() => 'v');
    });
    await assert.rejects(call!, (e) => e === boom);
  });

  test('the key option computes the key from the context; undefined bypasses', async () => {
    const { c } = setup({
      key: (ctx: ExecutionContext) => (ctx.operation === 'skip' ? undefined : ctx.operation),
    });
    const op = counting();
    await c.execute(op, { operation: 'get-user' });
    assert.equal(await c.execute(op, { operation: 'get-user' }), 'value-1');
    await c.execute(op, { operation: 'skip' });
    await c.execute(op, { operation: 'skip' });
    assert.equal(op.runs, 3);
  });

  test('the least recently used entry is evicted past maxEntries', async () => {
    const { c } = setup({ maxEntries: 2 });
    const op = counting();
    await c.execute(op, { key: 'a' }); // value-1
    await c.execute(op, { key: 'b' }); // value-2
    await c.execute(op, { key: 'a' }); // hit: a becomes most recent
    await c.execute(op, { key: 'c' }); // value-3, evicts b
    assert.equal(c.stats().size, 2);
    assert.equal(await c.execute(op, { key: 'a' }), 'value-1');
    assert.equal(await c.execute(op, { key: 'b' }), 'value-4');
  });

  test('invalidate() drops an entry', async () => {
    const { c } = setup();
    const op = counting();
    await c.execute(op, { key: 'a' });
    await c.invalidate('a');
    assert.equal(await c.execute(op, { key: 'a' }), 'value-2');
  });

  test('a hit starts no timer and never reaches the layers inside (a cache outside an open breaker serves hits)', async () => {
    const clock = new VirtualClock();
    const breaker = circuitBreaker({ clock });
    const p = pipeline(cache({ ttlMs: 60_000, clock }), breaker);
    const op = counting();
    assert.equal(await p.execute(op, { key: 'user:1' }), 'value-1');
    breaker.isolate();
    assert.equal(await p.execute(op, { key: 'user:1' }), 'value-1');
    await rejectsWith(p.execute(op, { key: 'user:2' }), IsolatedCircuitError);
    assert.equal(op.runs, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a cache outside a breaker that opened on failures still answers cached keys', async () => {
    const clock = new VirtualClock();
    const breaker = circuitBreaker({ clock, window: { kind: 'consecutive', failures: 1 } });
    const p = pipeline(cache({ ttlMs: 60_000, clock }), breaker);
    assert.equal(await p.execute(() => 'cached', { key: 'k' }), 'cached');
    await assert.rejects(
      p.execute(
        () => {
          throw Object.assign(new Error('down'), { status: 503 });
        },
        { key: 'other' },
      ),
    );
    assert.equal(breaker.state, 'open');
    await rejectsWith(
      p.execute(() => 'x', { key: 'other' }),
      BrokenCircuitError,
    );
    assert.equal(await p.execute(() => 'fresh', { key: 'k' }), 'cached');
  });
});

describe('cache: single-flight', () => {
  test('concurrent calls with the same key share one execution', async () => {
    const { c } = setup();
    const work = deferred<string>();
    let runs = 0;
    const op = () => {
      runs++;
      return work.promise;
    };
    const calls = [1, 2, 3].map(() => track(c.execute(op, { key: 'a' })));
    await Promise.resolve();
    assert.equal(runs, 1);
    assert.equal(c.stats().inFlight, 1);
    work.resolve('shared');
    await Promise.all(calls.map((t) => t.promise));
    assert.deepEqual(
      calls.map((t) => t.value),
      ['shared', 'shared', 'shared'],
    );
    assert.equal(c.stats().coalesced, 2);
    assert.equal(c.stats().misses, 1);
    assert.equal(c.stats().inFlight, 0);
  });

  test('a failure is shared with every waiter and is not cached', async () => {
    const { c } = setup();
    const work = deferred<string>();
    const failure = new Error('down');
    const calls = [1, 2].map(() => track(c.execute(() => work.promise, { key: 'a' })));
    work.reject(failure);
    await Promise.allSettled(calls.map((t) => t.promise));
    assert.deepEqual(
      calls.map((t) => t.error),
      [failure, failure],
    );
    assert.equal(await c.execute(() => 'recovered', { key: 'a' }), 'recovered');
  });

  test('ttlMs 0 only coalesces: concurrent calls share, later calls run again', async () => {
    const { c } = setup({ ttlMs: 0 });
    const work = deferred<string>();
    let runs = 0;
    const op = () => {
      runs++;
      return work.promise;
    };
    const a = c.execute(op, { key: 'a' });
    const b = c.execute(op, { key: 'a' });
    work.resolve('v');
    assert.deepEqual(await Promise.all([a, b]), ['v', 'v']);
    assert.equal(runs, 1);
    await c.execute(op, { key: 'a' });
    assert.equal(runs, 2);
    assert.equal(c.stats().size, 0);
  });

  test('property: any batch of concurrent calls runs once per distinct key', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 30 }), async (keys) => {
        const { c } = setup();
        const runs = new Map<string, number>();
        const gate = deferred<void>();
        const calls = keys.map((key) =>
          c.execute(
            async () => {
              runs.set(key, (runs.get(key) ?? 0) + 1);
              await gate.promise;
              return key;
            },
            { key },
          ),
        );
        gate.resolve();
        assert.deepEqual(await Promise.all(calls), keys);
        assert.equal(runs.size, new Set(keys).size);
        for (const n of runs.values()) assert.equal(n, 1);
        assert.equal(c.stats().misses + c.stats().coalesced, keys.length);
      }),
    );
  });

  test('a caller aborting leaves alone: it gets its reason, the others get the shared result', async () => {
    const { c } = setup();
    const work = deferred<string>();
    let signal: AbortSignal | undefined;
    const op = (ctx: ExecutionContext) => {
      signal = ctx.signal;
      return work.promise;
    };
    const controller = new AbortController();
    const leaving = track(c.execute(op, { key: 'a', signal: controller.signal }));
    const staying = track(c.execute(op, { key: 'a' }));
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await Promise.resolve();
    assert.equal(leaving.status, 'rejected');
    assert.equal(leaving.error, reason);
    assert.equal(signal?.aborted, false);
    work.resolve('shared');
    assert.equal(await staying.promise, 'shared');
    // The execution the leaver started went on and was cached.
    assert.equal(await c.execute(() => 'other', { key: 'a' }), 'shared');
  });

  test('when every waiter has left, the shared execution is aborted and nothing is cached', async () => {
    const { c } = setup();
    let signal: AbortSignal | undefined;
    const op = (ctx: ExecutionContext) => {
      signal = ctx.signal;
      return new Promise<string>((_, reject) =>
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
      );
    };
    const first = new AbortController();
    const second = new AbortController();
    const a = track(c.execute(op, { key: 'a', signal: first.signal }));
    const b = track(c.execute(op, { key: 'a', signal: second.signal }));
    first.abort(new Error('first'));
    await Promise.resolve();
    assert.equal(signal?.aborted, false);
    const reason = new Error('second');
    second.abort(reason);
    await Promise.resolve();
    assert.equal(signal?.aborted, true);
    assert.equal(signal?.reason, reason);
    assert.equal(a.status, 'rejected');
    assert.equal(b.error, reason);
    assert.equal(c.stats().inFlight, 0);
    // A new caller starts a new execution rather than joining the aborted one.
    assert.equal(await c.execute(() => 'new', { key: 'a' }), 'new');
  });

  test('work abandoned by every caller keeps its slot in a bulkhead outside until it really settles', async () => {
    const clock = new VirtualClock();
    const pool = bulkhead({ maxConcurrent: 1 });
    const p = pipeline(pool, cache({ ttlMs: 1_000, clock }));
    const work = deferred<string>();
    const controller = new AbortController();
    const call = track(p.execute(() => work.promise, { key: 'a', signal: controller.signal }));
    controller.abort(new Error('gone'));
    await flushMicrotasks();
    assert.equal(call.status, 'rejected');
    assert.deepEqual(
      { active: pool.stats().active, lingering: pool.stats().lingering },
      { active: 1, lingering: 1 },
    );
    work.resolve('late');
    await flushMicrotasks();
    assert.deepEqual(
      { active: pool.stats().active, lingering: pool.stats().lingering },
      { active: 0, lingering: 0 },
    );
  });

  test('work every caller abandoned that succeeds anyway is not cached', async () => {
    const { c } = setup();
    const work = deferred<string>();
    const controller = new AbortController();
    const call = track(c.execute(() => work.promise, { key: 'a', signal: controller.signal }));
    controller.abort(new Error('gone'));
    await flushMicrotasks();
    assert.equal(call.status, 'rejected');
    work.resolve('late');
    await flushMicrotasks();
    assert.equal(c.stats().size, 0);
    assert.equal(await c.execute(() => 'fresh', { key: 'a' }), 'fresh');
  });

  test('a caller already aborted when it would join is refused with its reason', async () => {
    const { c } = setup();
    const work = deferred<string>();
    const owner = track(c.execute(() => work.promise, { key: 'a' }));
    const controller = new AbortController();
    const reason = new Error('gone');
    controller.abort(reason);
    // Through a pipeline the pre-aborted check happens first; alone too.
    await assert.rejects(
      c.execute(() => 'x', { key: 'a', signal: controller.signal }),
      (e) => e === reason,
    );
    work.resolve('v');
    assert.equal(await owner.promise, 'v');
  });
});

describe('cache: errors', () => {
  test('errors are not cached by default', async () => {
    const { c } = setup();
    let runs = 0;
    const op = () => {
      runs++;
      throw new Error('down');
    };
    await assert.rejects(c.execute(op, { key: 'a' }));
    await assert.rejects(c.execute(op, { key: 'a' }));
    assert.equal(runs, 2);
    assert.equal(c.stats().size, 0);
  });

  test('cacheErrors caches a failure for its own ttlMs', async () => {
    const { clock, c } = setup({ ttlMs: 10_000, cacheErrors: { ttlMs: 100 } });
    const failure = new Error('not found');
    let runs = 0;
    const op = () => {
      runs++;
      throw failure;
    };
    await assert.rejects(c.execute(op, { key: 'a' }), (e) => e === failure);
    await assert.rejects(c.execute(op, { key: 'a' }), (e) => e === failure);
    assert.equal(runs, 1);
    assert.equal(c.stats().hits, 1);
    await clock.advance(100);
    await assert.rejects(c.execute(op, { key: 'a' }));
    assert.equal(runs, 2);
  });

  test('a substitute from a fallback inside is shared but not cached, and marks the outcome degraded', async () => {
    const clock = new VirtualClock();
    const p = pipeline(cache({ ttlMs: 1_000, clock }), fallback({ value: 'substitute' }));
    const first = await p.executeOutcome(
      () => {
        throw new Error('down');
      },
      { key: 'a' },
    );
    assert.deepEqual(first, { ok: true, value: 'substitute', degraded: true, attempts: 1 });
    const second = await p.executeOutcome(() => 'real', { key: 'a' });
    assert.deepEqual(second, { ok: true, value: 'real', degraded: false, attempts: 1 });
  });
});

describe('cache: stale-while-revalidate', () => {
  test('an expired entry within maxStaleMs is served at once and refreshed in the background', async () => {
    const { clock, c } = setup({ ttlMs: 1_000, staleWhileRevalidate: { maxStaleMs: 5_000 } });
    const refresh = deferred<string>();
    assert.equal(await c.execute(() => 'old', { key: 'a' }), 'old');
    await clock.advance(1_500);
    let refreshes = 0;
    const op = () => {
      refreshes++;
      return refresh.promise;
    };
    assert.equal(await c.execute(op, { key: 'a' }), 'old');
    // One refresh at a time per key.
    assert.equal(await c.execute(op, { key: 'a' }), 'old');
    assert.equal(refreshes, 1);
    refresh.resolve('new');
    await refresh.promise;
    await Promise.resolve();
    assert.equal(await c.execute(op, { key: 'a' }), 'new');
    assert.equal(refreshes, 1);
    assert.deepEqual(
      { staleServed: c.stats().staleServed, revalidations: c.stats().revalidations },
      { staleServed: 2, revalidations: 1 },
    );
  });

  test('past maxStaleMs the entry is not served: the call waits for a fresh result', async () => {
    const { clock, c } = setup({ ttlMs: 1_000, staleWhileRevalidate: { maxStaleMs: 500 } });
    await c.execute(() => 'old', { key: 'a' });
    await clock.advance(1_500);
    assert.equal(await c.execute(() => 'new', { key: 'a' }), 'new');
  });

  test('a failed background refresh keeps the stale entry and is not surfaced', async () => {
    const { clock, c } = setup({ ttlMs: 1_000, staleWhileRevalidate: { maxStaleMs: 5_000 } });
    await c.execute(() => 'old', { key: 'a' });
    await clock.advance(1_200);
    assert.equal(
      await c.execute(
        () => {
          throw new Error('down');
        },
        { key: 'a' },
      ),
      'old',
    );
    await Promise.resolve();
    assert.equal(await c.execute(() => 'new', { key: 'a' }), 'old');
  });

  test('with cacheErrors, a failed background refresh still keeps the stale entry', async () => {
    const { clock, c } = setup({
      ttlMs: 1_000,
      staleWhileRevalidate: { maxStaleMs: 5_000 },
      cacheErrors: { ttlMs: 1_000 },
    });
    await c.execute(() => 'old', { key: 'a' });
    await clock.advance(1_200);
    const down = () => {
      throw new Error('down');
    };
    assert.equal(await c.execute(down, { key: 'a' }), 'old');
    await flushMicrotasks();
    assert.equal(await c.execute(() => 'new', { key: 'a' }), 'old');
  });
});

describe('cache: stale-if-error', () => {
  test('when the fresh call fails, an entry within maxStaleMs answers and the outcome is degraded', async () => {
    const clock = new VirtualClock();
    const c = cache({ ttlMs: 1_000, staleIfError: { maxStaleMs: 10_000 }, clock });
    const p = pipeline(c);
    await p.execute(() => 'old', { key: 'a' });
    await clock.advance(5_000);
    const outcome = await p.executeOutcome(
      () => {
        throw new Error('down');
      },
      { key: 'a' },
    );
    assert.deepEqual(outcome, { ok: true, value: 'old', degraded: true, attempts: 1 });
    assert.equal(c.stats().staleServed, 1);
  });

  test('the fresh result replaces the entry when the call succeeds', async () => {
    const { clock, c } = setup({ ttlMs: 1_000, staleIfError: { maxStaleMs: 10_000 } });
    await c.execute(() => 'old', { key: 'a' });
    await clock.advance(2_000);
    assert.equal(await c.execute(() => 'new', { key: 'a' }), 'new');
    assert.equal(await c.execute(() => 'newer', { key: 'a' }), 'new');
  });

  test('past maxStaleMs the failure surfaces', async () => {
    const { clock, c } = setup({ ttlMs: 1_000, staleIfError: { maxStaleMs: 1_000 } });
    await c.execute(() => 'old', { key: 'a' });
    await clock.advance(2_000);
    const failure = new Error('down');
    await assert.rejects(
      c.execute(
        () => {
          throw failure;
        },
        { key: 'a' },
      ),
      (e) => e === failure,
    );
  });
});

describe('cache: stores', () => {
  /** A store that answers every call asynchronously, as a remote one (Redis) would. */
  class AsyncStore implements CacheStore {
    readonly map = new Map<string, CacheEntry>();
    async get(key: string) {
      return this.map.get(key);
    }
    async set(key: string, entry: CacheEntry) {
      this.map.set(key, entry);
    }
    async delete(key: string) {
      this.map.delete(key);
    }
  }

  test('an asynchronous store caches and coalesces like the memory store', async () => {
    const store = new AsyncStore();
    const { c } = setup({ store });
    const work = deferred<string>();
    let runs = 0;
    const op = () => {
      runs++;
      return work.promise;
    };
    const calls = [c.execute(op, { key: 'a' }), c.execute(op, { key: 'a' })];
    await flushMicrotasks();
    work.resolve('v');
    assert.deepEqual(await Promise.all(calls), ['v', 'v']);
    await flushMicrotasks();
    assert.equal(await c.execute(op, { key: 'a' }), 'v');
    assert.equal(runs, 1);
    assert.equal(store.map.get('a')?.value, 'v');
    assert.equal(c.stats().size, undefined);
  });

  test('a caller who aborts while the store reads leaves at once with its reason, and nothing runs', async () => {
    const read = deferred<CacheEntry | undefined>();
    const store: CacheStore = { get: () => read.promise, set: () => {}, delete: () => {} };
    const { c } = setup({ store });
    const controller = new AbortController();
    let runs = 0;
    const call = track(c.execute(() => ++runs, { key: 'a', signal: controller.signal }));
    const reason = new Error('gone');
    controller.abort(reason);
    await Promise.resolve();
    assert.equal(call.status, 'rejected');
    assert.equal(call.error, reason);
    read.resolve(undefined);
    await flushMicrotasks();
    assert.equal(runs, 0);
    assert.equal(c.stats().inFlight, 0);
  });

  test('a store that fails to read turns the call into a miss and warns', async () => {
    await withWarnings(async (warnings) => {
      const store: CacheStore = {
        get: () => Promise.reject(new Error('store down')),
        set: () => {},
        delete: () => {},
      };
      const { c } = setup({ store });
      assert.equal(await c.execute(() => 'v', { key: 'a' }), 'v');
      await flushMicrotasks();
      assert.equal(warnings.length, 1);
    });
  });

  test('MemoryCacheStore evicts its least recently used entry', () => {
    const store = new MemoryCacheStore({ maxEntries: 2 });
    const entry = { ok: true, value: 1, expiresAt: 10, staleUntil: 10 };
    store.set('a', entry);
    store.set('b', entry);
    store.get('a');
    store.set('c', entry);
    assert.equal(store.size, 2);
    assert.equal(store.get('b'), undefined);
    assert.equal(store.get('a'), entry);
  });
});

describe('cache: events', () => {
  test('miss, coalesced, hit and stale events name the key', async () => {
    const { clock, c } = setup({ ttlMs: 100, staleWhileRevalidate: { maxStaleMs: 100 }, name: 'users' });
    const events = recordEvents(c);
    const work = deferred<string>();
    const a = c.execute(() => work.promise, { key: 'u1', operation: 'get' });
    const b = c.execute(() => 'x', { key: 'u1', operation: 'get' });
    work.resolve('v');
    await Promise.all([a, b]);
    await c.execute(() => 'x', { key: 'u1', operation: 'get' });
    await clock.advance(150);
    await c.execute(() => 'w', { key: 'u1', operation: 'get' });
    const base = { policy: 'users', operation: 'get', key: 'u1' };
    assert.deepEqual(events, [
      { type: 'cache:miss', ...base },
      { type: 'cache:coalesced', ...base },
      { type: 'cache:hit', ...base },
      { type: 'cache:stale', ...base, reason: 'revalidate', staleMs: 50 },
    ]);
  });
});

describe('cache: options', () => {
  test('invalid options are rejected at construction, naming the field', () => {
    const cases: Array<[unknown, string]> = [
      [{}, 'cache.ttlMs'],
      [{ ttlMs: -1 }, 'cache.ttlMs'],
      [{ ttlMs: 10, maxEntries: 0 }, 'cache.maxEntries'],
      [{ ttlMs: 10, maxEntries: 1.5 }, 'cache.maxEntries'],
      [{ ttlMs: 10, key: 'id' }, 'cache.key'],
      [{ ttlMs: 10, cacheErrors: true }, 'cache.cacheErrors'],
      [{ ttlMs: 10, cacheErrors: {} }, 'cache.cacheErrors.ttlMs'],
      [{ ttlMs: 10, staleWhileRevalidate: { maxStaleMs: -1 } }, 'cache.staleWhileRevalidate.maxStaleMs'],
      [{ ttlMs: 10, staleIfError: { maxStale: 1 } }, 'cache.staleIfError.maxStale'],
      [{ ttlMs: 10, store: {} }, 'cache.store'],
      [{ ttlMs: 10, store: new MemoryCacheStore(), maxEntries: 5 }, 'cache.maxEntries'],
      [{ ttlMs: 10, clock: {} }, 'cache.clock'],
      [{ ttl: 10 }, 'cache.ttl'],
    ];
    for (const [options, path] of cases) throwsInvalid(() => cache(options as never), path);
    throwsInvalid(() => new MemoryCacheStore({ maxEntries: 0 }), 'MemoryCacheStore.maxEntries');
  });

  test('describe() reports the normalised options', () => {
    assert.deepEqual(cache({ ttlMs: 100, staleIfError: { maxStaleMs: 50 } }).describe(), {
      kind: 'cache',
      name: 'cache',
      options: {
        ttlMs: 100,
        maxEntries: 1_000,
        cacheErrors: false,
        staleWhileRevalidate: false,
        staleIfError: { maxStaleMs: 50 },
        store: 'MemoryCacheStore',
      },
    });
  });
});

describe('cache: options that could never apply are refused', () => {
  test('stale options with ttlMs 0 (coalesce only) are refused, naming the option', () => {
    for (const [options, path] of [
      [{ ttlMs: 0, staleWhileRevalidate: { maxStaleMs: 1_000 } }, 'cache.staleWhileRevalidate'],
      [{ ttlMs: 0, staleIfError: { maxStaleMs: 1_000 } }, 'cache.staleIfError'],
    ] as const) {
      assert.throws(
        () => cache(options),
        (e) => e instanceof InvalidOptionsError && e.path === path,
      );
    }
  });
});
