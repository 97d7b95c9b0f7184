// Talks to a running server for `bulwark run` and `bulwark runs`: its URL, the API key (flag,
// BULWARK_API_KEY, or the admin key the server generated in its data directory), problems
// turned into one-line errors.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Env } from '../config/env.ts';
import { CliError } from './errors.ts';
import { readSse, type SseMessage } from './sse.ts';

/** Tries of a request the server refused while overloaded. */
const MAX_ATTEMPTS = 4;

export interface RemoteOptions {
  /** @default 'http://127.0.0.1:8080' */
  url?: string;
  key?: string;
  /** Where to look for `admin.key` when no key is given. @default './.bulwark' */
  dataDir?: string;
}

export interface Answer<T> {
  readonly status: number;
  readonly body: T;
}

export class ApiClient {
  readonly #base: URL;
  readonly #key: string | undefined;

  constructor(url: string, key: string | undefined) {
    try {
      this.#base = new URL(url);
    } catch {
      throw new CliError(
        'BAD_INPUT',
        `--url: expected a URL like http://127.0.0.1:8080, got ${JSON.stringify(url)}`,
      );
    }
    this.#key = key;
  }

  /**
   * Sends a request; a problem answer (4xx, 5xx) rejects with its `detail`. A server shedding
   * load (503 OVERLOADED) refused the request before handling it, so it is sent again after its
   * Retry-After, a few times: a busy moment should not fail a command.
   */
  async request<T>(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Answer<T>> {
    for (let attempt = 1; ; attempt++) {
      const response = await this.#fetch(path, {
        method,
        headers: {
          accept: 'application/json',
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        signal: AbortSignal.timeout(30_000),
      });
      const body = parseBody(await response.text());
      if (response.ok) return { status: response.status, body: body as T };
      const overloaded =
        response.status === 503 && (body as { code?: unknown } | null)?.code === 'OVERLOADED';
      if (!overloaded || attempt >= MAX_ATTEMPTS) throw this.#problem(response.status, body);
      const retryAfterS = Number(response.headers.get('retry-after'));
      const waitMs =
        Number.isFinite(retryAfterS) && retryAfterS > 0 ? Math.min(retryAfterS * 1_000, 5_000) : 250;
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }

  /** The messages of an event stream, from after `lastEventId` when given. */
  async stream(path: string, lastEventId?: string): Promise<AsyncGenerator<SseMessage>> {
    const response = await this.#fetch(path, {
      headers: {
        accept: 'text/event-stream',
        ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
      },
    });
    if (!response.ok || response.body === null) {
      throw this.#problem(response.status, parseBody(await response.text().catch(() => '')));
    }
    return readSse(response.body as unknown as AsyncIterable<Uint8Array>);
  }

  async #fetch(path: string, init: RequestInit): Promise<Response> {
    const url = new URL(path, this.#base);
    const headers = new Headers(init.headers);
    if (this.#key !== undefined) headers.set('authorization', `Bearer ${this.#key}`);
    try {
      return await fetch(url, { ...init, headers });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const reason =
        cause?.code === 'ECONNREFUSED'
          ? 'connection refused'
          : (error as Error).name === 'TimeoutError'
            ? 'no answer within 30s'
            : (cause?.message ?? (error as Error).message);
      throw new CliError(
        'UNREACHABLE',
        `cannot reach the server at ${this.#base.origin} (${reason}); is \`bulwark start\` running? (--url to choose another)`,
      );
    }
  }

  #problem(status: number, body: unknown): CliError {
    const detail =
      typeof body === 'object' && body !== null && typeof (body as { detail?: unknown }).detail === 'string'
        ? (body as { detail: string }).detail
        : `the server answered ${status}`;
    const hint =
      status === 401 && this.#key === undefined
        ? ' (no API key found: pass --key, set BULWARK_API_KEY, or --data-dir with the server’s admin.key)'
        : '';
    return new CliError('API_ERROR', `${detail}${hint}`, status);
  }
}

/** An answer's body: its JSON, null when empty, else the text itself (a proxy's error page, say; its status says enough). */
function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A client for the server `options` name, with the first key found. */
export async function connect(options: RemoteOptions, env: Env): Promise<ApiClient> {
  let key = options.key ?? env.BULWARK_API_KEY;
  if (key === undefined || key === '') {
    const file = join(resolve(options.dataDir ?? '.bulwark'), 'admin.key');
    key = (await readFile(file, 'utf8').catch(() => undefined))?.trim();
  }
  return new ApiClient(options.url ?? 'http://127.0.0.1:8080', key === '' ? undefined : key);
}
