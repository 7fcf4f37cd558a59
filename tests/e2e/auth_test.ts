// Spec §2–§3 and §4 (path tricks): what a token must be to get through, and what every
// rejection looks like. Each rejected request is also checked upstream (nothing arrived)
// and in the access log (a reason code).
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { DEFAULT_AUDIENCE, type Issuer, startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, RESOURCE_URI, startGateway } from "../_helpers/gateway.ts";
import {
  assertAuthError,
  assertUpstreamSawNothing,
  JSON_RPC_HEADERS,
  onlyUpstreamRequest,
  rpc,
  send,
} from "../_helpers/expect.ts";
import { rawRequest, uniqueUserAgent } from "../_helpers/http.ts";

const REQUIRED = "mcp:read mcp:write";
const now = () => Math.floor(Date.now() / 1000);

interface BadCase {
  name: string;
  token: (iss: Issuer) => Promise<string> | string;
  /** Expected access-log reason; a list when the spec leaves the code open. */
  reason: string | string[];
  /** Substring expected somewhere in the log line (a near-miss hint). */
  hint?: string;
}

const BAD_TOKENS: BadCase[] = [
  { name: "not a JWT at all", token: () => `opaque-${crypto.randomUUID()}`, reason: "malformed" },
  { name: "two segments", token: () => `eyJhbGciOiJSUzI1NiJ9.${btoa(crypto.randomUUID())}`, reason: "malformed" },
  {
    name: "segments that are not base64url JSON",
    token: () => `eyJhbGciOiJSUzI1NiJ9.!!!${crypto.randomUUID()}.???${crypto.randomUUID()}`,
    reason: "malformed",
  },
  // ~27 KB: under MAX_HEADER_BYTES (64 KiB), so it must reach the verifier and get a 401.
  {
    name: "20 KB claim under a forged signature",
    token: (i) => i.bad.oversized(),
    reason: ["malformed", "bad_signature"],
  },
  { name: "alg none", token: (i) => i.bad.algNone(), reason: "alg_not_allowed" },
  {
    name: "HS256 keyed with the RSA public key PEM",
    token: (i) => i.bad.hs256WithPublicKey("pem"),
    reason: "alg_not_allowed",
  },
  {
    name: "HS256 keyed with the RSA public JWK",
    token: (i) => i.bad.hs256WithPublicKey("jwk"),
    reason: "alg_not_allowed",
  },
  { name: "jku header pointing at an attacker JWKS", token: (i) => i.bad.jku(), reason: "unknown_kid" },
  { name: "x5u header pointing at an attacker certificate", token: (i) => i.bad.x5u(), reason: "unknown_kid" },
  { name: "embedded jwk header with the attacker's key", token: (i) => i.bad.embeddedJwk(), reason: "unknown_kid" },
  { name: "forged signature under the issuer's kid", token: (i) => i.bad.forgedSignature(), reason: "bad_signature" },
  {
    name: "unrecognised crit header",
    token: (i) => i.bad.crit(),
    reason: ["malformed", "bad_header", "crit_not_supported", "unsupported_crit"],
  },
  { name: "expired an hour ago", token: (i) => i.bad.expired(), reason: "expired" },
  {
    name: "expired 60 s ago (beyond 30 s skew)",
    token: (i) => i.sign({ exp: now() - 60, iat: now() - 400 }),
    reason: "expired",
  },
  { name: "nbf an hour ahead", token: (i) => i.bad.notYetValid(), reason: "not_yet_valid" },
  { name: "no exp claim", token: (i) => i.bad.missingExp(), reason: ["missing_exp", "malformed", "missing_claim"] },
  { name: "wrong issuer", token: (i) => i.bad.wrongIssuer(), reason: "bad_issuer" },
  { name: "issuer with a trailing slash", token: (i) => i.sign({ iss: `${i.issuer}/` }), reason: "bad_issuer" },
  { name: "wrong audience", token: (i) => i.bad.wrongAudience(), reason: "bad_audience" },
  {
    name: "audience with a trailing slash",
    token: (i) => i.bad.audienceTrailingSlash(),
    reason: "bad_audience",
    hint: "trailing slash",
  },
  { name: "no audience", token: (i) => i.bad.missingAudience(), reason: "bad_audience" },
  { name: "no sub", token: (i) => i.bad.missingSub(), reason: "missing_sub" },
  { name: 'typ "JOSE+foo"', token: (i) => i.bad.badTyp(), reason: "bad_typ" },
];

interface GoodCase {
  name: string;
  token: (iss: Issuer) => Promise<string>;
  scheme?: string;
}

