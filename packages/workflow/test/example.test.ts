// The example workflow in examples/workflows runs, and tells the story it promises.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const repoRoot = join(import.meta.dirname, '..', '..', '..');

test('examples/workflows/adoption.ts: one adoption completes, one is compensated', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--conditions=@bulwark/source',
      '--import',
      'tsx',
      join(repoRoot, 'examples', 'workflows', 'adoption.ts'),
    ],
    { cwd: repoRoot, timeout: 60_000, encoding: 'utf8' },
  );
  assert.match(stdout, /25%\s+run:progress/);
  assert.match(stdout, /run:waiting wait:shelter-approval|run:waiting event:shelter-approval/);
  assert.match(stdout, /100%\s+run:completed/);
  assert.match(stdout, /adopted: \{"pet":"rex","adopter":"Ada","hold":"hold-rex","charge":"ch-/);
  assert.match(stdout, /compensation: refunded ch-[\s\S]*compensation: released hold-tom/);
  assert.match(stdout, /final state: compensated/);
  const rex = stdout.slice(stdout.indexOf('1. Rex'), stdout.indexOf('2. Tom'));
  assert.equal(rex.match(/run:progress/g)?.length, 2, 'progress reported during a replay is not repeated');
});
