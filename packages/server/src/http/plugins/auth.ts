// Who is calling and may they: API keys (header) or a dashboard session (cookie), roles checked
// against each route's `config.access`, CSRF for cookies, and the /api/session login routes.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { audit } from '../audit.ts';
import { type Access, type Principal, ROLES, type Role, type ServerContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { addRouteHook, routeOf } from '../route.ts';
import { problemResponses } from '../schemas.ts';
import type { ApiKey } from '../settings.ts';
import { rootPlugin } from './security.ts';

/** A role's place in ROLES: each may do what those before it may. */
const RANK = Object.fromEntries(ROLES.map((role, i) => [role, i])) as Record<Role, number>;

export const SESSION_COOKIE = 'bulwark_session';
/** A session unused this long ends: a dashboard left open over lunch asks for the key again. */
export const SESSION_IDLE_MS = 2 * 60 * 60 * 1000;
/** However much it is used, a session ends this long after sign-in: a working day. */
export const SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;
/** Bounds memory: a flood of logins cannot grow the map without limit. */
export const MAX_SESSIONS = 10_000;

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * The configured keys, held as SHA-256 digests. A presented key is hashed and compared with every
 * digest in constant time: equal lengths leak no length, and no early exit leaks which key matched.
 */
export class KeyRing {
  readonly #entries: { digest: Buffer; principal: Principal }[];
  readonly #equal: (a: Buffer, b: Buffer) => boolean;

  /** `equal` is replaceable only so a test can count the comparisons. */
  constructor(keys: readonly ApiKey[], equal: (a: Buffer, b: Buffer) => boolean = timingSafeEqual) {
    this.#entries = keys.map((k) => ({
      digest: digest(k.secret),
      principal: Object.freeze({ name: k.name, role: k.role }),
    }));
    this.#equal = equal;
  }

  get size(): number {
    return this.#entries.length;
  }

  find(presented: string): Principal | undefined {
    const presentedDigest = digest(presented);
    let found: Principal | undefined;
    for (const entry of this.#entries) {
      if (this.#equal(presentedDigest, entry.digest) && found === undefined) found = entry.principal;
    }
    return found;
  }
}

interface Session {
  readonly principal: Principal;
  readonly createdAt: number;
  /** Moves forward on each use (idle expiry), never past `createdAt + lifetime`. */
  expiresAt: number;
}

/**
 * Browser sessions in memory, keyed by the token's digest so the map holds no usable token. A
 * session ends after `idleMs` without use, and `lifetimeMs` after it began whatever its use.
 */
export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #idleMs: number;
  readonly #max: number;
  readonly #lifetimeMs: number;

  constructor(idleMs: number, max: number, lifetimeMs = Number.POSITIVE_INFINITY) {
    this.#idleMs = idleMs;
    this.#max = max;
    this.#lifetimeMs = lifetimeMs;
  }

  get size(): number {
    return this.#sessions.size;
  }

  create(principal: Principal, now: number): string {
    if (this.#sessions.size >= this.#max) this.#prune(now);
    // Still full of live sessions: the oldest goes (Map keeps insertion order).
    if (this.#sessions.size >= this.#max) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#sessions.delete(oldest);
    }
    const token = randomBytes(32).toString('base64url');
    this.#sessions.set(digest(token).toString('base64url'), {
      principal,
      createdAt: now,
      expiresAt: this.#expiry(now, now),
    });
    return token;
  }

  /** The session's principal, its idle time restarted; undefined when unknown or expired. */
  get(token: string, now: number): Principal | undefined {
    const id = digest(token).toString('base64url');
    const session = this.#sessions.get(id);
    if (session === undefined) return undefined;
    if (session.expiresAt <= now) {
      this.#sessions.delete(id);
      return undefined;
    }
    session.expiresAt = this.#expiry(session.createdAt, now);
    return session.principal;
  }

  /** When the session ends if not used again (epoch ms), or undefined. Does not count as a use. */
  expiresAt(token: string): number | undefined {
    return this.#sessions.get(digest(token).toString('base64url'))?.expiresAt;
  }

  delete(token: string): void {
    this.#sessions.delete(digest(token).toString('base64url'));
  }

  #expiry(createdAt: number, now: number): number {
    return Math.min(now + this.#idleMs, createdAt + this.#lifetimeMs);
  }

  #prune(now: number): void {
    for (const [id, session] of this.#sessions) if (session.expiresAt <= now) this.#sessions.delete(id);
  }
}

