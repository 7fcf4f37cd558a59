/**
 * JWT access token verification for a resource server (RFC 9068 profile, RFC 8725 BCP).
 *
 * Cheap checks come first — shape, algorithm allowlist, `crit`, `typ`, issuer, kid —
 * so that junk never reaches the cryptography. jose's jwtVerify then checks the
 * signature with a key chosen only by `kid`/`alg` from the authorization server's JWKS
 * (`jku`, `x5u`, `x5c` and embedded `jwk` headers are never used), and the claims:
 * `iss` exact, `aud` intersecting the accepted list, `exp` required, `nbf`, skew, `sub`.
 *
 * Not checked here: scopes (see scope.ts), token revocation (a JWT cannot tell), and
 * whether the client is allowed to use this resource beyond its audience.
 */
import {
  base64url,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyOptions,
  type ProtectedHeaderParameters,
  UnsecuredJWT,
} from "jose";
import type { SignatureCheck } from "./signature.ts";
import type { Config } from "../config.ts";
import { AuthError, type AuthReason } from "../errors.ts";
import type { Identity, Verifier } from "./identity.ts";
import type { KeySet, KeyStamp } from "./key_set.ts";
import { tokenScopes } from "./scope.ts";
import type { TokenCache } from "./token_cache.ts";
import { type TokenDigest, webCryptoDigest } from "./digest.ts";

/** Larger tokens are refused before parsing (real access tokens stay under a few KiB). */
export const MaxTokenLength = 16_384;

/** A verified JWT: its Identity, with `sub` always present (RFC 9068). */
export interface VerifiedToken extends Identity {
  sub: string;
  scopes: string[];
  payload: JWTPayload;
}

/** `typ` values accepted: RFC 9068's at+jwt preferred, plain JWT or none tolerated. */
const AcceptedTyp = new Set(["at+jwt", "application/at+jwt", "jwt", "application/jwt"]);

function invalid(reason: AuthReason, description: string, hint?: string, cause?: unknown): AuthError {
  return new AuthError(reason, 401, "invalid_token", description, { hint, cause });
}

const encoder = new TextEncoder();
/** The header of an unsecured JWT, for handing jose a checked token's claims to validate. */
const NoneHeader = base64url.encode(JSON.stringify({ alg: "none" }));

/**
 * The signature through `check` (runtime.ts), the key chosen by jose from the JWKS as in
 * jwtVerify, then the claims validated by jose's own rules (UnsecuredJWT.decode runs the
 * same claim-set validation as jwtVerify, with the same options and errors). Undefined when
 * `check` does not take this alg or key, or several keys match: then jose's path decides.
 */
async function checkedPayload(
  token: string,
  keys: KeySet,
  header: ProtectedHeaderParameters,
  check: SignatureCheck,
  options: Omit<JWTVerifyOptions, "algorithms">,
): Promise<JWTPayload | undefined> {
  const first = token.indexOf(".");
  const last = token.lastIndexOf(".");
  let key: unknown;
  try {
    key = await keys.getKey(header as ProtectedHeaderParameters & { alg: string }, {
      protected: token.slice(0, first),
      payload: token.slice(first + 1, last),
      signature: token.slice(last + 1),
    });
  } catch (e) {
    if (e instanceof joseErrors.JWKSMultipleMatchingKeys) return undefined;
    throw e;
  }
  if (!(key instanceof CryptoKey)) return undefined;
  let signature: Uint8Array;
  try {
    signature = base64url.decode(token.slice(last + 1));
  } catch {
    throw new joseErrors.JWSInvalid("Failed to base64url decode the signature");
  }
  const ok = check(header.alg!, key, encoder.encode(token.slice(0, last)), signature);
  if (ok === undefined) return undefined;
  if (!ok) throw new joseErrors.JWSSignatureVerificationFailed();
  return UnsecuredJWT.decode(`${NoneHeader}.${token.slice(first + 1, last)}.`, options).payload;
}

