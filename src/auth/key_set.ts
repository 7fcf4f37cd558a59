/**
 * The authorization server's signing keys, held in memory.
 *
 * jose's createRemoteJWKSet fails verification when a refresh fails; a gateway must
 * instead keep serving the last good keys while the authorization server is down. So
 * this module does the fetching (discovery, timeout, size cap) and hands each good
 * document to jose's createLocalJWKSet, which does key selection and import.
 *
 * - `load()` at start-up; `ready` once any key set was loaded.
 * - Scheduled refresh: a request seeing keys older than the refresh interval starts a
 *   background refresh and carries on with the current keys.
 * - `refetch()` (unknown kid, or a signature failure on a known kid): at most one fetch
 *   per cooldown, one in flight shared by all callers; resolves true when keys changed.
 * - A failed fetch keeps the previous keys.
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from "jose";
import { AuthError } from "../errors.ts";
import type { Logger } from "../logging.ts";
import { discover } from "./discovery.ts";
import { fetchJson, FetchJsonError } from "./fetch_json.ts";

const PublicKeyTypes = new Set(["RSA", "EC", "OKP"]);

export interface KeySetOptions {
  /** The issuer whose keys these are (for logs and discovery). */
  issuer: string;
  /** Fixed JWKS URL; when undefined it is discovered from `issuer` on every fetch. */
  jwksUri: string | undefined;
  fetch: typeof fetch;
  now: () => number;
  log: Logger;
  refreshIntervalMs: number;
  cooldownMs: number;
  timeoutMs: number;
  /** Called after every fetch attempt (metrics). */
  onFetch?: (outcome: "ok" | "error", keys: number) => void;
}

export class KeySet {
  readonly issuer: string;
  #opts: KeySetOptions;
  #local: JWTVerifyGetKey | undefined;
  #kids = new Set<string>();
  #fingerprint = "";
  #loadedAt = 0;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<boolean> | undefined;
  #version = 0;
  #keyCount = 0;
  /** Advertised by discovery; used for the S256 warning and `check`. */
  metadata: Record<string, unknown> | undefined;

