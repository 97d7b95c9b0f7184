// One typed event stream per policy and per pipeline; emitting costs a single integer check
// when nobody listens, because emit sites test `demand` before building an event object.

/** Fields every event carries. */
export interface EventBase {
  /** The policy's name (its kind unless named in its options). */
  readonly policy: string;
  /** The `operation` given to `execute`, if any. */
  readonly operation: string | undefined;
}

export interface BulwarkEventMap {
  /**
   * An attempt made by a retry policy settled: `outcome` says how (a result that
   * `shouldRetryResult` rejected counts as `'failure'`, with `error` undefined).
   */
  'retry:attempt': EventBase & {
    attempt: number;
    durationMs: number;
    outcome: 'success' | 'failure';
    error: unknown;
  };
  /** An attempt failed and the retry policy will try again after `delayMs`. `attempt` is the one that failed. */
  'retry:scheduled': EventBase & { attempt: number; delayMs: number; error: unknown; result: unknown };
  /** The retry policy gave up. */
  'retry:exhausted': EventBase & { attempts: number; error: unknown };
  /** The shared retry budget refused a retry; `retry:exhausted` follows. */
  'retry:budget-exhausted': EventBase & { attempts: number; error: unknown };
  /** The timeout fired; the attempt's signal was aborted. */
  'timeout:fired': EventBase & { timeoutMs: number };
  /** 75% or 90% of a timeout's budget has passed while the operation is still running. */
  'timeout:warning': EventBase & { fraction: 0.75 | 0.9; timeoutMs: number; elapsedMs: number };
  'breaker:opened': EventBase & {
    reason: 'failure-rate' | 'failure-count' | 'slow-call-rate' | 'consecutive-failures' | 'probe-failed';
    openMs: number;
    failureRate: number;
    slowCallRate: number;
  };
  'breaker:half-opened': EventBase;
  'breaker:closed': EventBase;
  'breaker:isolated': EventBase;
  /** A call was refused because the circuit is open, isolated, or half-open with its probes taken. */
  'breaker:rejected': EventBase & { state: 'open' | 'half-open' | 'isolated'; retryAfterMs: number };
  'bulkhead:rejected': EventBase & { reason: 'queue-full' | 'queue-timeout'; active: number; queued: number };
  'fallback:used': EventBase & { error: unknown };
  /** A rate limiter refused a call; `key` is the call's limit key (undefined: the default limit). */
  'ratelimit:rejected': EventBase & { key: string | undefined; retryAfterMs: number };
  /** A rate limiter let a call through after it waited `waitMs` in the queue (mode `'wait'`). */
  'ratelimit:waited': EventBase & { key: string | undefined; waitMs: number };
  /** An adaptive concurrency limit moved (on the sample of a settled call). */
  'adaptive:limit-changed': EventBase & { previousLimit: number; limit: number };
  /** An adaptive concurrency policy refused a call: at the limit, and its partition had used its share. */
  'adaptive:rejected': EventBase & {
    partition: string;
    retryAfterMs: number;
    limit: number;
    inflight: number;
  };
  /**
   * A hedge policy started another attempt: `attempt` 2 is the first hedge. `trigger` says why:
   * the hedge delay (`delayMs`) passed, or an earlier attempt failed before it.
   */
  'hedge:launched': EventBase & { attempt: number; delayMs: number; trigger: 'delay' | 'failure' };
  /** A cache answered from a fresh entry (a cached error included). */
  'cache:hit': EventBase & { key: string };
  /** A cache found nothing usable and ran the call (shared with callers that join it). */
  'cache:miss': EventBase & { key: string };
  /** A call joined the execution already in flight for its key (single-flight). */
  'cache:coalesced': EventBase & { key: string };
  /**
   * A cache served an expired entry: `'revalidate'` while refreshing it in the background
   * (stale-while-revalidate), `'error'` because the fresh call failed (stale-if-error).
   * `staleMs` is how long past its expiry the entry was.
   */
  'cache:stale': EventBase & { key: string; reason: 'revalidate' | 'error'; staleMs: number };
  /** A chaos policy injected a fault, a delay or a replacement result into a call. */
  'chaos:injected': EventBase & { kind: 'fault' | 'latency' | 'result' };
  /**
   * An HTTP client got a new OAuth2 access token: its first (`'initial'`), one about to expire
   * (`'expiring'`) or one the API refused with a 401 (`'unauthorized'`). Never carries the token.
   * `expiresInMs` is the token's lifetime (`Infinity` when the server gave none).
   */
  'http:auth-refreshed': EventBase & { reason: 'initial' | 'expiring' | 'unauthorized'; expiresInMs: number };
  /** An HTTP client's OAuth2 token request failed; every caller waiting for it got `error` (an `HttpAuthError`). */
  'http:auth-failed': EventBase & { error: unknown };
  /** A thread pool refused a task: every thread busy and its queue full. `operation` is the task. */
  'pool:rejected': EventBase & { reason: 'queue-full'; active: number; queued: number };
  /** A thread-pool task ran past its `timeoutMs`; its worker thread is terminated and replaced. */
  'pool:timeout': EventBase & { timeoutMs: number };
  /**
   * A call through the dependency registry settled. `policy` is the dependency's name; a call
   * made for a failover group names the group in `group`.
   */
  'dependency:call': EventBase & {
    dependency: string;
    outcome: 'success' | 'failure' | 'timeout' | 'rejected' | 'cancelled';
    durationMs: number;
    error: unknown;
    group: string | undefined;
  };
  /** A failover group gave up on `from` (it failed, its circuit was open, or it is cooling down after a 429/503 with Retry-After) and moves to `to` (undefined: none left). */
  'group:failover': EventBase & {
    group: string;
    from: string;
    to: string | undefined;
    reason: 'failed' | 'circuit-open' | 'rate-limited';
    error: unknown;
  };
  /** A failover group's call ended: `provider` served it (undefined: none did, and `degraded` says whether its fallback answered). */
  'group:served': EventBase & {
    group: string;
    provider: string | undefined;
    tried: readonly string[];
    degraded: boolean;
  };
  /** The registry took a new configuration: dependencies added, rebuilt or removed (unchanged ones kept their state). */
  'registry:reloaded': EventBase & {
    added: readonly string[];
    changed: readonly string[];
    removed: readonly string[];
  };
}

