// Graceful shutdown with a real process: SIGTERM in the middle of a step lets the step finish and
// be recorded, fails readiness at once, exits 0 and leaves the run queued; the next start on the
// same data directory completes it without running the recorded step again.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteStore } from '@bulwark/workflow';

const fixture = join(import.meta.dirname, 'fixtures', 'slow-server.ts');
const tsx = import.meta.resolve('tsx');

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
}

/** Starts the fixture server on `dir`; resolves once it prints its URL. */
async function start(dir: string, stepMs = 1_500): Promise<Server> {
  const child = spawn(process.execPath, ['--conditions=@bulwark/source', '--import', tsx, fixture, dir], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', SLOW_STEP_MS: String(stepMs) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await until(
    () => /listening on (http:\/\/\S+)/.exec(output)?.[1],
    'the server to start',
    15_000,
    exited,
  );
  return { child, url, output: () => output, exited };
}

/** Polls `check` until it returns a value; fails after `ms` or if the process exits first. */
async function until<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  ms: number,
  exited?: Promise<unknown>,
): Promise<T> {
  let gone = false;
  void exited?.then(() => (gone = true));
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (gone) assert.fail(`the process exited while waiting for ${what}`);
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function stepsLog(dir: string): string[] {
  try {
    return readFileSync(join(dir, 'steps.log'), 'utf8').trim().split('\n');
  } catch {
    return [];
  }
}

test('SIGTERM mid-step: readiness fails, the step finishes and is recorded, exit 0; the next start completes the run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-shutdown-'));
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const first = await start(dir);
  children.push(first.child);
  const key = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
  const auth = { authorization: `Bearer ${key}` };
  assert.equal((await fetch(`${first.url}/health/ready`)).status, 200);

  const started = await fetch(`${first.url}/api/workflows/slow/runs`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ input: null }),
  });
  assert.equal(started.status, 201, await started.clone().text());
  const { id } = (await started.json()) as { id: string };

  await until(
    () => (stepsLog(dir).includes('long:start') ? true : undefined),
    'the long step to start',
    10_000,
  );
  first.child.kill('SIGTERM');
  // The step has ~1.5 s left: readiness must fail well before it ends.
  const ready = await until(
    async () => {
      const status = await fetch(`${first.url}/health/ready`).then(
        (r) => r.status,
        () => undefined,
      );
      return status === 503 ? status : undefined;
    },
    'readiness to fail',
    1_000,
  );
  assert.equal(ready, 503);
  assert.ok(!stepsLog(dir).includes('long:end'), 'readiness failed only after the step ended');

  const exit = await first.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, first.output());
  assert.deepEqual(stepsLog(dir), ['long:start', 'long:end']);
  const phases = first
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => (JSON.parse(l) as { shutdown?: string }).shutdown)
    .filter((p) => p !== undefined);
  assert.deepEqual(phases, ['draining', 'engine stopped', 'http closed', 'store closed']);

  // What the first process left: the long step recorded, the run queued for the next worker.
  const store = await openSqliteStore({ path: join(dir, 'bulwark.db') });
  try {
    assert.equal((await store.getRun(id))?.status, 'queued');
    assert.deepEqual(
      (await store.steps(id)).map((s) => [s.name, s.status]),
      [['long', 'completed']],
    );
  } finally {
    await store.close();
  }

  const second = await start(dir);
  children.push(second.child);
  const run = await until(
    async () => {
      const r = (await (await fetch(`${second.url}/api/runs/${id}`, { headers: auth })).json()) as {
        status: string;
        output: unknown;
      };
      return r.status === 'completed' ? r : undefined;
    },
    'the run to complete after the restart',
    10_000,
  );
  assert.deepEqual(run.output, { long: 'long done', short: 'short done' });
  assert.deepEqual(stepsLog(dir), ['long:start', 'long:end', 'short']);
  // The key was printed by the first start only.
  assert.ok(first.output().includes(key));
  assert.ok(!second.output().includes(key));

  second.child.kill('SIGINT');
  assert.deepEqual(await second.exited, { code: 0, signal: null });
});

test('a second signal during the drain exits at once with 143', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-shutdown-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A long step: the drain must still be waiting for it when the second signal comes.
  const server = await start(dir, 10_000);
  t.after(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  });
  const key = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
  await fetch(`${server.url}/api/workflows/slow/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: '{}',
  });
  await until(
    () => (stepsLog(dir).includes('long:start') ? true : undefined),
    'the long step to start',
    10_000,
  );
  server.child.kill('SIGTERM');
  await until(
    () => (server.output().includes('"shutdown":"draining"') ? true : undefined),
    'the drain',
    2_000,
  );
  // Sooner, it would be taken for the first signal passed on by a parent (see ECHO_MS in start.ts).
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(server.child.exitCode, null);
  server.child.kill('SIGTERM');
  assert.deepEqual(await server.exited, { code: 143, signal: null });
  assert.match(server.output(), /second signal \(SIGTERM\); exiting at once/);
  assert.ok(!stepsLog(dir).includes('long:end'));
});
