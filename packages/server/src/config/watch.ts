// Reloads a configuration on SIGHUP and when its file changes; a file that does not validate is
// reported and otherwise ignored, so the running configuration stays as it was.
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { type Clock, systemClock, type TimerHandle } from '@bulwark/core';
import type { Env } from './env.ts';
import type { ConfigError } from './errors.ts';
import { type BulwarkConfig, loadConfig } from './load.ts';

export interface WatchConfigOptions {
  /** @default process.env */
  env?: Env;
  /** A new, valid configuration (wire it to `registry.configure`). */
  onReload(config: BulwarkConfig): void | Promise<void>;
  /** A reload failed: a ConfigError for an invalid file (the running configuration stays), or what `onReload` threw. */
  onError(error: ConfigError | Error): void;
  /** Changes closer together than this make one reload: editors write a file in several steps. @default 100 */
  debounceMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

export interface ConfigWatcher {
  /** Stops watching: removes the SIGHUP listener and the file watcher. */
  close(): void;
}

/** Watches `file` (its directory, since editors replace files rather than write them) and listens for SIGHUP. */
export function watchConfig(file: string, options: WatchConfigOptions): ConfigWatcher {
  const path = resolve(file);
  const name = basename(path);
  const clock = options.clock ?? systemClock;
  const debounceMs = options.debounceMs ?? 100;
  let timer: TimerHandle | undefined;
  let running = false;
  let again = false;
  let closed = false;
  // A change event with the same text (a touch, a save without edits) is no reason to rebuild anything.
  // Read now, synchronously: read later, it could already hold a change made since, which would
  // then be taken for the text already loaded and skipped.
  let lastText: string | undefined;
  try {
    lastText = readFileSync(path, 'utf8');
  } catch {
    lastText = undefined;
  }

  const reload = async (force: boolean): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const text = await readFile(path, 'utf8').catch(() => undefined);
      if (!force && text !== undefined && text === lastText) return;
      lastText = text;
      let config: BulwarkConfig;
      try {
        config = await loadConfig(file, { env: options.env });
      } catch (error) {
        if (!closed) options.onError(error as ConfigError);
        return;
      }
      if (!closed) await options.onReload(config);
    } catch (error) {
      if (!closed) options.onError(error as Error);
    } finally {
      running = false;
      if (again && !closed) {
        again = false;
        void reload(force);
      }
    }
  };

  const schedule = (force: boolean) => {
    if (closed) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = clock.setTimeout(() => {
      timer = undefined;
      void reload(force);
    }, debounceMs);
  };

  const onSighup = () => schedule(true);
  process.on('SIGHUP', onSighup);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), (_event, changed) => {
      // Some platforms do not name the file; then any change in the directory may be ours.
      if (changed === null || changed === name) schedule(false);
    });
    watcher.on('error', (error) => options.onError(error));
  } catch (error) {
    process.off('SIGHUP', onSighup);
    throw error;
  }

  return {
    close() {
      if (closed) return;
      closed = true;
      process.off('SIGHUP', onSighup);
      watcher?.close();
      if (timer !== undefined) clock.clearTimeout(timer);
    },
  };
}
