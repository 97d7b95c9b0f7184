// `file.write` and `file.delete`: everything stays inside the storage directory (no `..`, no
// absolute path, no link leading out), writes are atomic, and a refused path creates nothing.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { deleteStorageFile, writeStorageFile } from '../src/declarative/steps/file-write.ts';
import { declared } from './declarative-support.ts';

function dirs(t: { after(fn: () => void): void }): { root: string; outside: string } {
  const base = mkdtempSync(join(tmpdir(), 'bulwark-files-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'storage');
  const outside = join(base, 'outside');
  mkdirSync(outside);
  return { root, outside };
}

const refused = (code: string, message: RegExp) => (error: unknown) => {
  assert.equal((error as { code?: string }).code, code);
  assert.equal((error as { transient?: boolean }).transient, false);
  assert.match((error as Error).message, message);
  return true;
};

describe('file.write and file.delete', () => {
  test('writes under the storage directory, making directories, and reports bytes and sha256', async (t) => {
    const { root } = dirs(t);
    const written = await writeStorageFile(root, 'a/b/./c.md', 'hé');
    assert.deepEqual(written, {
      path: 'a/b/c.md',
      bytes: 3,
      sha256: createHash('sha256').update('hé').digest('hex'),
      created: true,
    });
    assert.equal(readFileSync(join(root, 'a', 'b', 'c.md'), 'utf8'), 'hé');
    const again = await writeStorageFile(root, 'a//b/c.md', 'new');
    assert.equal(again.created, false);
    assert.equal(readFileSync(join(root, 'a', 'b', 'c.md'), 'utf8'), 'new');
    // No temporary file is left behind.
    assert.deepEqual(readdirSync(join(root, 'a', 'b')), ['c.md']);
  });

  test('paths that would leave the directory are refused before anything is created', async (t) => {
    const { root, outside } = dirs(t);
    const cases: [string, RegExp][] = [
      ['../escape.txt', /holds '\.\.'/],
      ['a/../../escape.txt', /holds '\.\.'/],
      ['/etc/passwd', /is absolute/],
      ['C:/x', /is absolute/],
      ['a\\..\\x', /holds '\\'/],
      ['', /is empty/],
      ['./.', /names the storage directory itself/],
      ['a\0b', /NUL/],
    ];
    for (const [path, message] of cases) {
      await assert.rejects(
        writeStorageFile(root, path, 'x'),
        refused('BULWARK_STEP_PATH_ESCAPE', message),
        path,
      );
      await assert.rejects(deleteStorageFile(root, path), refused('BULWARK_STEP_PATH_ESCAPE', message), path);
    }
    assert.deepEqual(readdirSync(outside), []);
    assert.ok(!existsSync(join(root, '..', 'escape.txt')));
  });

  test('a link to a directory outside is refused; a link inside is followed', async (t) => {
    const { root, outside } = dirs(t);
    mkdirSync(join(root, 'real'), { recursive: true });
    symlinkSync(outside, join(root, 'out'));
    symlinkSync(join(root, 'real'), join(root, 'in'));
    symlinkSync(join(root, 'nowhere'), join(root, 'dangling'));
    await assert.rejects(
      writeStorageFile(root, 'out/x.txt', 'x'),
      refused('BULWARK_STEP_PATH_ESCAPE', /leads out of the storage directory through the link 'out'/),
    );
    await assert.rejects(
      writeStorageFile(root, 'out/deeper/x.txt', 'x'),
      refused('BULWARK_STEP_PATH_ESCAPE', /'out'/),
    );
    await assert.rejects(
      writeStorageFile(root, 'dangling/x.txt', 'x'),
      refused('BULWARK_STEP_PATH_ESCAPE', /'dangling'/),
    );
    writeFileSync(join(outside, 'keep.txt'), 'keep');
    await assert.rejects(
      deleteStorageFile(root, 'out/keep.txt'),
      refused('BULWARK_STEP_PATH_ESCAPE', /'out'/),
    );
    assert.deepEqual(readdirSync(outside), ['keep.txt']);

    assert.equal((await writeStorageFile(root, 'in/ok.txt', 'ok')).path, 'in/ok.txt');
    assert.equal(readFileSync(join(root, 'real', 'ok.txt'), 'utf8'), 'ok');
  });

  test('a link or a directory in the place of the file is not written through', async (t) => {
    const { root, outside } = dirs(t);
    mkdirSync(join(root, 'dir'), { recursive: true });
    writeFileSync(join(outside, 'target.txt'), 'untouched');
    symlinkSync(join(outside, 'target.txt'), join(root, 'link.txt'));
    await assert.rejects(
      writeStorageFile(root, 'link.txt', 'x'),
      refused('BULWARK_STEP_NOT_A_FILE', /a symbolic link/),
    );
    await assert.rejects(
      writeStorageFile(root, 'dir', 'x'),
      refused('BULWARK_STEP_NOT_A_FILE', /a directory/),
    );
    await assert.rejects(
      deleteStorageFile(root, 'dir'),
      refused('BULWARK_STEP_NOT_A_FILE', /is a directory/),
    );
    assert.equal(readFileSync(join(outside, 'target.txt'), 'utf8'), 'untouched');
    // Deleting the link removes the link, never its target.
    assert.deepEqual(await deleteStorageFile(root, 'link.txt'), { path: 'link.txt', deleted: true });
    assert.equal(readFileSync(join(outside, 'target.txt'), 'utf8'), 'untouched');
  });

  test('deleting a file that is not there is not an error', async (t) => {
    const { root } = dirs(t);
    assert.deepEqual(await deleteStorageFile(root, 'no/such/file'), { path: 'no/such/file', deleted: false });
    assert.ok(!existsSync(join(root, 'no')));
  });

  test('in a workflow, a templated path that escapes fails the step at once, without retries', async (t) => {
    const wf = await declared(`workflows:
  w:
    steps:
      save: { uses: file.write, path: "{{ input.name }}.md", content: x }
`);
    t.after(() => wf.close());
    const run = await wf.run('w', { name: '../../etc/cron.d/evil' });
    assert.equal(run.status, 'failed');
    assert.equal(run.error?.code, 'BULWARK_STEP_PATH_ESCAPE');
    const failed = (await wf.timeline(run.id)).find((e) => e.type === 'step:failed');
    assert.equal((failed?.data as { attempts?: number } | undefined)?.attempts, 1);
  });
});
