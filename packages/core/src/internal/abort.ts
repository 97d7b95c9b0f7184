// Waiting on something (a store's answer) without outliving the caller's abort.
import type { Scope } from '../pipeline/context.ts';

const ignore = () => {};

/** `work`, or the caller's abort reason as soon as the caller aborts; `work` is always handled. */
export function untilAborted(scope: Scope, work: Promise<unknown>): Promise<unknown> {
  if (!scope.canAbort) return work; // nothing can abort it: no signal to create
  if (scope.aborted) {
    work.then(undefined, ignore);
    return Promise.reject(scope.abortReason);
  }
  return new Promise((resolve, reject) => {
    const signal = scope.signal;
    const onAbort = () => reject(scope.abortReason);
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
