// Unit tests of the fallback policy: value and function substitutes, which failures it replaces,
// the caller's abort, degraded outcomes, events and result typing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  constant,
  ErrorCodes,
  type ExecutionContext,
  fallback,
  pipeline,
  retry,
  TimeoutError,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import { hang, recordEvents, runToEnd, track, transient, untilAborted } from './support.ts';

const down = () => {
  throw new Error('down');
};

/** A fallback that answers `answer` and keeps the errors it replaced, to check which ones reached it. */
function answering(answer: string) {
  const errors: unknown[] = [];
  const f = fallback({
    fn: (e) => {
      errors.push(e);
      return answer;
    },
  });
  return { f, errors };
}

describe('fallback: substitutes', () => {
  test('the value form answers a failure with the value', async () => {
    assert.equal(await fallback({ value: 'cached' }).execute(down), 'cached');
  });

  test('the value form may be undefined or null', async () => {
    assert.equal(await fallback({ value: undefined }).execute(down), undefined);
    assert.equal(await fallback({ value: null }).execute(down), null);
  });

  test('the fn form gets the error and the context, and answers with what it returns', async () => {
    const failure = new Error('down');
    const seen: Array<[unknown, ExecutionContext]> = [];
    const f = fallback({
      fn: (error, context) => {
        seen.push([error, context]);
        return `fallback for ${(error as Error).message}`;
      },
    });
    const result = await f.execute(
      () => {
        throw failure;
      },
      { operation: 'lookup' },
    );
    assert.equal(result, 'fallback for down');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.[0], failure);
    assert.equal(seen[0]?.[1].operation, 'lookup');
    assert.equal(seen[0]?.[1].attempt, 1);
  });

  test('the fn form may be async', async () => {
    const f = fallback({ fn: async () => 42 });
    assert.equal(await f.execute(down), 42);
  });

  test('a substitute that throws rejects the call with its error', async () => {
    const secondary = new Error('secondary down too');
    const f = fallback({
      fn: () => {
        throw secondary;
      },
    });
    await assert.rejects(f.execute(down), (e) => e === secondary);
  });

  test('a success passes through untouched and the substitute is not computed', async () => {
    let computed = 0;
    const f = fallback({
      fn: () => {
        computed++;
        return 'substitute';
      },
    });
    assert.equal(await f.execute(() => 'real'), 'real');
    assert.equal(computed, 0);
    assert.deepEqual(f.stats(), { used: 0 });
  });

  test('a synchronous throw in the operation is replaced like a rejection', async () => {
    assert.equal(await fallback({ value: 1 }).execute(down), 1);
  });
});

describe('fallback: which failures', () => {
  test('shouldHandle false rethrows the error as-is', async () => {
    const failure = new TypeError('bug');
    const f = fallback({ value: 'x', shouldHandle: (e) => !(e instanceof TypeError) });
    await assert.rejects(
      f.execute(() => {
        throw failure;
      }),
      (e) => e === failure,
    );
    assert.equal(await f.execute(down), 'x');
    assert.deepEqual(f.stats(), { used: 1 });
  });

  test("the caller's abort is never replaced, even when shouldHandle accepts every error", async () => {
    const controller = new AbortController();
    const reason = new Error('caller left');
    let computed = 0;
    const f = fallback({
      fn: () => {
        computed++;
        return 'substitute';
      },
    });
    const call = f.execute(untilAborted(), { signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(call, (e) => e === reason);
    assert.equal(computed, 0);
    assert.deepEqual(f.stats(), { used: 0 });
  });

  test("the caller's abort surfaces the caller's reason, whatever the operation rejected with", async () => {
    const controller = new AbortController();
    const f = fallback({ value: 'substitute' });
    const call = f.execute(
      untilAborted(() => new Error('socket closed')),
      { signal: controller.signal },
    );
    controller.abort('caller reason');
    await assert.rejects(call, (e) => e === 'caller reason');
  });

  test("the caller's abort through a timeout inside the fallback is not replaced either", async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const p = pipeline(fallback({ value: 'substitute' }), timeout({ ms: 1_000, clock }));
    const call = track(p.execute(hang, { signal: controller.signal }));
    await clock.advance(10);
    controller.abort('stop');
    await clock.advance(0);
    assert.equal(call.error, 'stop');
  });

  test('an already aborted caller signal rejects without the substitute', async () => {
    const f = fallback({ value: 'substitute' });
    await assert.rejects(
      f.execute(() => 'never', { signal: AbortSignal.abort('early') }),
      (e) => e === 'early',
    );
  });

  test("a timeout's TimeoutError inside the fallback is replaced (it is not the caller's abort)", async () => {
    const clock = new VirtualClock();
    const { f, errors } = answering('late answer replaced');
    const p = pipeline(f, timeout({ ms: 100, clock }));
    const call = track(p.execute(hang));
    await clock.advance(100);
    assert.equal(call.value, 'late answer replaced');
    assert.ok(errors[0] instanceof TimeoutError);
    assert.equal((errors[0] as TimeoutError).code, ErrorCodes.TIMEOUT);
  });

  test('outside a retry it replaces RetriesExhaustedError once retries are spent', async () => {
    const clock = new VirtualClock();
    const { f, errors } = answering('degraded');
    const p = pipeline(f, retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), clock }));
    let calls = 0;
    const call = await runToEnd(
      clock,
      p.execute(() => {
        calls++;
        throw transient();
      }),
    );
    assert.equal(call.value, 'degraded');
    assert.equal(calls, 3);
    assert.equal((errors[0] as { code?: string }).code, ErrorCodes.RETRIES_EXHAUSTED);
  });
});

