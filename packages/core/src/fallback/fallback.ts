// The fallback policy: replaces a failure with a substitute and marks the outcome degraded.
import { PolicyBase } from '../pipeline/base.ts';
import type { Scope } from '../pipeline/context.ts';
import { kRun, type Next, type PolicyDescription } from '../pipeline/policy.ts';
import { type FallbackOptions, type NormalizedFallbackOptions, normalizeFallbackOptions } from './options.ts';

export interface FallbackStats {
  /** Calls answered by the substitute. */
  used: number;
}

export class FallbackPolicy<R> extends PolicyBase<R> {
  // On the prototype rather than each instance: an idle policy should cost little memory.
  get kind(): 'fallback' {
    return 'fallback';
  }
  readonly #o: NormalizedFallbackOptions;
  #used = 0;

  constructor(options: FallbackOptions<R>) {
    const o = normalizeFallbackOptions(options as FallbackOptions<unknown>);
    super(o.name);
    this.#o = o;
  }

  stats(): FallbackStats {
    return { used: this.#used };
  }

  describe(): PolicyDescription {
    return { kind: 'fallback', name: this.name, options: { substitute: this.#o.hasValue ? 'value' : 'fn' } };
  }

  async [kRun](scope: Scope, next: Next): Promise<unknown> {
    try {
      return await next(scope);
    } catch (error) {
      // The caller gave up: never answer for them, and surface their reason (as retry does),
      // whatever the operation rejected with on its way out.
      if (scope.aborted) throw scope.abortReason;
      if (!this.#o.shouldHandle(error)) throw error;
      this.#used++;
      scope.root.degraded = true;
      if (this.events.demand !== 0) {
        this.events.emit({ type: 'fallback:used', policy: this.name, operation: scope.operation, error });
      }
      return this.#o.substitute(error, scope);
    }
  }
}

/** A fallback: `fallback({ value })` or `fallback({ fn: (error) => substitute })`. */
export function fallback<R>(options: FallbackOptions<R>): FallbackPolicy<R> {
  return new FallbackPolicy(options);
}
