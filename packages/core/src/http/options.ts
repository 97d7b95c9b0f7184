// HTTP client options (plain data: the config file writes the same shape) and their one-time
// normalisation. Secrets are checked here but never echoed in a message.
import { fail, isRecord, knownKeys, num, oneOf, optionsObject, str } from '../internal/validate.ts';

/**
 * How the client authenticates each request. Secrets come from the environment: in code
 * `process.env.NAME`, in the config file `${NAME}`.
 */
export type HttpAuth =
  | { type: 'bearer'; token: string }
  | {
      type: 'api-key';
      /** The header that carries the key. @default 'x-api-key' */
      header?: string;
      value: string;
    }
  | { type: 'basic'; username: string; password: string }
  | {
      /** OAuth2 client credentials grant (RFC 6749 §4.4), the token cached until shortly before it expires. */
      type: 'oauth2';
      tokenUrl: string;
      clientId: string;
      clientSecret: string;
      scope?: string;
      audience?: string;
      /** Refresh the token this long before it expires. @default 60_000 */
      refreshBeforeMs?: number;
    };

export interface HttpOptions {
  /**
   * Relative URLs are appended to it (`'items'` and `'/items'` both under its path); absolute
   * URLs are used as they are. Credentials in the URL are refused: use `auth`. @default none
   */
  baseUrl?: string;
  /** Sent with every request; a header given to `fetch` wins. @default {} */
  headers?: Record<string, string>;
  /** @default none */
  auth?: HttpAuth;
  /** Sockets kept per origin (undici's `connections`); more requests wait for one. @default 32 */
  connections?: number;
  /** How long an idle socket stays open for reuse (undici's `keepAliveTimeout`). @default 4_000 */
  keepAliveTimeoutMs?: number;
  /** Time allowed to open a connection (TCP and TLS). @default 10_000 */
  connectTimeoutMs?: number;
  /** How much of an error response's body `HttpStatusError.body` keeps, in bytes. @default 4_096 */
  maxErrorBodyBytes?: number;
}

/** @internal */
export type NormalizedHttpAuth =
  | { type: 'bearer' | 'api-key' | 'basic'; header: string; value: string; secrets: string[] }
  | {
      type: 'oauth2';
      tokenUrl: URL;
      clientId: string;
      clientSecret: string;
      scope: string | undefined;
      audience: string | undefined;
      refreshBeforeMs: number;
      /** The client's credentials as an HTTP Basic `Authorization` value (RFC 6749 §2.3.1). */
      clientAuthorization: string;
      secrets: string[];
    };

/** @internal */
export interface NormalizedHttpOptions {
  /** Ends with `/`, so that relative paths land under it. */
  baseUrl: URL | undefined;
  /** Lower-cased names. */
  headers: Record<string, string>;
  auth: NormalizedHttpAuth | undefined;
  connections: number;
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
  maxErrorBodyBytes: number;
}

const DEFAULTS = {
  connections: 32,
  keepAliveTimeoutMs: 4_000,
  connectTimeoutMs: 10_000,
  maxErrorBodyBytes: 4_096,
  apiKeyHeader: 'x-api-key',
  refreshBeforeMs: 60_000,
} as const;

const AUTH_TYPES = ['bearer', 'api-key', 'basic', 'oauth2'] as const;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// CR, LF and NUL would split or end a header; fetch would throw on the first request instead.
const BAD_VALUE = /[\r\n\0]/;

/** @internal */
export function normalizeHttpOptions(options: HttpOptions | undefined, path = 'http'): NormalizedHttpOptions {
  const o = optionsObject(path, options);
  knownKeys(path, o, [
    'baseUrl',
    'headers',
    'auth',
    'connections',
    'keepAliveTimeoutMs',
    'connectTimeoutMs',
    'maxErrorBodyBytes',
  ]);
  let baseUrl: URL | undefined;
  if (o.baseUrl !== undefined) {
    baseUrl = httpUrl(`${path}.baseUrl`, o.baseUrl);
    if (baseUrl.search !== '' || baseUrl.hash !== '')
      fail(`${path}.baseUrl`, 'must not have a query or fragment');
    if (!baseUrl.pathname.endsWith('/')) baseUrl.pathname += '/';
  }
  return {
    baseUrl,
    headers: headerRecord(`${path}.headers`, o.headers),
    auth: o.auth === undefined ? undefined : normalizeAuth(`${path}.auth`, o.auth),
    connections: num(`${path}.connections`, o.connections, DEFAULTS.connections, { min: 1, integer: true }),
    keepAliveTimeoutMs: num(`${path}.keepAliveTimeoutMs`, o.keepAliveTimeoutMs, DEFAULTS.keepAliveTimeoutMs, {
      min: 1,
    }),
    connectTimeoutMs: num(`${path}.connectTimeoutMs`, o.connectTimeoutMs, DEFAULTS.connectTimeoutMs, {
      min: 1,
    }),
    maxErrorBodyBytes: num(`${path}.maxErrorBodyBytes`, o.maxErrorBodyBytes, DEFAULTS.maxErrorBodyBytes, {
      min: 0,
      integer: true,
    }),
  };
}

