// /api/stream: what changes across the system, for dashboards: dependency events (breakers,
// reloads, failovers) from the registry, snapshots of the dependencies that changed (coalesced),
// and run status changes from the store's run feed, read by one reader for all clients and
// resumable through a two-part event id.
import type { BulwarkEvent, Clock, DependencyRegistry, TimerHandle } from '@bulwark/core';
import type { FeedEvent, WorkflowStore } from '@bulwark/workflow';
import type { FastifyBaseLogger } from 'fastify';
import type { DependencyMonitor } from '../monitor/monitor.ts';
import { dependencyView } from '../monitor/view.ts';
import { liveEvent } from './frames.ts';
import { PAGE } from './hub.ts';
import type { SseStream } from './sse.ts';

/** The registry events the system stream carries. */
export const DEPENDENCY_EVENTS = [
  'breaker:opened',
  'breaker:half-opened',
  'breaker:closed',
  'breaker:isolated',
  'registry:reloaded',
  'group:failover',
] as const;

/**
 * Where a client is: the store seq of the last run event and the counter of the last dependency
 * event it was sent. The SSE id is `<run>.<dep>`.
 */
export interface SystemCursor {
  run: number;
  dep: number;
}

const CURSOR = /^(\d{1,15})(?:\.(\d{1,16}))?$/;

/** Parses `<run>.<dep>` (or `<run>` alone); undefined if malformed. */
export function parseSystemCursor(value: string): SystemCursor | undefined {
  const match = CURSOR.exec(value);
  if (match === null) return undefined;
  return { run: Number(match[1]), dep: match[2] === undefined ? 0 : Number(match[2]) };
}

interface DepEntry {
  readonly seq: number;
  readonly type: string;
  readonly json: string;
}

interface Client extends SystemCursor {
  readonly stream: SseStream;
}

/** The snapshot frames' event name; they carry no id (state, not history: a reconnect gets them all anew). */
export const SNAPSHOT_EVENT = 'dependency:snapshot';

export interface SystemFeedOptions {
  store: WorkflowStore;
  registry: DependencyRegistry;
  monitor: DependencyMonitor;
  clock: Clock;
  log: FastifyBaseLogger;
  pollMs: number;
  coalesceMs: number;
  ringSize: number;
  /** Snapshots of one dependency go out at most this often; the latest state wins. */
  snapshotMs: number;
}

/** A run-feed event's `data:` JSON; only the SSE id line differs from client to client. */
function feedJson(event: FeedEvent): string {
  const { id, ...rest } = liveEvent(event);
  return JSON.stringify({ seq: id, runId: event.runId, workflow: event.workflow, ...rest });
}

/** An error as a client sees it: its kind and message, never a stack or a live object. */
function errorView(error: unknown): { name: string; message: string; code?: string } | null {
  if (error === undefined || error === null) return null;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(error) };
}

export class SystemFeed {
  readonly #o: SystemFeedOptions;
  readonly #clients = new Set<Client>();
  readonly #ring: DepEntry[] = [];
  /**
   * The dependency counter starts at the wall clock, so ids of an earlier process are lower than
   * this one's: a client resuming across a restart gets a gap marker instead of skipping events.
   */
  readonly #depStart: number;
  #depSeq: number;
  readonly #stopListening: (() => void)[];
  /** Clients attached or attaching: the run-feed reader runs while there is one. */
  #members = 0;
  #ready: Promise<void> | undefined;
  /** Bumped at each stop: work begun before it (a read, a start) is not applied after it. */
  #generation = 0;
  #runCursor = 0;
  #unsubscribe: (() => void) | undefined;
  #poll: TimerHandle | undefined;
  #soon: TimerHandle | undefined;
  #reading = false;
  #again = false;
  #lastReadAt = 0;
  #closed = false;
  /** Dependencies changed since the last snapshot flush. */
  readonly #dirty = new Set<string>();
  /** Runs parked per dependency as last sent: a change in the count is a change to send. */
  #parked: Record<string, number> = {};
  /** Count the parked runs again at the next flush (the run feed moved). */
  #recountParked = false;
  #snapshotTimer: TimerHandle | undefined;
  #flushing = false;
  #lastFlushAt = 0;

