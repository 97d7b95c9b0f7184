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
  /** After each reload that took effect. */
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
  const watcher = options.watch
    ? watchConfig(file, {
        env: options.env,
        onReload: (next) => {
          const result = registry.configure(next);
          config = next;
          options.onReload?.(result, next);
        },
        onError,
      })
    : undefined;
  return {
    registry,
    get config() {
      return config;
    },
    async close() {
      watcher?.close();
      await registry.close();
    },
  };
}
