// Unit tests of pipelines: composition order, flattening, describe(), the event stream and its
// cost when nobody listens, executeOutcome, and the per-call scope.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type BulwarkEvent,
  bulkhead,
  circuitBreaker,
  constant,
  ErrorCodes,
  type EventStream,
  fallback,
  Pipeline,
  pipeline,
  retry,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import { PolicyBase } from '../src/pipeline/base.ts';
import { Scope } from '../src/pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../src/pipeline/policy.ts';
import { connectionReset, hang, runToEnd, track, withWarnings } from './support.ts';

/** A layer that writes down when a call enters and leaves it. */
class Recorder extends PolicyBase {
  readonly kind = 'recorder';
  constructor(
    name: string,
    readonly log: string[],
  ) {
    super(name);
  }
  describe(): PolicyDescription {
    return { kind: 'recorder', name: this.name, options: {} };
  }
  async [kRun](scope: Scope, next: Next): Promise<unknown> {
    this.log.push(`> ${this.name}`);
    try {
      return await next(scope);
    } finally {
      this.log.push(`< ${this.name}`);
    }
  }
}

/** Counts the emit calls of a stream, to prove that nothing is built or sent for nobody. */
function countEmits(stream: EventStream): { count: number } {
  const counter = { count: 0 };
  const original = stream.emit.bind(stream);
  stream.emit = (event) => {
    counter.count++;
    original(event);
  };
  return counter;
}

describe('pipeline: composition', () => {
  test('policies see a call outermost first, and the result on the way back innermost first', async () => {
    const log: string[] = [];
    const p = pipeline(new Recorder('a', log), new Recorder('b', log), new Recorder('c', log));
    const result = await p.execute(() => {
      log.push('operation');
      return 7;
    });
    assert.equal(result, 7);
    assert.deepEqual(log, ['> a', '> b', '> c', 'operation', '< c', '< b', '< a']);
  });

  test('layers inside a retry see every attempt, layers outside see the call once', async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    const p = pipeline(
      new Recorder('outer', log),
      retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), clock }),
      new Recorder('inner', log),
    );
    const call = await runToEnd(
      clock,
      p.execute(({ attempt }) => {
        log.push(`attempt ${attempt}`);
        if (attempt < 2) throw connectionReset();
        return 'ok';
      }),
    );
    assert.equal(call.value, 'ok');
    assert.deepEqual(log, [
      '> outer',
      '> inner',
      'attempt 1',
      '< inner',
      '> inner',
      'attempt 2',
      '< inner',
      '< outer',
    ]);
  });

  test('nested pipelines are flattened into one chain, keeping the order', async () => {
    const log: string[] = [];
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => new Recorder(n, log));
    const p = pipeline(pipeline(a!, b!), c!, pipeline(pipeline(d!)));
    assert.deepEqual(p.policies, [a, b, c, d]);
    assert.ok(p.policies.every((x) => !(x instanceof Pipeline)));
    await p.execute(() => log.push('op'));
    assert.deepEqual(log, ['> a', '> b', '> c', '> d', 'op', '< d', '< c', '< b', '< a']);
  });

  test('runs an operation through every kind of layer and leaves no timer behind', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      fallback({ value: -1 }),
      timeout({ ms: 10_000, clock }),
      retry({ maxAttempts: 3, backoff: constant({ ms: 100 }), clock }),
      circuitBreaker({ clock }),
      bulkhead({ maxConcurrent: 2, clock }),
      timeout({ ms: 1_000, clock }),
    );
    const outcome = p.executeOutcome(async ({ attempt }) => {
      if (attempt < 3) throw connectionReset();
      return 42;
    });
    await clock.runAll();
    assert.deepEqual(await outcome, { ok: true, value: 42, degraded: false, attempts: 3 });
    assert.equal(clock.pendingTimers, 0);
  });

  test('an empty pipeline just calls the operation', async () => {
    assert.equal(await pipeline().execute(async () => 'plain'), 'plain');
    assert.equal(await pipeline().execute(() => 'sync'), 'sync');
  });

  test('describe() lists each policy with its normalised options, outermost first', () => {
    const p = pipeline(
      fallback({ value: 'x' }),
      timeout({ ms: 15_000 }),
      retry({ maxAttempts: 4, backoff: constant({ ms: 100 }) }),
      pipeline(timeout(5_000)),
    );
    assert.deepEqual(p.describe(), {
      kind: 'pipeline',
      name: 'pipeline',
      options: {
        policies: [
          { kind: 'fallback', name: 'fallback', options: { substitute: 'value' } },
          { kind: 'timeout', name: 'timeout', options: { ms: 15_000 } },
          {
            kind: 'retry',
            name: 'retry',
            options: {
              maxAttempts: 4,
              maxDurationMs: Number.POSITIVE_INFINITY,
              backoff: { kind: 'constant', ms: 100, jitter: 0 },
              retryAfterMaxMs: 30_000,
            },
          },
          { kind: 'timeout', name: 'timeout', options: { ms: 5_000 } },
        ],
      },
    });
  });

  test('the operation name reaches the operation context and the events', async () => {
    const p = pipeline(fallback({ value: 0 }));
    const operations: unknown[] = [];
    p.events.on('fallback:used', (e) => operations.push(e.operation));
    await p.execute(
      ({ operation }) => {
        operations.push(operation);
        throw new Error('x');
      },
      { operation: 'charge' },
    );
    assert.deepEqual(operations, ['charge', 'charge']);
  });
});

