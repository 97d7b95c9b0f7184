export { activeCheck, dependencyCheck, type HealthSource, passiveCheck } from './checks.ts';
export { HealthMonitor } from './monitor.ts';
export type {
  HealthCheck,
  HealthCheckResult,
  HealthMonitorOptions,
  HealthProbe,
  HealthStatus,
} from './options.ts';
export type { HealthCheckEntry, HealthReport } from './report.ts';
