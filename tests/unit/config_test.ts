import {
  assert,
  assertArrayIncludes,
  assertEquals,
  assertInstanceOf,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { type Config, DefaultAlgorithms, loadConfig, parseDuration, parseListenAddr } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { env, ISSUER, RESOURCE, UPSTREAM } from "./_fixtures.ts";

function problemsOf(e: Record<string, string | undefined>): ConfigError {
  return assertThrows(() => loadConfig(e), ConfigError);
}

Deno.test("loadConfig() fills every field with its default", () => {
  const cfg = loadConfig(env());
  const { upstreamUrl, ...rest } = cfg;
  assertInstanceOf(upstreamUrl, URL);
  assertEquals(upstreamUrl.href, `${UPSTREAM}/`);
  const expected: Omit<Config, "upstreamUrl"> = {
    listen: { hostname: "0.0.0.0", port: 8080 },
    resourceUri: RESOURCE,
    resourceMetadataUrl: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
    metadataPaths: ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"],
    authorizationServers: [ISSUER],
    jwksUri: undefined,
    expectedIssuers: [ISSUER],
    expectedAudiences: [RESOURCE],
    requiredScopes: [],
    scopesSupported: [],
    advertisedScopes: [],
    scopeRules: undefined,
    scopeImplies: {},
    resourceName: "mcp-gate",
    resourceDocumentation: undefined,
    authRealm: "mcp.example.com",
    allowedAlgorithms: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
    clockSkewSeconds: 30,
    jwksRefreshIntervalMs: 3_600_000,
    jwksRefetchCooldownMs: 30_000,
    jwksFetchTimeoutMs: 5_000,
    allowedOrigins: null,
    trustedProxies: [],
    upstreamTimeoutMs: 120_000,
    maxRequestBody: 10_485_760,
    maxHeaderBytes: 65_536,
    rateLimitRps: 10,
    rateLimitBurst: 20,
    rateLimits: { redis: undefined, redisTimeoutMs: 50, failClosed: false, userRps: 0, userBurst: 0 },
    maxConcurrentRequests: 100,
    maxTotalConnections: 1000,
    readTimeoutMs: 30_000,
    idleTimeoutMs: 120_000,
    shutdownTimeoutMs: 30_000,
    logLevel: "info",
    metricsAddr: { hostname: "0.0.0.0", port: 9090 },
    identityHeaders: true,
    claimHeaders: [],
    stripRequestHeaders: [],
    forwardToken: false,
    tokenCacheSize: 10_000,
    introspection: undefined,
    otel: { endpoint: undefined, serviceName: "mcp-gate", sampleRate: 1 },
    warnings: [],
  };
  assertEquals(rest, expected);
  assertEquals([...DefaultAlgorithms], expected.allowedAlgorithms);
});

Deno.test("loadConfig() returns a frozen Config", () => {
  const cfg = loadConfig(env());
  assert(Object.isFrozen(cfg));
  assert(Object.isFrozen(cfg.metadataPaths));
  assert(Object.isFrozen(cfg.expectedAudiences));
  assertThrows(() => (cfg.requiredScopes as string[]).push("x"), TypeError);
});

Deno.test("parseDuration() parses Go-style durations", async (t) => {
  const cases: { description: string; input: string; expected: number | undefined }[] = [
    { description: "milliseconds", input: "500ms", expected: 500 },
    { description: "seconds", input: "30s", expected: 30_000 },
    { description: "minutes", input: "5m", expected: 300_000 },
    { description: "hours", input: "1h", expected: 3_600_000 },
    { description: "minutes and seconds", input: "1m30s", expected: 90_000 },
    { description: "hours, minutes, seconds, ms", input: "1h2m3s4ms", expected: 3_723_004 },
    { description: "fractional seconds", input: "1.5s", expected: 1_500 },
    { description: "bare zero", input: "0", expected: 0 },
    { description: "zero with unit", input: "0s", expected: 0 },
    { description: "empty", input: "", expected: undefined },
    { description: "number without unit", input: "30", expected: undefined },
    { description: "negative", input: "-5s", expected: undefined },
    { description: "days are not a unit", input: "1d", expected: undefined },
    { description: "space inside", input: "5 m", expected: undefined },
    { description: "unit without number", input: "s", expected: undefined },
    { description: "trailing junk", input: "5mx", expected: undefined },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${JSON.stringify(input)}`, () => {
      assertEquals(parseDuration(input), expected);
    });
  }
});

Deno.test("loadConfig() parses every duration variable", async (t) => {
  const cases: { description: string; input: Record<string, string>; expected: Partial<Config> }[] = [
    { description: "CLOCK_SKEW 1m30s", input: { CLOCK_SKEW: "1m30s" }, expected: { clockSkewSeconds: 90 } },
    { description: "CLOCK_SKEW 500ms", input: { CLOCK_SKEW: "500ms" }, expected: { clockSkewSeconds: 0.5 } },
    { description: "CLOCK_SKEW 0", input: { CLOCK_SKEW: "0" }, expected: { clockSkewSeconds: 0 } },
    {
      description: "JWKS_REFRESH_INTERVAL 5m",
      input: { JWKS_REFRESH_INTERVAL: "5m" },
      expected: { jwksRefreshIntervalMs: 300_000 },
    },
    {
      description: "JWKS_REFETCH_COOLDOWN 10s",
      input: { JWKS_REFETCH_COOLDOWN: "10s" },
      expected: { jwksRefetchCooldownMs: 10_000 },
    },
    {
      description: "JWKS_FETCH_TIMEOUT 500ms",
      input: { JWKS_FETCH_TIMEOUT: "500ms" },
      expected: { jwksFetchTimeoutMs: 500 },
    },
    {
      description: "UPSTREAM_TIMEOUT 1h",
      input: { UPSTREAM_TIMEOUT: "1h" },
      expected: { upstreamTimeoutMs: 3_600_000 },
    },
    { description: "READ_TIMEOUT 5s", input: { READ_TIMEOUT: "5s" }, expected: { readTimeoutMs: 5_000 } },
    { description: "IDLE_TIMEOUT 2m", input: { IDLE_TIMEOUT: "2m" }, expected: { idleTimeoutMs: 120_000 } },
    {
      description: "SHUTDOWN_TIMEOUT 45s",
      input: { SHUTDOWN_TIMEOUT: "45s" },
      expected: { shutdownTimeoutMs: 45_000 },
    },
    {
      description: "surrounding spaces",
      input: { UPSTREAM_TIMEOUT: " 10s " },
      expected: { upstreamTimeoutMs: 10_000 },
    },
    { description: "empty means default", input: { UPSTREAM_TIMEOUT: "" }, expected: { upstreamTimeoutMs: 120_000 } },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const cfg = loadConfig(env(input)) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(expected)) assertEquals(cfg[k], v, k);
    });
  }
});

Deno.test("loadConfig() parses LISTEN_ADDR forms", async (t) => {
  const cases: { description: string; input: string; expected: { hostname: string; port: number } }[] = [
    { description: "port only", input: ":8080", expected: { hostname: "0.0.0.0", port: 8080 } },
    { description: "IPv4 with port 0", input: "127.0.0.1:0", expected: { hostname: "127.0.0.1", port: 0 } },
    { description: "bracketed IPv6", input: "[::1]:9000", expected: { hostname: "::1", port: 9000 } },
    { description: "any IPv6", input: "[::]:8443", expected: { hostname: "::", port: 8443 } },
    { description: "host name", input: "localhost:3000", expected: { hostname: "localhost", port: 3000 } },
    { description: "highest port", input: "0.0.0.0:65535", expected: { hostname: "0.0.0.0", port: 65535 } },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${input}`, () => {
      assertEquals(loadConfig(env({ LISTEN_ADDR: input })).listen, expected);
      assertEquals(parseListenAddr(input), expected);
    });
  }
  for (const bad of ["8080", "localhost", "host:", "0.0.0.0:65536", "::1:9000", "[::1]", "a:b", "1.2.3.4:80:90"]) {
    await t.step(`rejects ${JSON.stringify(bad)}`, () => {
      const e = problemsOf(env({ LISTEN_ADDR: bad }));
      assertEquals(e.problems.map((p) => [p.variable, p.value]), [["LISTEN_ADDR", bad]]);
    });
  }
});