describe('pipeline: execute and executeOutcome', () => {
  test('a synchronous throw in the operation becomes a rejection, not a synchronous throw', async () => {
    const failure = new Error('sync');
    const p = pipeline(timeout(1_000));
    let returned: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      returned = p.execute(() => {
        throw failure;
      });
    });
    await assert.rejects(returned!, (e) => e === failure);
    assert.doesNotThrow(() => {
      returned = pipeline().execute(() => {
        throw failure;
      });
    });
    await assert.rejects(returned!, (e) => e === failure);
  });

  test('an already aborted caller signal rejects with its reason before the operation runs', async () => {
    let calls = 0;
    const op = () => {
      calls++;
      return 'ran';
    };
    const reason = new Error('aborted before start');
    const p = pipeline(fallback({ value: 'substitute' }), retry());
    await assert.rejects(p.execute(op, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    const outcome = await p.executeOutcome(op, { signal: AbortSignal.abort(reason) });
    assert.equal(outcome.ok, false);
    assert.equal(!outcome.ok && outcome.error, reason);
    assert.equal(outcome.attempts, 0, 'refused before anything ran: no attempt');
    await assert.rejects(retry().execute(op, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(calls, 0);
  });

  test('executeOutcome never throws: failures, synchronous throws and non-functions become outcomes', async () => {
    const failure = new Error('x');
    const p = pipeline(retry({ maxAttempts: 1 }));
    assert.deepEqual(
      await p.executeOutcome(() => {
        throw new TypeError('bug');
      }),
      { ok: false, error: new TypeError('bug'), attempts: 1 },
    );
    const rejected = await p.executeOutcome(() => Promise.reject(failure));
    assert.equal(rejected.ok, false);
    assert.equal(!rejected.ok && (rejected.error as { code?: string }).code, ErrorCodes.RETRIES_EXHAUSTED);
    const notAFunction = await pipeline().executeOutcome(42 as never);
    assert.equal(notAFunction.ok, false);
    assert.ok(!notAFunction.ok && notAFunction.error instanceof TypeError);
  });

  test('executeOutcome reports value, degraded and attempts on success', async () => {
    const clock = new VirtualClock();
    const p = pipeline(retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), clock }));
    const outcome = p.executeOutcome(({ attempt }) => {
      if (attempt === 1) throw connectionReset();
      return 'v';
    });
    await clock.runAll();
    assert.deepEqual(await outcome, { ok: true, value: 'v', degraded: false, attempts: 2 });
  });

  test('executeOutcome reports the attempts of a failure', async () => {
    const clock = new VirtualClock();
    const p = pipeline(retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), clock }));
    const outcome = p.executeOutcome(() => {
      throw connectionReset();
    });
    await clock.runAll();
    const o = await outcome;
    assert.equal(o.ok, false);
    assert.equal(o.attempts, 3);
  });

  test('a single policy executes on its own like a one-layer pipeline', async () => {
    assert.equal(await fallback({ value: 'f' }).execute(() => Promise.reject(new Error('x'))), 'f');
    assert.equal(await timeout(100).execute(() => 'quick'), 'quick');
  });

  test('each call gets its own scope: concurrent calls do not share attempt or degraded state', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      fallback({ value: 'substitute' }),
      retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), clock }),
    );
    const a = p.executeOutcome(({ attempt }) => {
      if (attempt < 3) throw connectionReset();
      return 'a';
    });
    const b = p.executeOutcome(() => {
      throw new TypeError('permanent');
    });
    await clock.runAll();
    assert.deepEqual(await a, { ok: true, value: 'a', degraded: false, attempts: 3 });
    assert.deepEqual(await b, { ok: true, value: 'substitute', degraded: true, attempts: 1 });
  });
});

