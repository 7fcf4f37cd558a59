/**
 * Opaque access tokens, checked by RFC 7662 introspection at the authorization server: a
 * Verifier beside the JWT one (authenticate() sends it every bearer credential that is not
 * a compact JWS), and a Service that finds the endpoint at start-up.
 *
 * An active answer is accepted only when `exp`/`nbf` (when present) hold with CLOCK_SKEW,
 * `iss` (when present) is one of EXPECTED_ISSUER, `aud` (required: MCP demands audience
 * validation) includes one of EXPECTED_AUDIENCE, and `token_type` is not a refresh token.
 * The endpoint being down, slow or wrong is a 503 (the token may be good), never a 401.
 *
 * Not checked: which client asked for the token (beyond its audience), DPoP/mTLS binding
 * (`cnf`), and scopes (the authorize step reads Identity.scopes).
 */
import type { JWTPayload } from "jose";
import type { Config } from "../config.ts";
import { AuthError, type AuthReason, ConfigError } from "../errors.ts";
import type { Logger } from "../logging.ts";
import type { GatewayMetrics } from "../metrics.ts";
import { isLoopbackHost } from "../net.ts";
import { discover } from "./discovery.ts";
import type { Identity, Service, Verifier } from "./identity.ts";
import { IntrospectionCache } from "./introspection_cache.ts";
import type { IntrospectionSettings } from "./introspection_config.ts";
import {
  basicCredentials,
  introspect,
  type IntrospectionClient,
  IntrospectionError,
  type IntrospectionFailure,
} from "./introspection_request.ts";
import { tokenScopes } from "./scope.ts";
import { type TokenDigest, webCryptoDigest } from "./digest.ts";
import { MaxTokenLength, nearMissHint, showClaim } from "./verify_token.ts";

/** The `outcome` label of mcpgate_introspection_requests_total. */
export type IntrospectionOutcome = "active" | "inactive" | IntrospectionFailure;

export interface IntrospectionVerifierOptions {
  settings: IntrospectionSettings;
  config: Pick<
    Config,
    | "authorizationServers"
    | "expectedIssuers"
    | "expectedAudiences"
    | "clockSkewSeconds"
    | "tokenCacheSize"
    | "jwksFetchTimeoutMs"
  >;
  fetch: typeof fetch;
  /** Milliseconds since the epoch. */
  now: () => number;
  log: Logger;
  /** The cache key (default: WebCrypto's asynchronous SHA-256). */
  digest?: TokenDigest | undefined;
  /** Called after every introspection request (metrics). */
  onIntrospect?: ((outcome: IntrospectionOutcome, seconds: number) => void) | undefined;
}

/** Answers this large cost this much of the cache's byte budget at most. */
const CacheMaxBytes = 64 * 1024 * 1024;
const RefusalMaxEntries = 1024;
/** One error log about the gateway's credentials per this long, however many requests fail. */
const CredentialLogIntervalMs = 10_000;
const RefreshTokenTypes = new Set(["refresh_token", "urn:ietf:params:oauth:token-type:refresh_token"]);

function invalid(reason: AuthReason, description: string, hint?: string): AuthError {
  return new AuthError(reason, 401, "invalid_token", description, { hint });
}

function unavailable(hint: string, cause?: unknown): AuthError {
  return new AuthError(
    "introspection_unavailable",
    503,
    "",
    "The authorization server could not check the access token; retry later",
    { hint, cause },
  );
}

export class IntrospectionVerifier implements Verifier, Service {
  #opts: IntrospectionVerifierOptions;
  #digest: TokenDigest;
  #endpoint: string | undefined;
  #authorization: string;
  #cache: IntrospectionCache | undefined;
  #inflight = new Map<string, Promise<Identity>>();
  #rules: AcceptRules;
  #closed = false;
  #wake: (() => void) | undefined;
  #lastCredentialLog = Number.NEGATIVE_INFINITY;

  constructor(opts: IntrospectionVerifierOptions) {
    this.#opts = opts;
    this.#digest = opts.digest ?? webCryptoDigest;
    const { settings, config } = opts;
    this.#endpoint = settings.endpoint;
    this.#authorization = basicCredentials(settings.clientId, settings.clientSecret);
    this.#rules = acceptRules(config, settings.cacheTtlMs);
    this.#cache = config.tokenCacheSize > 0
      ? new IntrospectionCache({
        maxEntries: config.tokenCacheSize,
        maxBytes: CacheMaxBytes,
        ttlMs: settings.cacheTtlMs,
        skewMs: config.clockSkewSeconds * 1000,
        refusalMaxEntries: RefusalMaxEntries,
        now: opts.now,
      })
      : undefined;
  }

  /** The introspection endpoint in use; undefined until discovered. */
  get endpoint(): string | undefined {
    return this.#endpoint;
  }

  get ready(): boolean {
    return this.#endpoint !== undefined;
  }

