// What all policies share: a name, an event stream, and running alone through `execute`.
import { EventStream } from '../events/events.ts';
import type { ExecuteOptions, Operation, Scope } from './context.ts';
import { executeAlone } from './pipeline.ts';
import { kRun, type Next, type Policy, type PolicyDescription } from './policy.ts';

/** @internal */
export abstract class PolicyBase<R = never> implements Policy<R> {
  abstract get kind(): string;
  readonly name: string;
  readonly events: EventStream = new EventStream();
  /** Type-only marker of the substitute result, so `pipeline()` can infer it (never set). @internal */
  declare readonly __result?: readonly [R];

  constructor(name: string) {
    this.name = name;
  }

  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T | R> {
    return executeAlone(this, fn, options);
  }

  abstract describe(): PolicyDescription;
  abstract [kRun](scope: Scope, next: Next): Promise<unknown>;
}
