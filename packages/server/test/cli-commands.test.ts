// The CLI against a live server started with `bulwark start` (a real process): `run` and `runs`,
// `migrate`, `--help` on every command, and bad input as one line with exit 1. The commands run
// in-process through runCli (spawning one process per case costs seconds each); a few go through
// bin/bulwark.js to show that the process exits with the same code and output.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../src/cli/program.ts';
import { runBulwark } from './cli-support.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'bulwark.js');
const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-commands-'));
const dataDir = join(dir, 'data');
let server: ChildProcess | undefined;
let url = '';
let serverOutput = '';

/** Runs the CLI in-process; resolves with the exit code and output, never rejects. */
async function bulwark(
  args: string[],
  env: Record<string, string> = {},
  tty = false,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (text: string) => void (stdout += text), isTTY: tty },
    stderr: { write: (text: string) => void (stderr += text) },
    env,
  });
  return { code, stdout, stderr };
}

const processBulwark = (args: string[], env: Record<string, string> = {}) =>
  runBulwark(dir, args, env, 25_000);

/** The terminal escape that starts `ESC[2K` (erase the line). */
const ESC = String.fromCharCode(27);

/** The options that point a command at the test server (its key read from its data directory). */
const at = () => ['--url', url, '--data-dir', dataDir];

