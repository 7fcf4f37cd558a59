// Shared by the unit tests: key pairs generated at run time, a token signer that can
// also produce tokens jose would refuse to sign (alg none, unknown crit), and an
// in-memory authorization server + upstream behind one injectable `fetch`.
import { CompactSign, exportJWK, generateKeyPair, type JWK, type JWTPayload } from "jose";
import { loadConfig } from "../../src/config.ts";

export const ISSUER = "https://auth.example.com";
export const JWKS_URL = `${ISSUER}/jwks`;
export const RESOURCE = "https://mcp.example.com/mcp";
export const UPSTREAM = "http://upstream.test:3000";
/** Fixed clock: 2026-01-01T00:00:00Z. */
export const T0 = Date.UTC(2026, 0, 1);

export type Alg = "RS256" | "PS256" | "ES256" | "EdDSA";

export interface TestKey {
  kid: string;
  alg: Alg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

export async function makeKey(alg: Alg, kid: string): Promise<TestKey> {
  const opts = alg === "EdDSA" ? { extractable: true, crv: "Ed25519" } : { extractable: true };
  const { publicKey, privateKey } = await generateKeyPair(alg, opts);
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

const encoder = new TextEncoder();

export function b64url(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Claims of a valid token at `now` (ms), with overrides; `undefined` removes a claim. */
export function claims(now: number, overrides: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    iss: ISSUER,
    aud: RESOURCE,
    sub: "user-123",
    client_id: "client-abc",
    scope: "mcp:read mcp:write",
    iat: Math.floor(now / 1000),
    exp: Math.floor(now / 1000) + 300,
    ...overrides,
  };
  for (const [k, v] of Object.entries(base)) if (v === undefined) delete base[k];
  return base as JWTPayload;
}

/**
 * Signs with jose's CompactSign (header defaults: alg of the key, its kid, typ at+jwt;
 * a header member set to undefined is removed).
 */
export async function sign(
  key: TestKey,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const h: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: "at+jwt", ...header };
  for (const [k, v] of Object.entries(h)) if (v === undefined) delete h[k];
  return await new CompactSign(encoder.encode(JSON.stringify(payload)))
    // deno-lint-ignore no-explicit-any
    .setProtectedHeader(h as any)
    .sign(key.privateKey);
}

/** RS256 signature over any header, bypassing jose's own header checks (crit etc.). */
export async function signRawRs256(
  key: TestKey,
  header: Record<string, unknown>,
  payload: JWTPayload,
): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = await crypto.subtle.sign({ name: "RSASSA-PKCS1-v1_5" }, key.privateKey, encoder.encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

/** An unsigned token (alg none). */
export function unsigned(payload: JWTPayload, header: Record<string, unknown> = { alg: "none" }): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.`;
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: Headers;
  body: string;
}

/**
 * One fetch for everything: the authorization server's discovery document and JWKS at
 * ISSUER, and an upstream MCP server at UPSTREAM that records what it received and
 * answers with `upstreamHandler`. Anything else is a network error.
 */
export class FakeNet {
  jwks: { keys: unknown[] };
  /** Every URL fetched, in order. */
  calls: string[] = [];
  upstreamRequests: RecordedRequest[] = [];
  /** "500": the authorization server answers 500; "throw": connection refused. */
  asFault: "none" | "500" | "throw" = "none";
  metadata: Record<string, unknown> = {
    issuer: ISSUER,
    jwks_uri: JWKS_URL,
    authorization_endpoint: `${ISSUER}/authorize`,
    token_endpoint: `${ISSUER}/token`,
    code_challenge_methods_supported: ["S256"],
  };
  /** Answers for the upstream; `signal` is the gateway's abort signal for the request. */
  upstreamHandler: (req: Request, signal: AbortSignal) => Response | Promise<Response> = () =>
    new Response(JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} }), {
      status: 200,
      headers: { "content-type": "application/json" },
    });

  constructor(keys: unknown[]) {
    this.jwks = { keys };
  }

  callsTo(url: string): number {
    return this.calls.filter((c) => c === url).length;
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const req = new Request(input, init);
    this.calls.push(req.url);
    const url = new URL(req.url);
    if (url.origin === ISSUER) {
      if (this.asFault === "throw") throw new TypeError("error sending request: connection refused");
      if (this.asFault === "500") return new Response("oops", { status: 500 });
      if (url.pathname === "/.well-known/oauth-authorization-server") return Response.json(this.metadata);
      if (url.pathname === "/jwks") return Response.json(this.jwks);
      return new Response("not found", { status: 404 });
    }
    if (url.origin === UPSTREAM) {
      const record: RecordedRequest = { method: req.method, url: req.url, headers: new Headers(req.headers), body: "" };
      this.upstreamRequests.push(record);
      if (req.body) record.body = await req.text();
      return await this.upstreamHandler(new Request(req.url, { method: req.method, headers: req.headers }), req.signal);
    }
    throw new TypeError(`error sending request for url (${req.url}): no such host`);
  };
}

/** The minimal valid environment, with overrides (undefined removes a variable). */
export function env(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const e: Record<string, string | undefined> = {
    UPSTREAM_URL: UPSTREAM,
    RESOURCE_URI: RESOURCE,
    AUTHORIZATION_SERVER: ISSUER,
    ...overrides,
  };
  for (const [k, v] of Object.entries(e)) if (v === undefined) delete e[k];
  return e;
}

export function config(overrides: Record<string, string | undefined> = {}) {
  return loadConfig(env(overrides));
}
