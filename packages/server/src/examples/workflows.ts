// The built-in example workflows, calling the example upstream through the example dependencies:
// `adopt-pet` (a saga: a failed confirmation refunds the charge and releases the pet) and
// `nightly-report` (a durable sleep between steps, with progress).
import { defineWorkflow, type StepContext, type WorkflowDefinition } from '@bulwark/workflow';

export interface AdoptPetInput {
  pet: string;
  adopter: string;
  /** @default 4_500 */
  feeCents?: number;
}

export interface NightlyReportInput {
  /** The durable pause between collecting and publishing (it shows on the timeline). @default 1_500 */
  settleMs?: number;
}

/** An HTTP error keeps its status, so the pipelines judge it: 503 is retried, 402 or 409 is not. */
class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** The example workflows, bound to the upstream at `baseUrl`. */
export function exampleWorkflows(baseUrl: string): WorkflowDefinition<any, any>[] {
  const call = async <T>(
    path: string,
    signal: AbortSignal,
    init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<T> => {
    const method = init.method ?? (init.body === undefined ? 'GET' : 'POST');
    const response = await fetch(new URL(path, baseUrl), {
      method,
      signal,
      headers: { 'content-type': 'application/json', ...init.headers },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
    const body = (await response.json().catch(() => null)) as { error?: string } | null;
    if (!response.ok) {
      throw new UpstreamError(
        `${method} ${path}: ${response.status} ${body?.error ?? ''}`.trim(),
        response.status,
      );
    }
    return body as T;
  };

  const adoptPet = defineWorkflow(
    {
      name: 'adopt-pet',
      version: '1',
      description: 'Reserves a pet, charges the adoption fee, then confirms; a failure refunds and releases',
      steps: ['reserve', 'charge', 'confirm'],
      // A pet the example upstream has (an adopted pet stays adopted: a second run is refused).
      example: { pet: 'luna', adopter: 'Ada Lovelace' },
    },
    async (ctx, input: AdoptPetInput) => {
      const pet = encodeURIComponent(input.pet);
      const reserved = await ctx.step(
        'reserve',
        {
          dependency: 'petstore',
          compensate: (r: { hold: string }, s: StepContext) =>
            call(`/pets/${pet}/release`, s.signal, { body: { hold: r.hold } }),
        },
        // The hold id is the step's idempotency key: a retried reservation finds its own hold.
        (s) =>
          call<{ hold: string }>(`/pets/${pet}/reserve`, s.signal, {
            body: { hold: `hold-${s.idempotencyKey}` },
          }),
      );
      ctx.progress(33, `${input.pet} reserved`);
      const charge = await ctx.step(
        'charge',
        {
          dependency: 'payments',
          compensate: (c: { id: string }, s: StepContext) =>
            call(`/payments/${c.id}/refund`, s.signal, { body: {} }),
        },
        (s) =>
          call<{ id: string; amountCents: number }>('/payments', s.signal, {
            body: { amountCents: input.feeCents ?? 4_500, description: `adoption of ${input.pet}` },
            headers: { 'idempotency-key': s.idempotencyKey },
          }),
      );
      ctx.progress(66, `charged ${charge.amountCents} cents`);
      await ctx.step('confirm', { dependency: 'petstore' }, (s) =>
        call(`/pets/${pet}/adopt`, s.signal, { body: { hold: reserved.hold, adopter: input.adopter } }),
      );
      ctx.progress(100, `${input.pet} adopted by ${input.adopter}`);
      return { pet: input.pet, adopter: input.adopter, hold: reserved.hold, charge: charge.id };
    },
  );

  const nightlyReport = defineWorkflow(
    {
      name: 'nightly-report',
      version: '1',
      description:
        'Collects the day’s sales and inventory, lets late payments settle, then publishes the report',
      // A durable sleep is recorded as the step `sleep:<name>`.
      steps: ['sales', 'sleep:settle', 'inventory', 'publish'],
      example: { settleMs: 1_500 },
    },
    async (ctx, input: NightlyReportInput) => {
      const sales = await ctx.step('sales', { dependency: 'payments' }, (s) =>
        call<{ charges: number; refunded: number; revenueCents: number }>('/reports/sales', s.signal),
      );
      ctx.progress(25, `${sales.charges} charges`);
      await ctx.sleep('settle', input?.settleMs ?? 1_500);
      ctx.progress(50, 'settled');
      const pets = await ctx.step('inventory', { dependency: 'petstore' }, (s) =>
        call<{ name: string; status: string }[]>('/pets', s.signal),
      );
      const available = pets.filter((p) => p.status === 'available').length;
      ctx.progress(75, `${available} of ${pets.length} pets available`);
      const report = { ...sales, available, pets: pets.length };
      await ctx.step('publish', { dependency: 'notifications' }, (s) =>
        call('/notifications', s.signal, { body: { to: 'staff', subject: 'Nightly report', report } }),
      );
      ctx.progress(100, 'published');
      return report;
    },
  );

  return [adoptPet, nightlyReport];
}
