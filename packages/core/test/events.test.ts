// Unit tests of EventStream: typed and catch-all listeners, disposers, demand counting,
// forwarding to sinks, and faulty listeners.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BulwarkEvent, EventStream } from '@bulwark/core';
import { withWarnings } from './support.ts';

const used = (operation?: string): BulwarkEvent => ({
  type: 'fallback:used',
  policy: 'fallback',
  operation,
  error: new Error('x'),
});
const fired: BulwarkEvent = { type: 'timeout:fired', policy: 'timeout', operation: undefined, timeoutMs: 10 };

describe('EventStream: listeners', () => {
  test('on() hears only its type; onAny() hears every type, after the typed listeners', () => {
    const s = new EventStream();
    const heard: string[] = [];
    s.onAny((e) => heard.push(`any:${e.type}`));
    s.on('fallback:used', (e) => heard.push(`typed:${e.type}`));
    s.emit(used());
    s.emit(fired);
    assert.deepEqual(heard, ['typed:fallback:used', 'any:fallback:used', 'any:timeout:fired']);
  });

  test('listeners of one type are called in the order they subscribed', () => {
    const s = new EventStream();
    const heard: number[] = [];
    for (const n of [1, 2, 3]) s.on('timeout:fired', () => heard.push(n));
    s.emit(fired);
    assert.deepEqual(heard, [1, 2, 3]);
  });

  test('the listener gets the very event object that was emitted', () => {
    const s = new EventStream();
    let got: unknown;
    s.on('fallback:used', (e) => {
      got = e;
    });
    const event = used('op');
    s.emit(event);
    assert.equal(got, event);
  });

  test('a disposer unsubscribes its listener only; calling it twice does nothing more', () => {
    const s = new EventStream();
    const heard: string[] = [];
    const offA = s.on('timeout:fired', () => heard.push('a'));
    s.on('timeout:fired', () => heard.push('b'));
    offA();
    offA();
    s.emit(fired);
    assert.deepEqual(heard, ['b']);
    assert.equal(s.demand, 1);
  });

  test('the same function subscribed twice is two subscriptions, each with its own disposer', () => {
    const s = new EventStream();
    let calls = 0;
    const listener = () => {
      calls++;
    };
    const off1 = s.on('timeout:fired', listener);
    const off2 = s.on('timeout:fired', listener);
    s.emit(fired);
    assert.equal(calls, 2);
    off1();
    assert.equal(s.demand, 1);
    s.emit(fired);
    assert.equal(calls, 3);
    off2();
    assert.equal(s.demand, 0);
    s.emit(fired);
    assert.equal(calls, 3);
  });

  test('a listener may unsubscribe itself or another during delivery without breaking it', () => {
    const s = new EventStream();
    const heard: string[] = [];
    const offB = s.on('timeout:fired', () => heard.push('b'));
    const offA = s.on('timeout:fired', () => {
      heard.push('a');
      offA();
      offB();
    });
    s.on('timeout:fired', () => heard.push('c'));
    s.emit(fired);
    s.emit(fired);
    assert.deepEqual(heard, ['b', 'a', 'c', 'c']);
  });

  test('a throwing listener does not stop the others and is reported as a process warning', async () => {
    await withWarnings(async (warnings) => {
      const s = new EventStream();
      const heard: string[] = [];
      s.on('timeout:fired', () => {
        throw new Error('listener bug');
      });
      s.on('timeout:fired', () => heard.push('typed'));
      s.onAny(() => heard.push('any'));
      assert.doesNotThrow(() => s.emit(fired));
      assert.deepEqual(heard, ['typed', 'any']);
      await new Promise((resolve) => setImmediate(resolve));
      const warning = warnings.find((w) => w.name === 'BulwarkListenerError');
      assert.ok(warning);
      assert.match(warning.message, /timeout:fired/);
    });
  });
});

describe('EventStream: demand', () => {
  test('demand counts listeners and returns to 0 when they are all disposed', () => {
    const s = new EventStream();
    assert.equal(s.demand, 0);
    const off1 = s.on('timeout:fired', () => {});
    const off2 = s.onAny(() => {});
    assert.equal(s.demand, 2);
    off1();
    off1();
    assert.equal(s.demand, 1);
    off2();
    assert.equal(s.demand, 0);
  });

  test('once the last listener leaves, demand is 0 again and emit reaches nobody', () => {
    const s = new EventStream();
    const sink = new EventStream();
    s.forwardTo(sink);
    let heard = 0;
    const off = sink.onAny(() => heard++);
    s.emit(fired);
    assert.equal(heard, 1);
    off();
    assert.equal(s.demand, 0);
    assert.equal(sink.demand, 0);
    s.emit(fired);
    assert.equal(heard, 1);
  });

  test("a sink's listeners add to the demand of its sources, now and later", () => {
    const source = new EventStream();
    const sink = new EventStream();
    sink.onAny(() => {});
    source.forwardTo(sink);
    assert.equal(source.demand, 1);
    const off = sink.on('timeout:fired', () => {});
    assert.equal(source.demand, 2);
    off();
    assert.equal(source.demand, 1);
    assert.equal(sink.demand, 1);
  });

  test('one source forwarding to two sinks counts the demand of both', () => {
    const source = new EventStream();
    const a = new EventStream();
    const b = new EventStream();
    source.forwardTo(a);
    source.forwardTo(b);
    const offA = a.onAny(() => {});
    const offB = b.onAny(() => {});
    assert.equal(source.demand, 2);
    offA();
    offB();
    assert.equal(source.demand, 0);
  });

  test('forwarding to the same sink twice is ignored', () => {
    const source = new EventStream();
    const sink = new EventStream();
    source.forwardTo(sink);
    source.forwardTo(sink);
    let heard = 0;
    sink.onAny(() => heard++);
    assert.equal(source.demand, 1);
    source.emit(fired);
    assert.equal(heard, 1);
  });
});

describe('EventStream: forwarding', () => {
  test('an event emitted on a source reaches its own listeners and every sink with listeners', () => {
    const source = new EventStream();
    const a = new EventStream();
    const b = new EventStream();
    const idle = new EventStream();
    source.forwardTo(a);
    source.forwardTo(b);
    source.forwardTo(idle);
    const heard: string[] = [];
    source.onAny(() => heard.push('source'));
    a.onAny(() => heard.push('a'));
    b.on('timeout:fired', () => heard.push('b'));
    source.emit(fired);
    assert.deepEqual(heard, ['source', 'a', 'b']);
  });

  test('a sink with no own listener still passes events on to its own sinks', () => {
    const source = new EventStream();
    const middle = new EventStream();
    const top = new EventStream();
    middle.forwardTo(top);
    source.forwardTo(middle);
    const heard: string[] = [];
    top.onAny((e) => heard.push(e.type));
    assert.equal(source.demand, 1);
    source.emit(fired);
    assert.deepEqual(heard, ['timeout:fired']);
  });

  test('events emitted on a sink do not flow back to its sources', () => {
    const source = new EventStream();
    const sink = new EventStream();
    source.forwardTo(sink);
    let heardAtSource = 0;
    source.onAny(() => heardAtSource++);
    sink.onAny(() => {});
    sink.emit(fired);
    assert.equal(heardAtSource, 0);
  });
});
