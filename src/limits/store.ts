/**
 * What a rate-limit decision needs from where the buckets live: the in-memory RateLimiter
 * (the default, synchronous) or the Redis-backed SharedBucket (one round trip, async).
 */

/** take() result when the shared store failed and RATE_LIMIT_FAIL_CLOSED is on: answer 503. */
export const StoreUnavailable = -1;

export interface LimiterStore {
  /** False when the limit is off (rps or burst 0): take() always allows. */
  readonly enabled: boolean;
  /**
   * Takes one token for `key`: 0 when the request may go ahead, otherwise the whole
   * seconds (at least 1) until a token is available (the Retry-After), or
   * StoreUnavailable. A memory store answers synchronously, without allocating a Promise.
   */
  take(key: string): number | Promise<number>;
}
