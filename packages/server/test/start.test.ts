// startServer as `bulwark start` uses it: the built-in examples on a fresh data directory, the
// admin key created once (0600) and printed once, the refusal to listen beyond loopback without
// keys, and a configuration file (its server section, and reload).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { defineWorkflow } from '@bulwark/workflow';
import pg from 'pg';
import { SettingsError } from '../src/http/settings.ts';
import { type StartedServer, startServer, withoutPassword } from '../src/start.ts';

/**
 * A loaded test machine stalls the event loop now and then; the load shedder would then refuse the
 * requests these tests make, which is not what they test.
 */
const QUIET_LAG = { BULWARK_SERVER__LOADSHEDDING__MAXEVENTLOOPDELAY: '10s' };

const PG_URL = process.env.BULWARK_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Collects what the server prints (banner and JSON log). */
function capture(): { write(text: string): void; text(): string } {
  let text = '';
  return { write: (chunk) => void (text += chunk), text: () => text };
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function getJson<T>(
  server: StartedServer,
  path: string,
  key: string,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: response.status, body: (await response.json()) as T };
}

describe('startServer with the built-in defaults', () => {
  test('serves the examples on loopback, creates the admin key 0600 and prints it only the first time', async (t) => {
    const dir = tempDir(t);
    const out = capture();
    const server = await startServer({ port: 0, dataDir: join(dir, 'data'), env: QUIET_LAG, stdout: out });
    let closed = false;
    t.after(() => (closed ? undefined : server.close()));

    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.settings.host, '127.0.0.1');
    const live = await fetch(`${server.url}/health/live`);
    assert.equal(live.status, 200);

    const keyFile = join(dir, 'data', 'admin.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'data')).mode & 0o777, 0o700);
    assert.ok(existsSync(join(dir, 'data', 'bulwark.db')));
    const key = server.settings.apiKeys[0]?.secret ?? '';
    assert.ok(key.length >= 24);
    // Once in the banner's key line and once in the login URL: nowhere else, never in the log.
    assert.equal(out.text().split(key).length - 1, 2, out.text());
    assert.match(out.text(), new RegExp(`dashboard: +http://127\\.0\\.0\\.1:\\d+/#key=${key}`));
    assert.match(out.text(), /dependencies: 4, workflows: 3 \(built-in examples/);

    const workflows = await getJson<{ items: { name: string; steps: string[] | null; example?: unknown }[] }>(
      server,
      '/api/workflows',
      key,
    );
    assert.equal(workflows.status, 200);
    assert.deepEqual(
      workflows.body.items.map((w) => [w.name, w.steps]),
      [
        ['adopt-pet', ['reserve', 'charge', 'confirm']],
        ['nightly-report', ['sales', 'sleep:settle', 'inventory', 'publish']],
        ['site-to-document', ['source', 'fetch', 'page', 'document', 'store']],
      ],
    );
    // Each declares an example input; site-to-document's names the example upstream's own page.
    const [adopt, nightly, site] = workflows.body.items.map((w) => w.example);
    assert.deepEqual(adopt, { pet: 'luna', adopter: 'Ada Lovelace' });
    assert.deepEqual(nightly, { settleMs: 1_500 });
    assert.match(
      (site as { url?: string } | undefined)?.url ?? '',
      /^http:\/\/127\.0\.0\.1:\d+\/pages\/adoption-guide$/,
    );
    const deps = await getJson<{ items: { name: string }[] }>(server, '/api/dependencies', key);
    assert.deepEqual(deps.body.items.map((d) => d.name).sort(), [
      'notifications',
      'payments',
      'petstore',
      'web',
    ]);
    assert.equal((await fetch(`${server.url}/api/workflows`)).status, 401);

    await server.close();
    closed = true;
    await assert.rejects(fetch(`${server.url}/health/live`));

    const again = capture();
    const second = await startServer({ port: 0, dataDir: join(dir, 'data'), env: QUIET_LAG, stdout: again });
    t.after(() => second.close());
    assert.equal(second.settings.apiKeys[0]?.secret, key);
    assert.ok(!again.text().includes(key), again.text());
    assert.match(again.text(), /admin key: +in .*admin\.key/);
  });

  test('an adopt-pet run started with its declared example goes through the example pet shop to completion', async (t) => {
    const dir = tempDir(t);
    const server = await startServer({ port: 0, dataDir: dir, env: QUIET_LAG, stdout: capture() });
    t.after(() => server.close());
    const key = server.settings.apiKeys[0]!.secret;
    const workflow = await getJson<{ example?: unknown }>(server, '/api/workflows/adopt-pet', key);
    assert.equal(workflow.status, 200);
    assert.deepEqual(workflow.body.example, { pet: 'luna', adopter: 'Ada Lovelace' });
    const started = await fetch(`${server.url}/api/workflows/adopt-pet/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: workflow.body.example }),
    });
    assert.equal(started.status, 201);
    const { id } = (await started.json()) as { id: string };
    const deadline = Date.now() + 15_000;
    let run: { status: string; output: { pet: string; charge: string } | null } | undefined;
    while (Date.now() < deadline) {
      run = (await getJson<typeof run>(server, `/api/runs/${id}`, key)).body;
      if (run?.status === 'completed' || run?.status === 'failed' || run?.status === 'compensated') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(run?.status, 'completed', JSON.stringify(run));
    assert.equal(run?.output?.pet, 'luna');
    assert.match(run?.output?.charge ?? '', /^ch-/);
  });

  test('refuses a non-loopback address without keys, naming BULWARK_API_KEYS, before creating anything', async (t) => {
    const dir = tempDir(t);
    await assert.rejects(
      startServer({ host: '0.0.0.0', port: 0, dataDir: join(dir, 'data'), env: {}, stdout: capture() }),
      (error: unknown) => {
        assert.ok(error instanceof SettingsError);
        assert.equal(error.code, 'INVALID_SETTING');
        assert.match(
          error.message,
          /^server\.host: refusing to listen on 0\.0\.0\.0 without API keys.*BULWARK_API_KEYS/,
        );
        return true;
      },
    );
    assert.ok(!existsSync(join(dir, 'data')));
  });

  test('with BULWARK_API_KEYS no admin key is generated and the configured keys are the ones accepted', async (t) => {
    const dir = tempDir(t);
    const secret = 'ops-secret-0123456789abcdefgh';
    const out = capture();
    const server = await startServer({
      port: 0,
      dataDir: dir,
      examples: false,
      env: { ...QUIET_LAG, BULWARK_API_KEYS: `ops:operator:${secret}` },
      stdout: out,
    });
    t.after(() => server.close());
    assert.ok(!existsSync(join(dir, 'admin.key')));
    assert.doesNotMatch(out.text(), /admin key/);
    assert.match(out.text(), /dependencies: 0, workflows: 0/);
    assert.equal((await getJson(server, '/api/workflows', secret)).status, 200);
  });
});

describe('startServer with a configuration file', () => {
  test('reads its server section (data directory relative to the file) and reloads its dependencies', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'bulwark.yaml');
    const text = (extra: string) =>
      `server:\n  port: 0\n  dataDir: state\n  logLevel: silent\n  shutdownGrace: 2s\ndependencies:\n  db: { kind: database }\n${extra}`;
    writeFileSync(file, text(''));
    const out = capture();
    // Not watched: the reload below is the only one, whatever the machine's speed.
    const server = await startServer({ config: file, watch: false, env: QUIET_LAG, stdout: out });
    t.after(() => server.close());
    assert.equal(server.settings.dataDir, join(dir, 'state'));
    assert.equal(server.settings.shutdownGraceMs, 2_000);
    assert.ok(existsSync(join(dir, 'state', 'admin.key')));
    assert.match(out.text(), /dependencies: 1, workflows: 0/);
    // Nothing but the banner: the log level is silent.
    assert.equal(
      out
        .text()
        .split('\n')
        .filter((l) => l.startsWith('{')).length,
      0,
    );

    writeFileSync(file, text('  cache: { kind: cache }\n'));
    const reload = server.server.context.reload;
    assert.ok(reload !== undefined);
    assert.deepEqual(await reload(), {
      added: ['cache'],
      changed: [],
      removed: [],
      workflows: { added: [], changed: [], removed: [] },
    });
    assert.deepEqual(server.server.context.registry.names.sort(), ['cache', 'db']);
  });

  test('the file’s schedules start their workflow on each tick; a reload replaces them; an unknown workflow is refused by path', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'bulwark.yaml');
    // Every second: a real clock, so the test waits for ticks (a few seconds at most).
    const workflow = (name: string) =>
      `  ${name}:\n    steps:\n      say: { uses: transform, value: "pong" }\n    output: "{{ steps.say }}"\n`;
    const text = (schedules: string, workflows = workflow('ping')) =>
      `server:\n  port: 0\n  dataDir: state\n  logLevel: silent\ndependencies: {}\nworkflows:\n${workflows}${schedules}`;
    writeFileSync(
      file,
      text('schedules:\n  pinger: { cron: "* * * * * *", workflow: ping, catchUp: none, priority: high }\n'),
    );
    const server = await startServer({ config: file, watch: false, env: QUIET_LAG, stdout: capture() });
    t.after(() => server.close());
    const key = server.settings.apiKeys[0]?.secret ?? '';
    const scheduled = async (name: string) => {
      const { body } = await getJson<{
        items: { idempotencyKey?: string; status: string; priority: string }[];
      }>(server, '/api/runs?limit=100', key);
      return body.items.filter((r) => r.idempotencyKey?.startsWith(`schedule:${name}:`));
    };
    const until = async (check: () => Promise<boolean>, what: string) => {
      for (let i = 0; i < 100; i++) {
        if (await check()) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.fail(`timed out waiting for ${what}`);
    };
    await until(async () => (await scheduled('pinger')).some((r) => r.status === 'completed'), 'a tick');
    assert.equal((await scheduled('pinger'))[0]?.priority, 'high');
    const { status, body } = await getJson<{ items: Record<string, unknown>[] }>(
      server,
      '/api/schedules',
      key,
    );
    assert.equal(status, 200);
    const [view] = body.items;
    assert.deepEqual(
      { ...view, next: undefined, lastTick: undefined },
      {
        name: 'pinger',
        cron: '* * * * * *',
        timezone: 'UTC',
        workflow: 'ping',
        priority: 'high',
        catchUp: 'none',
        next: undefined,
        lastTick: undefined,
      },
    );
    // The next tick within the next second; the last one a whole second, not in the future.
    const now = Date.now();
    assert.ok(
      (view!.next as number) > now - 1_000 && (view!.next as number) <= now + 1_000,
      String(view!.next),
    );
    assert.ok(
      (view!.lastTick as number) % 1_000 === 0 && (view!.lastTick as number) <= now,
      String(view!.lastTick),
    );

    // Replaced on reload by a schedule of a workflow the same reload adds: the first starts no
    // more runs.
    writeFileSync(
      file,
      text(
        'schedules:\n  other: { cron: "* * * * * *", workflow: ping2, catchUp: none }\n',
        workflow('ping') + workflow('ping2'),
      ),
    );
    const reload = server.server.context.reload;
    assert.ok(reload !== undefined);
    await reload();
    await until(async () => (await scheduled('other')).length > 0, 'a tick of the new schedule');
    const before = (await scheduled('pinger')).length;
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    assert.equal((await scheduled('pinger')).length, before, 'the removed schedule started no more runs');

    // A workflow the server does not have: the start fails, naming the schedule's field.
    const wrong = join(dir, 'wrong.yaml');
    writeFileSync(
      wrong,
      text('schedules:\n  lost: { cron: "@daily", workflow: pnig }\n').replace(
        'dataDir: state',
        'dataDir: wrong',
      ),
    );
    await assert.rejects(
      startServer({ config: wrong, watch: false, env: QUIET_LAG, stdout: capture() }),
      /schedules\.lost\.workflow: no workflow 'pnig' is registered \(registered: .*ping/,
    );
  });

  test('a reload registers the file’s workflows: added ones start at once, changed ones run their new steps, removed ones stay', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'bulwark.yaml');
    const workflow = (name: string, value: string, version?: string) =>
      `  ${name}:\n${version ? `    version: "${version}"\n` : ''}    steps:\n      say: { uses: transform, value: "${value}" }\n    output: "{{ steps.say }}"\n`;
    const text = (workflows: string) =>
      `server:\n  port: 0\n  dataDir: state\n  logLevel: silent\ndependencies: {}\nworkflows:\n${workflows}`;
    writeFileSync(file, text(workflow('greet', 'hello') + workflow('old', 'bye')));
    const server = await startServer({ config: file, watch: false, env: QUIET_LAG, stdout: capture() });
    t.after(() => server.close());
    const key = server.settings.apiKeys[0]?.secret ?? '';
    /** Starts a run of `name` and waits for its output. */
    const run = async (name: string): Promise<{ status: number; output?: unknown; version?: string }> => {
      const started = await fetch(`${server.url}/api/workflows/${name}/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input: null }),
      });
      if (started.status !== 201) return { status: started.status };
      const { id } = (await started.json()) as { id: string };
      for (let i = 0; i < 200; i++) {
        const { body } = await getJson<{ status: string; output?: unknown; version: string }>(
          server,
          `/api/runs/${id}`,
          key,
        );
        if (body.status === 'completed') return { status: 201, output: body.output, version: body.version };
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.fail(`run ${id} of ${name} did not complete`);
    };
    assert.deepEqual(await run('greet'), { status: 201, output: 'hello', version: '1' });
    assert.equal((await run('fresh')).status, 404);

    writeFileSync(file, text(workflow('greet', 'hello again', '2') + workflow('fresh', 'new')));
    const reload = server.server.context.reload;
    assert.ok(reload !== undefined);
    assert.deepEqual((await reload()).workflows, { added: ['fresh'], changed: ['greet'], removed: ['old'] });
    assert.deepEqual(await run('greet'), { status: 201, output: 'hello again', version: '2' });
    assert.deepEqual(await run('fresh'), { status: 201, output: 'new', version: '1' });
    // Removed from the file, kept until the next start: its runs can still finish.
    assert.deepEqual(await run('old'), { status: 201, output: 'bye', version: '1' });
    const { body } = await getJson<{ items: { name: string; versions: string[] }[] }>(
      server,
      '/api/workflows',
      key,
    );
    assert.deepEqual(
      body.items.find((w) => w.name === 'greet')?.versions,
      ['1', '2'],
      'runs of the first version can still finish',
    );

    // Back to the first version: new runs take it again.
    writeFileSync(file, text(workflow('greet', 'hello') + workflow('fresh', 'new')));
    assert.deepEqual((await reload()).workflows, { added: [], changed: ['greet'], removed: [] });
    assert.deepEqual(await run('greet'), { status: 201, output: 'hello', version: '1' });

    // A new storage directory changes every workflow, though no declaration did.
    writeFileSync(
      file,
      `storage:\n  dir: elsewhere\n${text(workflow('greet', 'hello') + workflow('fresh', 'new'))}`,
    );
    assert.deepEqual((await reload()).workflows, { added: [], changed: ['fresh', 'greet'], removed: [] });
  });

  test('an edit of the file reloads its workflows without a call', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'bulwark.yaml');
    const text = (workflows: string) =>
      `server:\n  port: 0\n  dataDir: state\n  logLevel: silent\ndependencies: {}\nworkflows:\n${workflows}`;
    const say = (name: string) => `  ${name}:\n    steps:\n      say: { uses: transform, value: hi }\n`;
    writeFileSync(file, text(say('first')));
    const server = await startServer({ config: file, env: QUIET_LAG, stdout: capture() });
    t.after(() => server.close());
    const names = () => server.server.context.engine.definitions().map((w) => w.name);
    assert.deepEqual(names(), ['first']);
    writeFileSync(file, text(say('first') + say('second')));
    const deadline = performance.now() + 5_000;
    while (!names().includes('second')) {
      if (performance.now() > deadline) assert.fail('the edit was not reloaded');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Reloading the same file again changes nothing more.
    assert.deepEqual((await server.server.context.reload?.())?.workflows, {
      added: [],
      changed: [],
      removed: [],
    });
  });

  test('a file that does not validate fails the start with every issue, and nothing is left listening', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'server:\n  port: eighty\n');
    await assert.rejects(startServer({ config: file, env: {}, stdout: capture() }), /server\.port/);
    assert.ok(!existsSync(join(dir, '.bulwark')));
  });
});

