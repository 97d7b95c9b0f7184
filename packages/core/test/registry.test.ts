import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  currentCall,
  DependencyRegistry,
  ErrorCodes,
  HttpStatusError,
  KIND_DEFAULTS,
  type PolicyDescription,
  RateLimitedError,
  TimeoutError,
  VirtualClock,
} from '@bulwark/core';
import {
  deferred,
  permanent,
  recordEvents,
  rejectsWith,
  runToEnd,
  seeded,
  throwsInvalid,
  track,
  transient,
  untilAborted,
} from './support.ts';

function registry(clock: VirtualClock, dependencies: ConstructorParameters<typeof DependencyRegistry>[0]) {
  return new DependencyRegistry({ clock, random: seeded(7), ...dependencies });
}

/** The policies of a dependency's default pipeline, as `describe()` reports them. */
function layers(r: DependencyRegistry, name: string, operation = '*'): PolicyDescription[] {
  const pipeline = r.describe()[name]!.pipelines[operation] as PolicyDescription;
  return pipeline.options.policies as PolicyDescription[];
}

function layer(
  r: DependencyRegistry,
  name: string,
  kind: string,
  operation = '*',
): Record<string, unknown> | undefined {
  return layers(r, name, operation).find((p) => p.kind === kind)?.options;
}

describe('registry: kind defaults', () => {
  const clock = new VirtualClock();
  const r = registry(clock, {
    dependencies: {
      api: { kind: 'http' },
      db: { kind: 'database' },
      redis: { kind: 'cache' },
      events: { kind: 'queue' },
      files: { kind: 'filesystem' },
      ml: { kind: 'compute' },
      other: {},
    },
  });

  test('timeouts follow the seeds: cache 1.5 s, database 10 s, http 15 s, compute 30 s', () => {
    assert.equal(layer(r, 'redis', 'timeout')?.ms, 1_500);
    assert.equal(layer(r, 'db', 'timeout')?.ms, 10_000);
    assert.equal(layer(r, 'api', 'timeout')?.ms, 15_000);
    assert.equal(layer(r, 'ml', 'timeout')?.ms, 30_000);
  });

  test('http retries 3 times (4 attempts) from 200 ms, capped at 2 s, ±25%', () => {
    assert.equal(layer(r, 'api', 'retry')?.maxAttempts, 4);
    assert.deepEqual(KIND_DEFAULTS.http.retry, {
      maxAttempts: 4,
      backoff: 'exponential',
      baseMs: 200,
      maxMs: 2_000,
      jitter: 0.25,
    });
    assert.equal(layer(r, 'db', 'retry')?.maxAttempts, 3);
    assert.equal(layer(r, 'files', 'retry')?.maxAttempts, 5);
    assert.equal(layer(r, 'redis', 'retry'), undefined);
  });

  test('http breaker: 5 failures in 30 s, open 60 s, 3 probes; database: 3 in 15 s, open 30 s, 2 probes', () => {
    const http = layer(r, 'api', 'circuit-breaker')!;
    assert.deepEqual(http.window, { kind: 'time', ms: 30_000, buckets: 10, failures: 5 });
    assert.equal(http.openMs, 60_000);
    assert.deepEqual(http.halfOpen, { probes: 3, successes: 3, retryAfterMs: 1_000 });
    const db = layer(r, 'db', 'circuit-breaker')!;
    assert.deepEqual(db.window, { kind: 'time', ms: 15_000, buckets: 10, failures: 3 });
    assert.equal(db.openMs, 30_000);
    assert.deepEqual(db.halfOpen, { probes: 2, successes: 2, retryAfterMs: 1_000 });
  });

  test('bulkheads: database 10, cache 100, queue 20, rejecting at once when full', () => {
    assert.equal(layer(r, 'db', 'bulkhead')?.maxConcurrent, 10);
    assert.equal(layer(r, 'redis', 'bulkhead')?.maxConcurrent, 100);
    assert.equal(layer(r, 'events', 'bulkhead')?.maxConcurrent, 20);
    assert.equal(layer(r, 'db', 'bulkhead')?.maxQueue, 0);
  });

  test('policies are layered outermost first: retry, breaker, bulkhead, per-attempt timeout', () => {
    assert.deepEqual(
      layers(r, 'db').map((p) => p.kind),
      ['retry', 'circuit-breaker', 'bulkhead', 'timeout'],
    );
    assert.deepEqual(
      layers(r, 'db').map((p) => p.name),
      ['db.retry', 'db.breaker', 'db.bulkhead', 'db.timeout'],
    );
  });
});

