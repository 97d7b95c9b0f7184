// Response security headers and CORS. The header sets are built once at startup and sent with one
// `reply.headers()` per request: measured, @fastify/helmet rebuilding them per request halves a hello route.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.ts';
import { isProbeUrl, routeOf } from '../route.ts';

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

const BASE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': CSP,
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
} as const;

/**
 * The probes answer JSON that no browser renders: the strictest policy, and the shortest (a
 * balancer polls them many times a second; the dashboard's policy above is 150 bytes more).
 */
const PROBE_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Only over HTTPS: HSTS on plain HTTP is ignored by browsers and would break a local http:// setup. */
const HSTS = 'max-age=31536000; includeSubDomains';

const CORS_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
const CORS_REQUEST_HEADERS =
  'Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-API-Key, X-Request-Id';
/** What a cross-origin script may read besides the CORS-safelisted headers. */
const CORS_EXPOSED_HEADERS = 'Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-Id';

/** The probes: never shed, never rate limited, never authenticated (a balancer must always reach them). */
export function isProbe(request: FastifyRequest): boolean {
  return isProbeUrl(routeOf(request).url);
}

/** Query parameters whose value must never reach a log line. */
const SECRET_QUERY = /([?&](?:key|api_key|apikey|token|access_token)=)[^&#]*/gi;

/** A URL as it may be logged: secret query values replaced (a key sent as `?key=` stays out of the log). */
export function redactUrl(url: string): string {
  return url.includes('?') ? url.replace(SECRET_QUERY, '$1[redacted]') : url;
}

/** Fastify's default request serializer, with the URL redacted. */
export function serializeRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * Marks a plugin as not encapsulated (what fastify-plugin does), so the hooks it adds apply to every
 * route of the app, including routes other plugins register later.
 */
export function rootPlugin<T extends FastifyPluginAsync<any>>(fn: T, name: string): T {
  return Object.assign(fn, {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: name,
  });
}

export const securityPlugin = rootPlugin<FastifyPluginAsync<{ context: ServerContext }>>(
  async (app, { context }) => {
    const { corsOrigins } = context.settings;
    const anyOrigin = corsOrigins.includes('*');
    const allowed = new Set(corsOrigins);
    // Answers differ by Origin only when an allow-list of exact origins is configured; caches must know.
    const vary = allowed.size > 0 && !anyOrigin ? { vary: 'Origin' } : {};
    const plain = Object.freeze({ ...BASE_HEADERS, ...vary });
    const secure = Object.freeze({ ...plain, 'strict-transport-security': HSTS });
    const probePlain = Object.freeze({ ...plain, 'content-security-policy': PROBE_CSP });
    const probeSecure = Object.freeze({ ...secure, 'content-security-policy': PROBE_CSP });
    const preflight = Object.freeze({
      'access-control-allow-methods': CORS_METHODS,
      'access-control-allow-headers': CORS_REQUEST_HEADERS,
      'access-control-max-age': '600',
    });

    // Callback-style, like every hook that runs on every request (an async hook costs a promise and
    // a microtask each), and one hook for all of a response's fixed headers and its request id.
    app.addHook('onRequest', (request, reply, done) => {
      const https = request.protocol === 'https';
      if (isProbe(request)) reply.headers(https ? probeSecure : probePlain);
      else reply.headers(https ? secure : plain);
      reply.header('x-request-id', request.id);
      const origin = request.headers.origin;
      const corsAllowed = origin !== undefined && (anyOrigin || allowed.has(origin));
      if (corsAllowed) {
        reply.header('access-control-allow-origin', anyOrigin ? '*' : origin);
        reply.header('access-control-expose-headers', CORS_EXPOSED_HEADERS);
      }
      if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
        // A disallowed origin gets the same 204 without CORS headers: the browser then refuses.
        if (corsAllowed) reply.headers(preflight);
        reply.code(204).send();
        return;
      }
      done();
    });
  },
  'bulwark-security',
);
