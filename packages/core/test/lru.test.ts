// Unit tests of the internal LRU behind MemoryCacheStore and the rate limiter's keyed limits,
// and a property test holding it against an array kept in recency order.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Lru } from '../src/internal/lru.ts';

const keysOf = <K, V>(lru: Lru<K, V>) => [...lru.keys()];

describe('Lru', () => {
  test('keys run from the least to the most recently used, and a hit moves its key last', () => {
    const lru = new Lru<string, number>(10);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    assert.deepEqual(keysOf(lru), ['a', 'b', 'c']);
    assert.equal(lru.get('a'), 1);
    assert.deepEqual(keysOf(lru), ['b', 'c', 'a']);
    assert.equal(lru.get('a'), 1); // already the most recent: order unchanged
    assert.deepEqual(keysOf(lru), ['b', 'c', 'a']);
    assert.equal(lru.get('missing'), undefined);
    assert.deepEqual(keysOf(lru), ['b', 'c', 'a']);
  });

  test('a new key past max evicts the least recently used one', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('a');
    lru.set('c', 3);
    assert.equal(lru.size, 2);
    assert.equal(lru.get('b'), undefined);
    assert.deepEqual(keysOf(lru), ['a', 'c']);
  });

  test('setting a held key updates its value and makes it the most recent without evicting', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('a', 10);
    assert.equal(lru.size, 2);
    assert.deepEqual(keysOf(lru), ['b', 'a']);
    assert.equal(lru.get('a'), 10);
    lru.set('c', 3); // b is now the least recent
    assert.deepEqual(keysOf(lru), ['a', 'c']);
  });

  test('delete removes a key from anywhere in the order, and reports whether it was there', () => {
    const lru = new Lru<string, number>(10);
    for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) lru.set(k, i);
    assert.equal(lru.delete('b'), true);
    assert.equal(lru.delete('a'), true);
    assert.equal(lru.delete('d'), true);
    assert.equal(lru.delete('d'), false);
    assert.deepEqual(keysOf(lru), ['c']);
    assert.equal(lru.size, 1);
    assert.equal(lru.delete('c'), true);
    assert.deepEqual(keysOf(lru), []);
    lru.set('e', 5); // the list is usable again once emptied
    assert.deepEqual(keysOf(lru), ['e']);
  });

  test('clear drops every entry', () => {
    const lru = new Lru<string, number>(10);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.clear();
    assert.equal(lru.size, 0);
    assert.equal(lru.get('a'), undefined);
    assert.deepEqual(keysOf(lru), []);
  });

  test('eviction skips entries canEvict refuses and takes the next least recent one', () => {
    const busy = new Set(['a']);
    const lru = new Lru<string, string>(2, (v) => !busy.has(v));
    lru.set('a', 'a');
    lru.set('b', 'b');
    lru.set('c', 'c');
    assert.deepEqual(keysOf(lru), ['a', 'c']);
  });

  test('with nothing evictable the size exceeds max, and comes back down once entries can go', () => {
    const busy = new Set(['a', 'b']);
    const lru = new Lru<string, string>(1, (v) => !busy.has(v));
    lru.set('a', 'a');
    lru.set('b', 'b'); // a is busy; b, the newest, is never evicted
    assert.equal(lru.size, 2);
    lru.set('c', 'c'); // a and b busy
    assert.deepEqual(keysOf(lru), ['a', 'b', 'c']);
    busy.clear();
    assert.equal(lru.size, 3); // nothing is evicted until the next new key
    lru.set('d', 'd');
    assert.deepEqual(keysOf(lru), ['d']);
  });

  test('the entry just added is never evicted, even when it alone could go', () => {
    const lru = new Lru<string, number>(1, (v) => v !== 1);
    lru.set('a', 1);
    lru.set('b', 2);
    assert.deepEqual(keysOf(lru), ['a', 'b']);
  });
});

type Op =
  | { readonly kind: 'get'; readonly key: string }
  | { readonly kind: 'set'; readonly key: string; readonly value: number }
  | { readonly kind: 'delete'; readonly key: string };

const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('get' as const), key: keyArb }),
  fc.record({ kind: fc.constant('set' as const), key: keyArb, value: fc.integer({ min: 0, max: 9 }) }),
  fc.record({ kind: fc.constant('delete' as const), key: keyArb }),
);

test('Lru matches an array in recency order over random get, set and delete', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.boolean(),
      fc.array(opArb, { maxLength: 60 }),
      (max, pinning, ops) => {
        // Values divisible by 3 stand for a limiter's keys with waiters: never evicted.
        const canEvict = pinning ? (v: number) => v % 3 !== 0 : undefined;
        const lru = new Lru<string, number>(max, canEvict);
        let model: { key: string; value: number }[] = [];
        for (const op of ops) {
          const at = model.findIndex((e) => e.key === op.key);
          if (op.kind === 'get') {
            const expected = at === -1 ? undefined : model[at]!.value;
            if (at !== -1) model.push(...model.splice(at, 1));
            assert.equal(lru.get(op.key), expected);
          } else if (op.kind === 'set') {
            lru.set(op.key, op.value);
            if (at !== -1) {
              model.splice(at, 1);
              model.push({ key: op.key, value: op.value });
            } else {
              model.push({ key: op.key, value: op.value });
              // From the least recent, never the newest, until back at max or out of candidates.
              let size = model.length;
              model = model.filter((e, i) => {
                if (size <= max || i === model.length - 1 || (canEvict !== undefined && !canEvict(e.value))) {
                  return true;
                }
                size--;
                return false;
              });
            }
          } else {
            assert.equal(lru.delete(op.key), at !== -1);
            if (at !== -1) model.splice(at, 1);
          }
          assert.deepEqual(
            keysOf(lru),
            model.map((e) => e.key),
          );
          assert.equal(lru.size, model.length);
        }
      },
    ),
    { numRuns: 1_000 },
  );
});
