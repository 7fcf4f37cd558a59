/**
 * DEMO ONLY: an in-process authorization server for `mcp-gate demo`.
 *
 * Fresh ES256 keys at every start (tokens die with the process), RFC 8414 metadata, a
 * JWKS, and `mint()` for the ready-made token in the banner. So that MCP Inspector can
 * run a real OAuth flow against the demo, it also has an auto-approving authorization
 * code flow: dynamic client registration (RFC 7591, public clients only), /authorize
 * that approves at once without asking anyone, and /token with mandatory PKCE S256.
 *
 * Not a real authorization server: no users, no consent, no refresh tokens, and state
 * kept in memory only. It must never be reachable from anything but loopback.
 */
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

export interface DemoIssuerOptions {
  /** The issuer URL, e.g. "http://127.0.0.1:41234" (no trailing slash). */
  issuer: string;
  /** `aud` of every token: the gateway's RESOURCE_URI. */
  audience: string;
  /** Scopes advertised and granted. */
  scopes: readonly string[];
  now?: () => number;
}

export interface DemoIssuer {
  readonly issuer: string;
  readonly jwksUri: string;
  /** Signs an access token (typ at+jwt, aud = the resource, 1 h) with `claims` on top. */
  mint(claims?: JWTPayload): Promise<string>;
  fetch(req: Request): Promise<Response>;
}

export const TokenLifetimeSeconds = 3600;
const CodeLifetimeMs = 60_000;
/** Bounds on the in-memory tables, so a loop of registrations cannot grow them forever. */
const MaxClients = 1000;
const MaxCodes = 1000;

interface Client {
  redirectUris: string[];
  name: string;
}

interface PendingCode {
  clientId: string;
  redirectUri: string;
  challenge: string;
  scope: string;
  expires: number;
}

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomToken(bytes = 24): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function s256(verifier: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(verifier))));
}

/** Browser clients (MCP Inspector) call discovery, registration and token from a page. */
const Cors: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers": "Authorization, Content-Type, MCP-Protocol-Version",
  "access-control-max-age": "86400",
};

function json(status: number, body: unknown, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...Cors, ...extra },
  });
}

function oauthError(status: number, error: string, description: string): Response {
  return json(status, { error, error_description: description });
}

/** Loopback http, or https: the redirect URIs an auto-approving demo will send codes to. */
function acceptableRedirect(uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  if (url.hash !== "") return false;
  if (url.protocol === "https:") return true;
  return url.protocol === "http:" && ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
}

function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number) {
  if (map.size >= max) map.delete(map.keys().next().value as K);
  map.set(key, value);
}

