// Response bodies the client reads itself (error bodies, token responses): bounded in memory,
// and finished so that the socket goes back to the pool instead of being destroyed.

/**
 * Past this many bytes an unwanted body is cancelled rather than drained. Cancelling a body
 * that has not fully arrived makes undici destroy the socket (HTTP/1.1 cannot skip the rest),
 * so a body up to this size is read to its end and the connection is reused; a larger one
 * costs a new connection, which is cheaper than downloading it.
 */
export const DRAIN_LIMIT_BYTES = 1 << 20;

/**
 * Reads at most `keepBytes` of `response`'s body as text, then drains or cancels the rest.
 * A body that fails half way (a reset, the caller's abort) yields what had arrived.
 */
export async function readBounded(response: Response, keepBytes: number): Promise<string> {
  const body = response.body;
  if (body === null) return '';
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  const tooLong = declared > DRAIN_LIMIT_BYTES;
  const reader = body.getReader();
  const kept: Uint8Array[] = [];
  let keptBytes = 0;
  let seen = 0;
  try {
    for (;;) {
      if (keptBytes >= keepBytes && (tooLong || seen > DRAIN_LIMIT_BYTES)) {
        await reader.cancel();
        break;
      }
      const { done, value } = await reader.read();
      if (done) break;
      seen += value.byteLength;
      if (keptBytes < keepBytes) {
        const part =
          value.byteLength <= keepBytes - keptBytes ? value : value.subarray(0, keepBytes - keptBytes);
        kept.push(part);
        keptBytes += part.byteLength;
      }
    }
  } catch {
    // Keep what arrived: the status already says what went wrong.
  } finally {
    reader.releaseLock();
  }
  return keptBytes === 0 ? '' : new TextDecoder().decode(Buffer.concat(kept, keptBytes));
}

/** Whether a request body can be sent a second time (after a 401 and a fresh token). */
export function isReplayable(body: unknown): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof URLSearchParams ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof Blob
  );
}