describe('registry: settings', () => {
  test("a section given replaces the kind's default as a whole; false turns it off", () => {
    const r = registry(new VirtualClock(), {
      dependencies: {
        api: { kind: 'http', retry: { maxAttempts: 2, baseMs: 50 }, breaker: false, totalTimeoutMs: 20_000 },
      },
    });
    assert.equal(layer(r, 'api', 'retry')?.maxAttempts, 2);
    assert.equal(layer(r, 'api', 'circuit-breaker'), undefined);
    assert.deepEqual(
      layers(r, 'api').map((p) => p.name),
      ['api.total-timeout', 'api.retry', 'api.timeout'],
    );
  });

  test('an operation gets its own pipeline; sections it does not set are the dependency’s', () => {
    const r = registry(new VirtualClock(), {
      dependencies: { pay: { kind: 'http', operations: { refund: { timeoutMs: 30_000 } } } },
    });
    assert.equal(layer(r, 'pay', 'timeout', 'refund')?.ms, 30_000);
    assert.equal(layer(r, 'pay', 'timeout')?.ms, 15_000);
    assert.equal(layer(r, 'pay', 'retry', 'refund')?.maxAttempts, 4);
  });

  test('invalid settings name their place in the options', () => {
    const clock = new VirtualClock();
    const build = (dependencies: Record<string, unknown>) => () =>
      new DependencyRegistry({ clock, dependencies: dependencies as never });
    throwsInvalid(build({ db: { kind: 'databse' } }), 'dependencies.db.kind');
    assert.match(
      throwsInvalid(build({ db: { retyr: {} } }), 'dependencies.db.retyr'),
      /did you mean 'retry'/,
    );
    throwsInvalid(
      build({ db: { retry: { maxAttempts: 0, baseMs: 10 } } }),
      'dependencies.db.retry.maxAttempts',
    );
    throwsInvalid(build({ db: { retry: { maxAttempts: 2 } } }), 'dependencies.db.retry.baseMs');
    throwsInvalid(
      build({ db: { retry: { maxAttempts: 2, baseMs: 10, jitter: 2 } } }),
      'dependencies.db.retry.jitter',
    );
    throwsInvalid(build({ db: { breaker: { openMs: -1 } } }), 'dependencies.db.breaker.openMs');
    throwsInvalid(
      build({ db: { bulkhead: { maxConcurrent: 0 } } }),
      'dependencies.db.bulkhead.maxConcurrent',
    );
    throwsInvalid(build({ db: { timeoutMs: 0 } }), 'dependencies.db.timeoutMs');
    throwsInvalid(
      build({ db: { operations: { get: { timeoutMs: 'fast' } } } }),
      'dependencies.db.operations.get.timeoutMs',
    );
    throwsInvalid(build({ db: { critical: 'yes' } }), 'dependencies.db.critical');
    throwsInvalid(build({ 'a:b': {} }), 'dependencies.a:b');
  });
});

