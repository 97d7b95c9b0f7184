// The per-call state that flows through a pipeline. One object per call on the fast path;
// an AbortController is created only if the operation actually reads `signal`.

/** What an operation receives. */
export interface ExecutionContext {
  /**
   * Aborts when the caller aborts or a timeout around this attempt fires. Created on first
   * read, so operations that ignore it pay nothing for it.
   */
  readonly signal: AbortSignal;
  /** 1 for the first call, 2 for the first retry, and so on. */
  readonly attempt: number;
  /** The `operation` named in the call's options, for events and statistics. */
  readonly operation: string | undefined;
  /** The `key` given in the call's options: what the call is about (a cache key, a tenant). */
  readonly key: string | undefined;
  /** The `priority` given in the call's options (for load shedding). */
  readonly priority: string | undefined;
}

export type Operation<T> = (context: ExecutionContext) => T | PromiseLike<T>;

/** Options of one call. */
export interface ExecuteOptions {
  /** Cancels the call: stops retries, leaves queues, and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Names the operation in events and statistics (for example `charge`). */
  operation?: string;
  /**
   * What the call is about, for policies that tell calls apart: the cache and single-flight
   * key, or the key of a keyed rate limit (a tenant, a host).
   */
  key?: string;
  /** The call's priority, for policies that shed load by priority (adaptive concurrency). */
  priority?: string;
}

/** A bulkhead slot that must stay taken until work abandoned by an inner timeout settles. @internal */
export interface Lease {
  readonly outer: Lease | undefined;
  hold(work: Promise<unknown>): void;
}

/**
 * A scope of one call: the root scope for the call, and a child scope per timeout, whose
 * signal aborts on its deadline without touching any other call's or attempt's signal.
 * @internal
 */
export class Scope implements ExecutionContext {
  attempt: number;
  readonly operation: string | undefined;
  /** The caller's options (shared by every scope of the call). */
  readonly options: ExecuteOptions | undefined;
  readonly root: Scope;
  readonly parent: Scope | undefined;
  /** The user's operation, called by the innermost layer. */
  readonly fn: Operation<unknown>;
  /** Set by a fallback: the outcome was produced by a substitute. */
  degraded = false;
  lease: Lease | undefined;
  /** True when something can abort this scope: a caller's signal or a timeout here or above. */
  readonly canAbort: boolean;

  #callerSignal: AbortSignal | undefined;
  #controller: AbortController | undefined;
  #abortReason: unknown;
  #aborted = false;
  #unlink: (() => void) | undefined;
  #disposed = false;

  constructor(
    fn: Operation<unknown>,
    options: ExecuteOptions | undefined,
    parent?: Scope,
    ownsAbort = false,
  ) {
    this.fn = fn;
    this.options = options;
    this.operation = options?.operation;
    this.parent = parent;
    this.root = parent === undefined ? this : parent.root;
    this.attempt = parent === undefined ? 1 : parent.attempt;
    this.lease = parent?.lease;
    const callerSignal = parent === undefined ? options?.signal : undefined;
    this.#callerSignal = callerSignal;
    this.canAbort = ownsAbort || callerSignal !== undefined || parent?.canAbort === true;
  }

  get key(): string | undefined {
    return this.options?.key;
  }

  get priority(): string | undefined {
    return this.options?.priority;
  }

  /** A scope whose signal this scope's owner (a timeout) can abort on its own. */
  child(): Scope {
    return new Scope(this.fn, this.options, this, true);
  }

  get signal(): AbortSignal {
    if (this.#controller !== undefined) return this.#controller.signal;
    if (this.#callerSignal !== undefined) return this.#callerSignal;
    const controller = new AbortController();
    this.#controller = controller;
    if (this.#aborted) {
      controller.abort(this.#abortReason);
    } else if (this.parent?.canAbort) {
      const parentSignal = this.parent.signal;
      if (parentSignal.aborted) {
        controller.abort(parentSignal.reason);
      } else if (!this.#disposed) {
        // Once disposed (the scope settled), a first read must not leave a listener on the parent.
        const onAbort = () => controller.abort(parentSignal.reason);
        parentSignal.addEventListener('abort', onAbort, { once: true });
        this.#unlink = () => parentSignal.removeEventListener('abort', onAbort);
      }
    }
    return controller.signal;
  }

  /** Whether this scope or any scope above it was aborted, without creating a signal. */
  get aborted(): boolean {
    for (let s: Scope | undefined = this; s !== undefined; s = s.parent) {
      if (s.#aborted || s.#callerSignal?.aborted || s.#controller?.signal.aborted) return true;
    }
    return false;
  }

  /** The reason of the outermost abort, which is what the caller should see. */
  get abortReason(): unknown {
    let reason: unknown;
    for (let s: Scope | undefined = this; s !== undefined; s = s.parent) {
      if (s.#callerSignal?.aborted) reason = s.#callerSignal.reason;
      else if (s.#aborted) reason = s.#abortReason;
      else if (s.#controller?.signal.aborted) reason = s.#controller.signal.reason;
    }
    return reason;
  }

  /** The signal above this scope that can abort it, if any, without creating one needlessly. */
  get parentSignal(): AbortSignal | undefined {
    return this.parent?.canAbort ? this.parent.signal : undefined;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    this.#unlink?.();
    this.#unlink = undefined;
    this.#controller?.abort(reason);
  }

  /** Drops the link to the parent's signal once this scope has settled. */
  dispose(): void {
    this.#disposed = true;
    this.#unlink?.();
    this.#unlink = undefined;
  }
}
