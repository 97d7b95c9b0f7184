// One run's timeline over a WebSocket: one JSON message per event (`{ id, type, step, data,
// progress, at }`), the same bound on what may queue for a client, and ping frames whose pongs
// prove the client is there.
import type { RunStatus } from '@bulwark/workflow';
import type { WebSocket } from 'ws';
import type { Batch } from './frames.ts';
import type { Subscriber } from './hub.ts';
import type { Keepalive, KeptAlive } from './keepalive.ts';

/** Close codes: normal once the run is over; "try again later" for a client that fell behind. */
const CLOSE_NORMAL = 1000;
const CLOSE_TRY_AGAIN_LATER = 1013;
/** Pings a client may leave unanswered before it is taken for gone. */
const MAX_MISSED_PONGS = 2;

export class WsRunSubscriber implements Subscriber, KeptAlive {
  cursor: number;
  readonly #socket: WebSocket;
  readonly #maxBufferBytes: number;
  #missed = 0;
  #ended = false;
  #closed = false;

  constructor(
    socket: WebSocket,
    cursor: number,
    maxBufferBytes: number,
    keepalive: Keepalive,
    onClose: () => void,
  ) {
    this.#socket = socket;
    this.cursor = cursor;
    this.#maxBufferBytes = maxBufferBytes;
    const forget = keepalive.add(this);
    socket.on('pong', () => {
      this.#missed = 0;
    });
    const closed = () => {
      if (this.#closed) return;
      this.#closed = true;
      forget();
      onClose();
    };
    socket.once('close', closed);
    // Gone already: 'close' was emitted before anyone listened (later, so the caller has its object).
    if (socket.readyState !== socket.OPEN) queueMicrotask(closed);
  }

  get closed(): boolean {
    return this.#closed || this.#ended;
  }

  get #over(): boolean {
    return this.#socket.bufferedAmount > this.#maxBufferBytes;
  }

  async history(batch: Batch, from: number): Promise<void> {
    if (this.closed || from >= batch.events.length) return;
    const last = batch.events.length - 1;
    this.#send(batch, from, last);
    // History is read on demand: over the bound, the next page waits until this one is written
    // out (ws calls back once the socket took the message, or with an error once it is closed).
    const written = new Promise<void>((resolve) =>
      this.#socket.send(batch.ws(last), { binary: false }, () => resolve()),
    );
    if (this.#over) await written;
  }

  /** As SSE (see SseRunSubscriber.live): over the bound, a gap marker, then close; the client resumes with ?lastEventId=. */
  live(batch: Batch, from: number): void {
    if (this.#over) {
      if (this.closed) return;
      this.#ended = true;
      const gap = { from: batch.events[from]!.seq, to: batch.lastSeq };
      this.#socket.send(JSON.stringify({ type: 'gap', data: gap }));
      this.#socket.close(CLOSE_TRY_AGAIN_LATER, 'slow consumer');
      return;
    }
    this.#send(batch, from);
  }

  end(status: RunStatus | 'deleted'): void {
    if (this.closed) return;
    this.#ended = true;
    this.#socket.send(JSON.stringify({ type: 'end', data: { status } }));
    this.#socket.close(CLOSE_NORMAL, 'run finished');
  }

  #send(batch: Batch, from: number, to = batch.events.length): void {
    if (this.closed) return;
    for (let i = from; i < to; i++) this.#socket.send(batch.ws(i), { binary: false });
  }

  buffered(): number {
    return this.#socket.bufferedAmount;
  }

  ping(): void {
    if (this.#closed) return;
    if (this.#missed >= MAX_MISSED_PONGS) {
      this.#socket.terminate();
      return;
    }
    this.#missed++;
    this.#socket.ping();
  }

  destroy(): void {
    this.#socket.terminate();
  }
}
