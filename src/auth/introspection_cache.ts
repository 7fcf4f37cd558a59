/**
 * Introspection results, keyed by the SHA-256 of the token (digest.ts; the
 * token itself is never kept).
 *
 * - An accepted token (an Identity) lives until the TTL (INTROSPECTION_CACHE_TTL) or
 *   `exp` + CLOCK_SKEW, whichever is first; `now` is checked on every hit. The TTL is
 *   what bounds how late a revocation takes effect.
 * - A refusal (inactive, wrong audience, …) lives at most 10 s, in a separate small map,
 *   so that a flood of junk tokens cannot evict the good ones.
 * - Failures (outage, timeout, bad answer) are never stored: the caller does not call set.
 * - Bounded in entries (TOKEN_CACHE_SIZE) and in bytes (answers may be up to 64 KiB
 *   each), least recently used evicted first.
 */
import type { AuthError } from "../errors.ts";
import type { Identity } from "./identity.ts";

export const RefusalTtlMs = 10_000;

export interface IntrospectionCacheOptions {
  maxEntries: number;
  maxBytes: number;
  /** INTROSPECTION_CACHE_TTL. */
  ttlMs: number;
  skewMs: number;
  /** How many refusals are remembered at most. */
  refusalMaxEntries: number;
  now: () => number;
}

interface Accepted {
  identity: Identity;
  expiresAt: number;
  bytes: number;
}

interface Refused {
  refusal: AuthError;
  expiresAt: number;
}

export type CacheHit = { identity: Identity; refusal?: undefined } | { refusal: AuthError; identity?: undefined };

export class IntrospectionCache {
  #opts: IntrospectionCacheOptions;
  #accepted = new Map<string, Accepted>();
  #refused = new Map<string, Refused>();
  #bytes = 0;

  constructor(opts: IntrospectionCacheOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#accepted.size;
  }
  get refusals(): number {
    return this.#refused.size;
  }
  get bytes(): number {
    return this.#bytes;
  }

  get(digest: string): CacheHit | undefined {
    const now = this.#opts.now();
    const a = this.#accepted.get(digest);
    if (a !== undefined) {
      if (now >= a.expiresAt) {
        this.#delete(digest, a);
        return undefined;
      }
      // Map iteration order is insertion order: re-inserting marks it most recently used.
      this.#accepted.delete(digest);
      this.#accepted.set(digest, a);
      return { identity: a.identity };
    }
    const r = this.#refused.get(digest);
    if (r === undefined) return undefined;
    if (now >= r.expiresAt) {
      this.#refused.delete(digest);
      return undefined;
    }
    return { refusal: r.refusal };
  }

  /**
   * Remembers an accepted token. `exp` (seconds) undefined: the answer had none, the TTL
   * alone applies. `answerBytes`: the size of the answer, for the byte bound.
   */
  setAccepted(digest: string, identity: Identity, exp: number | undefined, answerBytes: number): void {
    const { maxEntries, maxBytes, ttlMs, skewMs } = this.#opts;
    const now = this.#opts.now();
    const expiresAt = Math.min(now + ttlMs, exp === undefined ? Infinity : exp * 1000 + skewMs);
    const bytes = 256 + answerBytes;
    if (expiresAt <= now || maxEntries <= 0 || bytes > maxBytes) return;
    const old = this.#accepted.get(digest);
    if (old !== undefined) this.#delete(digest, old);
    this.#refused.delete(digest);
    this.#accepted.set(digest, { identity, expiresAt, bytes });
    this.#bytes += bytes;
    while (this.#accepted.size > maxEntries || this.#bytes > maxBytes) {
      const [k, e] = this.#accepted.entries().next().value!;
      this.#delete(k, e);
    }
  }

  /** Remembers a refusal for at most RefusalTtlMs (less when `ttlMs` is shorter). */
  setRefused(digest: string, refusal: AuthError, ttlMs = RefusalTtlMs): void {
    const max = Math.min(this.#opts.refusalMaxEntries, this.#opts.maxEntries);
    const life = Math.min(ttlMs, RefusalTtlMs);
    if (max <= 0 || life <= 0) return;
    const old = this.#accepted.get(digest);
    if (old !== undefined) this.#delete(digest, old);
    this.#refused.delete(digest);
    this.#refused.set(digest, { refusal, expiresAt: this.#opts.now() + life });
    if (this.#refused.size > max) this.#refused.delete(this.#refused.keys().next().value!);
  }

  clear(): void {
    this.#accepted.clear();
    this.#refused.clear();
    this.#bytes = 0;
  }

  #delete(digest: string, e: Accepted): void {
    this.#accepted.delete(digest);
    this.#bytes -= e.bytes;
  }
}
