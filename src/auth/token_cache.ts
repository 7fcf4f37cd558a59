/**
 * Verified-token cache: a token that verified once need not pay for its signature check
 * again until it expires.
 *
 * Why this is safe:
 * - Keyed by SHA-256 of the whole token (digest.ts), so a hit means the very same bytes were verified
 *   before; no two tokens can share an entry, and no token is kept in memory.
 * - An entry lives until the instant the verifier itself would reject the token
 *   (`exp` + CLOCK_SKEW) or the TTL cap, whichever is first; `now` is checked on every hit.
 * - Each entry keeps the KeyStamp of the key it was verified with (key_set.ts); when a
 *   key refresh removes or replaces that key the stamp dies, and the entry is never
 *   answered from again (checked on every hit: one property read). Entries of tokens
 *   without a kid hold the whole key set's stamp and go with any change.
 * - Rejections are cached only for a bad signature, and no longer than the caller says:
 *   until the key set may be refetched again (so a key rotated under its old kid is
 *   accepted once the refetch can see it), at most `negativeTtlMs`. Within that time the
 *   same bytes against the same keys give the same answer, so a replayed junk token costs
 *   one hash instead of one RSA verification — and does not trigger a JWKS refetch each time.
 * - Bounded in entries and in bytes, least recently used evicted first. Rejections live in
 *   a separate, small map, so a flood of junk tokens cannot evict the valid ones.
 *
 * Scope checks are not cached (they run per request on the cached claims).
 */
import type { AuthError } from "../errors.ts";
import type { KeyStamp } from "./key_set.ts";
import type { VerifiedToken } from "./verify_token.ts";

export interface TokenCacheOptions {
  maxEntries: number;
  maxBytes: number;
  /** Upper bound on an entry's life, whatever the token's `exp`. */
  ttlCapMs: number;
  /** How long a bad-signature rejection is remembered at most. */
  negativeTtlMs: number;
  /** How many rejections are remembered at most. */
  negativeMaxEntries: number;
  skewMs: number;
  now: () => number;
}

interface Entry {
  verified: VerifiedToken;
  expiresAt: number;
  bytes: number;
  stamp: KeyStamp;
}

interface Rejection {
  rejection: AuthError;
  expiresAt: number;
  stamp: KeyStamp;
}

export class TokenCache {
  #opts: TokenCacheOptions;
  #entries = new Map<string, Entry>();
  #rejections = new Map<string, Rejection>();
  #bytes = 0;
  #keyVersion = -1;

  constructor(opts: TokenCacheOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#entries.size;
  }
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Sweeps out the entries whose key is gone, once per key set version (the hit path
   * already ignores them; this frees their memory). Called on the miss path.
   */
  syncKeyVersion(version: number): void {
    if (version === this.#keyVersion) return;
    this.#keyVersion = version;
    for (const [digest, e] of this.#entries) if (!e.stamp.live) this.#delete(digest, e);
    for (const [digest, r] of this.#rejections) if (!r.stamp.live) this.#rejections.delete(digest);
  }

  clear(): void {
    this.#entries.clear();
    this.#rejections.clear();
    this.#bytes = 0;
  }

  /** A live entry for the digest: the verified token, or a cached rejection to rethrow. */
  get(digest: string): { verified: VerifiedToken } | { rejection: AuthError } | undefined {
    const now = this.#opts.now();
    const e = this.#entries.get(digest);
    if (e) {
      if (now >= e.expiresAt || !e.stamp.live) {
        this.#delete(digest, e);
        return undefined;
      }
      // Refresh recency: Map iteration order is insertion order.
      this.#entries.delete(digest);
      this.#entries.set(digest, e);
      return { verified: e.verified };
    }
    const r = this.#rejections.get(digest);
    if (!r) return undefined;
    if (now >= r.expiresAt || !r.stamp.live) {
      this.#rejections.delete(digest);
      return undefined;
    }
    return { rejection: r.rejection };
  }

  /** Remembers a verified token until exp + skew (or the TTL cap), while `stamp` lives. */
  setVerified(digest: string, verified: VerifiedToken, tokenLength: number, stamp: KeyStamp): void {
    if (!stamp.live) return;
    const now = this.#opts.now();
    const expiresAt = Math.min(verified.exp * 1000 + this.#opts.skewMs, now + this.#opts.ttlCapMs);
    if (expiresAt <= now) return;
    this.#put(digest, { verified, expiresAt, bytes: 256 + 2 * tokenLength, stamp });
  }

  /** Remembers a bad-signature rejection for min(ttlMs, negativeTtlMs), while `stamp` lives. */
  setRejected(digest: string, rejection: AuthError, ttlMs: number, stamp: KeyStamp): void {
    const max = this.#opts.negativeMaxEntries;
    const ttl = Math.min(ttlMs, this.#opts.negativeTtlMs);
    if (max <= 0 || this.#opts.maxEntries <= 0 || ttl <= 0 || !stamp.live) return;
    this.#rejections.delete(digest);
    this.#rejections.set(digest, { rejection, expiresAt: this.#opts.now() + ttl, stamp });
    if (this.#rejections.size > max) this.#rejections.delete(this.#rejections.keys().next().value!);
  }

  #put(digest: string, entry: Entry): void {
    const { maxEntries, maxBytes } = this.#opts;
    if (maxEntries <= 0 || entry.bytes > maxBytes) return;
    const old = this.#entries.get(digest);
    if (old) this.#delete(digest, old);
    this.#entries.set(digest, entry);
    this.#bytes += entry.bytes;
    while (this.#entries.size > maxEntries || this.#bytes > maxBytes) {
      const [k, e] = this.#entries.entries().next().value!;
      this.#delete(k, e);
    }
  }

  #delete(digest: string, e: Entry): void {
    this.#entries.delete(digest);
    this.#bytes -= e.bytes;
  }
}
