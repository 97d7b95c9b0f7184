// Runs examples/ai-failover as users do (a child process) and checks the story it prints (told
// by the registry's group, retry and breaker events) against the providers' own counts: every
// prompt answered, the failing provider's circuit opened and skipped, the rate-limited provider
// left alone by the group until its Retry-After passed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const repoRoot = join(import.meta.dirname, '..', '..', '..');
const PROMPTS = 12;

interface PromptLine {
  n: number;
  servedBy: string;
  trace: string;
}

interface TableRow {
  requests: number;
  served: number;
  errors: number;
  resets: number;
  rateLimited: number;
  early: number;
  skippedOpen: number;
  skippedWait: number;
  circuit: string;
}

async function runExample(): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--conditions=@bulwark/source',
      '--import',
      'tsx',
      join(repoRoot, 'examples', 'ai-failover', 'run.ts'),
      '--prompts',
      String(PROMPTS),
    ],
    { cwd: repoRoot, timeout: 40_000, encoding: 'utf8' },
  );
  return stdout;
}

function parse(stdout: string): { prompts: PromptLine[]; table: Map<string, TableRow> } {
  const prompts: PromptLine[] = [];
  for (const m of stdout.matchAll(/^ {1,2}(\d+) {2}(\S+) +(.*)$/gm)) {
    prompts.push({ n: Number(m[1]), servedBy: m[2]!, trace: m[3]! });
  }
  const table = new Map<string, TableRow>();
  for (const m of stdout.matchAll(
    /^ {2}(primary|secondary|tertiary) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\S+)$/gm,
  )) {
    const [requests, served, errors, resets, rateLimited, early, skippedOpen, skippedWait] = m
      .slice(2, 10)
      .map(Number) as number[];
    table.set(m[1]!, {
      requests: requests!,
      served: served!,
      errors: errors!,
      resets: resets!,
      rateLimited: rateLimited!,
      early: early!,
      skippedOpen: skippedOpen!,
      skippedWait: skippedWait!,
      circuit: m[10]!,
    });
  }
  return { prompts, table };
}

const count = (lines: PromptLine[], pattern: RegExp) =>
  lines.reduce((sum, l) => sum + (l.trace.match(new RegExp(pattern, 'g'))?.length ?? 0), 0);
/** A failed attempt of `provider`, retried (`primary 500, retried`) or failed over (`primary failed (500)`). */
const failedWith = (provider: string, what: string) =>
  new RegExp(`${provider} (?:${what}, retried|failed \\(${what}\\b)`);

test('examples/ai-failover: the group answers every prompt, and the figures printed agree', async () => {
  const stdout = await runExample();
  const { prompts, table } = parse(stdout);
  const total = PROMPTS + 2; // two more after the primary recovers

  // The group answers every prompt, never through its fallback.
  assert.deepEqual(
    prompts.map((p) => p.n),
    Array.from({ length: total }, (_, i) => i + 1),
    stdout,
  );
  for (const p of prompts) assert.match(p.servedBy, /^(primary|secondary|tertiary)$/, `prompt ${p.n}`);
  const summary = stdout.match(
    new RegExp(`^group ai: ${total} calls, ${total} answered, .*; (\\d+) failovers, 0 fallbacks$`, 'm'),
  );
  assert.ok(summary, stdout);
  // Every failover the group counted is one line of the trace: a provider failed or skipped.
  assert.equal(Number(summary[1]), count(prompts, / (?:failed|skipped) \(/));

  // Each provider served exactly what the client saw it serve, and the group counted the same.
  for (const name of ['primary', 'secondary', 'tertiary']) {
    const row = table.get(name);
    assert.ok(row, `no row for ${name} in:\n${stdout}`);
    const servedLines = prompts.filter((p) => p.servedBy === name).length;
    assert.equal(row.served, servedLines, `${name}: served`);
    if (servedLines > 0) assert.match(stdout, new RegExp(`served by .*${name} ${servedLines}`));
    assert.equal(row.early, 0, `${name}: requests before their Retry-After`);
  }

  // The primary: every request before recovery failed (500 or reset), each failure is in the
  // trace, its circuit opened and it was then skipped without a call; after recovery it serves.
  const primary = table.get('primary')!;
  const before = prompts.filter((p) => p.n <= PROMPTS);
  assert.ok(
    before.every((p) => p.servedBy !== 'primary'),
    'the failing primary served a prompt',
  );
  assert.equal(primary.errors, count(prompts, failedWith('primary', '500')));
  assert.equal(primary.resets, count(prompts, failedWith('primary', 'reset')));
  assert.ok(primary.errors > 0 && primary.resets > 0, 'the primary should fail both ways');
  assert.equal(primary.requests, primary.errors + primary.resets + primary.served);
  const openedAt = prompts.findIndex((p) => /primary circuit opened \(consecutive-failures/.test(p.trace));
  assert.ok(openedAt >= 0, `the primary's circuit never opened:\n${stdout}`);
  assert.equal(primary.skippedOpen, count(prompts, /primary skipped \(circuit open\)/));
  assert.ok(primary.skippedOpen >= 1, 'the open circuit should have been skipped');
  assert.ok(
    prompts.slice(openedAt + 1, openedAt + 3).every((p) => /primary skipped \(circuit open\)/.test(p.trace)),
    'right after opening, the primary is skipped',
  );
  const after = prompts.filter((p) => p.n > PROMPTS);
  assert.deepEqual(
    after.map((p) => p.servedBy),
    ['primary', 'primary'],
  );
  assert.match(after[0]!.trace, /primary circuit closed/);
  assert.equal(primary.served, 2);
  assert.equal(primary.circuit, 'closed');

  // The secondary: its first answer is a 429; while its Retry-After runs, the group sends it no
  // request at all (the provider's own `early` count) and says so (`skipped (rate-limited)`).
  const secondary = table.get('secondary')!;
  assert.match(prompts[0]!.trace, /secondary failed \(429, Retry-After 1 s\)/);
  assert.equal(secondary.skippedWait, count(prompts, /secondary skipped \(rate-limited\)/));
  assert.ok(secondary.skippedWait >= 1, 'the group never left the secondary alone');
  assert.match(
    stdout,
    new RegExp(`^secondary: 0 requests arrived .*; the group skipped it ${secondary.skippedWait} times`, 'm'),
  );
  assert.equal(secondary.requests, secondary.served + secondary.rateLimited);
  assert.equal(secondary.early, 0);
  assert.equal(secondary.skippedOpen, 0, 'a 429 waited out should not open the circuit');
  assert.equal(secondary.circuit, 'closed');
  // A 429 is not retried on the same provider: each one is a failover, and the trace has no retry.
  assert.equal(secondary.rateLimited, count(prompts, /secondary failed \(429/));
  assert.equal(count(prompts, /secondary [^;]*retried/), 0);

  // The tertiary served whatever the other two could not.
  const tertiary = table.get('tertiary')!;
  assert.equal(tertiary.requests, tertiary.served);
  assert.equal(primary.served + secondary.served + tertiary.served, total);
});
