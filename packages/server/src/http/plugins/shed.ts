// Load shedding: while the event loop lags past settings.maxEventLoopDelayMs new requests get 503
// OVERLOADED, and while draining new writes under /api get 503 DRAINING; both with Retry-After.
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { addRouteHook } from '../route.ts';
import { rootPlugin } from './security.ts';

/** Where the lag reading comes from; a test gives its own. */
export interface LagSource {
  /** The recent event-loop delay in milliseconds. */
  lagMs(): number;
  start?(): void;
  stop?(): void;
}

/** The sampler's period: a delay shorter than this cannot be seen. */
const RESOLUTION_MS = 10;
/** How long one histogram window lasts. */
const WINDOW_MS = 1_000;
/** The current window counts once it holds this many samples; before that, only the last one does. */
const MIN_SAMPLES = 5;

/**
 * The event loop's typical delay from perf_hooks: the median sample of the last full one-second
 * window, or of the current one once it has a few samples, whichever is larger. The median, not
 * the largest: one stall (a GC pause, an fsync, a big JSON parse) is over by the time the next
 * request is read, and shedding the second after it turned healthy requests away for nothing;
 * under real overload every turn of the loop is late, so the median is high for as long as it lasts.
 * Windows roll on an unref'd one-second timer rather than on the request path: rolled by requests,
 * a window could span an idle minute. The sampler itself already wakes every 10 ms while
 * enabled, so this timer adds nothing measurable.
 */
export function eventLoopLag(): LagSource {
  let histogram: IntervalHistogram | undefined;
  let timer: NodeJS.Timeout | undefined;
  let previous = 0;
  const median = (h: IntervalHistogram, minSamples: number) =>
    h.count >= minSamples ? h.percentile(50) / 1e6 : 0;
  return {
    start() {
      const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
      h.enable();
      histogram = h;
      timer = setInterval(() => {
        previous = median(h, 1);
        h.reset();
      }, WINDOW_MS).unref();
    },
    stop() {
      clearInterval(timer);
      histogram?.disable();
      histogram = undefined;
      previous = 0;
    },
    lagMs() {
      if (histogram === undefined) return 0;
      // Each sample is the whole timer period; only what exceeds it is delay.
      return Math.max(0, Math.max(previous, median(histogram, MIN_SAMPLES)) - RESOLUTION_MS);
    },
  };
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Long enough for a balancer to notice the failing readiness probe and send the retry elsewhere. */
const DRAINING_RETRY_S = '5';
const OVERLOADED_RETRY_S = '1';

export const shedPlugin = rootPlugin<FastifyPluginAsync<{ context: ServerContext; lag?: LagSource }>>(
  async (app, { context, lag = eventLoopLag() }) => {
    const maxDelayMs = context.settings.maxEventLoopDelayMs;
    app.addHook('onReady', async () => lag.start?.());
    app.addHook('onClose', async () => lag.stop?.());

    // Route-level, and not on the probes: a balancer must always reach them.
    addRouteHook(app, 'onRequest', (request, _reply, done) => {
      done(refusal(request));
    });

    function refusal(request: FastifyRequest): ApiError | undefined {
      if (context.draining() && WRITES.has(request.method) && request.url.startsWith('/api/')) {
        return new ApiError('DRAINING', 'The server is shutting down; send this to another instance', {
          headers: { 'retry-after': DRAINING_RETRY_S },
        });
      }
      const lagMs = lag.lagMs();
      if (lagMs <= maxDelayMs) return undefined;
      return new ApiError(
        'OVERLOADED',
        `The event loop lags ${Math.round(lagMs)} ms (limit ${maxDelayMs} ms); retry shortly`,
        { headers: { 'retry-after': OVERLOADED_RETRY_S } },
      );
    }
  },
  'bulwark-shed',
);
