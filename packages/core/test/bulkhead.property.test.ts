// The bulkhead held against a reference model under random interleavings of arrivals,
// completions, failures, clock advances (queue timeouts, inner timeouts) and caller aborts.
// At every step: active ≤ maxConcurrent, queued ≤ maxQueue, admission strictly FIFO among the
// callers still waiting, never an idle slot while someone waits, and every caller settles once,
// with the outcome the model predicts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BulkheadRejectedError,
  bulkhead,
  flushMicrotasks,
  type Policy,
  pipeline,
  TimeoutError,
  timeout,
  VirtualClock,
} from '@bulwark/core';
import fc from 'fast-check';

interface Config {
  maxConcurrent: number;
  maxQueue: number;
  queueTimeoutMs: number;
  /** A timeout inside the bulkhead: the caller gives up at it, the slot is held until the work settles. */
  innerTimeoutMs: number | undefined;
}

type Action =
  | { kind: 'arrive'; abortable: boolean }
  | { kind: 'complete'; pick: number; ok: boolean }
  | { kind: 'abort'; pick: number }
  | { kind: 'advance'; ms: number };

type Expected =
  | { kind: 'value'; value: string }
  | { kind: 'error'; error: unknown }
  | { kind: 'rejected'; reason: 'queue-full' | 'queue-timeout' }
  | { kind: 'timeout' };

interface Running {
  id: number;
  deadline: number; // inner timeout; Infinity without one
  callerSettled: boolean;
}

/** What the bulkhead should do. */
class Model {
  now = 0;
  running: Running[] = [];
  queue: { id: number; deadline: number }[] = [];
  admitted: number[] = [];
  outcomes = new Map<number, Expected>();

  constructor(readonly c: Config) {}

  #admit(id: number): void {
    this.admitted.push(id);
    const t = this.c.innerTimeoutMs;
    this.running.push({ id, deadline: t === undefined ? Infinity : this.now + t, callerSettled: false });
  }

  arrive(id: number): void {
    if (this.running.length < this.c.maxConcurrent) this.#admit(id);
    else if (this.queue.length >= this.c.maxQueue)
      this.outcomes.set(id, { kind: 'rejected', reason: 'queue-full' });
    else this.queue.push({ id, deadline: this.now + this.c.queueTimeoutMs });
  }

  /** The work of a running caller settles: its slot goes to the head of the queue. */
  finish(index: number, outcome: Expected): void {
    const [r] = this.running.splice(index, 1);
    if (!r!.callerSettled) this.outcomes.set(r!.id, outcome);
    const next = this.queue.shift();
    if (next !== undefined) this.#admit(next.id);
  }

  abort(id: number, reason: unknown): void {
    const q = this.queue.findIndex((w) => w.id === id);
    if (q >= 0) {
      this.queue.splice(q, 1);
      this.outcomes.set(id, { kind: 'error', error: reason });
      return;
    }
    const r = this.running.find((x) => x.id === id);
    if (r !== undefined && !r.callerSettled && this.c.innerTimeoutMs !== undefined) {
      // The timeout inside gives up on the caller's abort; the work (and the slot) go on.
      r.callerSettled = true;
      this.outcomes.set(id, { kind: 'error', error: reason });
    }
  }

  advance(ms: number): void {
    this.now += ms;
    for (const w of this.queue.filter((x) => x.deadline <= this.now)) {
      this.outcomes.set(w.id, { kind: 'rejected', reason: 'queue-timeout' });
    }
    this.queue = this.queue.filter((x) => x.deadline > this.now);
    for (const r of this.running) {
      if (!r.callerSettled && r.deadline <= this.now) {
        r.callerSettled = true;
        this.outcomes.set(r.id, { kind: 'timeout' });
      }
    }
  }
}

const configArb: fc.Arbitrary<Config> = fc.record({
  maxConcurrent: fc.integer({ min: 1, max: 4 }),
  maxQueue: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(Infinity)),
  queueTimeoutMs: fc.oneof(fc.integer({ min: 0, max: 500 }), fc.constant(Infinity)),
  innerTimeoutMs: fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
});

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('arrive' as const), abortable: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('complete' as const), pick: fc.nat(), ok: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 600 })),
    }),
  },
);

interface Caller {
  id: number;
  controller: AbortController | undefined;
  work: { resolve: (v: string) => void; reject: (e: unknown) => void } | undefined;
  settlements: ({ ok: true; value: unknown } | { ok: false; error: unknown })[];
}

