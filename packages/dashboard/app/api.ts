// The dashboard's one way to the server: relative URLs (so a path prefix in front of the server
// works), the session cookie sent along, and RFC 9457 problems turned into ApiProblem errors.

/** A problem+json answer (or a network failure, status 0), with the server's `detail` to show. */
export class ApiProblem extends Error {
  override readonly name = 'ApiProblem';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly requestId?: string,
    /** How long the server asked to wait before asking again (its `Retry-After`), if it said. */
    readonly retryAfterMs?: number,
  ) {
    super(detail);
  }
}

/** Fired on `window` when an answer says the session is gone, so the app shows the sign-in form. */
export const SIGNED_OUT_EVENT = 'bulwark:signed-out';

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const { method = options.body === undefined ? 'GET' : 'POST', body, signal } = options;
  let response: Response;
  try {
    response = await fetch(`api/${path}`, {
      method,
      // Same-origin only: the cookie never goes anywhere else, and the server checks Origin on writes.
      credentials: 'same-origin',
      headers: {
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal === undefined ? {} : { signal }),
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiProblem(0, 'NETWORK', 'The server cannot be reached; is it running?');
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const problem = (json ?? {}) as { code?: string; detail?: string; title?: string; requestId?: string };
    if (response.status === 401 && path !== 'session') window.dispatchEvent(new Event(SIGNED_OUT_EVENT));
    throw new ApiProblem(
      response.status,
      problem.code ?? `HTTP_${response.status}`,
      problem.detail ?? problem.title ?? `${response.status} ${response.statusText}`,
      problem.requestId,
      retryAfterMs(response.headers.get('retry-after')),
    );
  }
  return json as T;
}

/** `Retry-After` in seconds (the server never sends a date) as ms; undefined when absent or odd. */
function retryAfterMs(header: string | null): number | undefined {
  const seconds = header === null ? Number.NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1_000 : undefined;
}

/** The message to show for any failure: a problem's `detail`, else the error's message. */
export function describeError(error: unknown): string {
  if (error instanceof ApiProblem) return error.detail;
  if (error instanceof Error) return error.message;
  return String(error);
}

export type Role = 'viewer' | 'operator' | 'admin';

export interface Session {
  name: string;
  role: Role;
  expiresAt?: number;
}

export const canOperate = (session: Session): boolean => session.role !== 'viewer';

export interface LatencyQuantiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface CallStats {
  calls: number;
  inFlight: number;
  successes: number;
  failures: number;
  timeouts: number;
  rejections: number;
  cancellations: number;
  recent: {
    windowMs: number;
    calls: number;
    failures: number;
    failureRate: number;
    latencyMs: LatencyQuantiles | null;
  };
}

export interface Transition {
  from: string;
  to: string;
  at: number;
  reason?: string | null;
}

export interface BreakerView {
  state: string;
  failureRate: number;
  slowCallRate: number;
  bufferedCalls: number;
  notPermitted: number;
  retryAfterMs: number;
  transitions?: Transition[];
  since?: number | null;
  halfOpenAt?: number | null;
  isolatedUntil?: number | null;
}

export interface Dependency {
  name: string;
  kind: string;
  critical: boolean;
  state: string | null;
  calls: CallStats;
  breaker: BreakerView | null;
  bulkhead: {
    maxConcurrent: number;
    active: number;
    available: number;
    queued: number;
    lingering: number;
    rejected: number;
  } | null;
  rateLimit: { admitted: number; rejected: number; waiting: number; available?: number; keys: number } | null;
  parkedRuns?: number;
}

export interface Series {
  calls: number[];
  failures: number[];
  slow: number[];
  rejected: number[];
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
}

export interface History {
  window: string;
  bucketMs: number;
  end: number;
  dependencies: Record<string, Series>;
}

export interface ParkedRun {
  runId: string;
  workflow: string;
  step: string;
  policy: string;
  reason: string;
  since: number;
  resumeAt: number | null;
}

export const RUN_STATUSES = [
  'queued',
  'running',
  'waiting',
  'completed',
  'degraded',
  'failed',
  'compensating',
  'compensated',
  'cancelled',
] as const;
export const FINAL_STATUSES: readonly string[] = [
  'completed',
  'degraded',
  'failed',
  'compensated',
  'cancelled',
];

export interface StoredError {
  name?: string;
  message?: string;
  code?: string;
}

export interface Run {
  id: string;
  workflow: string;
  version: string;
  status: string;
  priority: string;
  input: unknown;
  output: unknown;
  error: StoredError | null;
  degraded?: boolean;
  progress: number;
  idempotencyKey: string | null;
  correlationId: string | null;
  waitingFor: string | null;
  availableAt: number;
  deadlineAt: number | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  traceparent?: string | null;
  traceId?: string | null;
}

export interface StepRecord {
  name: string;
  status: string;
  attempts: number;
  startedAt: number;
  finishedAt: number;
  output: unknown;
  error: StoredError | null;
}

export interface RunDetail extends Run {
  steps?: StepRecord[];
}

export interface Workflow {
  name: string;
  version: string;
  versions: string[];
  description: string | null;
  steps: string[] | null;
  /** An input a run can start with, when the workflow declares one. */
  example?: unknown;
}

/** A cron schedule of the server's file, as `GET /api/schedules` lists it. */
export interface Schedule {
  name: string;
  cron: string;
  timezone: string;
  workflow: string;
  priority: string;
  catchUp: 'none' | 'latest' | { maxTicks: number };
  /** Epoch ms of the next tick this server starts, or null if there is none. */
  next: number | null;
  /** Epoch ms of the latest tick that has had a run, or null if none has. */
  lastTick: number | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Builds a query string from the values that are set; `undefined` and '' are left out. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}
