// How live events go on the wire: each timeline event is turned into JSON once, and a batch into
// one SSE chunk (a Buffer, encoded once) that every subscriber of the batch is sent as is.
import type { Json, TimelineEvent } from '@bulwark/workflow';
import { withoutStack } from '../api/views.ts';

/** The message of one timeline event, the same on SSE (`data:`) and WebSocket. */
export interface LiveEvent {
  /** The event's `seq`: the cursor a client resumes from. */
  id: number;
  type: string;
  step: string | null;
  data: Json;
  progress: number;
  at: number;
}

export function liveEvent(event: TimelineEvent): LiveEvent {
  return {
    id: event.seq,
    type: event.type,
    step: event.step ?? null,
    data: withoutStack(event.data),
    progress: event.progress,
    at: event.at,
  };
}

/** One SSE frame. JSON.stringify escapes line breaks, so `data` is always a single line. */
export function sseFrame(id: string | number | undefined, type: string, json: string): string {
  return id === undefined
    ? `event: ${type}\ndata: ${json}\n\n`
    : `id: ${id}\nevent: ${type}\ndata: ${json}\n\n`;
}

/**
 * Events read together from the store and sent together: the JSON of each event is made once,
 * and the SSE chunk once per batch, whatever the number of subscribers. A subscriber that has
 * already seen the first events (it joined at the seam, see hub.ts) gets a suffix.
 */
export class Batch {
  readonly events: readonly TimelineEvent[];
  #json: string[] | undefined;
  #frames: string[] | undefined;
  #sse: Buffer | undefined;
  #ws: Buffer[] | undefined;

  constructor(events: readonly TimelineEvent[]) {
    this.events = events;
  }

  get lastSeq(): number {
    return this.events.at(-1)?.seq ?? 0;
  }

  /** The index of the first event after `cursor` (events.length: none). */
  firstAfter(cursor: number): number {
    const events = this.events;
    if (events.length === 0 || events[0]!.seq > cursor) return 0;
    let i = 0;
    while (i < events.length && events[i]!.seq <= cursor) i++;
    return i;
  }

  json(i: number): string {
    this.#json ??= this.events.map((e) => JSON.stringify(liveEvent(e)));
    return this.#json[i]!;
  }

  /** The SSE chunk of the events from index `from`. */
  sse(from: number): Buffer {
    if (this.#frames === undefined) {
      this.#frames = this.events.map((e, i) => sseFrame(e.seq, e.type, this.json(i)));
    }
    if (from === 0) return (this.#sse ??= Buffer.from(this.#frames.join('')));
    return Buffer.from(this.#frames.slice(from).join(''));
  }

  /** The WebSocket message of event `i` (text, encoded once). */
  ws(i: number): Buffer {
    this.#ws ??= this.events.map((_e, j) => Buffer.from(this.json(j)));
    return this.#ws[i]!;
  }
}