async function check(config: Config, actions: Action[]): Promise<void> {
  const clock = new VirtualClock();
  const b = bulkhead({
    maxConcurrent: config.maxConcurrent,
    maxQueue: config.maxQueue,
    queueTimeoutMs: config.queueTimeoutMs,
    clock,
  });
  const policy: Policy =
    config.innerTimeoutMs === undefined ? b : pipeline(b, timeout({ ms: config.innerTimeoutMs, clock }));
  const model = new Model(config);
  const callers: Caller[] = [];
  const started: number[] = [];

  const verify = (at: string) => {
    const s = b.stats();
    assert.ok(s.active <= config.maxConcurrent, `${at}: active ${s.active} > maxConcurrent`);
    assert.ok(s.queued <= config.maxQueue, `${at}: queued ${s.queued} > maxQueue`);
    assert.ok(s.queued === 0 || s.active === config.maxConcurrent, `${at}: an idle slot while callers wait`);
    assert.deepEqual(
      [s.active, s.queued],
      [model.running.length, model.queue.length],
      `${at}: active and queued`,
    );
    assert.deepEqual(started, model.admitted, `${at}: admission order`);
    assert.equal(s.lingering, model.running.filter((r) => r.callerSettled).length, `${at}: lingering`);
    for (const caller of callers) {
      assert.ok(caller.settlements.length <= 1, `${at}: caller ${caller.id} settled twice`);
      const expected = model.outcomes.get(caller.id);
      const actual = caller.settlements[0];
      if (expected === undefined) {
        assert.equal(actual, undefined, `${at}: caller ${caller.id} settled early`);
        continue;
      }
      assert.ok(actual !== undefined, `${at}: caller ${caller.id} should have settled (${expected.kind})`);
      if (expected.kind === 'value') assert.deepEqual(actual, { ok: true, value: expected.value });
      else if (expected.kind === 'error') {
        assert.ok(!actual.ok && actual.error === expected.error, `${at}: caller ${caller.id} error`);
      } else if (expected.kind === 'timeout') {
        assert.ok(!actual.ok && actual.error instanceof TimeoutError, `${at}: caller ${caller.id} timeout`);
      } else {
        assert.ok(!actual.ok && actual.error instanceof BulkheadRejectedError, `${at}: caller ${caller.id}`);
        assert.equal(actual.error.reason, expected.reason, `${at}: caller ${caller.id} rejection reason`);
      }
    }
  };

  const settleWork = async (index: number, ok: boolean) => {
    const r = model.running[index]!;
    const caller = callers[r.id]!;
    const outcome: Expected = ok
      ? { kind: 'value', value: `v${r.id}` }
      : { kind: 'error', error: new Error(`e${r.id}`) };
    if (outcome.kind === 'value') caller.work!.resolve(outcome.value);
    else if (outcome.kind === 'error') caller.work!.reject(outcome.error);
    model.finish(index, outcome);
    await flushMicrotasks();
  };

  for (const [step, action] of actions.entries()) {
    const at = `step ${step} (${JSON.stringify(action)})`;
    switch (action.kind) {
      case 'arrive': {
        const id = callers.length;
        const caller: Caller = {
          id,
          controller: action.abortable ? new AbortController() : undefined,
          work: undefined,
          settlements: [],
        };
        callers.push(caller);
        policy
          .execute(
            () => {
              started.push(id);
              return new Promise<string>((resolve, reject) => {
                caller.work = { resolve, reject };
              });
            },
            caller.controller === undefined ? undefined : { signal: caller.controller.signal },
          )
          .then(
            (value) => caller.settlements.push({ ok: true, value }),
            (error: unknown) => caller.settlements.push({ ok: false, error }),
          );
        model.arrive(id);
        await flushMicrotasks();
        break;
      }
      case 'complete': {
        if (model.running.length === 0) continue;
        await settleWork(action.pick % model.running.length, action.ok);
        break;
      }
      case 'abort': {
        const abortable = callers.filter((c) => c.controller !== undefined && !c.controller.signal.aborted);
        if (abortable.length === 0) continue;
        const caller = abortable[action.pick % abortable.length]!;
        const reason = new Error(`abort ${caller.id}`);
        caller.controller!.abort(reason);
        model.abort(caller.id, reason);
        await flushMicrotasks();
        break;
      }
      case 'advance': {
        await clock.advance(action.ms);
        model.advance(action.ms);
        break;
      }
    }
    verify(at);
  }

  // Drain: finish the work in the order it started until nothing runs or waits.
  while (model.running.length > 0) {
    await settleWork(0, true);
    verify('drain');
  }
  assert.equal(model.queue.length, 0);
  for (const caller of callers)
    assert.equal(caller.settlements.length, 1, `caller ${caller.id} settles once`);
  assert.deepEqual(b.stats(), {
    maxConcurrent: config.maxConcurrent,
    active: 0,
    available: config.maxConcurrent,
    queued: 0,
    lingering: 0,
    rejected: [...model.outcomes.values()].filter((o) => o.kind === 'rejected').length,
  });
  assert.equal(clock.pendingTimers, 0, 'no timer left behind');
}

test('the bulkhead matches the reference model under random interleavings', async () => {
  await fc.assert(fc.asyncProperty(configArb, fc.array(actionArb, { minLength: 1, maxLength: 50 }), check), {
    numRuns: 1_000,
  });
});