describe('startServer on PostgreSQL', async () => {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  const unavailable = await client.connect().then(
    () => client.end().then(() => undefined),
    (error: Error) => `PostgreSQL at ${PG_URL} is not reachable (${error.message}); set BULWARK_TEST_PG_URL`,
  );
  if (unavailable !== undefined && process.env.CI === 'true') {
    test('PostgreSQL is reachable (required under CI)', () => assert.fail(unavailable));
    return;
  }

  test('BULWARK_DATABASE_URL puts the store on PostgreSQL; the banner never shows a password', {
    skip: unavailable,
  }, async (t) => {
    const dir = tempDir(t);
    const out = capture();
    const server = await startServer({
      port: 0,
      dataDir: dir,
      examples: false,
      env: { ...QUIET_LAG, BULWARK_DATABASE_URL: PG_URL, BULWARK_SERVER__LOGLEVEL: 'silent' },
      stdout: out,
    });
    t.after(() => server.close());
    assert.equal(server.server.context.store.dialect, 'postgres');
    assert.match(
      out.text(),
      new RegExp(`store: +PostgreSQL ${withoutPassword(PG_URL).replaceAll('.', '\\.')}`),
    );
    assert.ok(!existsSync(join(dir, 'bulwark.db')));
    assert.equal((await fetch(`${server.url}/health/ready`)).status, 200);
  });

  test('text PostgreSQL cannot keep (U+0000, a lone surrogate) is a 400 naming the field, never a 500', {
    skip: unavailable,
  }, async (t) => {
    const key = 'admin-0123456789abcdefghijklmnop';
    const server = await startServer({
      port: 0,
      dataDir: tempDir(t),
      examples: false,
      workflows: [defineWorkflow({ name: 'greet' }, async (ctx) => ctx.step('a', () => 1))],
      env: {
        ...QUIET_LAG,
        BULWARK_DATABASE_URL: PG_URL,
        BULWARK_SERVER__LOGLEVEL: 'silent',
        BULWARK_API_KEYS: `ops:admin:${key}`,
      },
      stdout: capture(),
    });
    t.after(() => server.close());
    const ask = async (path: string, body?: string) => {
      const response = await fetch(`${server.url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body }),
      });
      return {
        status: response.status,
        problem: (await response.json()) as { errors?: { pointer: string }[] },
      };
    };
    const cases: [string, string | undefined, string][] = [
      ['/api/runs/a%00b', undefined, '#/path/id'],
      ['/api/runs?workflow=a%00', undefined, '#/query/workflow'],
      ['/api/runs?q=a%00', undefined, '#/query/q'],
      ['/api/workflows/greet/runs', '{"input":{"name":"\\ud800"}}', '#/body/input/name'],
      ['/api/workflows/greet/runs', '{"input":1,"correlationId":"a\\u0000"}', '#/body/correlationId'],
      ['/api/workflows/greet/runs', '{"input":{"a\\u0000":1}}', '#/body/input/a\u0000'],
      ['/api/runs/a%00/cancel', '{"reason":"x"}', '#/path/id'],
    ];
    for (const [path, body, pointer] of cases) {
      const { status, problem } = await ask(path, body);
      assert.equal(status, 400, `${path} ${body ?? ''}`);
      assert.equal(problem.errors?.[0]?.pointer, pointer, `${path} ${body ?? ''}`);
    }
    // A surrogate pair is one character, and a plain backslash-u in text is no escape: both kept.
    const kept = await ask(
      '/api/workflows/greet/runs',
      '{"input":{"smile":"\\ud83d\\ude00","path":"C:\\\\u0000"}}',
    );
    assert.equal(kept.status, 201);
  });
});

test('withoutPassword drops the password of a database URL and keeps the rest', () => {
  assert.equal(
    withoutPassword('postgres://bulwark:s3cret@db.internal:5432/bulwark?sslmode=require'),
    'postgres://bulwark@db.internal:5432/bulwark?sslmode=require',
  );
  assert.equal(withoutPassword('not a url s3cret'), '(unparsable URL)');
});