function normalizeAuth(path: string, value: unknown): NormalizedHttpAuth {
  if (!isRecord(value)) fail(path, 'expected an object with a `type`');
  const type = oneOf(`${path}.type`, value.type ?? missing(`${path}.type`), AUTH_TYPES, 'bearer');
  switch (type) {
    case 'bearer': {
      knownKeys(path, value, ['type', 'token']);
      const token = secret(`${path}.token`, value.token);
      return { type, header: 'authorization', value: `Bearer ${token}`, secrets: [token] };
    }
    case 'api-key': {
      knownKeys(path, value, ['type', 'header', 'value']);
      const header = headerName(`${path}.header`, value.header ?? DEFAULTS.apiKeyHeader);
      const key = secret(`${path}.value`, value.value);
      return { type, header, value: key, secrets: [key] };
    }
    case 'basic': {
      knownKeys(path, value, ['type', 'username', 'password']);
      const username = str(`${path}.username`, value.username ?? missing(`${path}.username`), '');
      if (username.includes(':')) fail(`${path}.username`, "must not contain ':' (RFC 7617)");
      if (BAD_VALUE.test(username)) fail(`${path}.username`, 'must not contain CR, LF or NUL');
      const password = secret(`${path}.password`, value.password);
      const encoded = Buffer.from(`${username}:${password}`).toString('base64');
      return { type, header: 'authorization', value: `Basic ${encoded}`, secrets: [password, encoded] };
    }
    case 'oauth2': {
      knownKeys(path, value, [
        'type',
        'tokenUrl',
        'clientId',
        'clientSecret',
        'scope',
        'audience',
        'refreshBeforeMs',
      ]);
      const tokenUrl = httpUrl(`${path}.tokenUrl`, value.tokenUrl ?? missing(`${path}.tokenUrl`));
      const clientId = str(`${path}.clientId`, value.clientId ?? missing(`${path}.clientId`), '');
      const clientSecret = secret(`${path}.clientSecret`, value.clientSecret);
      // RFC 6749 §2.3.1: each part form-encoded before the Basic encoding.
      const encoded = Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64');
      return {
        type,
        tokenUrl,
        clientId,
        clientSecret,
        scope: optionalString(`${path}.scope`, value.scope),
        audience: optionalString(`${path}.audience`, value.audience),
        refreshBeforeMs: num(`${path}.refreshBeforeMs`, value.refreshBeforeMs, DEFAULTS.refreshBeforeMs, {
          min: 0,
        }),
        clientAuthorization: `Basic ${encoded}`,
        secrets: [clientSecret, encoded],
      };
    }
  }
}

function missing(path: string): never {
  fail(path, 'is required');
}

/** A secret: a non-empty string. The message never shows the value, which may be half right. */
function secret(path: string, value: unknown): string {
  if (value === undefined) {
    fail(path, 'is required (a secret: read it from the environment, e.g. process.env.API_TOKEN)');
  }
  if (typeof value !== 'string' || value.length === 0)
    fail(path, `expected a non-empty string, got ${kind(value)}`);
  if (BAD_VALUE.test(value)) fail(path, 'must not contain CR, LF or NUL');
  return value;
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return 'an empty string';
  return Array.isArray(value) ? 'an array' : typeof value;
}

function optionalString(path: string, value: unknown): string | undefined {
  return value === undefined ? undefined : str(path, value, '');
}

function httpUrl(path: string, value: unknown): URL {
  const text = str(path, value, '');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    fail(path, `expected an absolute http(s) URL, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    fail(path, `expected an http: or https: URL, got ${JSON.stringify(url.protocol)}`);
  }
  // Credentials in a URL end up in error messages and logs; they belong in `auth`.
  if (url.username !== '' || url.password !== '') fail(path, 'must not contain credentials; use `auth`');
  return url;
}

function headerName(path: string, value: unknown): string {
  const name = str(path, value, '');
  if (!TOKEN.test(name)) fail(path, `${JSON.stringify(name)} is not a valid header name`);
  return name.toLowerCase();
}

function headerRecord(path: string, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!isRecord(value)) fail(path, 'expected an object of header names to string values');
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    const lower = headerName(`${path}.${name}`, name);
    if (typeof v !== 'string') fail(`${path}.${name}`, `expected a string, got ${kind(v)}`);
    if (BAD_VALUE.test(v)) fail(`${path}.${name}`, 'must not contain CR, LF or NUL');
    out[lower] = v;
  }
  return out;
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

/** Header names whose values `describe()` hides: they usually carry credentials. */
export function isSensitiveHeader(name: string): boolean {
  return /auth|key|token|secret|password|cookie|session|signature/i.test(name);
}
