/**
 * Environment variables → one frozen Config. Every problem is collected and reported
 * together in a ConfigError; nothing is read from files. Names and meanings follow the
 * Go mcp-gate so that an existing environment works unchanged.
 */
import { ConfigError } from "./errors.ts";
import { EnvReader, parseDuration, splitList } from "./env_reader.ts";
import { type Cidr, isLoopbackHost, parseCidr } from "./net.ts";
import { dropOfflineAccess, policyScopes, readScopePolicy, type ScopeRule } from "./policy/rules.ts";
import { type IntrospectionSettings, IntrospectionVariables, readIntrospection } from "./auth/introspection_config.ts";
import { readStripRequestHeaders, StripRequestHeadersVariable } from "./proxy/strip_config.ts";
import { type RateLimitSettings, RateLimitVariables, readRateLimits } from "./limits/config.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface ListenAddress {
  hostname: string;
  port: number;
}

export interface Config {
  listen: ListenAddress;
  upstreamUrl: URL;
  /** Exactly as configured: the `resource` of the metadata document. */
  resourceUri: string;
  /** Absolute URL of the metadata document for RESOURCE_URI (path-inserted when it has a path). */
  resourceMetadataUrl: string;
  /** Gateway paths that serve the metadata document. */
  metadataPaths: readonly string[];
  authorizationServers: readonly string[];
  jwksUri: string | undefined;
  /** Accepted `iss` values: EXPECTED_ISSUER, or the authorization servers themselves. */
  expectedIssuers: readonly string[];
  expectedAudiences: readonly string[];
  requiredScopes: readonly string[];
  /** The 401 challenge's `scope`: SCOPES_SUPPORTED when set, else REQUIRED_SCOPES. */
  scopesSupported: readonly string[];
  /** Metadata `scopes_supported`: SCOPES_SUPPORTED when set, else every scope REQUIRED_SCOPES, SCOPE_RULES and SCOPE_IMPLIES name. */
  advertisedScopes: readonly string[];
  /** SCOPE_RULES in order; undefined: unset (no body is read). */
  scopeRules: readonly ScopeRule[] | undefined;
  /** SCOPE_IMPLIES: scope → the scopes it implies directly. */
  scopeImplies: Readonly<Record<string, readonly string[]>>;
  resourceName: string;
  /** RESOURCE_DOCUMENTATION: `resource_documentation` in the metadata; undefined: omitted. */
  resourceDocumentation: string | undefined;
  /** AUTH_REALM: the `realm` of every challenge (default: RESOURCE_URI's host); "": omitted. */
  authRealm: string;
  allowedAlgorithms: readonly string[];
  clockSkewSeconds: number;
  jwksRefreshIntervalMs: number;
  jwksRefetchCooldownMs: number;
  jwksFetchTimeoutMs: number;
  /** null: the default policy (RESOURCE_URI's origin and loopback); ["*"]: any. */
  allowedOrigins: readonly string[] | null;
  trustedProxies: readonly Cidr[];
  upstreamTimeoutMs: number;
  maxRequestBody: number;
  maxHeaderBytes: number;
  rateLimitRps: number;
  rateLimitBurst: number;
  /** Per-user buckets and where buckets live (Redis), REDIS_TIMEOUT, RATE_LIMIT_FAIL_CLOSED. */
  rateLimits: RateLimitSettings;
  maxConcurrentRequests: number;
  maxTotalConnections: number;
  readTimeoutMs: number;
  idleTimeoutMs: number;
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
  metricsAddr: ListenAddress | null;
  identityHeaders: boolean;
  /** Extra claim → request header mappings sent to the upstream after verification. */
  claimHeaders: readonly (readonly [claim: string, header: string])[];
  /** STRIP_REQUEST_HEADERS, lower-case: client headers never forwarded; `prefix*` matches by prefix. */
  stripRequestHeaders: readonly string[];
  forwardToken: boolean;
  /** Verified-token cache entries; 0 disables the cache. */
  tokenCacheSize: number;
  /** RFC 7662 introspection of opaque tokens (INTROSPECTION_CLIENT_ID); undefined: off. */
  introspection: IntrospectionSettings | undefined;
  otel: { endpoint: string | undefined; serviceName: string; sampleRate: number };
  /** Non-fatal findings to log at start-up. */
  warnings: readonly string[];
}

