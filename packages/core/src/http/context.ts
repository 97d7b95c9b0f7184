// The incoming request's correlation id and trace context, carried through async calls
// (AsyncLocalStorage) so that every outgoing HTTP call can name the request it serves.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/** What an outgoing call inherits from the request being served. */
export interface RequestContext {
  /** Sent unchanged as `x-request-id`. */
  readonly requestId?: string;
  /** A W3C `traceparent`; each outgoing call sends the same trace id and flags with its own parent id. */
  readonly traceparent?: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/**
 * Runs `fn` with `context` as the current request context: every `HttpClient.fetch` made inside
 * it, however deep in async calls, propagates it. A nested call replaces the outer context.
 */
export function withRequestContext<T>(context: RequestContext, fn: () => T): T {
  // A frozen copy: a caller mutating its object later must not change calls already running.
  const own = Object.freeze({ requestId: context.requestId, traceparent: context.traceparent });
  return storage.run(own, fn);
}

/** The context set by the nearest enclosing {@link withRequestContext}, if any. */
export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}

// W3C Trace Context level 1, version 00: lower-case hex, neither id all zeros.
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_PARENT = '0'.repeat(16);
// Header values with these would make fetch throw; such an id is dropped, not the call.
const BAD_VALUE = /[\r\n\0]/;

/** The headers the current context adds to one outgoing call (lower-case names). @internal */
export function contextHeaders():
  | { requestId: string | undefined; traceparent: string | undefined }
  | undefined {
  const context = storage.getStore();
  if (context === undefined) return undefined;
  const { requestId, traceparent } = context;
  return {
    requestId:
      typeof requestId === 'string' && requestId.length > 0 && !BAD_VALUE.test(requestId)
        ? requestId
        : undefined,
    traceparent: typeof traceparent === 'string' ? childTraceparent(traceparent) : undefined,
  };
}

/** A W3C `traceparent` (version 00) taken apart. */
export interface Traceparent {
  readonly traceId: string;
  readonly parentId: string;
  /** The trace flags, as a number (bit 0: sampled). */
  readonly flags: number;
}

/**
 * Parses a W3C `traceparent` header: version 00, lower-case hex, neither id all zeros. Anything
 * else is undefined: treated as absent rather than guessed at.
 */
export function parseTraceparent(value: unknown): Traceparent | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT.exec(value);
  if (match === null) return undefined;
  const [, traceId, parentId, flags] = match as unknown as [string, string, string, string];
  if (traceId === ZERO_TRACE || parentId === ZERO_PARENT) return undefined;
  return { traceId, parentId, flags: Number.parseInt(flags, 16) };
}

/** The traceparent of an outgoing call: the same trace and flags, a fresh parent id; undefined if invalid. */
export function childTraceparent(traceparent: string): string | undefined {
  const parsed = parseTraceparent(traceparent);
  if (parsed === undefined) return undefined;
  return `00-${parsed.traceId}-${spanId()}-${parsed.flags.toString(16).padStart(2, '0')}`;
}

function spanId(): string {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (id !== ZERO_PARENT) return id;
  }
}
