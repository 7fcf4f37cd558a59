/**
 * `mcp-gate check`: a doctor for the whole set-up, run with the gateway's environment.
 *
 * It validates the configuration; reads each authorization server's metadata and keys the
 * way the gateway does (discover, KeySet); checks issuer, PKCE S256, client registration,
 * key algorithms and audience against the configuration; probes the upstream with an MCP
 * initialize; and prints the metadata document and the 401 challenge a client such as
 * Claude.ai gets. Each problem is one sentence saying what is wrong and how to fix it.
 * Exit code: 1 when any problem (✗) was found, 0 otherwise; warnings (!) do not fail.
 */
import { type Config, loadConfig } from "./config.ts";
import { isLoopbackHost } from "./net.ts";
import { ConfigError, formatProblem } from "./errors.ts";
import { silentLogger } from "./logging.ts";
import { buildChallenge } from "./auth/challenge.ts";
import { type AuthorizationServerMetadata, discover } from "./auth/discovery.ts";
import { fetchJson } from "./auth/fetch_json.ts";
import { KeySet } from "./auth/key_set.ts";
import { checkIntrospection } from "./auth/introspection_check.ts";
import { checkRedis } from "./limits/redis_check.ts";
import { metadataDocument } from "./routes/metadata.ts";
import { upstreamTarget } from "./proxy/forward.ts";
import { Version } from "./version.ts";
import { describeScopePolicy } from "./policy/describe.ts";
import { insufficientScope } from "./middleware/authorize.ts";
import { authErrorResponse } from "./middleware/error_response.ts";

export interface CheckDeps {
  fetch: typeof fetch;
  print: (line: string) => void;
  /** Reads SCOPE_RULES=@path (the runtime's file reader). */
  readTextFile?: (path: string) => string;
}

/** The protocol revision the upstream probe speaks. */
export const ProbeProtocolVersion = "2025-11-25";
const ProbeTimeoutMs = 10_000;
const ProbeMaxBytes = 262_144;

/** Algorithms a key can verify, from its `alg` or else its type and curve. */
function keyAlgorithms(jwk: Record<string, unknown>): string[] {
  if (typeof jwk.alg === "string") return [jwk.alg];
  switch (jwk.kty) {
    case "RSA":
      return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    case "EC":
      return ({ "P-256": ["ES256"], "P-384": ["ES384"], "P-521": ["ES512"] } as Record<string, string[]>)[
        String(jwk.crv)
      ] ?? [];
    case "OKP":
      return jwk.crv === "Ed25519" || jwk.crv === "Ed448" ? ["EdDSA"] : [];
    default:
      return [];
  }
}

function withoutSlash(s: string): string {
  return s.replace(/\/+$/, "");
}

function quoteList(items: readonly string[]): string {
  return items.map((s) => JSON.stringify(s)).join(", ");
}

function why(e: unknown): string {
  if (e instanceof Error) {
    if (e.name === "TimeoutError") return "no answer in time";
    return e.message;
  }
  return String(e);
}

class Report {
  problems = 0;
  warnings = 0;
  constructor(readonly print: (line: string) => void) {}
  section(title: string): void {
    this.print("");
    this.print(title);
  }
  ok(text: string): void {
    this.print(`  ✓ ${text}`);
  }
  problem(text: string): void {
    this.problems++;
    this.print(`  ✗ ${text}`);
  }
  warn(text: string): void {
    this.warnings++;
    this.print(`  ! ${text}`);
  }
  text(text: string): void {
    this.print(`    ${text}`);
  }
}

