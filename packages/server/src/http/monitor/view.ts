// A dependency as the API and the live stream show it: the registry's statistics, the breaker's
// transitions and times from the monitor, and how many runs are parked behind it.
import type { DependencyStats } from '@bulwark/core';
import type { DependencyMonitor } from './monitor.ts';

/** `parked`: runs parked per dependency, from one store count for a whole list. */
export function dependencyView(
  monitor: DependencyMonitor,
  stats: DependencyStats,
  parked: Readonly<Record<string, number>>,
) {
  return {
    name: stats.name,
    kind: stats.kind,
    critical: stats.critical,
    state: stats.state ?? null,
    calls: stats.calls,
    operations: stats.operations,
    breaker: stats.breaker === undefined ? null : { ...stats.breaker, ...monitor.breakerTimes(stats.name) },
    bulkhead: stats.bulkhead ?? null,
    rateLimit: stats.rateLimit ?? null,
    retry: stats.retry ?? null,
    parkedRuns: parked[stats.name] ?? 0,
  };
}
