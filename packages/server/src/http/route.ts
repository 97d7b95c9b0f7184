// The matched route's options, read once per request: Fastify builds a fresh object on every read
// of `request.routeOptions`, and several hooks ask for it on every request (seen in profiles).
// Also the route-level hooks that spare the probes the plugins they are exempt from.
import type {
  FastifyInstance,
  FastifyRequest,
  RouteOptions as FastifyRouteOptions,
  onRequestHookHandler,
  preParsingHookHandler,
  preValidationHookHandler,
} from 'fastify';

type RouteOptions = FastifyRequest['routeOptions'];

const kRoute = Symbol('bulwark.route');

/** Declares the cache slot on the root instance, so every request object has the same shape. */
export function installRouteCache(app: FastifyInstance): void {
  app.decorateRequest(kRoute, null);
}

export function routeOf(request: FastifyRequest): RouteOptions {
  const slots = request as unknown as Record<symbol, RouteOptions | null>;
  let route = slots[kRoute];
  if (route === null || route === undefined) {
    route = request.routeOptions;
    slots[kRoute] = route;
  }
  return route;
}

/** The probes' route templates: never shed, never rate limited, never authenticated. */
export function isProbeUrl(url: string | undefined): boolean {
  return url !== undefined && (url === '/health' || url.startsWith('/health/'));
}

type RouteHooks = {
  onRequest: onRequestHookHandler;
  preParsing: preParsingHookHandler;
  preValidation: preValidationHookHandler;
};

/**
 * Adds `hook` to every route registered from now on except the probes, as a route-level hook. A
 * global hook that returns early for probes still costs each probe a pass through Fastify's hook
 * runner; here the probes' hook lists do not hold it at all. Route-level hooks run after the
 * global ones of the same stage, in the order the plugins were registered. Unmatched URLs (404)
 * do not pass these hooks either: they run no handler, so there is nothing to shed or protect.
 */
export function addRouteHook<K extends keyof RouteHooks>(
  app: FastifyInstance,
  name: K,
  hook: RouteHooks[K],
): void {
  app.addHook('onRoute', (route: FastifyRouteOptions) => {
    if (isProbeUrl(route.url)) return;
    const own = route[name] as RouteHooks[K] | RouteHooks[K][] | undefined;
    (route as unknown as Record<K, RouteHooks[K][]>)[name] =
      own === undefined ? [hook] : [...(Array.isArray(own) ? own : [own]), hook];
  });
}
