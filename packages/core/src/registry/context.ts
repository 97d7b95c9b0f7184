// What an operation called through the registry sees of its call: the attempt's signal, the
// attempt number, and which dependency (and failover group) it is running against.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ExecutionContext } from '../pipeline/context.ts';

export interface DependencyContext extends ExecutionContext {
  /** The dependency this attempt runs against (in a failover group: the provider). */
  readonly dependency: string;
  /** The failover group the call was made to, if any. */
  readonly group: string | undefined;
}

/** A view of the pipeline's execution context; its signal stays lazy (created only if read). @internal */
export class CallContext implements DependencyContext {
  readonly #inner: ExecutionContext;
  readonly dependency: string;
  readonly group: string | undefined;

  constructor(inner: ExecutionContext, dependency: string, group: string | undefined) {
    this.#inner = inner;
    this.dependency = dependency;
    this.group = group;
  }
  get signal(): AbortSignal {
    return this.#inner.signal;
  }
  get attempt(): number {
    return this.#inner.attempt;
  }
  get operation(): string | undefined {
    return this.#inner.operation;
  }
  get key(): string | undefined {
    return this.#inner.key;
  }
  get priority(): string | undefined {
    return this.#inner.priority;
  }
}

const storage = new AsyncLocalStorage<DependencyContext>();

/**
 * The context of the registry call running now, inside a function given to `registry.wrap` or a
 * `@resilient` method (which have no context parameter); undefined outside one.
 */
export function currentCall(): DependencyContext | undefined {
  return storage.getStore();
}

/** Runs `fn` with `context` as the current call. @internal */
export function runInCall<T>(context: DependencyContext, fn: () => T): T {
  return storage.run(context, fn);
}
