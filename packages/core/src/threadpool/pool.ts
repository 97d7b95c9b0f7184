// The thread-pool bulkhead: CPU-bound tasks run in a fixed pool of worker threads (piscina, loaded
// on first use) behind Bulwark's own bounded queue, with timeouts that terminate runaway workers.
import type { TransferListItem, Worker } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import type { Clock, TimerHandle } from '../clock/clock.ts';
import { BulkheadRejectedError, PoolClosedError, rejectSoon, TimeoutError, withoutStack } from '../errors.ts';
import { EventStream } from '../events/events.ts';
import { type Linked, List } from '../internal/list.ts';
import {
  type NormalizedThreadPoolOptions,
  normalizeThreadPoolOptions,
  type ThreadPoolInit,
} from './options.ts';

export interface ThreadPoolStats {
  /** Worker threads the pool keeps. */
  size: number;
  /** Worker threads alive now: 0 before the first task, `size` once started. */
  threads: number;
  /** Tasks a thread has taken (at most `size`). */
  active: number;
  /** Tasks waiting for a thread. */
  queued: number;
  maxQueue: number;
  /** Tasks that returned a result. */
  completed: number;
  /** Tasks that threw, or whose worker died (out of memory, `process.exit`). */
  failed: number;
  /** Tasks refused because every thread was busy and the queue full. */
  rejected: number;
  /** Tasks that ran past `taskTimeoutMs`; each took its worker thread down with it. */
  timedOut: number;
  /** Tasks whose caller aborted them, queued or running. */
  aborted: number;
  /** Run time of the tasks that reached a thread, in ms (0 before any). */
  runTimeMs: { p50: number; p90: number; p99: number; max: number };
}

export interface ThreadPoolRunOptions {
  /**
   * Aborts the task: a queued task leaves the queue, a running one has its worker thread
   * terminated. The call rejects with the signal's reason.
   */
  signal?: AbortSignal;
  /** Moved to the worker rather than copied (see `worker_threads` `postMessage`). */
  transferList?: readonly TransferListItem[];
}

/** One call of `run`, from admission to its settlement; a node of the queue while it waits. */
class Task implements Linked<Task> {
  prev: Task | undefined;
  next: Task | undefined;
  settled = false;
  /** Aborts the task in piscina, which terminates the worker running it. */
  controller: AbortController | undefined;
  timer: TimerHandle | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
  readonly promise: Promise<unknown>;

  constructor(
    readonly onAbort: (task: Task) => void,
    readonly name: string,
    readonly input: unknown,
    readonly signal: AbortSignal | undefined,
    readonly transferList: readonly TransferListItem[] | undefined,
  ) {
    let resolve!: (value: unknown) => void;
    let reject!: (reason: unknown) => void;
    this.promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.resolve = resolve;
    this.reject = reject;
    signal?.addEventListener('abort', this, { once: true });
  }

  /** The caller aborted. */
  handleEvent(): void {
    this.onAbort(this);
  }

  /** Settles the caller's promise once; the first outcome wins, later ones are dropped. */
  settle(ok: boolean, value: unknown, clock: Clock): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.timer !== undefined) clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.signal?.removeEventListener('abort', this);
    if (ok) this.resolve(value);
    else this.reject(value);
    return true;
  }
}

/**
 * A fixed pool of worker threads with a bounded queue. Each task is a named export of the
 * worker module. Bulwark counts threads and queue itself (piscina never queues beyond `size`),
 * so a rejection is exact and immediate.
 */
