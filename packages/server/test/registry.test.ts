// The config file and the registry together: what a service does at start and on reload, and
// the petstore example that ships with the repository.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { DependencyRegistry } from '@bulwark/core';
import { loadConfig, openRegistry } from '@bulwark/server';

const repoRoot = join(import.meta.dirname, '..', '..', '..');
const petstore = join(repoRoot, 'examples', 'petstore', 'bulwark.yaml');
const env = { PAYMENT_GATEWAY_URL: 'http://127.0.0.1:9', PAYMENT_GATEWAY_TOKEN: 'secret-token' };

/** Waits for `check` to hold, polling; reloads are real file events, so they take real time. */
async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('config and registry', () => {
  test('the petstore file builds a registry with its five dependencies', async () => {
    const config = await loadConfig(petstore, { env });
    const registry = new DependencyRegistry(config);
    try {
      assert.deepEqual(registry.names, [
        'petstore_database',
        'payment_gateway',
        'redis_cache',
        'event_queue',
        'ml_advisor',
      ]);
      assert.equal(registry.stats('payment_gateway').state, 'closed');
      assert.equal(registry.stats('petstore_database').bulkhead?.maxConcurrent, 10);
    } finally {
      await registry.close();
    }
  });

  test('a reload keeps the breaker state of unchanged dependencies and rejects an invalid file', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-reload-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'bulwark.yaml');
    const version = (dbTimeout: string) => `dependencies:
  payments:
    kind: http
    retry: false
    breaker: { window: { kind: consecutive, failures: 1 }, open: 1m }
  db:
    kind: database
    timeout: ${dbTimeout}
`;
    writeFileSync(file, version('10s'));
    const reloads: string[][] = [];
    const errors: Error[] = [];
    const opened = await openRegistry(file, {
      watch: true,
      onReload: (result) => reloads.push(result.changed as string[]),
      onError: (error) => errors.push(error),
    });
    t.after(() => opened.close());
    const { registry } = opened;
    await assert.rejects(
      registry.execute('payments', 'charge', () =>
        Promise.reject(Object.assign(new Error('down'), { status: 503 })),
      ),
    );
    assert.equal(registry.stats('payments').state, 'open');

    writeFileSync(file, version('2s'));
    await until(() => reloads.length === 1, `the reload (${errors.map((e) => e.message).join('; ')})`);
    assert.deepEqual(reloads, [['db']]);
    assert.equal(registry.stats('payments').state, 'open', 'the unchanged dependency kept its open circuit');
    assert.equal(registry.stats('payments').calls.failures, 1);

    writeFileSync(file, `${version('2s')}    bulkhed: { maxConcurrent: 3 }\n`);
    process.kill(process.pid, 'SIGHUP');
    await until(() => errors.length === 1, 'the refused reload');
    assert.match(errors[0]!.message, /bulkhed.*did you mean 'bulkhead'/);
    assert.deepEqual(registry.names, ['payments', 'db']);
    assert.equal(registry.stats('payments').state, 'open');
    assert.equal(reloads.length, 1);
  });

  test('reload() puts the file in effect now, one reload at a time with the watch, and refuses an invalid file', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-reload-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'bulwark.yaml');
    const version = (timeout: string) =>
      `dependencies:\n  db:\n    kind: database\n    timeout: ${timeout}\n`;
    writeFileSync(file, version('10s'));
    const reloads: string[][] = [];
    const opened = await openRegistry(file, { watch: true, onReload: (r) => reloads.push([...r.changed]) });
    t.after(() => opened.close());
    const first = opened.config;

    writeFileSync(file, version('2s'));
    // The watch sees the edit too; whichever goes first, the other finds nothing left to change.
    const { result, config } = await opened.reload();
    assert.deepEqual(result.changed, ['db']);
    assert.deepEqual(opened.config, config, 'the configuration in effect is the one reloaded');
    assert.notEqual(opened.config, first);
    assert.equal(config.dependencies.db?.timeoutMs, 2_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(
      reloads.filter((changed) => changed.length > 0),
      [],
      'the watch found the file already in effect',
    );

    writeFileSync(file, `${version('3s')}    bulkhed: { maxConcurrent: 3 }\n`);
    await assert.rejects(opened.reload(), /bulkhed.*did you mean 'bulkhead'/);
    assert.deepEqual(opened.config, config, 'the running configuration stays');
    assert.equal(
      (await opened.registry.execute('db', 'q', async () => 1)) as number,
      1,
      'and the registry still serves',
    );
  });

  test('the petstore example reproduces its demo', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@bulwark/source', '--import', 'tsx', join(repoRoot, 'examples', 'petstore', 'run.ts')],
      { cwd: repoRoot, timeout: 60_000, encoding: 'utf8' },
    );
    assert.match(stdout, /10 succeeded, 5 rejected by the bulkhead/);
    assert.match(stdout, /5000 #1 failed: .*-> circuit closed/);
    assert.match(stdout, /5000 #3 failed: .*-> circuit open/);
    assert.match(stdout, /charge of 80: refused at once.*requests that reached the gateway: 0/);
    assert.match(stdout, /payment_gateway:errorRate\s+warn/);
    assert.match(stdout, /Health: warn/);
    assert.doesNotMatch(stdout, /demo-token/);
  });
});