const GOOD_TOKENS: GoodCase[] = [
  { name: "RS256 access token", token: (i) => i.sign() },
  { name: "ES256 access token", token: (i) => i.sign({}, { alg: "ES256" }) },
  { name: 'typ "JWT"', token: (i) => i.sign({}, { typ: "JWT" }) },
  { name: 'typ "application/at+jwt"', token: (i) => i.sign({}, { typ: "application/at+jwt" }) },
  { name: "no typ", token: (i) => i.sign({}, { typ: null }) },
  { name: "scp array instead of scope", token: (i) => i.sign({ scope: undefined, scp: ["mcp:read", "mcp:write"] }) },
  { name: "scp string instead of scope", token: (i) => i.sign({ scope: undefined, scp: "mcp:read mcp:write" }) },
  { name: "scope superset", token: (i) => i.sign({ scope: "openid mcp:write mcp:read admin" }) },
  {
    name: "aud array containing the resource",
    token: (i) => i.sign({ aud: ["https://other.example.test", RESOURCE_URI] }),
  },
  { name: "expired 10 s ago (within 30 s skew)", token: (i) => i.sign({ exp: now() - 10, iat: now() - 300 }) },
  { name: "nbf 10 s ahead (within 30 s skew)", token: (i) => i.sign({ nbf: now() + 10 }) },
  { name: "lower-case auth scheme", token: (i) => i.sign(), scheme: "bearer" },
];

