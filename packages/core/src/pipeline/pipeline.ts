// Composes policies, outermost first, into one chain built once at construction.
import { EventStream } from '../events/events.ts';
import { type ExecuteOptions, type Operation, Scope } from './context.ts';
import { kRun, type Next, type Policy, type PolicyDescription } from './policy.ts';

/** The result of {@link Pipeline.executeOutcome}: outcomes as data instead of exceptions. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T; readonly degraded: boolean; readonly attempts: number }
  | { readonly ok: false; readonly error: unknown; readonly attempts: number };

type SubstituteOf<P> = P extends { readonly __result?: readonly [infer R] } ? R : never;

/** A composition of policies; it is itself a policy, so pipelines nest. */
export class Pipeline<R = never> implements Policy<R> {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'pipeline' {
    return 'pipeline';
  }
  readonly name: string;
  readonly events: EventStream = new EventStream();
  readonly policies: readonly Policy<unknown>[];
  /** Type-only marker of the substitute result (never set). @internal */
  declare readonly __result?: readonly [R];
  readonly #chain: Next;

  constructor(policies: readonly Policy<unknown>[], name = 'pipeline') {
    // Nested pipelines are flattened so the chain has one layer per real policy.
    const flat: Policy<unknown>[] = [];
    for (const p of policies) {
      if (p instanceof Pipeline) flat.push(...p.policies);
      else flat.push(p);
    }
    this.policies = flat;
    this.name = name;
    for (const p of flat) p.events.forwardTo(this.events);
    let next: Next = invoke;
    for (let i = flat.length - 1; i >= 0; i--) {
      const policy = flat[i]!;
      const inner = next;
      next = (scope) => policy[kRun](scope, inner);
    }
    this.#chain = next;
  }

  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T | R> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#chain(new Scope(fn, options)) as Promise<T | R>;
  }

  /** Like `execute`, but never throws: the outcome says whether it succeeded and whether it was degraded. */
  async executeOutcome<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<Outcome<T | R>> {
    const signal = options?.signal;
    const scope = new Scope(fn, options);
    // Refused before anything ran: no attempt was made.
    if (signal?.aborted) return { ok: false, error: signal.reason, attempts: 0 };
    try {
      const value = (await this.#chain(scope)) as T | R;
      return { ok: true, value, degraded: scope.degraded, attempts: scope.attempt };
    } catch (error) {
      return { ok: false, error, attempts: scope.attempt };
    }
  }

  describe(): PolicyDescription {
    return {
      kind: 'pipeline',
      name: this.name,
      options: { policies: this.policies.map((p) => p.describe()) },
    };
  }

  [kRun](scope: Scope, next: Next): Promise<unknown> {
    // Used only when a pipeline is wrapped as a layer without flattening (never by `pipeline()`).
    let chain = next;
    for (let i = this.policies.length - 1; i >= 0; i--) {
      const policy = this.policies[i]!;
      const inner = chain;
      chain = (s) => policy[kRun](s, inner);
    }
    return chain(scope);
  }
}

/** The innermost layer: calls the user's operation, turning a synchronous throw into a rejection. */
function invoke(scope: Scope): Promise<unknown> {
  try {
    return Promise.resolve(scope.fn(scope));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Composes policies, outermost first: `pipeline(fallback, timeout, retry, breaker, bulkhead, timeout)`.
 * The chain is built here once; each call allocates one scope object.
 */
export function pipeline<P extends Policy<any>[]>(...policies: P): Pipeline<SubstituteOf<P[number]>> {
  return new Pipeline(policies);
}

/** Shared by every policy's own `execute`: the policy alone as a one-layer chain. @internal */
export function executeAlone<T>(policy: Policy<any>, fn: Operation<T>, options?: ExecuteOptions): Promise<T> {
  const signal = options?.signal;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return policy[kRun](new Scope(fn, options), invoke) as Promise<T>;
}