/** Runs every check, printing the report line by line. Resolves to the exit code. */
export async function runCheck(env: Readonly<Record<string, string>>, deps: CheckDeps): Promise<number> {
  const r = new Report(deps.print);
  r.print(`mcp-gate check ${Version}`);

  r.section("Configuration");
  let config: Config;
  try {
    config = loadConfig(env, deps.readTextFile ? { readTextFile: deps.readTextFile } : {});
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) r.problem(`${formatProblem(p)}.`);
    r.section(
      `Stopped: fix the configuration first (${e.problems.length} problem${e.problems.length === 1 ? "" : "s"}).`,
    );
    return 1;
  }
  r.ok("The environment is a valid configuration.");
  // The audience and http warnings are checked below, with their fix.
  for (const w of config.warnings) {
    if (!w.startsWith("EXPECTED_AUDIENCE") && !w.startsWith("RESOURCE_URI")) r.warn(`${w}.`);
  }

  checkResource(config, r);
  const explicitIssuer = (env["EXPECTED_ISSUER"] ?? "").trim() !== "";
  for (const issuer of config.authorizationServers) {
    await checkAuthorizationServer(config, issuer, explicitIssuer, deps.fetch, r);
  }
  if (config.introspection) {
    r.section("Token introspection (opaque access tokens)");
    for (const f of await checkIntrospection(config, deps.fetch)) r[f.kind](f.text);
  }
  if (config.rateLimits.redis) {
    r.section("Shared rate limits (Redis)");
    for (const f of await checkRedis(config.rateLimits.redis, config.rateLimits)) r[f.kind](f.text);
  }
  await checkUpstream(config, deps.fetch, r);
  showClientView(config, r);
  showScopePolicy(config, r);

  r.section(
    r.problems === 0
      ? `All checks passed${r.warnings > 0 ? ` (${r.warnings} warning${r.warnings === 1 ? "" : "s"})` : ""}.`
      : `${r.problems} problem${r.problems === 1 ? "" : "s"} found${
        r.warnings > 0 ? `, ${r.warnings} warning${r.warnings === 1 ? "" : "s"}` : ""
      }.`,
  );
  return r.problems === 0 ? 0 : 1;
}

function checkResource(config: Config, r: Report): void {
  r.section(`Resource ${config.resourceUri}`);
  const url = new URL(config.resourceUri);
  if (url.protocol === "https:") {
    r.ok("RESOURCE_URI uses https.");
  } else if (isLoopbackHost(url.hostname)) {
    r.warn(
      "RESOURCE_URI uses http on a loopback address, which is fine for local testing only: use the https URL in production.",
    );
  } else {
    r.warn(
      `RESOURCE_URI uses http, and clients such as Claude.ai require https: terminate TLS in front of the gateway and set RESOURCE_URI to the https URL.`,
    );
  }

  const resource = config.resourceUri;
  if (config.expectedAudiences.includes(resource)) {
    r.ok(`EXPECTED_AUDIENCE accepts tokens issued for RESOURCE_URI (${quoteList(config.expectedAudiences)}).`);
  } else {
    const near = config.expectedAudiences.find((a) => withoutSlash(a) === withoutSlash(resource));
    r.problem(
      near !== undefined
        ? `EXPECTED_AUDIENCE has ${JSON.stringify(near)}, which differs from RESOURCE_URI ${
          JSON.stringify(resource)
        } only by a trailing slash, and clients such as Claude.ai ask for tokens with resource=${resource}: add ${resource} to EXPECTED_AUDIENCE.`
        : `EXPECTED_AUDIENCE (${quoteList(config.expectedAudiences)}) does not include RESOURCE_URI ${
          JSON.stringify(resource)
        }, but clients such as Claude.ai ask for tokens with resource=${resource}, so their tokens will be rejected: add ${resource} to EXPECTED_AUDIENCE and have the authorization server put it in the tokens' aud.`,
    );
  }
}

