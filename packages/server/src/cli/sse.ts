// Reads a text/event-stream body (the run stream) into messages, as EventSource would: `id`,
// `event` and `data` fields, messages ended by a blank line, `:` comments (keep-alives) ignored.

export interface SseMessage {
  /** The last `id:` seen, as EventSource keeps it (for `Last-Event-ID` on reconnect). */
  readonly id: string | undefined;
  /** @default 'message' */
  readonly event: string;
  readonly data: string;
}

export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let event = '';
  let data: string[] = [];
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    // A trailing `\r` may be the first half of `\r\n`: it waits for the next chunk.
    let end: RegExpExecArray | null;
    const lineEnd = /\r\n|\n|\r(?!$)/g;
    let start = 0;
    while ((end = lineEnd.exec(buffer)) !== null) {
      const line = buffer.slice(start, end.index);
      start = end.index + end[0].length;
      if (line === '') {
        if (data.length > 0) yield { id, event: event || 'message', data: data.join('\n') };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
      else if (field === 'id' && !value.includes('\0')) id = value;
    }
    buffer = buffer.slice(start);
  }
}
