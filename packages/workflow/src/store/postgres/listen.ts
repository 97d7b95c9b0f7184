// Wake-ups for subscribers: this process's own changes at once, other processes' through one
// dedicated LISTEN connection, and polling while that connection is off or down.
import type { Clock, TimerHandle } from '@bulwark/core';
import type { Client, Notification } from 'pg';
import type { WakeTopic } from '../types.ts';

type Listener = (topic: WakeTopic) => void;

export interface WakeupSource {
  /** The channel, unquoted (`pg_notify` takes it as is) and quoted (for LISTEN). */
  channel: string;
  quotedChannel: string;
  listen: boolean;
  pollMs: number;
  clock: Clock;
  /** A new client for the LISTEN connection (not from the pool: it is held for good). */
  connect: () => Promise<Client>;
  /** Runs with timeline events after `afterSeq`, and the last seq: what polling reports. */
  poll: (afterSeq: number) => Promise<{ last: number; runs: string[] }>;
  lastSeq: () => Promise<number>;
}

/**
 * While anyone subscribes, holds a LISTEN connection. If it cannot connect or drops, polls
 * every `pollMs` (waking subscribers with `runs`, and with `run:<id>` for every run whose
 * timeline grew) and tries to reconnect at the same pace; once back, one last poll covers the
 * notifications sent while it was away.
 */
export class Wakeups {
  readonly #source: WakeupSource;
  readonly #listeners = new Set<Listener>();
  #client: Client | undefined;
  #connecting = false;
  #timer: TimerHandle | undefined;
  #lastSeq: number | undefined;
  /** Between losing LISTEN (or never having it) and getting it back. */
  #polling = false;
  #closed = false;
  /** Bumped on every stop, so that a connect or poll that ends after it is ignored. */
  #generation = 0;

  constructor(source: WakeupSource) {
    this.#source = source;
  }

  /** Whether a LISTEN connection is up (for tests and health). */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  /** The LISTEN connection's server process id, if up (tests end it to prove the fallback). */
  get listenerPid(): number | undefined {
    return (this.#client as unknown as { processID?: number } | undefined)?.processID;
  }

  subscribe(listener: Listener): () => void {
    const wrapped: Listener = (topic) => listener(topic);
    this.#listeners.add(wrapped);
    if (this.#listeners.size === 1) this.#start();
    return () => {
      if (!this.#listeners.delete(wrapped)) return;
      if (this.#listeners.size === 0) this.#stop();
    };
  }

  /** Tells this process's subscribers at once (after the change is durable). */
  emit(topics: Iterable<WakeTopic>): void {
    if (this.#listeners.size === 0) return;
    for (const topic of topics) {
      for (const listener of this.#listeners) {
        try {
          listener(topic);
        } catch {
          // A subscriber's fault must not undo a commit that is already durable.
        }
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    await this.#stop();
  }

  #start(): void {
    if (this.#closed) return;
    if (this.#source.listen) void this.#connect();
    else this.#schedulePoll(0);
  }

  async #stop(): Promise<void> {
    this.#generation++;
    if (this.#timer !== undefined) this.#source.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lastSeq = undefined;
    this.#polling = false;
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await client.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    if (this.#connecting || this.#client !== undefined) return;
    this.#connecting = true;
    const generation = this.#generation;
    let client: Client | undefined;
    try {
      client = await this.#source.connect();
      client.on('error', () => this.#lost(client!));
      client.on('end', () => this.#lost(client!));
      client.on('notification', (message: Notification) => {
        if (message.channel === this.#source.channel && message.payload) {
          // One notification carries many topics, one per line.
          this.emit(message.payload.split('\n') as WakeTopic[]);
        }
      });
      await client.query(`LISTEN ${this.#source.quotedChannel}`);
    } catch {
      client?.end().catch(() => {});
      client = undefined;
    } finally {
      this.#connecting = false;
    }
    if (generation !== this.#generation || this.#closed) {
      client?.end().catch(() => {});
      return;
    }
    if (client === undefined) {
      this.#schedulePoll(this.#polling ? this.#source.pollMs : 0);
      return;
    }
    this.#client = client;
    if (this.#polling) {
      // Notifications sent while no one listened are lost: one poll catches what they said.
      this.#polling = false;
      await this.#pollOnce(generation);
      this.#lastSeq = undefined;
    }
  }

  #lost(client: Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.end().catch(() => {});
    // At once: the first poll marks where the timeline stood when the connection went.
    if (!this.#closed && this.#listeners.size > 0) this.#schedulePoll(0);
  }

  #schedulePoll(delayMs: number): void {
    if (this.#timer !== undefined || this.#closed || this.#listeners.size === 0) return;
    this.#polling = true;
    const generation = this.#generation;
    this.#timer = this.#source.clock.setTimeout(async () => {
      this.#timer = undefined;
      await this.#pollOnce(generation);
      if (generation !== this.#generation) return;
      if (this.#source.listen) await this.#connect();
      if (this.#client === undefined) this.#schedulePoll(this.#source.pollMs);
    }, delayMs);
  }

  async #pollOnce(generation: number): Promise<void> {
    try {
      if (this.#lastSeq === undefined) {
        this.#lastSeq = await this.#source.lastSeq();
        if (generation === this.#generation) this.emit(['runs']);
        return;
      }
      const { last, runs } = await this.#source.poll(this.#lastSeq);
      if (generation !== this.#generation) return;
      this.#lastSeq = last;
      this.emit(['runs', ...runs.map((id) => `run:${id}` as const)]);
    } catch {
      // The database is away too: the next tick tries again.
    }
  }
}