  /**
   * Finds the endpoint (INTROSPECTION_ENDPOINT, else the first authorization server's
   * metadata), retrying with backoff while the metadata cannot be read. Rejects with a
   * ConfigError naming INTROSPECTION_ENDPOINT when the metadata has no usable endpoint.
   */
  async start(): Promise<void> {
    const { log, config } = this.#opts;
    const issuer = config.authorizationServers[0]!;
    for (let attempt = 0; this.#endpoint === undefined && !this.#closed; attempt++) {
      let meta: Awaited<ReturnType<typeof discover>>;
      try {
        meta = await discover(this.#opts.fetch, issuer, config.jwksFetchTimeoutMs);
      } catch (e) {
        log.warn("introspection endpoint discovery failed; retrying", {
          issuer,
          error: e instanceof Error ? e.message : String(e),
        });
        await this.#sleep(Math.min(30_000, 500 * 2 ** attempt));
        continue;
      }
      this.#endpoint = discoveredEndpoint(meta.introspection_endpoint, meta.url);
      log.info("introspection endpoint", { issuer, endpoint: this.#endpoint, metadata: meta.url });
      const url = new URL(this.#endpoint);
      if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
        log.warn("configuration warning", {
          warning: `introspection endpoint ${this.#endpoint} is http: the client secret and every token cross ` +
            "the network in the clear",
        });
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.#wake = done;
    });
  }

  /** Checks an opaque token: from the cache, else one introspection shared by concurrent callers. */
  async verify(token: string): Promise<Identity> {
    if (token.length > MaxTokenLength) {
      throw invalid("malformed", "The access token is too large", `token is ${token.length} bytes`);
    }
    const d = this.#digest(token);
    const digest = typeof d === "string" ? d : await d;
    const hit = this.#cache?.get(digest);
    if (hit !== undefined) {
      if (hit.identity !== undefined) return hit.identity;
      throw hit.refusal;
    }
    let pending = this.#inflight.get(digest);
    if (pending === undefined) {
      pending = this.#check(token, digest).finally(() => this.#inflight.delete(digest));
      this.#inflight.set(digest, pending);
    }
    return pending;
  }

  async #check(token: string, digest: string): Promise<Identity> {
    const endpoint = this.#endpoint;
    if (endpoint === undefined) throw unavailable("the introspection endpoint is not known yet");
    const { settings } = this.#opts;
    const client: IntrospectionClient = {
      endpoint,
      clientId: settings.clientId,
      clientSecret: settings.clientSecret,
      timeoutMs: settings.timeoutMs,
    };
    const t0 = performance.now();
    let answer: Record<string, unknown>;
    let bytes: number;
    try {
      ({ answer, bytes } = await introspect(this.#opts.fetch, client, token, this.#authorization));
    } catch (e) {
      const failure: IntrospectionFailure = e instanceof IntrospectionError ? e.failure : "unreachable";
      this.#opts.onIntrospect?.(failure, (performance.now() - t0) / 1000);
      const message = e instanceof Error ? e.message : String(e);
      if (failure === "credentials") this.#logCredentials(message);
      throw unavailable(message, e);
    }
    this.#opts.onIntrospect?.(answer.active === true ? "active" : "inactive", (performance.now() - t0) / 1000);
    let accepted: Accepted;
    try {
      accepted = acceptAnswer(answer, this.#rules, this.#opts.now());
    } catch (e) {
      // Refusals are the server's considered answer: remembered briefly. A token not valid
      // *yet* may become valid within the refusal's life, so that one is not.
      if (e instanceof AuthError && e.code !== "not_yet_valid") this.#cache?.setRefused(digest, e);
      throw e;
    }
    this.#cache?.setAccepted(digest, accepted.identity, accepted.exp, bytes);
    return accepted.identity;
  }

  #logCredentials(message: string): void {
    const now = this.#opts.now();
    if (now - this.#lastCredentialLog < CredentialLogIntervalMs) return;
    this.#lastCredentialLog = now;
    this.#opts.log.error("introspection refused the gateway's credentials", {
      error: message,
      client_id: this.#opts.settings.clientId,
      hint: "check INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET against the client registered at the " +
        "authorization server (it must be a confidential client using client_secret_basic and be allowed to introspect)",
    });
  }
}

/** The opaque-token verifier when INTROSPECTION_CLIENT_ID is set, else undefined. */
export function createIntrospectionVerifier(
  config: Config,
  deps: {
    fetch: typeof fetch;
    now: () => number;
    log: Logger;
    metrics: GatewayMetrics | undefined;
    digest?: TokenDigest | undefined;
  },
): IntrospectionVerifier | undefined {
  if (config.introspection === undefined) return undefined;
  const { metrics } = deps;
  return new IntrospectionVerifier({
    settings: config.introspection,
    config,
    fetch: deps.fetch,
    now: deps.now,
    log: deps.log,
    digest: deps.digest,
    onIntrospect: metrics && ((outcome, seconds) => metrics.introspection(outcome, seconds)),
  });
}

/** The metadata's introspection_endpoint, or a ConfigError naming INTROSPECTION_ENDPOINT. */
function discoveredEndpoint(value: unknown, metadataUrl: string): string {
  let ok = false;
  if (typeof value === "string") {
    try {
      const url = new URL(value);
      ok = (url.protocol === "https:" || url.protocol === "http:") && url.hash === "";
    } catch { /* not a URL */ }
  }
  if (ok) return value as string;
  const what = value === undefined
    ? "has no introspection_endpoint"
    : `has an introspection_endpoint that is not an http(s) URL (${showClaim(value)})`;
  throw new ConfigError([{
    variable: "INTROSPECTION_ENDPOINT",
    value: undefined,
    expected: `the authorization server's metadata ${metadataUrl} ${what}; set INTROSPECTION_ENDPOINT to its ` +
      "RFC 7662 introspection endpoint (INTROSPECTION_CLIENT_ID turned introspection on)",
  }]);
}

/** What acceptAnswer checks against, built once. */
export interface AcceptRules {
  issuers: ReadonlySet<string>;
  audiences: ReadonlySet<string>;
  expectedIssuers: readonly string[];
  expectedAudiences: readonly string[];
  skewSeconds: number;
  /** Identity.exp for an answer without `exp`: this long from now. */
  cacheTtlMs: number;
}

export function acceptRules(
  config: Pick<Config, "expectedIssuers" | "expectedAudiences" | "clockSkewSeconds">,
  cacheTtlMs: number,
): AcceptRules {
  return {
    issuers: new Set(config.expectedIssuers),
    audiences: new Set(config.expectedAudiences),
    expectedIssuers: config.expectedIssuers,
    expectedAudiences: config.expectedAudiences,
    skewSeconds: config.clockSkewSeconds,
    cacheTtlMs,
  };
}

export interface Accepted {
  identity: Identity;
  /** The answer's `exp`, when it had one (the cache never keeps the result past it). */
  exp: number | undefined;
}

function mismatch(claim: string, got: unknown, expected: readonly string[]): string {
  const values = (Array.isArray(got) ? got : [got]).filter((v): v is string => typeof v === "string");
  const near = nearMissHint(values, expected);
  const was = got === undefined ? `${claim} is missing` : `${claim} was ${showClaim(got)}`;
  return `${was}, expected one of ${JSON.stringify(expected)}${near ? ` (${near})` : ""}`;
}

function numericClaim(answer: Record<string, unknown>, name: string): number | undefined {
  const v = answer[name];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw invalid("bad_claim", "The access token has an invalid claim", `${name} was ${showClaim(v)}`);
  }
  return v;
}

function stringClaim(answer: Record<string, unknown>, name: string): string | undefined {
  const v = answer[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * Decides on an introspection answer: the Identity of an acceptable active token, else a
 * 401 AuthError with the reason (inactive, expired, not_yet_valid, bad_issuer,
 * bad_audience, wrong_token_type, missing_sub, bad_claim).
 */
export function acceptAnswer(answer: Record<string, unknown>, rules: AcceptRules, nowMs: number): Accepted {
  if (answer.active !== true) {
    throw invalid("inactive", "The access token is not active", "the authorization server says active: false");
  }
  const nowSec = nowMs / 1000;
  const exp = numericClaim(answer, "exp");
  if (exp !== undefined && exp <= nowSec - rules.skewSeconds) {
    throw invalid("expired", "The access token has expired", `exp was ${showClaim(exp)}`);
  }
  const nbf = numericClaim(answer, "nbf");
  if (nbf !== undefined && nbf > nowSec + rules.skewSeconds) {
    throw invalid("not_yet_valid", "The access token is not valid yet", `nbf was ${showClaim(nbf)}`);
  }
  if (answer.iss !== undefined && (typeof answer.iss !== "string" || !rules.issuers.has(answer.iss))) {
    throw invalid(
      "bad_issuer",
      "The token was issued by an untrusted issuer",
      mismatch("iss", answer.iss, rules.expectedIssuers),
    );
  }
  const aud = typeof answer.aud === "string" ? [answer.aud] : Array.isArray(answer.aud) ? answer.aud : [];
  if (!aud.some((a) => typeof a === "string" && rules.audiences.has(a))) {
    throw invalid(
      "bad_audience",
      "The access token is not meant for this resource",
      mismatch("aud", answer.aud, rules.expectedAudiences),
    );
  }
  const tokenType = answer.token_type;
  if (typeof tokenType === "string" && RefreshTokenTypes.has(tokenType.toLowerCase())) {
    throw invalid(
      "wrong_token_type",
      "A refresh token is not an access token",
      `token_type was ${showClaim(tokenType)}`,
    );
  }
  const sub = stringClaim(answer, "sub");
  const clientId = stringClaim(answer, "client_id");
  const subject = sub ?? clientId;
  if (subject === undefined) {
    throw invalid("missing_sub", "The token has no subject", "the answer has neither sub nor client_id");
  }
  const identity: Identity = {
    sub,
    subject,
    scopes: tokenScopes(answer as JWTPayload),
    clientId,
    exp: exp ?? Math.floor((nowMs + rules.cacheTtlMs) / 1000),
    claims: answer,
  };
  return { identity, exp };
}
