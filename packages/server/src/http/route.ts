// The matched route's options, read once per request: Fastify builds a fresh object on every read
// of `request.routeOptions`, and several hooks ask for it on every request (seen in profiles).
import type { FastifyInstance, FastifyRequest } from 'fastify';

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