export type BulwarkEventType = keyof BulwarkEventMap;
/** Any event, discriminated by `type`. */
export type BulwarkEvent = { [K in BulwarkEventType]: { type: K } & BulwarkEventMap[K] }[BulwarkEventType];

type AnyListener = (event: BulwarkEvent) => void;

/**
 * A stream of events. Policies emit into their own stream; a pipeline's stream receives the
 * events of all its policies. `on` and `onAny` return a function that unsubscribes.
 */
export class EventStream {
  /** How many listeners would receive an event emitted here (own and downstream). @internal */
  demand = 0;
  // Allocated on first use: most policies are never listened to, and an idle policy should
  // cost as little memory as possible (10,000 breakers is a normal size for a registry).
  #listeners: Map<string, AnyListener[]> | undefined;
  #sinks: EventStream[] | undefined;
  #sources: EventStream[] | undefined;

  on<K extends BulwarkEventType>(
    type: K,
    listener: (event: { type: K } & BulwarkEventMap[K]) => void,
  ): () => void {
    return this.#add(type, listener as AnyListener);
  }

  /** Every event, whatever its type. */
  onAny(listener: (event: BulwarkEvent) => void): () => void {
    return this.#add('*', listener);
  }

  /** Emit an event. Call sites check `demand !== 0` first so that no event is built for nobody. @internal */
  emit(event: BulwarkEvent): void {
    if (this.demand === 0) return;
    this.#deliver(event);
  }

  /** Forward everything emitted here to `sink` as well. @internal */
  forwardTo(sink: EventStream): void {
    this.#sinks ??= [];
    if (this.#sinks.includes(sink)) return;
    this.#sinks.push(sink);
    (sink.#sources ??= []).push(this);
    this.#addDemand(sink.demand);
  }

  /** Stop forwarding to `sink` (a dependency replaced on reload stops feeding the registry). @internal */
  unforwardTo(sink: EventStream): void {
    const at = this.#sinks?.indexOf(sink) ?? -1;
    if (at < 0) return;
    this.#sinks!.splice(at, 1);
    const sources = sink.#sources!;
    sources.splice(sources.indexOf(this), 1);
    this.#addDemand(-sink.demand);
  }

  #deliver(event: BulwarkEvent): void {
    const listeners = this.#listeners;
    if (listeners !== undefined) {
      const typed = listeners.get(event.type);
      if (typed !== undefined) for (const l of typed) call(l, event);
      const any = listeners.get('*');
      if (any !== undefined) for (const l of any) call(l, event);
    }
    if (this.#sinks !== undefined)
      for (const sink of this.#sinks) if (sink.demand !== 0) sink.#deliver(event);
  }

  #add(key: string, listener: AnyListener): () => void {
    // A copy per change keeps delivery safe while a listener unsubscribes itself.
    const listeners = (this.#listeners ??= new Map());
    listeners.set(key, [...(listeners.get(key) ?? []), listener]);
    this.#addDemand(1);
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      // Remove this subscription only: the same function subscribed twice stays subscribed once.
      const list = [...(listeners.get(key) ?? [])];
      const at = list.indexOf(listener);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) listeners.delete(key);
      else listeners.set(key, list);
      this.#addDemand(-1);
    };
  }

  #addDemand(delta: number): void {
    if (delta === 0) return;
    this.demand += delta;
    if (this.#sources !== undefined) for (const source of this.#sources) source.#addDemand(delta);
  }
}

function call(listener: AnyListener, event: BulwarkEvent): void {
  try {
    listener(event);
  } catch (error) {
    // A faulty listener must not fail the call it observes; surface it without crashing.
    process.emitWarning(
      `Bulwark event listener for '${event.type}' threw: ${String(error)}`,
      'BulwarkListenerError',
    );
  }
}
