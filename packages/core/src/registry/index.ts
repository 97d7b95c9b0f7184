export { currentCall, type DependencyContext } from './context.ts';
export type { DependencyStats } from './dependency.ts';
export type { GroupStats } from './group.ts';
export { KIND_DEFAULTS } from './kinds.ts';
export {
  type BreakerSettings,
  type BulkheadSettings,
  DEPENDENCY_KINDS,
  type DependencyKind,
  type DependencyOptions,
  type FailoverGroupOptions,
  type GroupMember,
  type PolicySettings,
  type RateLimitSettings,
  type RegistryOptions,
  type RetrySettings,
} from './options.ts';
export { type CallOptions, DependencyRegistry, type ReloadResult } from './registry.ts';
export type { RollingSnapshot } from './rolling.ts';
export { retryFromSettings } from './settings.ts';
export type { CallOutcome, CallStats } from './stats.ts';
