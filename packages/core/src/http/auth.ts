// OAuth2 client-credentials tokens for one HTTP client: cached until shortly before they
// expire, fetched by one request at a time however many callers need one.
import type { Clock } from '../clock/clock.ts';
import { HttpAuthError } from '../errors.ts';
import { untilSignal } from '../internal/abort.ts';
import { readBounded } from './body.ts';
import type { NormalizedHttpAuth } from './options.ts';

type OAuth2 = Extract<NormalizedHttpAuth, { type: 'oauth2' }>;
export type RefreshReason = 'initial' | 'expiring' | 'unauthorized';

/** What the token source needs from its client: a POST through the client's own Agent, and reporting. */
export interface TokenHost {
  readonly name: string;
  readonly clock: Clock;
  post(url: URL, headers: Record<string, string>, body: string): Promise<Response>;
  refreshed(reason: RefreshReason, expiresInMs: number, token: string): void;
  failed(error: HttpAuthError): void;
}

// A token response is a few hundred bytes; more than this is not a token response.
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
// OAuth2 error codes are ASCII words (RFC 6749 §5.2); anything else is not echoed.
const ERROR_CODE = /^[\w.-]{1,64}$/;

interface Token {
  readonly value: string;
  /** From the injected clock: after this, callers wait for a new token. */
  readonly refreshAt: number;
  /** After this the token is no use even if no new one can be had. */
  readonly expiresAt: number;
}

export class TokenSource {
  readonly #auth: OAuth2;
  readonly #host: TokenHost;
  #token: Token | undefined;
  #inflight: Promise<string> | undefined;
  #reason: RefreshReason = 'initial';

  constructor(auth: OAuth2, host: TokenHost) {
    this.#auth = auth;
    this.#host = host;
  }

  /** The cached token, or the one being fetched; a caller's abort stops its wait, not the fetch. */
  get(signal: AbortSignal | null | undefined): Promise<string> {
    const token = this.#token;
    if (token !== undefined && this.#host.clock.now() < token.refreshAt) return Promise.resolve(token.value);
    if (this.#inflight === undefined) {
      const reason = token === undefined ? this.#reason : 'expiring';
      this.#inflight = this.#fetch(reason).finally(() => {
        this.#inflight = undefined;
      });
    }
    // A failed early refresh is what the margin is for: the old token still works until it expires.
    const next =
      token === undefined
        ? this.#inflight
        : this.#inflight.catch((error: unknown) => {
            if (this.#host.clock.now() < token.expiresAt && this.#token === token) return token.value;
            throw error;
          });
    return untilSignal(next, signal);
  }

  /**
   * The API refused `value`: forget it, unless a newer token already replaced it (then the
   * caller's next `get` returns that one, and callers hit by the same 401 share one refresh).
   */
  invalidate(value: string): void {
    if (this.#token?.value !== value) return;
    this.#token = undefined;
    this.#reason = 'unauthorized';
  }

  async #fetch(reason: RefreshReason): Promise<string> {
    const auth = this.#auth;
    const host = this.#host;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (auth.scope !== undefined) form.set('scope', auth.scope);
    if (auth.audience !== undefined) form.set('audience', auth.audience);
    // Measured from the request, not the answer: the server's clock started before ours stops.
    const sentAt = host.clock.now();
    const where = `${auth.tokenUrl.origin}${auth.tokenUrl.pathname}`;
    try {
      let response: Response;
      try {
        response = await host.post(
          auth.tokenUrl,
          {
            authorization: auth.clientAuthorization,
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
          },
          form.toString(),
        );
      } catch (error) {
        throw new HttpAuthError(host.name, `the OAuth2 token request to ${where} failed`, undefined, error);
      }
      const text = await readBounded(response, MAX_TOKEN_RESPONSE_BYTES);
      if (!response.ok) {
        const code = errorCode(text);
        throw new HttpAuthError(
          host.name,
          `the OAuth2 token endpoint ${where} answered HTTP ${response.status}${code ? ` (${code})` : ''}`,
          response.status,
        );
      }
      const { value, expiresInMs } = parseToken(text, host.name, where);
      const refreshAfter =
        expiresInMs === Number.POSITIVE_INFINITY
          ? Number.POSITIVE_INFINITY
          : // A lifetime shorter than the margin would mean a new token for every call: use half of it.
            Math.max(expiresInMs - auth.refreshBeforeMs, expiresInMs / 2);
      this.#token = { value, refreshAt: sentAt + refreshAfter, expiresAt: sentAt + expiresInMs };
      this.#reason = 'initial';
      host.refreshed(reason, expiresInMs, value);
      return value;
    } catch (error) {
      host.failed(error as HttpAuthError);
      throw error;
    }
  }
}

function errorCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: unknown }).error;
    return typeof code === 'string' && ERROR_CODE.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

function parseToken(text: string, client: string, where: string): { value: string; expiresInMs: number } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new HttpAuthError(client, `the OAuth2 token endpoint ${where} did not answer with JSON`);
  }
  const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (typeof d.access_token !== 'string' || d.access_token.length === 0 || /[\r\n\0]/.test(d.access_token)) {
    throw new HttpAuthError(
      client,
      `the OAuth2 token endpoint ${where} answered without a usable access_token`,
    );
  }
  if (d.token_type !== undefined && String(d.token_type).toLowerCase() !== 'bearer') {
    throw new HttpAuthError(
      client,
      `the OAuth2 token endpoint ${where} answered a token of type ${JSON.stringify(String(d.token_type).slice(0, 32))}, not Bearer`,
    );
  }
  // Servers send expires_in as a number, some as a numeric string; none means "until refused".
  const seconds = typeof d.expires_in === 'string' ? Number(d.expires_in) : d.expires_in;
  const expiresInMs =
    typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0
      ? seconds * 1000
      : Number.POSITIVE_INFINITY;
  return { value: d.access_token, expiresInMs };
}
