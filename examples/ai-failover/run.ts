// AI provider failover (seed 001), for real: prompts go to the `ai` group of bulwark.yaml, whose
// first provider fails, second is rate-limited and third serves, all on loopback. Run with
// `npm run example:ai-failover` (`-- --prompts 20 --interval-ms 100` to change the load).
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { HttpStatusError, RetriesExhaustedError } from '@bulwark/core';
import { openRegistry } from '@bulwark/server';
import {
  type Provider,
  startFailingProvider,
  startHealthyProvider,
  startRateLimitedProvider,
} from './providers.ts';

const log = (line = '') => process.stdout.write(`${line}\n`);

const { values } = parseArgs({
  options: {
    prompts: { type: 'string', default: '12' },
    'interval-ms': { type: 'string', default: '150' },
  },
});
const prompts = wholeNumber('--prompts', values.prompts, 1, 1_000);
const intervalMs = wholeNumber('--interval-ms', values['interval-ms'], 0, 10_000);

const keys = { primary: 'pk-primary-demo', secondary: 'pk-secondary-demo', tertiary: 'pk-tertiary-demo' };
const primary = await startFailingProvider('primary', keys.primary);
const secondary = await startRateLimitedProvider('secondary', keys.secondary, {
  perWindow: 2,
  pauseMs: 1_000,
});
const tertiary = await startHealthyProvider('tertiary', keys.tertiary);
const providers: Provider[] = [primary, secondary, tertiary];

const opened = await openRegistry(join(import.meta.dirname, 'bulwark.yaml'), {
  env: {
    ...process.env,
    PRIMARY_URL: primary.url,
    PRIMARY_API_KEY: keys.primary,
    SECONDARY_URL: secondary.url,
    SECONDARY_API_KEY: keys.secondary,
    TERTIARY_URL: tertiary.url,
    TERTIARY_API_KEY: keys.tertiary,
  },
});
const { registry } = opened;

// Everything below is told by the registry's own events: the group's failovers and who served,
// the providers' retries and their breakers. `trace` is the current prompt's story, in order.
let trace: string[] = [];
let servedBy = 'fallback';
const skipped = { circuit: new Map<string, number>(), rateLimited: new Map<string, number>() };
const bump = (counts: Map<string, number>, name: string) => counts.set(name, (counts.get(name) ?? 0) + 1);
/** `primary.retry` -> `primary`: a dependency's policies are named after it. */
const owner = (policy: string) => policy.slice(0, policy.lastIndexOf('.'));

registry.events.on('group:failover', (e) => {
  if (e.reason === 'failed') {
    trace.push(`${e.from} failed (${describe(e.error)})`);
  } else if (e.reason === 'circuit-open') {
    bump(skipped.circuit, e.from);
    trace.push(`${e.from} skipped (circuit open)`);
  } else {
    bump(skipped.rateLimited, e.from);
    trace.push(`${e.from} skipped (rate-limited)`);
  }
});
registry.events.on('group:served', (e) => {
  servedBy = e.provider ?? 'fallback';
});
registry.events.on('retry:scheduled', (e) => {
  trace.push(`${owner(e.policy)} ${describe(e.error)}, retried`);
});
registry.events.on('breaker:opened', (e) => {
  trace.push(`${owner(e.policy)} circuit opened (${e.reason}, ${e.openMs / 1000} s)`);
});
registry.events.on('breaker:half-opened', (e) => trace.push(`${owner(e.policy)} circuit half-open`));
registry.events.on('breaker:closed', (e) => trace.push(`${owner(e.policy)} circuit closed`));

interface Completion {
  model?: string;
  choices: { message: { content: string } }[];
}

/**
 * One prompt through the group. The relative URL resolves against each provider's `baseUrl`,
 * and each provider's pipeline adds its own bearer token, timeout, retries and breaker.
 */