/** One registered route and what it requires; `routeTable(app)` lists them all. */
export interface RouteAccess {
  readonly method: string;
  readonly url: string;
  readonly access: Access;
}

const kRoutes = Symbol('bulwark.routes');
/** The key ring and sessions, shared with the session routes (registered later, with the other APIs). */
const kAuth = Symbol('bulwark.auth');
interface AuthState {
  readonly keys: KeyRing;
  readonly sessions: SessionStore;
}
/** How this request was authenticated: a header key, a session cookie, or a credential that did not match. */
const kVia = Symbol('bulwark.authVia');
type Via = 'header' | 'cookie' | 'invalid' | undefined;

/** Every route registered after the auth plugin (all of the app's routes), with its access. */
export function routeTable(app: FastifyInstance): readonly RouteAccess[] {
  const routes = (app as unknown as Record<symbol, RouteAccess[] | undefined>)[kRoutes];
  if (routes === undefined) throw new Error('the auth plugin is not registered on this app');
  return routes;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function headerKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    // A malformed Authorization header is a credential that does not match, not a missing one.
    return match?.[1] ?? authorization;
  }
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' ? apiKey : undefined;
}

/** The origin this server is reached at, as a browser writes it in `Origin`. */
function ownOrigin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

/** HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure over HTTPS. */
function cookieAttributes(request: FastifyRequest): string {
  // `protocol` follows X-Forwarded-Proto when the server trusts its proxy (server.trustProxy).
  return `HttpOnly; SameSite=Strict; Path=/${request.protocol === 'https' ? '; Secure' : ''}`;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const CHALLENGE = { 'www-authenticate': 'Bearer realm="bulwark"' };

export const authPlugin = rootPlugin<FastifyPluginAsync<{ context: ServerContext }>>(
  async (app, { context }) => {
    const keys = new KeyRing(context.settings.apiKeys);
    const sessions = new SessionStore(SESSION_IDLE_MS, MAX_SESSIONS, SESSION_LIFETIME_MS);
    const routes: RouteAccess[] = [];
    app.decorate(kRoutes, routes);
    app.decorate(kAuth, { keys, sessions } satisfies AuthState);
    app.decorateRequest(kVia, undefined);
    app.addHook('onRoute', (route) => {
      const access = route.config?.access ?? 'admin';
      for (const method of [route.method].flat()) routes.push({ method, url: route.url, access });
    });

    // Identify in onRequest, enforce in preParsing: the rate limiter runs in between, so failed
    // attempts count against the caller's IP, and no body is read for a request that will be refused.
    // Both route-level and not on the probes; unknown routes (404) pass neither, so they stay 404
    // for everyone: authenticating them would only hide the typo.
    addRouteHook(app, 'onRequest', (request, _reply, done) => {
      identify(request);
      done();
    });

    function identify(request: FastifyRequest): void {
      const presented = headerKey(request);
      const requestState = request as unknown as Record<symbol, Via>;
      if (presented !== undefined) {
        request.principal = keys.find(presented);
        requestState[kVia] = request.principal === undefined ? 'invalid' : 'header';
        return;
      }
      const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
      if (token !== undefined) {
        request.principal = sessions.get(token, context.clock.now());
        requestState[kVia] = request.principal === undefined ? 'invalid' : 'cookie';
      }
    }

    addRouteHook(app, 'preParsing', (request, _reply, payload, done) => {
      // The common case (allowed) stays synchronous; only a denial awaits its audit entry.
      let refusal: Promise<never> | undefined;
      try {
        refusal = enforce(request);
      } catch (error) {
        done(error as Error);
        return;
      }
      if (refusal === undefined) done(null, payload);
      else refusal.catch((error: Error) => done(error));
    });

    /** Throws (401) or returns a pending refusal (403, being audited); undefined when allowed. */
    function enforce(request: FastifyRequest): Promise<never> | undefined {
      const access = routeOf(request).config.access ?? 'admin';
      const via = (request as unknown as Record<symbol, Via>)[kVia];
      // A WebSocket is a GET that CORS does not guard: a page elsewhere could read what it sends.
      if (
        via === 'cookie' &&
        (!SAFE_METHODS.has(request.method) || request.headers.upgrade?.toLowerCase() === 'websocket')
      ) {
        // SameSite=Strict already keeps the cookie off cross-site requests; this also covers
        // same-site siblings and old browsers.
        const origin = request.headers.origin;
        if (origin !== ownOrigin(request)) {
          return deny(request, 'A request with a session cookie must come from the dashboard (Origin)');
        }
      }
      if (access === 'public') return undefined;
      const principal = request.principal;
      if (principal === undefined) {
        throw new ApiError(
          'UNAUTHORIZED',
          via === 'invalid'
            ? 'The API key or session is not valid'
            : 'Send an API key: Authorization: Bearer <key> or X-API-Key: <key>',
          { headers: CHALLENGE },
        );
      }
      if (RANK[principal.role] < RANK[access]) {
        return deny(request, `This needs the ${access} role; the key ${principal.name} is ${principal.role}`);
      }
      return undefined;
    }

    async function deny(request: FastifyRequest, detail: string): Promise<never> {
      if (!SAFE_METHODS.has(request.method)) {
        try {
          await audit(context, request, {
            action: `${request.method} ${routeOf(request).url}`,
            target: request.url.split('?')[0] ?? request.url,
            outcome: 'denied',
          });
        } catch (error) {
          // The denial stands either way; a store that cannot record it is reported, not hidden.
          request.log.error({ err: error }, 'could not audit a denied request');
        }
      }
      throw new ApiError('FORBIDDEN', detail);
    }
  },
  'bulwark-auth',
);

/**
 * /api/session: the dashboard's login. EventSource and WebSocket cannot send an Authorization
 * header, so the browser trades its key for an HttpOnly cookie once. Register with prefix /api.
 */
export const sessionApi: FastifyPluginAsync<{ context: ServerContext }> = async (app, { context }) => {
  const state = (app as unknown as Record<symbol, AuthState | undefined>)[kAuth];
  if (state === undefined) throw new Error('register the auth plugin before the session routes');
  const { keys, sessions } = state;
  const tags = ['auth'];
  app.post<{ Body: { key: string } }>(
    '/session',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Log the dashboard in: trade an API key for an HttpOnly session cookie',
        body: {
          type: 'object',
          required: ['key'],
          properties: { key: { type: 'string', minLength: 1, maxLength: 1024 } },
          additionalProperties: false,
        },
        response: { 204: { type: 'null' }, ...problemResponses },
      },
    },
    async (request, reply) => {
      // A login posted from another site (login CSRF) would bind the victim's browser to a foreign key.
      const origin = request.headers.origin;
      if (origin !== undefined && origin !== ownOrigin(request)) {
        throw new ApiError('FORBIDDEN', 'Log in from the dashboard itself (Origin)');
      }
      const principal = keys.find(request.body.key);
      if (principal === undefined) {
        throw new ApiError('UNAUTHORIZED', 'The API key is not valid', { headers: CHALLENGE });
      }
      const token = sessions.create(principal, context.clock.now());
      // No Max-Age: the cookie lasts while the browser runs, and the server ends the session
      // when it goes unused (a cookie's fixed age could not slide with its use).
      reply.header('set-cookie', `${SESSION_COOKIE}=${token}; ${cookieAttributes(request)}`);
      return reply.code(204).send();
    },
  );

  app.delete(
    '/session',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Log out: end the session (it is refused from now on) and clear the cookie',
        response: { 204: { type: 'null' }, ...problemResponses },
      },
    },
    async (request, reply) => {
      const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
      if (token !== undefined) sessions.delete(token);
      reply.header('set-cookie', `${SESSION_COOKIE}=; ${cookieAttributes(request)}; Max-Age=0`);
      return reply.code(204).send();
    },
  );

  app.get(
    '/session',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Who the key or session belongs to, and when the session ends if left unused',
        response: {
          200: {
            type: 'object',
            required: ['name', 'role', 'expiresAt'],
            properties: {
              name: { type: 'string' },
              role: { type: 'string' },
              expiresAt: {
                type: ['integer', 'null'],
                description: 'Epoch ms; each request moves it on. Null for an API key (no session).',
              },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const via = (request as unknown as Record<symbol, Via>)[kVia];
      const token = via === 'cookie' ? cookieValue(request.headers.cookie, SESSION_COOKIE) : undefined;
      return {
        name: request.principal?.name,
        role: request.principal?.role,
        expiresAt: token === undefined ? null : (sessions.expiresAt(token) ?? null),
      };
    },
  );
};
