// The one suite every WorkflowStore must pass (SQLite, PostgreSQL): each rule of store/types.ts
// as a test, each test on a fresh database (a new file, a new schema). Not a test file itself.
//
// Conventions the suite pins where types.ts leaves a detail open (every store follows them):
// - `open()` gives a store on an empty database; the suite calls `migrate()` itself (twice in one
//   test, which must be harmless). `close()` closes the store and drops the file or schema.
// - A run is "leased" while `leaseOwner` is set and `leaseExpiresAt > now`. A worker "holds" a run
//   while it is `leaseOwner` and the run is not final (an expired lease nobody took over is still
//   held: nobody else can have written).
// - `claim` turns `queued` and `waiting` runs into `running`; other statuses are kept.
// - The events a store writes itself have one shape (store/events.ts), with the run's own
//   `correlationId` and `traceparent` when it has them: `run:queued` {workflow, version,
//   priority}; a run cancelled because of a parent gets `run:cancelled` {reason, parent (the
//   direct parent's id), parentStatus}; `requestCancel` on an unleased run appends `run:cancelled`
//   {reason}; `retryRun` appends `run:retried` {reason}. A run made final gets `finishedAt = now`
//   and loses its lease.
// - A run update that gives back the lease of a run with a cancel requested leaves it due at
//   `now`, whatever `availableAt` it asked for: the next claim is where the request is acted on.
// - `dependsOn` may name a run created earlier in the same `enqueue` call.
// - For a run whose lease is lost, every change of that run in the commit is dropped: steps, run
//   updates, events and consumed signals.
// - Wake-ups from the store's own process arrive soon after the call resolves (SQLite: before).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { WorkflowErrorCodes } from '../src/errors.ts';
import type {
  Change,
  ClaimRequest,
  Json,
  NewAuditEntry,
  NewRun,
  NewStep,
  RunRecord,
  RunUpdate,
  StoredError,
  WakeTopic,
  WorkflowStore,
} from '../src/store/types.ts';
import { MAX_RUN_OFFSET } from '../src/store/types.ts';

export interface OpenedStore {
  store: WorkflowStore;
  close(): Promise<void>;
}

/** A fixed start time: stores never read the clock, so every test passes its own `now`. */
const T0 = 1_700_000_000_000;
const WF = 'orders';

