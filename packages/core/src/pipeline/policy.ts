// What every policy is: a named layer that runs the rest of the pipeline (`next`) its own way.
import type { EventStream } from '../events/events.ts';
import type { ExecuteOptions, Operation, Scope } from './context.ts';

/** Runs the layers inside this one. @internal */
export type Next = (scope: Scope) => Promise<unknown>;

/** The internal entry point of a policy, keyed by a symbol so it stays off the public surface. @internal */
export const kRun: unique symbol = Symbol('bulwark.run');

/** How a policy describes itself in `describe()`: its kind, name and normalised options. */
export interface PolicyDescription {
  readonly kind: string;
  readonly name: string;
  readonly options: Readonly<Record<string, unknown>>;
}

/**
 * A resilience policy. `R` is the type a policy may return in place of the operation's
 * result (a fallback's value); it is `never` for the others.
 */
export interface Policy<R = never> {
  readonly kind: string;
  readonly name: string;
  /** Events of this policy (also delivered to every pipeline it is part of). */
  readonly events: EventStream;
  /** Runs `fn` under this policy alone. */
  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T | R>;
  describe(): PolicyDescription;
  /** @internal */
  [kRun](scope: Scope, next: Next): Promise<unknown>;
  /** Marker for the type of substitute results. @internal */
  readonly __result?: readonly [R];
}