/** Explains near misses in plain words: trailing slash, case, scheme. */
export function nearMissHint(got: readonly string[], expected: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/\/+$/, "").replace(/^https?:\/\//, "");
  for (const g of got) {
    for (const e of expected) {
      if (g === e) continue;
      if (g.replace(/\/+$/, "") === e.replace(/\/+$/, "")) {
        return `${JSON.stringify(g)} differs from ${JSON.stringify(e)} only by a trailing slash`;
      }
      if (g.toLowerCase() === e.toLowerCase()) {
        return `${JSON.stringify(g)} differs from ${JSON.stringify(e)} only by letter case`;
      }
      if (norm(g) === norm(e)) return `${JSON.stringify(g)} differs from ${JSON.stringify(e)} only by scheme`;
    }
  }
  return undefined;
}

/**
 * A claim value for a log hint, bounded and never recursive: the claims are attacker
 * input that has not been verified yet (a 3,000-deep array must not blow the stack).
 */
export function showClaim(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  if (Array.isArray(value)) {
    const items = value.slice(0, 5).map((v) => typeof v === "string" || typeof v === "number" ? showClaim(v) : "…");
    return `[${items.join(",")}${value.length > 5 ? ",…" : ""}]`;
  }
  return typeof value === "object" ? "(an object)" : `(${typeof value})`;
}

function describeMismatch(claim: string, got: unknown, expected: readonly string[]): string {
  const values = (Array.isArray(got) ? got : [got]).filter((v): v is string => typeof v === "string");
  const near = nearMissHint(values, expected);
  const was = got === undefined ? `${claim} is missing` : `${claim} was ${showClaim(got)}`;
  return `${was}, expected one of ${JSON.stringify(expected)}${near ? ` (${near})` : ""}`;
}

/** Filled in by a verification for the cache: which key set, and the stamp of the key used. */
interface KeysUsed {
  keys?: KeySet;
  stamp?: KeyStamp;
}

export interface TokenVerifierOptions {
  config: Pick<
    Config,
    "allowedAlgorithms" | "expectedIssuers" | "expectedAudiences" | "clockSkewSeconds"
  >;
  /** The key set for a token's (already accepted) issuer. */
  keysFor: (iss: string) => KeySet;
  /** Changes whenever any key set changes (the cache then sweeps out entries of removed keys). */
  keyVersion: () => number;
  now: () => number;
  cache?: TokenCache | undefined;
  /** A faster signature check than jose's WebCrypto one (runtime.ts); undefined: jose's. */
  signatureCheck?: SignatureCheck | undefined;
  /** The cache key (default: WebCrypto's asynchronous SHA-256; the runtime has a faster one). */
  digest?: TokenDigest | undefined;
}

export class TokenVerifier implements Verifier {
  #opts: TokenVerifierOptions;
  #digest: TokenDigest;
  #algorithms: Set<string>;
  #issuers: Set<string>;
  #audiences: Set<string>;
  #verifyOptions: Omit<JWTVerifyOptions, "currentDate">;

