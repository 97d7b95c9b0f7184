// What every plugin of the server is given: the parts it serves (registry, engine, store), the
// normalised settings, and the process state that shutdown changes. Passed as plugin options.
import type { Clock, DependencyRegistry } from '@bulwark/core';
import type { CatchUpPolicy, Priority, WorkflowEngine, WorkflowStore } from '@bulwark/workflow';
import type { DependencyMonitor } from './monitor/monitor.ts';
import type { ServerSettings } from './settings.ts';

/** Who may do what: each role may do everything the roles before it may. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
/** What a route requires: `public` needs no key (the probes). */
export type Access = Role | 'public';

/** The caller, once its API key is checked. */
export interface Principal {
  /** The key's name (never the key itself): what the audit log and logs show. */
  readonly name: string;
  readonly role: Role;
}

export interface ServerContext {
  readonly registry: DependencyRegistry;
  readonly engine: WorkflowEngine;
  readonly store: WorkflowStore;
  readonly clock: Clock;
  readonly settings: ServerSettings;
  /** Breaker transitions, sparkline history and timed isolations, from the registry's events. */
  readonly monitor: DependencyMonitor;
  /** True from the moment shutdown begins: readiness fails, new runs are refused. */
  readonly draining: () => boolean;
  /** Reloads the configuration file (admin); undefined when the server was not started from a file. */
  readonly reload: (() => Promise<ReloadSummary>) | undefined;
  /** The schedules the server runs (`schedules:` of its file); undefined when it runs none. */
  readonly schedules: (() => Promise<ScheduleView[]>) | undefined;
}

/** A schedule as `GET /api/schedules` shows it: its declaration, its next tick, its last one. */
export interface ScheduleView {
  readonly name: string;
  readonly cron: string;
  readonly timezone: string;
  readonly workflow: string;
  readonly priority: Priority;
  readonly catchUp: CatchUpPolicy;
  /** Epoch ms of the next tick this server will start, or null if there is none. */
  readonly next: number | null;
  /** Epoch ms of the latest tick that has had a run (any server's), or null if none has. */
  readonly lastTick: number | null;
}

/** What a reload changed: dependencies by name, and the declarative workflows (`workflows`). */
export interface ReloadSummary extends WorkflowChanges {
  /**
   * Workflows declared in the file, by name: added and changed ones are registered at once (a
   * changed one replaces its version, or adds one if its `version` changed); removed ones stay
   * registered until the next start, so that their runs can finish.
   */
  readonly workflows: WorkflowChanges;
}

/** Names added, changed and removed. */
export interface WorkflowChanges {
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly removed: readonly string[];
}

declare module 'fastify' {
  /** What the OpenAPI document takes from each route's schema besides its JSON Schemas. */
  interface FastifySchema {
    tags?: readonly string[];
    summary?: string;
    description?: string;
    /** Left out of the OpenAPI document (the document itself, the reference page). */
    hide?: boolean;
  }
  interface FastifyContextConfig {
    /** Who may call the route. @default 'admin' (a route that forgets to say is closed, not open) */
    access?: Access;
  }
  interface FastifyRequest {
    /** Set by the auth plugin; undefined on public routes called without a key. */
    principal: Principal | undefined;
  }
}
