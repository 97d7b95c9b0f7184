// One hub per run being watched: it reads the run's new timeline events from the store once per
// wake-up and sends each batch to every subscriber, so a thousand viewers cost one reader.
import type { Clock, TimerHandle } from '@bulwark/core';
import { FINAL_STATUSES, type RunStatus, type WorkflowStore } from '@bulwark/workflow';
import type { FastifyBaseLogger } from 'fastify';
import { Batch } from './frames.ts';

/** Events per store read: a history page, and the most one wake-up sends at once. */
export const PAGE = 500;

/** A client of one run's timeline (an SSE response or a WebSocket). */
export interface Subscriber {
  /** The highest seq sent to this client: it gets only events after it. */
  cursor: number;
  /** True once the connection is gone: readers stop working for it. */
  readonly closed: boolean;
  /** Sends a page of history; resolves when the client may be sent more (its buffer drained). */
  history(batch: Batch, from: number): Promise<void>;
  /** Sends live events from index `from`, or drops the client if it cannot keep up (see sse.ts). */
  live(batch: Batch, from: number): void;
  /** The run is final and everything was sent. */
  end(status: RunStatus | 'deleted'): void;
}

interface HubDeps {
  store: WorkflowStore;
  clock: Clock;
  log: FastifyBaseLogger;
  pollMs: number;
}

/** The hubs of one server, by run id. */
export class RunHubs {
  readonly #deps: HubDeps;
  readonly #hubs = new Map<string, RunHub>();
  /**
   * One store listener for all hubs, routing `run:<id>` by a map lookup: a store write does not
   * call every hub of the server to find the one it concerns.
   */
  #unsubscribe: (() => void) | undefined;

  constructor(deps: HubDeps) {
    this.#deps = deps;
  }

  get size(): number {
    return this.#hubs.size;
  }

  /**
   * Sends `subscriber` the run's history after its cursor, page by page, then joins it to the
   * run's hub. The seam: events stored after the last page was read reach the subscriber through
   * the hub, whose batches are filtered by seq, so none is lost or sent twice. The hub may have
   * sent some of them already (its cursor is past the subscriber's): then read once more.
   * Resolves once joined (or closed); the subscriber leaves with `leave`.
   */
  async join(runId: string, subscriber: Subscriber): Promise<void> {
    const { store } = this.#deps;
    for (;;) {
      const page = await store.events(runId, subscriber.cursor, PAGE);
      if (subscriber.closed) return;
      if (page.length > 0) {
        const batch = new Batch(page);
        await subscriber.history(batch, batch.firstAfter(subscriber.cursor));
        if (subscriber.closed) return;
        subscriber.cursor = Math.max(subscriber.cursor, batch.lastSeq);
        if (page.length === PAGE) continue;
      }
      let hub = this.#hubs.get(runId);
      if (hub === undefined) {
        hub = new RunHub(runId, subscriber.cursor, this.#deps, () => this.#remove(runId));
        this.#hubs.set(runId, hub);
        this.#unsubscribe ??= store.subscribe((topic) => {
          if (topic.startsWith('run:')) this.#hubs.get(topic.slice(4))?.wake();
        });
      }
      if (hub.cursor <= subscriber.cursor) {
        hub.add(subscriber);
        return;
      }
    }
  }

  leave(runId: string, subscriber: Subscriber): void {
    this.#hubs.get(runId)?.remove(subscriber);
  }

  close(): void {
    for (const hub of [...this.#hubs.values()]) hub.close();
  }

  #remove(runId: string): void {
    this.#hubs.delete(runId);
    if (this.#hubs.size === 0) {
      this.#unsubscribe?.();
      this.#unsubscribe = undefined;
    }
  }
}