describe('registry: calling out', () => {
  test('execute runs the operation with the attempt, its signal and the dependency name', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { db: { kind: 'database' } } });
    const seen: unknown[] = [];
    const value = await r.execute('db', 'get_pet', (ctx) => {
      seen.push([ctx.dependency, ctx.operation, ctx.attempt, ctx.signal instanceof AbortSignal, ctx.group]);
      return 'rex';
    });
    assert.equal(value, 'rex');
    assert.deepEqual(seen, [['db', 'get_pet', 1, true, undefined]]);
  });

  test('transient failures are retried by the kind’s policy on its clock; permanent ones are not', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { api: { kind: 'http' } } });
    let calls = 0;
    const call = await runToEnd(
      clock,
      r.execute('api', 'get', () => {
        calls++;
        if (calls < 3) throw transient();
        return 'ok';
      }),
    );
    assert.equal(call.value, 'ok');
    assert.equal(calls, 3);
    // Two delays: about 200 ms and 400 ms, each ±25%.
    assert.ok(clock.now() >= 150 + 300 && clock.now() <= 250 + 500, `took ${clock.now()} ms`);
    calls = 0;
    await rejectsWith(
      r.execute('api', 'get', () => {
        calls++;
        throw permanent();
      }),
      Error,
    );
    assert.equal(calls, 1);
  });

  test('the per-attempt timeout aborts the attempt and counts as a timeout', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { redis: { kind: 'cache' } } });
    const call = await runToEnd(clock, r.execute('redis', 'get', untilAborted()));
    assert.ok(call.error instanceof TimeoutError);
    assert.equal(clock.now(), 1_500);
    assert.equal(r.stats('redis').calls.timeouts, 1);
  });

  test('the petstore: 15 concurrent database calls against a bulkhead of 10 give 10 successes and 5 rejections', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { petstore_database: { kind: 'database' } } });
    const gate = deferred<string>();
    const calls = Array.from({ length: 15 }, () =>
      track(r.execute('petstore_database', 'get_pet', () => gate.promise)),
    );
    await clock.advance(0);
    gate.resolve('pet');
    await Promise.allSettled(calls.map((c) => c.promise));
    assert.equal(calls.filter((c) => c.status === 'fulfilled').length, 10);
    const rejected = calls.filter((c) => c.status === 'rejected');
    assert.equal(rejected.length, 5);
    for (const c of rejected) assert.ok(c.error instanceof BulkheadRejectedError);
    const stats = r.stats('petstore_database');
    assert.equal(stats.calls.successes, 10);
    assert.equal(stats.calls.rejections, 5);
    assert.equal(stats.bulkhead?.rejected, 5);
  });

  test('a breaker shared by the operations of a dependency opens for all of them', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: {
        pay: {
          kind: 'http',
          retry: false,
          breaker: { window: { kind: 'consecutive', failures: 3 }, openMs: 60_000 },
          operations: { refund: { timeoutMs: 30_000 } },
        },
      },
    });
    for (let i = 0; i < 3; i++) {
      await assert.rejects(r.execute('pay', 'process_payment', () => Promise.reject(transient())));
    }
    assert.equal(r.stats('pay').state, 'open');
    await rejectsWith(
      r.execute('pay', 'refund', () => 'never'),
      BrokenCircuitError,
    );
  });

  test('an operation that sets its own breaker has a breaker of its own', async () => {
    const clock = new VirtualClock();
    const breaker = { window: { kind: 'consecutive' as const, failures: 1 }, openMs: 1_000 };
    const r = registry(clock, {
      dependencies: { pay: { retry: false, breaker, operations: { refund: { breaker } } } },
    });
    await assert.rejects(r.execute('pay', 'charge', () => Promise.reject(transient())));
    await assert.rejects(
      r.execute('pay', 'charge', () => 'x'),
      BrokenCircuitError,
    );
    assert.equal(await r.execute('pay', 'refund', () => 'refunded'), 'refunded');
  });

  test('an unknown name fails with BULWARK_UNKNOWN_DEPENDENCY and suggests the nearest', async () => {
    const r = registry(new VirtualClock(), { dependencies: { payment_gateway: {} } });
    const error = await rejectsWith(
      r.execute('payment_gatway', 'x', () => 1),
      Error,
      {
        code: ErrorCodes.UNKNOWN_DEPENDENCY,
      },
    );
    assert.match(error.message, /did you mean 'payment_gateway'/);
  });

  test('wrap keeps `this` and arguments, and currentCall() gives the attempt inside', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { db: { kind: 'database' } } });
    const repo = {
      table: 'pets',
      find: r.wrap('db', 'find', function (this: { table: string }, id: number) {
        const call = currentCall();
        return `${this.table}/${id}@${call?.dependency}#${call?.attempt}:${call?.signal.aborted}`;
      }),
    };
    assert.equal(await repo.find(7), 'pets/7@db#1:false');
    assert.equal(currentCall(), undefined);
    assert.equal(r.stats('db').operations.find?.successes, 1);
  });

  test('the @resilient decorator sends each call of the method through the registry', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: { db: { kind: 'database', retry: { maxAttempts: 2, baseMs: 0 } } },
    });
    const { resilient } = r;
    let attempts = 0;
    class PetService {
      prefix = 'pet-';
      @resilient('db', 'get_pet')
      async getPet(id: number): Promise<string> {
        attempts++;
        if (attempts === 1) throw transient();
        return `${this.prefix}${id}#${currentCall()?.attempt}`;
      }
      @resilient('db')
      async countPets(): Promise<number> {
        return 3;
      }
    }
    const service = new PetService();
    const pet = await runToEnd(clock, service.getPet(7));
    assert.equal(pet.value, 'pet-7#2');
    assert.equal(await service.countPets(), 3);
    assert.deepEqual(Object.keys(r.stats('db').operations).sort(), ['countPets', 'get_pet']);
  });
});

