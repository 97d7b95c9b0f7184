// Run ids: valid UUIDv7 text, carrying their creation time, and in creation order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { newRunId } from '../src/engine/run-id.ts';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The 48-bit millisecond timestamp at the front of a UUIDv7. */
const timeOf = (id: string) => Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

test('a run id is a UUIDv7 whose timestamp is the time it was made at', () => {
  const now = Date.UTC(2026, 10, 23, 6, 0, 0, 123);
  const id = newRunId(now + 10_000_000);
  assert.match(id, V7);
  assert.equal(timeOf(id), now + 10_000_000);
});

test('ids sort in the order they were made, however the clock moves (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1_700_000_000_000, max: 2_000_000_000_000 }),
      // Steps forward, none, and backwards (a clock set back), and runs within one millisecond.
      fc.array(fc.integer({ min: -5_000, max: 5_000 }), { minLength: 1, maxLength: 300 }),
      (start, steps) => {
        // Ids made earlier in this process (other runs, other tests) may be later still: any order holds.
        let now = start;
        let previous = newRunId(now);
        for (const step of steps) {
          now += step;
          const id = newRunId(now);
          assert.match(id, V7);
          assert.ok(id > previous, `${id} sorts after ${previous}`);
          previous = id;
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('more than 4,096 ids in one millisecond stay in order, borrowing the next millisecond', () => {
  const now = 2_500_000_000_000;
  const ids = Array.from({ length: 10_000 }, () => newRunId(now));
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!);
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(timeOf(ids.at(-1)!) > now, 'the counter ran over into later milliseconds');
  assert.ok(timeOf(ids.at(-1)!) <= now + 10);
});
