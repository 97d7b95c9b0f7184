// @bulwark/server: the configuration loader, the registry it builds, and the `bulwark` CLI (the server comes later).
export { ConfigError, type ConfigIssue } from './config/errors.ts';
export {
  type BulwarkConfig,
  type LoadOptions,
  loadConfig,
  type ParseOptions,
  parseConfig,
} from './config/load.ts';
export { type ConfigWatcher, type WatchConfigOptions, watchConfig } from './config/watch.ts';
export { type OpenedRegistry, type OpenRegistryOptions, openRegistry } from './registry.ts';
