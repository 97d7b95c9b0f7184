// Waiting on something (a store's answer, a token request) without outliving the caller's abort.
import type { Scope } from '../pipeline/context.ts';

const ignore = () => {};

/**
 * `work`, or `reason()` as soon as `signal` aborts; the work itself goes on (for others waiting
 * on it) and is always handled, so its failure is never reported as unhandled.
 */
export function untilSignal<T>(
  work: Promise<T>,
  signal: AbortSignal | null | undefined,
  reason: () => unknown = () => signal?.reason,
): Promise<T> {
  if (signal === undefined || signal === null) return work;
  if (signal.aborted) {
    work.then(undefined, ignore);
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reason());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** `work`, or the caller's abort reason as soon as the caller aborts; `work` is always handled. */
export function untilAborted(scope: Scope, work: Promise<unknown>): Promise<unknown> {
  if (!scope.canAbort) return work; // nothing can abort it: no signal to create
  if (scope.aborted) {
    work.then(undefined, ignore);
    return Promise.reject(scope.abortReason);
  }
  return untilSignal(work, scope.signal, () => scope.abortReason);
}