/** Creates the demo authorization server; keys are generated here, once. */
export async function createDemoIssuer(opts: DemoIssuerOptions): Promise<DemoIssuer> {
  const kid = `demo-${randomToken(6)}`;
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  return new DemoAuthServer(opts, { kid, privateKey, publicJwk });
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

class DemoAuthServer implements DemoIssuer {
  readonly issuer: string;
  readonly jwksUri: string;
  readonly #opts: DemoIssuerOptions;
  readonly #key: SigningKey;
  readonly #now: () => number;
  readonly #scopeText: string;
  readonly #clients = new Map<string, Client>();
  readonly #codes = new Map<string, PendingCode>();
  readonly #metadata: Record<string, unknown>;

  constructor(opts: DemoIssuerOptions, key: SigningKey) {
    this.#opts = opts;
    this.#key = key;
    this.#now = opts.now ?? Date.now;
    this.#scopeText = opts.scopes.join(" ");
    const issuer = opts.issuer.replace(/\/+$/, "");
    this.issuer = issuer;
    this.jwksUri = `${issuer}/jwks`;
    this.#metadata = {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      registration_endpoint: `${issuer}/register`,
      jwks_uri: this.jwksUri,
      scopes_supported: opts.scopes,
      response_types_supported: ["code"],
      grant_types_supported: ["authorization_code"],
      token_endpoint_auth_methods_supported: ["none"],
      code_challenge_methods_supported: ["S256"],
      authorization_response_iss_parameter_supported: true,
    };
  }

  mint = (claims: JWTPayload = {}): Promise<string> => {
    const iat = Math.floor(this.#now() / 1000);
    return new SignJWT({ scope: this.#scopeText, client_id: "mcp-gate-demo", ...claims })
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: this.#key.kid })
      .setIssuer(this.issuer)
      .setAudience(this.#opts.audience)
      .setSubject(typeof claims.sub === "string" ? claims.sub : "demo-user")
      .setIssuedAt(iat)
      .setExpirationTime(iat + TokenLifetimeSeconds)
      .setJti(crypto.randomUUID())
      .sign(this.#key.privateKey);
  };

  fetch = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const route = `${req.method} ${url.pathname}`;
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: Cors });
    switch (route) {
      case "GET /.well-known/oauth-authorization-server":
      case "GET /.well-known/openid-configuration":
        return json(200, this.#metadata, { "cache-control": "max-age=60" });
      case "GET /jwks":
        return json(200, { keys: [this.#key.publicJwk] }, { "cache-control": "max-age=60" });
      case "POST /register":
        return await this.#register(req);
      case "GET /authorize":
        return this.#authorize(url);
      case "POST /token":
        return await this.#token(req);
      default:
        return oauthError(
          404,
          "not_found",
          `No ${route} here; see ${this.issuer}/.well-known/oauth-authorization-server`,
        );
    }
  };

  async #register(req: Request): Promise<Response> {
    let body: Record<string, unknown>;
    try {
      body = await req.json();
    } catch {
      return oauthError(400, "invalid_client_metadata", "Expected a JSON object");
    }
    const uris = body?.redirect_uris;
    if (!Array.isArray(uris) || uris.length === 0 || !uris.every((u) => typeof u === "string")) {
      return oauthError(400, "invalid_redirect_uri", "redirect_uris must be a non-empty array of URLs");
    }
    if (!uris.every(acceptableRedirect)) {
      return oauthError(400, "invalid_redirect_uri", "The demo accepts https or loopback http redirect URIs only");
    }
    const clientId = `demo-client-${randomToken(9)}`;
    const name = typeof body.client_name === "string" ? body.client_name.slice(0, 100) : "unnamed";
    remember(this.#clients, clientId, { redirectUris: uris, name }, MaxClients);
    return json(201, {
      client_id: clientId,
      client_id_issued_at: Math.floor(this.#now() / 1000),
      client_name: name,
      redirect_uris: uris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      scope: this.#scopeText,
    });
  }

  /** Auto-approves: the demo has no users, so the "user" is always demo-user. */
  #authorize(url: URL): Response {
    const q = url.searchParams;
    const client = this.#clients.get(q.get("client_id") ?? "");
    const redirectUri = q.get("redirect_uri") ?? client?.redirectUris[0] ?? "";
    if (!client) return oauthError(400, "invalid_client", "Unknown client_id: register first (POST /register)");
    if (!client.redirectUris.includes(redirectUri)) {
      return oauthError(400, "invalid_request", "redirect_uri is not one of the client's registered redirect URIs");
    }
    const back = new URL(redirectUri);
    const state = q.get("state");
    if (state !== null) back.searchParams.set("state", state);
    back.searchParams.set("iss", this.issuer);
    const redirect = () =>
      new Response(null, { status: 302, headers: { location: back.href, "cache-control": "no-store" } });
    const refusal = this.#refuseAuthorization(q);
    if (refusal) {
      back.searchParams.set("error", refusal[0]);
      back.searchParams.set("error_description", refusal[1]);
      return redirect();
    }
    const code = randomToken();
    remember(this.#codes, code, {
      clientId: q.get("client_id")!,
      redirectUri,
      challenge: q.get("code_challenge")!,
      scope: this.#scopeText,
      expires: this.#now() + CodeLifetimeMs,
    }, MaxCodes);
    back.searchParams.set("code", code);
    return redirect();
  }

  /** Why an authorization request is refused ([error, description]), or undefined. */
  #refuseAuthorization(q: URLSearchParams): [string, string] | undefined {
    if (q.get("response_type") !== "code") return ["unsupported_response_type", "Use response_type=code"];
    const challenge = q.get("code_challenge") ?? "";
    if (q.get("code_challenge_method") !== "S256" || !/^[A-Za-z0-9_-]{43}$/.test(challenge)) {
      return ["invalid_request", "PKCE with code_challenge_method=S256 is required"];
    }
    const resource = q.get("resource");
    if (resource !== null && resource !== this.#opts.audience) {
      return ["invalid_target", `This demo issues tokens for ${this.#opts.audience} only`];
    }
    return undefined;
  }

  async #token(req: Request): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    if (form.get("grant_type") !== "authorization_code") {
      return oauthError(400, "unsupported_grant_type", "Only authorization_code is supported");
    }
    const code = form.get("code") ?? "";
    const pending = this.#codes.get(code);
    this.#codes.delete(code); // single use, even when the exchange fails
    if (!pending || pending.expires < this.#now()) return oauthError(400, "invalid_grant", "Unknown or expired code");
    if (form.get("client_id") !== pending.clientId) {
      return oauthError(400, "invalid_grant", "Code issued to another client");
    }
    if ((form.get("redirect_uri") ?? pending.redirectUri) !== pending.redirectUri) {
      return oauthError(400, "invalid_grant", "redirect_uri differs from the authorization request");
    }
    const resource = form.get("resource");
    if (resource !== null && resource !== this.#opts.audience) {
      return oauthError(400, "invalid_target", `This demo issues tokens for ${this.#opts.audience} only`);
    }
    if (await s256(form.get("code_verifier") ?? "") !== pending.challenge) {
      return oauthError(400, "invalid_grant", "code_verifier does not match the code_challenge");
    }
    const accessToken = await this.mint({ sub: "demo-user", client_id: pending.clientId, scope: pending.scope });
    return json(200, {
      access_token: accessToken,
      token_type: "Bearer",
      expires_in: TokenLifetimeSeconds,
      scope: pending.scope,
    });
  }
}
