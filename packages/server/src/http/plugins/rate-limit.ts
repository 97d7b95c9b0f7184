// Per-caller rate limits: a token bucket per API key (or per client IP without one), refilled from
// the clock on each request (no timers), with the IETF RateLimit headers and 429 + Retry-After.
import type { FastifyPluginAsync } from 'fastify';
import type { ServerContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { addRouteHook } from '../route.ts';
import { rootPlugin } from './security.ts';

export interface TokenBucketOptions {
  /** Tokens added per minute. */
  readonly perMinute: number;
  /** Bucket capacity: how many requests may come at once after a quiet spell. */
  readonly burst: number;
  /** Callers remembered at most; the least recently seen is forgotten first. @default 10_000 */
  readonly maxKeys?: number;
}

export interface TakeResult {
  readonly allowed: boolean;
  /** Whole tokens left after this request. */
  readonly remaining: number;
  /** Seconds until the next token is added (0 when the bucket is full), rounded up. */
  readonly nextTokenS: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets keyed by caller, bounded in number (LRU) so a flood of IPs cannot grow memory. */
export class TokenBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxKeys: number;

  constructor(options: TokenBucketOptions) {
    this.#perMs = options.perMinute / 60_000;
    this.#burst = options.burst;
    this.#maxKeys = options.maxKeys ?? 10_000;
  }

  get size(): number {
    return this.#buckets.size;
  }

  take(key: string, now: number): TakeResult {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, at: now };
      if (this.#buckets.size >= this.#maxKeys) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    } else {
      // Re-inserting moves the key to the end: the Map's order is the recency order.
      this.#buckets.delete(key);
      bucket.tokens = Math.min(this.#burst, bucket.tokens + Math.max(0, now - bucket.at) * this.#perMs);
      bucket.at = now;
    }
    this.#buckets.set(key, bucket);
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    const missing = bucket.tokens >= this.#burst ? 0 : 1 - (bucket.tokens % 1);
    return {
      allowed,
      remaining: Math.floor(bucket.tokens),
      nextTokenS: missing === 0 ? 0 : Math.ceil(missing / this.#perMs / 1000),
    };
  }
}

export const rateLimitPlugin = rootPlugin<FastifyPluginAsync<{ context: ServerContext }>>(
  async (app, { context }) => {
    const limit = context.settings.rateLimit;
    if (limit === false) return;
    const buckets = new TokenBuckets(limit);
    // The window in which `burst` requests are refilled: q requests per w seconds is the rate.
    const windowS = Math.max(1, Math.round((limit.burst * 60) / limit.perMinute));
    const policy = `"default";q=${limit.burst};w=${windowS}`;

    // Route-level, and not on the probes: a balancer polling often must never be limited.
    addRouteHook(app, 'onRequest', (request, reply, done) => {
      const key = request.principal === undefined ? `ip:${request.ip}` : `key:${request.principal.name}`;
      const result = buckets.take(key, context.clock.now());
      reply.header('ratelimit-policy', policy);
      reply.header('ratelimit', `"default";r=${result.remaining};t=${result.nextTokenS}`);
      if (!result.allowed) {
        const retryAfter = String(Math.max(1, result.nextTokenS));
        done(
          new ApiError(
            'RATE_LIMITED',
            `Rate limit of ${limit.perMinute} requests a minute (bursts of ${limit.burst}) reached; retry in ${retryAfter} s`,
            { headers: { 'retry-after': retryAfter } },
          ),
        );
        return;
      }
      done();
    });
  },
  'bulwark-rate-limit',
);
