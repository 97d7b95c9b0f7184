// Chaos options and their one-time normalisation.
import { type Clock, systemClock } from '../clock/clock.ts';
import {
  clockOption,
  describe,
  fail,
  func,
  isRecord,
  knownKeys,
  num,
  optionsObject,
  str,
} from '../internal/validate.ts';
import type { ExecutionContext } from '../pipeline/context.ts';

export interface ChaosOptions<R = never> {
  /**
   * Fail the call with `error` (or the error `error(context)` builds) instead of running it,
   * for a fraction `rate` (0 to 1) of the calls.
   * @default no faults
   */
  fault?: { rate: number; error: Error | ((context: ExecutionContext) => Error) };
  /** Delay a fraction `rate` of the calls by `ms` before running them (abortable). @default no latency */
  latency?: { rate: number; ms: number };
  /** Answer a fraction `rate` of the calls with `value` instead of running them. @default no replaced results */
  result?: { rate: number; value: R };
  /** Whether anything is injected; switch at run time with `enable()` and `disable()`. @default true */
  enabled?: boolean;
  /** The source of randomness, returning numbers in [0, 1): give a seeded one in tests. @default Math.random */
  random?: () => number;
  /** @default systemClock */
  clock?: Clock;
  /** Names the policy in events and statistics. @default 'chaos' */
  name?: string;
}

/** @internal */
export interface NormalizedChaosOptions {
  /** `undefined` when no faults are configured, so that no random number is drawn for them. */
  fault: { rate: number; error: (context: ExecutionContext) => Error } | undefined;
  latency: { rate: number; ms: number } | undefined;
  result: { rate: number; value: unknown } | undefined;
  enabled: boolean;
  random: () => number;
  clock: Clock;
  name: string;
}

function rate(path: string, value: unknown): number {
  if (value === undefined) fail(path, 'is required');
  return num(path, value, 0, { min: 0, max: 1 });
}

function section(path: string, value: unknown, keys: readonly string[]): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) fail(path, `expected an options object, got ${describe(value)}`);
  knownKeys(path, value, keys);
  return value;
}

/** @internal */
export function normalizeChaosOptions(options: ChaosOptions<unknown> | undefined): NormalizedChaosOptions {
  const o = optionsObject('chaos', options);
  knownKeys('chaos', o, ['fault', 'latency', 'result', 'enabled', 'random', 'clock', 'name']);

  const f = section('chaos.fault', o.fault, ['rate', 'error']);
  let fault: NormalizedChaosOptions['fault'];
  if (f !== undefined) {
    const error = f.error;
    let build: (context: ExecutionContext) => Error;
    if (error instanceof Error) build = () => error;
    else if (typeof error === 'function') build = error as (context: ExecutionContext) => Error;
    else fail('chaos.fault.error', `expected an Error or a function returning one, got ${describe(error)}`);
    fault = { rate: rate('chaos.fault.rate', f.rate), error: build };
  }

  const l = section('chaos.latency', o.latency, ['rate', 'ms']);
  let latency: NormalizedChaosOptions['latency'];
  if (l !== undefined) {
    if (l.ms === undefined) fail('chaos.latency.ms', 'is required');
    latency = { rate: rate('chaos.latency.rate', l.rate), ms: num('chaos.latency.ms', l.ms, 0, { min: 0 }) };
  }

  const r = section('chaos.result', o.result, ['rate', 'value']);
  let result: NormalizedChaosOptions['result'];
  if (r !== undefined) {
    if (!('value' in r)) fail('chaos.result.value', 'is required');
    result = { rate: rate('chaos.result.rate', r.rate), value: r.value };
  }

  if (o.enabled !== undefined && typeof o.enabled !== 'boolean') {
    fail('chaos.enabled', `expected a boolean, got ${describe(o.enabled)}`);
  }
  return {
    fault,
    latency,
    result,
    enabled: o.enabled ?? true,
    random: func('chaos.random', o.random, Math.random),
    clock: clockOption('chaos.clock', o.clock, systemClock),
    name: str('chaos.name', o.name, 'chaos'),
  };
}