describe('registry: statistics', () => {
  test('counts calls by outcome, per dependency and per operation', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: { db: { retry: false, timeoutMs: 100, bulkhead: { maxConcurrent: 1 } } },
    });
    await r.execute('db', 'get', () => 1);
    await assert.rejects(r.execute('db', 'get', () => Promise.reject(transient())));
    const slow = track(r.execute('db', 'put', untilAborted()));
    await assert.rejects(
      r.execute('db', 'put', () => 1),
      BulkheadRejectedError,
    ); // the slot is taken
    await clock.advance(100);
    await assert.rejects(slow.promise, TimeoutError);
    const controller = new AbortController();
    const cancelled = track(r.execute('db', 'get', untilAborted(), { signal: controller.signal }));
    controller.abort(new Error('caller left'));
    await assert.rejects(cancelled.promise, /caller left/);
    const s = r.stats('db');
    assert.deepEqual(
      [
        s.calls.calls,
        s.calls.successes,
        s.calls.failures,
        s.calls.timeouts,
        s.calls.rejections,
        s.calls.cancellations,
      ],
      [5, 1, 1, 1, 1, 1],
    );
    assert.equal(s.calls.inFlight, 0);
    assert.deepEqual([s.operations.get?.calls, s.operations.put?.calls], [3, 2]);
    // Rejections and cancellations say nothing of the dependency: left out of the recent rate.
    assert.deepEqual([s.calls.recent.calls, s.calls.recent.failures], [3, 2]);
  });

  test('latency quantiles come from the last minute and forget idle time', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { db: { retry: false } } });
    for (let ms = 1; ms <= 100; ms++) {
      const call = track(r.execute('db', 'q', () => clock.sleep(ms)));
      await clock.advance(ms);
      await call.promise;
    }
    const latency = r.stats('db').calls.recent.latencyMs!;
    const near = (actual: number, expected: number) =>
      assert.ok(Math.abs(actual - expected) <= expected * 0.05, `${actual} is not within 5% of ${expected}`);
    near(latency.p50, 50);
    near(latency.p95, 95);
    near(latency.p99, 99);
    assert.equal(latency.max, 100);
    await clock.advance(60_000);
    assert.equal(r.stats('db').calls.recent.latencyMs, null);
    assert.equal(r.stats('db').calls.successes, 100);
  });

  test('operation names beyond 100 are counted together under (other)', async () => {
    const r = registry(new VirtualClock(), { dependencies: { api: { retry: false } } });
    for (let i = 0; i < 150; i++) await r.execute('api', `GET /pets/${i}`, () => i);
    const ops = r.stats('api').operations;
    assert.equal(Object.keys(ops).length, 101);
    assert.equal(ops['(other)']?.calls, 50);
  });

  test('every call emits dependency:call with its outcome and duration', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { db: { retry: false } } });
    const events = recordEvents(r);
    await r.execute('db', 'get', () => 1);
    assert.deepEqual(
      events
        .filter((e) => e.type === 'dependency:call')
        .map((e) => e.type === 'dependency:call' && [e.dependency, e.operation, e.outcome, e.durationMs]),
      [['db', 'get', 'success', 0]],
    );
  });
});

