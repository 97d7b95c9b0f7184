// One HTTP client per dependency: undici's fetch over a keep-alive Agent of its own, with the
// dependency's auth, the request context's correlation headers, and error statuses as errors.
import { parseRetryAfter } from '../classify.ts';
import { type Clock, systemClock } from '../clock/clock.ts';
import { type HttpAuthError, HttpClientClosedError, HttpStatusError } from '../errors.ts';
import { EventStream } from '../events/events.ts';
import { clockOption, describe as describeValue, fail, optionsObject } from '../internal/validate.ts';
import { type RefreshReason, TokenSource } from './auth.ts';
import { isReplayable, readBounded } from './body.ts';
import { contextHeaders } from './context.ts';
import {
  type HttpAuth,
  type HttpOptions,
  isSensitiveHeader,
  type NormalizedHttpOptions,
  normalizeHttpOptions,
} from './options.ts';
import { loadUndici, type Undici } from './undici.ts';

export interface HttpClientStats {
  /** Requests sent, resends after a 401 included (token requests are counted apart). */
  requests: number;
  /** Responses received, by status class. */
  responses: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Responses with status >= 400, turned into `HttpStatusError`. */
  statusErrors: number;
  /** Requests that got no response: connection failures, timeouts, aborts. */
  errors: number;
  /** OAuth2 tokens fetched. */
  authRefreshes: number;
  /** OAuth2 token requests that failed. */
  authFailures: number;
  /** Requests sent again with a fresh token after a 401. */
  authRetries: number;
}

/** What `describe()` shows: the options as used, with every secret left out. */
export interface HttpClientDescription {
  name: string;
  baseUrl: string | undefined;
  /** Values of headers that usually carry credentials read `'[redacted]'`. */
  headers: Record<string, string>;
  auth: { type: HttpAuth['type'] } | undefined;
  connections: number;
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
  maxErrorBodyBytes: number;
}

type Agent = InstanceType<Undici['Agent']>;
type UndiciInit = NonNullable<Parameters<Undici['fetch']>[1]>;

const ABSOLUTE_URL = /^[a-z][a-z\d+.-]*:/i;
const REDACTED = '[redacted]';

/** The statuses `fetch` follows. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** As in the Fetch standard. */
const MAX_REDIRECTS = 20;

/**
 * The HTTP client behind `registry.fetch`: undici's `fetch` through one keep-alive `Agent` per
 * client. Responses with status >= 400 reject with `HttpStatusError` (their body read up to
 * `maxErrorBodyBytes`, the rest drained so the socket is reused); other responses are the
 * caller's, body included. Retries, breakers and timeouts belong to the pipeline around it.
 */
export class HttpClient {
  readonly name: string;
  /** `http:auth-refreshed` and `http:auth-failed`. */
  readonly events = new EventStream();
  // Private fields: `util.inspect(client)` and console.log never show options, and so no secret.
  readonly #o: NormalizedHttpOptions;
  readonly #clock: Clock;
  readonly #tokens: TokenSource | undefined;
  /** The secrets this client sends, redacted from error bodies that echo them. */
  readonly #secrets: string[];
  #tokensSeen: string[] = [];
  #undici: Undici | undefined;
  #agent: Agent | undefined;
  #opening: Promise<Agent> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;
  readonly #stats: HttpClientStats = {
    requests: 0,
    responses: { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    statusErrors: 0,
    errors: 0,
    authRefreshes: 0,
    authFailures: 0,
    authRetries: 0,
  };

