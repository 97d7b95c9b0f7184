import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  bulkhead,
  circuitBreaker,
  constant,
  fallback,
  pipeline,
  retry,
  timeout,
  VirtualClock,
} from '@bulwark/core';

describe('pipeline', () => {
  test('runs an operation through every layer and returns its result', async () => {
    const clock = new VirtualClock();
    const p = pipeline(
      retry({ maxAttempts: 3, backoff: constant({ ms: 100 }), clock }),
      circuitBreaker({ clock }),
      bulkhead({ maxConcurrent: 2, clock }),
      timeout({ ms: 1_000, clock }),
    );
    const result = p.execute(async ({ attempt }) => {
      if (attempt < 3) throw new Error('flaky');
      return 42;
    });
    await clock.runAll();
    assert.equal(await result, 42);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a fallback outermost marks the outcome degraded', async () => {
    const p = pipeline(fallback({ value: 'cached' }), retry({ maxAttempts: 1 }));
    const outcome = await p.executeOutcome(() => {
      throw new Error('down');
    });
    assert.deepEqual(outcome, { ok: true, value: 'cached', degraded: true, attempts: 1 });
  });
});