Deno.test("loadConfig() parses METRICS_ADDR: unset is :9090, empty disables", async (t) => {
  const cases: { description: string; input: string | undefined; expected: Config["metricsAddr"] }[] = [
    { description: "unset", input: undefined, expected: { hostname: "0.0.0.0", port: 9090 } },
    { description: "empty", input: "", expected: null },
    { description: "blank", input: "  ", expected: null },
    { description: "explicit", input: "127.0.0.1:9100", expected: { hostname: "127.0.0.1", port: 9100 } },
    { description: "port only", input: ":9091", expected: { hostname: "0.0.0.0", port: 9091 } },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      assertEquals(loadConfig(env({ METRICS_ADDR: input })).metricsAddr, expected);
    });
  }
  await t.step("rejects a bad address", () => {
    const e = problemsOf(env({ METRICS_ADDR: "metrics" }));
    assertEquals(e.problems.map((p) => [p.variable, p.value]), [["METRICS_ADDR", "metrics"]]);
  });
});

Deno.test("loadConfig() splits comma lists, trimming and dropping empty items", async (t) => {
  const cases: { description: string; input: Record<string, string>; expected: Partial<Config> }[] = [
    {
      description: "AUTHORIZATION_SERVER list also sets the expected issuers",
      input: { AUTHORIZATION_SERVER: "https://a.example.com, https://b.example.com/realms/x ," },
      expected: {
        authorizationServers: ["https://a.example.com", "https://b.example.com/realms/x"],
        expectedIssuers: ["https://a.example.com", "https://b.example.com/realms/x"],
      },
    },
    {
      description: "EXPECTED_ISSUER overrides AUTHORIZATION_SERVER",
      input: { EXPECTED_ISSUER: "https://issuer.example.com/,https://other.example.com" },
      expected: {
        authorizationServers: [ISSUER],
        expectedIssuers: ["https://issuer.example.com/", "https://other.example.com"],
      },
    },
    {
      description: "EXPECTED_AUDIENCE list",
      input: { EXPECTED_AUDIENCE: `${RESOURCE}, api://mcp` },
      expected: { expectedAudiences: [RESOURCE, "api://mcp"] },
    },
    {
      description: "REQUIRED_SCOPES list, also the default of SCOPES_SUPPORTED",
      input: { REQUIRED_SCOPES: " mcp:read , ,mcp:write " },
      expected: { requiredScopes: ["mcp:read", "mcp:write"], scopesSupported: ["mcp:read", "mcp:write"] },
    },
    {
      description: "SCOPES_SUPPORTED set explicitly",
      input: { REQUIRED_SCOPES: "mcp:read", SCOPES_SUPPORTED: "mcp:read,mcp:write,offline_access" },
      expected: { requiredScopes: ["mcp:read"], scopesSupported: ["mcp:read", "mcp:write"] },
    },
    {
      description: "empty SCOPES_SUPPORTED falls back to REQUIRED_SCOPES",
      input: { REQUIRED_SCOPES: "a,b", SCOPES_SUPPORTED: "" },
      expected: { scopesSupported: ["a", "b"] },
    },
    {
      description: "SCOPES_SUPPORTED without REQUIRED_SCOPES",
      input: { SCOPES_SUPPORTED: "mcp" },
      expected: { requiredScopes: [], scopesSupported: ["mcp"] },
    },
    {
      description: "ALLOWED_ALGORITHMS subset",
      input: { ALLOWED_ALGORITHMS: "RS256, ES256" },
      expected: { allowedAlgorithms: ["RS256", "ES256"] },
    },
    {
      description: "ALLOWED_ORIGINS list (a trailing slash is tolerated)",
      input: { ALLOWED_ORIGINS: "https://app.example.com/, http://localhost:6274" },
      expected: { allowedOrigins: ["https://app.example.com", "http://localhost:6274"] },
    },
    { description: "ALLOWED_ORIGINS *", input: { ALLOWED_ORIGINS: "*" }, expected: { allowedOrigins: ["*"] } },
    {
      description: "CLAIM_HEADERS with = and :",
      input: { CLAIM_HEADERS: "email=X-Auth-Email, groups:X-Auth-Groups" },
      expected: { claimHeaders: [["email", "X-Auth-Email"], ["groups", "X-Auth-Groups"]] },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const cfg = loadConfig(env(input)) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(expected)) assertEquals(cfg[k], v, k);
    });
  }
  await t.step("TRUSTED_PROXIES list of IPv4 and IPv6 CIDRs", () => {
    const cfg = loadConfig(env({ TRUSTED_PROXIES: "10.0.0.0/8, fd00::/8,192.0.2.1" }));
    assertEquals(cfg.trustedProxies.map((c) => c.prefix), [104, 8, 128]);
  });
});

