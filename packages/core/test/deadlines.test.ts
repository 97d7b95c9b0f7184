// Unit tests of the deadline queue shared by the timeout and the hedge: one clock timer for
// many deadlines, fired in due order even when a shorter delay is added after a longer one.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VirtualClock } from '@bulwark/core';
import { type Deadline, DeadlineQueue } from '../src/internal/deadlines.ts';

function entry(name: string, fired: [string, number][], clock: VirtualClock): Deadline {
  return {
    due: 0,
    prev: undefined,
    next: undefined,
    queued: false,
    onDeadline: () => fired.push([name, clock.now()]),
  };
}

describe('deadline queue', () => {
  test('deadlines fire at their own time, in due order, whatever order they were added in', async () => {
    const clock = new VirtualClock();
    const queue = new DeadlineQueue(clock);
    const fired: [string, number][] = [];
    queue.add(entry('long', fired, clock), 300);
    queue.add(entry('short', fired, clock), 100);
    queue.add(entry('middle', fired, clock), 200);
    queue.add(entry('also-short', fired, clock), 100);
    assert.equal(clock.pendingTimers, 1, 'one timer for all of them');
    await clock.runAll();
    assert.deepEqual(fired, [
      ['short', 100],
      ['also-short', 100],
      ['middle', 200],
      ['long', 300],
    ]);
    assert.equal(clock.pendingTimers, 0);
  });

  test('a removed deadline never fires, and the last removal leaves no timer', async () => {
    const clock = new VirtualClock();
    const queue = new DeadlineQueue(clock);
    const fired: [string, number][] = [];
    const a = entry('a', fired, clock);
    const b = entry('b', fired, clock);
    queue.add(a, 100);
    queue.add(b, 50);
    queue.remove(b);
    queue.remove(b); // twice is harmless
    await clock.advance(60);
    assert.deepEqual(fired, []);
    queue.remove(a);
    assert.equal(clock.pendingTimers, 0);
    await clock.runAll();
    assert.deepEqual(fired, []);
  });
});
