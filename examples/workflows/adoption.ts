// A pet adoption as a durable workflow: reserve the pet, charge the adopter through the payment
// gateway's dependency pipeline, wait for the shelter's approval, then hand over. A declined
// approval compensates: the charge is refunded and the pet released. Run with
// `npm run example:workflow`; state lives in a SQLite file, so a crash resumes where it stopped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DependencyRegistry } from '@bulwark/core';
import { defineWorkflow, openSqliteStore, WorkflowEngine } from '@bulwark/workflow';

const log = (line: string) => process.stdout.write(`${line}\n`);

interface Adoption {
  pet: string;
  adopter: string;
  feeCents: number;
}

// The payment gateway: a dependency with a breaker and retries, as the registry gives it.
let gatewayCalls = 0;
const registry = new DependencyRegistry({
  dependencies: { payment_gateway: { kind: 'http', retry: { maxAttempts: 3, baseMs: 10 } } },
});

const adopt = defineWorkflow({ name: 'adopt-pet', version: '1' }, async (ctx, a: Adoption) => {
  const hold = await ctx.step(
    'reserve-pet',
    { compensate: (h: { hold: string }) => log(`   compensation: released ${h.hold}`) },
    () => ({ hold: `hold-${a.pet}` }),
  );
  ctx.progress(25, 'pet reserved');
  const charge = await ctx.step(
    'charge-fee',
    {
      dependency: 'payment_gateway',
      compensate: (c: { charge: string }) => log(`   compensation: refunded ${c.charge}`),
    },
    ({ idempotencyKey }) => {
      gatewayCalls++;
      // The first call meets a gateway hiccup; the dependency's retry absorbs it.
      if (gatewayCalls === 1) throw Object.assign(new Error('gateway busy'), { status: 503 });
      return { charge: `ch-${idempotencyKey.slice(-12)}` };
    },
  );
  ctx.progress(50, 'fee charged');
  const decision = await ctx.waitForEvent<{ approved: boolean }>('shelter-approval', { timeoutMs: 60_000 });
  if (!decision.approved) throw Object.assign(new Error(`shelter declined ${a.adopter}`), { status: 422 });
  await ctx.step('hand-over', () => null);
  return { pet: a.pet, adopter: a.adopter, hold: hold.hold, charge: charge.charge };
});

const dir = mkdtempSync(join(tmpdir(), 'bulwark-adoption-'));
const store = await openSqliteStore({ path: join(dir, 'adoptions.db') });
const engine = new WorkflowEngine({ store, registry, pollMs: 50 });
engine.register(adopt).startWorker();

try {
  log('1. Rex is adopted by Ada: the shelter approves');
  const rex = await engine.start(
    adopt,
    { pet: 'rex', adopter: 'Ada', feeCents: 4_500 },
    { priority: 'high' },
  );
  const timeline = (async () => {
    for await (const e of engine.timeline(rex.id)) {
      log(`   ${String(e.progress).padStart(3)}%  ${e.type}${e.step ? ` ${e.step}` : ''}`);
      if (e.type === 'run:waiting') await engine.sendEvent(rex.id, 'shelter-approval', { approved: true });
    }
  })();
  const result = await engine.result(rex.id);
  await timeline;
  log(`   adopted: ${JSON.stringify(result)}`);

  log('2. Tom is adopted by Bob: the shelter declines, and the saga undoes its steps');
  const tom = await engine.start(adopt, { pet: 'tom', adopter: 'Bob', feeCents: 3_000 });
  await waitUntilWaiting(tom.id);
  await engine.sendEvent(tom.id, 'shelter-approval', { approved: false });
  const outcome = await engine.result(tom.id).catch((e: Error) => e.message);
  log(`   outcome: ${outcome}`);
  log(`   final state: ${(await store.getRun(tom.id))?.status}`);
} finally {
  await engine.stop();
  await store.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
}

async function waitUntilWaiting(runId: string): Promise<void> {
  for await (const e of engine.timeline(runId)) if (e.type === 'run:waiting') return;
}
