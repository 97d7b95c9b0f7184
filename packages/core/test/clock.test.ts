// Unit tests of the clocks: the VirtualClock every timing test relies on, sleep with an
// AbortSignal, and the system clock (on node:test's mock timers, never real waits).
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import { flushMicrotasks, systemClock, VirtualClock } from '@bulwark/core';
import { track } from './support.ts';

describe('VirtualClock: time and timers', () => {
  test('starts at the given time (0 by default) and moves only when told', async () => {
    assert.equal(new VirtualClock().now(), 0);
    const clock = new VirtualClock(1_700_000_000_000);
    assert.equal(clock.now(), 1_700_000_000_000);
    await flushMicrotasks();
    assert.equal(clock.now(), 1_700_000_000_000);
    await clock.advance(250);
    assert.equal(clock.now(), 1_700_000_000_250);
  });

  test('advance fires due timers in time order and stops at the target', async () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    await clock.advance(20);
    assert.deepEqual(fired, ['a@10', 'b@20']);
    assert.equal(clock.now(), 20);
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(10);
    assert.deepEqual(fired, ['a@10', 'b@20', 'c@30']);
  });

  test('timers due at the same time fire in the order they were set', async () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    for (const n of [1, 2, 3, 4]) clock.setTimeout(() => fired.push(n), 5);
    clock.setTimeout(() => fired.push(0), 4);
    await clock.advance(5);
    assert.deepEqual(fired, [0, 1, 2, 3, 4]);
  });

  test('a timer set while advancing fires in the same advance when it falls due', async () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 5);
    }, 10);
    await clock.advance(15);
    assert.deepEqual(fired, [10, 15]);
  });

  test('promise continuations run between timers, so awaiting code sees the time it expects', async () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    const run = (async () => {
      await clock.sleep(10);
      seen.push(clock.now());
      await clock.sleep(10);
      seen.push(clock.now());
    })();
    await clock.advance(100);
    await run;
    assert.deepEqual(seen, [10, 20]);
  });

  test('clearTimeout cancels a timer; clearing twice or an unknown handle is harmless', async () => {
    const clock = new VirtualClock();
    let fired = 0;
    const handle = clock.setTimeout(() => fired++, 10);
    assert.equal(clock.pendingTimers, 1);
    clock.clearTimeout(handle);
    clock.clearTimeout(handle);
    clock.clearTimeout({});
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(20);
    assert.equal(fired, 0);
  });

  test('a zero, negative or NaN delay falls due at once, without moving time', async () => {
    const clock = new VirtualClock(100);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 0);
    clock.setTimeout(() => fired.push(clock.now()), -5);
    clock.setTimeout(() => fired.push(clock.now()), Number.NaN);
    await clock.advance(0);
    assert.deepEqual(fired, [100, 100, 100]);
    assert.equal(clock.now(), 100);
  });

  test('an infinite delay never falls due and runAll leaves it pending instead of jumping to Infinity', async () => {
    const clock = new VirtualClock();
    let fired = 0;
    clock.setTimeout(() => fired++, Number.POSITIVE_INFINITY);
    clock.setTimeout(() => fired++, 10);
    await clock.runAll();
    assert.equal(fired, 1);
    assert.equal(clock.now(), 10);
    assert.equal(clock.pendingTimers, 1);
  });

  test('advance refuses to move time backwards or by a non-finite amount', async () => {
    const clock = new VirtualClock(50);
    await assert.rejects(clock.advance(-1), RangeError);
    await assert.rejects(clock.advance(Number.NaN), RangeError);
    await assert.rejects(clock.advance(Number.POSITIVE_INFINITY), RangeError);
    assert.equal(clock.now(), 50);
  });

  test('runAll fires every timer, including ones set by timers, and ends at the last', async () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    let n = 0;
    const again = () => {
      fired.push(clock.now());
      if (++n < 4) clock.setTimeout(again, 100);
    };
    clock.setTimeout(again, 100);
    await clock.runAll();
    assert.deepEqual(fired, [100, 200, 300, 400]);
    assert.equal(clock.now(), 400);
    assert.equal(clock.pendingTimers, 0);
  });

  test('runAll gives up on a policy that reschedules forever', async () => {
    const clock = new VirtualClock();
    const forever = () => {
      clock.setTimeout(forever, 1);
    };
    clock.setTimeout(forever, 1);
    await assert.rejects(clock.runAll(50), /still busy after 50 timers/);
  });
});