class RunHub {
  /** The highest seq sent to the subscribers (or the first subscriber's cursor). */
  cursor: number;
  readonly #runId: string;
  readonly #deps: HubDeps;
  readonly #onClose: () => void;
  readonly #subscribers = new Set<Subscriber>();
  #started = false;
  /** The next read: the poll, or a paced read (see `wake`). */
  #timer: TimerHandle | undefined;
  #timerIsPoll = false;
  #reading = false;
  #again = false;
  /** Read the run's status after the next read: at start, and after a run:* event. */
  #checkStatus = true;
  #closed = false;
  /** When the last fan-out ended and how long it took (performance.now() ms). */
  #fannedAt = 0;
  #fanOutMs = 0;

  constructor(runId: string, cursor: number, deps: HubDeps, onClose: () => void) {
    this.#runId = runId;
    this.cursor = cursor;
    this.#deps = deps;
    this.#onClose = onClose;
  }

  add(subscriber: Subscriber): void {
    this.#subscribers.add(subscriber);
    if (this.#started) return;
    this.#started = true;
    this.wake();
  }

  remove(subscriber: Subscriber): void {
    if (this.#subscribers.delete(subscriber) && this.#subscribers.size === 0) this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    this.#onClose();
  }

  /**
   * The run changed (a store wake-up) or may have (the poll): read what is new. Paced: the next
   * fan-out starts no sooner after the last one than that one took. A hub of a few subscribers
   * fans out in microseconds and is not held back; one of thousands, whose fan-out costs
   * milliseconds (a write per client), spends at most about half its time writing, and the
   * events that arrive meanwhile go out together, one write per client instead of one per event.
   */
  wake(): void {
    if (this.#closed || !this.#started) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined && !this.#timerIsPoll) return;
    this.#clearTimer();
    const wait = this.#fannedAt + this.#fanOutMs - performance.now();
    if (wait < 1) {
      void this.#read();
      return;
    }
    this.#timerIsPoll = false;
    this.#timer = this.#deps.clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#read();
    }, wait);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #read(): Promise<void> {
    if (this.#closed || this.#reading) return;
    this.#reading = true;
    this.#again = false;
    try {
      await this.#readNew();
      if (this.#closed) return;
      if (this.#checkStatus) {
        this.#checkStatus = false;
        const run = await this.#deps.store.getRun(this.#runId);
        if (this.#closed) return;
        if (run === undefined || FINAL_STATUSES.includes(run.status)) {
          // The final event is committed with the final status: one more read has them all.
          await this.#readNew();
          if (this.#closed) return;
          for (const subscriber of this.#subscribers) subscriber.end(run?.status ?? 'deleted');
          this.close();
          return;
        }
      }
    } catch (error) {
      // The poll below tries again; the subscribers keep their place.
      this.#deps.log.warn({ err: error, runId: this.#runId }, 'live: reading a run timeline failed');
    } finally {
      this.#reading = false;
      if (!this.#closed) {
        if (this.#again) {
          this.wake();
        } else {
          // Wake-ups reach this process only from its own writes (SQLite) or may be lost while
          // a LISTEN connection is down (PostgreSQL): the poll sees other changes within pollMs.
          this.#timerIsPoll = true;
          this.#timer = this.#deps.clock.setTimeout(() => {
            this.#timer = undefined;
            this.wake();
          }, this.#deps.pollMs);
        }
      }
    }
  }

  async #readNew(): Promise<void> {
    for (;;) {
      const events = await this.#deps.store.events(this.#runId, this.cursor, PAGE);
      if (this.#closed || events.length === 0) return;
      const started = performance.now();
      const batch = new Batch(events);
      this.cursor = batch.lastSeq;
      if (events.some((e) => e.type.startsWith('run:') && e.type !== 'run:progress')) {
        this.#checkStatus = true;
      }
      for (const subscriber of this.#subscribers) {
        const from = batch.firstAfter(subscriber.cursor);
        if (from === events.length) continue;
        subscriber.live(batch, from);
        subscriber.cursor = batch.lastSeq;
      }
      // Measured once the writes are done: a response writes to its socket on the next tick.
      setImmediate(() => {
        this.#fannedAt = performance.now();
        this.#fanOutMs = this.#fannedAt - started;
      });
      if (events.length < PAGE) return;
    }
  }
}
