// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${NAME}` is the config file's own syntax, written literally here.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FINAL_STATUSES, RUN_STATUSES } from '@bulwark/workflow';
import { FINAL_STATUSES as CLI_FINAL, RUN_STATUSES as CLI_STATUSES } from '../src/cli/statuses.ts';
import { runBulwark } from './cli-support.ts';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const bulwark = (args: string[], env: Record<string, string> = {}) => runBulwark(dir, args, env);

function file(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return name;
}

const SECRET = 'sk-live-0123456789abcdef';
const VALID = `dependencies:
  payment_gateway: { kind: http, critical: true, http: { auth: { type: bearer, token: "\${TOKEN}" } } }
  petstore_database: { kind: database, critical: true }
  cache: { kind: cache }
  anthropic: { kind: http }
  openai: { kind: http }
groups:
  ai: { providers: [anthropic, openai] }
`;

describe('bulwark validate', { concurrency: true }, () => {
  test('prints a summary and exits 0 for a valid file, without printing any secret', async () => {
    const result = await bulwark(['validate', file('valid.yaml', VALID)], { TOKEN: SECRET });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'valid.yaml is valid: 5 dependencies (2 critical), 1 group\n');
    assert.ok(!`${result.stdout}${result.stderr}`.includes(SECRET));
  });

  test('prints every issue with file:line:col and exits 1 for an invalid file, secrets hidden', async () => {
    const text = VALID.replace('kind: cache', 'kind: cash, timeout: "${TOKEN}"');
    const result = await bulwark(['validate', file('invalid.yaml', text)], { TOKEN: SECRET });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.ok(!result.stderr.includes(SECRET), result.stderr);
    assert.match(
      result.stderr,
      /^invalid\.yaml:4:18 {2}dependencies\.cache\.kind: .*did you mean 'cache'\?$/m,
    );
    assert.match(result.stderr, /^invalid\.yaml:4:33 {2}dependencies\.cache\.timeout: .*got "\$\{TOKEN\}"$/m);
  });

  test('--json prints the issues as JSON', async () => {
    const result = await bulwark([
      'validate',
      '--json',
      file('json.yaml', 'dependencies:\n  a: { timeout: fast }\n'),
    ]);
    assert.equal(result.code, 1);
    assert.deepEqual(JSON.parse(result.stdout), {
      valid: false,
      file: 'json.yaml',
      issues: [
        {
          path: 'dependencies.a.timeout',
          line: 2,
          column: 17,
          source: 'json.yaml',
          message: 'expected a duration like 200ms, 1.5s or 2m, got "fast"',
        },
      ],
    });
  });

  test('a file that does not exist exits 1 and says so', async () => {
    const result = await bulwark(['validate', 'missing.yaml']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /missing\.yaml {2}\(top level\): cannot read the file: file not found/);
  });

  test('--help lists the commands and --version prints the version', async () => {
    const help = await bulwark(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /validate \[options\] <file>/);
    const version = await bulwark(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test('a missing argument is a usage error', async () => {
    const result = await bulwark(['validate']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /missing required argument 'file'/);
  });
});

test("the CLI's own copy of the run statuses (kept to avoid loading the engine) equals the workflow package's", () => {
  assert.deepEqual([...CLI_STATUSES], [...RUN_STATUSES]);
  assert.deepEqual([...CLI_FINAL], [...FINAL_STATUSES]);
});
