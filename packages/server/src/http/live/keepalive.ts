// One timer for every live connection of the server: it pings them (an SSE comment, a WebSocket
// ping frame) and cuts those that stopped taking data. It runs only while a client is connected.
import type { Clock, TimerHandle } from '@bulwark/core';

/** A connection as the keepalive sees it. */
export interface KeptAlive {
  /** Bytes queued for the client and not yet taken by the kernel. */
  buffered(): number;
  /** Sends a ping (the client decides whether one is due). */
  ping(): void;
  /** Closes the connection at once, whatever is still queued. */
  destroy(): void;
}

interface Entry {
  readonly client: KeptAlive;
  /** Consecutive ticks found over the buffer bound. */
  over: number;
}

export class Keepalive {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #maxBufferBytes: number;
  readonly #entries = new Map<KeptAlive, Entry>();
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, intervalMs: number, maxBufferBytes: number) {
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#maxBufferBytes = maxBufferBytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Keeps `client` alive until the returned function is called. */
  add(client: KeptAlive): () => void {
    this.#entries.set(client, { client, over: 0 });
    if (this.#timer === undefined) this.#schedule();
    return () => {
      this.#entries.delete(client);
      if (this.#entries.size === 0 && this.#timer !== undefined) {
        this.#clock.clearTimeout(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  /** Every client still connected (for shutdown). */
  clients(): KeptAlive[] {
    return [...this.#entries.keys()];
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#intervalMs);
  }

  #tick(): void {
    this.#timer = undefined;
    for (const entry of [...this.#entries.values()]) {
      // A client over the bound for two whole intervals reads nothing: whatever it was sent
      // last (a gap marker, the end of a page) cannot reach it, so its buffer is freed now.
      if (entry.client.buffered() > this.#maxBufferBytes) {
        if (++entry.over >= 2) {
          this.#entries.delete(entry.client);
          entry.client.destroy();
          continue;
        }
      } else {
        entry.over = 0;
      }
      entry.client.ping();
    }
    if (this.#entries.size > 0) this.#schedule();
  }
}
