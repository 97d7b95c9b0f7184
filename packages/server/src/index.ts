// @bulwark/server: the Bulwark server (REST API, live streams, metrics, health, security), the
// configuration loader and the registry it builds, and the `bulwark` CLI.
export { ConfigError, type ConfigIssue } from './config/errors.ts';
export {
  type BulwarkConfig,
  type LoadOptions,
  loadConfig,
  type ParseOptions,
  parseConfig,
  type ScheduleDeclaration,
} from './config/load.ts';
export { type ConfigWatcher, type WatchConfigOptions, watchConfig } from './config/watch.ts';
export type {
  Access,
  Principal,
  ReloadSummary,
  Role,
  ScheduleView,
  ServerContext,
  WorkflowChanges,
} from './http/context.ts';
export { ApiError, type FieldProblem, type Problem, type ProblemCode, ProblemCodes } from './http/errors.ts';
export { type BulwarkServer, type CreateServerOptions, createServer } from './http/server.ts';
export {
  type ApiKey,
  normalizeServerSettings,
  parseApiKeys,
  type ServerSettings,
  type ServerSettingsInput,
  SettingsError,
} from './http/settings.ts';
export { type OpenedRegistry, type OpenRegistryOptions, openRegistry } from './registry.ts';
export { type StartedServer, type StartServerOptions, startServer } from './start.ts';