  constructor(name: string, options: HttpOptions | undefined, init?: { clock?: Clock }) {
    if (typeof name !== 'string' || name.length === 0) {
      fail('http.name', `expected a non-empty string, got ${describeValue(name)}`);
    }
    this.name = name;
    this.#o = normalizeHttpOptions(options);
    this.#clock = clockOption('http.clock', optionsObject('http', init).clock, systemClock);
    const auth = this.#o.auth;
    this.#secrets = [
      ...(auth?.secrets ?? []),
      ...Object.entries(this.#o.headers)
        .filter(([header]) => isSensitiveHeader(header))
        .map(([, value]) => value),
    ];
    this.#tokens =
      auth?.type === 'oauth2'
        ? new TokenSource(auth, {
            name,
            clock: this.#clock,
            post: (url, headers, body) =>
              this.#undici!.fetch(url, {
                method: 'POST',
                headers,
                body,
                dispatcher: this.#agent,
              }) as unknown as Promise<Response>,
            refreshed: (reason, expiresInMs, token) => this.#refreshed(reason, expiresInMs, token),
            failed: (error) => this.#failed(error),
          })
        : undefined;
  }

  /**
   * undici's `fetch` through this client's Agent. A relative `url` is resolved against
   * `baseUrl`. Rejects with `HttpStatusError` for a status >= 400; resolves with any other
   * response, whose body the caller must read or cancel (an unread body holds its socket).
   */
  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    if (this.#closed) throw new HttpClientClosedError(this.name);
    const target = this.#resolve(url);
    const headers = this.#headers(target);
    const caller = init.headers === undefined ? undefined : new Headers(init.headers);
    const agent = this.#agent ?? (await this.#open());
    const tokens =
      this.#tokens !== undefined && this.#authorizes(target) && !caller?.has('authorization')
        ? this.#tokens
        : undefined;
    let token: string | undefined;
    if (tokens !== undefined) {
      token = await tokens.get(init.signal);
      headers.authorization = `Bearer ${token}`;
    }
    // The caller's own headers win over defaults, auth and context alike.
    caller?.forEach((value, name) => {
      headers[name] = value;
    });
    // Redirects are followed here, not by undici: it drops `Authorization` on a cross-origin
    // redirect but would carry an API-key header (or a cookie) to the other host.
    const follow = init.redirect === undefined || init.redirect === 'follow';
    const request: RequestInit = follow ? { ...init, redirect: 'manual' } : init;
    let response = await this.#send(target, request, headers, agent);
    if (response.status === 401 && tokens !== undefined && token !== undefined && isReplayable(init.body)) {
      // Drained, not cancelled: the socket stays in the pool for the resend.
      await readBounded(response, 0);
      tokens.invalidate(token);
      token = await tokens.get(init.signal);
      headers.authorization = `Bearer ${token}`;
      this.#stats.authRetries++;
      response = await this.#send(target, request, headers, agent);
    }
    let at = target;
    if (follow) [response, at] = await this.#follow(response, target, request, headers, agent);
    if (response.status >= 400) throw await this.#statusError(response, at, init.method);
    return response;
  }

  /**
   * Follows redirects as `fetch` would (at most 20; 303, and 301/302 after a POST, become a GET
   * without body), except that a hop to another origin leaves behind every credential: the
   * auth header, and any header whose name says it carries a secret (cookie, token, key...).
   */
  async #follow(
    first: Response,
    target: URL,
    init: RequestInit,
    headers: Record<string, string>,
    agent: Agent,
  ): Promise<[Response, URL]> {
    let response = first;
    let at = target;
    let request = init;
    for (let hops = 0; REDIRECTS.has(response.status); hops++) {
      const location = response.headers.get('location');
      if (location === null) break;
      await readBounded(response, 0);
      if (hops === MAX_REDIRECTS)
        throw new TypeError(`more than ${MAX_REDIRECTS} redirects from ${target.origin}`);
      const next = new URL(location, at);
      const method = (request.method ?? 'GET').toUpperCase();
      if (
        response.status === 303
          ? method !== 'HEAD'
          : (response.status === 301 || response.status === 302) && method === 'POST'
      ) {
        request = { ...request, method: 'GET', body: undefined };
        for (const name of Object.keys(headers)) {
          if (/^content-(type|length)$/i.test(name)) delete headers[name];
        }
      } else if (request.body !== undefined && request.body !== null && !isReplayable(request.body)) {
        throw new TypeError(`cannot follow a ${response.status} redirect: the request body is a stream`);
      }
      if (next.origin !== at.origin) {
        const authHeader = this.#o.auth?.type === 'oauth2' ? 'authorization' : this.#o.auth?.header;
        for (const name of Object.keys(headers)) {
          if (name === authHeader || name === 'authorization' || isSensitiveHeader(name))
            delete headers[name];
        }
      }
      at = next;
      response = await this.#send(at, request, headers, agent);
    }
    return [response, at];
  }

  stats(): HttpClientStats {
    const s = this.#stats;
    return { ...s, responses: { ...s.responses } };
  }

  describe(): HttpClientDescription {
    const o = this.#o;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(o.headers)) {
      headers[name] = isSensitiveHeader(name) ? REDACTED : value;
    }
    return {
      name: this.name,
      baseUrl: o.baseUrl?.href,
      headers,
      auth: o.auth === undefined ? undefined : { type: o.auth.type },
      connections: o.connections,
      keepAliveTimeoutMs: o.keepAliveTimeoutMs,
      connectTimeoutMs: o.connectTimeoutMs,
      maxErrorBodyBytes: o.maxErrorBodyBytes,
    };
  }

  /**
   * Closes the Agent: new calls reject with `HttpClientClosedError`, calls in flight finish
   * first (a response body nobody reads keeps it waiting; `force` destroys the sockets instead).
   * Idempotent, and a later `force` escalates a graceful close.
   */
  close(options?: { force?: boolean }): Promise<void> {
    this.#closed = true;
    this.#closing ??= this.#shutdown();
    // Forced: sockets are destroyed, so calls in flight (and bodies nobody reads) fail now.
    if (options?.force) return this.#destroy();
    return this.#closing;
  }

  async #destroy(): Promise<void> {
    const agent = this.#agent ?? (await this.#opening?.catch(() => undefined));
    await agent?.destroy();
  }

  async #shutdown(): Promise<void> {
    const agent = this.#agent ?? (await this.#opening?.catch(() => undefined));
    await agent?.close();
  }

  #open(): Promise<Agent> {
    this.#opening ??= loadUndici().then(
      (undici) => {
        if (this.#closed) throw new HttpClientClosedError(this.name);
        const o = this.#o;
        this.#undici = undici;
        this.#agent = new undici.Agent({
          connections: o.connections,
          keepAliveTimeout: o.keepAliveTimeoutMs,
          connect: { timeout: o.connectTimeoutMs },
        });
        return this.#agent;
      },
      (error: unknown) => {
        this.#opening = undefined;
        throw error;
      },
    );
    return this.#opening;
  }

  /** Relative URLs go under `baseUrl`'s path, leading `/` or not; absolute URLs stay as they are. */
  #resolve(url: string | URL): URL {
    if (url instanceof URL) return url;
    const base = this.#o.baseUrl;
    if (base === undefined || ABSOLUTE_URL.test(url)) return new URL(url);
    // Stripping the leading slashes also keeps `//host/x` from leaving the base origin.
    return new URL(url.replace(/^\/+/, ''), base);
  }

  /** Credentials go only to the base URL's origin (to every origin when there is no base URL). */
  #authorizes(target: URL): boolean {
    const base = this.#o.baseUrl;
    return base === undefined || base.origin === target.origin;
  }

  /** Default headers, then static auth, then the request context. */
  #headers(target: URL): Record<string, string> {
    const headers: Record<string, string> = { ...this.#o.headers };
    const auth = this.#o.auth;
    if (auth !== undefined && auth.type !== 'oauth2' && this.#authorizes(target))
      headers[auth.header] = auth.value;
    const context = contextHeaders();
    if (context !== undefined) {
      if (context.requestId !== undefined) headers['x-request-id'] = context.requestId;
      if (context.traceparent !== undefined) headers.traceparent = context.traceparent;
    }
    return headers;
  }

  async #send(
    target: URL,
    init: RequestInit,
    headers: Record<string, string>,
    agent: Agent,
  ): Promise<Response> {
    this.#stats.requests++;
    let response: Response;
    try {
      response = (await this.#undici!.fetch(target, {
        ...(init as UndiciInit),
        headers,
        dispatcher: agent,
      })) as unknown as Response;
    } catch (error) {
      this.#stats.errors++;
      throw error;
    }
    const status = response.status;
    const responses = this.#stats.responses;
    if (status >= 500) responses['5xx']++;
    else if (status >= 400) responses['4xx']++;
    else if (status >= 300) responses['3xx']++;
    else responses['2xx']++;
    return response;
  }

  async #statusError(response: Response, target: URL, method: string | undefined): Promise<HttpStatusError> {
    const body = await readBounded(response, this.#o.maxErrorBodyBytes);
    const retryAfter = response.headers.get('retry-after');
    this.#stats.statusErrors++;
    return new HttpStatusError({
      client: this.name,
      status: response.status,
      statusText: response.statusText,
      method: (method ?? 'GET').toUpperCase(),
      url: response.url || target.href,
      headers: response.headers,
      body: this.#redact(body),
      retryAfterMs: retryAfter === null ? undefined : parseRetryAfter(retryAfter, this.#clock.now()),
    });
  }

  /** A server that echoes the request (some debug endpoints do) must not put a secret in a log. */
  #redact(text: string): string {
    for (const secret of this.#secrets) if (text.includes(secret)) text = text.replaceAll(secret, REDACTED);
    for (const token of this.#tokensSeen) if (text.includes(token)) text = text.replaceAll(token, REDACTED);
    return text;
  }

  #refreshed(reason: RefreshReason, expiresInMs: number, token: string): void {
    this.#stats.authRefreshes++;
    // The current and the previous token: a response may still echo the one it was sent.
    this.#tokensSeen = [token, ...this.#tokensSeen.slice(0, 1)];
    if (this.events.demand !== 0) {
      this.events.emit({
        type: 'http:auth-refreshed',
        policy: this.name,
        operation: undefined,
        reason,
        expiresInMs,
      });
    }
  }

  #failed(error: HttpAuthError): void {
    this.#stats.authFailures++;
    if (this.events.demand !== 0) {
      this.events.emit({ type: 'http:auth-failed', policy: this.name, operation: undefined, error });
    }
  }
}