Deno.test("loadConfig() parses the scalar variables", async (t) => {
  const cases: { description: string; input: Record<string, string>; expected: Partial<Config> }[] = [
    {
      description: "JWKS_URI",
      input: { JWKS_URI: "https://auth.example.com/keys" },
      expected: { jwksUri: "https://auth.example.com/keys" },
    },
    { description: "RESOURCE_NAME", input: { RESOURCE_NAME: "Acme MCP" }, expected: { resourceName: "Acme MCP" } },
    { description: "MAX_REQUEST_BODY", input: { MAX_REQUEST_BODY: "1024" }, expected: { maxRequestBody: 1024 } },
    { description: "MAX_HEADER_BYTES", input: { MAX_HEADER_BYTES: "8192" }, expected: { maxHeaderBytes: 8192 } },
    { description: "RATE_LIMIT_RPS 0 disables", input: { RATE_LIMIT_RPS: "0" }, expected: { rateLimitRps: 0 } },
    { description: "RATE_LIMIT_RPS fraction", input: { RATE_LIMIT_RPS: "2.5" }, expected: { rateLimitRps: 2.5 } },
    { description: "RATE_LIMIT_BURST", input: { RATE_LIMIT_BURST: "5" }, expected: { rateLimitBurst: 5 } },
    {
      description: "MAX_CONCURRENT_REQUESTS",
      input: { MAX_CONCURRENT_REQUESTS: "7" },
      expected: { maxConcurrentRequests: 7 },
    },
    {
      description: "MAX_TOTAL_CONNECTIONS",
      input: { MAX_TOTAL_CONNECTIONS: "9" },
      expected: { maxTotalConnections: 9 },
    },
    { description: "LOG_LEVEL debug", input: { LOG_LEVEL: "debug" }, expected: { logLevel: "debug" } },
    { description: "LOG_LEVEL error", input: { LOG_LEVEL: "error" }, expected: { logLevel: "error" } },
    {
      description: "IDENTITY_HEADERS false",
      input: { IDENTITY_HEADERS: "false" },
      expected: { identityHeaders: false },
    },
    { description: "IDENTITY_HEADERS 0", input: { IDENTITY_HEADERS: "0" }, expected: { identityHeaders: false } },
    { description: "IDENTITY_HEADERS 1", input: { IDENTITY_HEADERS: "1" }, expected: { identityHeaders: true } },
    {
      description: "FORWARD_ACCESS_TOKEN true",
      input: { FORWARD_ACCESS_TOKEN: "true" },
      expected: { forwardToken: true },
    },
    { description: "TOKEN_CACHE_SIZE 0 disables", input: { TOKEN_CACHE_SIZE: "0" }, expected: { tokenCacheSize: 0 } },
    {
      description: "OTEL variables",
      input: {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_SERVICE_NAME: "gw",
        OTEL_TRACE_SAMPLE_RATE: "0.25",
      },
      expected: { otel: { endpoint: "http://collector:4318", serviceName: "gw", sampleRate: 0.25 } },
    },
    {
      description: "UPSTREAM_URL with a base path",
      input: { UPSTREAM_URL: "http://upstream.test:3000/base/" },
      expected: {},
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const cfg = loadConfig(env(input)) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(expected)) assertEquals(cfg[k], v, k);
    });
  }
});