async function ask(prompt: string): Promise<Completion> {
  const answer: unknown = await registry.fetch('ai', '/v1/chat/completions', {
    method: 'POST',
    operation: 'chat',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: prompt }] }),
  });
  // The group's fallback answers with its value from bulwark.yaml, a completion already rather
  // than a response; `group:served` has said which it is by the time the call returns.
  if (servedBy === 'fallback') return answer as Completion;
  return (await (answer as Response).json()) as Completion;
}

let answered = 0;
async function send(n: number): Promise<void> {
  trace = [];
  servedBy = 'fallback';
  const completion = await ask(`Prompt ${n}: what does a circuit breaker protect?`);
  if (completion.choices[0]?.message.content) answered++;
  log(` ${String(n).padStart(2)}  ${servedBy.padEnd(10)}  ${trace.join('; ') || '-'}`);
}

try {
  log(
    `${prompts} prompts to the group 'ai' (primary, then secondary, then tertiary), one every ${intervalMs} ms`,
  );
  log('  primary fails (500s and connection resets); secondary allows 2 requests, then answers');
  log('  429 with Retry-After: 1 for a second; tertiary serves.');
  log();
  log('  #  served by   on the way');
  for (let n = 1; n <= prompts; n++) {
    await send(n);
    if (n < prompts) await delay(intervalMs);
  }

  // Recovery: the primary is healthy again; once its circuit's open time has passed, the next
  // prompt is the probe that closes it, and the group's first choice serves again.
  primary.recover();
  const waitMs = registry.stats('primary').breaker?.retryAfterMs ?? 0;
  log();
  log(`primary is healthy again; its circuit lets a probe through in ${waitMs} ms`);
  await delay(waitMs + 10);
  for (let n = prompts + 1; n <= prompts + 2; n++) await send(n);

  log();
  log('What each provider received, by its own count, and what Bulwark did with it:');
  const columns = [
    'provider',
    'requests',
    'served',
    '500',
    'reset',
    '429',
    'early',
    'skipped:open',
    'skipped:wait',
    'circuit',
  ];
  const row = (cells: (string | number)[]) =>
    log(
      `  ${cells.map((c, i) => String(c).padEnd(Math.max(columns[i]!.length, i === 0 ? 10 : 0) + 2)).join('')}`.trimEnd(),
    );
  row(columns);
  for (const p of providers) {
    const c = p.counts;
    row([
      p.name,
      c.requests,
      c.served,
      c.errors,
      c.resets,
      c.rateLimited,
      c.early,
      skipped.circuit.get(p.name) ?? 0,
      skipped.rateLimited.get(p.name) ?? 0,
      registry.stats(p.name).state ?? '-',
    ]);
  }
  log('  (early: requests that came before the Retry-After had passed; skipped:open: not called,');
  log("  circuit open; skipped:wait: not called, the group's Retry-After wait pending)");
  const group = registry.groupStats('ai');
  log();
  log(
    `group ai: ${group.calls} calls, ${answered} answered, served by ` +
      `${Object.entries(group.servedBy)
        .map(([name, count]) => `${name} ${count}`)
        .join(', ')}; ${group.failovers} failovers, ${group.fallbacks} fallbacks`,
  );
  log(
    `secondary: ${secondary.counts.early} requests arrived before the Retry-After it had given; ` +
      `the group skipped it ${skipped.rateLimited.get('secondary') ?? 0} times while waiting`,
  );
} finally {
  await opened.close();
  await Promise.all(providers.map((p) => p.close()));
}

function describe(error: unknown): string {
  const e = error instanceof RetriesExhaustedError ? error.cause : error;
  if (e instanceof HttpStatusError) {
    return e.retryAfterMs === undefined
      ? String(e.status)
      : `${e.status}, Retry-After ${e.retryAfterMs / 1000} s`;
  }
  const code = (e as { cause?: { code?: string } }).cause?.code;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'reset';
  return (e as Error).message;
}

function wholeNumber(flag: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`${flag} must be a whole number from ${min} to ${max}, got '${text}'\n`);
    process.exit(2);
  }
  return n;
}