describe('pipeline: events', () => {
  test('events of every policy reach the pipeline stream', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      fallback({ value: 'fallback' }),
      retry({ maxAttempts: 2, backoff: constant({ ms: 5 }), clock }),
      timeout({ ms: 100, clock }),
    );
    const types: string[] = [];
    p.events.onAny((e) => types.push(e.type));
    const call = await runToEnd(clock, p.execute(hang));
    assert.equal(call.value, 'fallback');
    assert.deepEqual(types, [
      'timeout:warning',
      'timeout:warning',
      'timeout:fired',
      'retry:attempt',
      'retry:scheduled',
      'timeout:warning',
      'timeout:warning',
      'timeout:fired',
      'retry:attempt',
      'retry:exhausted',
      'fallback:used',
    ]);
  });

  test('breaker and bulkhead events reach the pipeline stream too', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      circuitBreaker({ window: { kind: 'consecutive', failures: 1 }, clock }),
      bulkhead({ maxConcurrent: 1, maxQueue: 0, clock }),
    );
    const types: string[] = [];
    p.events.onAny((e) => types.push(e.type));
    const hold = track(p.execute(hang));
    const rejected = track(p.execute(() => 'x'));
    await clock.advance(0);
    assert.equal(hold.status, 'pending');
    assert.equal((rejected.error as { code?: string }).code, ErrorCodes.BULKHEAD_REJECTED);
    assert.ok(types.includes('bulkhead:rejected'), types.join());

    const q = pipeline(circuitBreaker({ window: { kind: 'consecutive', failures: 1 }, clock }));
    const heard: string[] = [];
    q.events.onAny((e) => heard.push(e.type));
    await assert.rejects(q.execute(() => Promise.reject(connectionReset())));
    assert.ok(heard.includes('breaker:opened'), heard.join());
  });

  test('a nested pipeline listener hears its policies when they run inside an outer pipeline', async () => {
    const inner = pipeline(fallback({ value: 1 }));
    const outer = pipeline(timeout(1_000), inner);
    const heardByInner: string[] = [];
    const heardByOuter: string[] = [];
    inner.events.onAny((e) => heardByInner.push(e.type));
    outer.events.onAny((e) => heardByOuter.push(e.type));
    await outer.execute(() => {
      throw new Error('x');
    });
    assert.deepEqual(heardByInner, ['fallback:used']);
    assert.deepEqual(heardByOuter, ['fallback:used']);
  });

  test('a policy shared by two pipelines reports to the listeners of both, once each', async () => {
    const shared = fallback({ value: 0 });
    const p1 = pipeline(shared);
    const p2 = pipeline(shared);
    const heard: string[] = [];
    p1.events.on('fallback:used', () => heard.push('p1'));
    p2.events.on('fallback:used', () => heard.push('p2'));
    shared.events.on('fallback:used', () => heard.push('policy'));
    await p1.execute(() => {
      throw new Error('x');
    });
    assert.deepEqual(heard.sort(), ['p1', 'p2', 'policy']);
  });

  test('demand is 0 when nobody listens, and a listener-free run never calls emit', async () => {
    const clock = new VirtualClock();
    const f = fallback({ value: 'fallback' });
    const r = retry({ maxAttempts: 2, backoff: constant({ ms: 5 }), clock });
    const t = timeout({ ms: 100, clock });
    const p = pipeline(f, r, t);
    const emits = [f, r, t].map((x) => countEmits(x.events));
    const total = () => emits.reduce((n, e) => n + e.count, 0);
    for (const s of [p.events, f.events, r.events, t.events]) assert.equal(s.demand, 0);

    // Every kind of event would fire here: warnings, timeouts, retries, exhaustion, fallback.
    const run = async () => {
      const call = await runToEnd(clock, p.execute(hang));
      assert.equal(call.value, 'fallback');
    };
    await run();
    assert.equal(total(), 0);

    const off = p.events.onAny(() => {});
    for (const s of [p.events, f.events, r.events, t.events]) assert.equal(s.demand, 1);
    await run();
    assert.ok(total() > 0);

    off();
    for (const s of [p.events, f.events, r.events, t.events]) assert.equal(s.demand, 0);
    const before = total();
    await run();
    assert.equal(total(), before);
  });

  test('disposers unsubscribe; a second call of a disposer does nothing', async () => {
    const p = pipeline(fallback({ value: 0 }));
    const heard: BulwarkEvent[] = [];
    const off1 = p.events.on('fallback:used', (e) => heard.push(e));
    const off2 = p.events.onAny((e) => heard.push(e));
    const fail = () => p.execute(() => Promise.reject(new Error('x')));
    await fail();
    assert.equal(heard.length, 2);
    off1();
    await fail();
    assert.equal(heard.length, 3);
    off2();
    off2();
    off1();
    assert.equal(p.events.demand, 0);
    await fail();
    assert.equal(heard.length, 3);
  });

  test('a throwing listener does not fail the call, and other listeners still hear the event', async () => {
    await withWarnings(async (warnings) => {
      const p = pipeline(fallback({ value: 'substitute' }));
      const heard: string[] = [];
      p.events.on('fallback:used', () => {
        throw new Error('listener bug');
      });
      p.events.on('fallback:used', () => heard.push('second'));
      const result = await p.execute(() => Promise.reject(new Error('x')));
      assert.equal(result, 'substitute');
      assert.deepEqual(heard, ['second']);
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(warnings.some((w) => w.name === 'BulwarkListenerError'));
    });
  });
});