before(async () => {
  server = spawn(process.execPath, [bin, 'start', '--port', '0', '--data-dir', dataDir], {
    cwd: dir,
    // A loaded test machine lags; shedding would make the cases below depend on it.
    env: {
      PATH: process.env.PATH ?? '',
      BULWARK_SERVER__LOGLEVEL: 'warn',
      BULWARK_SERVER__LOADSHEDDING__MAXEVENTLOOPDELAY: '10s',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (chunk) => (serverOutput += chunk));
  server.stderr?.on('data', (chunk) => (serverOutput += chunk));
  const deadline = Date.now() + 15_000;
  while (url === '') {
    url = /listening on (http:\/\/\S+)/.exec(serverOutput)?.[1] ?? '';
    if (server.exitCode !== null) assert.fail(`bulwark start exited: ${serverOutput}`);
    if (Date.now() > deadline) assert.fail(`bulwark start did not start: ${serverOutput}`);
    await new Promise((r) => setTimeout(r, 25));
  }
});

after(async () => {
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server?.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('bulwark run and runs against a live server', { concurrency: true }, () => {
  test('run --follow draws the timeline from the stream and exits 0 when the run completes', async () => {
    const result = await bulwark([
      'run',
      'adopt-pet',
      '--input',
      '{"pet":"rex","adopter":"Ada"}',
      '--follow',
      ...at(),
    ]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.equal(result.stderr, '');
    const lines = result.stdout.trim().split('\n');
    // Running when the server's own worker took it at its start, queued when it went to the queue.
    assert.match(lines[0]!, /^run [\w-]+ started \(adopt-pet, (queued|running)\)$/);
    // Not a terminal: plain lines, one per timeline event, in order.
    const types = lines.slice(1, -1).map((l) => /%\s+(\S+)/.exec(l)?.[1]);
    assert.equal(types[0], 'run:queued');
    assert.equal(types.at(-1), 'run:completed');
    assert.ok(types.indexOf('step:completed') > 0, result.stdout);
    assert.match(result.stdout, /step:completed reserve/);
    assert.match(result.stdout, / 66% {2}run:progress {2}charged 4500 cents\n/);
    assert.match(lines.at(-1)!, /^run [\w-]+ completed in [\d.]+m?s: \{"pet":"rex","adopter":"Ada",/);
  });

  test('run --follow exits 1 when the run does not complete (a declined card is compensated)', async () => {
    const result = await bulwark([
      'run',
      'adopt-pet',
      '--input',
      '{"pet":"tom","adopter":"Bob","feeCents":250000}',
      '--follow',
      ...at(),
    ]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stdout, /compensation:completed reserve/);
    assert.match(
      result.stdout.trim().split('\n').at(-1)!,
      /^run [\w-]+ (compensated|failed) in .*card declined/,
    );
  });

  test('on a terminal, --follow keeps a progress bar on the last line and ends it at 100%', async () => {
    const result = await bulwark(
      ['run', 'nightly-report', '--input', '{"settleMs":10}', '--follow', ...at()],
      {},
      true,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`\r${ESC}\\[2K\\[-{24}\\] +0% {2}(queued|running)`));
    assert.match(result.stdout, new RegExp(`\r${ESC}\\[2K\\[#{24}\\] 100% {2}completed {2}publish\n`));
    assert.match(result.stdout, new RegExp(`\r${ESC}\\[2K[\\d:.]+ +25% {2}run:progress {2}\\d+ charges\n`));
  });

  test('run without --follow prints the run and exits 0; the idempotency key returns the same run', async () => {
    const args = [
      'run',
      'nightly-report',
      '--input',
      '{"settleMs":10}',
      '--idempotency-key',
      'report-1',
      ...at(),
    ];
    const first = await bulwark(args);
    assert.equal(first.code, 0, first.stderr);
    const id = /^run ([\w-]+) started \(nightly-report, (queued|running)\)\n$/.exec(first.stdout)?.[1];
    assert.ok(id !== undefined, first.stdout);
    const second = await bulwark([...args, '--json']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal((JSON.parse(second.stdout) as { id: string }).id, id);
  });

  test('runs lists runs as a table, filtered by workflow and status, or as JSON', async () => {
    const started = await bulwark([
      'run',
      'nightly-report',
      '--input',
      '{"settleMs":10}',
      '--priority',
      'high',
      ...at(),
    ]);
    const id = /^run ([\w-]+)/.exec(started.stdout)?.[1] ?? assert.fail(started.stderr);
    const table = await bulwark([
      'runs',
      '--workflow',
      'nightly-report',
      '--status',
      'queued,running,waiting,completed',
      ...at(),
    ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID +WORKFLOW +STATUS +PROGRESS +PRIORITY +CREATED\n/);
    assert.match(table.stdout, new RegExp(`^${id}  nightly-report  \\w+ +\\d+% +high +\\d{4}-`, 'm'));
    assert.doesNotMatch(table.stdout, /adopt-pet/);
    const json = await bulwark(['runs', '--limit', '1', '--json', ...at()]);
    assert.equal(json.code, 0, json.stderr);
    const page = JSON.parse(json.stdout) as { items: unknown[]; nextCursor: string | null };
    assert.equal(page.items.length, 1);
  });

  test('bad input is one line on stderr and exit code 1', async () => {
    // A port nothing listens on: taken, then given back.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const cases: [string[], RegExp][] = [
      [['run', 'adopt-pet', '--input', '{bad', ...at()], /^bulwark: --input is not valid JSON: /],
      [['run', 'no-such-workflow', ...at()], /^bulwark: .*no-such-workflow/],
      [['run', 'adopt-pet', '--priority', 'asap', ...at()], /^bulwark: .*'asap'.*\(see --help\)\n$/],
      [
        ['runs', '--status', 'done', ...at()],
        /^bulwark: --status: unknown status "done"; expected some of queued/,
      ],
      [['runs', '--limit', '0', ...at()], /^bulwark: --limit: expected a whole number from 1 to 500/],
      [['runs', '--url', url, '--key', 'not-a-real-key-0123456789abc'], /^bulwark: .*/],
      [
        ['runs', '--url', `http://127.0.0.1:${closedPort}`],
        new RegExp(
          `^bulwark: cannot reach the server at http://127\\.0\\.0\\.1:${closedPort} \\(connection refused\\)`,
        ),
      ],
      [['runs', '--url', 'not a url'], /^bulwark: --url: expected a URL/],
      [['start', '--port', 'eighty'], /^bulwark: .*expected a port from 0 to 65535/],
      [['frobnicate'], /^bulwark: unknown command 'frobnicate'/],
    ];
    const results = await Promise.all(cases.map(([args]) => bulwark(args)));
    for (const [i, result] of results.entries()) {
      const [args, pattern] = cases[i]!;
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern, args.join(' '));
    }
    // A refused key says why (the server's detail), still in one line.
    assert.match(results[5]!.stderr, /key/i);
  });

  test('the key comes from BULWARK_API_KEY when there is no admin.key to read', async () => {
    const key = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
    const withEnv = await bulwark(['runs', '--url', url, '--limit', '1'], { BULWARK_API_KEY: key });
    assert.equal(withEnv.code, 0, withEnv.stderr);
    const without = await bulwark(['runs', '--url', url, '--data-dir', join(dir, 'nowhere')]);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /no API key found: pass --key, set BULWARK_API_KEY/);
  });
});

describe('bulwark migrate and --help', { concurrency: true }, () => {
  test('migrate creates the SQLite store in the data directory, and a second run changes nothing', async () => {
    const target = join(dir, 'migrated');
    const first = await bulwark(['migrate', '--data-dir', target]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^SQLite .*migrated[/\\]bulwark\.db: created with the latest schema/);
    const second = await bulwark(['migrate', '--data-dir', target]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /: migrated to the latest schema/);
  });

  test('migrate with a URL that is not PostgreSQL is one line and exit 1', async () => {
    const result = await bulwark(['migrate', '--database', 'postgres://nobody@127.0.0.1:9/none']);
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^bulwark: /);
  });

  for (const command of ['start', 'validate', 'migrate', 'run', 'runs']) {
    test(`${command} --help describes the command and exits 0`, async () => {
      const result = await bulwark([command, '--help']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Usage: bulwark ${command} `));
      assert.match(result.stdout, /Options:/);
    });
  }

  test('as a process: a usage error and a bad input exit 1 with one line, --help exits 0', async () => {
    const [bad, usage, help] = await Promise.all([
      processBulwark(['run', 'adopt-pet', '--input', '{bad', ...at()]),
      processBulwark(['runs', '--bogus']),
      processBulwark(['runs', '--help']),
    ]);
    assert.deepEqual([bad.code, bad.stdout], [1, '']);
    assert.match(bad.stderr, /^bulwark: --input is not valid JSON: [^\n]+\n$/);
    assert.deepEqual([usage.code, usage.stderr], [1, "bulwark: unknown option '--bogus' (see --help)\n"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: bulwark runs \[options\]/);
  });

  test('--help lists every command', async () => {
    const result = await bulwark(['--help']);
    assert.equal(result.code, 0);
    for (const command of ['start', 'validate', 'migrate', 'run', 'runs']) {
      assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'));
    }
  });
});