/** A UUID whose order among others is `n`'s: for tie-breaks on id. */
function orderedId(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

function newRun(overrides: Partial<NewRun> = {}): NewRun {
  return { id: randomUUID(), workflow: WF, version: '1', input: null, priority: 1, ...overrides };
}

function claimRequest(overrides: Partial<ClaimRequest> = {}): ClaimRequest {
  return { workerId: 'w1', limit: 10, leaseMs: 1_000, now: T0, workflows: [WF], ...overrides };
}

function stepOf(name: string, overrides: Partial<NewStep> = {}): NewStep {
  return {
    name,
    status: 'completed',
    output: null,
    error: undefined,
    attempts: 1,
    startedAt: T0,
    finishedAt: T0,
    ...overrides,
  };
}

function update(runId: string, workerId: string, change: RunUpdate): Change {
  return { kind: 'run', runId, workerId, update: change };
}

function event(runId: string, type: string, at = T0, data?: Json): Change {
  return { kind: 'event', runId, event: { type, step: undefined, data, progress: 0, at } };
}

async function mustGet(store: WorkflowStore, id: string): Promise<RunRecord> {
  const run = await store.getRun(id);
  assert.ok(run, `run ${id} exists`);
  return run;
}

/** Records wake-ups; `until` waits (bounded) for one, as PostgreSQL's may come a moment later. */
function recordTopics(store: WorkflowStore): {
  topics: WakeTopic[];
  until(topic: WakeTopic): Promise<void>;
  stop(): void;
} {
  const topics: WakeTopic[] = [];
  const stop = store.subscribe((topic) => topics.push(topic));
  return {
    topics,
    stop,
    async until(topic) {
      const deadline = performance.now() + 2_000;
      while (!topics.includes(topic)) {
        if (performance.now() > deadline) assert.fail(`no '${topic}' wake-up; got ${JSON.stringify(topics)}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
  };
}

/** The ids of runs enqueued at `createdAt`, in claim order: priority (highest first), age, id. */
function inClaimOrder(runs: readonly { run: NewRun; createdAt: number }[]): string[] {
  return [...runs]
    .sort(
      (x, y) =>
        y.run.priority - x.run.priority || x.createdAt - y.createdAt || (x.run.id < y.run.id ? -1 : 1),
    )
    .map((x) => x.run.id);
}

/** Enqueues one run and claims it for `workerId` (lease 1 s from `now`). */
async function startOne(
  store: WorkflowStore,
  run: Partial<NewRun> = {},
  workerId = 'w1',
  now = T0,
): Promise<string> {
  const [result] = await store.enqueue([newRun(run)], now);
  assert.ok(result);
  const claimed = await store.claim(claimRequest({ workerId, now, workflows: [run.workflow ?? WF] }));
  assert.deepEqual(
    claimed.map((c) => c.id),
    [result.id],
  );
  return result.id;
}

/** The worker parks the run until an `approved` signal, or a minute after T0 at the latest. */
async function waitForApproval(store: WorkflowStore, id: string, now: number): Promise<void> {
  await store.commit(
    [
      update(id, 'w1', {
        status: 'waiting',
        waitingFor: 'approved',
        availableAt: T0 + 60_000,
        releaseLease: true,
      }),
    ],
    now,
  );
}

async function finish(store: WorkflowStore, id: string, status: RunRecord['status'], now = T0) {
  const run = await mustGet(store, id);
  const result = await store.commit(
    [update(id, run.leaseOwner ?? 'w1', { status, releaseLease: true }), event(id, `run:${status}`, now)],
    now,
  );
  assert.deepEqual(result, { lostLease: [], duplicateSteps: [] });
}

export function storeConformance(name: string, open: () => Promise<OpenedStore>): void {
  /** Runs a test on a fresh, migrated store and always closes it. */
  function it(title: string, body: (store: WorkflowStore) => Promise<void>): void {
    test(title, async () => {
      const opened = await open();
      try {
        await opened.store.migrate();
        await body(opened.store);
      } finally {
        await opened.close();
      }
    });
  }

  describe(`workflow store conformance: ${name}`, () => {
    // -----------------------------------------------------------------------------------------
    describe('enqueue', () => {
      it('creates a queued run with every field recorded and a run:queued event', async (store) => {
        const id = randomUUID();
        const parent = randomUUID();
        await store.enqueue([newRun({ id: parent })], T0 - 10);
        const results = await store.enqueue(
          [
            newRun({
              id,
              version: '7',
              input: { order: 42 },
              priority: 3,
              idempotencyKey: 'k-1',
              parentRunId: parent,
              concurrencyKey: 'tenant-a',
              deadlineAt: T0 + 60_000,
              correlationId: 'corr-1',
              traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
            }),
          ],
          T0,
        );
        const [{ run: created, ...result } = { id: '', created: false, status: 'queued' }] = results;
        assert.deepEqual([result], [{ id, created: true, status: 'queued' }]);
        const run = await mustGet(store, id);
        // A store that gives the run back gives it as stored.
        if (created !== undefined) assert.deepEqual(created, run);
        assert.deepEqual(run, {
          id,
          workflow: WF,
          version: '7',
          status: 'queued',
          priority: 3,
          input: { order: 42 },
          output: undefined,
          error: undefined,
          degraded: false,
          progress: 0,
          idempotencyKey: 'k-1',
          parentRunId: parent,
          concurrencyKey: 'tenant-a',
          pendingParents: 0,
          availableAt: T0,
          waitingFor: undefined,
          leaseOwner: undefined,
          leaseExpiresAt: undefined,
          cancelRequested: undefined,
          deadlineAt: T0 + 60_000,
          correlationId: 'corr-1',
          traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
          createdAt: T0,
          updatedAt: T0,
          finishedAt: undefined,
        });
        const events = await store.events(id);
        assert.equal(events.length, 1);
        assert.equal(events[0]?.type, 'run:queued');
        assert.equal(events[0]?.runId, id);
        assert.equal(events[0]?.at, T0);
        assert.equal(events[0]?.step, undefined);
      });

      it('returns results in the order of the runs given', async (store) => {
        const runs = [newRun(), newRun(), newRun()];
        const results = await store.enqueue(runs, T0);
        assert.deepEqual(
          results.map((r) => r.id),
          runs.map((r) => r.id),
        );
        assert.ok(results.every((r) => r.created && r.status === 'queued'));
      });

      it('an unknown id returns undefined', async (store) => {
        assert.equal(await store.getRun(randomUUID()), undefined);
      });

      it('a second enqueue with the same idempotency key returns the first run, created: false', async (store) => {
        const first = await store.enqueue([newRun({ idempotencyKey: 'once' })], T0);
        const second = await store.enqueue([newRun({ idempotencyKey: 'once' })], T0 + 1);
        assert.equal(first[0]?.created, true);
        assert.deepEqual(second, [{ id: first[0]?.id, created: false, status: 'queued' }]);
        assert.equal((await store.listRuns()).length, 1);
        assert.equal((await store.events(first[0]?.id ?? '')).length, 1, 'no second run:queued');
      });

      it('an idempotency key reports the existing run with its current status', async (store) => {
        const id = await startOne(store, { idempotencyKey: 'k' });
        const [again] = await store.enqueue([newRun({ idempotencyKey: 'k' })], T0 + 5);
        assert.deepEqual(again, { id, created: false, status: 'running' });
      });

      it('the same idempotency key twice in one call creates one run', async (store) => {
        const results = await store.enqueue(
          [newRun({ idempotencyKey: 'x' }), newRun({ idempotencyKey: 'x' })],
          T0,
        );
        assert.equal(results[0]?.created, true);
        assert.equal(results[1]?.created, false);
        assert.equal(results[1]?.id, results[0]?.id);
      });

      it('dependsOn an unknown run rejects with BULWARK_WORKFLOW_UNKNOWN_RUN and creates nothing', async (store) => {
        const ok = newRun();
        const bad = newRun({ dependsOn: [randomUUID()] });
        await assert.rejects(store.enqueue([ok, bad], T0), (e: { code?: string }) => {
          assert.equal(e.code, WorkflowErrorCodes.UNKNOWN_RUN);
          return true;
        });
        assert.equal(await store.getRun(ok.id), undefined, 'the batch is one transaction');
        assert.equal(await store.getRun(bad.id), undefined);
      });

      it('counts parents not yet completed in pendingParents', async (store) => {
        const done = await startOne(store);
        await finish(store, done, 'completed');
        const [pending] = await store.enqueue([newRun()], T0);
        const child = newRun({ dependsOn: [done, pending?.id ?? ''] });
        await store.enqueue([child], T0 + 1);
        assert.equal((await mustGet(store, child.id)).pendingParents, 1);
      });

      it('dependsOn may name a run created earlier in the same call', async (store) => {
        const parent = newRun();
        const child = newRun({ dependsOn: [parent.id] });
        const results = await store.enqueue([parent, child], T0);
        assert.ok(results.every((r) => r.created));
        assert.equal((await mustGet(store, child.id)).pendingParents, 1);
      });

      for (const status of ['failed', 'cancelled', 'compensated'] as const) {
        it(`a parent already ${status} creates the child cancelled, with a run:cancelled event naming it`, async (store) => {
          const parent = await startOne(store);
          await finish(store, parent, status);
          const child = newRun({ dependsOn: [parent] });
          const [result] = await store.enqueue([child], T0 + 10);
          const { run: _, ...outcome } = result ?? { created: false };
          assert.deepEqual(outcome, { id: child.id, created: true, status: 'cancelled' });
          const run = await mustGet(store, child.id);
          assert.equal(run.status, 'cancelled');
          assert.equal(run.finishedAt, T0 + 10);
          const events = await store.events(child.id);
          const cancelled = events.find((e) => e.type === 'run:cancelled');
          assert.ok(cancelled, 'run:cancelled event');
          assert.equal((cancelled.data as { parent?: string }).parent, parent);
          assert.equal(events.at(-1)?.type, 'run:cancelled');
          assert.deepEqual(await store.claim(claimRequest({ now: T0 + 20 })), []);
        });
      }

      it('wakes subscribers with runs', async (store) => {
        const rec = recordTopics(store);
        await store.enqueue([newRun()], T0);
        await rec.until('runs');
        rec.stop();
      });

      it('creates a run leased at its start running, leased as a claim leaves it, and wakes no worker', async (store) => {
        const rec = recordTopics(store);
        const run = newRun({ input: { n: 1 }, leasedTo: { workerId: 'w1', until: T0 + 1_000 } });
        const [result] = await store.enqueue([run], T0);
        assert.equal(result?.created, true);
        assert.equal(result?.status, 'running');
        await rec.until(`run:${run.id}`);
        rec.stop();
        // One NOTIFY carries a commit's topics: had there been a `runs`, it came with the run's.
        assert.ok(!rec.topics.includes('runs'), `no runs wake-up; got ${JSON.stringify(rec.topics)}`);
        const stored = await mustGet(store, run.id);
        assert.equal(stored.status, 'running');
        assert.equal(stored.leaseOwner, 'w1');
        assert.equal(stored.leaseExpiresAt, T0 + 1_000);
        assert.deepEqual(stored.input, { n: 1 });
        // Given back, as the engine executes it: as stored, so that its first execution sees the
        // input as every later one will (PostgreSQL's jsonb orders an object's keys).
        assert.deepEqual(result?.run, stored);
        assert.deepEqual(
          (await store.events(run.id)).map((e) => e.type),
          ['run:queued'],
        );
        // Its worker writes; no other worker claims it until the lease runs out, then it is taken over.
        assert.deepEqual(await store.commit([update(run.id, 'w1', { progress: 10 })], T0 + 1), {
          lostLease: [],
          duplicateSteps: [],
        });
        assert.deepEqual(await store.claim(claimRequest({ workerId: 'w2', now: T0 + 999 })), []);
        const [taken] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 1_000 }));
        assert.equal(taken?.id, run.id);
        assert.equal(taken?.takenOver, true);
        assert.equal(taken?.progress, 10);
      });

      it('gives a leased run back with its input as a read gives it, keys in the stored order', async (store) => {
        // U+0000, which PostgreSQL's jsonb cannot hold, comes back as given too.
        const alone = newRun({
          input: { zz: 1, a: { y: 2, b: 'nul \u0000 here' } },
          leasedTo: { workerId: 'w1', until: T0 + 1_000 },
        });
        const keyed = newRun({
          input: { zz: 1, a: '\u0000' },
          idempotencyKey: 'k-order',
          leasedTo: alone.leasedTo!,
        });
        // Two callers at once: the second has a key, so the group goes the long way on PostgreSQL.
        const results = await Promise.all([store.enqueue([alone], T0), store.enqueue([keyed], T0)]);
        for (const [[result], run] of results.map((r, i) => [r, [alone, keyed][i]!] as const)) {
          assert.ok(result?.run, 'the run is given back');
          assert.equal(
            JSON.stringify(result.run.input),
            JSON.stringify((await mustGet(store, run.id)).input),
          );
          assert.deepEqual(result.run.input, run.input);
        }
      });

      it('leases only the runs that ask, among several callers’ at once', async (store) => {
        const leased = newRun({ leasedTo: { workerId: 'w1', until: T0 + 60_000 } });
        const queued = [newRun(), newRun()];
        const results = await Promise.all([
          store.enqueue([queued[0]!], T0),
          store.enqueue([leased], T0),
          store.enqueue([queued[1]!], T0),
        ]);
        assert.deepEqual(
          results.map(([r]) => r?.status),
          ['queued', 'running', 'queued'],
        );
        const claimed = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 1 }));
        assert.deepEqual(claimed.map((r) => r.id).sort(), queued.map((r) => r.id).sort());
      });

      it('refuses a lease on a run that cannot start now, writing nothing', async (store) => {
        const parent = newRun();
        await store.enqueue([parent], T0);
        const lease = { workerId: 'w1', until: T0 + 1_000 };
        const waiting = newRun({ dependsOn: [parent.id], leasedTo: lease });
        await assert.rejects(store.enqueue([waiting], T0), /dependsOn cannot be leased/);
        const later = newRun({ availableAt: T0 + 5, leasedTo: lease });
        await assert.rejects(store.enqueue([later], T0), /available later cannot be leased/);
        assert.equal(await store.getRun(waiting.id), undefined);
        assert.equal(await store.getRun(later.id), undefined);
      });

      it('a leased enqueue whose idempotency key is taken returns the first run, unleased', async (store) => {
        const first = newRun({ idempotencyKey: 'k-lease' });
        await store.enqueue([first], T0);
        const [again] = await store.enqueue(
          [newRun({ idempotencyKey: 'k-lease', leasedTo: { workerId: 'w1', until: T0 + 1_000 } })],
          T0 + 1,
        );
        assert.deepEqual(
          { id: again?.id, created: again?.created, status: again?.status },
          {
            id: first.id,
            created: false,
            status: 'queued',
          },
        );
        assert.equal((await mustGet(store, first.id)).leaseOwner, undefined);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('claim', () => {
      it('claims by priority (highest first), then creation time, then id', async (store) => {
        const a = orderedId(1);
        const b = orderedId(2);
        const c = orderedId(3);
        const d = orderedId(4);
        const e = orderedId(5);
        await store.enqueue([newRun({ id: e, priority: 1 })], T0);
        await store.enqueue([newRun({ id: d, priority: 1 }), newRun({ id: b, priority: 1 })], T0 + 1);
        await store.enqueue([newRun({ id: c, priority: 0 })], T0 - 5);
        await store.enqueue([newRun({ id: a, priority: 4 })], T0 + 2);
        const claimed = await store.claim(claimRequest({ limit: 10, now: T0 + 10 }));
        assert.deepEqual(
          claimed.map((r) => r.id),
          [a, e, b, d, c],
        );
      });

      it('claims at most limit runs, in order, leaving the rest', async (store) => {
        const runs = [0, 1, 2, 3].map((p) => newRun({ priority: p }));
        await store.enqueue(runs, T0);
        const first = await store.claim(claimRequest({ limit: 2 }));
        assert.deepEqual(
          first.map((r) => r.priority),
          [3, 2],
        );
        const second = await store.claim(claimRequest({ workerId: 'w2', limit: 5 }));
        assert.deepEqual(
          second.map((r) => r.priority),
          [1, 0],
        );
      });

      it('a claimed run is running, leased to the worker until now + leaseMs, not taken over', async (store) => {
        const run = newRun({ input: { a: 1 } });
        await store.enqueue([run], T0);
        const [claimed] = await store.claim(claimRequest({ workerId: 'w9', leaseMs: 5_000, now: T0 + 3 }));
        assert.ok(claimed);
        assert.equal(claimed.id, run.id);
        assert.equal(claimed.status, 'running');
        assert.equal(claimed.leaseOwner, 'w9');
        assert.equal(claimed.leaseExpiresAt, T0 + 5_003);
        assert.equal(claimed.takenOver, false);
        assert.deepEqual(claimed.input, { a: 1 });
        const stored = await mustGet(store, run.id);
        assert.equal(stored.status, 'running');
        assert.equal(stored.leaseOwner, 'w9');
        assert.equal(stored.leaseExpiresAt, T0 + 5_003);
      });

      it('skips runs with parents pending, not yet available, leased, final, or of other workflows', async (store) => {
        const leased = await startOne(store, { priority: 4 }, 'w2');
        const done = await startOne(store, { priority: 4 }, 'w2');
        await finish(store, done, 'completed');
        const [parent] = await store.enqueue([newRun({ priority: 0 })], T0);
        await store.enqueue(
          [
            newRun({ dependsOn: [parent?.id ?? ''], priority: 4 }),
            newRun({ availableAt: T0 + 1_000, priority: 4 }),
            newRun({ workflow: 'other', priority: 4 }),
          ],
          T0,
        );
        const claimed = await store.claim(claimRequest({ now: T0 + 10 }));
        assert.deepEqual(
          claimed.map((r) => r.id),
          [parent?.id],
        );
        assert.notEqual(claimed[0]?.id, leased);
        assert.deepEqual(await store.claim(claimRequest({ now: T0 + 20 })), []);
      });

      it('a run becomes claimable when availableAt is reached', async (store) => {
        const run = newRun({ availableAt: T0 + 1_000 });
        await store.enqueue([run], T0);
        assert.deepEqual(await store.claim(claimRequest({ now: T0 + 999 })), []);
        const claimed = await store.claim(claimRequest({ now: T0 + 1_000 }));
        assert.deepEqual(
          claimed.map((r) => r.id),
          [run.id],
        );
      });

      it('claims only the workflows asked for, several at once', async (store) => {
        const a = newRun({ workflow: 'a' });
        const b = newRun({ workflow: 'b' });
        const c = newRun({ workflow: 'c' });
        await store.enqueue([a, b, c], T0);
        const claimed = await store.claim(claimRequest({ workflows: ['a', 'c'] }));
        assert.deepEqual(new Set(claimed.map((r) => r.id)), new Set([a.id, c.id]));
        assert.deepEqual(await store.claim(claimRequest({ workflows: [] })), []);
      });

      it('an expired lease makes the run claimable again, with takenOver: true', async (store) => {
        const id = await startOne(store, {}, 'w1', T0);
        assert.deepEqual(await store.claim(claimRequest({ workerId: 'w2', now: T0 + 999 })), []);
        const [again] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 1_000 }));
        assert.ok(again);
        assert.equal(again.id, id);
        assert.equal(again.takenOver, true);
        assert.equal(again.leaseOwner, 'w2');
        assert.equal(again.leaseExpiresAt, T0 + 2_000);
        assert.equal(again.status, 'running');
      });

      it('a run whose lease was released is claimed without takenOver', async (store) => {
        const id = await startOne(store);
        await store.commit(
          [update(id, 'w1', { status: 'waiting', availableAt: T0 + 100, releaseLease: true })],
          T0 + 1,
        );
        const waiting = await mustGet(store, id);
        assert.equal(waiting.status, 'waiting');
        assert.equal(waiting.leaseOwner, undefined);
        assert.equal(waiting.leaseExpiresAt, undefined);
        assert.deepEqual(await store.claim(claimRequest({ workerId: 'w2', now: T0 + 99 })), []);
        const [woke] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 100 }));
        assert.equal(woke?.id, id);
        assert.equal(woke?.takenOver, false);
        assert.equal(woke?.status, 'running');
      });

      it('queued runs, waiting runs now due and runs whose lease expired are claimed together in priority order; runs waiting for later are not', async (store) => {
        // Waiting for later, created first: a claim must not take them (nor step over them slowly).
        const later = Array.from({ length: 20 }, () => newRun({ priority: 4 }));
        await store.enqueue(later, T0);
        await store.claim(claimRequest({ limit: 20, leaseMs: 60_000 }));
        await store.commit(
          later.map((r) =>
            update(r.id, 'w1', {
              status: 'waiting',
              availableAt: T0 + 1_000_000,
              waitingFor: 'x',
              releaseLease: true,
            }),
          ),
          T0,
        );
        // Due: a waiting run at priority 3, a run whose worker died at priority 2; queued at 1 and 4.
        const due = newRun({ priority: 3 });
        const dead = newRun({ priority: 2 });
        await store.enqueue([due, dead], T0);
        await store.claim(claimRequest({ limit: 2, leaseMs: 100 }));
        await store.commit(
          [update(due.id, 'w1', { status: 'waiting', availableAt: T0 + 50, releaseLease: true })],
          T0,
        );
        const [low, high] = [newRun({ priority: 1 }), newRun({ priority: 4 })];
        await store.enqueue([low, high], T0 + 10);
        const claimed = await store.claim(claimRequest({ workerId: 'w2', limit: 3, now: T0 + 200 }));
        assert.deepEqual(
          claimed.map((r) => [r.id, r.takenOver]),
          [
            [high.id, false],
            [due.id, false],
            [dead.id, true],
          ],
        );
        const [last] = await store.claim(claimRequest({ workerId: 'w2', limit: 5, now: T0 + 200 }));
        assert.equal(last?.id, low.id);
        assert.deepEqual(await store.claim(claimRequest({ workerId: 'w2', limit: 5, now: T0 + 200 })), []);
      });

      it('hasSteps says whether a claimed run has recorded steps to replay, with or without limits', async (store) => {
        const [a, b] = [newRun(), newRun()];
        await store.enqueue([a, b], T0);
        const first = await store.claim(claimRequest({ now: T0 }));
        assert.deepEqual(
          first.map((r) => r.hasSteps),
          [false, false],
        );
        await store.commit([{ kind: 'step', runId: a.id, workerId: 'w1', step: stepOf('a') }], T0 + 1);
        // Both leases run out: one is taken by a claim without limits, the other by one with.
        const [x] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 5_000, limit: 1 }));
        const [y] = await store.claim(
          claimRequest({ workerId: 'w3', now: T0 + 5_000, limit: 1, perWorkflow: { [WF]: 5 } }),
        );
        const hasSteps = new Map([x, y].map((r) => [r?.id, r?.hasSteps]));
        assert.equal(hasSteps.get(a.id), true);
        assert.equal(hasSteps.get(b.id), false);
      });

      it('a compensating run keeps its status when taken over', async (store) => {
        const id = await startOne(store);
        await store.commit([update(id, 'w1', { status: 'compensating' })], T0 + 1);
        const [again] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 5_000 }));
        assert.equal(again?.id, id);
        assert.equal(again?.status, 'compensating');
        assert.equal(again?.takenOver, true);
      });

      it('perWorkflow limits leased runs of a workflow across workers', async (store) => {
        await store.enqueue([newRun(), newRun(), newRun(), newRun({ workflow: 'free' })], T0);
        const request = { perWorkflow: { [WF]: 2 }, workflows: [WF, 'free'] };
        const first = await store.claim(claimRequest({ ...request, workerId: 'w1' }));
        assert.equal(first.filter((r) => r.workflow === WF).length, 2);
        assert.equal(first.filter((r) => r.workflow === 'free').length, 1, 'other workflows are not limited');
        assert.deepEqual(await store.claim(claimRequest({ ...request, workerId: 'w2' })), []);
        const held = first.find((r) => r.workflow === WF);
        assert.ok(held);
        await finish(store, held.id, 'completed', T0 + 1);
        const third = await store.claim(claimRequest({ ...request, workerId: 'w2', now: T0 + 2 }));
        assert.equal(third.length, 1);
      });

      it('perWorkflow does not count expired leases', async (store) => {
        await store.enqueue([newRun(), newRun()], T0);
        const first = await store.claim(claimRequest({ limit: 1, perWorkflow: { [WF]: 1 } }));
        assert.equal(first.length, 1);
        const later = await store.claim(
          claimRequest({ workerId: 'w2', now: T0 + 1_000, perWorkflow: { [WF]: 1 } }),
        );
        assert.equal(later.length, 1, 'the expired lease frees its slot; one run is claimed');
      });

      it('perKey limits leased runs sharing a concurrency key; runs without a key are free', async (store) => {
        await store.enqueue(
          [
            newRun({ concurrencyKey: 'a' }),
            newRun({ concurrencyKey: 'a' }),
            newRun({ concurrencyKey: 'a' }),
            newRun({ concurrencyKey: 'b' }),
            newRun({ concurrencyKey: 'b' }),
            newRun(),
            newRun(),
          ],
          T0,
        );
        const first = await store.claim(claimRequest({ perKey: 1 }));
        const keys = first.map((r) => r.concurrencyKey ?? '-').sort();
        assert.deepEqual(keys, ['-', '-', 'a', 'b']);
        assert.deepEqual(await store.claim(claimRequest({ workerId: 'w2', perKey: 1 })), []);
        const second = await store.claim(claimRequest({ workerId: 'w2', perKey: 2 }));
        assert.deepEqual(second.map((r) => r.concurrencyKey).sort(), ['a', 'b']);
      });

      it('concurrent claims never return the same run', async (store) => {
        const runs = Array.from({ length: 40 }, () => newRun());
        await store.enqueue(runs, T0);
        const batches = await Promise.all(
          Array.from({ length: 8 }, (_, i) => store.claim(claimRequest({ workerId: `w${i}`, limit: 7 }))),
        );
        const ids = batches.flat().map((r) => r.id);
        assert.equal(new Set(ids).size, ids.length, 'no run claimed twice');
        assert.equal(ids.length, 40, 'every run claimed once');
        for (const [i, batch] of batches.entries()) {
          for (const run of batch) assert.equal((await mustGet(store, run.id)).leaseOwner, `w${i}`);
        }
      });

      it('claims in priority, creation, id order for any mix of runs (property)', async (store) => {
        let round = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({ priority: fc.integer({ min: 0, max: 4 }), age: fc.integer({ min: 0, max: 3 }) }),
              {
                minLength: 1,
                maxLength: 12,
              },
            ),
            fc.integer({ min: 1, max: 5 }),
            async (shapes, limit) => {
              const workflow = `prop-${round++}`;
              const runs = shapes.map((s, i) => ({
                run: newRun({ id: orderedId(round * 100 + i), workflow, priority: s.priority }),
                createdAt: T0 - s.age,
              }));
              for (const { run, createdAt } of runs) await store.enqueue([run], createdAt);
              const expected = inClaimOrder(runs);
              const claimed: string[] = [];
              for (;;) {
                const batch = await store.claim(claimRequest({ workflows: [workflow], limit }));
                if (batch.length === 0) break;
                claimed.push(...batch.map((r) => r.id));
              }
              assert.deepEqual(claimed, expected);
            },
          ),
          { numRuns: 15 },
        );
      });

      it('claims in that order across workflows and versions, taking only its own and orphaned versions (property)', async (store) => {
        let round = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({
                workflow: fc.integer({ min: 0, max: 1 }),
                version: fc.constantFrom('1', '2', '3'),
                priority: fc.integer({ min: 0, max: 4 }),
                age: fc.integer({ min: 0, max: 3 }),
              }),
              { minLength: 1, maxLength: 14 },
            ),
            fc.integer({ min: 1, max: 5 }),
            async (shapes, limit) => {
              const names = [`mix-a-${round}`, `mix-b-${round}`] as const;
              round++;
              // This worker runs a@1, a@2 and b@1; a live worker runs a@3 and b@3; b@2 is nobody's.
              const versions = { [names[0]]: ['1', '2'], [names[1]]: ['1'] };
              await store.announce(`other-${round}`, { [names[0]]: ['3'], [names[1]]: ['3'] }, T0, 60_000);
              const runs = shapes.map((s, i) => ({
                run: newRun({
                  id: orderedId(round * 100 + i),
                  workflow: names[s.workflow]!,
                  version: s.version,
                  priority: s.priority,
                }),
                createdAt: T0 - s.age,
              }));
              for (const { run, createdAt } of runs) await store.enqueue([run], createdAt);
              const taken = runs.filter(({ run }) => run.version !== '3');
              const expected = inClaimOrder(taken);
              const claimed: string[] = [];
              for (;;) {
                const batch = await store.claim(
                  claimRequest({ workerId: `mine-${round}`, workflows: names, versions, limit }),
                );
                if (batch.length === 0) break;
                claimed.push(...batch.map((r) => r.id));
              }
              assert.deepEqual(claimed, expected);
              for (const { run } of runs.filter(({ run }) => run.version === '3'))
                assert.equal((await mustGet(store, run.id)).status, 'queued');
            },
          ),
          { numRuns: 15 },
        );
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('claims by version', () => {
      const ids = async (store: WorkflowStore, request: Partial<ClaimRequest>) =>
        (await store.claim(claimRequest(request))).map((r) => r.version).sort();
      const MINUTE = 60_000;

      it('takes only the versions the worker runs while a live worker runs the others', async (store) => {
        await store.enqueue([newRun({ version: '1' }), newRun({ version: '2' })], T0);
        await store.announce('old', { [WF]: ['1'] }, T0, MINUTE);
        assert.deepEqual(await ids(store, { workerId: 'new', versions: { [WF]: ['2'] } }), ['2']);
        assert.deepEqual(await ids(store, { workerId: 'old', versions: { [WF]: ['1'] } }), ['1']);
      });

      it('takes a run whose version no live worker runs (to stop it), and any version without versions', async (store) => {
        await store.enqueue(
          [newRun({ version: '1' }), newRun({ version: '2' }), newRun({ version: '3' })],
          T0,
        );
        await store.announce('old', { [WF]: ['1'] }, T0, MINUTE);
        // Version 3 is nobody's: taken to be stopped. Version 1 is the live worker's.
        assert.deepEqual(await ids(store, { workerId: 'new', versions: { [WF]: ['2'] } }), ['2', '3']);
        assert.deepEqual(await ids(store, { workerId: 'any' }), ['1']);
      });

      it('a worker is live for its own lease after it announced, and not once retired', async (store) => {
        await store.enqueue([newRun({ version: '1' }), newRun({ version: '1' })], T0);
        await store.announce('old', { [WF]: ['1'] }, T0, 1_000);
        // The announcer's lease counts, not the claimer's (100 ms here).
        const request = { workerId: 'new', versions: { [WF]: ['2'] }, leaseMs: 100, limit: 1 };
        assert.deepEqual(await ids(store, { ...request, now: T0 + 900 }), []);
        assert.deepEqual(await ids(store, { ...request, now: T0 + 1_000 }), ['1']);
        await store.announce('old', { [WF]: ['1'] }, T0 + 1_000, 1_000);
        assert.deepEqual(await ids(store, { ...request, now: T0 + 1_100 }), []);
        await store.retire('old');
        assert.deepEqual(await ids(store, { ...request, now: T0 + 1_100 }), ['1']);
      });

      it('an announcement replaces the versions before it; an older one, landing late, changes nothing', async (store) => {
        await store.enqueue([newRun({ version: '1' }), newRun({ version: '1' })], T0);
        await store.announce('old', { [WF]: ['1', '2'] }, T0, MINUTE);
        const request = { workerId: 'new', versions: { [WF]: ['2'] }, now: T0 + 10, limit: 1 };
        assert.deepEqual(await ids(store, request), []);
        await store.announce('old', { [WF]: ['2'] }, T0 + 5, MINUTE);
        assert.deepEqual(await ids(store, request), ['1']);
        await store.announce('old', { [WF]: ['1', '2'] }, T0 + 3, MINUTE);
        assert.deepEqual(await ids(store, request), ['1']);
      });

      it('versions are told apart per workflow', async (store) => {
        await store.enqueue([newRun({ workflow: 'other', version: '1' }), newRun({ version: '1' })], T0);
        await store.announce('old', { other: ['1'] }, T0, MINUTE);
        const claimed = await store.claim(
          claimRequest({
            workerId: 'new',
            workflows: [WF, 'other'],
            versions: { [WF]: ['2'], other: ['2'] },
          }),
        );
        // WF version 1: nobody's, taken; other version 1: the old worker's, left.
        assert.deepEqual(
          claimed.map((r) => `${r.workflow}@${r.version}`),
          [`${WF}@1`],
        );
      });

      it('applies under concurrency limits too', async (store) => {
        await store.enqueue(
          ['1', '1', '2', '2'].map((version) => newRun({ version })),
          T0,
        );
        await store.announce('old', { [WF]: ['1'] }, T0, MINUTE);
        const request = { workerId: 'new', versions: { [WF]: ['2'] } };
        assert.deepEqual(await ids(store, { ...request, perWorkflow: { [WF]: 1 } }), ['2']);
        assert.deepEqual(await ids(store, { ...request, perKey: 5 }), ['2']);
      });

      it('applies to waiting runs now due and to runs whose lease expired', async (store) => {
        const [waiting, expired] = [newRun({ version: '1' }), newRun({ version: '1' })];
        await store.enqueue([waiting, expired], T0);
        await store.claim(claimRequest({ workerId: 'old', leaseMs: 100 }));
        await store.commit(
          [
            {
              kind: 'run',
              runId: waiting.id,
              workerId: 'old',
              update: { status: 'waiting', availableAt: T0 + 50, releaseLease: true },
            },
          ],
          T0 + 1,
        );
        await store.announce('old', { [WF]: ['1'] }, T0 + 150, MINUTE);
        const request = { workerId: 'new', versions: { [WF]: ['2'] }, now: T0 + 200 };
        assert.deepEqual(await ids(store, request), []);
        await store.retire('old');
        assert.deepEqual(await ids(store, request), ['1', '1']);
      });
    });

    describe('renew', () => {
      it('extends the leases the worker holds and returns them', async (store) => {
        const a = await startOne(store, {}, 'w1');
        const b = await startOne(store, {}, 'w2');
        const result = await store.renew('w1', [a, b, randomUUID()], 3_000, T0 + 500);
        assert.deepEqual(result, { held: [a], cancelRequested: [] });
        assert.equal((await mustGet(store, a)).leaseExpiresAt, T0 + 3_500);
        assert.equal((await mustGet(store, b)).leaseExpiresAt, T0 + 1_000, 'not the worker’s: untouched');
      });

      it('a lease taken over by another worker is no longer held', async (store) => {
        const id = await startOne(store, {}, 'w1');
        await store.claim(claimRequest({ workerId: 'w2', now: T0 + 2_000 }));
        assert.deepEqual(await store.renew('w1', [id], 1_000, T0 + 2_001), { held: [], cancelRequested: [] });
        assert.equal((await mustGet(store, id)).leaseOwner, 'w2');
      });

      it('a run made final is no longer held', async (store) => {
        const id = await startOne(store);
        await finish(store, id, 'completed');
        assert.deepEqual(await store.renew('w1', [id], 1_000, T0 + 1), { held: [], cancelRequested: [] });
      });

      it('reports held runs with a cancellation requested', async (store) => {
        const a = await startOne(store);
        const b = await startOne(store);
        assert.equal(await store.requestCancel(a, 'no longer needed', T0 + 1), true);
        const result = await store.renew('w1', [a, b], 1_000, T0 + 2);
        assert.deepEqual(new Set(result.held), new Set([a, b]));
        assert.deepEqual(result.cancelRequested, [a]);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('commit', () => {
      it('applies steps, run updates and events together', async (store) => {
        const id = await startOne(store);
        const result = await store.commit(
          [
            {
              kind: 'step',
              runId: id,
              workerId: 'w1',
              step: stepOf('charge', { output: { paid: true }, attempts: 2 }),
            },
            update(id, 'w1', { progress: 40, degraded: true }),
            event(id, 'step:completed', T0 + 5),
          ],
          T0 + 5,
        );
        assert.deepEqual(result, { lostLease: [], duplicateSteps: [] });
        const steps = await store.steps(id);
        assert.deepEqual(steps, [
          {
            runId: id,
            name: 'charge',
            seq: 0,
            status: 'completed',
            output: { paid: true },
            error: undefined,
            attempts: 2,
            startedAt: T0,
            finishedAt: T0,
          },
        ]);
        const run = await mustGet(store, id);
        assert.equal(run.progress, 40);
        assert.equal(run.degraded, true);
        assert.equal(run.updatedAt, T0 + 5);
        assert.equal((await store.events(id)).at(-1)?.type, 'step:completed');
      });

      it('records steps in seq order from 0 across commits', async (store) => {
        const id = await startOne(store);
        await store.commit(
          [
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('b') },
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('a') },
          ],
          T0,
        );
        await store.commit([{ kind: 'step', runId: id, workerId: 'w1', step: stepOf('c') }], T0 + 1);
        const steps = await store.steps(id);
        assert.deepEqual(
          steps.map((s) => [s.name, s.seq]),
          [
            ['b', 0],
            ['a', 1],
            ['c', 2],
          ],
        );
      });

      it('refuses a step already recorded, and still applies the rest', async (store) => {
        const id = await startOne(store);
        await store.commit(
          [{ kind: 'step', runId: id, workerId: 'w1', step: stepOf('pay', { output: 1 }) }],
          T0,
        );
        const result = await store.commit(
          [
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('pay', { output: 2 }) },
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('ship') },
            update(id, 'w1', { progress: 70 }),
            event(id, 'step:completed'),
          ],
          T0 + 1,
        );
        assert.deepEqual(result, { lostLease: [], duplicateSteps: [{ runId: id, name: 'pay' }] });
        const steps = await store.steps(id);
        assert.deepEqual(
          steps.map((s) => [s.name, s.seq, s.output]),
          [
            ['pay', 0, 1],
            ['ship', 1, null],
          ],
        );
        assert.equal((await mustGet(store, id)).progress, 70);
      });

      it('refuses the second of two records of one step in the same commit', async (store) => {
        const id = await startOne(store);
        const result = await store.commit(
          [
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('x', { output: 'first' }) },
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('x', { output: 'second' }) },
          ],
          T0,
        );
        assert.deepEqual(result.duplicateSteps, [{ runId: id, name: 'x' }]);
        assert.deepEqual(
          (await store.steps(id)).map((s) => s.output),
          ['first'],
        );
      });

      it('drops every change of a run whose lease was taken over, and reports it in lostLease', async (store) => {
        const id = await startOne(store, {}, 'w1');
        const other = await startOne(store, { workflow: 'side' }, 'w3', T0 + 1_500);
        await store.claim(claimRequest({ workerId: 'w2', now: T0 + 2_000, limit: 1 }));
        assert.equal((await mustGet(store, id)).leaseOwner, 'w2');
        const eventsBefore = await store.events(id);
        await store.signal(id, 'go', null, T0 + 2_000);
        const [sig] = await store.signals(id, 'go');
        assert.ok(sig);
        const result = await store.commit(
          [
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('stale') },
            update(id, 'w1', { status: 'completed', output: 'stale', releaseLease: true }),
            event(id, 'run:completed', T0 + 2_001),
            { kind: 'consume-signal', runId: id, signalId: sig.id },
            { kind: 'step', runId: other, workerId: 'w3', step: stepOf('fresh') },
          ],
          T0 + 2_001,
        );
        assert.deepEqual(result, { lostLease: [id], duplicateSteps: [] });
        assert.deepEqual(await store.steps(id), []);
        const run = await mustGet(store, id);
        assert.equal(run.status, 'running');
        assert.equal(run.output, undefined);
        assert.equal(run.leaseOwner, 'w2');
        assert.deepEqual(await store.events(id), eventsBefore);
        assert.equal((await store.signals(id, 'go')).length, 1, 'the signal is still there');
        assert.deepEqual(
          (await store.steps(other)).map((s) => s.name),
          ['fresh'],
          'other runs in the commit are applied',
        );
      });

      it('a run change from a worker that never held the run is a lost lease', async (store) => {
        const id = await startOne(store, {}, 'w1');
        const result = await store.commit([update(id, 'intruder', { progress: 99 })], T0 + 1);
        assert.deepEqual(result.lostLease, [id]);
        assert.equal((await mustGet(store, id)).progress, 0);
      });

      it("events' seq increases across the whole store; events() pages with afterSeq and limit", async (store) => {
        const a = await startOne(store);
        const b = await startOne(store);
        await store.commit([event(a, 'e1'), event(b, 'e2'), event(a, 'e3')], T0 + 1);
        await store.commit([event(b, 'e4'), event(a, 'e5')], T0 + 2);
        const ea = await store.events(a);
        const eb = await store.events(b);
        const all = [...ea, ...eb].map((e) => e.seq);
        assert.equal(new Set(all).size, all.length, 'seq unique across runs');
        for (const list of [ea, eb]) {
          for (let i = 1; i < list.length; i++) assert.ok((list[i]?.seq ?? 0) > (list[i - 1]?.seq ?? 0));
        }
        assert.deepEqual(
          ea.map((e) => e.type),
          ['run:queued', 'e1', 'e3', 'e5'],
        );
        const e1 = ea.find((e) => e.type === 'e1');
        const e4 = eb.find((e) => e.type === 'e4');
        assert.ok(e1 && e4 && e1.seq < e4.seq, 'later commits get higher seq');
        const after = await store.events(a, e1.seq);
        assert.deepEqual(
          after.map((e) => e.type),
          ['e3', 'e5'],
        );
        const limited = await store.events(a, undefined, 2);
        assert.deepEqual(
          limited.map((e) => e.type),
          ['run:queued', 'e1'],
        );
      });

      it('stores an event with its step, data and progress', async (store) => {
        const id = await startOne(store);
        await store.commit(
          [
            {
              kind: 'event',
              runId: id,
              event: {
                type: 'step:retry-scheduled',
                step: 'pay',
                data: { attempt: 2, delayMs: 100 },
                progress: 33,
                at: T0 + 7,
              },
            },
          ],
          T0 + 7,
        );
        const last = (await store.events(id)).at(-1);
        assert.ok(last);
        assert.deepEqual(
          { ...last, seq: 0 },
          {
            seq: 0,
            runId: id,
            type: 'step:retry-scheduled',
            step: 'pay',
            data: { attempt: 2, delayMs: 100 },
            progress: 33,
            at: T0 + 7,
          },
        );
      });

      it('a final status sets finishedAt and releases the lease', async (store) => {
        const id = await startOne(store);
        await store.commit([update(id, 'w1', { status: 'completed', output: { ok: true } })], T0 + 9);
        const run = await mustGet(store, id);
        assert.equal(run.status, 'completed');
        assert.deepEqual(run.output, { ok: true });
        assert.equal(run.finishedAt, T0 + 9);
        assert.equal(run.leaseOwner, undefined);
        assert.equal(run.leaseExpiresAt, undefined);
      });

      it('completion releases dependents: pendingParents drops, at 0 available now, with a runs wake-up', async (store) => {
        const p1 = await startOne(store);
        const p2 = await startOne(store);
        const child = newRun({ dependsOn: [p1, p2] });
        const grandchild = newRun({ dependsOn: [child.id] });
        await store.enqueue([child, grandchild], T0);
        await finish(store, p1, 'completed', T0 + 10);
        assert.equal((await mustGet(store, child.id)).pendingParents, 1);
        assert.deepEqual(await store.claim(claimRequest({ now: T0 + 11 })), []);
        const rec = recordTopics(store);
        await finish(store, p2, 'completed', T0 + 20);
        const released = await mustGet(store, child.id);
        assert.equal(released.pendingParents, 0);
        assert.equal(released.availableAt, T0 + 20);
        assert.equal(released.status, 'queued');
        await rec.until('runs');
        rec.stop();
        assert.equal((await mustGet(store, grandchild.id)).pendingParents, 1, 'only direct dependents');
        const claimed = await store.claim(claimRequest({ now: T0 + 20 }));
        assert.deepEqual(
          claimed.map((r) => r.id),
          [child.id],
        );
      });

      for (const status of ['failed', 'cancelled', 'compensated'] as const) {
        it(`${status} cancels dependents recursively with run:cancelled naming the parent`, async (store) => {
          const parent = await startOne(store);
          const other = await startOne(store);
          const child = newRun({ dependsOn: [parent, other] });
          const grandchild = newRun({ dependsOn: [child.id] });
          const unrelated = newRun({ dependsOn: [other] });
          await store.enqueue([child, grandchild, unrelated], T0);
          await finish(store, parent, status, T0 + 30);
          for (const [id, direct] of [
            [child.id, parent],
            [grandchild.id, child.id],
          ] as const) {
            const run = await mustGet(store, id);
            assert.equal(run.status, 'cancelled');
            assert.equal(run.finishedAt, T0 + 30);
            const cancelled = (await store.events(id)).find((e) => e.type === 'run:cancelled');
            assert.ok(cancelled, `run:cancelled for ${id}`);
            assert.equal((cancelled.data as { parent?: string }).parent, direct);
            assert.equal(cancelled.at, T0 + 30);
          }
          assert.equal((await mustGet(store, unrelated.id)).status, 'queued');
        });
      }

      it('compensating does not cascade; the later final status does', async (store) => {
        const parent = await startOne(store);
        const child = newRun({ dependsOn: [parent] });
        await store.enqueue([child], T0);
        await store.commit([update(parent, 'w1', { status: 'compensating' })], T0 + 1);
        assert.equal((await mustGet(store, child.id)).status, 'queued');
        await store.commit([update(parent, 'w1', { status: 'compensated', releaseLease: true })], T0 + 2);
        assert.equal((await mustGet(store, child.id)).status, 'cancelled');
      });

      it('waitingFor is set with waiting and cleared with null', async (store) => {
        const id = await startOne(store);
        await waitForApproval(store, id, T0 + 1);
        const waiting = await mustGet(store, id);
        assert.equal(waiting.waitingFor, 'approved');
        assert.equal(waiting.availableAt, T0 + 60_000);
        const [claimed] = await store.claim(claimRequest({ now: T0 + 60_000 }));
        assert.equal(claimed?.waitingFor, 'approved');
        await store.commit([update(id, 'w1', { status: 'running', waitingFor: null })], T0 + 60_001);
        assert.equal((await mustGet(store, id)).waitingFor, undefined);
      });

      it('wakes run:<id> subscribers on a commit for that run', async (store) => {
        const id = await startOne(store);
        const rec = recordTopics(store);
        await store.commit([update(id, 'w1', { progress: 10 }), event(id, 'progress')], T0 + 1);
        await rec.until(`run:${id}`);
        rec.stop();
      });

      it('an empty commit succeeds', async (store) => {
        assert.deepEqual(await store.commit([], T0), { lostLease: [], duplicateSteps: [] });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('signals', () => {
      it('stores signals until consumed, oldest first, by name', async (store) => {
        const id = await startOne(store);
        assert.equal(await store.signal(id, 'approved', { by: 'ann' }, T0 + 1), true);
        assert.equal(await store.signal(id, 'approved', { by: 'bob' }, T0 + 2), true);
        assert.equal(await store.signal(id, 'other', 1, T0 + 3), true);
        const list = await store.signals(id, 'approved');
        assert.deepEqual(
          list.map((s) => [s.runId, s.name, s.payload, s.createdAt]),
          [
            [id, 'approved', { by: 'ann' }, T0 + 1],
            [id, 'approved', { by: 'bob' }, T0 + 2],
          ],
        );
        assert.ok((list[0]?.id ?? 0) < (list[1]?.id ?? 0));
        const first = list[0];
        assert.ok(first);
        await store.commit([{ kind: 'consume-signal', runId: id, signalId: first.id }], T0 + 4);
        assert.deepEqual(
          (await store.signals(id, 'approved')).map((s) => s.payload),
          [{ by: 'bob' }],
        );
        assert.equal((await store.signals(id, 'other')).length, 1);
      });

      it('a signal wakes a run waiting for that name: available now, with a runs wake-up', async (store) => {
        const id = await startOne(store);
        await waitForApproval(store, id, T0 + 1);
        await store.signal(id, 'something-else', null, T0 + 5);
        assert.equal((await mustGet(store, id)).availableAt, T0 + 60_000, 'another name does not wake it');
        const rec = recordTopics(store);
        assert.equal(await store.signal(id, 'approved', true, T0 + 10), true);
        assert.equal((await mustGet(store, id)).availableAt, T0 + 10);
        await rec.until('runs');
        rec.stop();
        const [claimed] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 10 }));
        assert.equal(claimed?.id, id);
      });

      it('a wait committed after its signal came ends at once: the run is available now', async (store) => {
        const id = await startOne(store);
        // The signal arrives while the worker still holds the run, between its look and its commit.
        assert.equal(await store.signal(id, 'approved', true, T0 + 5), true);
        await waitForApproval(store, id, T0 + 7);
        assert.equal((await mustGet(store, id)).availableAt, T0 + 7);
        const [claimed] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 7 }));
        assert.equal(claimed?.id, id);
      });

      it('a signal to an unknown or final run returns false and stores nothing', async (store) => {
        assert.equal(await store.signal(randomUUID(), 'x', null, T0), false);
        const id = await startOne(store);
        await finish(store, id, 'completed');
        assert.equal(await store.signal(id, 'x', null, T0 + 1), false);
        assert.deepEqual(await store.signals(id, 'x'), []);
      });

      it('a signal to a queued run is stored', async (store) => {
        const [run] = await store.enqueue([newRun()], T0);
        assert.equal(await store.signal(run?.id ?? '', 'early', 5, T0), true);
        assert.equal((await store.signals(run?.id ?? '', 'early')).length, 1);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('requestCancel', () => {
      it('an unleased run is cancelled at once, with its dependents', async (store) => {
        const [parent] = await store.enqueue([newRun()], T0);
        const child = newRun({ dependsOn: [parent?.id ?? ''] });
        await store.enqueue([child], T0);
        const rec = recordTopics(store);
        assert.equal(await store.requestCancel(parent?.id ?? '', 'user asked', T0 + 5), true);
        const run = await mustGet(store, parent?.id ?? '');
        assert.equal(run.status, 'cancelled');
        assert.equal(run.finishedAt, T0 + 5);
        const cancelled = (await store.events(run.id)).find((e) => e.type === 'run:cancelled');
        assert.ok(cancelled);
        assert.equal((cancelled.data as { reason?: string }).reason, 'user asked');
        assert.equal((await mustGet(store, child.id)).status, 'cancelled');
        await rec.until(`run:${run.id}`);
        rec.stop();
      });

      it('a run whose lease expired is cancelled at once', async (store) => {
        const id = await startOne(store);
        assert.equal(await store.requestCancel(id, 'stop', T0 + 5_000), true);
        assert.equal((await mustGet(store, id)).status, 'cancelled');
      });

      it('a leased run records the request for its worker, which renew reports', async (store) => {
        const id = await startOne(store);
        assert.equal(await store.requestCancel(id, 'stop', T0 + 1), true);
        const run = await mustGet(store, id);
        assert.equal(run.status, 'running');
        assert.equal(run.cancelRequested, 'stop');
        assert.deepEqual(await store.renew('w1', [id], 1_000, T0 + 2), { held: [id], cancelRequested: [id] });
      });

      it('a run that suspends before its worker hears of the request is claimable at once, cancel requested', async (store) => {
        const id = await startOne(store);
        assert.equal(await store.requestCancel(id, 'stop', T0 + 1), true);
        // The worker waits for an event with no timeout before its next heartbeat.
        await store.commit(
          [
            update(id, 'w1', {
              status: 'waiting',
              waitingFor: 'approved',
              availableAt: Number.MAX_SAFE_INTEGER,
              releaseLease: true,
            }),
          ],
          T0 + 2,
        );
        const waiting = await mustGet(store, id);
        assert.equal(waiting.status, 'waiting');
        assert.equal(waiting.availableAt, T0 + 2);
        const claimed = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 2 }));
        assert.deepEqual(
          claimed.map((r) => [r.id, r.cancelRequested]),
          [[id, 'stop']],
        );
      });

      it('a run that has run and now waits, no worker holding it, is due at once with the request (its worker compensates)', async (store) => {
        const id = await startOne(store);
        await store.commit(
          [
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('reserve') },
            update(id, 'w1', {
              status: 'waiting',
              waitingFor: 'approved',
              availableAt: Number.MAX_SAFE_INTEGER,
              releaseLease: true,
            }),
          ],
          T0 + 1,
        );
        assert.equal(await store.requestCancel(id, 'withdrawn', T0 + 2), true);
        const waiting = await mustGet(store, id);
        assert.deepEqual(
          [waiting.status, waiting.cancelRequested, waiting.availableAt],
          ['waiting', 'withdrawn', T0 + 2],
        );
        assert.equal((await store.events(id)).filter((e) => e.type === 'run:cancelled').length, 0);
        const claimed = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 2 }));
        assert.deepEqual(
          claimed.map((r) => [r.id, r.cancelRequested]),
          [[id, 'withdrawn']],
        );
      });

      it('a final or unknown run returns false', async (store) => {
        const id = await startOne(store);
        await finish(store, id, 'failed');
        assert.equal(await store.requestCancel(id, 'late', T0 + 1), false);
        assert.equal((await mustGet(store, id)).status, 'failed');
        assert.equal(await store.requestCancel(randomUUID(), 'who', T0), false);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('prune', () => {
      it('deletes only final runs finished before the cutoff, with their steps, events, signals and links', async (store) => {
        const old = await startOne(store);
        await store.signal(old, 's', null, T0);
        await store.commit([{ kind: 'step', runId: old, workerId: 'w1', step: stepOf('a') }], T0);
        await finish(store, old, 'completed', T0 + 10);
        const oldFailed = await startOne(store);
        await finish(store, oldFailed, 'failed', T0 + 20);
        const recent = await startOne(store);
        await finish(store, recent, 'completed', T0 + 1_000);
        const [live] = await store.enqueue([newRun()], T0);
        const child = newRun({ dependsOn: [old] });
        await store.enqueue([child], T0 + 30);
        const [cancelled] = await store.enqueue([newRun()], T0);
        await store.requestCancel(cancelled?.id ?? '', 'not needed', T0 + 40);

        assert.equal(await store.prune(T0 + 500), 3);
        assert.equal(await store.getRun(old), undefined);
        assert.equal(await store.getRun(oldFailed), undefined);
        assert.equal(await store.getRun(cancelled?.id ?? ''), undefined);
        assert.deepEqual(await store.steps(old), []);
        assert.deepEqual(await store.events(old), []);
        assert.deepEqual(await store.signals(old, 's'), []);
        assert.ok(await store.getRun(recent));
        assert.ok(await store.getRun(live?.id ?? ''));
        assert.ok(await store.getRun(child.id), 'a run that is not final stays, whatever its age');
        assert.equal(await store.prune(T0 + 500), 0);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('schedule ticks', () => {
      const tick = (at: number, schedule = 'hourly') => ({
        scheduleTick: { schedule, at },
        idempotencyKey: `schedule:${schedule}:${new Date(at).toISOString()}`,
      });

      it('records the latest tick with its run; an earlier one, or a key matched, leaves it', async (store) => {
        assert.equal(await store.lastTick('hourly'), undefined);
        await store.enqueue([newRun(tick(T0))], T0);
        assert.equal(await store.lastTick('hourly'), T0);
        // Two ticks in one enqueue (a catch-up and a live tick together): the later stays.
        await store.enqueue([newRun(tick(T0 + 7_200_000)), newRun(tick(T0 + 3_600_000))], T0 + 10);
        assert.equal(await store.lastTick('hourly'), T0 + 7_200_000);
        // A catch-up behind it, by a scheduler that started earlier: its run is made, the tick stays.
        const [behind] = await store.enqueue([newRun(tick(T0 - 3_600_000))], T0 + 20);
        assert.equal(behind?.created, true);
        assert.equal(await store.lastTick('hourly'), T0 + 7_200_000);
        // Each schedule its own; a run whose key matched records nothing of its own.
        await store.enqueue([newRun(tick(T0 + 60_000, 'minutely'))], T0 + 30);
        const [again] = await store.enqueue(
          [newRun({ ...tick(T0 + 60_000, 'minutely'), scheduleTick: { schedule: 'other', at: T0 } })],
          T0 + 40,
        );
        assert.equal(again?.created, false);
        assert.equal(await store.lastTick('minutely'), T0 + 60_000);
        assert.equal(await store.lastTick('other'), undefined);
        assert.equal(await store.lastTick('hourly'), T0 + 7_200_000);
      });

      it('outlives the pruned run, whose idempotency key is free again', async (store) => {
        const id = await startOne(store, tick(T0));
        await finish(store, id, 'completed', T0 + 10);
        assert.equal(await store.prune(T0 + 1_000), 1);
        assert.equal(await store.lastTick('hourly'), T0);
        // Nothing but the recorded tick now says that this tick had its run.
        const [second] = await store.enqueue([newRun(tick(T0))], T0 + 2_000);
        assert.equal(second?.created, true);
      });

      it('refuses a tick that is not a schedule name and a whole ms, before writing', async (store) => {
        for (const bad of [
          { schedule: 7, at: T0 },
          { schedule: 'hourly', at: T0 + 0.5 },
          { schedule: 'hourly', at: '2026' },
        ]) {
          await assert.rejects(
            store.enqueue([newRun({ scheduleTick: bad as unknown as NewRun['scheduleTick'] })], T0),
            /scheduleTick needs a schedule \(string\) and at \(ms, an integer\)/,
          );
        }
        assert.deepEqual(await store.listRuns(), []);
        assert.equal(await store.lastTick('hourly'), undefined);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('listRuns', () => {
      it('lists newest first, filtered by status and workflow, with limit and paging by before', async (store) => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          const run = newRun({ workflow: i % 2 === 0 ? 'even' : 'odd' });
          await store.enqueue([run], T0 + i);
          ids.push(run.id);
        }
        const all = await store.listRuns();
        assert.deepEqual(
          all.map((r) => r.id),
          [...ids].reverse(),
        );
        const even = await store.listRuns({ workflow: 'even' });
        assert.deepEqual(
          even.map((r) => r.id),
          [ids[4], ids[2], ids[0]],
        );
        await store.claim(claimRequest({ workflows: ['odd'], now: T0 + 10 }));
        const running = await store.listRuns({ status: ['running'] });
        assert.deepEqual(
          running.map((r) => r.id),
          [ids[3], ids[1]],
        );
        const queuedOrRunning = await store.listRuns({ status: ['queued', 'running'], limit: 2 });
        assert.deepEqual(
          queuedOrRunning.map((r) => r.id),
          [ids[4], ids[3]],
        );
        const page2 = await store.listRuns({ limit: 2, before: ids[3] });
        assert.deepEqual(
          page2.map((r) => r.id),
          [ids[2], ids[1]],
        );
        const page3 = await store.listRuns({ limit: 2, before: ids[1] });
        assert.deepEqual(
          page3.map((r) => r.id),
          [ids[0]],
        );
      });

      it('pages by id among runs created at the same time', async (store) => {
        const ids = [orderedId(1), orderedId(2), orderedId(3)];
        await store.enqueue(
          ids.map((id) => newRun({ id })),
          T0,
        );
        assert.deepEqual(
          (await store.listRuns()).map((r) => r.id),
          [ids[2], ids[1], ids[0]],
        );
        assert.deepEqual(
          (await store.listRuns({ before: ids[2], limit: 1 })).map((r) => r.id),
          [ids[1]],
        );
      });

      it('lists at most 100 runs by default', async (store) => {
        await store.enqueue(
          Array.from({ length: 105 }, () => newRun()),
          T0,
        );
        assert.equal((await store.listRuns()).length, 100);
        assert.equal((await store.listRuns({ limit: 105 })).length, 105);
      });

      it('pages by offset exactly as by cursor, with every filter and search, and empty past the end', async (store) => {
        // 23 runs, three at a time created in the same ms (ties broken by id), in two workflows,
        // some claimed, some sharing a correlation id and an input value.
        for (let i = 0; i < 23; i++) {
          await store.enqueue(
            [
              newRun({
                workflow: i % 2 === 0 ? WF : 'other',
                input: { n: i % 4 },
                ...(i % 3 === 0 ? { correlationId: 'needle' } : {}),
              }),
            ],
            T0 + Math.floor(i / 3),
          );
        }
        await store.claim(claimRequest({ limit: 5, now: T0 + 100 }));
        const filters = [
          {},
          { workflow: WF },
          { status: ['queued' as const] },
          { status: ['running' as const], workflow: WF },
          { search: { text: 'needle' } },
          { search: { path: ['n'], equals: '1' }, workflow: 'other' },
        ];
        for (const filter of filters) {
          const total = await store.totalRuns(filter);
          for (const limit of [1, 4, 5]) {
            // The cursor walk, page by page.
            const pages: string[][] = [];
            let before: string | undefined;
            for (;;) {
              const page = await store.listRuns({ ...filter, limit, ...(before ? { before } : {}) });
              if (page.length === 0) break;
              pages.push(page.map((r) => r.id));
              before = page.at(-1)!.id;
            }
            assert.equal(pages.flat().length, total, `${JSON.stringify(filter)}: the walk lists them all`);
            for (const [p, page] of pages.entries()) {
              const byOffset = await store.listRuns({ ...filter, limit, offset: p * limit });
              assert.deepEqual(
                byOffset.map((r) => r.id),
                page,
                `${JSON.stringify(filter)}, limit ${limit}: page ${p} by offset is page ${p} by cursor`,
              );
            }
            assert.deepEqual(await store.listRuns({ ...filter, limit, offset: total }), []);
            assert.deepEqual(await store.listRuns({ ...filter, limit, offset: total + 7 }), []);
          }
        }
        // After a cursor, the offset counts from the cursor's run.
        const all = (await store.listRuns({ limit: 100 })).map((r) => r.id);
        assert.deepEqual(
          (await store.listRuns({ before: all[4]!, offset: 3, limit: 2 })).map((r) => r.id),
          all.slice(8, 10),
        );
        // The total ignores the offset.
        assert.equal(await store.totalRuns({ offset: 10 }), 23);
      });

      it('refuses an offset that is negative, fractional or above MAX_RUN_OFFSET', async (store) => {
        await store.enqueue([newRun()], T0);
        for (const offset of [-1, 1.5, Number.NaN, MAX_RUN_OFFSET + 1])
          await assert.rejects(store.listRuns({ offset }), { name: 'TypeError', message: /offset/ });
        assert.deepEqual(await store.listRuns({ offset: MAX_RUN_OFFSET }), []);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('search and totalRuns', () => {
      /** Three runs with ids, keys and inputs to search by; returned oldest first. */
      async function searchable(store: WorkflowStore): Promise<string[]> {
        const runs = [
          newRun({
            id: 'aaaa1111-0000-4000-8000-000000000001',
            correlationId: 'order-17',
            input: { url: 'https://example.com/a', order: { id: 42, paid: true } },
          }),
          newRun({
            id: 'aaaa2222-0000-4000-8000-000000000002',
            idempotencyKey: 'import-2024-05',
            input: { url: 'https://example.com/b', order: { id: 43, paid: false } },
          }),
          newRun({
            id: 'bbbb1111-0000-4000-8000-000000000003',
            workflow: 'billing',
            correlationId: 'aaaa',
            input: { url: 'https://example.com/a', note: 'aaaa1111' },
          }),
        ];
        for (const [i, run] of runs.entries()) await store.enqueue([run], T0 + i);
        return runs.map((r) => r.id);
      }

      const ids = (runs: RunRecord[]) => runs.map((r) => r.id);

      it('finds a run by its whole id or its beginning, newest first', async (store) => {
        const [a, b, c] = await searchable(store);
        assert.deepEqual(ids(await store.listRuns({ search: { text: a! } })), [a]);
        // `aaaa` begins two ids and is the third run's correlation id: all three, newest first.
        assert.deepEqual(ids(await store.listRuns({ search: { text: 'aaaa' } })), [c, b, a]);
        assert.deepEqual(ids(await store.listRuns({ search: { text: 'aaaa1' } })), [a]);
        // A prefix is a beginning, not a substring, and case counts.
        assert.deepEqual(ids(await store.listRuns({ search: { text: '1111' } })), []);
        assert.deepEqual(ids(await store.listRuns({ search: { text: 'AAAA1' } })), []);
      });

      it('finds a run by its correlation id or idempotency key, exactly', async (store) => {
        const [a, b] = await searchable(store);
        assert.deepEqual(ids(await store.listRuns({ search: { text: 'order-17' } })), [a]);
        assert.deepEqual(ids(await store.listRuns({ search: { text: 'import-2024-05' } })), [b]);
        assert.deepEqual(ids(await store.listRuns({ search: { text: 'order-1' } })), []);
      });

      it('finds runs by a value of their input, compared as text', async (store) => {
        const [a, b, c] = await searchable(store);
        const byInput = (path: string[], equals: string) => store.listRuns({ search: { path, equals } });
        assert.deepEqual(ids(await byInput(['url'], 'https://example.com/a')), [c, a]);
        assert.deepEqual(ids(await byInput(['order', 'id'], '43')), [b]);
        assert.deepEqual(ids(await byInput(['order', 'paid'], 'true')), [a]);
        assert.deepEqual(ids(await byInput(['order', 'paid'], 'false')), [b]);
        assert.deepEqual(ids(await byInput(['missing'], 'x')), []);
        // A search combines with the filters and the paging.
        assert.deepEqual(
          ids(
            await store.listRuns({
              search: { path: ['url'], equals: 'https://example.com/a' },
              workflow: WF,
            }),
          ),
          [a],
        );
        assert.deepEqual(ids(await store.listRuns({ search: { text: 'aaaa' }, before: c!, limit: 1 })), [b]);
      });

      it('totalRuns counts what listRuns lists, without limit or paging', async (store) => {
        await searchable(store);
        await store.enqueue(
          Array.from({ length: 7 }, () => newRun()),
          T0 + 10,
        );
        await store.claim(claimRequest({ limit: 2, now: T0 + 20 }));
        assert.equal(await store.totalRuns(), 10);
        assert.equal(await store.totalRuns({ limit: 1, before: 'anything' }), 10);
        assert.equal(await store.totalRuns({ workflow: 'billing' }), 1);
        assert.equal(await store.totalRuns({ status: ['running'] }), 2);
        assert.equal(await store.totalRuns({ status: ['queued', 'running'], workflow: WF }), 9);
        assert.equal(await store.totalRuns({ search: { text: 'aaaa' } }), 3);
        assert.equal(await store.totalRuns({ search: { text: 'aaaa' }, workflow: 'billing' }), 1);
        assert.equal(await store.totalRuns({ search: { path: ['order', 'id'], equals: '42' } }), 1);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('parked runs', () => {
      /** Claims the run and suspends it the way the engine parks a step behind an open circuit. */
      async function park(store: WorkflowStore, id: string, dependency: string, at: number, until: number) {
        const [claimed] = await store.claim(claimRequest({ now: at }));
        assert.equal(claimed?.id, id);
        await store.commit(
          [
            {
              kind: 'event',
              runId: id,
              event: {
                type: 'step:parked',
                step: 'charge',
                data: { retryAfterMs: until - at, dependency },
                progress: 0,
                at,
              },
            },
            update(id, 'w1', {
              status: 'waiting',
              availableAt: until,
              parkedOn: dependency,
              releaseLease: true,
            }),
          ],
          at,
        );
      }

      it('lists the runs parked behind a dependency, soonest to resume first, and counts them', async (store) => {
        const [first, second, third, sleeper] = [newRun(), newRun(), newRun(), newRun()];
        await store.enqueue([first!], T0);
        await park(store, first!.id, 'payments', T0 + 1, T0 + 60_000);
        await store.enqueue([second!], T0);
        await park(store, second!.id, 'payments', T0 + 2, T0 + 30_000);
        await store.enqueue([third!], T0);
        await park(store, third!.id, 'inventory', T0 + 3, T0 + 30_000);
        // Asleep, not parked: waiting, but not behind any dependency.
        const sleeperId = await startOne(store, { id: sleeper!.id }, 'w1', T0 + 4);
        await store.commit(
          [
            update(sleeperId, 'w1', {
              status: 'waiting',
              availableAt: T0 + 90_000,
              parkedOn: null,
              releaseLease: true,
            }),
          ],
          T0 + 4,
        );

        const parked = await store.parkedRuns('payments', 10);
        assert.equal(parked.total, 2);
        assert.deepEqual(parked.runs, [
          {
            runId: second!.id,
            workflow: WF,
            step: 'charge',
            since: T0 + 2,
            resumeAt: T0 + 30_000,
            data: { retryAfterMs: 29_998, dependency: 'payments' },
          },
          {
            runId: first!.id,
            workflow: WF,
            step: 'charge',
            since: T0 + 1,
            resumeAt: T0 + 60_000,
            data: { retryAfterMs: 59_999, dependency: 'payments' },
          },
        ]);
        const page = await store.parkedRuns('payments', 1);
        assert.deepEqual(
          page.runs.map((r) => r.runId),
          [second!.id],
        );
        assert.equal(page.total, 2, 'the total counts beyond the limit');
        assert.deepEqual(await store.parkedCounts(), { payments: 2, inventory: 1 });
        assert.deepEqual(await store.parkedRuns('nothing', 10), { runs: [], total: 0 });
      });

      it('a parked run is no longer listed once claimed again or ended', async (store) => {
        const [a, b] = [newRun(), newRun()];
        await store.enqueue([a!], T0);
        await park(store, a!.id, 'payments', T0, T0 + 1_000);
        await store.enqueue([b!], T0 + 1);
        await park(store, b!.id, 'payments', T0 + 1, T0 + 5_000);
        assert.deepEqual(await store.parkedCounts(), { payments: 2 });
        // a's time has come: a worker takes it and it tries the dependency again.
        const claimed = await store.claim(claimRequest({ now: T0 + 1_000 }));
        assert.deepEqual(
          claimed.map((r) => r.id),
          [a!.id],
        );
        assert.deepEqual(
          (await store.parkedRuns('payments', 10)).runs.map((r) => r.runId),
          [b!.id],
        );
        // b is cancelled while it waits.
        assert.equal(await store.requestCancel(b!.id, 'no longer needed', T0 + 2_000), true);
        assert.deepEqual(await store.parkedRuns('payments', 10), { runs: [], total: 0 });
        assert.deepEqual(await store.parkedCounts(), {});
      });

      it('wakeParked makes the runs parked behind one dependency due now and wakes the workers', async (store) => {
        const [a, b, other] = [newRun(), newRun(), newRun()];
        await store.enqueue([a!], T0);
        await park(store, a!.id, 'payments', T0, T0 + 60_000);
        await store.enqueue([b!], T0 + 1);
        await park(store, b!.id, 'payments', T0 + 1, T0 + 5_000);
        await store.enqueue([other!], T0 + 2);
        await park(store, other!.id, 'inventory', T0 + 2, T0 + 60_000);
        // Nothing to claim before the wake: both are parked for a while yet.
        assert.deepEqual(await store.claim(claimRequest({ now: T0 + 10 })), []);

        const wakeups = recordTopics(store);
        try {
          assert.equal(await store.wakeParked('payments', T0 + 10), 2);
          await wakeups.until('runs');
        } finally {
          wakeups.stop();
        }
        assert.equal((await mustGet(store, a!.id)).availableAt, T0 + 10);
        assert.equal((await mustGet(store, b!.id)).availableAt, T0 + 10);
        assert.equal((await mustGet(store, other!.id)).availableAt, T0 + 60_000, 'another dependency’s stay');
        // Still parked until a worker takes them: the list shows them due now.
        const listed = (await store.parkedRuns('payments', 10)).runs;
        assert.deepEqual(listed.map((r) => r.runId).sort(), [a!.id, b!.id].sort());
        assert.ok(listed.every((r) => r.resumeAt === T0 + 10));
        assert.deepEqual(
          (await store.claim(claimRequest({ now: T0 + 10 }))).map((r) => r.id).sort(),
          [a!.id, b!.id].sort(),
        );
        assert.equal(await store.wakeParked('payments', T0 + 20), 0, 'claimed runs are parked no more');
        assert.equal(await store.wakeParked('nothing', T0 + 20), 0);
      });

      it('wakeParked leaves a parked run already due, and runs waiting for anything else', async (store) => {
        const [due, sleeper] = [newRun(), newRun()];
        await store.enqueue([due!], T0);
        await park(store, due!.id, 'payments', T0, T0 + 1_000);
        const sleeperId = await startOne(store, { id: sleeper!.id }, 'w1', T0 + 1);
        await store.commit(
          [update(sleeperId, 'w1', { status: 'waiting', availableAt: T0 + 90_000, releaseLease: true })],
          T0 + 1,
        );
        assert.equal(await store.wakeParked('payments', T0 + 2_000), 0);
        assert.equal((await mustGet(store, due!.id)).availableAt, T0 + 1_000);
        assert.equal((await mustGet(store, sleeperId)).availableAt, T0 + 90_000);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('JSON and subscriptions', () => {
      const nested: Json = {
        text: 'héllo ✓ 日本語 \u0000 "quoted" \\ back',
        emoji: '🚀',
        list: [1, 2.5, -3, true, false, null, { deep: [[[]]] }],
        empty: {},
        zero: 0,
      };

      it('round-trips inputs, outputs, step outputs, errors and payloads as JSON', async (store) => {
        const id = await startOne(store, { input: nested });
        const error: StoredError = {
          name: 'HttpStatusError',
          message: 'upstream said ✗',
          code: 'BULWARK_HTTP_STATUS',
          transient: true,
          stack: 'Error: x\n    at y',
          data: { status: 503, nested: { a: [null] } },
        };
        await store.commit(
          [
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('s1', { output: nested }) },
            {
              kind: 'step',
              runId: id,
              workerId: 'w1',
              step: stepOf('s2', { status: 'failed', output: undefined, error }),
            },
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('s3', { output: null }) },
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('s4', { output: undefined }) },
            update(id, 'w1', { status: 'failed', output: null, error, releaseLease: true }),
          ],
          T0 + 1,
        );
        const run = await mustGet(store, id);
        assert.deepEqual(run.input, nested);
        assert.equal(run.output, null);
        assert.deepEqual(run.error, error);
        const steps = await store.steps(id);
        assert.deepEqual(steps[0]?.output, nested);
        assert.equal(steps[1]?.output, undefined);
        assert.deepEqual(steps[1]?.error, error);
        assert.equal(steps[1]?.status, 'failed');
        assert.equal(steps[2]?.output, null);
        assert.ok(
          steps[3] && 'output' in steps[3] && steps[3].output === undefined,
          'undefined stays undefined',
        );
        assert.equal(steps[0]?.error, undefined);
      });

      it('an output never set reads undefined; a minimal error keeps only its fields', async (store) => {
        const id = await startOne(store, { input: 'just a string' });
        const run = await mustGet(store, id);
        assert.equal(run.output, undefined);
        assert.equal(run.input, 'just a string');
        await store.commit([update(id, 'w1', { error: { name: 'E', message: 'm' } })], T0 + 1);
        assert.deepEqual((await mustGet(store, id)).error, { name: 'E', message: 'm' });
      });

      it('round-trips signal payloads and event data', async (store) => {
        const id = await startOne(store);
        await store.signal(id, 'n', nested, T0);
        assert.deepEqual((await store.signals(id, 'n'))[0]?.payload, nested);
        await store.commit([event(id, 'custom', T0 + 1, nested)], T0 + 1);
        assert.deepEqual((await store.events(id)).at(-1)?.data, nested);
        const queued = (await store.events(id))[0];
        assert.ok(queued);
      });

      it('an unsubscribed listener hears nothing more', async (store) => {
        const heard: WakeTopic[] = [];
        const stop = store.subscribe((t) => heard.push(t));
        stop();
        const rec = recordTopics(store);
        await store.enqueue([newRun()], T0);
        await rec.until('runs');
        rec.stop();
        assert.deepEqual(heard, []);
      });
    });

    // -----------------------------------------------------------------------------------------
    // The same data whichever store wrote the event, with the run's own correlation id and
    // traceparent when it has them (as the engine's events carry them), never its parent's.
    describe('events the store writes', () => {
      const traced = {
        correlationId: 'corr-1',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      };
      const otherTrace = {
        correlationId: 'corr-2',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      };

      /** The data of the run's one event of this type. */
      async function dataOf(store: WorkflowStore, id: string, type: string): Promise<Json | undefined> {
        const found = (await store.events(id)).filter((e) => e.type === type);
        assert.equal(found.length, 1, `one ${type} for ${id}`);
        return found[0]?.data;
      }

      it("run:queued has the workflow, version and priority, with the run's correlation id and traceparent", async (store) => {
        const plain = newRun({ version: '3', priority: 2 });
        const withContext = newRun({ version: '4', priority: 5, ...traced });
        await store.enqueue([plain, withContext], T0);
        // With a parent (PostgreSQL writes these the long way).
        const child = newRun({ dependsOn: [plain.id], ...otherTrace });
        const bare = newRun({ dependsOn: [plain.id] });
        await store.enqueue([child, bare], T0 + 1);
        assert.deepEqual(await dataOf(store, plain.id, 'run:queued'), {
          workflow: WF,
          version: '3',
          priority: 2,
        });
        assert.deepEqual(await dataOf(store, withContext.id, 'run:queued'), {
          workflow: WF,
          version: '4',
          priority: 5,
          ...traced,
        });
        assert.deepEqual(await dataOf(store, child.id, 'run:queued'), {
          workflow: WF,
          version: '1',
          priority: 1,
          ...otherTrace,
        });
        assert.deepEqual(await dataOf(store, bare.id, 'run:queued'), {
          workflow: WF,
          version: '1',
          priority: 1,
        });
      });

      it("run:cancelled of a run enqueued after its parent failed has reason, parent and parentStatus, with the run's correlation id and traceparent", async (store) => {
        const parent = await startOne(store, otherTrace);
        await finish(store, parent, 'failed');
        const withContext = newRun({ dependsOn: [parent], ...traced });
        const plain = newRun({ dependsOn: [parent] });
        await store.enqueue([withContext, plain], T0 + 10);
        const data = { reason: `parent ${parent} failed`, parent, parentStatus: 'failed' };
        assert.deepEqual(await dataOf(store, withContext.id, 'run:cancelled'), { ...data, ...traced });
        assert.deepEqual(await dataOf(store, plain.id, 'run:cancelled'), data);
      });

      it("run:cancelled of the dependents of a failed parent has reason, parent and parentStatus, each with its own run's correlation id and traceparent", async (store) => {
        const parent = await startOne(store, otherTrace);
        const child = newRun({ dependsOn: [parent], ...traced });
        const grandchild = newRun({ dependsOn: [child.id] });
        await store.enqueue([child, grandchild], T0);
        await finish(store, parent, 'failed', T0 + 30);
        assert.deepEqual(await dataOf(store, child.id, 'run:cancelled'), {
          reason: `parent ${parent} failed`,
          parent,
          parentStatus: 'failed',
          ...traced,
        });
        assert.deepEqual(await dataOf(store, grandchild.id, 'run:cancelled'), {
          reason: `parent ${child.id} cancelled`,
          parent: child.id,
          parentStatus: 'cancelled',
        });
      });

      it("run:cancelled of an unleased run cancelled on request has the reason (its dependents', the parent), each with its own run's correlation id and traceparent", async (store) => {
        const withContext = newRun(traced);
        const plain = newRun();
        const child = newRun({ dependsOn: [withContext.id], ...otherTrace });
        await store.enqueue([withContext, plain, child], T0);
        assert.equal(await store.requestCancel(withContext.id, 'user asked', T0 + 5), true);
        assert.equal(await store.requestCancel(plain.id, 'not needed', T0 + 5), true);
        assert.deepEqual(await dataOf(store, withContext.id, 'run:cancelled'), {
          reason: 'user asked',
          ...traced,
        });
        assert.deepEqual(await dataOf(store, plain.id, 'run:cancelled'), { reason: 'not needed' });
        assert.deepEqual(await dataOf(store, child.id, 'run:cancelled'), {
          reason: `parent ${withContext.id} cancelled`,
          parent: withContext.id,
          parentStatus: 'cancelled',
          ...otherTrace,
        });
      });

      it('a run the store cancels is left with the error the engine would store, in every path', async (store) => {
        const cancelled = (reason: string, parent?: { parent: string; parentStatus: string }) => ({
          name: 'RunCancelledError',
          message: `Run cancelled: ${reason}`,
          code: 'BULWARK_WORKFLOW_CANCELLED',
          transient: false,
          data: { reason, ...parent },
        });
        const errorOf = async (id: string) => {
          const { stack: _, ...error } = (await store.getRun(id))!.error!;
          return error;
        };
        // On request, while no worker held it; its dependent for it (in the cascade).
        const asked = newRun();
        const child = newRun({ dependsOn: [asked.id] });
        await store.enqueue([asked, child], T0);
        await store.requestCancel(asked.id, 'user asked', T0 + 5);
        assert.deepEqual(await errorOf(asked.id), cancelled('user asked'));
        const byParent = { parent: asked.id, parentStatus: 'cancelled' };
        assert.deepEqual(await errorOf(child.id), cancelled(`parent ${asked.id} cancelled`, byParent));
        // Enqueued after its parent had failed.
        const parent = await startOne(store);
        await finish(store, parent, 'failed');
        const late = newRun({ dependsOn: [parent] });
        await store.enqueue([late], T0 + 10);
        const failed = { parent, parentStatus: 'failed' };
        assert.deepEqual(await errorOf(late.id), cancelled(`parent ${parent} failed`, failed));
      });

      it("run:retried has the reason, with the run's correlation id and traceparent", async (store) => {
        const withContext = await startOne(store, traced);
        const plain = await startOne(store);
        await finish(store, withContext, 'failed');
        await finish(store, plain, 'failed');
        assert.equal(await store.retryRun(withContext, 'again', T0 + 5), 'retried');
        assert.equal(await store.retryRun(plain, 'once more', T0 + 5), 'retried');
        assert.deepEqual(await dataOf(store, withContext, 'run:retried'), { reason: 'again', ...traced });
        assert.deepEqual(await dataOf(store, plain, 'run:retried'), { reason: 'once more' });
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('retryRun', () => {
      it('queues a failed run again: failed steps deleted, completed kept, fields cleared, run:retried', async (store) => {
        const id = await startOne(store);
        assert.equal(await store.requestCancel(id, 'asked', T0 + 1), true); // leased: only recorded
        await store.commit(
          [
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('a', { output: 1 }) },
            {
              kind: 'step',
              runId: id,
              workerId: 'w1',
              step: stepOf('b', { status: 'failed', error: { name: 'E', message: 'boom' } }),
            },
            update(id, 'w1', { status: 'waiting', waitingFor: 'never', availableAt: T0 + 5, progress: 40 }),
          ],
          T0 + 2,
        );
        await store.commit(
          [
            update(id, 'w1', { status: 'failed', error: { name: 'E', message: 'boom' }, output: 'partial' }),
            event(id, 'run:failed', T0 + 3),
          ],
          T0 + 3,
        );
        const rec = recordTopics(store);
        assert.equal(await store.retryRun(id, 'operator said so', T0 + 100), 'retried');
        const run = await mustGet(store, id);
        assert.equal(run.status, 'queued');
        for (const field of [
          'error',
          'output',
          'finishedAt',
          'cancelRequested',
          'leaseOwner',
          'leaseExpiresAt',
          'waitingFor',
        ] as const) {
          assert.equal(run[field], undefined, field);
        }
        assert.equal(run.availableAt, T0 + 100);
        assert.equal(run.updatedAt, T0 + 100);
        assert.equal(run.pendingParents, 0);
        assert.equal(run.progress, 40, 'progress is kept: the replay does not report it again');
        assert.deepEqual(
          (await store.steps(id)).map((st) => [st.name, st.status]),
          [['a', 'completed']],
        );
        const last = (await store.events(id)).at(-1);
        assert.equal(last?.type, 'run:retried');
        assert.deepEqual(last?.data, { reason: 'operator said so' });
        assert.equal(last?.at, T0 + 100);
        await rec.until('runs');
        await rec.until(`run:${id}`);
        rec.stop();
        const [claimed] = await store.claim(claimRequest({ workerId: 'w2', now: T0 + 100 }));
        assert.equal(claimed?.id, id);
        assert.equal(claimed?.takenOver, false);
        assert.equal(claimed?.status, 'running');
      });

      it('deletes the steps whose compensation completed since the last retry, and their compensations', async (store) => {
        const id = await startOne(store);
        const step = (name: string, overrides: Partial<NewStep> = {}): Change => ({
          kind: 'step',
          runId: id,
          workerId: 'w1',
          step: stepOf(name, overrides),
        });
        const failed = { status: 'failed', error: { name: 'E', message: 'no' } } as const;
        const compensated = (name: string, at: number): Change => ({
          kind: 'event',
          runId: id,
          event: { type: 'compensation:completed', step: name, data: undefined, progress: 0, at },
        });
        await store.commit([step('a'), step('b'), step('c'), step('d', failed)], T0 + 1);
        await store.commit(
          [
            update(id, 'w1', { status: 'compensating' }),
            step('compensate:c'),
            compensated('c', T0 + 2),
            step('compensate:b', failed),
          ],
          T0 + 2,
        );
        await store.commit([update(id, 'w1', { status: 'failed', releaseLease: true })], T0 + 3);
        assert.equal(await store.retryRun(id, 'again', T0 + 10), 'retried');
        // c was undone (it runs again), b's compensation failed (b's effect stands: kept).
        assert.deepEqual(
          (await store.steps(id)).map((st) => st.name),
          ['a', 'b'],
        );

        // Second round: c is done again and d fails again, with nothing compensated this time.
        await store.claim(claimRequest({ now: T0 + 10 }));
        await store.commit([step('c'), step('d', failed)], T0 + 11);
        await store.commit([update(id, 'w1', { status: 'failed', releaseLease: true })], T0 + 12);
        assert.equal(await store.retryRun(id, 'once more', T0 + 20), 'retried');
        assert.deepEqual(
          (await store.steps(id)).map((st) => st.name),
          ['a', 'b', 'c'],
          'the compensation of the first round does not undo the second round’s c',
        );
      });

      it('a wait that got no event (timed out, or cancelled while waiting) is deleted, so the retried run waits afresh', async (store) => {
        const id = await startOne(store);
        const timedOut = { status: 'failed', error: { name: 'WaitTimeoutError', message: 'late' } } as const;
        await store.commit(
          [
            {
              kind: 'step',
              runId: id,
              workerId: 'w1',
              step: stepOf('wait:approval', { output: { deadline: T0 } }),
            },
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('event:approval', timedOut) },
            {
              kind: 'step',
              runId: id,
              workerId: 'w1',
              step: stepOf('wait:other', { output: { deadline: T0 } }),
            },
            { kind: 'step', runId: id, workerId: 'w1', step: stepOf('event:other', { output: 'yes' }) },
            // The run was cancelled (or failed elsewhere) while this one waited.
            {
              kind: 'step',
              runId: id,
              workerId: 'w1',
              step: stepOf('wait:pending', { output: { deadline: T0 } }),
            },
            update(id, 'w1', { status: 'failed', releaseLease: true }),
          ],
          T0 + 1,
        );
        assert.equal(await store.retryRun(id, 'r', T0 + 2), 'retried');
        assert.deepEqual(
          (await store.steps(id)).map((st) => st.name),
          ['wait:other', 'event:other'],
        );
      });

      it('compensated and cancelled runs are retryable; other statuses are not; unknown runs are unknown', async (store) => {
        const compensated = await startOne(store);
        await finish(store, compensated, 'compensated');
        assert.equal(await store.retryRun(compensated, 'r', T0 + 1), 'retried');
        const [cancelled] = await store.enqueue([newRun()], T0);
        await store.requestCancel(cancelled?.id ?? '', 'stop', T0 + 1);
        assert.equal(await store.retryRun(cancelled?.id ?? '', 'r', T0 + 2), 'retried');
        assert.equal((await mustGet(store, cancelled?.id ?? '')).status, 'queued');

        const [queued] = await store.enqueue([newRun({ workflow: 'other' })], T0);
        const running = await startOne(store, { workflow: 'third' });
        const completed = await startOne(store, { workflow: 'fourth' });
        await finish(store, completed, 'completed');
        for (const [id, status] of [
          [queued?.id ?? '', 'queued'],
          [running, 'running'],
          [completed, 'completed'],
        ] as const) {
          const before = await mustGet(store, id);
          assert.equal(await store.retryRun(id, 'r', T0 + 5), 'not-retryable', status);
          assert.deepEqual(await mustGet(store, id), before, `${status} run left as it was`);
        }
        assert.equal(await store.retryRun(randomUUID(), 'r', T0), 'unknown');
      });

      it('prune keeps a parent that did not complete while a run that depends on it is kept, so its retry still waits', async (store) => {
        const grandparent = await startOne(store);
        await finish(store, grandparent, 'completed', T0 + 1);
        const parent = { id: await startOne(store, { dependsOn: [grandparent] }, 'w1', T0 + 2) };
        await finish(store, parent.id, 'failed', T0 + 3);
        // Born cancelled, later than its parents ended: a prune by age alone would take them.
        const child = newRun({ dependsOn: [parent.id] });
        await store.enqueue([child], T0 + 10);
        assert.equal((await mustGet(store, child.id)).status, 'cancelled');
        // The completed grandparent released its dependent: it may go. The failed parent stays.
        assert.equal(await store.prune(T0 + 5), 1);
        assert.equal(await store.getRun(grandparent), undefined);
        assert.ok(await store.getRun(parent.id));
        assert.equal(await store.retryRun(child.id, 'again', T0 + 20), 'retried');
        assert.equal((await mustGet(store, child.id)).pendingParents, 1, 'it waits for its failed parent');
        // Once the dependent goes, so do they.
        await store.requestCancel(child.id, 'done with it', T0 + 21);
        assert.equal(await store.prune(T0 + 30), 2);
      });

      it('a retried dependent waits again for its parents that have not completed', async (store) => {
        const done = await startOne(store);
        await finish(store, done, 'completed', T0 + 1);
        const failing = await startOne(store, { workflow: 'parent' });
        const child = newRun({ dependsOn: [done, failing] });
        await store.enqueue([child], T0 + 2);
        await finish(store, failing, 'failed', T0 + 3);
        assert.equal((await mustGet(store, child.id)).status, 'cancelled');
        // Born cancelled: its parent had already failed when it was enqueued.
        const late = newRun({ dependsOn: [failing] });
        await store.enqueue([late], T0 + 4);

        assert.equal(await store.retryRun(child.id, 'r', T0 + 5), 'retried');
        assert.equal(await store.retryRun(late.id, 'r', T0 + 5), 'retried');
        for (const id of [child.id, late.id]) {
          const run = await mustGet(store, id);
          assert.equal(run.status, 'queued');
          assert.equal(run.pendingParents, 1, 'only the parent not completed counts');
        }
        assert.deepEqual(await store.claim(claimRequest({ now: T0 + 6 })), [], 'not claimable yet');

        assert.equal(await store.retryRun(failing, 'r', T0 + 7), 'retried');
        const [parent] = await store.claim(claimRequest({ workflows: ['parent'], now: T0 + 7 }));
        assert.equal(parent?.id, failing);
        await finish(store, failing, 'completed', T0 + 8);
        const claimed = await store.claim(claimRequest({ now: T0 + 8 }));
        assert.deepEqual(claimed.map((r) => r.id).sort(), [child.id, late.id].sort());
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('audit', () => {
      const entry = (n: number, overrides: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
        at: T0 + n,
        actor: `user-${n}`,
        role: 'operator',
        action: 'run.cancel',
        outcome: 'ok',
        ...overrides,
      });

      it('appendAudit returns the entry with an increasing id; listAudit pages newest first', async (store) => {
        const full = await store.appendAudit(
          entry(0, {
            target: 'run-1',
            requestId: 'req-1',
            data: { reason: 'stuck', nested: [1, null] },
            outcome: 'denied',
          }),
        );
        assert.deepEqual(full, {
          id: full.id,
          at: T0,
          actor: 'user-0',
          role: 'operator',
          action: 'run.cancel',
          target: 'run-1',
          requestId: 'req-1',
          data: { reason: 'stuck', nested: [1, null] },
          outcome: 'denied',
        });
        const rest = [];
        for (let n = 1; n < 5; n++) rest.push(await store.appendAudit(entry(n, { outcome: 'failed' })));
        const ids = [full, ...rest].map((e) => e.id);
        assert.ok(
          ids.every((id, i) => i === 0 || id > ids[i - 1]!),
          `ids increase: ${ids}`,
        );
        assert.deepEqual(
          rest[0],
          {
            id: rest[0]?.id,
            at: T0 + 1,
            actor: 'user-1',
            role: 'operator',
            action: 'run.cancel',
            outcome: 'failed',
          },
          'fields not given stay absent',
        );

        const all = await store.listAudit();
        assert.deepEqual(
          all.map((e) => e.id),
          [...ids].reverse(),
        );
        assert.deepEqual(all.at(-1), full);
        const page = await store.listAudit({ limit: 2 });
        assert.deepEqual(
          page.map((e) => e.id),
          [ids[4], ids[3]],
        );
        const next = await store.listAudit({ limit: 2, before: page.at(-1)?.id ?? 0 });
        assert.deepEqual(
          next.map((e) => e.id),
          [ids[2], ids[1]],
        );
      });

      it('listAudit gives 100 entries by default and at most 1000', async (store) => {
        await Promise.all(Array.from({ length: 1_001 }, (_, n) => store.appendAudit(entry(n))));
        assert.equal((await store.listAudit()).length, 100);
        assert.equal((await store.listAudit({ limit: 5_000 })).length, 1_000);
        await assert.rejects(store.listAudit({ limit: 0 }), /limit/);
      });

      it('appendAudit rejects an entry with a missing field or an unknown outcome, naming it', async (store) => {
        await assert.rejects(store.appendAudit({ ...entry(0), actor: '' }), /actor/);
        await assert.rejects(
          store.appendAudit({ ...entry(0), outcome: 'maybe' as NewAuditEntry['outcome'] }),
          /outcome/,
        );
        assert.deepEqual(await store.listAudit(), []);
      });

      it('an enqueue carrying an audit entry records it with the run, and not for a matched idempotency key', async (store) => {
        const { target: _, ...audit } = entry(1, {
          action: 'run.start',
          requestId: 'req-1',
          data: { workflow: WF },
        });
        const run = newRun({ idempotencyKey: 'audited', audit });
        const [first] = await store.enqueue([run], T0);
        const [again] = await store.enqueue([newRun({ idempotencyKey: 'audited', audit })], T0 + 1);
        assert.equal(first?.created, true);
        assert.equal(again?.created, false);
        const log = await store.listAudit();
        assert.equal(log.length, 1, 'the second start matched the first run: no second entry');
        assert.deepEqual({ ...log[0], id: 0 }, { ...audit, target: run.id, id: 0 });
      });

      it('an enqueue whose audit entry is invalid fails, and neither is stored', async (store) => {
        const run = newRun({ audit: { ...entry(1), actor: '' } });
        await assert.rejects(store.enqueue([run], T0), /actor/);
        assert.equal(await store.getRun(run.id), undefined);
        assert.deepEqual(await store.listAudit(), []);
      });

      it('prune leaves the audit log alone', async (store) => {
        const id = await startOne(store);
        await finish(store, id, 'completed', T0 + 1);
        const kept = await store.appendAudit(entry(1, { target: id }));
        assert.equal(await store.prune(T0 + 1_000), 1);
        assert.deepEqual(await store.listAudit(), [kept]);
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('run feed and counts', () => {
      it('an empty store has latestSeq 0 and an empty feed', async (store) => {
        assert.equal(await store.latestSeq(), 0);
        assert.deepEqual(await store.runFeed(0, 10), []);
        assert.deepEqual(await store.countRuns(), []);
      });

      it('runFeed gives the run:* events of every run after a seq, oldest first, with the workflow', async (store) => {
        const a = await startOne(store);
        const b = await startOne(store, { workflow: 'billing' });
        await store.commit(
          [
            event(a, 'step:started', T0 + 1),
            event(b, 'run:progress', T0 + 1, { note: 1 }),
            event(a, 'run:started', T0 + 1),
            event(a, 'steps:x', T0 + 1),
          ],
          T0 + 1,
        );
        await finish(store, b, 'completed', T0 + 2);
        const everything = [...(await store.events(a)), ...(await store.events(b))].sort(
          (x, y) => x.seq - y.seq,
        );
        const expected = everything
          .filter((e) => e.type.startsWith('run:'))
          .map((e) => ({ ...e, workflow: e.runId === a ? WF : 'billing' }));
        // (The order of one commit's events of different runs is the store's.)
        assert.deepEqual(expected.map((e) => e.type).sort(), [
          'run:completed',
          'run:progress',
          'run:queued',
          'run:queued',
          'run:started',
        ]);
        assert.deepEqual(await store.runFeed(0, 100), expected);
        assert.deepEqual(await store.runFeed(0, 2), expected.slice(0, 2));
        assert.deepEqual(await store.runFeed(expected[1]!.seq, 2), expected.slice(2, 4));
        assert.deepEqual(await store.runFeed(expected.at(-1)!.seq, 10), []);
        assert.equal(await store.latestSeq(), everything.at(-1)!.seq, 'the last seq of any event');
      });

      it('latestSeq never goes back when the newest events are pruned', async (store) => {
        const id = await startOne(store);
        await finish(store, id, 'completed', T0 + 1);
        const last = await store.latestSeq();
        assert.ok(last > 0);
        assert.equal(await store.prune(T0 + 10), 1);
        assert.equal(await store.latestSeq(), last);
        const [next] = await store.enqueue([newRun()], T0 + 20);
        const feed = await store.runFeed(last, 10);
        assert.deepEqual(
          feed.map((e) => [e.runId, e.type]),
          [[next?.id, 'run:queued']],
        );
        assert.ok(feed[0]!.seq > last);
      });

      it('countRuns counts runs by workflow and status', async (store) => {
        const done = await startOne(store, { workflow: 'billing' });
        await finish(store, done, 'completed');
        await startOne(store, { workflow: 'billing' });
        await store.enqueue([newRun({ workflow: 'billing' })], T0);
        // Queued at two times: the oldest is the one that counts.
        await store.enqueue([newRun()], T0 + 50);
        await store.enqueue([newRun()], T0);
        const counts = await store.countRuns();
        for (const c of counts) assert.equal(c.oldestCreatedAt, T0, `${c.workflow}/${c.status}`);
        const sorted = [...counts]
          .map(({ oldestCreatedAt: _, ...c }) => c)
          .sort((x, y) => `${x.workflow}/${x.status}`.localeCompare(`${y.workflow}/${y.status}`));
        assert.deepEqual(sorted, [
          { workflow: 'billing', status: 'completed', count: 1 },
          { workflow: 'billing', status: 'queued', count: 1 },
          { workflow: 'billing', status: 'running', count: 1 },
          { workflow: WF, status: 'queued', count: 2 },
        ]);
      });
    });

    it('migrate is safe to run again', async (store) => {
      await store.migrate();
      const [run] = await store.enqueue([newRun()], T0);
      assert.equal(run?.created, true);
      await store.migrate();
      assert.ok(await store.getRun(run?.id ?? ''));
    });
  });
}