for (const target of gatewayTargets()) {
  Deno.test(`gateway verifies tokens and rejects everything else [${target.name}]`, async (t) => {
    await using issuer = await startIssuer({ audience: DEFAULT_AUDIENCE });
    await using upstream = await startUpstream();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, { REQUIRED_SCOPES: "mcp:read,mcp:write", CLOCK_SKEW: "30s" }),
    );

    for (const c of GOOD_TOKENS) {
      await t.step(`accepts: ${c.name}`, async () => {
        upstream.reset();
        const ua = uniqueUserAgent();
        const res = await send(`${gw.url}/mcp`, {
          method: "POST",
          headers: { ...JSON_RPC_HEADERS, authorization: `${c.scheme ?? "Bearer"} ${await c.token(issuer)}` },
          userAgent: ua,
          body: rpc(1),
        });
        assertEquals(res.status, 200, res.text);
        assertEquals(JSON.parse(res.text), { jsonrpc: "2.0", id: 1, result: {} });
        const seen = onlyUpstreamRequest(upstream);
        assertEquals(seen.headers["x-auth-subject"], "user-123");
        assertEquals(seen.headers["authorization"], undefined);
        const log = await gw.accessLog(ua);
        assertEquals([log.status, log.sub], [200, "user-123"]);
      });
    }

    for (const c of BAD_TOKENS) {
      await t.step(`rejects with 401 invalid_token: ${c.name}`, async () => {
        upstream.reset();
        const ua = uniqueUserAgent();
        const token = await c.token(issuer);
        if (!issuer.issued.includes(token)) issuer.issued.push(token); // checked against the logs at the end
        const res = await send(`${gw.url}/mcp`, {
          method: "POST",
          headers: JSON_RPC_HEADERS,
          token,
          userAgent: ua,
          body: rpc(1),
        });
        assertAuthError(res, { status: 401, error: "invalid_token" });
        const sig = token.split(".")[2] || token;
        assert(!res.text.includes(sig) && !res.headers.get("www-authenticate")!.includes(sig), "token echoed back");
        assertUpstreamSawNothing(upstream, c.name);
        const log = await gw.accessLog(ua);
        assertEquals(log.status, 401);
        const reasons = Array.isArray(c.reason) ? c.reason : [c.reason];
        assert(reasons.includes(log.reason as string), `reason ${JSON.stringify(log.reason)}, expected ${reasons}`);
        if (c.hint) assertStringIncludes(JSON.stringify(log), c.hint);
      });
    }

    await t.step("jku, x5u and embedded jwk headers were never fetched", () => {
      assertEquals(issuer.attackerHits, 0);
    });

    for (
      const [name, scope] of [
        ["one of two required scopes", "mcp:read"],
        ["no scope at all", undefined],
        ["look-alike scopes", "mcp:readx mcp:write"],
        ["scopes in the wrong case", "MCP:READ mcp:write"],
      ] as const
    ) {
      await t.step(`answers 403 insufficient_scope: ${name}`, async () => {
        upstream.reset();
        const ua = uniqueUserAgent();
        const res = await send(`${gw.url}/mcp`, {
          method: "POST",
          headers: JSON_RPC_HEADERS,
          token: await issuer.sign({ scope }),
          userAgent: ua,
          body: rpc(1),
        });
        assertAuthError(res, { status: 403, error: "insufficient_scope", scope: REQUIRED });
        assertUpstreamSawNothing(upstream, name);
        const log = await gw.accessLog(ua);
        assertEquals([log.status, log.reason], [403, "insufficient_scope"]);
      });
    }

    await t.step("answers 400 invalid_request to a token in the query string", async () => {
      upstream.reset();
      const ua = uniqueUserAgent();
      const res = await send(`${gw.url}/mcp?access_token=${await issuer.sign()}`, { userAgent: ua });
      assertAuthError(res, { status: 400, error: "invalid_request" });
      assertUpstreamSawNothing(upstream, "query token");
      assertEquals((await gw.accessLog(ua)).reason, "token_in_query");
    });

    await t.step("answers 400 invalid_request to a header token plus a query token", async () => {
      upstream.reset();
      const ua = uniqueUserAgent();
      const token = await issuer.sign();
      const res = await send(`${gw.url}/mcp?foo=1&access_token=${token}`, { token, userAgent: ua });
      assertAuthError(res, { status: 400, error: "invalid_request" });
      assertUpstreamSawNothing(upstream, "header + query token");
      const reason = (await gw.accessLog(ua)).reason;
      assert(reason === "token_in_query" || reason === "multiple_credentials", `reason ${reason}`);
    });

    await t.step("answers 400 invalid_request to two Authorization headers", async () => {
      upstream.reset();
      const ua = uniqueUserAgent();
      const res = await rawRequest(gw.port, {
        target: "/mcp",
        headers: [
          ["Authorization", `Bearer ${await issuer.sign()}`],
          ["Authorization", `Bearer ${await issuer.sign()}`],
          ["User-Agent", ua],
        ],
      });
      assertAuthError(res, { status: 400, error: "invalid_request" });
      assertUpstreamSawNothing(upstream, "two Authorization headers");
      assertEquals((await gw.accessLog(ua)).reason, "multiple_credentials");
    });

    await gw.stopAndCheck(issuer.issued);
  });

  // fetch() normalises paths, so these go over a raw TCP connection, byte for byte.
  Deno.test(`gateway lets no path trick reach the upstream without a token [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream));
    const tricks: [string, string][] = [
      ["GET", "/.well-known/../mcp"],
      ["GET", "/.well-known/oauth-protected-resource/../../mcp"],
      ["POST", "/.well-known/oauth-protected-resource/../../mcp"],
      ["GET", "/.well-known/oauth-protected-resource/mcp/../../../mcp"],
      ["GET", "/%2e%2e/mcp"],
      ["GET", "/.well-known/%2e%2e/mcp"],
      ["GET", "/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/mcp"],
      ["GET", "//mcp"],
      ["GET", "/./mcp"],
      ["GET", "/mcp%2F.."],
      ["GET", "/.well-known/oauth-protected-resource%2F..%2Fmcp"],
      ["GET", "/.well-known/oauth-protected-resource%2f..%2f..%2fmcp"],
      ["GET", "/.well-known%2Foauth-protected-resource"],
      ["GET", "/healthz/../mcp"],
      ["GET", "/readyz/..%2Fmcp"],
      ["GET", "/healthz%2F..%2Fmcp"],
      ["GET", "/.well-known/oauth-protected-resource/..;/mcp"],
      ["GET", "/.well-known/oauth-protected-resource\\..\\..\\mcp"],
      ["GET", "/mcp?x=/.well-known/oauth-protected-resource"],
      ["GET", "/mcp#/.well-known/oauth-protected-resource"],
      ["OPTIONS", "/mcp"],
      ["DELETE", "/.well-known/oauth-protected-resource/../../mcp"],
    ];
    for (const [method, path] of tricks) {
      await t.step(`${method} ${path}`, async () => {
        upstream.reset();
        const res = await rawRequest(gw.port, {
          method,
          target: path,
          ...(method === "POST" ? { body: rpc(1), headers: [["Content-Type", "application/json"]] } : {}),
        });
        assertUpstreamSawNothing(upstream, `${method} ${path}`);
        assertEquals(res.headers.get("x-upstream"), null, "response did not come from the upstream");
        assert(res.status < 500, `status ${res.status}`);
      });
    }
    await t.step("absolute-form request target", async () => {
      upstream.reset();
      const res = await rawRequest(gw.port, {
        target: `http://127.0.0.1:${gw.port}/.well-known/oauth-protected-resource/../../mcp`,
      });
      assertUpstreamSawNothing(upstream, "absolute-form");
      assert(res.status < 500, `status ${res.status}`);
    });
    await gw.stopAndCheck(issuer.issued);
  });
}