export { parseDuration };

export const DefaultListenAddr = "0.0.0.0:8080";
export const DefaultAlgorithms = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
export const MetadataPath = "/.well-known/oauth-protected-resource";

/** One row per variable: its default, shown by `--help` and the README. */
export const Variables: readonly { name: string; default: string; meaning: string }[] = [
  { name: "LISTEN_ADDR", default: DefaultListenAddr, meaning: "host:port to bind (:8080 allowed)" },
  { name: "UPSTREAM_URL", default: "(required)", meaning: "base URL of the MCP server" },
  { name: "RESOURCE_URI", default: "(required)", meaning: "public URL clients use (origin or endpoint)" },
  { name: "AUTHORIZATION_SERVER", default: "(required)", meaning: "issuer URL(s), comma-separated" },
  { name: "JWKS_URI", default: "(discovered)", meaning: "JWKS URL; found via RFC 8414 / OIDC when unset" },
  { name: "EXPECTED_ISSUER", default: "(AUTHORIZATION_SERVER)", meaning: "accepted iss values (comma list)" },
  { name: "EXPECTED_AUDIENCE", default: "(RESOURCE_URI)", meaning: "accepted aud values (comma list)" },
  { name: "REQUIRED_SCOPES", default: "", meaning: "scopes every request needs (comma list)" },
  { name: "SCOPES_SUPPORTED", default: "(REQUIRED_SCOPES)", meaning: "scopes advertised in metadata and 401" },
  { name: "SCOPE_RULES", default: "", meaning: "per-method/per-tool scopes: JSON array or @file" },
  { name: "SCOPE_IMPLIES", default: "", meaning: 'scope hierarchy, JSON: {"mcp:admin":["mcp:read"]}' },
  { name: "RESOURCE_NAME", default: "mcp-gate", meaning: "resource_name in metadata" },
  { name: "RESOURCE_DOCUMENTATION", default: "", meaning: "resource_documentation URL in metadata" },
  { name: "AUTH_REALM", default: "(RESOURCE_URI host)", meaning: "realm of WWW-Authenticate; empty omits it" },
  { name: "ALLOWED_ALGORITHMS", default: DefaultAlgorithms.join(","), meaning: "JWS algorithms accepted" },
  { name: "CLOCK_SKEW", default: "30s", meaning: "leeway for exp/nbf/iat" },
  { name: "JWKS_REFRESH_INTERVAL", default: "1h", meaning: "background key refresh interval (±10% jitter)" },
  { name: "JWKS_REFETCH_COOLDOWN", default: "30s", meaning: "min time between unscheduled JWKS refetches" },
  { name: "JWKS_FETCH_TIMEOUT", default: "5s", meaning: "timeout of one JWKS or discovery fetch" },
  { name: "ALLOWED_ORIGINS", default: "", meaning: "browser origins allowed (comma list, * for any)" },
  { name: "TRUSTED_PROXIES", default: "", meaning: "CIDRs whose X-Forwarded-For/X-Real-IP are believed" },
  { name: "UPSTREAM_TIMEOUT", default: "120s", meaning: "time to the upstream's response headers" },
  { name: "MAX_REQUEST_BODY", default: "10485760", meaning: "bytes; larger -> 413" },
  { name: "MAX_HEADER_BYTES", default: "65536", meaning: "bytes; larger -> 431" },
  { name: "RATE_LIMIT_RPS", default: "10", meaning: "per client IP token bucket rate; 0 disables" },
  { name: "RATE_LIMIT_BURST", default: "20", meaning: "per client IP token bucket size" },
  ...RateLimitVariables,
  { name: "MAX_CONCURRENT_REQUESTS", default: "100", meaning: "per client IP in-flight cap" },
  { name: "MAX_TOTAL_CONNECTIONS", default: "1000", meaning: "global in-flight cap -> 503" },
  { name: "READ_TIMEOUT", default: "30s", meaning: "inbound request read timeout" },
  { name: "IDLE_TIMEOUT", default: "120s", meaning: "keep-alive idle timeout" },
  { name: "SHUTDOWN_TIMEOUT", default: "30s", meaning: "drain time after SIGTERM/SIGINT" },
  { name: "LOG_LEVEL", default: "info", meaning: "debug, info, warn, error" },
  { name: "METRICS_ADDR", default: ":9090", meaning: "Prometheus /metrics listener; empty disables" },
  { name: "IDENTITY_HEADERS", default: "true", meaning: "send X-Auth-Subject/-Scopes/-Client-Id upstream" },
  { name: "CLAIM_HEADERS", default: "", meaning: "extra claim=Header mappings (comma list)" },
  StripRequestHeadersVariable,
  { name: "FORWARD_ACCESS_TOKEN", default: "false", meaning: "pass the client's token upstream (unsafe)" },
  { name: "TOKEN_CACHE_SIZE", default: "10000", meaning: "verified tokens remembered until exp; 0 disables" },
  ...IntrospectionVariables,
  { name: "OTEL_EXPORTER_OTLP_ENDPOINT", default: "", meaning: "OTLP/HTTP endpoint for traces" },
  { name: "OTEL_SERVICE_NAME", default: "mcp-gate", meaning: "service.name of traces" },
  { name: "OTEL_TRACE_SAMPLE_RATE", default: "1.0", meaning: "fraction of traces sampled" },
];