Deno.test("loadConfig() derives the metadata URL and paths from RESOURCE_URI (RFC 9728 §3.1)", async (t) => {
  const cases: { description: string; input: string; expected: { url: string; paths: string[] } }[] = [
    {
      description: "origin",
      input: "https://mcp.example.com",
      expected: {
        url: "https://mcp.example.com/.well-known/oauth-protected-resource",
        paths: ["/.well-known/oauth-protected-resource"],
      },
    },
    {
      description: "origin with the slash after the host",
      input: "https://mcp.example.com/",
      expected: {
        url: "https://mcp.example.com/.well-known/oauth-protected-resource",
        paths: ["/.well-known/oauth-protected-resource"],
      },
    },
    {
      description: "endpoint",
      input: "https://mcp.example.com/mcp",
      expected: {
        url: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        paths: ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"],
      },
    },
    {
      description: "nested endpoint with a port",
      input: "https://mcp.example.com:8443/api/v1/mcp",
      expected: {
        url: "https://mcp.example.com:8443/.well-known/oauth-protected-resource/api/v1/mcp",
        paths: ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/api/v1/mcp"],
      },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${input}`, () => {
      const cfg = loadConfig(env({ RESOURCE_URI: input }));
      assertEquals(cfg.resourceUri, input, "resource stays exactly RESOURCE_URI");
      assertEquals(cfg.resourceMetadataUrl, expected.url);
      assertEquals([...cfg.metadataPaths], expected.paths);
    });
  }
  // RFC 9728 §3.1 removes only a slash that directly follows the host; a path keeps its
  // own trailing slash. Clients that strip it (the TypeScript SDK) must still be served.
  await t.step("endpoint with a trailing slash: https://mcp.example.com/mcp/", () => {
    const cfg = loadConfig(env({ RESOURCE_URI: "https://mcp.example.com/mcp/" }));
    assertEquals(cfg.resourceUri, "https://mcp.example.com/mcp/");
    assertEquals(cfg.resourceMetadataUrl, "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/");
    assertArrayIncludes([...cfg.metadataPaths], [
      "/.well-known/oauth-protected-resource",
      "/.well-known/oauth-protected-resource/mcp/",
      "/.well-known/oauth-protected-resource/mcp",
    ]);
  });
});

Deno.test("loadConfig() rejects ALLOWED_ALGORITHMS outside the asymmetric allowlist", async (t) => {
  const cases: { description: string; input: string; neverAccepted: boolean }[] = [
    { description: "none", input: "none", neverAccepted: true },
    { description: "none among good ones", input: "RS256,none", neverAccepted: true },
    { description: "HS256", input: "HS256", neverAccepted: true },
    { description: "HS512 among good ones", input: "ES256,HS512", neverAccepted: true },
    { description: "unknown", input: "RS256,FOO256", neverAccepted: false },
    { description: "wrong case", input: "rs256", neverAccepted: false },
    { description: "only commas", input: ",,", neverAccepted: false },
  ];
  for (const { description, input, neverAccepted } of cases) {
    await t.step(description, () => {
      const e = problemsOf(env({ ALLOWED_ALGORITHMS: input }));
      assertEquals(e.problems.map((p) => [p.variable, p.value]), [["ALLOWED_ALGORITHMS", input]]);
      assertEquals(e.problems[0]!.expected.includes("never accepted"), neverAccepted);
      assertStringIncludes(e.message, `ALLOWED_ALGORITHMS is ${JSON.stringify(input)}`);
    });
  }
});

Deno.test("loadConfig() reports one problem per bad variable", async (t) => {
  const cases: { description: string; input: Record<string, string | undefined>; expected: string }[] = [
    { description: "UPSTREAM_URL missing", input: { UPSTREAM_URL: undefined }, expected: "UPSTREAM_URL" },
    { description: "UPSTREAM_URL empty", input: { UPSTREAM_URL: "" }, expected: "UPSTREAM_URL" },
    { description: "UPSTREAM_URL not http", input: { UPSTREAM_URL: "ftp://x.example.com" }, expected: "UPSTREAM_URL" },
    { description: "UPSTREAM_URL with query", input: { UPSTREAM_URL: `${UPSTREAM}/?a=1` }, expected: "UPSTREAM_URL" },
    { description: "RESOURCE_URI missing", input: { RESOURCE_URI: undefined }, expected: "RESOURCE_URI" },
    { description: "RESOURCE_URI relative", input: { RESOURCE_URI: "mcp.example.com/mcp" }, expected: "RESOURCE_URI" },
    { description: "RESOURCE_URI with query", input: { RESOURCE_URI: `${RESOURCE}?x=1` }, expected: "RESOURCE_URI" },
    { description: "RESOURCE_URI with fragment", input: { RESOURCE_URI: `${RESOURCE}#x` }, expected: "RESOURCE_URI" },
    {
      description: "AUTHORIZATION_SERVER missing",
      input: { AUTHORIZATION_SERVER: undefined },
      expected: "AUTHORIZATION_SERVER",
    },
    {
      description: "AUTHORIZATION_SERVER not a URL",
      input: { AUTHORIZATION_SERVER: "auth.example.com" },
      expected: "AUTHORIZATION_SERVER",
    },
    { description: "JWKS_URI not a URL", input: { JWKS_URI: "keys" }, expected: "JWKS_URI" },
    {
      description: "RESOURCE_DOCUMENTATION not a URL",
      input: { RESOURCE_DOCUMENTATION: "docs page" },
      expected: "RESOURCE_DOCUMENTATION",
    },
    { description: "AUTH_REALM with a quote", input: { AUTH_REALM: 'my"realm' }, expected: "AUTH_REALM" },
    { description: "CLOCK_SKEW unitless", input: { CLOCK_SKEW: "30" }, expected: "CLOCK_SKEW" },
    { description: "CLOCK_SKEW too large", input: { CLOCK_SKEW: "11m" }, expected: "CLOCK_SKEW" },
    {
      description: "JWKS_REFRESH_INTERVAL below 1s",
      input: { JWKS_REFRESH_INTERVAL: "10ms" },
      expected: "JWKS_REFRESH_INTERVAL",
    },
    { description: "UPSTREAM_TIMEOUT days", input: { UPSTREAM_TIMEOUT: "2d" }, expected: "UPSTREAM_TIMEOUT" },
    { description: "MAX_REQUEST_BODY with unit", input: { MAX_REQUEST_BODY: "10MB" }, expected: "MAX_REQUEST_BODY" },
    { description: "MAX_HEADER_BYTES negative", input: { MAX_HEADER_BYTES: "-1" }, expected: "MAX_HEADER_BYTES" },
    { description: "RATE_LIMIT_RPS word", input: { RATE_LIMIT_RPS: "fast" }, expected: "RATE_LIMIT_RPS" },
    { description: "RATE_LIMIT_BURST fraction", input: { RATE_LIMIT_BURST: "1.5" }, expected: "RATE_LIMIT_BURST" },
    { description: "LOG_LEVEL unknown", input: { LOG_LEVEL: "verbose" }, expected: "LOG_LEVEL" },
    { description: "IDENTITY_HEADERS yes", input: { IDENTITY_HEADERS: "yes" }, expected: "IDENTITY_HEADERS" },
    { description: "FORWARD_ACCESS_TOKEN on", input: { FORWARD_ACCESS_TOKEN: "on" }, expected: "FORWARD_ACCESS_TOKEN" },
    {
      description: "ALLOWED_ORIGINS with a path",
      input: { ALLOWED_ORIGINS: "https://app.example.com/app" },
      expected: "ALLOWED_ORIGINS",
    },
    { description: "ALLOWED_ORIGINS null", input: { ALLOWED_ORIGINS: "null" }, expected: "ALLOWED_ORIGINS" },
    {
      description: "TRUSTED_PROXIES junk",
      input: { TRUSTED_PROXIES: "10.0.0.0/8,proxy" },
      expected: "TRUSTED_PROXIES",
    },
    {
      description: "TRUSTED_PROXIES bad prefix",
      input: { TRUSTED_PROXIES: "10.0.0.0/33" },
      expected: "TRUSTED_PROXIES",
    },
    { description: "REQUIRED_SCOPES with a quote", input: { REQUIRED_SCOPES: 'a"b' }, expected: "REQUIRED_SCOPES" },
    {
      description: "SCOPES_SUPPORTED with a backslash",
      input: { SCOPES_SUPPORTED: "a\\b" },
      expected: "SCOPES_SUPPORTED",
    },
    { description: "CLAIM_HEADERS without =", input: { CLAIM_HEADERS: "email" }, expected: "CLAIM_HEADERS" },
    {
      description: "CLAIM_HEADERS onto a reserved identity header",
      input: { CLAIM_HEADERS: "email=X-Auth-Subject" },
      expected: "CLAIM_HEADERS",
    },
    {
      description: "OTEL_TRACE_SAMPLE_RATE above 1",
      input: { OTEL_TRACE_SAMPLE_RATE: "2" },
      expected: "OTEL_TRACE_SAMPLE_RATE",
    },
    {
      description: "OTEL_EXPORTER_OTLP_ENDPOINT not a URL",
      input: { OTEL_EXPORTER_OTLP_ENDPOINT: "collector" },
      expected: "OTEL_EXPORTER_OTLP_ENDPOINT",
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const e = problemsOf(env(input));
      assertEquals(e.problems.map((p) => p.variable), [expected]);
      const raw = Object.hasOwn(input, expected) ? input[expected] : undefined;
      if (raw) {
        assertEquals(e.problems[0]!.value, raw);
        assertStringIncludes(e.message, `${expected} is ${JSON.stringify(raw)}`);
      } else {
        assertStringIncludes(e.message, `${expected} is not set`);
      }
      assert(e.problems[0]!.expected.length > 0, "says what was expected");
    });
  }
});