  #closed = false;
  #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(opts: KeySetOptions) {
    this.issuer = opts.issuer;
    this.#opts = opts;
  }

  /**
   * Loads the keys, retrying with backoff until it works or `close()` is called. Resolves
   * once loaded (or closed).
   */
  async start(): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        await this.load();
        const methods = this.metadata?.code_challenge_methods_supported;
        if (this.metadata && (!Array.isArray(methods) || !methods.includes("S256"))) {
          this.#opts.log.warn("authorization server does not list S256 in code_challenge_methods_supported", {
            issuer: this.issuer,
            hint: "MCP clients require PKCE with S256 and may refuse this server",
          });
        }
        return;
      } catch {
        await this.#sleep(Math.min(30_000, 500 * 2 ** attempt));
      }
    }
  }

  /** Stops retries and background work. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        resolve();
      }, ms);
      this.#timers.add(t);
    });
  }

  get ready(): boolean {
    return this.#local !== undefined;
  }
  /** Bumped every time the set of keys changes. */
  get version(): number {
    return this.#version;
  }
  get keyCount(): number {
    return this.#keyCount;
  }

  hasKid(kid: string): boolean {
    return this.#kids.has(kid);
  }

  /** jose key resolver over the current keys; 503 `no_keys` when none were ever loaded. */
  readonly getKey: JWTVerifyGetKey = (header, token) => {
    const local = this.#local;
    if (!local) {
      throw new AuthError("no_keys", 503, "", "The authorization server's keys are not loaded yet");
    }
    if (this.#opts.now() - this.#loadedAt > this.#opts.refreshIntervalMs) this.#refreshInBackground();
    return local(header, token);
  };

  /** Fetches now, ignoring the cooldown. Rejects when the fetch fails. */
  async load(): Promise<void> {
    const changed = this.#fetch();
    this.#inflight = changed;
    try {
      await changed;
    } finally {
      this.#inflight = undefined;
    }
  }

  /**
   * Rate-limited refetch for an unknown kid or a failed signature. Resolves true when the
   * keys changed (so the caller may verify once more); never rejects.
   */
  refetch(): Promise<boolean> {
    if (this.#inflight) return this.#inflight;
    if (this.#opts.now() - this.#lastAttempt < this.#opts.cooldownMs) return Promise.resolve(false);
    const p = this.#fetch().catch(() => false).finally(() => {
      this.#inflight = undefined;
    });
    this.#inflight = p;
    return p;
  }

  #refreshInBackground(): void {
    if (this.#inflight || this.#opts.now() - this.#lastAttempt < this.#opts.cooldownMs) return;
    this.#inflight = this.#fetch().catch(() => false).finally(() => {
      this.#inflight = undefined;
    });
  }

  async #fetch(): Promise<boolean> {
    this.#lastAttempt = this.#opts.now();
    const { log } = this.#opts;
    try {
      let uri = this.#opts.jwksUri;
      if (uri === undefined) {
        const meta = await discover(this.#opts.fetch, this.issuer, this.#opts.timeoutMs);
        if (!meta.jwks_uri) throw new FetchJsonError(`${meta.url} has no jwks_uri: set JWKS_URI`);
        this.metadata = meta;
        uri = meta.jwks_uri;
      }
      const doc = await fetchJson(this.#opts.fetch, uri, this.#opts.timeoutMs);
      const jwks = usableKeys(doc, uri, log);
      const fingerprint = JSON.stringify(jwks.keys);
      const changed = fingerprint !== this.#fingerprint;
      if (changed) {
        this.#local = createLocalJWKSet(jwks);
        this.#fingerprint = fingerprint;
        this.#kids = new Set(jwks.keys.flatMap((k) => (typeof k.kid === "string" ? [k.kid] : [])));
        this.#keyCount = jwks.keys.length;
        this.#version++;
        log.info("jwks loaded", { issuer: this.issuer, jwks_uri: uri, keys: jwks.keys.length, kids: [...this.#kids] });
      } else {
        log.debug("jwks unchanged", { issuer: this.issuer, jwks_uri: uri, keys: jwks.keys.length });
      }
      this.#loadedAt = this.#opts.now();
      this.#opts.onFetch?.("ok", this.#keyCount);
      return changed;
    } catch (e) {
      this.#opts.onFetch?.("error", this.#keyCount);
      log.warn(this.ready ? "jwks refresh failed; keeping the last good keys" : "jwks fetch failed", {
        issuer: this.issuer,
        error: e instanceof Error ? e.message : String(e),
      });
      throw e;
    }
  }
}

/** Keeps the public signing keys of a JWKS document; rejects a document with none. */
function usableKeys(doc: Record<string, unknown>, uri: string, log: Logger): JSONWebKeySet {
  if (!Array.isArray(doc.keys)) throw new FetchJsonError(`${uri} is not a JWK Set (no "keys" array)`);
  const keys: JWK[] = [];
  const seen = new Set<string>();
  for (const k of doc.keys as unknown[]) {
    if (typeof k !== "object" || k === null) continue;
    const jwk = k as JWK;
    if (typeof jwk.kty !== "string" || !PublicKeyTypes.has(jwk.kty)) {
      log.warn("jwks key ignored", {
        jwks_uri: uri,
        kid: jwk.kid,
        reason: `kty ${String(jwk.kty)} is not a public-key type`,
      });
      continue;
    }
    if ("d" in jwk) {
      log.warn("jwks key ignored", { jwks_uri: uri, kid: jwk.kid, reason: "private key material in a public JWKS" });
      continue;
    }
    if (jwk.use !== undefined && jwk.use !== "sig") continue;
    if (typeof jwk.kid === "string") {
      if (seen.has(jwk.kid)) log.warn("jwks has duplicate kid", { jwks_uri: uri, kid: jwk.kid });
      seen.add(jwk.kid);
    }
    keys.push(jwk);
  }
  if (keys.length === 0) throw new FetchJsonError(`${uri} has no usable public signing keys`);
  return { keys };
}
