import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type BulwarkConfig, ConfigError, type ConfigWatcher, watchConfig } from '@bulwark/server';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-watch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Waits for the next event the watcher reports, or fails after a bounded time. */
class Events {
  readonly list: (BulwarkConfig | Error)[] = [];
  private wake: (() => void) | undefined;
  push = (event: BulwarkConfig | Error) => {
    this.list.push(event);
    this.wake?.();
  };
  async next(timeoutMs = 5_000): Promise<BulwarkConfig | Error> {
    const deadline = Date.now() + timeoutMs;
    while (this.list.length === 0) {
      const left = deadline - Date.now();
      assert.ok(left > 0, 'the watcher reported nothing in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.list.shift()!;
  }
}

function start(file: string): { events: Events; watcher: ConfigWatcher } {
  const events = new Events();
  const watcher = watchConfig(file, { env: {}, onReload: events.push, onError: events.push, debounceMs: 50 });
  return { events, watcher };
}

describe('watchConfig', () => {
  test('reloads on SIGHUP, on a write and on a replace; an invalid file is reported and nothing else happens', async () => {
    const file = join(dir, 'bulwark.yaml');
    writeFileSync(file, 'dependencies:\n  a: { timeout: 1s }\n');
    const { events, watcher } = start(file);
    try {
      process.kill(process.pid, 'SIGHUP');
      assert.deepEqual(await events.next(), { dependencies: { a: { timeoutMs: 1_000 } }, groups: {} });

      writeFileSync(file, 'dependencies:\n  a: { timeout: 2s }\n');
      assert.deepEqual(await events.next(), { dependencies: { a: { timeoutMs: 2_000 } }, groups: {} });

      writeFileSync(file, 'dependencies:\n  a: { timeout: soon }\n');
      const error = await events.next();
      assert.ok(error instanceof ConfigError);
      assert.equal(error.issues[0]?.path, 'dependencies.a.timeout');

      // Editors write a temporary file and rename it over the original.
      writeFileSync(join(dir, 'tmp'), 'dependencies:\n  a: { timeout: 3s }\n');
      renameSync(join(dir, 'tmp'), file);
      assert.deepEqual(await events.next(), { dependencies: { a: { timeoutMs: 3_000 } }, groups: {} });
      // Debounced: one burst of changes makes one reload.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(events.list, []);
    } finally {
      watcher.close();
    }
  });

  test('close removes the SIGHUP listener and stops watching', async () => {
    const file = join(dir, 'closed.yaml');
    writeFileSync(file, 'dependencies: {}\n');
    const listeners = process.listenerCount('SIGHUP');
    const { events, watcher } = start(file);
    assert.equal(process.listenerCount('SIGHUP'), listeners + 1);
    watcher.close();
    assert.equal(process.listenerCount('SIGHUP'), listeners);
    writeFileSync(file, 'dependencies:\n  a: {}\n');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(events.list, []);
  });
});