async function checkAuthorizationServer(
  config: Config,
  issuer: string,
  explicitIssuer: boolean,
  fetchFn: typeof fetch,
  r: Report,
) {
  r.section(`Authorization server ${issuer}`);
  let meta: (AuthorizationServerMetadata & { url: string }) | undefined;
  let asConfigured = true;
  try {
    meta = await discover(fetchFn, issuer, config.jwksFetchTimeoutMs);
    r.ok(`Metadata found at ${meta.url}.`);
  } catch (e) {
    // The commonest cause: the issuer differs by a trailing slash. Try the other spelling
    // to say so plainly, and carry on with its metadata to find any further problems.
    const other = issuer.endsWith("/") ? withoutSlash(issuer) : `${issuer}/`;
    asConfigured = false;
    meta = await discover(fetchFn, other, config.jwksFetchTimeoutMs).catch(() => undefined);
    r.problem(
      meta
        ? `AUTHORIZATION_SERVER has ${JSON.stringify(issuer)} but the authorization server's issuer is ${
          JSON.stringify(meta.issuer)
        }; they differ only by a trailing slash, and clients compare them byte for byte: set AUTHORIZATION_SERVER=${meta.issuer}.`
        : `Clients cannot read this authorization server's metadata (${why(e)}): ` +
          "make sure the authorization server is reachable from here and AUTHORIZATION_SERVER is exactly the issuer URL " +
          "it publishes in its RFC 8414 or OpenID Connect discovery document.",
    );
  }

  if (meta) {
    const published = meta.issuer;
    if (!asConfigured && !explicitIssuer) {
      // Without EXPECTED_ISSUER the accepted issuer is AUTHORIZATION_SERVER: one fix, said above.
    } else if (config.expectedIssuers.includes(published)) {
      r.ok(`Tokens with iss ${JSON.stringify(published)} are accepted.`);
    } else {
      const near = config.expectedIssuers.find((i) => withoutSlash(i) === withoutSlash(published));
      r.problem(
        near !== undefined
          ? `EXPECTED_ISSUER has ${JSON.stringify(near)} but the authorization server's issuer is ${
            JSON.stringify(published)
          }; they differ only by a trailing slash, so every token would be rejected: set EXPECTED_ISSUER=${published}.`
          : `EXPECTED_ISSUER (${
            quoteList(config.expectedIssuers)
          }) does not include the authorization server's issuer ${
            JSON.stringify(published)
          }, so every token it issues would be rejected: add ${published} to EXPECTED_ISSUER.`,
      );
    }

    const methods = meta.code_challenge_methods_supported;
    if (Array.isArray(methods) && methods.includes("S256")) {
      r.ok("PKCE with S256 is supported.");
    } else {
      r.problem(
        `The authorization server does not list S256 in code_challenge_methods_supported${
          Array.isArray(methods) ? ` (it lists ${quoteList(methods)})` : ""
        }, and MCP clients refuse to authorize without PKCE S256: enable PKCE with S256 on the authorization server.`,
      );
    }

    for (const field of ["authorization_endpoint", "token_endpoint"] as const) {
      if (typeof meta[field] !== "string") {
        r.problem(
          `The metadata has no ${field}, which clients need to get a token: configure the authorization server to publish it.`,
        );
      }
    }

    if (typeof meta.registration_endpoint === "string") {
      r.ok(`Dynamic client registration is offered at ${meta.registration_endpoint}.`);
    } else if (meta.client_id_metadata_document_supported === true) {
      r.ok("Client ID Metadata Documents are supported (clients can register without a registration endpoint).");
    } else {
      r.warn(
        "The metadata has no registration_endpoint, so clients such as Claude.ai cannot register themselves: " +
          "enable dynamic client registration on the authorization server, or pre-register a client and enter its client id in the connector's settings.",
      );
    }

    const scopes = meta.scopes_supported;
    if (Array.isArray(scopes)) {
      const unknown = config.requiredScopes.filter((s) => !scopes.includes(s));
      if (unknown.length > 0) {
        r.warn(
          `REQUIRED_SCOPES has ${
            quoteList(unknown)
          }, which the authorization server does not list in scopes_supported: ` +
            "check the scope names against the authorization server's.",
        );
      }
    }
  }

  // The gateway uses JWKS_URI for the first issuer when set, else each issuer's jwks_uri.
  const jwksUri = config.jwksUri !== undefined
    ? (issuer === config.authorizationServers[0] ? config.jwksUri : undefined)
    : meta?.jwks_uri;
  if (jwksUri === undefined) {
    if (meta && config.jwksUri === undefined) {
      r.problem("The metadata has no jwks_uri, so the gateway cannot find the signing keys: set JWKS_URI.");
    }
    return;
  }
  await checkKeys(config, issuer, jwksUri, fetchFn, r);
}

