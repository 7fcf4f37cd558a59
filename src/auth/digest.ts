/**
 * The cache key of a bearer credential: a SHA-256 of the whole token, so that a hit means
 * the very same bytes were seen before and no token is kept in memory.
 *
 * WebCrypto's digest is asynchronous: on Deno and Bun it goes through a worker thread and
 * a promise, about 40 µs for a 1 KiB token, more than the rest of a cached request. The
 * runtime (runtime.ts) supplies a synchronous one (node:crypto, Bun.CryptoHasher: 1–6 µs);
 * this portable fallback is for embedders on other runtimes. Both only ever compare keys
 * made by the same function within one process, so their encodings need not agree.
 */
export type TokenDigest = (token: string) => string | Promise<string>;

const encoder = new TextEncoder();

/** Hex SHA-256 through WebCrypto (portable, asynchronous). */
export async function webCryptoDigest(token: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token)));
  let hex = "";
  for (const b of digest) hex += (b < 16 ? "0" : "") + b.toString(16);
  return hex;
}
