// Opens a dependency registry from a config file and keeps it in step with the file: a reload
// (SIGHUP or a change) rebuilds what changed and keeps the state of the rest.
import { type Clock, DependencyRegistry, type ReloadResult } from '@bulwark/core';
import type { Env } from './config/env.ts';
import { type BulwarkConfig, loadConfig } from './config/load.ts';
import { watchConfig } from './config/watch.ts';

export interface OpenRegistryOptions {
  /** Where `${NAME}` and `BULWARK_…` overrides are read from. @default process.env */
  env?: Env;
  /** Reload on SIGHUP and when the file changes. @default false */
  watch?: boolean;
  /** @default systemClock */
  clock?: Clock;
  /** After each reload of the watch that took effect (`reload()` answers its own instead). */
  onReload?: (result: ReloadResult, config: BulwarkConfig) => void;
  /**
   * A reload was refused (the file does not validate, or the registry rejected it); the running
   * configuration stays. @default prints the error to stderr
   */
  onError?: (error: Error) => void;
}

export interface OpenedRegistry {
  readonly registry: DependencyRegistry;
  /** The configuration in effect (updated by each reload that took effect). */
  readonly config: BulwarkConfig;
  /**
   * Loads the file and puts it in effect now, whether or not it changed (what an admin's reload
   * does): the registry's changes and the configuration. Rejects with `ConfigError` if the file
   * does not validate, and the running configuration stays. Never applied between the watch's
   * load of the file and its own apply: a reload always takes effect whole, one at a time.
   */
  reload(): Promise<{ result: ReloadResult; config: BulwarkConfig }>;
  /** Stops watching and closes the registry. */
  close(): Promise<void>;
}

/** Loads `file` (throwing `ConfigError` if it does not validate) and builds its registry. */
export async function openRegistry(file: string, options: OpenRegistryOptions = {}): Promise<OpenedRegistry> {
  let config = await loadConfig(file, { env: options.env });
  const registry = new DependencyRegistry({ ...config, clock: options.clock });
  const onError =
    options.onError ??
    ((error: Error) => {
      process.stderr.write(
        `bulwark: reload of ${file} refused; the running configuration stays.\n${error.message}\n`,
      );
    });
  /** The reload in progress, if any: the next one (of the watch or `reload()`) waits for it. */
  let turn: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T> | T): Promise<T> => {
    const next = turn.then(work);
    turn = next.catch(() => {});
    return next;
  };
  const apply = (next: BulwarkConfig) => {
    const result = registry.configure(next);
    config = next;
    return { result, config: next };
  };
  const watcher = options.watch
    ? watchConfig(file, {
        env: options.env,
        onReload: (next) =>
          serially(() => {
            const { result } = apply(next);
            options.onReload?.(result, next);
          }),
        onError,
      })
    : undefined;
  return {
    registry,
    get config() {
      return config;
    },
    reload: () => serially(async () => apply(await loadConfig(file, { env: options.env }))),
    async close() {
      watcher?.close();
      await registry.close();
    },
  };
}
