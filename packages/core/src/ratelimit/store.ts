// Where a rate limit can be kept outside this process: the seam for a cluster-wide limiter.

/** What a store answers when asked for permits. */
export interface RateLimitDecision {
  /** True when the permits were taken and the call may go ahead. */
  readonly admitted: boolean;
  /** When refused: ms until the permits asked for will be free (`Infinity`: never, the call asks for more than the limit). */
  readonly retryAfterMs: number;
}

/**
 * A rate limit kept elsewhere (for example in Redis, shared by every process of a service).
 * The store applies its own rule; the limiter asks it once per call, in mode `'reject'`.
 */
export interface RateLimitStore {
  /**
   * Takes `permits` for `key` at time `now` (the limiter's clock) if they are free; otherwise
   * takes nothing. `key` is `undefined` for calls without a key (the shared default limit).
   */
  acquire(
    key: string | undefined,
    now: number,
    permits: number,
  ): RateLimitDecision | Promise<RateLimitDecision>;
}
