/**
 * What a verified access token says about its bearer, whatever kind of token it was
 * (a JWT verified locally, an opaque token introspected), and the interface every kind of
 * verifier implements. Everything after authentication (scopes, identity headers,
 * per-user limits, SCOPE_RULES) reads an Identity and never the token itself.
 */
export interface Identity {
  /** `sub`, when the token has one (a client-credentials token may not). */
  sub: string | undefined;
  /** Who the request is for: `sub`, else `client_id` (X-Auth-Subject, per-user limits, logs). */
  subject: string;
  scopes: readonly string[];
  clientId: string | undefined;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** All claims (JWT payload or introspection answer), for CLAIM_HEADERS. */
  claims: Readonly<Record<string, unknown>>;
}

/** Verifies one kind of bearer credential. Throws AuthError (401/503) with a stable reason. */
export interface Verifier {
  verify(token: string): Promise<Identity>;
}

/** Something that loads at start-up (keys, discovery) and runs in the background until closed. */
export interface Service {
  /** Loads, retrying until it works or close() is called. */
  start(): Promise<void>;
  /** Loaded: requests can be served (/readyz). */
  readonly ready: boolean;
  /** Stops retries and background work. */
  close(): void;
}

/** A compact JWS: three base64url parts. Anything else is not a JWT. */
const CompactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function isCompactJws(token: string): boolean {
  return CompactJws.test(token);
}
