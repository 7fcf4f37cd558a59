/**
 * The in-memory token bucket per key (RATE_LIMIT_RPS / RATE_LIMIT_BURST, and the per-user
 * USER_RATE_LIMIT_*): the default store, and each replica's fallback when Redis fails.
 * Synchronous and allocation-free for a known key: the default path returns a number,
 * never a Promise.
 *
 * Memory stays bounded whatever the number of distinct keys. The rate limiter keeps its
 * buckets in two generations: a bucket used is moved to the current one, and every
 * `burst / rps` (the time any bucket needs to fill up) the previous generation is dropped
 * whole. A bucket dropped that way was idle long enough to be full again, and a full
 * bucket is the same as no bucket, so this is exact. Past `maxEntries / 2` buckets in the
 * current generation the rotation comes early: under a flood of distinct keys some
 * clients get a fresh bucket, never unbounded memory. Every operation is O(1), with no
 * scans.
 */
import type { LimiterStore } from "./store.ts";

interface Bucket {
  tokens: number;
  /** Time of the last refill, in ms. */
  last: number;
}

export interface RateLimiterOptions {
  /** Tokens added per second; 0 disables the limiter. */
  rps: number;
  /** Bucket size (requests allowed at once after idling); 0 disables the limiter. */
  burst: number;
  /** Milliseconds; default Date.now. */
  now?: () => number;
  /** Most buckets held at once (default 100,000). */
  maxEntries?: number;
}

export const DefaultMaxBuckets = 100_000;

/** A token bucket per key. RATE_LIMIT_RPS=0 or RATE_LIMIT_BURST=0 disables it. */
export class RateLimiter implements LimiterStore {
  readonly enabled: boolean;
  readonly #rpms: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #generationMax: number;
  /** After this long unused, any bucket is full again and can be forgotten. */
  readonly #idleMs: number;
  #current = new Map<string, Bucket>();
  #previous = new Map<string, Bucket>();
  #rotatedAt: number;

  constructor(opts: RateLimiterOptions) {
    if (!(opts.rps >= 0) || !(opts.burst >= 0)) throw new Error("Rate limit rps and burst must be 0 or more");
    this.enabled = opts.rps > 0 && opts.burst > 0;
    this.#rpms = opts.rps / 1000;
    this.#burst = opts.burst;
    this.#now = opts.now ?? Date.now;
    this.#generationMax = Math.max(1, Math.floor((opts.maxEntries ?? DefaultMaxBuckets) / 2));
    this.#idleMs = this.enabled ? opts.burst / this.#rpms : 0;
    this.#rotatedAt = this.#now();
  }

  /** Buckets currently held. */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  /**
   * Takes one token for `key`. Returns 0 when the request may go ahead, otherwise the
   * whole seconds (at least 1) after which one token will be available: the Retry-After.
   */
  take(key: string): number {
    if (!this.enabled) return 0;
    const now = this.#now();
    if (now - this.#rotatedAt >= this.#idleMs) this.#rotate(now);
    let b = this.#current.get(key);
    if (b === undefined) {
      b = this.#previous.get(key);
      if (b === undefined) {
        b = { tokens: this.#burst, last: now };
      } else {
        this.#previous.delete(key);
      }
      if (this.#current.size >= this.#generationMax) this.#rotate(now);
      this.#current.set(key, b);
    }
    const elapsed = now - b.last;
    if (elapsed > 0) {
      b.tokens = Math.min(this.#burst, b.tokens + elapsed * this.#rpms);
      b.last = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#rpms / 1000));
  }

  #rotate(now: number): void {
    // Two idle periods without a rotation: everything held is full, drop both generations.
    this.#previous = now - this.#rotatedAt >= 2 * this.#idleMs ? new Map() : this.#current;
    this.#current = new Map();
    this.#rotatedAt = now;
  }
}