export class ThreadPool {
  readonly name: string;
  readonly events: EventStream = new EventStream();
  readonly #o: NormalizedThreadPoolOptions;
  #piscina: Piscina | undefined;
  #loading: Promise<Piscina> | undefined;
  /** Tasks holding a thread (or about to: admitted while piscina loads). */
  readonly #running = new Set<Task>();
  readonly #waiting = new List<Task>();
  #completed = 0;
  #failed = 0;
  #rejected = 0;
  #timedOut = 0;
  #aborted = 0;
  #closing: Promise<void> | undefined;
  #forced = false;
  #drained: (() => void) | undefined;
  /**
   * Every worker thread not yet exited, with a promise of its exit. A terminated thread leaves
   * piscina's list at once but exits later; piscina replaces it when it does, even after
   * `destroy()`, so closing waits for these exits first.
   */
  readonly #alive = new Map<Worker, Promise<void>>();
  /**
   * Threads still starting (Node, `--import` hooks, the worker module). A task's timeout is
   * meant for the task, not for a thread's start-up, so timers wait until none is left.
   */
  readonly #starting = new Set<Worker>();
  /** Running tasks whose timer waits for `#starting` to empty. */
  #timersDue: Task[] = [];
  /** Shared by every task, so a call with a signal allocates no listener of its own. */
  readonly #onAbort = (task: Task) => this.#abort(task, task.signal!.reason, 'aborted');

  constructor(options: ThreadPoolInit) {
    this.#o = normalizeThreadPoolOptions(options);
    this.name = this.#o.name;
  }