  constructor(options: SystemFeedOptions) {
    this.#o = options;
    this.#depStart = this.#depSeq = options.clock.now();
    // Always listening, not only while a client is connected: a client that reconnects after
    // being the only one must find what happened meanwhile in the ring (breaker events are rare,
    // so the ring costs nothing; the registry builds events anyway for the metrics).
    this.#stopListening = [
      ...DEPENDENCY_EVENTS.map((type) =>
        options.registry.events.on(type, (event) => this.#dependencyEvent(event as BulwarkEvent)),
      ),
      // Every settled call changes its dependency's figures; rejections by a bulkhead or limiter included.
      options.registry.events.on('dependency:call', (event) => this.#touch(event.dependency)),
    ];
  }

  /**
   * Streams the system's changes to `stream` from `resume` (or from now): the run events after
   * its run cursor read from the store, the dependency events after its counter from the ring
   * (a gap marker if some fell out of it), then everything live.
   */
  async attach(stream: SseStream, resume: SystemCursor | undefined): Promise<void> {
    const client: Client = { stream, run: 0, dep: 0 };
    this.#members++;
    stream.onClose(() => {
      this.#clients.delete(client);
      if (--this.#members === 0) this.#stop();
    });
    await this.#start();
    if (stream.closed) return;
    client.run = resume?.run ?? this.#runCursor;
    client.dep = resume?.dep ?? this.#depSeq;
    let parked: Record<string, number>;
    for (;;) {
      // Where the shared reader stood before this read: the read sees every run event up to it.
      const horizon = this.#runCursor;
      const page = await this.#o.store.runFeed(client.run, PAGE);
      if (stream.closed) return;
      if (page.length > 0) {
        stream.write(this.#runFrames(client, page, page.map(feedJson)));
        await stream.drained();
        if (stream.closed) return;
        if (page.length === PAGE) continue;
      }
      // Caught up to the horizon, which may lie past the last run event (the reader starts at
      // the newest event of any kind): without this, the seam check below never holds and the
      // loop reads an empty page again and again.
      client.run = Math.max(client.run, horizon);
      if (this.#runCursor > client.run) continue;
      parked = await this.#parkedCounts();
      if (stream.closed) return;
      // The seam, as for a run's hub: join once the reader has sent nothing this client lacks,
      // checked after the last await (the shared reader may have sent a page during the count).
      if (this.#runCursor <= client.run) break;
    }
    // From here on synchronous: no dependency event can fall between the catch-up and the join.
    this.#catchUpDependencies(client);
    // Where every dependency stands now; from here on only those that change.
    stream.write(this.#snapshots(this.#o.registry.names, parked));
    this.#clients.add(client);
  }

  close(): void {
    this.#closed = true;
    for (const stop of this.#stopListening) stop();
    this.#stop();
  }

  /**
   * A dependency changed: its snapshot goes out with the next flush, at most one flush per
   * snapshotMs, so a burst of a thousand calls costs each client one frame per dependency.
   * Nothing is kept or timed while no client listens.
   */
  #touch(name: string | null): void {
    if (name === null || this.#clients.size === 0 || this.#closed) return;
    this.#dirty.add(name);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#snapshotTimer !== undefined || this.#flushing) return;
    const delay = Math.max(0, this.#lastFlushAt + this.#o.snapshotMs - this.#o.clock.now());
    this.#snapshotTimer = this.#o.clock.setTimeout(() => {
      this.#snapshotTimer = undefined;
      void this.#flush();
    }, delay);
  }

  async #flush(): Promise<void> {
    if (this.#clients.size === 0 || this.#closed) {
      this.#dirty.clear();
      return;
    }
    this.#flushing = true;
    this.#lastFlushAt = this.#o.clock.now();
    try {
      const before = this.#parked;
      const parked = this.#recountParked ? await this.#parkedCounts() : before;
      this.#recountParked = false;
      for (const name of new Set([...Object.keys(before), ...Object.keys(parked)])) {
        if ((before[name] ?? 0) !== (parked[name] ?? 0)) this.#dirty.add(name);
      }
      const names = this.#o.registry.names.filter((name) => this.#dirty.has(name));
      this.#dirty.clear();
      if (names.length === 0) return;
      const chunk = this.#snapshots(names, parked);
      for (const client of this.#clients) if (!client.stream.over) client.stream.write(chunk);
    } catch (error) {
      this.#o.log.warn({ err: error }, 'live: building dependency snapshots failed');
    } finally {
      this.#flushing = false;
      // Changes that came during the flush go out with the next one.
      if (this.#dirty.size > 0 || this.#recountParked) this.#scheduleFlush();
    }
  }

  async #parkedCounts(): Promise<Record<string, number>> {
    try {
      this.#parked = await this.#o.store.parkedCounts();
    } catch (error) {
      // The last counts stand; the next flush asks again.
      this.#recountParked = true;
      this.#o.log.warn({ err: error }, 'live: counting parked runs failed');
    }
    return this.#parked;
  }

  /** One frame per dependency, as `GET /api/dependencies` shows it; all in one chunk. */
  #snapshots(names: readonly string[], parked: Record<string, number>): string {
    const { registry, monitor } = this.#o;
    let chunk = '';
    for (const name of names) {
      const view = dependencyView(monitor, registry.stats(name), parked);
      chunk += `event: ${SNAPSHOT_EVENT}\ndata: ${JSON.stringify(view)}\n\n`;
    }
    return chunk;
  }

  /** The dependency events a (re)joining client missed, from the ring; a gap for those gone from it, which informs only. */
  #catchUpDependencies(client: Client): void {
    // An id this process did not hand out (a later-started instance's) tells nothing: all of ours.
    if (client.dep > this.#depSeq) client.dep = this.#depStart;
    const oldest = this.#ring[0]?.seq ?? this.#depSeq + 1;
    if (client.dep + 1 < oldest) {
      const gap = { dependencies: { from: client.dep + 1, to: oldest - 1 } };
      // With an id past what was lost, so that a reconnect with it is not told of the gap again.
      client.dep = oldest - 1;
      client.stream.write(gapFrame(gap, `${client.run}.${client.dep}`));
    }
    let chunk = '';
    for (const entry of this.#ring) {
      if (entry.seq <= client.dep) continue;
      chunk += `id: ${client.run}.${entry.seq}\nevent: ${entry.type}\ndata: ${entry.json}\n\n`;
      client.dep = entry.seq;
    }
    if (chunk !== '') client.stream.write(chunk);
  }

  #dependencyEvent(event: BulwarkEvent): void {
    if (this.#closed) return;
    const { type, policy, operation, ...fields } = event as BulwarkEvent & { error?: unknown };
    const seq = ++this.#depSeq;
    // A failover names the provider it gave up on; other events the policy's dependency.
    const dependency =
      event.type === 'group:failover' ? event.from : (this.#o.monitor.dependencyOf(policy) ?? null);
    // The monitor heard the event first (it subscribed first) and recorded it with its reason.
    const transition =
      type.startsWith('breaker:') && dependency !== null
        ? this.#o.monitor.lastTransition(dependency)
        : undefined;
    const data = {
      seq,
      type,
      dependency,
      policy,
      ...(operation === undefined ? {} : { operation }),
      ...fields,
      ...('error' in fields ? { error: errorView(fields.error) } : {}),
      ...(transition === undefined ? {} : { transition }),
      at: this.#o.clock.now(),
    };
    if (event.type === 'registry:reloaded') {
      for (const name of [...event.added, ...event.changed]) this.#touch(name);
    } else {
      this.#touch(dependency);
    }
    const entry: DepEntry = { seq, type, json: JSON.stringify(data) };
    this.#ring.push(entry);
    if (this.#ring.length > this.#o.ringSize) this.#ring.shift();
    for (const client of this.#clients) {
      if (client.stream.over) {
        this.#drop(client, { dependencies: { from: seq, to: seq } });
        continue;
      }
      client.stream.write(`id: ${client.run}.${seq}\nevent: ${type}\ndata: ${entry.json}\n\n`);
      client.dep = seq;
    }
  }

  /**
   * A client over the buffer bound gets a gap marker and the stream ends (see
   * SseRunSubscriber.live): it reconnects with its last id, and the store and the ring give it
   * the rest.
   */
  #drop(client: Client, gap: object): void {
    this.#clients.delete(client);
    client.stream.finish(gapFrame(gap));
  }

  /** `json[i]` is `feedJson(events[i])`: made once per page, whatever the number of clients. */
  #runFrames(client: Client, events: readonly FeedEvent[], json: readonly string[]): string {
    let chunk = '';
    for (const [i, event] of events.entries()) {
      if (event.seq <= client.run) continue;
      chunk += `id: ${event.seq}.${client.dep}\nevent: ${event.type}\ndata: ${json[i]}\n\n`;
      client.run = event.seq;
    }
    return chunk;
  }

  #start(): Promise<void> {
    if (this.#ready !== undefined) return this.#ready;
    const generation = ++this.#generation;
    this.#ready = (async () => {
      // From now: the reader does not replay the past; a resuming client reads its own.
      const latest = await this.#o.store.latestSeq();
      if (generation !== this.#generation || this.#closed) return;
      this.#runCursor = latest;
      this.#unsubscribe = this.#o.store.subscribe((topic) => {
        if (topic === 'runs' || topic.startsWith('run:')) this.#readSoon();
      });
      this.#schedulePoll();
    })();
    // A store that failed to answer is asked again by the next client.
    this.#ready.catch(() => {
      if (generation === this.#generation) this.#ready = undefined;
    });
    return this.#ready;
  }

  #stop(): void {
    this.#generation++;
    if (this.#snapshotTimer !== undefined) this.#o.clock.clearTimeout(this.#snapshotTimer);
    this.#snapshotTimer = undefined;
    this.#dirty.clear();
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#ready = undefined;
    this.#again = false;
    if (this.#poll !== undefined) this.#o.clock.clearTimeout(this.#poll);
    if (this.#soon !== undefined) this.#o.clock.clearTimeout(this.#soon);
    this.#poll = this.#soon = undefined;
  }

  get #running(): boolean {
    return this.#unsubscribe !== undefined && !this.#closed;
  }

  /** Coalesced: a storm of wake-ups (every step of every run) costs one read per coalesceMs. */
  #readSoon(): void {
    if (!this.#running) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    if (this.#soon !== undefined) return;
    const delay = Math.max(0, this.#lastReadAt + this.#o.coalesceMs - this.#o.clock.now());
    this.#soon = this.#o.clock.setTimeout(() => {
      this.#soon = undefined;
      void this.#read();
    }, delay);
  }

  /** Stores that cannot tell other processes' writes (SQLite) are read every pollMs anyway. */
  #schedulePoll(): void {
    if (this.#poll !== undefined) this.#o.clock.clearTimeout(this.#poll);
    this.#poll = this.#o.clock.setTimeout(() => {
      this.#poll = undefined;
      this.#readSoon();
    }, this.#o.pollMs);
  }

