// Fallback options and their one-time normalisation.

import { fail, func, knownKeys, optionsObject, str } from '../internal/validate.ts';
import type { ExecutionContext } from '../pipeline/context.ts';

export type FallbackOptions<R> = (
  | {
      /** The substitute result. */
      value: R;
    }
  | {
      /** Computes the substitute from the failure. */
      fn: (error: unknown, context: ExecutionContext) => R | PromiseLike<R>;
    }
) & {
  /** Which failures to replace. The caller's own abort is never replaced. @default every error */
  shouldHandle?: (error: unknown) => boolean;
  /** Names the policy in events and statistics. @default 'fallback' */
  name?: string;
};

/** @internal */
export interface NormalizedFallbackOptions {
  substitute: (error: unknown, context: ExecutionContext) => unknown;
  hasValue: boolean;
  shouldHandle: (error: unknown) => boolean;
  name: string;
}

/** @internal */
export function normalizeFallbackOptions(options: FallbackOptions<unknown>): NormalizedFallbackOptions {
  const o = optionsObject('fallback', options);
  knownKeys('fallback', o, ['value', 'fn', 'shouldHandle', 'name']);
  const hasValue = 'value' in o;
  if (hasValue === (o.fn !== undefined)) fail('fallback', "give exactly one of 'value' or 'fn'");
  const value = o.value;
  const substitute = hasValue
    ? () => value
    : func<(error: unknown, context: ExecutionContext) => unknown>('fallback.fn', o.fn, () => value);
  return {
    substitute,
    hasValue,
    shouldHandle: func('fallback.shouldHandle', o.shouldHandle, () => true),
    name: str('fallback.name', o.name, 'fallback'),
  };
}
