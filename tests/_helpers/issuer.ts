// A local authorization server for black-box tests: RFC 8414 and OIDC discovery, a JWKS
// endpoint with fetch counters and fault switches, key rotation, and a token signer
// whose defaults make a valid access token. Keys are generated at run time.
//
// It speaks HTTP/1.1 over a bare TCP listener (one request per connection) rather than
// Deno.serve, so that a fault can really drop the connection or hang it.
import { CompactSign, exportJWK, exportSPKI, generateKeyPair, type JWK } from "jose";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type Alg = "RS256" | "ES256";
export type Fault = "none" | "500" | "close" | "hang";

interface KeyEntry {
  kid: string;
  alg: Alg;
  privateKey: CryptoKey;
  publicJwk: JWK;
  spkiPem: string;
}

export interface IssuerOptions {
  /** Path of the issuer URL, e.g. "/realms/test"; default none. */
  path?: string;
  /** Default `aud` of signed tokens. */
  audience?: string;
  /** Serve /.well-known/oauth-authorization-server (default true). */
  oauthMetadata?: boolean;
  /** Serve /.well-known/openid-configuration (default true). */
  openidConfiguration?: boolean;
  /** List S256 in code_challenge_methods_supported (default true). */
  s256?: boolean;
  /** Initial JWKS fault. */
  jwksFault?: Fault;
}

export interface SignOptions {
  alg?: Alg;
  /** Key to sign with (any key this issuer ever had); default the current signing key. */
  kid?: string;
  /** `typ` header; null omits it. Default "at+jwt". */
  typ?: string | null;
  /** Extra protected-header members (undefined values removed). */
  header?: Record<string, unknown>;
  /** Sign with this key instead of the issuer's (the header's kid still says `kid`). */
  key?: CryptoKey | Uint8Array;
}

export const DEFAULT_AUDIENCE = "https://mcp.example.test/mcp";
export const DEFAULT_SUB = "user-123";
export const DEFAULT_CLIENT_ID = "client-abc";
export const DEFAULT_SCOPE = "mcp:read mcp:write";

function b64url(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function newKey(alg: Alg, kid?: string): Promise<KeyEntry> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const entry: KeyEntry = {
    kid: kid ?? `${alg.toLowerCase()}-${crypto.randomUUID().slice(0, 8)}`,
    alg,
    privateKey,
    publicJwk: jwk,
    spkiPem: await exportSPKI(publicKey),
  };
  entry.publicJwk = { ...jwk, kid: entry.kid, alg, use: "sig" };
  return entry;
}

/** Signs any protected header and payload, without jose's JWT-level checks. */
async function signJws(header: Record<string, unknown>, payload: unknown, key: CryptoKey | Uint8Array) {
  const crit = Array.isArray(header.crit) ? Object.fromEntries(header.crit.map((c) => [c, true])) : undefined;
  return await new CompactSign(encoder.encode(JSON.stringify(payload)))
    .setProtectedHeader(header as { alg: string })
    .sign(key, crit ? { crit } : undefined);
}

// ---------------------------------------------------------------------------------
// Minimal HTTP/1.1 server over TCP: each handler result is sent with Connection: close;
// "close" drops the connection unanswered; handlers may hang on `signal`.

interface MiniRequest {
  method: string;
  path: string;
  headers: Headers;
}
type MiniHandler = (req: MiniRequest, signal: AbortSignal) => Promise<Response | "close">;

class MiniServer {
  readonly port: number;
  #listener: Deno.Listener;
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #closing = new AbortController();
  #accepting: Promise<void>;

