// Server-Sent Events over a hijacked Fastify reply: the stream (headers, writes bounded by the
// client's buffer, ping, end) and the subscriber that follows one run's timeline through it.
import type { OutgoingHttpHeaders } from 'node:http';
import type { RunStatus } from '@bulwark/workflow';
import type { FastifyReply } from 'fastify';
import type { Batch } from './frames.ts';
import { sseFrame } from './frames.ts';
import type { Subscriber } from './hub.ts';
import type { Keepalive, KeptAlive } from './keepalive.ts';

/** How long a client waits before reconnecting (it sends `Last-Event-ID` then). */
const RETRY_MS = 2000;
const PING = Buffer.from(': ping\n\n');

export class SseStream implements KeptAlive {
  readonly #reply: FastifyReply;
  readonly #maxBufferBytes: number;
  #ended = false;
  #closed = false;
  readonly #onClose: (() => void)[] = [];

  constructor(reply: FastifyReply, maxBufferBytes: number, keepalive: Keepalive) {
    this.#reply = reply;
    this.#maxBufferBytes = maxBufferBytes;
    reply.hijack();
    const raw = reply.raw;
    // Headers set by earlier hooks (request id, security headers, CORS) go out with the stream.
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) headers[name] = value;
    }
    raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // Once a stream ends (the run is over, the client fell behind) its connection has served
      // its purpose: closing it frees the socket at once instead of after the keep-alive timeout.
      connection: 'close',
      // Proxies that buffer responses (nginx) would hold events back.
      'x-accel-buffering': 'no',
    });
    raw.write(`retry: ${RETRY_MS}\n\n`);
    const forget = keepalive.add(this);
    const closed = () => {
      if (this.#closed) return;
      this.#closed = true;
      forget();
      for (const fn of this.#onClose) fn();
    };
    raw.once('close', closed);
    // A write racing the peer's disconnect fails; 'close' follows and cleans up.
    raw.on('error', () => {});
    // Gone already (while its run was looked up): 'close' was emitted before anyone listened.
    if (raw.destroyed || raw.socket === null || raw.socket.destroyed) closed();
  }

  /** Gone, or ending: nothing more is written. */
  get closed(): boolean {
    return this.#closed || this.#ended;
  }

  /** Queued bytes are over the bound: the client is not keeping up. */
  get over(): boolean {
    return this.#reply.raw.writableLength > this.#maxBufferBytes;
  }

  /** Calls `fn` once the connection is gone (at once if it is already). */
  onClose(fn: () => void): void {
    if (this.#closed) fn();
    else this.#onClose.push(fn);
  }

  write(chunk: Buffer | string): void {
    if (!this.closed) this.#reply.raw.write(chunk);
  }

  /** Resolves when the client has taken what was queued (or is gone). */
  drained(): Promise<void> {
    if (!this.over || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const raw = this.#reply.raw;
      const done = () => {
        raw.off('drain', done);
        raw.off('close', done);
        resolve();
      };
      raw.on('drain', done);
      raw.on('close', done);
    });
  }

  /** Writes a last frame and ends the response. */
  finish(frame?: string): void {
    if (this.closed) return;
    this.#ended = true;
    this.#reply.raw.end(frame);
  }

  buffered(): number {
    return this.#reply.raw.writableLength;
  }

  ping(): void {
    if (!this.closed && !this.over) this.#reply.raw.write(PING);
  }

  destroy(): void {
    this.#ended = true;
    this.#reply.raw.destroy();
  }
}

/** One run's timeline to one SSE client. */
export class SseRunSubscriber implements Subscriber {
  cursor: number;
  readonly #stream: SseStream;

  constructor(stream: SseStream, cursor: number) {
    this.#stream = stream;
    this.cursor = cursor;
  }

  get closed(): boolean {
    return this.#stream.closed;
  }

  async history(batch: Batch, from: number): Promise<void> {
    this.#stream.write(batch.sse(from));
    // History is read on demand: a slow reader is simply read for more slowly.
    await this.#stream.drained();
  }

  /**
   * Live events are pushed: a client that does not take them cannot be waited for (the hub
   * serves everyone), and holding them for it would grow without bound. Over the buffer bound
   * it gets a `gap` marker naming what it missed and the response ends; the browser reconnects
   * with its Last-Event-ID (the gap has no id, so that stays the last event it really got) and
   * reads the rest from the store. Memory stays at the bound plus one batch and one marker per
   * client, and no event is lost to a client that reconnects; one that reads nothing at all is
   * cut by the keepalive two ping intervals later.
   */
  live(batch: Batch, from: number): void {
    if (this.#stream.over) {
      const gap = { from: batch.events[from]!.seq, to: batch.lastSeq };
      this.#stream.finish(sseFrame(undefined, 'gap', JSON.stringify(gap)));
      return;
    }
    this.#stream.write(batch.sse(from));
  }

  end(status: RunStatus | 'deleted'): void {
    this.#stream.finish(sseFrame(undefined, 'end', JSON.stringify({ status })));
  }
}
