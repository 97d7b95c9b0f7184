// Runs every ```ts example of the README files and docs/ as its own process, and type-checks
// them all, so that the documentation cannot describe an API that does not exist. A block
// opened with ```ts no-run is type-checked but not run (for snippets that only show types).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot, runTypeScript } from './support.ts';

// Inside the repository, so that `@bulwark/core` resolves through the workspace link.
const outDir = join(repoRoot, 'test-output', 'doc-examples');
const run = promisify(execFile);
/** Each example must finish well within this; the slowest take a fraction of a second. */
const EXAMPLE_TIMEOUT_MS = 20_000;

interface Example {
  source: string;
  line: number;
  file: string;
  runnable: boolean;
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(repoRoot, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(repoRoot, 'docs', f));
  const packages = readdirSync(join(repoRoot, 'packages'))
    .map((p) => join(repoRoot, 'packages', p, 'README.md'))
    .filter((f) => existsSync(f))
    .sort();
  return [join(repoRoot, 'README.md'), ...packages, ...docs.sort()];
}

function extract(path: string): Example[] {
  const source = relative(repoRoot, path);
  const lines = readFileSync(path, 'utf8').split('\n');
  const examples: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```ts(?:\s+(no-run))?\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    assert.ok(end < lines.length, `${source}:${i + 1}: unclosed code block`);
    const name = `${source.replace(/[^A-Za-z0-9]+/g, '-')}-L${i + 1}.ts`;
    const file = join(outDir, name);
    // `export {}` keeps an example without imports a module, so examples never share globals.
    writeFileSync(file, `${lines.slice(start, end).join('\n')}\nexport {};\n`);
    examples.push({ source, line: i + 1, file, runnable: open[1] === undefined });
    i = end;
  }
  return examples;
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const examples = markdownFiles().flatMap(extract);
writeFileSync(
  join(outDir, 'tsconfig.json'),
  JSON.stringify({
    extends: '../../tsconfig.base.json',
    compilerOptions: { noEmit: true },
    include: ['*.ts'],
  }),
);

describe('documentation examples', { concurrency: Math.max(2, availableParallelism()) }, () => {
  test('there are examples to run', () => {
    assert.ok(examples.filter((e) => e.runnable).length >= 20, 'expected the docs to hold examples');
  });

  test('every example type-checks', async () => {
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      await run(process.execPath, [tsc, '-p', join(outDir, 'tsconfig.json')], { cwd: repoRoot });
    } catch (error) {
      const { stdout = '' } = error as { stdout?: string };
      // Point at the markdown line rather than at the generated file.
      const located = stdout.replace(/[\w-]+-L(\d+)\.ts\((\d+),(\d+)\)/g, (match, open, line) => {
        const example = examples.find((e) => e.file.endsWith(match.slice(0, match.indexOf('('))));
        return example ? `${example.source}:${Number(open) + Number(line)}` : match;
      });
      assert.fail(`doc examples do not type-check:\n${located}`);
    }
  });

  for (const example of examples) {
    if (!example.runnable) continue;
    test(`${example.source}:${example.line} runs`, async () => {
      try {
        await runTypeScript(example.file, [], { timeout: EXAMPLE_TIMEOUT_MS });
      } catch (error) {
        const {
          stdout = '',
          stderr = '',
          killed,
        } = error as { stdout?: string; stderr?: string; killed?: boolean };
        assert.fail(
          `${example.source}:${example.line} ${killed ? `did not finish within ${EXAMPLE_TIMEOUT_MS} ms` : 'failed'}` +
            ` (${relative(repoRoot, example.file)})\n${stdout}${stderr}`,
        );
      }
    });
  }
});