Deno.test("loadConfig() reports all problems together in one ConfigError", () => {
  const bad = {
    LISTEN_ADDR: "8080",
    UPSTREAM_URL: "ftp://upstream.example.com",
    RESOURCE_URI: undefined,
    AUTHORIZATION_SERVER: "not a url",
    ALLOWED_ALGORITHMS: "none,HS256",
    CLOCK_SKEW: "soon",
    MAX_REQUEST_BODY: "10MB",
    LOG_LEVEL: "loud",
    METRICS_ADDR: "x",
  };
  const e = problemsOf(env(bad));
  assertEquals(e.code, "invalid_config");
  assertEquals(e.name, "ConfigError");
  assertEquals(
    e.problems.map((p) => [p.variable, p.value]).sort(),
    [
      ["ALLOWED_ALGORITHMS", "none,HS256"],
      ["AUTHORIZATION_SERVER", "not a url"],
      ["CLOCK_SKEW", "soon"],
      ["LISTEN_ADDR", "8080"],
      ["LOG_LEVEL", "loud"],
      ["MAX_REQUEST_BODY", "10MB"],
      ["METRICS_ADDR", "x"],
      ["RESOURCE_URI", undefined],
      ["UPSTREAM_URL", "ftp://upstream.example.com"],
    ],
  );
  assert(e.message.startsWith("Invalid configuration (9 problems):\n"), e.message);
  for (const [name, value] of Object.entries(bad)) {
    assertStringIncludes(e.message, value === undefined ? `${name} is not set` : `${name} is ${JSON.stringify(value)}`);
  }
  assertEquals(e.message.split("\n").length, 10, "one line per problem");
});