  constructor(private handler: MiniHandler) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  async #accept() {
    // accept() also throws for a connection reset while still queued; only a closed
    // listener ends the loop, so that one impatient client cannot stop the issuer.
    while (!this.#closing.signal.aborted) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        continue;
      }
      this.#conns.add(conn);
      const task = this.#serve(conn).finally(() => {
        this.#conns.delete(conn);
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  async #serve(conn: Deno.Conn) {
    try {
      let buf = "";
      const chunk = new Uint8Array(8192);
      while (!buf.includes("\r\n\r\n")) {
        const n = await conn.read(chunk);
        if (n === null) return;
        buf += decoder.decode(chunk.subarray(0, n));
        if (buf.length > 65536) return;
      }
      const [head = ""] = buf.split("\r\n\r\n");
      const [requestLine = "", ...lines] = head.split("\r\n");
      const [method = "", path = ""] = requestLine.split(" ");
      const headers = new Headers();
      for (const l of lines) {
        const i = l.indexOf(":");
        if (i > 0) headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
      }
      const res = await this.handler({ method, path, headers }, this.#closing.signal);
      if (res === "close") return;
      const body = new Uint8Array(await res.arrayBuffer());
      let out = `HTTP/1.1 ${res.status} ${res.statusText || "X"}\r\n`;
      res.headers.forEach((v, k) => (out += `${k}: ${v}\r\n`));
      out += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
      const bytes = new Uint8Array([...encoder.encode(out), ...(method === "HEAD" ? [] : body)]);
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    } catch {
      // peer went away or server closing
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  async close() {
    this.#closing.abort(new Error("server closing"));
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    await this.#accepting;
    await Promise.all([...this.#tasks]);
  }
}

/** Resolves when signal aborts (used to hang a response until the server closes). */
function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

// ---------------------------------------------------------------------------------

export class Issuer {
  readonly origin: string;
  /** The issuer identifier (`iss`), e.g. http://127.0.0.1:PORT/realms/test. */
  readonly issuer: string;
  readonly jwksUri: string;
  readonly audience: string;
  /** Fetch counters. */
  readonly counts = { jwks: 0, oauthMetadata: 0, openidConfiguration: 0, other: 0 };
  /** Every token this issuer produced, valid or not: none may ever appear in logs. */
  readonly issued: string[] = [];
  jwksFault: Fault;
  /** Hits on the attacker's server (jku / x5u targets); must stay 0. */
  get attackerHits(): number {
    return this.#attackerHits;
  }

  #server: MiniServer;
  #attacker: MiniServer;
  #attackerHits = 0;
  #attackerKey!: KeyEntry;
  #keys = new Map<string, KeyEntry>();
  #published: string[] = [];
  #current!: KeyEntry;
  #opts: Required<Omit<IssuerOptions, "jwksFault">>;

  private constructor(opts: IssuerOptions) {
    this.#opts = {
      path: opts.path ?? "",
      audience: opts.audience ?? DEFAULT_AUDIENCE,
      oauthMetadata: opts.oauthMetadata ?? true,
      openidConfiguration: opts.openidConfiguration ?? true,
      s256: opts.s256 ?? true,
    };
    this.jwksFault = opts.jwksFault ?? "none";
    this.#server = new MiniServer((req, signal) => this.#handle(req, signal));
    this.#attacker = new MiniServer((req) => this.#handleAttacker(req));
    this.origin = `http://127.0.0.1:${this.#server.port}`;
    this.issuer = this.origin + this.#opts.path;
    this.jwksUri = `${this.issuer}/jwks`;
    this.audience = this.#opts.audience;
  }

  static async start(opts: IssuerOptions = {}): Promise<Issuer> {
    const iss = new Issuer(opts);
    try {
      const [rsa, ec, attacker] = await Promise.all([newKey("RS256"), newKey("ES256"), newKey("RS256")]);
      for (const k of [rsa, ec]) {
        iss.#keys.set(k.kid, k);
        iss.#published.push(k.kid);
      }
      iss.#current = rsa;
      iss.#attackerKey = attacker;
      return iss;
    } catch (e) {
      await iss.close();
      throw e;
    }
  }

  /** Base URL of the attacker's server. */
  get attackerOrigin(): string {
    return `http://127.0.0.1:${this.#attacker.port}`;
  }

  /** kid of the current signing key for alg (RS256 by default). */
  kid(alg: Alg = "RS256"): string {
    if (alg === this.#current.alg) return this.#current.kid;
    const k = this.#published.map((kid) => this.#keys.get(kid)!).find((k) => k.alg === alg);
    if (!k) throw new Error(`No published ${alg} key`);
    return k.kid;
  }

  /** The JWKS document currently served. */
  jwks(): { keys: JWK[] } {
    return { keys: this.#published.map((kid) => this.#keys.get(kid)!.publicJwk) };
  }

  /** Replaces every published key with one new key (new kid), which becomes the signing key. */
  async rotate(alg: Alg = "RS256"): Promise<string> {
    const k = await newKey(alg);
    this.#keys.set(k.kid, k);
    this.#published = [k.kid];
    this.#current = k;
    return k.kid;
  }

  /** New key material under an existing kid (default: the signing key's). */
  async replaceKey(kid: string = this.#current.kid): Promise<void> {
    const old = this.#keys.get(kid);
    if (!old) throw new Error(`Unknown kid ${JSON.stringify(kid)}`);
    const k = await newKey(old.alg, kid);
    this.#keys.set(kid, k);
    if (this.#current.kid === kid) this.#current = k;
  }

  /** Publishes an additional key; returns its kid. The signing key is unchanged. */
  async addKey(alg: Alg = "RS256"): Promise<string> {
    const k = await newKey(alg);
    this.#keys.set(k.kid, k);
    this.#published.push(k.kid);
    return k.kid;
  }

  /** Default claims of a valid access token; `undefined` values in overrides drop a claim. */
  claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    const all: Record<string, unknown> = {
      iss: this.issuer,
      aud: this.audience,
      sub: DEFAULT_SUB,
      client_id: DEFAULT_CLIENT_ID,
      scope: DEFAULT_SCOPE,
      iat: now,
      exp: now + 300,
      jti: crypto.randomUUID(),
      ...overrides,
    };
    for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k];
    return all;
  }

  /** Signs a token; with no arguments it is a valid RS256 access token. */
  async sign(overrides: Record<string, unknown> = {}, opts: SignOptions = {}): Promise<string> {
    const alg = opts.alg ?? (opts.kid ? this.#keys.get(opts.kid)?.alg : undefined) ?? "RS256";
    const entry = opts.kid ? this.#keys.get(opts.kid) : this.#keys.get(this.kid(alg));
    if (!entry && !opts.key) throw new Error(`Unknown kid ${JSON.stringify(opts.kid)}`);
    const header: Record<string, unknown> = {
      alg,
      kid: opts.kid ?? entry!.kid,
      typ: opts.typ === undefined ? "at+jwt" : opts.typ,
      ...opts.header,
    };
    for (const [k, v] of Object.entries(header)) if (v === undefined || v === null) delete header[k];
    const token = await signJws(header, this.claims(overrides), opts.key ?? entry!.privateKey);
    this.issued.push(token);
    return token;
  }

  /** Token builders for hostile or broken input; each also lands in `issued`. */
  readonly bad = {
    /** `alg: none`, empty signature. */
    algNone: () =>
      this.#record(
        `${b64url(JSON.stringify({ alg: "none", typ: "at+jwt" }))}.${b64url(JSON.stringify(this.claims()))}.`,
      ),
    /** HS256 keyed with the RSA public key (PEM text or JWK JSON): the key-confusion attack. */
    hs256WithPublicKey: async (form: "pem" | "jwk") => {
      const rsa = this.#keys.get(this.kid("RS256"))!;
      const secret = encoder.encode(form === "pem" ? rsa.spkiPem : JSON.stringify(rsa.publicJwk));
      return this.#record(await signJws({ alg: "HS256", typ: "at+jwt", kid: rsa.kid }, this.claims(), secret));
    },
    /** Signed by the attacker's key; header points at the attacker's JWKS via `jku`. */
    jku: () => this.#attackerSigned({ jku: `${this.attackerOrigin}/jwks.json` }),
    /** Signed by the attacker's key; header points at the attacker's certificate via `x5u`. */
    x5u: () => this.#attackerSigned({ x5u: `${this.attackerOrigin}/cert.pem` }),
    /** Signed by the attacker's key, which is embedded in the header as `jwk`. */
    embeddedJwk: () => this.#attackerSigned({ jwk: this.#attackerKey.publicJwk }),
    /** Signed by the attacker's key but claiming the issuer's kid. */
    forgedSignature: () => this.#attackerSigned({ kid: this.kid("RS256") }),
    /** Valid signature, with a critical header extension nobody understands. */
    crit: () => this.sign({}, { header: { crit: ["x-mcp-test"], "x-mcp-test": true } }),
    expired: () => this.sign({ iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }),
    notYetValid: () => this.sign({ nbf: Math.floor(Date.now() / 1000) + 3600 }),
    missingExp: () => this.sign({ exp: undefined }),
    wrongIssuer: () => this.sign({ iss: `${this.origin}/other-realm` }),
    wrongAudience: () => this.sign({ aud: "https://other.example.test/mcp" }),
    audienceTrailingSlash: () => this.sign({ aud: `${this.audience}/` }),
    missingAudience: () => this.sign({ aud: undefined }),
    missingSub: () => this.sign({ sub: undefined }),
    badTyp: () => this.sign({}, { typ: "JOSE+foo" }),
    /** A 20 KB claim under a forged signature. */
    oversized: () => this.#attackerSigned({ kid: this.kid("RS256") }, { pad: "x".repeat(20_000) }),
  };

  async #attackerSigned(header: Record<string, unknown>, extraClaims: Record<string, unknown> = {}) {
    const h = { alg: "RS256", typ: "at+jwt", kid: this.#attackerKey.kid, ...header };
    return this.#record(await signJws(h, this.claims(extraClaims), this.#attackerKey.privateKey));
  }

  #record(token: string): string {
    this.issued.push(token);
    return token;
  }

  #metadata() {
    return {
      issuer: this.issuer,
      authorization_endpoint: `${this.issuer}/authorize`,
      token_endpoint: `${this.issuer}/token`,
      jwks_uri: this.jwksUri,
      response_types_supported: ["code"],
      grant_types_supported: ["authorization_code", "refresh_token"],
      code_challenge_methods_supported: this.#opts.s256 ? ["S256"] : ["plain"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: ["RS256", "ES256"],
    };
  }

  async #handle(req: MiniRequest, signal: AbortSignal): Promise<Response | "close"> {
    const path = req.path.split("?")[0];
    const p = this.#opts.path;
    if (path === new URL(this.jwksUri).pathname) {
      this.counts.jwks++;
      switch (this.jwksFault) {
        case "500":
          return json({ error: "server_error" }, 500);
        case "close":
          return "close";
        case "hang":
          await untilAborted(signal);
          return "close";
        case "none":
          return json(this.jwks());
      }
    }
    if (path === `/.well-known/oauth-authorization-server${p}`) {
      this.counts.oauthMetadata++;
      return this.#opts.oauthMetadata ? json(this.#metadata()) : json({ error: "not_found" }, 404);
    }
    if (path === `${p}/.well-known/openid-configuration` || path === `/.well-known/openid-configuration${p}`) {
      this.counts.openidConfiguration++;
      return this.#opts.openidConfiguration ? json(this.#metadata()) : json({ error: "not_found" }, 404);
    }
    this.counts.other++;
    return json({ error: "not_found" }, 404);
  }

  #handleAttacker(_req: MiniRequest): Promise<Response> {
    this.#attackerHits++;
    return Promise.resolve(json({ keys: [this.#attackerKey.publicJwk] }));
  }

  async close(): Promise<void> {
    await Promise.all([this.#server.close(), this.#attacker.close()]);
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

export const startIssuer = Issuer.start;
