/**
 * The authorization server's signing keys, held in memory.
 *
 * jose's createRemoteJWKSet fails verification when a refresh fails; a gateway must
 * instead keep serving the last good keys while the authorization server is down. So
 * this module does the fetching (discovery, timeout, size cap) and hands each good
 * document to jose's createLocalJWKSet, which does key selection and import.
 *
 * - `start()`: loads, retrying with backoff until it works or `close()`; then refreshes
 *   in the background every refresh interval (±10 % jitter), whatever the traffic. A
 *   failed refresh keeps the last good keys, is logged and counted (`onFetch`), and is
 *   retried after 1 s, 2 s, 4 s … at most min(interval, 5 min) apart.
 * - `refetch()` (unknown kid, or a signature failure on a known kid): at most one fetch
 *   per cooldown, one in flight shared by all callers; resolves true when keys changed.
 *   A signature failure inside the cooldown books one trailing fetch for the moment the
 *   cooldown ends, so a key rotated under its old kid is in place by then without
 *   waiting for a client to retry. Every fetch, of any kind, starts a new cooldown.
 * - Each kid has a KeyStamp that goes dead when that kid's keys change or disappear; the
 *   set as a whole has one that goes dead on any change (for tokens without a kid). The
 *   verified-token cache keeps the stamp with each entry and never answers from a dead one.
 * - Background work (refresh, retries, trailing fetch) runs only between `start()` and
 *   `close()`; a key set that is only `load()`ed refreshes when a verification finds its
 *   keys older than the interval.
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from "jose";
import { AuthError } from "../errors.ts";
import type { Logger } from "../logging.ts";
import { discover } from "./discovery.ts";
import { fetchJson, FetchJsonError } from "./fetch_json.ts";

const PublicKeyTypes = new Set(["RSA", "EC", "OKP"]);
/** First retry of a failed background refresh; doubles up to min(interval, MaxRetryMs). */
const FirstRetryMs = 1_000;
const MaxRetryMs = 5 * 60_000;
/** Spread of the refresh interval, so that a fleet started together does not fetch together. */
const Jitter = 0.1;

/** Runs `fn` after `ms`; returns a function that cancels it. */
export type Schedule = (fn: () => void, ms: number) => () => void;

const timerSchedule: Schedule = (fn, ms) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

/** What a cached verification depended on: false once those keys are gone or replaced. */
export interface KeyStamp {
  readonly live: boolean;
}

type Trigger = "load" | "refresh" | "refetch" | "trailing refetch" | "stale keys";

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
  /** Timer for background work (tests inject a manual one); default setTimeout. */
  schedule?: Schedule;
  /** Uniform [0, 1) for the jitter; default Math.random. */
  random?: () => number;
}

interface Pending {
  cancel: () => void;
  /** Called instead of the task when the key set closes first (wakes a sleeper). */
  onClose: (() => void) | undefined;
}

export class KeySet {
  readonly issuer: string;
  #opts: KeySetOptions;
  #schedule: Schedule;
  #local: JWTVerifyGetKey | undefined;
  #fingerprint = "";
  /** kid → the JSON of its keys, to tell which kids a new document changed. */
  #prints = new Map<string, string>();
  #stamps = new Map<string, { live: boolean }>();
  #setStamp = { live: true };
  #loadedAt = 0;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<boolean> | undefined;
  #version = 0;
  #keyCount = 0;
  /** Advertised by discovery; used for the S256 warning and `check`. */
  metadata: Record<string, unknown> | undefined;

  #background = false;
  #closed = false;
  #closing = new AbortController();
  #pending = new Set<Pending>();
  #refreshFailures = 0;
  #trailing = false;

  constructor(opts: KeySetOptions) {
    this.issuer = opts.issuer;
    this.#opts = opts;
    this.#schedule = opts.schedule ?? timerSchedule;
  }