  constructor(opts: TokenVerifierOptions) {
    this.#opts = opts;
    this.#digest = opts.digest ?? webCryptoDigest;
    const c = opts.config;
    this.#algorithms = new Set(c.allowedAlgorithms);
    this.#issuers = new Set(c.expectedIssuers);
    this.#audiences = new Set(c.expectedAudiences);
    this.#verifyOptions = {
      algorithms: [...c.allowedAlgorithms],
      issuer: [...c.expectedIssuers],
      audience: [...c.expectedAudiences],
      clockTolerance: c.clockSkewSeconds,
      requiredClaims: ["exp", "sub"],
    };
  }

  /** Verifies a compact JWS access token; throws AuthError with a stable reason. */
  async verify(token: string): Promise<VerifiedToken> {
    const cache = this.#opts.cache;
    if (!cache || token.length > MaxTokenLength) return this.#verify(token, {});
    const d = this.#digest(token);
    const digest = typeof d === "string" ? d : await d;
    const hit = cache.get(digest);
    if (hit) {
      if ("verified" in hit) return hit.verified;
      throw hit.rejection;
    }
    cache.syncKeyVersion(this.#opts.keyVersion());
    const used: KeysUsed = {};
    try {
      const verified = await this.#verify(token, used);
      if (used.stamp) cache.setVerified(digest, verified, token.length, used.stamp);
      return verified;
    } catch (e) {
      if (e instanceof AuthError && e.code === "bad_signature" && used.keys && used.stamp) {
        // Not past the next possible refetch: a key rotated under this kid may come with it.
        cache.setRejected(digest, e, used.keys.nextRefetchIn(), used.stamp);
      }
      throw e;
    }
  }

  async #verify(token: string, used: KeysUsed): Promise<VerifiedToken> {
    const { header, claims } = this.#precheck(token);
    const keys = this.#opts.keysFor(claims.iss!);
    if (!keys.ready) {
      throw new AuthError("no_keys", 503, "", "The authorization server's keys are not loaded yet");
    }
    used.keys = keys;
    const kid = typeof header.kid === "string" ? header.kid : undefined;
    if (kid !== undefined && !keys.hasKid(kid)) {
      await keys.refetch("unknown_kid");
      if (!keys.hasKid(kid)) {
        throw invalid(
          "unknown_kid",
          "The token was signed with an unknown key",
          `kid ${showClaim(kid)} is not in the JWKS`,
        );
      }
    }
    let payload: JWTPayload;
    try {
      used.stamp = keys.stampFor(kid);
      payload = await this.#verifyWithKeys(token, keys, header);
    } catch (e) {
      if (!(e instanceof joseErrors.JWSSignatureVerificationFailed)) throw this.#mapError(e, claims);
      // The key may have been rotated under the same kid: refetch once and retry.
      if (!(await keys.refetch("bad_signature"))) throw this.#mapError(e, claims);
      try {
        used.stamp = keys.stampFor(kid);
        payload = await this.#verifyWithKeys(token, keys, header);
      } catch (e2) {
        throw this.#mapError(e2, claims);
      }
    }
    if (typeof payload.sub !== "string" || payload.sub === "") {
      throw invalid("missing_sub", "The token has no subject", "sub must be a non-empty string");
    }
    const clientId = payload["client_id"] ?? payload.azp ?? payload["cid"] ?? payload["appid"];
    return {
      sub: payload.sub,
      subject: payload.sub,
      scopes: tokenScopes(payload),
      clientId: typeof clientId === "string" ? clientId : undefined,
      exp: payload.exp!,
      claims: payload,
      payload,
    };
  }

  /**
   * The cheap checks, before any key is looked at: size, shape, algorithm, `crit`, `typ`,
   * issuer, and the claims that can only reject (exp, iat, nbf, aud).
   */
  #precheck(token: string): { header: ProtectedHeaderParameters; claims: JWTPayload } {
    const c = this.#opts.config;
    if (token.length > MaxTokenLength) {
      throw invalid("malformed", "The access token is too large", `token is ${token.length} bytes`);
    }
    let header: ProtectedHeaderParameters;
    let claims: JWTPayload;
    try {
      if (token.split(".").length !== 3) throw new Error("not three segments");
      header = decodeProtectedHeader(token);
      claims = decodeJwt(token);
    } catch (cause) {
      throw invalid("malformed", "The access token is not a well-formed JWT", undefined, cause);
    }
    if (typeof header.alg !== "string" || !this.#algorithms.has(header.alg)) {
      throw invalid(
        "alg_not_allowed",
        "The token's signing algorithm is not accepted",
        `alg was ${showClaim(header.alg)}, expected one of ${c.allowedAlgorithms.join(",")}`,
      );
    }
    if (header.crit !== undefined) {
      throw invalid(
        "crit_not_supported",
        "The token has critical header parameters",
        `crit was ${showClaim(header.crit)}`,
      );
    }
    if (header.typ !== undefined && (typeof header.typ !== "string" || !AcceptedTyp.has(header.typ.toLowerCase()))) {
      throw invalid(
        "bad_typ",
        "The token is not an access token",
        `typ was ${showClaim(header.typ)}, expected at+jwt`,
      );
    }
    if (typeof claims.iss !== "string" || !this.#issuers.has(claims.iss)) {
      throw invalid(
        "bad_issuer",
        "The token was issued by an untrusted issuer",
        describeMismatch("iss", claims.iss, c.expectedIssuers),
      );
    }
    // Claim checks that can only reject run before the cryptography; jose repeats them.
    const nowSec = this.#opts.now() / 1000;
    if (typeof claims.exp === "number" && claims.exp <= nowSec - c.clockSkewSeconds) {
      throw invalid("expired", "The access token has expired", `exp was ${showClaim(claims.exp)}`);
    }
    if (typeof claims.iat === "number" && claims.iat > nowSec + c.clockSkewSeconds) {
      throw invalid("not_yet_valid", "The access token was issued in the future", `iat was ${showClaim(claims.iat)}`);
    }
    if (typeof claims.nbf === "number" && claims.nbf > nowSec + c.clockSkewSeconds) {
      throw invalid("not_yet_valid", "The access token is not valid yet", `nbf was ${showClaim(claims.nbf)}`);
    }
    const aud = typeof claims.aud === "string" ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
    if (!aud.some((a) => this.#audiences.has(a))) {
      throw invalid(
        "bad_audience",
        "The access token is not meant for this resource",
        describeMismatch("aud", claims.aud, c.expectedAudiences),
      );
    }
    return { header, claims };
  }

  async #verifyWithKeys(token: string, keys: KeySet, header: ProtectedHeaderParameters): Promise<JWTPayload> {
    const options = { ...this.#verifyOptions, currentDate: new Date(this.#opts.now()) };
    const check = this.#opts.signatureCheck;
    if (check !== undefined) {
      const payload = await checkedPayload(token, keys, header, check, options);
      if (payload !== undefined) return payload;
    }
    try {
      return (await jwtVerify(token, keys.getKey, options)).payload;
    } catch (e) {
      if (!(e instanceof joseErrors.JWKSMultipleMatchingKeys)) throw e;
      // Several keys share the kid: try each, keep the first that verifies.
      let last: unknown = e;
      for await (const key of e as unknown as AsyncIterable<CryptoKey>) {
        try {
          return (await jwtVerify(token, key, options)).payload;
        } catch (err) {
          last = err;
        }
      }
      throw last;
    }
  }

  #mapError(e: unknown, claims: JWTPayload): AuthError {
    if (e instanceof AuthError) return e;
    const c = this.#opts.config;
    if (e instanceof joseErrors.JWTExpired) {
      return invalid("expired", "The access token has expired", `exp was ${showClaim(claims.exp)}`);
    }
    if (e instanceof joseErrors.JWTClaimValidationFailed) {
      switch (e.claim) {
        case "nbf":
          return invalid("not_yet_valid", "The access token is not valid yet", `nbf was ${showClaim(claims.nbf)}`);
        case "aud":
          return invalid(
            "bad_audience",
            "The access token is not meant for this resource",
            describeMismatch("aud", claims.aud, c.expectedAudiences),
          );
        case "iss":
          return invalid(
            "bad_issuer",
            "The token was issued by an untrusted issuer",
            describeMismatch("iss", claims.iss, c.expectedIssuers),
          );
        case "exp":
          return invalid("missing_exp", "The access token has no expiry", `exp ${e.reason}`);
        case "sub":
          return invalid("missing_sub", "The token has no subject", `sub ${e.reason}`);
        default:
          return invalid("bad_claim", "The access token has an invalid claim", `${e.claim} ${e.reason}`);
      }
    }
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) {
      return invalid("bad_signature", "The access token signature is invalid");
    }
    if (e instanceof joseErrors.JWKSNoMatchingKey) {
      return invalid(
        "unknown_kid",
        "The token was signed with an unknown key",
        "no key in the JWKS matches its kid and alg",
      );
    }
    if (e instanceof joseErrors.JOSEAlgNotAllowed) {
      return invalid("alg_not_allowed", "The token's signing algorithm is not accepted");
    }
    const detail = e instanceof Error ? e.message : String(e);
    return invalid("malformed", "The access token is not a well-formed JWT", detail, e);
  }
}