  /**
   * Runs the worker module's export `task` with `input` on a pool thread. Rejects at once with
   * `BulkheadRejectedError` when every thread is busy and the queue is full, with `TimeoutError`
   * after `taskTimeoutMs`, with the caller's reason on abort, with `PoolClosedError` once closed.
   */
  run<T = unknown>(task: string, input?: unknown, options?: ThreadPoolRunOptions): Promise<T> {
    if (this.#closing !== undefined) return rejectSoon(withoutStack(() => new PoolClosedError(this.name)));
    const signal = options?.signal;
    if (signal?.aborted) {
      this.#aborted++;
      return Promise.reject(signal.reason);
    }
    if (this.#running.size < this.#o.size) {
      const t = new Task(this.#onAbort, task, input, signal, options?.transferList);
      this.#start(t);
      return t.promise as Promise<T>;
    }
    if (this.#waiting.size >= this.#o.maxQueue) return this.#refuse(task);
    const t = new Task(this.#onAbort, task, input, signal, options?.transferList);
    this.#waiting.push(t);
    return t.promise as Promise<T>;
  }

  stats(): ThreadPoolStats {
    const p = this.#piscina;
    let runTimeMs = { p50: 0, p90: 0, p99: 0, max: 0 };
    if (p !== undefined && p.completed > 0) {
      const h = p.histogram.runTime;
      runTimeMs = { p50: h.p50, p90: h.p90, p99: h.p99, max: h.max };
    }
    return {
      size: this.#o.size,
      threads: p?.threads.length ?? 0,
      active: this.#running.size,
      queued: this.#waiting.size,
      maxQueue: this.#o.maxQueue,
      completed: this.#completed,
      failed: this.#failed,
      rejected: this.#rejected,
      timedOut: this.#timedOut,
      aborted: this.#aborted,
      runTimeMs,
    };
  }

  /**
   * Stops taking tasks: queued tasks reject with `PoolClosedError`, running ones finish (each
   * within its `taskTimeoutMs`), then every worker thread is terminated. With `force`, running
   * tasks are aborted too (their threads terminated at once). Idempotent; `force` may follow a
   * graceful close that is still waiting.
   */
  close(options?: { force?: boolean }): Promise<void> {
    const first = this.#closing === undefined;
    if (first) {
      this.#closing = this.#shutDown();
      this.#closing.then(undefined, ignore);
      for (let t = this.#waiting.head; t !== undefined; t = this.#waiting.head) {
        this.#waiting.remove(t);
        t.settle(
          false,
          withoutStack(() => new PoolClosedError(this.name)),
          this.#o.clock,
        );
      }
    }
    if (options?.force === true && !this.#forced) {
      this.#forced = true;
      for (const t of [...this.#running]) this.#abort(t, new PoolClosedError(this.name), 'closed');
    }
    return this.#closing!;
  }

  /** A task leaves early: the caller aborted, its timeout passed, or the pool was force-closed. */
  #abort(task: Task, reason: unknown, why: 'aborted' | 'timeout' | 'closed'): void {
    if (task.settled) return;
    if (why === 'aborted') this.#aborted++;
    else if (why === 'timeout') this.#timedOut++;
    task.settle(false, reason, this.#o.clock);
    // A queued task just leaves. A running one is aborted in piscina, which rejects it at once
    // and terminates its worker; the thread slot comes back then.
    if (this.#waiting.remove(task)) return;
    const piscina = this.#piscina;
    if (piscina !== undefined) this.#track(piscina);
    task.controller?.abort(reason);
    if (piscina !== undefined) this.#track(piscina); // the replacement piscina has just started
  }

  /** Takes a thread for `task`: at once if piscina is loaded, else once it is. */
  #start(task: Task): void {
    this.#running.add(task);
    const piscina = this.#piscina;
    if (piscina !== undefined) {
      this.#dispatch(piscina, task);
      return;
    }
    this.#load().then(
      (p) => this.#dispatch(p, task),
      (error: unknown) => {
        if (task.settle(false, error, this.#o.clock)) this.#failed++;
        this.#release(task);
      },
    );
  }

  #dispatch(piscina: Piscina, task: Task): void {
    if (task.settled) {
      // Aborted while piscina loaded: it never reached a thread.
      this.#release(task);
      return;
    }
    const controller = (task.controller = new AbortController());
    if (this.#o.taskTimeoutMs !== Number.POSITIVE_INFINITY) {
      if (this.#starting.size === 0) this.#arm(task);
      else this.#timersDue.push(task);
    }
    piscina
      .run(task.input, {
        name: task.name,
        signal: controller.signal,
        transferList: task.transferList as TransferListItem[] | undefined,
      })
      .then(
        (value: unknown) => {
          if (task.settle(true, value, this.#o.clock)) this.#completed++;
          this.#release(task);
        },
        (error: unknown) => {
          if (task.settle(false, markPermanent(error), this.#o.clock)) this.#failed++;
          this.#track(piscina); // a worker that died has just been replaced
          this.#release(task);
        },
      );
  }

  #arm(task: Task): void {
    if (task.settled) return;
    const ms = this.#o.taskTimeoutMs;
    task.timer = this.#o.clock.setTimeout(() => this.#timeout(task, ms), ms);
  }

  #timeout(task: Task, ms: number): void {
    task.timer = undefined;
    if (task.settled) return;
    if (this.events.demand !== 0) {
      this.events.emit({ type: 'pool:timeout', policy: this.name, operation: task.name, timeoutMs: ms });
    }
    this.#abort(task, new TimeoutError(ms), 'timeout');
  }

  /** Gives a thread back and hands it to the next queued task. */
  #release(task: Task): void {
    this.#running.delete(task);
    const next = this.#waiting.head;
    if (next !== undefined && this.#running.size < this.#o.size) {
      this.#waiting.remove(next);
      this.#start(next);
      return;
    }
    if (this.#running.size === 0) this.#drained?.();
  }

  #refuse(task: string): Promise<never> {
    this.#rejected++;
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'pool:rejected',
        policy: this.name,
        operation: task,
        reason: 'queue-full',
        active: this.#running.size,
        queued: this.#waiting.size,
      });
    }
    return rejectSoon(withoutStack(() => new BulkheadRejectedError(this.name, 'queue-full')));
  }

  #load(): Promise<Piscina> {
    this.#loading ??= importPiscina().then((Pool) => {
      const o = this.#o;
      const piscina = new Pool({
        filename: o.module,
        minThreads: o.size,
        maxThreads: o.size,
        // Bulwark hands piscina at most `size` tasks; its queue only holds a task while a
        // terminated worker's replacement starts.
        maxQueue: o.size,
        idleTimeout: Number.POSITIVE_INFINITY,
        ...(o.maxHeapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: o.maxHeapMb } }),
      });
      // piscina emits 'error' for a worker that dies with no task on it (a module that fails
      // to load, say); unheard, an EventEmitter's 'error' would crash the process.
      piscina.on('error', (error: unknown) => {
        process.emitWarning(`Thread pool '${o.name}': ${String(error)}`, 'BulwarkThreadPoolWarning');
        if (piscina.threads.length === 0 && this.#piscina === piscina) this.#broken(piscina, error);
      });
      piscina.on('workerCreate', () => this.#track(piscina));
      this.#track(piscina);
      this.#piscina = piscina;
      return piscina;
    });
    return this.#loading;
  }

  /**
   * piscina stops replacing threads that fail while starting (a module that does not load): it
   * is left with none, and tasks would wait for a thread forever. Fail them with the cause, and
   * start afresh on the next `run` (the module may be fixed by then).
   */
  #broken(piscina: Piscina, error: unknown): void {
    this.#piscina = undefined;
    this.#loading = undefined;
    piscina.destroy().then(undefined, ignore);
    const reason = notTransient(error);
    for (let t = this.#waiting.head; t !== undefined; t = this.#waiting.head) {
      this.#waiting.remove(t);
      if (t.settle(false, reason, this.#o.clock)) this.#failed++;
    }
    for (const t of [...this.#running]) {
      if (t.settle(false, reason, this.#o.clock)) this.#failed++;
      t.controller?.abort(reason); // out of piscina's queue; the slot comes back when it rejects
    }
  }

  /** Follows every worker thread piscina has now: when it has started, when it exits. */
  #track(piscina: Piscina): void {
    for (const worker of piscina.threads) {
      if (this.#alive.has(worker)) continue;
      this.#starting.add(worker);
      // piscina's worker posts one message on its parent port once it has loaded the module.
      const started = () => {
        worker.off('message', started);
        this.#started(worker);
      };
      worker.on('message', started);
      this.#alive.set(
        worker,
        new Promise((resolve) => {
          worker.once('exit', () => {
            started();
            this.#alive.delete(worker);
            resolve();
          });
        }),
      );
    }
  }

  #started(worker: Worker): void {
    if (!this.#starting.delete(worker) || this.#starting.size !== 0) return;
    const due = this.#timersDue;
    if (due.length === 0) return;
    this.#timersDue = [];
    for (const task of due) this.#arm(task);
  }

  async #shutDown(): Promise<void> {
    if (this.#running.size > 0) {
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    }
    // A pool closed before its first task may still be loading piscina: wait, then stop it.
    if (this.#loading !== undefined) await this.#loading.then(undefined, ignore);
    const piscina = this.#piscina;
    if (piscina === undefined) return;
    const kept = new Set(piscina.threads);
    await Promise.all([...this.#alive].filter(([worker]) => !kept.has(worker)).map(([, exit]) => exit));
    await piscina.destroy();
  }
}

const ignore = () => {};

async function importPiscina(): Promise<typeof Piscina> {
  try {
    return (await import('piscina')).Piscina;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw Object.assign(
        new Error(
          'The thread-pool bulkhead needs the optional peer dependency piscina: run `npm install piscina`',
          { cause: error },
        ),
        { code, transient: false },
      );
    }
    throw error;
  }
}

/**
 * Errors of a worker that died, not of a task that threw (a task's own errors arrive cloned,
 * without `code`): a heap exhausted, a module that does not load. The same input would meet the
 * same end on a retry, so they are marked permanent, and otherwise kept as Node made them.
 */
const WORKER_DEATHS = new Set(['ERR_WORKER_OUT_OF_MEMORY', 'ERR_MODULE_NOT_FOUND']);

function markPermanent(error: unknown): unknown {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && WORKER_DEATHS.has(code) ? notTransient(error) : error;
}

/** Marks an error permanent for `classify` (which honours an explicit `transient`), keeping it as it is. */
function notTransient(error: unknown): unknown {
  if (typeof error === 'object' && error !== null) {
    Object.defineProperty(error, 'transient', { value: false, configurable: true, writable: true });
  }
  return error;
}

/** A thread-pool bulkhead. See {@link ThreadPoolOptions} for the defaults. */
export function threadPool(options: ThreadPoolInit): ThreadPool {
  return new ThreadPool(options);
}
