/**
 * Verified-token cache: a token that verified once need not pay for its signature check
 * again until it expires.
 *
 * Why this is safe:
 * - Keyed by SHA-256 of the whole token, so a hit means the very same bytes were verified
 *   before; no two tokens can share an entry, and no token is kept in memory.
 * - An entry lives until the instant the verifier itself would reject the token
 *   (`exp` + CLOCK_SKEW) or the TTL cap, whichever is first; `now` is checked on every hit.
 * - The whole cache is dropped when the key set changes (rotation, revocation of a key).
 * - Rejections are cached only for a bad signature, briefly, and are dropped with the key
 *   set too: the same bytes against the same keys give the same answer, so a replayed
 *   junk token costs one hash instead of one RSA verification — and does not trigger a
 *   JWKS refetch each time.
 * - Bounded in entries and in bytes, least recently used evicted first. Rejections live in
 *   a separate, small map, so a flood of junk tokens cannot evict the valid ones.
 *
 * Scope checks are not cached (they run per request on the cached claims).
 */
import type { AuthError } from "../errors.ts";
import type { VerifiedToken } from "./verify_token.ts";

export interface TokenCacheOptions {
  maxEntries: number;
  maxBytes: number;
  /** Upper bound on an entry's life, whatever the token's `exp`. */
  ttlCapMs: number;
  /** How long a bad-signature rejection is remembered. */
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
}

interface Rejection {
  rejection: AuthError;
  expiresAt: number;
}

const encoder = new TextEncoder();

/** Hex SHA-256 of the token (WebCrypto; the token itself is never stored). */
export async function tokenDigest(token: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token)));
  let hex = "";
  for (const b of digest) hex += (b < 16 ? "0" : "") + b.toString(16);
  return hex;
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

  /** Drops everything when the key set version differs from the one entries were made with. */
  syncKeyVersion(version: number): void {
    if (version !== this.#keyVersion) {
      this.clear();
      this.#keyVersion = version;
    }
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
      if (now >= e.expiresAt) {
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
    if (now >= r.expiresAt) {
      this.#rejections.delete(digest);
      return undefined;
    }
    return { rejection: r.rejection };
  }

  setVerified(digest: string, verified: VerifiedToken, tokenLength: number): void {
    const now = this.#opts.now();
    const expiresAt = Math.min(verified.exp * 1000 + this.#opts.skewMs, now + this.#opts.ttlCapMs);
    if (expiresAt <= now) return;
    this.#put(digest, { verified, expiresAt, bytes: 256 + 2 * tokenLength });
  }

  setRejected(digest: string, rejection: AuthError): void {
    const max = this.#opts.negativeMaxEntries;
    if (max <= 0 || this.#opts.maxEntries <= 0) return;
    this.#rejections.delete(digest);
    this.#rejections.set(digest, { rejection, expiresAt: this.#opts.now() + this.#opts.negativeTtlMs });
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
