// Fuzz: request paths and query strings. In-process (the URL already parsed and
// normalised by the Request), and through the real gateway with raw request targets sent
// byte for byte over TCP (dot segments, encoded dots and slashes, double slashes,
// absolute-form, junk), where the runtime's own parser is part of what is tested.
//
// Invariants: below 500; without a valid token the upstream is never reached; the public
// routes (metadata, /healthz, /readyz) are never forwarded; with a token, an access_token
// query parameter in any encoding gets 400, and what reaches the upstream has none; the
// path the upstream sees is the path the gateway routed on; no credential is logged.
import fc from "fast-check";
import { assert, assertEquals, assertLess } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { rawRequest } from "../_helpers/http.ts";
import { assertNoSecretsLogged, FUZZ_RUNS, FUZZ_SEED, fuzzGateway, ORIGIN, params, UPSTREAM } from "./_harness.ts";

const PUBLIC = new Set([
  "/.well-known/oauth-protected-resource",
  "/.well-known/oauth-protected-resource/mcp",
  "/healthz",
  "/readyz",
]);

const segment = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom("mcp", ".well-known", "oauth-protected-resource", "healthz", "readyz", "sse"),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "..",
      ".",
      "%2e%2e",
      "%2E%2e",
      ".%2e",
      "%2e",
      "%2f",
      "%2F",
      "%5c",
      "\\",
      "",
      ";",
      ";x=1",
      "%00",
      "%",
      "%zz",
      "%25",
      "~",
      "@",
      ":",
      "%3f",
      "%23",
      "..;",
      "%c0%ae",
      "％２ｅ",
      "oauth-authorization-server",
      "openid-configuration",
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 8 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@-]{1,10}$/) },
);
const path = fc.array(segment, { minLength: 0, maxLength: 6 }).map((s) => "/" + s.join("/"));
const paramName = fc.oneof(
  fc.constantFrom(
    "access_token",
    "access%5Ftoken",
    "%61ccess_token",
    "access_token%00",
    "ACCESS_TOKEN",
    "access_token[]",
    "access+token",
    "sessionId",
    "a",
    "",
  ),
  fc.stringMatching(/^[A-Za-z0-9_%+-]{1,10}$/),
);
const query = fc.option(
  fc.array(fc.tuple(paramName, fc.string({ maxLength: 12 }).map(encodeURIComponent), fc.boolean()), {
    minLength: 1,
    maxLength: 4,
  }).map((pairs) => "?" + pairs.map(([k, v, eq]) => (eq ? `${k}=${v}` : k)).join("&")),
  { nil: "" },
);

Deno.test(`fuzz: paths and query strings, in-process (seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs)`, async () => {
  const h = await fuzzGateway();
  const valid = await h.validToken();
  let forwarded = 0;
  await fc.assert(
    fc.asyncProperty(
      path,
      query,
      fc.constantFrom("none", "valid", "invalid"),
      fc.constantFrom("GET", "POST", "DELETE", "HEAD", "PUT", "PATCH"),
      async (p, q, auth, method) => {
        let url: URL;
        try {
          url = new URL(`${ORIGIN}${p}${q}`);
        } catch {
          fc.pre(false);
          return;
        }
        const headers: [string, string][] = [];
        if (auth === "valid") headers.push(["authorization", `Bearer ${valid}`]);
        if (auth === "invalid") headers.push(["authorization", `Bearer ${valid.slice(0, -4)}AAAA`]);
        const r = await h.send({ method, url: url.href, headers });
        assertLess(r.status, 500, `${method} ${url.pathname}${url.search}: ${r.text}`);
        if (r.upstream.length > 0) {
          forwarded++;
          assertEquals(auth, "valid", `reached the upstream without a valid token: ${url.pathname}${url.search}`);
          assert(!PUBLIC.has(url.pathname), `a public route was forwarded: ${url.pathname}`);
          const sentTo = new URL(r.upstream[0]!.url);
          assertEquals(sentTo.origin + sentTo.pathname, UPSTREAM + url.pathname, "forwarded path");
          assert(!new URLSearchParams(sentTo.search).has("access_token"), `access_token forwarded: ${sentTo}`);
        }
        if (auth === "valid" && new URLSearchParams(url.search).has("access_token") && !PUBLIC.has(url.pathname)) {
          assert(r.status === 400 || r.status === 404 || r.status === 204, `access_token in the query: ${r.status}`);
          assertEquals(r.upstream.length, 0);
        }
        assertNoSecretsLogged(r.logs, [valid.split(".")[2]!], "path");
      },
    ),
    params(),
  );
  console.log(`forwarded ${forwarded} of ${FUZZ_RUNS}`);
  assert(forwarded >= FUZZ_RUNS * 0.1, "not vacuous: at least 10% of the cases reached the upstream");
  h.gw.close();
});

// Raw request targets through the real process: fewer cases (each is a TCP exchange).
const RAW_RUNS = Math.max(50, Math.floor(FUZZ_RUNS / 4));
const rawTarget = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(path, query).map(([p, q]) => p + q) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "/.well-known/../mcp",
      "/.well-known/oauth-protected-resource/../../mcp",
      "/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/mcp",
      "//mcp",
      "///mcp",
      "/healthz/../mcp",
      "/readyz/..%2fmcp",
      "/mcp%2f..%2f..%2fhealthz",
      "http://127.0.0.1/mcp",
      "http://evil.test/mcp",
      "*",
      "mcp",
      "/mcp#frag",
      "/mcp?access_token=x",
      "/%2e%2e/%2e%2e/etc/passwd",
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary-ascii", maxLength: 30 }).map((s) => "/" + s) },
);

for (const target of gatewayTargets()) {
  Deno.test(`fuzz: raw request targets through the gateway process [${target.name}] (seed ${FUZZ_SEED}, ${RAW_RUNS} runs)`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream));
    const token = await issuer.sign();
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        rawTarget,
        fc.constantFrom("GET", "POST", "OPTIONS", "DELETE"),
        fc.boolean(),
        async (t, m, withToken) => {
          // Bytes a request line cannot carry are the runtime's business, not the gateway's.
          // deno-lint-ignore no-control-regex
          fc.pre(!/[\s\x00-\x1f\x7f]/.test(t) && t.length > 0);
          upstream.reset();
          const headers: [string, string][] = withToken ? [["Authorization", `Bearer ${token}`]] : [];
          const res = await rawRequest(gw.port, {
            method: m,
            target: t,
            headers,
            ...(m === "POST" ? { body: "{}" } : {}),
          });
          assertLess(res.status, 500, `${m} ${t}: ${res.text.slice(0, 200)}`);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (!withToken) {
            assertEquals(upstream.requests.map((r) => r.path), [], `${m} ${t} reached the upstream without a token`);
          }
          for (const r of upstream.requests) {
            assert(
              !new URLSearchParams(r.path.split("?")[1] ?? "").has("access_token"),
              `access_token forwarded: ${r.path}`,
            );
            assert(!PUBLIC.has(r.path.split("?")[0]!), `a public route was forwarded: ${r.path}`);
          }
        },
      ),
      params(RAW_RUNS),
    );
    console.log(`statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
    assert((statuses.get(200) ?? 0) > 0 && (statuses.get(401) ?? 0) > 0, "not vacuous: some 200s and some 401s");
    await gw.stopAndCheck(issuer.issued);
  });
}