describe('fallback: outcome, events, stats', () => {
  const outcomes: Array<[name: string, operation: () => string, value: string, degraded: boolean]> = [
    ['executeOutcome reports degraded: true when the substitute answered', down, 'cached', true],
    ['executeOutcome reports degraded: false when the operation answered', () => 'fresh', 'fresh', false],
  ];
  for (const [name, operation, value, degraded] of outcomes) {
    test(name, async () => {
      const p = pipeline(fallback({ value: 'cached' }));
      assert.deepEqual(await p.executeOutcome(operation), { ok: true, value, degraded, attempts: 1 });
    });
  }

  test('degraded is per call: a later call answered for real is not degraded', async () => {
    const p = pipeline(fallback({ value: 'cached' }));
    assert.equal((await p.executeOutcome(down)).ok, true);
    const outcome = await p.executeOutcome(() => 'fresh');
    assert.equal(outcome.ok && outcome.degraded, false);
  });

  test('a failing substitute gives a failed outcome', async () => {
    const p = pipeline(
      fallback({
        fn: () => {
          throw new Error('no substitute');
        },
      }),
    );
    const outcome = await p.executeOutcome(down);
    assert.equal(outcome.ok, false);
    assert.equal(!outcome.ok && (outcome.error as Error).message, 'no substitute');
  });

  test('fallback:used carries the error it replaced', async () => {
    const failure = new Error('down');
    const f = fallback({ value: 0, name: 'zero' });
    const events = recordEvents(f);
    await f.execute(
      () => {
        throw failure;
      },
      { operation: 'count' },
    );
    assert.deepEqual(events, [{ type: 'fallback:used', policy: 'zero', operation: 'count', error: failure }]);
  });

  test('fallback:used reaches a pipeline listener and is not emitted on success', async () => {
    const p = pipeline(fallback({ value: 0 }));
    const used: unknown[] = [];
    p.events.on('fallback:used', (e) => used.push(e.error));
    await p.execute(() => 1);
    assert.equal(used.length, 0);
    await p.execute(down);
    assert.equal(used.length, 1);
  });

  test('stats count the calls the substitute answered', async () => {
    const f = fallback({ value: 'x' });
    await f.execute(down);
    await f.execute(() => 'y');
    await f.execute(down);
    assert.deepEqual(f.stats(), { used: 2 });
  });

  test('describe says which form of substitute it has', () => {
    assert.deepEqual(fallback({ value: 1 }).describe(), {
      kind: 'fallback',
      name: 'fallback',
      options: { substitute: 'value' },
    });
    assert.deepEqual(fallback({ fn: () => 1, name: 'fb' }).describe(), {
      kind: 'fallback',
      name: 'fb',
      options: { substitute: 'fn' },
    });
  });
});

describe('fallback: typing', () => {
  test("pipeline(fallback({ value: 'x' as const }), retry()) returns Promise<T | 'x'>", async () => {
    const p = pipeline(fallback({ value: 'x' as const }), retry({ maxAttempts: 1 }));
    const result: Promise<number | 'x'> = p.execute(() => 1);
    // @ts-expect-error the substitute is part of the result type, so it is not just a number
    const narrow: Promise<number> = p.execute(() => 1);
    assert.equal(await result, 1);
    assert.equal(await narrow, 1);
    const substituted: number | 'x' = await p.execute(() => {
      throw new TypeError('permanent');
    });
    assert.equal(substituted, 'x');
  });

  test('a pipeline without a fallback returns exactly the operation result type', async () => {
    const clock = new VirtualClock();
    const p = pipeline(retry({ clock }), timeout({ ms: 100, clock }));
    const result: Promise<number> = p.execute(() => 1);
    assert.equal(await result, 1);
  });

  test('the fn form adds its return type, and nested pipelines keep it', async () => {
    const inner = pipeline(fallback({ fn: () => 0 }), retry({ maxAttempts: 1 }));
    const outer = pipeline(inner, timeout(1_000));
    const result: Promise<string | number> = outer.execute(() => 'text');
    // @ts-expect-error the substitute's number type is part of the result
    const narrow: Promise<string> = outer.execute(() => 'text');
    assert.equal(await result, 'text');
    assert.equal(await narrow, 'text');
  });
});
