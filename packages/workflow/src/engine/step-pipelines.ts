// Step pipelines (a retry, then a per-attempt timeout) built once per engine and shared by every
// run's steps with the same settings, instead of once per run: a retry tells the step it belongs to.
import {
  BrokenCircuitError,
  type BulwarkEventMap,
  type Clock,
  IsolatedCircuitError,
  isTransient,
  type Pipeline,
  type Policy,
  pipeline,
  RetriesExhaustedError,
  retryFromSettings,
  timeout,
} from '@bulwark/core';
import type { StepOptions } from './workflow.ts';

const DEFAULT_STEP_RETRY = { maxAttempts: 3, baseMs: 1_000, maxMs: 60_000, jitter: 0.2 };

type StepPolicyOptions = Pick<StepOptions<unknown>, 'retry' | 'timeoutMs'>;
export type RetryScheduled = BulwarkEventMap['retry:scheduled'];

/**
 * The circuit's refusal, if that is why the call failed: open (or half-open with its probes
 * taken), or isolated; also as the last word of a dependency's retries that ended on it.
 */
export function refusal(error: unknown): BrokenCircuitError | IsolatedCircuitError | undefined {
  const last = error instanceof RetriesExhaustedError ? error.cause : error;
  return last instanceof BrokenCircuitError || last instanceof IsolatedCircuitError ? last : undefined;
}

/** A step's (or its compensation's) retry, then its per-attempt timeout: the retry first when there is one. */
export function stepPolicies(
  options: StepPolicyOptions,
  shouldRetry: (error: unknown) => boolean,
  clock: Clock,
  random: () => number,
): Policy<never>[] {
  const layers: Policy<never>[] = [];
  if (options.retry !== false) {
    layers.push(
      retryFromSettings({ ...DEFAULT_STEP_RETRY, ...options.retry }, { shouldRetry, clock, random }),
    );
  }
  if (options.timeoutMs !== undefined) layers.push(timeout({ ms: options.timeoutMs, clock }));
  return layers;
}

/** The default retry and no retry, as keys beside the `retry` objects steps give. */
const DEFAULT_RETRY = {};
const NO_RETRY = {};

/**
 * The engine's step pipelines, by their `retry` settings (the object a step gives, weakly held, or
 * the default, or none) and `timeoutMs`. A refusal by the circuit is never retried: it parks the
 * step, or (`whenCircuitOpen: 'fail'`) fails it at once, since the circuit stays shut far longer
 * than a retry's backoff. A retry is told to the step whose `operation` it names: a step runs
 * under an operation unique among the steps in flight (its idempotency key) and listens on it.
 */
export class StepPipelines {
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #built = new WeakMap<object, Map<number | undefined, Pipeline<never>>>();
  readonly #listeners = new Map<string, (event: RetryScheduled) => void>();

  constructor(clock: Clock, random: () => number) {
    this.#clock = clock;
    this.#random = random;
  }

  get(options: StepPolicyOptions): Pipeline<never> {
    const key =
      options.retry === undefined ? DEFAULT_RETRY : options.retry === false ? NO_RETRY : options.retry;
    let byTimeout = this.#built.get(key);
    if (byTimeout === undefined) this.#built.set(key, (byTimeout = new Map()));
    let built = byTimeout.get(options.timeoutMs);
    if (built !== undefined) return built;
    const shouldRetry = (error: unknown) => isTransient(error) && refusal(error) === undefined;
    const layers = stepPolicies(options, shouldRetry, this.#clock, this.#random);
    if (options.retry !== false) {
      layers[0]!.events.on('retry:scheduled', (event) => {
        if (event.operation !== undefined) this.#listeners.get(event.operation)?.(event);
      });
    }
    built = pipeline(...layers);
    byTimeout.set(options.timeoutMs, built);
    return built;
  }

  /** Hears the retries scheduled for `operation` until the returned function is called. */
  listen(operation: string, listener: (event: RetryScheduled) => void): () => void {
    this.#listeners.set(operation, listener);
    return () => {
      if (this.#listeners.get(operation) === listener) this.#listeners.delete(operation);
    };
  }
}