describe('VirtualClock: sleep', () => {
  test('sleep resolves exactly after ms', async () => {
    const clock = new VirtualClock();
    const s = track(clock.sleep(100));
    await clock.advance(99);
    assert.equal(s.status, 'pending');
    await clock.advance(1);
    assert.equal(s.status, 'fulfilled');
  });

  test('sleep rejects with the signal reason as soon as it aborts, and clears its timer', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const s = track(clock.sleep(1_000, controller.signal));
    await clock.advance(10);
    controller.abort('stop');
    await flushMicrotasks();
    assert.equal(s.status, 'rejected');
    assert.equal(s.error, 'stop');
    assert.equal(clock.pendingTimers, 0);
    assert.equal(clock.now(), 10);
  });

  test('sleep with an already aborted signal rejects at once and sets no timer', async () => {
    const clock = new VirtualClock();
    await assert.rejects(clock.sleep(100, AbortSignal.abort('early')), (e) => e === 'early');
    assert.equal(clock.pendingTimers, 0);
  });

  test('a completed sleep removes its abort listener', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    for (let i = 0; i < 100; i++) {
      const s = track(clock.sleep(5, controller.signal));
      await clock.advance(5);
      assert.equal(s.status, 'fulfilled');
    }
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });
});

describe('systemClock', () => {
  test('now() is whole epoch milliseconds close to wall time', () => {
    const now = systemClock.now();
    assert.ok(Number.isInteger(now));
    // Read from the monotonic clock, it may differ from Date.now() by the drift since start.
    assert.ok(Math.abs(now - Date.now()) < 1_000);
  });

  test('now() never goes backwards, even when Date.now() does', (t) => {
    const first = systemClock.now();
    t.mock.timers.enable({ apis: ['Date'], now: 0 }); // the wall clock stepped back to 1970
    assert.ok(systemClock.now() >= first);
  });

  test('setTimeout and clearTimeout use the timers of Node', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const fired: string[] = [];
    systemClock.setTimeout(() => fired.push('kept'), 100);
    const cancelled = systemClock.setTimeout(() => fired.push('cancelled'), 100);
    systemClock.clearTimeout(cancelled);
    t.mock.timers.tick(99);
    assert.deepEqual(fired, []);
    t.mock.timers.tick(1);
    assert.deepEqual(fired, ['kept']);
  });

  test('a timer longer than 2^31 - 1 ms fires on time, not after 1 ms as a raw Node timer would', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const thirtyDays = 30 * 24 * 3_600_000;
    let fired = 0;
    systemClock.setTimeout(() => fired++, thirtyDays);
    t.mock.timers.tick(1_000);
    assert.equal(fired, 0);
    t.mock.timers.tick(thirtyDays - 1_000 - 1);
    assert.equal(fired, 0);
    t.mock.timers.tick(1);
    assert.equal(fired, 1);
  });

  test('an infinite delay never fires', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    let fired = 0;
    const handle = systemClock.setTimeout(() => fired++, Number.POSITIVE_INFINITY);
    t.mock.timers.tick(3 * 2 ** 31);
    assert.equal(fired, 0);
    systemClock.clearTimeout(handle);
  });

  test('a long timer can be cleared before and after its first chunk', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const long = 3 * 2 ** 31;
    let fired = 0;
    const early = systemClock.setTimeout(() => fired++, long);
    systemClock.clearTimeout(early);
    const late = systemClock.setTimeout(() => fired++, long);
    t.mock.timers.tick(2 ** 31);
    systemClock.clearTimeout(late);
    t.mock.timers.tick(long);
    assert.equal(fired, 0);
  });

  test('sleep resolves on the system timers and rejects on abort', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const done = track(systemClock.sleep(50));
    t.mock.timers.tick(50);
    await flushMicrotasks();
    assert.equal(done.status, 'fulfilled');
    const controller = new AbortController();
    const aborted = track(systemClock.sleep(50, controller.signal));
    controller.abort('stop');
    await flushMicrotasks();
    assert.equal(aborted.error, 'stop');
  });
});