describe('registry: failover groups', () => {
  const fast = {
    retry: false as const,
    breaker: { window: { kind: 'consecutive' as const, failures: 1 }, openMs: 10_000 },
  };

  test('ordered: the next provider serves when the first fails, and events say which', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: { anthropic: fast, openai: fast, gemini: fast },
      groups: { ai: { providers: ['anthropic', 'openai', 'gemini'] } },
    });
    const events = recordEvents(r);
    const answer = await r.execute('ai', 'complete', (ctx) => {
      if (ctx.dependency === 'anthropic') throw transient();
      return `${ctx.dependency} (${ctx.group})`;
    });
    assert.equal(answer, 'openai (ai)');
    const served = events.find((e) => e.type === 'group:served');
    assert.ok(served?.type === 'group:served');
    assert.equal(served.provider, 'openai');
    assert.deepEqual(served.tried, ['anthropic', 'openai']);
    assert.ok(events.some((e) => e.type === 'group:failover' && e.from === 'anthropic' && e.to === 'openai'));
    assert.deepEqual(r.groupStats('ai').servedBy, { openai: 1 });
  });

  test('a provider whose circuit is open is skipped without being called', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: { anthropic: fast, openai: fast },
      groups: { ai: { providers: ['anthropic', 'openai'] } },
    });
    await assert.rejects(r.execute('anthropic', 'complete', () => Promise.reject(transient())));
    const called: string[] = [];
    await r.execute('ai', 'complete', (ctx) => called.push(ctx.dependency));
    assert.deepEqual(called, ['openai']);
    await clock.advance(10_000); // anthropic's circuit lets a probe through again
    called.length = 0;
    await r.execute('ai', 'complete', (ctx) => called.push(ctx.dependency));
    assert.deepEqual(called, ['anthropic']);
  });

  test('weighted: providers are chosen in proportion to their weights', async () => {
    const r = registry(new VirtualClock(), {
      dependencies: { a: fast, b: fast },
      groups: { ai: { strategy: 'weighted', providers: [{ dependency: 'a', weight: 3 }, 'b'] } },
    });
    for (let i = 0; i < 2_000; i++) await r.execute('ai', 'x', () => 1);
    const share = (r.groupStats('ai').servedBy.a ?? 0) / 2_000;
    assert.ok(share > 0.7 && share < 0.8, `a served ${share}`);
  });

  test('when every provider fails, the group fallback answers and is marked degraded', async () => {
    const r = registry(new VirtualClock(), {
      dependencies: { a: fast, b: fast },
      groups: { ai: { providers: ['a', 'b'], fallback: { value: 'canned answer' } } },
    });
    const events = recordEvents(r);
    assert.equal(await r.execute('ai', 'x', () => Promise.reject(transient())), 'canned answer');
    const served = events.find((e) => e.type === 'group:served');
    assert.ok(served?.type === 'group:served' && served.degraded && served.provider === undefined);
    assert.equal(r.groupStats('ai').fallbacks, 1);
  });

  test('without a fallback: the last error, or GroupUnavailableError when every circuit is open', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: { a: fast, b: fast },
      groups: { ai: { providers: ['a', 'b'] } },
    });
    const last = transient();
    await assert.rejects(
      r.execute('ai', 'x', (ctx) => Promise.reject(ctx.dependency === 'b' ? last : transient())),
      (e) => e === last,
    );
    await clock.advance(4_000);
    await rejectsWith(
      r.execute('ai', 'x', () => 1),
      Error,
      {
        code: ErrorCodes.GROUP_UNAVAILABLE,
        retryAfterMs: 6_000,
      },
    );
  });

  test('a provider that answers 429 with Retry-After is skipped until then; a plain 500 is not', async () => {
    const clock = new VirtualClock();
    const open = { retry: false as const, breaker: false as const };
    const r = registry(clock, {
      dependencies: { a: open, b: open, c: open },
      groups: { ai: { providers: ['a', 'b', 'c'] } },
    });
    const events = recordEvents(r);
    const status = (code: number, retryAfterMs: number | undefined) =>
      new HttpStatusError({
        client: 'b',
        status: code,
        statusText: '',
        method: 'POST',
        url: 'http://127.0.0.1/v1',
        headers: new Headers(),
        body: '',
        retryAfterMs,
      });
    let answers: Record<string, () => unknown> = {
      a: () => {
        throw status(500, undefined);
      },
      b: () => {
        throw status(429, 5_000);
      },
      c: () => 'c',
    };
    const called: string[] = [];
    const ask = () =>
      r.execute('ai', 'complete', (ctx) => {
        called.push(ctx.dependency);
        return answers[ctx.dependency]!();
      });
    assert.equal(await ask(), 'c');
    await clock.advance(1_000);
    assert.equal(await ask(), 'c');
    // a (500, no Retry-After) is tried again; b is left alone for the 5 s it asked for.
    assert.deepEqual(called, ['a', 'b', 'c', 'a', 'c']);
    assert.ok(
      events.some((e) => e.type === 'group:failover' && e.from === 'b' && e.reason === 'rate-limited'),
    );
    await clock.advance(4_000);
    called.length = 0;
    answers = { ...answers, b: () => 'b' };
    assert.equal(await ask(), 'b');
    assert.deepEqual(called, ['a', 'b']);
  });

  test("a provider's own retry giving up on a 429 still starts its cool-down", async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: {
        // The Retry-After (5 s) is longer than this retry will wait, so it gives up at once.
        a: { retry: { maxAttempts: 2, baseMs: 10, retryAfterMaxMs: 100 }, breaker: false },
        b: { retry: false, breaker: false },
      },
      groups: { ai: { providers: ['a', 'b'] } },
    });
    const called: string[] = [];
    const ask = () =>
      r.execute('ai', 'x', (ctx) => {
        called.push(ctx.dependency);
        if (ctx.dependency === 'b') return 'b';
        throw new HttpStatusError({
          client: 'a',
          status: 429,
          statusText: 'Too Many Requests',
          method: 'POST',
          url: 'http://127.0.0.1/v1',
          headers: new Headers(),
          body: '',
          retryAfterMs: 5_000,
        });
      });
    assert.equal((await runToEnd(clock, ask())).value, 'b');
    const first = called.length;
    assert.equal((await runToEnd(clock, ask())).value, 'b');
    assert.deepEqual(called.slice(first), ['b']);
  });

  test('when every provider is cooling down, GroupUnavailableError gives the soonest wait', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, {
      dependencies: { a: { retry: false }, b: { retry: false } },
      groups: { ai: { providers: ['a', 'b'] } },
    });
    const limited = (ms: number) => () => Promise.reject(new RateLimitedError('upstream', ms));
    await assert.rejects(
      r.execute('ai', 'x', (ctx) => limited(ctx.dependency === 'a' ? 3_000 : 2_000)()),
      RateLimitedError,
    );
    await clock.advance(500);
    await rejectsWith(
      r.execute('ai', 'x', () => 1),
      Error,
      {
        code: ErrorCodes.GROUP_UNAVAILABLE,
        retryAfterMs: 1_500,
      },
    );
  });

  test('a caller that aborts is not failed over to the next provider', async () => {
    const r = registry(new VirtualClock(), {
      dependencies: { a: fast, b: fast },
      groups: { ai: { providers: ['a', 'b'] } },
    });
    const controller = new AbortController();
    const called: string[] = [];
    const call = r.execute(
      'ai',
      'x',
      (ctx) => {
        called.push(ctx.dependency);
        return untilAborted()(ctx);
      },
      { signal: controller.signal },
    );
    controller.abort(new Error('gone'));
    await assert.rejects(call, /gone/);
    assert.deepEqual(called, ['a']);
  });

  test('group options are checked: providers must be dependencies', () => {
    const build = (groups: Record<string, unknown>) => () =>
      new DependencyRegistry({ dependencies: { openai: {} }, groups: groups as never });
    assert.match(
      throwsInvalid(build({ ai: { providers: ['opena'] } }), 'groups.ai.providers.0'),
      /did you mean 'openai'/,
    );
    throwsInvalid(build({ ai: { providers: [] } }), 'groups.ai.providers');
    throwsInvalid(build({ ai: { providers: ['openai'], strategy: 'random' } }), 'groups.ai.strategy');
    throwsInvalid(build({ openai: { providers: ['openai'] } }), 'groups.openai');
  });
});