  /**
   * Loads the keys, retrying with backoff until it works or `close()` is called, then
   * keeps them fresh in the background. Resolves once loaded (or closed).
   */
  async start(): Promise<void> {
    this.#background = true;
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
        this.#after(this.#jittered(this.#opts.refreshIntervalMs), () => void this.#refresh());
        return;
      } catch {
        await this.#sleep(Math.min(30_000, 500 * 2 ** attempt));
      }
    }
  }

  /** Stops retries and background work, aborts a fetch in flight, wakes a sleeping start(). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new Error("key set closed"));
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const p of pending) {
      p.cancel();
      p.onClose?.();
    }
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
    return this.#stamps.has(kid);
  }

  /**
   * The stamp a verification under `kid` depends on, taken before the key is resolved:
   * it dies when that kid's keys change. Without a kid (or for a kid not in the set) it
   * is the whole set's, which dies on any change.
   */
  stampFor(kid: string | undefined): KeyStamp {
    return (kid === undefined ? undefined : this.#stamps.get(kid)) ?? this.#setStamp;
  }

  /** Milliseconds until `refetch()` may fetch again (0: now). */
  nextRefetchIn(): number {
    return Math.max(0, this.#lastAttempt + this.#opts.cooldownMs - this.#opts.now());
  }

  /** jose key resolver over the current keys; 503 `no_keys` when none were ever loaded. */
  readonly getKey: JWTVerifyGetKey = (header, token) => {
    const local = this.#local;
    if (!local) {
      throw new AuthError("no_keys", 503, "", "The authorization server's keys are not loaded yet");
    }
    if (!this.#background && this.#opts.now() - this.#loadedAt > this.#opts.refreshIntervalMs) {
      if (!this.#inflight && this.nextRefetchIn() === 0) this.#run("stale keys").catch(() => {});
    }
    return local(header, token);
  };

  /** Fetches now (or joins the fetch in flight), ignoring the cooldown. Rejects when it fails. */
  load(): Promise<boolean> {
    return this.#run("load");
  }

  /**
   * Rate-limited refetch for an unknown kid or a failed signature. Resolves true when the
   * keys changed (so the caller may verify once more); never rejects. Inside the cooldown
   * it resolves false at once; for a signature failure it also books the trailing fetch.
   */
  refetch(cause: "unknown_kid" | "bad_signature"): Promise<boolean> {
    if (this.#inflight) return this.#inflight.catch(() => false);
    const wait = this.nextRefetchIn();
    if (wait === 0) return this.#run("refetch").catch(() => false);
    if (cause === "bad_signature") this.#bookTrailing(wait);
    return Promise.resolve(false);
  }

  /** One trailing fetch at the end of the cooldown, unless another fetch starts first. */
  #bookTrailing(wait: number): void {
    if (!this.#background || this.#trailing || this.#closed) return;
    this.#trailing = true;
    const attempt = this.#lastAttempt;
    this.#after(wait, () => {
      this.#trailing = false;
      // A fetch since the booking has already seen what the failed signature needed.
      if (this.#lastAttempt === attempt && !this.#inflight) this.#run("trailing refetch").catch(() => {});
    });
  }

  /** One background refresh; books the next one (interval with jitter, or backoff after a failure). */
  async #refresh(): Promise<void> {
    const retryMs = Math.min(
      FirstRetryMs * 2 ** this.#refreshFailures,
      Math.min(this.#opts.refreshIntervalMs, MaxRetryMs),
    );
    let next: number;
    try {
      await this.#run("refresh", { retry_in_ms: retryMs, consecutive_failures: this.#refreshFailures + 1 });
      this.#refreshFailures = 0;
      next = this.#jittered(this.#opts.refreshIntervalMs);
    } catch {
      this.#refreshFailures++;
      next = retryMs;
    }
    this.#after(next, () => void this.#refresh());
  }

  #jittered(ms: number): number {
    return Math.round(ms * (1 - Jitter + 2 * Jitter * (this.#opts.random ?? Math.random)()));
  }

  /** Runs `task` after `ms` unless closed first; `onClose` runs instead when closed. */
  #after(ms: number, task: () => void, onClose?: () => void): void {
    if (this.#closed) {
      onClose?.();
      return;
    }
    const p: Pending = { cancel: () => {}, onClose };
    p.cancel = this.#schedule(() => {
      this.#pending.delete(p);
      task();
    }, ms);
    this.#pending.add(p);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.#after(ms, resolve, resolve));
  }

  /** Starts a fetch, or joins the one in flight. */
  #run(trigger: Trigger, failureFields?: Record<string, unknown>): Promise<boolean> {
    if (this.#inflight) return this.#inflight;
    const p: Promise<boolean> = this.#fetch(trigger, failureFields).finally(() => {
      if (this.#inflight === p) this.#inflight = undefined;
    });
    this.#inflight = p;
    return p;
  }

  async #fetch(trigger: Trigger, failureFields?: Record<string, unknown>): Promise<boolean> {
    this.#lastAttempt = this.#opts.now();
    const { log } = this.#opts;
    const signal = this.#closing.signal;
    try {
      let uri = this.#opts.jwksUri;
      if (uri === undefined) {
        const meta = await discover(this.#opts.fetch, this.issuer, this.#opts.timeoutMs, signal);
        if (!meta.jwks_uri) throw new FetchJsonError(`${meta.url} has no jwks_uri: set JWKS_URI`);
        this.metadata = meta;
        uri = meta.jwks_uri;
      }
      const doc = await fetchJson(this.#opts.fetch, uri, this.#opts.timeoutMs, signal);
      if (this.#closed) return false;
      const changed = this.#install(usableKeys(doc, uri, log), uri, trigger);
      this.#loadedAt = this.#opts.now();
      this.#opts.onFetch?.("ok", this.#keyCount);
      return changed;
    } catch (e) {
      // Closing aborts the fetch: that is no failure of the authorization server.
      if (this.#closed) throw e;
      this.#opts.onFetch?.("error", this.#keyCount);
      log.warn(this.ready ? "jwks refresh failed; keeping the last good keys" : "jwks fetch failed", {
        issuer: this.issuer,
        trigger,
        error: e instanceof Error ? e.message : String(e),
        ...(this.ready ? failureFields : undefined),
      });
      throw e;
    }
  }

  /** Takes a good document; returns true when the keys changed (stamps of changed kids die). */
  #install(jwks: JSONWebKeySet, uri: string, trigger: Trigger): boolean {
    const { log } = this.#opts;
    const fingerprint = JSON.stringify(jwks.keys);
    if (fingerprint === this.#fingerprint) {
      log.debug("jwks unchanged", { issuer: this.issuer, jwks_uri: uri, keys: jwks.keys.length, trigger });
      return false;
    }
    const prints = new Map<string, string>();
    for (const k of jwks.keys) {
      if (typeof k.kid === "string") prints.set(k.kid, `${prints.get(k.kid) ?? ""}${JSON.stringify(k)}`);
    }
    const stamps = new Map<string, { live: boolean }>();
    const removed: string[] = [];
    const replaced: string[] = [];
    for (const [kid, stamp] of this.#stamps) {
      const print = prints.get(kid);
      if (print === this.#prints.get(kid)) {
        stamps.set(kid, stamp);
        continue;
      }
      stamp.live = false;
      (print === undefined ? removed : replaced).push(kid);
    }
    const added = [...prints.keys()].filter((kid) => !stamps.has(kid) && !replaced.includes(kid));
    for (const kid of prints.keys()) if (!stamps.has(kid)) stamps.set(kid, { live: true });
    this.#setStamp.live = false;
    this.#setStamp = { live: true };
    const first = this.#local === undefined;
    this.#local = createLocalJWKSet(jwks);
    this.#fingerprint = fingerprint;
    this.#prints = prints;
    this.#stamps = stamps;
    this.#keyCount = jwks.keys.length;
    this.#version++;
    log.info("jwks loaded", {
      issuer: this.issuer,
      jwks_uri: uri,
      trigger,
      keys: jwks.keys.length,
      kids: [...prints.keys()],
      ...(first ? {} : { added, removed, replaced }),
    });
    return true;
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
