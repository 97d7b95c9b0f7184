// Thread-pool options and their one-time normalisation. `ThreadPoolOptions` is plain data (it is
// also written in the config file); code-only options live on `ThreadPoolInit`.
import { availableParallelism } from 'node:os';
import { isAbsolute } from 'node:path';
import { type Clock, systemClock } from '../clock/clock.ts';
import { clockOption, describe, fail, knownKeys, num, optionsObject, str } from '../internal/validate.ts';

export interface ThreadPoolOptions {
  /**
   * The worker module: an absolute path or a `file:` URL. Its named exports are the tasks, each
   * `(input) => result | Promise<result>`. (required)
   */
  module: string;
  /** Worker threads, started on the first task and kept. @default min(4, os.availableParallelism()) */
  size?: number;
  /**
   * Tasks that may wait for a free thread, first in first out; beyond this `run` rejects at once
   * with `BulkheadRejectedError`. `Infinity` for no bound. @default size × 4
   */
  maxQueue?: number;
  /**
   * A task running longer than this rejects with `TimeoutError` and its worker thread is
   * terminated (and replaced). Counts from the moment a thread takes the task, not while queued.
   * @default Infinity
   */
  taskTimeoutMs?: number;
  /**
   * Heap limit of each worker thread, in MB (`resourceLimits.maxOldGenerationSizeMb`); a task that
   * exceeds it fails with `ERR_WORKER_OUT_OF_MEMORY` and its thread is replaced. @default Node's default
   */
  maxHeapMb?: number;
}

/** {@link ThreadPoolOptions} plus the options only code can give. */
export interface ThreadPoolInit extends ThreadPoolOptions {
  /** Names the pool in events, statistics and errors. @default 'threadPool' */
  name?: string;
  /** The source of time for task timeouts. @default systemClock */
  clock?: Clock;
}

/** @internal */
export interface NormalizedThreadPoolOptions {
  /** An absolute path (a `file:` URL is converted by piscina). */
  module: string;
  size: number;
  maxQueue: number;
  taskTimeoutMs: number;
  maxHeapMb: number | undefined;
  name: string;
  clock: Clock;
}

/** Fewer threads than cores: a pool that takes every core starves the event loop it protects. */
const DEFAULT_MAX_SIZE = 4;
/** Below this V8 cannot even start a worker, so the pool would fail at bootstrap, not on a task. */
const MIN_HEAP_MB = 8;

/** @internal */
export function normalizeThreadPoolOptions(options: ThreadPoolInit): NormalizedThreadPoolOptions {
  const o = optionsObject('threadPool', options);
  knownKeys('threadPool', o, ['module', 'size', 'maxQueue', 'taskTimeoutMs', 'maxHeapMb', 'name', 'clock']);
  if (o.module === undefined) fail('threadPool.module', 'is required');
  const module = str('threadPool.module', o.module, '');
  if (!module.startsWith('file:') && !isAbsolute(module)) {
    fail('threadPool.module', `expected an absolute path or a file: URL, got ${describe(module)}`);
  }
  const size = num('threadPool.size', o.size, Math.min(DEFAULT_MAX_SIZE, availableParallelism()), {
    min: 1,
    integer: true,
  });
  return {
    module,
    size,
    maxQueue: num('threadPool.maxQueue', o.maxQueue, size * 4, { min: 0, integer: true, infinite: true }),
    taskTimeoutMs: num('threadPool.taskTimeoutMs', o.taskTimeoutMs, Number.POSITIVE_INFINITY, {
      min: 1,
      infinite: true,
    }),
    maxHeapMb:
      o.maxHeapMb === undefined
        ? undefined
        : num('threadPool.maxHeapMb', o.maxHeapMb, 0, { min: MIN_HEAP_MB }),
    name: str('threadPool.name', o.name, 'threadPool'),
    clock: clockOption('threadPool.clock', o.clock, systemClock),
  };
}