describe('registry: reload (configure)', () => {
  const breaker = { window: { kind: 'consecutive' as const, failures: 1 }, openMs: 60_000 };

  test('unchanged dependencies keep their breaker state and counters', async () => {
    const clock = new VirtualClock();
    const options = {
      dependencies: { pay: { retry: false as const, breaker }, db: { kind: 'database' as const } },
    };
    const r = registry(clock, options);
    await assert.rejects(r.execute('pay', 'x', () => Promise.reject(transient())));
    const result = r.configure({
      dependencies: {
        pay: { retry: false, breaker: { ...breaker } },
        db: { kind: 'database', timeoutMs: 2_000 },
      },
    });
    assert.deepEqual(result, { added: [], changed: ['db'], removed: [], unchanged: ['pay'] });
    assert.equal(r.stats('pay').state, 'open');
    assert.equal(r.stats('pay').calls.failures, 1);
    assert.equal(layer(r, 'db', 'timeout')?.ms, 2_000);
  });

  test('a changed dependency keeps the breaker whose settings did not change, and its statistics', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { pay: { retry: false, breaker, timeoutMs: 1_000 } } });
    await assert.rejects(r.execute('pay', 'x', () => Promise.reject(transient())));
    const before = r.breaker('pay');
    r.configure({ dependencies: { pay: { retry: false, breaker, timeoutMs: 5_000 } } });
    assert.equal(r.breaker('pay'), before);
    assert.equal(r.stats('pay').state, 'open');
    assert.equal(r.stats('pay').calls.calls, 1);
    r.configure({
      dependencies: { pay: { retry: false, breaker: { ...breaker, openMs: 1_000 }, timeoutMs: 5_000 } },
    });
    assert.notEqual(r.breaker('pay'), before);
    assert.equal(r.stats('pay').state, 'closed');
  });

  test('added and removed dependencies; calls to a removed one fail as unknown', async () => {
    const r = registry(new VirtualClock(), { dependencies: { a: {}, b: {} } });
    const events = recordEvents(r);
    assert.deepEqual(r.configure({ dependencies: { b: {}, c: {} } }), {
      added: ['c'],
      changed: [],
      removed: ['a'],
      unchanged: ['b'],
    });
    await rejectsWith(
      r.execute('a', 'x', () => 1),
      Error,
      { code: ErrorCodes.UNKNOWN_DEPENDENCY },
    );
    assert.equal(await r.execute('c', 'x', () => 'c'), 'c');
    assert.deepEqual(
      events
        .filter((e) => e.type === 'registry:reloaded')
        .map((e) => e.type === 'registry:reloaded' && e.removed),
      [['a']],
    );
  });

  test('an invalid configuration is rejected whole and the running one stays', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { pay: { retry: false, breaker }, db: {} } });
    await assert.rejects(r.execute('pay', 'x', () => Promise.reject(transient())));
    throwsInvalid(
      () =>
        r.configure({ dependencies: { pay: { retry: false, breaker, timeoutMs: -5 }, db: {}, new_one: {} } }),
      'dependencies.pay.timeoutMs',
    );
    assert.deepEqual(r.names, ['pay', 'db']);
    assert.equal(r.stats('pay').state, 'open');
  });

  test('a call in flight during a reload finishes on the pipeline it started on', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { db: { retry: false, timeoutMs: 1_000 } } });
    const gate = deferred<string>();
    const call = track(r.execute('db', 'x', () => gate.promise));
    r.configure({ dependencies: { db: { retry: false, timeoutMs: 5_000 } } });
    gate.resolve('done');
    assert.equal(await call.promise, 'done');
    assert.equal(r.stats('db').calls.successes, 1);
  });

  test('a breaker carried over by a reload reports each event once, through the new dependency only', async () => {
    const clock = new VirtualClock();
    const r = registry(clock, { dependencies: { db: { retry: false, breaker, timeoutMs: 10 } } });
    const events = recordEvents(r);
    r.configure({ dependencies: { db: { retry: false, breaker, timeoutMs: 20 } } });
    r.configure({ dependencies: { db: { retry: false, breaker, timeoutMs: 30 } } });
    const call = await runToEnd(clock, r.execute('db', 'x', untilAborted()));
    assert.ok(call.error instanceof TimeoutError);
    assert.deepEqual(
      events.filter((e) => e.type !== 'registry:reloaded' && e.type !== 'timeout:warning').map((e) => e.type),
      ['timeout:fired', 'breaker:opened', 'dependency:call'],
    );
    assert.equal(clock.now(), 30);
  });
});