  async #read(): Promise<void> {
    if (!this.#running || this.#reading) return;
    this.#reading = true;
    // Runs moved (a wake-up or the poll): some may have parked or resumed, which no `run:*`
    // event tells. The next snapshot flush counts them again: one indexed count per read.
    if (this.#clients.size > 0) {
      this.#recountParked = true;
      this.#scheduleFlush();
    }
    this.#lastReadAt = this.#o.clock.now();
    const generation = this.#generation;
    try {
      for (;;) {
        const page = await this.#o.store.runFeed(this.#runCursor, PAGE);
        // Stopped (and maybe restarted from a new cursor) meanwhile: this page is not ours.
        if (generation !== this.#generation || !this.#running || page.length === 0) break;
        this.#runCursor = page.at(-1)!.seq;
        let json: string[] | undefined;
        for (const client of this.#clients) {
          if (client.stream.over) {
            const first = page.find((e) => e.seq > client.run);
            if (first !== undefined) {
              this.#drop(client, { runs: { from: first.seq, to: this.#runCursor } });
            }
            continue;
          }
          json ??= page.map(feedJson);
          const chunk = this.#runFrames(client, page, json);
          if (chunk !== '') client.stream.write(chunk);
        }
        if (page.length < PAGE) break;
      }
    } catch (error) {
      this.#o.log.warn({ err: error }, 'live: reading the run feed failed');
    } finally {
      this.#reading = false;
      if (this.#running) {
        this.#schedulePoll();
        if (this.#again) {
          this.#again = false;
          this.#readSoon();
        }
      }
    }
  }
}

/** An SSE `gap` frame: with an id when the client may resume past what it says was lost. */
function gapFrame(gap: object, id?: string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: gap\ndata: ${JSON.stringify(gap)}\n\n`;
}