Deno.test("loadConfig() warns about risky but valid settings", async (t) => {
  const cases: { description: string; input: Record<string, string>; expected: string[] }[] = [
    {
      description: "http RESOURCE_URI on a public host",
      input: { RESOURCE_URI: "http://mcp.example.com/mcp" },
      expected: ['RESOURCE_URI "http://mcp.example.com/mcp" is http'],
    },
    { description: "http localhost", input: { RESOURCE_URI: "http://localhost:8080/mcp" }, expected: [] },
    { description: "http 127.0.0.1", input: { RESOURCE_URI: "http://127.0.0.1:8080/mcp" }, expected: [] },
    { description: "http [::1]", input: { RESOURCE_URI: "http://[::1]:8080/mcp" }, expected: [] },
    {
      description: "FORWARD_ACCESS_TOKEN",
      input: { FORWARD_ACCESS_TOKEN: "true" },
      expected: ["FORWARD_ACCESS_TOKEN is on"],
    },
    {
      description: "EXPECTED_AUDIENCE without RESOURCE_URI",
      input: { EXPECTED_AUDIENCE: "api://mcp" },
      expected: ["EXPECTED_AUDIENCE does not include RESOURCE_URI"],
    },
    {
      description: "EXPECTED_AUDIENCE including RESOURCE_URI",
      input: { EXPECTED_AUDIENCE: `api://mcp,${RESOURCE}` },
      expected: [],
    },
    {
      description: "SCOPES_SUPPORTED missing a required scope",
      input: { REQUIRED_SCOPES: "a,b", SCOPES_SUPPORTED: "a" },
      expected: ["SCOPES_SUPPORTED does not list required scope(s) b"],
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const { warnings } = loadConfig(env(input));
      assertEquals(warnings.length, expected.length, JSON.stringify(warnings));
      expected.forEach((prefix, i) => assert(warnings[i]!.startsWith(prefix), warnings[i]));
    });
  }
});

Deno.test("loadConfig() reads AUTH_REALM and RESOURCE_DOCUMENTATION as the Go gateway does", async (t) => {
  const cases: { description: string; input: Record<string, string>; expected: [string, string | undefined] }[] = [
    { description: "unset: RESOURCE_URI's host", input: {}, expected: ["mcp.example.com", undefined] },
    {
      description: "RESOURCE_URI with a port keeps it",
      input: { RESOURCE_URI: "https://mcp.example.com:8443/mcp" },
      expected: ["mcp.example.com:8443", undefined],
    },
    { description: "empty: no realm", input: { AUTH_REALM: "" }, expected: ["", undefined] },
    { description: "set", input: { AUTH_REALM: "corp tools" }, expected: ["corp tools", undefined] },
    {
      description: "documentation URL",
      input: { RESOURCE_DOCUMENTATION: "https://docs.example.com/mcp" },
      expected: ["mcp.example.com", "https://docs.example.com/mcp"],
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const cfg = loadConfig(env(input));
      assertEquals([cfg.authRealm, cfg.resourceDocumentation], expected);
    });
  }
});