describe('Scope (internal)', () => {
  const op = () => undefined;

  test("the root scope's signal is the caller's own signal", () => {
    const controller = new AbortController();
    const scope = new Scope(op, { operation: 'x', signal: controller.signal });
    assert.equal(scope.signal, controller.signal);
    assert.equal(scope.canAbort, true);
  });

  test('without a caller signal nothing can abort the root scope and its signal is made on demand', () => {
    const scope = new Scope(op, undefined);
    assert.equal(scope.canAbort, false);
    assert.equal(scope.aborted, false);
    assert.equal(scope.signal.aborted, false);
    assert.equal(scope.signal, scope.signal);
  });

  test("aborting a child aborts its own signal only, never the parent's or a sibling's", () => {
    const controller = new AbortController();
    const root = new Scope(op, { signal: controller.signal });
    const a = root.child();
    const b = root.child();
    const aSignal = a.signal;
    const bSignal = b.signal;
    a.abort('a timed out');
    assert.equal(aSignal.aborted, true);
    assert.equal(aSignal.reason, 'a timed out');
    assert.equal(bSignal.aborted, false);
    assert.equal(controller.signal.aborted, false);
    assert.equal(root.aborted, false);
    assert.equal(a.aborted, true);
  });

  test("a caller abort reaches every child's signal, and the caller's reason wins as abortReason", () => {
    const controller = new AbortController();
    const root = new Scope(op, { signal: controller.signal });
    const child = root.child();
    const grandchild = child.child();
    const signal = grandchild.signal;
    child.abort('inner timeout');
    controller.abort('caller');
    assert.equal(signal.aborted, true);
    assert.equal(grandchild.abortReason, 'caller');
    assert.equal(child.abortReason, 'caller');
  });

  test('a child abort before its signal is read still shows on a later read', () => {
    const child = new Scope(op, undefined).child();
    child.abort('deadline');
    assert.equal(child.aborted, true);
    assert.equal(child.signal.aborted, true);
    assert.equal(child.signal.reason, 'deadline');
  });

  test('dispose unlinks the child from the parent signal', () => {
    const controller = new AbortController();
    const child = new Scope(op, { signal: controller.signal }).child();
    const signal = child.signal;
    child.dispose();
    controller.abort('later');
    assert.equal(signal.aborted, false);
  });

  test('a child copies the attempt number of its parent when it is made', () => {
    const root = new Scope(op, undefined);
    root.attempt = 3;
    assert.equal(root.child().attempt, 3);
  });
});

describe('pipeline: the call options reach the context', () => {
  test('key and priority reach the operation, through a timeout and a retry', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      retry({ maxAttempts: 2, backoff: constant({ ms: 1 }), clock }),
      timeout({ ms: 100, clock }),
    );
    const seen: [string | undefined, string | undefined, string | undefined][] = [];
    const call = runToEnd(
      clock,
      p.execute(
        (ctx) => {
          seen.push([ctx.operation, ctx.key, ctx.priority]);
          if (ctx.attempt === 1) throw connectionReset();
          return 'ok';
        },
        { operation: 'get-user', key: 'user:42', priority: 'critical' },
      ),
    );
    assert.equal((await call).value, 'ok');
    assert.deepEqual(seen, [
      ['get-user', 'user:42', 'critical'],
      ['get-user', 'user:42', 'critical'],
    ]);
  });
});