async function checkKeys(config: Config, issuer: string, jwksUri: string, fetchFn: typeof fetch, r: Report) {
  const keySet = new KeySet({
    issuer,
    jwksUri,
    fetch: fetchFn,
    now: Date.now,
    log: silentLogger,
    refreshIntervalMs: config.jwksRefreshIntervalMs,
    cooldownMs: config.jwksRefetchCooldownMs,
    timeoutMs: config.jwksFetchTimeoutMs,
  });
  try {
    await keySet.load();
  } catch (e) {
    r.problem(
      `The gateway cannot load signing keys from ${jwksUri} (${why(e)}): ` +
        "make sure the URL serves the authorization server's public JWK Set, or set JWKS_URI to the one that does.",
    );
    return;
  }
  let algs: string[] = [];
  try {
    const doc = await fetchJson(fetchFn, jwksUri, config.jwksFetchTimeoutMs);
    const keys = Array.isArray(doc.keys) ? doc.keys as Record<string, unknown>[] : [];
    algs = [...new Set(keys.filter((k) => typeof k === "object" && k !== null && !("d" in k)).flatMap(keyAlgorithms))];
  } catch (e) {
    r.problem(`${jwksUri} could not be read a second time (${why(e)}): check that it answers reliably.`);
    return;
  }
  const usable = algs.filter((a) => config.allowedAlgorithms.includes(a));
  const count = `${keySet.keyCount} signing key${keySet.keyCount === 1 ? "" : "s"}`;
  if (usable.length > 0) {
    r.ok(`${jwksUri} has ${count}, usable with ${usable.join(", ")}.`);
  } else {
    r.problem(
      `The ${count} at ${jwksUri} ${
        algs.length > 0 ? `are for ${algs.join(", ")}` : "have no recognisable algorithm"
      }, ` +
        `none of which ALLOWED_ALGORITHMS (${
          config.allowedAlgorithms.join(", ")
        }) permits: add the keys' algorithm to ALLOWED_ALGORITHMS.`,
    );
  }
}

async function checkUpstream(config: Config, fetchFn: typeof fetch, r: Report): Promise<void> {
  const path = new URL(config.resourceUri).pathname;
  const target = upstreamTarget(config.upstreamUrl, path, "");
  r.section(`Upstream ${target}`);
  const body = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: {
      protocolVersion: ProbeProtocolVersion,
      capabilities: {},
      clientInfo: { name: "mcp-gate-check", version: Version },
    },
  });
  let res: Response;
  const signal = AbortSignal.timeout(Math.min(ProbeTimeoutMs, config.upstreamTimeoutMs));
  try {
    res = await fetchFn(target, {
      method: "POST",
      headers: {
        accept: "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": ProbeProtocolVersion,
      },
      body,
      redirect: "manual",
      signal,
    });
  } catch (e) {
    r.problem(
      `The upstream could not be reached at ${target} (${why(e)}): start the MCP server, or fix UPSTREAM_URL.`,
    );
    return;
  }

  const session = res.headers.get("mcp-session-id");
  try {
    await judgeInitialize(res, target, path, r, signal);
  } finally {
    await res.body?.cancel().catch(() => {});
  }
  if (session !== null) {
    // Polite: end the session the probe opened.
    await fetchFn(target, {
      method: "DELETE",
      headers: { "mcp-session-id": session, "mcp-protocol-version": ProbeProtocolVersion },
      signal: AbortSignal.timeout(2000),
    }).then((d) => d.body?.cancel()).catch(() => {});
  }
}