const JwsAlgorithms = new Set<string>(DefaultAlgorithms);
const HeaderName = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const ReservedUpstreamHeaders = new Set(["x-auth-subject", "x-auth-scopes", "x-auth-client-id"]);

/** Parses "host:port", ":port" or "[v6]:port". */
export function parseListenAddr(text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const hostname = m[1] ?? (m[2] === "" ? "0.0.0.0" : m[2]!);
  return { hostname, port };
}

export interface LoadOptions {
  /** Reads the file of SCOPE_RULES=@path (the runtime's reader); without it only inline rules work. */
  readTextFile?: (path: string) => string;
}

/**
 * Reads the configuration from an environment record. Throws one ConfigError listing
 * every problem found; returns a frozen Config otherwise.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  options: LoadOptions = {},
): Config {
  const r = new EnvReader(env);
  const { problems, warnings } = r;
  const get = (name: string) => r.get(name);
  const problem = (variable: string, expected: string) => r.problem(variable, expected);
  const duration = (name: string, fallback: string) => r.duration(name, fallback);
  const integer = (name: string, fallback: number) => r.integer(name, fallback);
  const number = (name: string, fallback: number, min: number, max: number) => r.number(name, fallback, min, max);
  const boolean = (name: string, fallback: boolean) => r.boolean(name, fallback);
  const httpUrl = (name: string, raw: string, what: string) => r.httpUrl(name, raw, what);
  const required = (name: string) => r.required(name);
  const list = (text: string | undefined) => splitList(text);

  // Listener
  const listenRaw = get("LISTEN_ADDR") || DefaultListenAddr;
  let listen = parseListenAddr(listenRaw);
  if (!listen) {
    problem("LISTEN_ADDR", 'expected host:port, such as "0.0.0.0:8080" or ":8080"');
    listen = { hostname: "0.0.0.0", port: 8080 };
  }

  // Upstream
  const upstreamRaw = required("UPSTREAM_URL");
  let upstreamUrl = upstreamRaw ? httpUrl("UPSTREAM_URL", upstreamRaw, "the MCP server's base URL") : undefined;
  if (upstreamUrl && upstreamUrl.search !== "") {
    problem("UPSTREAM_URL", "expected a base URL without a ?query (the request's path and query are appended)");
    upstreamUrl = undefined;
  }

  // Resource
  const resourceUri = required("RESOURCE_URI");
  let resourceMetadataUrl = "";
  const metadataPaths = [MetadataPath];
  let resourceOrigin = "";
  const resourceUrl = resourceUri ? httpUrl("RESOURCE_URI", resourceUri, "the public URL clients use") : undefined;
  if (resourceUrl) {
    if (resourceUrl.search !== "") {
      problem("RESOURCE_URI", "expected a URL without a ?query (RFC 9728 §1.2)");
    }
    // RFC 9728 §3.1: the suffix goes between host and path, the path kept as it is (a lone
    // "/" is no path). The slash-less twin is served too: some clients strip it.
    const path = resourceUrl.pathname === "/" ? "" : resourceUrl.pathname;
    resourceOrigin = resourceUrl.origin;
    resourceMetadataUrl = resourceOrigin + MetadataPath + path;
    for (const p of new Set([path, path.replace(/\/+$/, "")])) if (p !== "") metadataPaths.push(MetadataPath + p);
    if (resourceUrl.protocol === "http:" && !isLoopbackHost(resourceUrl.hostname)) {
      warnings.push(
        `RESOURCE_URI ${JSON.stringify(resourceUri)} is http: clients such as Claude.ai require https; ` +
          "terminate TLS in front of the gateway and use the https URL",
      );
    }
  }

  // Authorization servers and token checks
  const asRaw = required("AUTHORIZATION_SERVER");
  const authorizationServers = list(asRaw);
  for (const as of authorizationServers) {
    const url = httpUrl("AUTHORIZATION_SERVER", as, "the issuer URL of the authorization server");
    if (url && url.search !== "") {
      problem("AUTHORIZATION_SERVER", "expected issuer URLs without a ?query (RFC 8414 §2)");
    }
  }
  if (asRaw !== undefined && authorizationServers.length === 0) {
    problem("AUTHORIZATION_SERVER", "expected at least one issuer URL");
  }
  const jwksUriRaw = get("JWKS_URI") || undefined;
  const jwksUri = jwksUriRaw && httpUrl("JWKS_URI", jwksUriRaw, "the authorization server's JWKS URL")
    ? jwksUriRaw
    : undefined;
  const expectedIssuers = list(get("EXPECTED_ISSUER"));
  const expectedAudiences = list(get("EXPECTED_AUDIENCE"));
  if (resourceUri && expectedAudiences.length > 0 && !expectedAudiences.includes(resourceUri)) {
    warnings.push(
      `EXPECTED_AUDIENCE does not include RESOURCE_URI ${JSON.stringify(resourceUri)}: clients that follow ` +
        "RFC 8707 ask for tokens with aud = RESOURCE_URI, which this gateway will reject",
    );
  }
  const requiredScopes = dropOfflineAccess(r, "REQUIRED_SCOPES", list(get("REQUIRED_SCOPES")));
  const scopesRaw = get("SCOPES_SUPPORTED");
  const scopesSupported = scopesRaw === undefined || scopesRaw === ""
    ? requiredScopes
    : dropOfflineAccess(r, "SCOPES_SUPPORTED", list(scopesRaw));
  const scopePolicy = readScopePolicy(r, options.readTextFile);
  const advertisedScopes = scopesRaw
    ? scopesSupported
    : [...new Set([...requiredScopes, ...policyScopes(scopePolicy)])];
  const unlisted = [...new Set((scopePolicy.rules ?? []).flatMap((rule) => rule.scopes))]
    .filter((s) => !advertisedScopes.includes(s));
  if (unlisted.length > 0) {
    warnings.push(
      `SCOPES_SUPPORTED does not list ${unlisted.join(", ")} of SCOPE_RULES: clients learn of them from a 403 only`,
    );
  }
  const scopeLists = [["REQUIRED_SCOPES", requiredScopes], [
    "SCOPES_SUPPORTED",
    scopesRaw ? scopesSupported : [],
  ]] as const;
  for (const [name, scopes] of scopeLists) {
    if (scopes.some((s) => !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) {
      problem(name, "expected scope tokens without spaces, quotes or backslashes (RFC 6749 §3.3)");
    }
  }
  const missingAdvertised = requiredScopes.filter((s) => !scopesSupported.includes(s));
  if (missingAdvertised.length > 0) {
    warnings.push(`SCOPES_SUPPORTED does not list required scope(s) ${missingAdvertised.join(", ")}`);
  }

  const algRaw = get("ALLOWED_ALGORITHMS");
  const allowedAlgorithms = algRaw === undefined || algRaw === "" ? [...DefaultAlgorithms] : list(algRaw);
  const badAlgs = allowedAlgorithms.filter((a) => !JwsAlgorithms.has(a));
  if (badAlgs.length > 0 || allowedAlgorithms.length === 0) {
    problem(
      "ALLOWED_ALGORITHMS",
      `expected a comma list of ${DefaultAlgorithms.join(", ")}` +
        (badAlgs.some((a) => a.toLowerCase() === "none" || /^HS/i.test(a))
          ? ' ("none" and HMAC algorithms are never accepted)'
          : ""),
    );
  }

  const clockSkewSeconds = duration("CLOCK_SKEW", "30s") / 1000;
  if (clockSkewSeconds > 600) problem("CLOCK_SKEW", "expected at most 10m");
  const jwksRefreshIntervalMs = duration("JWKS_REFRESH_INTERVAL", "1h");
  if (jwksRefreshIntervalMs < 1000) problem("JWKS_REFRESH_INTERVAL", "expected at least 1s");
  const jwksRefetchCooldownMs = duration("JWKS_REFETCH_COOLDOWN", "30s");
  const jwksFetchTimeoutMs = duration("JWKS_FETCH_TIMEOUT", "5s");
  if (jwksFetchTimeoutMs < 1) problem("JWKS_FETCH_TIMEOUT", "expected more than 0");

  // Browsers
  const originsRaw = list(get("ALLOWED_ORIGINS"));
  let allowedOrigins: string[] | null = null;
  if (originsRaw.length > 0) {
    allowedOrigins = [];
    for (const o of originsRaw) {
      if (o === "*") {
        allowedOrigins.push("*");
        continue;
      }
      let url: URL | undefined;
      try {
        url = new URL(o);
      } catch { /* reported below */ }
      if (!url || url.origin === "null" || url.origin !== o.replace(/\/$/, "")) {
        problem(
          "ALLOWED_ORIGINS",
          'expected origins such as "https://app.example.com" (scheme://host[:port], no path) or *',
        );
      } else {
        allowedOrigins.push(url.origin);
      }
    }
  }
  const trustedProxies: Cidr[] = [];
  for (const c of list(get("TRUSTED_PROXIES"))) {
    const cidr = parseCidr(c);
    if (cidr) trustedProxies.push(cidr);
    else {problem(
        "TRUSTED_PROXIES",
        `expected CIDRs such as "10.0.0.0/8" or "fd00::/8" (${JSON.stringify(c)} is not one)`,
      );}
  }

  const upstreamTimeoutMs = duration("UPSTREAM_TIMEOUT", "120s");
  const maxRequestBody = integer("MAX_REQUEST_BODY", 10_485_760);
  const maxHeaderBytes = integer("MAX_HEADER_BYTES", 65_536);
  const rateLimitRps = number("RATE_LIMIT_RPS", 10, 0, 1e9);
  const rateLimitBurst = integer("RATE_LIMIT_BURST", 20);
  const rateLimits = readRateLimits(r);
  const maxConcurrentRequests = integer("MAX_CONCURRENT_REQUESTS", 100);
  const maxTotalConnections = integer("MAX_TOTAL_CONNECTIONS", 1000);
  const readTimeoutMs = duration("READ_TIMEOUT", "30s");
  const idleTimeoutMs = duration("IDLE_TIMEOUT", "120s");
  const shutdownTimeoutMs = duration("SHUTDOWN_TIMEOUT", "30s");

  const levelRaw = (get("LOG_LEVEL") || "info").toLowerCase();
  let logLevel: LogLevel = "info";
  if (levelRaw === "debug" || levelRaw === "info" || levelRaw === "warn" || levelRaw === "error") logLevel = levelRaw;
  else problem("LOG_LEVEL", "expected debug, info, warn or error");

  const metricsRaw = env["METRICS_ADDR"] === undefined ? ":9090" : get("METRICS_ADDR")!;
  let metricsAddr: ListenAddress | null = null;
  if (metricsRaw !== "") {
    metricsAddr = parseListenAddr(metricsRaw) ?? null;
    if (!metricsAddr) problem("METRICS_ADDR", 'expected host:port such as ":9090", or empty to disable');
  }

  const identityHeaders = boolean("IDENTITY_HEADERS", true);
  const claimHeaders: [string, string][] = [];
  for (const pair of list(get("CLAIM_HEADERS"))) {
    const m = /^([^=:\s]+)[=:]([^=:\s]+)$/.exec(pair);
    if (!m || !HeaderName.test(m[2]!) || ReservedUpstreamHeaders.has(m[2]!.toLowerCase())) {
      problem("CLAIM_HEADERS", 'expected claim=Header-Name pairs such as "email=X-Auth-Email"');
    } else {
      claimHeaders.push([m[1]!, m[2]!]);
    }
  }
  const forwardToken = boolean("FORWARD_ACCESS_TOKEN", false);
  if (forwardToken) {
    warnings.push(
      "FORWARD_ACCESS_TOKEN is on: the client's access token is passed to the upstream. The MCP " +
        "specification forbids token passthrough; use it only with an upstream that validates the token itself",
    );
  }

  const tokenCacheSize = integer("TOKEN_CACHE_SIZE", 10_000);
  const introspection = readIntrospection(r);
  const stripRequestHeaders = readStripRequestHeaders(r);
  const otelEndpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT") || undefined;
  if (otelEndpoint) httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT", otelEndpoint, "the OTLP/HTTP endpoint");
  const otel = {
    endpoint: otelEndpoint,
    serviceName: get("OTEL_SERVICE_NAME") || "mcp-gate",
    sampleRate: number("OTEL_TRACE_SAMPLE_RATE", 1, 0, 1),
  };

  const docRaw = get("RESOURCE_DOCUMENTATION") || undefined;
  const resourceDocumentation = docRaw && httpUrl("RESOURCE_DOCUMENTATION", docRaw, "a page about this resource")
    ? docRaw
    : undefined;
  // As the Go gateway: unset means RESOURCE_URI's host; set but empty means no realm.
  const realmRaw = r.raw("AUTH_REALM");
  const authRealm = realmRaw === undefined ? resourceUrl?.host ?? "" : realmRaw.trim();
  if (!/^[\x20\x21\x23-\x5B\x5D-\x7E]*$/.test(authRealm)) {
    problem("AUTH_REALM", "expected printable ASCII without quotes or backslashes");
  }

  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    listen,
    upstreamUrl: upstreamUrl!,
    resourceUri: resourceUri!,
    resourceMetadataUrl,
    metadataPaths: Object.freeze(metadataPaths),
    authorizationServers: Object.freeze(authorizationServers),
    jwksUri,
    expectedIssuers: Object.freeze(expectedIssuers.length > 0 ? expectedIssuers : authorizationServers),
    expectedAudiences: Object.freeze(expectedAudiences.length > 0 ? expectedAudiences : [resourceUri!]),
    requiredScopes: Object.freeze(requiredScopes),
    scopesSupported: Object.freeze(scopesSupported),
    advertisedScopes: Object.freeze(advertisedScopes),
    scopeRules: scopePolicy.rules,
    scopeImplies: scopePolicy.implies,
    resourceName: get("RESOURCE_NAME") || "mcp-gate",
    resourceDocumentation,
    authRealm,
    allowedAlgorithms: Object.freeze(allowedAlgorithms),
    clockSkewSeconds,
    jwksRefreshIntervalMs,
    jwksRefetchCooldownMs,
    jwksFetchTimeoutMs,
    allowedOrigins: allowedOrigins && Object.freeze(allowedOrigins),
    trustedProxies: Object.freeze(trustedProxies),
    upstreamTimeoutMs,
    maxRequestBody,
    maxHeaderBytes,
    rateLimitRps,
    rateLimitBurst,
    rateLimits: Object.freeze(rateLimits),
    maxConcurrentRequests,
    maxTotalConnections,
    readTimeoutMs,
    idleTimeoutMs,
    shutdownTimeoutMs,
    logLevel,
    metricsAddr,
    identityHeaders,
    claimHeaders: Object.freeze(claimHeaders),
    stripRequestHeaders: Object.freeze(stripRequestHeaders),
    forwardToken,
    tokenCacheSize,
    introspection: introspection && Object.freeze(introspection),
    otel,
    warnings: Object.freeze(warnings),
  });
}