describe('registry: health', () => {
  test('an open breaker on a dependency makes the report warn; a failing critical probe makes it fail', async () => {
    const clock = new VirtualClock();
    let dbUp = true;
    const r = registry(clock, {
      dependencies: {
        pay: { retry: false, breaker: { window: { kind: 'consecutive', failures: 1 }, openMs: 60_000 } },
        db: {
          kind: 'database',
          critical: true,
          health: {
            intervalMs: 1_000,
            check: () => {
              if (!dbUp) throw new Error('connection refused');
            },
          },
        },
      },
    });
    assert.equal((await r.health.report()).status, 'pass');
    await assert.rejects(r.execute('pay', 'x', () => Promise.reject(transient())));
    await clock.advance(1_000); // a passive reading is fresh for a second
    const warn = await r.health.report();
    assert.equal(warn.status, 'warn');
    assert.equal(warn.checks['pay:errorRate']?.[0]?.status, 'warn');
    dbUp = false;
    await clock.advance(1_000);
    const failing = await r.health.report();
    assert.equal(failing.status, 'fail');
    assert.equal(failing.checks['db:responseTime']?.[0]?.output, 'connection refused');
  });

  test('reload replaces the health checks of changed and removed dependencies', async () => {
    const r = registry(new VirtualClock(), { dependencies: { a: {}, b: {} } });
    assert.deepEqual(Object.keys((await r.health.report()).checks).sort(), ['a:errorRate', 'b:errorRate']);
    r.configure({ dependencies: { b: { timeoutMs: 5 }, c: {} } });
    assert.deepEqual(Object.keys((await r.health.report()).checks).sort(), ['b:errorRate', 'c:errorRate']);
    await r.close();
  });
});