async function judgeInitialize(res: Response, target: string, path: string, r: Report, signal: AbortSignal) {
  const status = res.status;
  if (status === 401 || status === 403) {
    r.problem(
      `The upstream answered ${status} to an MCP initialize without a token, so it demands authentication itself, ` +
        "which it must not behind the gateway (the gateway never passes the client's token on and answers 502 instead): " +
        "turn off the upstream's own authentication and let only the gateway reach it.",
    );
    return;
  }
  if (status >= 300 && status < 400) {
    r.problem(
      `The upstream redirected the MCP initialize to ${res.headers.get("location") ?? "(no Location)"}, ` +
        "and the gateway does not follow redirects: set UPSTREAM_URL to the final URL.",
    );
    return;
  }
  if (status === 404 || status === 405) {
    r.problem(
      `The upstream answered ${status} to POST ${target}, so its MCP endpoint is elsewhere: ` +
        `make UPSTREAM_URL plus the path of RESOURCE_URI (${JSON.stringify(path)}) name the MCP endpoint.`,
    );
    return;
  }
  if (status !== 200) {
    r.problem(
      `The upstream answered HTTP ${status} to an MCP initialize: check the MCP server's logs and that UPSTREAM_URL points at it.`,
    );
    return;
  }
  const type = (res.headers.get("content-type") ?? "").toLowerCase();
  let message: unknown;
  try {
    if (type.startsWith("application/json")) {
      message = JSON.parse(await readText(res, signal));
    } else if (type.startsWith("text/event-stream")) {
      message = await firstSseMessage(res, signal);
    } else {
      r.problem(
        `The upstream answered the MCP initialize with ${JSON.stringify(type || "no content type")} ` +
          "instead of application/json or text/event-stream: check that UPSTREAM_URL points at a Streamable HTTP MCP server.",
      );
      return;
    }
  } catch (e) {
    r.problem(
      `The upstream's answer to the MCP initialize could not be read (${
        why(e)
      }): check that UPSTREAM_URL points at a Streamable HTTP MCP server.`,
    );
    return;
  }
  const m = (typeof message === "object" && message !== null ? message : {}) as Record<string, unknown>;
  const result = m.result as Record<string, unknown> | undefined;
  if (typeof result === "object" && result !== null && typeof result.protocolVersion === "string") {
    const info = result.serverInfo as Record<string, unknown> | undefined;
    const name = info && typeof info.name === "string"
      ? ` (server ${JSON.stringify(info.name)}${typeof info.version === "string" ? ` ${info.version}` : ""})`
      : "";
    r.ok(`The MCP initialize succeeded with protocol ${result.protocolVersion}${name}.`);
    return;
  }
  const err = m.error as Record<string, unknown> | undefined;
  r.problem(
    err && typeof err.message === "string"
      ? `The upstream answered the MCP initialize with the error ${
        JSON.stringify(err.message)
      }: check the MCP server's logs.`
      : typeof result === "object" && result !== null
      ? "The upstream answered the MCP initialize without a protocolVersion, so it does not look like an MCP server: " +
        "check that UPSTREAM_URL points at one."
      : "The upstream's answer to the MCP initialize is not a JSON-RPC response: check that UPSTREAM_URL points at an MCP server.",
  );
}

async function readText(res: Response, signal: AbortSignal): Promise<string> {
  let text = "";
  for await (const chunk of lines(res, signal)) text += chunk + "\n";
  return text;
}

/** The body as lines, up to ProbeMaxBytes. */
async function* lines(res: Response, signal: AbortSignal): AsyncGenerator<string> {
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const onAbort = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  let buf = "";
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw new DOMException("timed out", "TimeoutError");
      if (done) break;
      size += value.length;
      if (size > ProbeMaxBytes) throw new Error(`more than ${ProbeMaxBytes} bytes`);
      buf += value;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        yield buf.slice(0, i).replace(/\r$/, "");
        buf = buf.slice(i + 1);
      }
    }
    if (buf !== "") yield buf;
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.cancel().catch(() => {});
  }
}

/** The first SSE event's data that parses as a JSON-RPC response. */
async function firstSseMessage(res: Response, signal: AbortSignal): Promise<unknown> {
  let data: string[] = [];
  for await (const line of lines(res, signal)) {
    if (line === "") {
      if (data.length > 0) {
        const msg = JSON.parse(data.join("\n"));
        if (typeof msg === "object" && msg !== null && "id" in msg) return msg;
      }
      data = [];
    } else if (line.startsWith("data:")) {
      data.push(line.slice(5).replace(/^ /, ""));
    }
  }
  if (data.length > 0) return JSON.parse(data.join("\n"));
  throw new Error("the event stream ended without a response");
}

function showScopePolicy(config: Config, r: Report): void {
  if (config.scopeRules === undefined && Object.keys(config.scopeImplies).length === 0) return;
  r.section("Per-tool authorization (SCOPE_RULES, SCOPE_IMPLIES) as understood");
  const challengeFor = (needed: readonly string[]) =>
    authErrorResponse(config, insufficientScope(needed, needed, [])).headers.get("www-authenticate") ?? "";
  for (const line of describeScopePolicy(config, challengeFor)) r.text(line);
}

function showClientView(config: Config, r: Report): void {
  r.section("What a client such as Claude.ai sees");
  r.print(`  GET ${config.resourceMetadataUrl}`);
  for (const line of JSON.stringify(JSON.parse(metadataDocument(config)), null, 2).split("\n")) r.text(line);
  r.print("  A request without a token is answered:");
  r.text("HTTP/1.1 401 Unauthorized");
  r.text(
    `WWW-Authenticate: ${
      buildChallenge({
        realm: config.authRealm,
        resourceMetadataUrl: config.resourceMetadataUrl,
        scopes: config.scopesSupported,
        error: "",
      })
    }`,
  );
}
