// The cron schedules of the server's file (`schedules:`) on one WorkflowScheduler, replaced as a
// set by each reload, and listed for `GET /api/schedules`.
import { InvalidOptionsError } from '@bulwark/core';
import { type WorkflowEngine, WorkflowScheduler, type WorkflowStore } from '@bulwark/workflow';
import type { ScheduleDeclaration } from './config/load.ts';
import type { ScheduleView } from './http/context.ts';

/**
 * The file's cron schedules on one scheduler. Each `apply` replaces the whole set: the old
 * scheduler stops, a new one starts and catches up, which starts no tick twice (the store keeps
 * each schedule's last tick). A schedule naming a workflow the engine does not have is refused
 * here, naming its path, since code and built-in workflows are known only at start.
 */
export class Schedules {
  readonly #engine: WorkflowEngine;
  readonly #store: WorkflowStore;
  #scheduler: WorkflowScheduler | undefined;
  /** The set the running scheduler has, as declared. */
  #declared: Readonly<Record<string, ScheduleDeclaration>> = {};
  /** Applies one set at a time, in the order asked. */
  #chain: Promise<void> = Promise.resolve();
  /** Shutdown has begun: a reload that lands now starts no scheduler. */
  #stopped = false;

  constructor(engine: WorkflowEngine, store: WorkflowStore) {
    this.#engine = engine;
    this.#store = store;
  }

  /** The running set, with each schedule's next tick here and its last tick in the store. */
  async list(): Promise<ScheduleView[]> {
    const scheduler = this.#scheduler;
    const declared = this.#declared;
    return Promise.all(
      Object.entries(declared).map(async ([name, schedule]) => ({
        name,
        cron: schedule.cron,
        timezone: schedule.timezone ?? 'UTC',
        workflow: schedule.workflow,
        priority: schedule.priority ?? 'normal',
        catchUp: schedule.catchUp ?? 'latest',
        next: scheduler?.next(name)?.getTime() ?? null,
        lastTick: (await this.#store.lastTick(name)) ?? null,
      })),
    );
  }

  /** Rejects, leaving the running set as it is, if a schedule names a workflow not registered. */
  apply(schedules: Readonly<Record<string, ScheduleDeclaration>>): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    let next: WorkflowScheduler;
    try {
      next = this.#build(schedules);
    } catch (error) {
      return Promise.reject(error);
    }
    const applied = this.#chain.then(async () => {
      if (this.#stopped) return;
      await this.#scheduler?.stop();
      this.#scheduler = next;
      this.#declared = schedules;
      await next.start();
    });
    this.#chain = applied.catch(() => {});
    return applied;
  }

  #build(schedules: Readonly<Record<string, ScheduleDeclaration>>): WorkflowScheduler {
    const next = new WorkflowScheduler(this.#engine);
    const known = new Set(this.#engine.definitions().map((d) => d.name));
    for (const [name, schedule] of Object.entries(schedules)) {
      if (!known.has(schedule.workflow)) {
        throw new InvalidOptionsError(
          `schedules.${name}.workflow`,
          `no workflow '${schedule.workflow}' is registered (registered: ${[...known].sort().join(', ') || 'none'})`,
        );
      }
      next.add({ ...schedule, name });
    }
    return next;
  }

  stop(): Promise<void> {
    this.#stopped = true;
    const stopped = this.#chain.then(() => this.#scheduler?.stop());
    this.#chain = stopped.catch(() => {});
    return stopped;
  }
}
