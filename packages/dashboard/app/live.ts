// Server-Sent Events for the page: one connection to the system stream shared by every view, and
// one per open run. EventSource resends Last-Event-ID on its own reconnects; when the browser gives
// up (an HTTP error answer closes it for good) we open a new one from the last id via ?lastEventId=.

/** Every timeline event type the workflow engine writes (packages/workflow/src/engine/execution.ts). */
export const RUN_EVENT_TYPES = [
  'run:queued',
  'run:started',
  'run:resumed',
  'run:retried',
  'run:sleeping',
  'run:waiting',
  'run:event-received',
  'run:progress',
  'run:suspended',
  'run:compensating',
  'run:completed',
  'run:degraded',
  'run:failed',
  'run:compensated',
  'run:cancelled',
] as const;

export const STEP_EVENT_TYPES = [
  'step:started',
  'step:retry-scheduled',
  'step:completed',
  'step:failed',
  'step:fallback',
  'step:parked',
  'compensation:started',
  'compensation:completed',
  'compensation:failed',
] as const;

/** Dependency events of the system stream (packages/server/src/http/live/system.ts). */
export const DEPENDENCY_EVENT_TYPES = [
  'breaker:opened',
  'breaker:half-opened',
  'breaker:closed',
  'breaker:isolated',
  'registry:reloaded',
  'group:failover',
  'dependency:snapshot',
] as const;

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'stale' | 'ended';

export interface LiveState {
  status: LiveStatus;
  /** When the connection was last lost (epoch ms); null while live. */
  since: number | null;
}

export interface LiveMessage {
  type: string;
  id: string;
  data: any;
}

/** After this long without a connection the data on screen is called stale, not just reconnecting. */
export const STALE_AFTER_MS = 10_000;
/** Our own retry after the browser gave up, doubling to the cap. */
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 30_000;

export interface LiveSourceOptions {
  url: string;
  types: readonly string[];
  onMessage: (message: LiveMessage) => void;
  onState?: (state: LiveState) => void;
  /** The stream's `end` frame: the source is closed, no reconnect (a finished run). */
  onEnd?: (data: any) => void;
}

export class LiveSource {
  readonly #o: LiveSourceOptions;
  #source: EventSource | undefined;
  #lastId = '';
  #state: LiveState = { status: 'connecting', since: null };
  #retryMs = RETRY_BASE_MS;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #staleTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(options: LiveSourceOptions) {
    this.#o = options;
    this.#open();
  }

  get state(): LiveState {
    return this.#state;
  }

  close(): void {
    this.#closed = true;
    this.#source?.close();
    clearTimeout(this.#retry);
    clearTimeout(this.#staleTimer);
  }

  #open(): void {
    const separator = this.#o.url.includes('?') ? '&' : '?';
    const url =
      this.#lastId === ''
        ? this.#o.url
        : `${this.#o.url}${separator}lastEventId=${encodeURIComponent(this.#lastId)}`;
    const source = new EventSource(url);
    this.#source = source;
    const handle = (event: MessageEvent<string>) => {
      if (event.lastEventId !== '') this.#lastId = event.lastEventId;
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        data = event.data;
      }
      this.#o.onMessage({ type: event.type, id: event.lastEventId, data });
    };
    for (const type of [...this.#o.types, 'gap']) source.addEventListener(type, handle as EventListener);
    source.addEventListener('end', ((event: MessageEvent<string>) => {
      source.close();
      this.#closed = true;
      this.#setState({ status: 'ended', since: null });
      this.#o.onEnd?.(JSON.parse(event.data));
    }) as EventListener);
    source.onopen = () => {
      this.#retryMs = RETRY_BASE_MS;
      clearTimeout(this.#staleTimer);
      this.#setState({ status: 'live', since: null });
    };
    source.onerror = () => {
      if (this.#closed) return;
      const since = this.#state.since ?? Date.now();
      if (source.readyState === EventSource.CLOSED) {
        // The browser will not try again (an error status, e.g. 503 while the server drains): we do.
        this.#retry = setTimeout(() => this.#open(), this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
      }
      this.#lost(since);
    };
  }

  #lost(since: number): void {
    const stale = Date.now() - since >= STALE_AFTER_MS;
    this.#setState({ status: stale ? 'stale' : 'reconnecting', since });
    if (!stale && this.#staleTimer === undefined) {
      this.#staleTimer = setTimeout(
        () => {
          this.#staleTimer = undefined;
          if (!this.#closed && this.#state.status === 'reconnecting')
            this.#setState({ status: 'stale', since });
        },
        STALE_AFTER_MS - (Date.now() - since),
      );
    }
  }

  #setState(state: LiveState): void {
    this.#state = state;
    this.#o.onState?.(state);
  }
}

type Listener = (message: LiveMessage) => void;

/** The system stream, opened once for the whole page; views subscribe to what they show. */
export class SystemFeed {
  readonly #listeners = new Set<Listener>();
  readonly #stateListeners = new Set<(state: LiveState) => void>();
  readonly #source: LiveSource;

  constructor(url = 'api/stream') {
    this.#source = new LiveSource({
      url,
      types: [...DEPENDENCY_EVENT_TYPES, ...RUN_EVENT_TYPES, 'step:parked'],
      onMessage: (message) => {
        for (const listener of this.#listeners) listener(message);
      },
      onState: (state) => {
        for (const listener of this.#stateListeners) listener(state);
      },
    });
  }

  get state(): LiveState {
    return this.#source.state;
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onState(listener: (state: LiveState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  close(): void {
    this.#source.close();
  }
}

/**
 * Calls `fn` at most once per `ms` however many times it is poked, the last poke always honoured:
 * a burst of stream events costs one refresh, not one per event.
 */
export function coalesce(fn: () => void, ms: number): { poke(): void; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = 0;
  return {
    poke() {
      if (timer !== undefined) return;
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(() => {
        timer = undefined;
        last = Date.now();
        fn();
      }, wait);
    },
    cancel() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
