// Spec §5 Browsers: preflights without auth, CORS headers on every answer, and the
// Origin check (DNS-rebinding protection) before authentication.
import { assert, assertEquals } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { SESSION_ID, startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { assertUpstreamSawNothing, JSON_RPC_HEADERS, type Reply, rpc, send } from "../_helpers/expect.ts";
import { uniqueUserAgent } from "../_helpers/http.ts";

const INSPECTOR = "http://localhost:6274";
const REQUESTED_HEADERS = [
  "authorization",
  "content-type",
  "accept",
  "mcp-protocol-version",
  "mcp-session-id",
  "mcp-method",
  "mcp-name",
  "mcp-param-foo",
  "last-event-id",
];

function list(h: string | null): string[] {
  return (h ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
}

function assertVaryOrigin(res: Reply) {
  assert(list(res.headers.get("vary")).includes("origin"), `Vary: ${res.headers.get("vary")}`);
}

function assertExposes(res: Reply) {
  const exposed = list(res.headers.get("access-control-expose-headers"));
  for (const h of ["www-authenticate", "mcp-session-id", "mcp-protocol-version"]) {
    assert(exposed.includes(h), `Access-Control-Expose-Headers lacks ${h}: ${exposed}`);
  }
}

async function preflight(url: string, origin: string): Promise<Reply> {
  return await send(url, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": REQUESTED_HEADERS.join(", "),
    },
  });
}

function assertPreflightAllows(res: Reply, origin: string) {
  assertEquals(res.status, 204);
  assertEquals(res.headers.get("access-control-allow-origin"), origin);
  const methods = list(res.headers.get("access-control-allow-methods"));
  for (const m of ["get", "post", "delete"]) assert(methods.includes(m), `allow-methods lacks ${m}: ${methods}`);
  const allowed = list(res.headers.get("access-control-allow-headers"));
  // "*" never covers Authorization (Fetch standard), so it must be listed by name.
  for (const h of REQUESTED_HEADERS) {
    assert(
      allowed.includes(h) || (h !== "authorization" && allowed.includes("*")),
      `allow-headers lacks ${h}: ${allowed}`,
    );
  }
  assertVaryOrigin(res);
}

for (const target of gatewayTargets()) {
  Deno.test(`gateway with ALLOWED_ORIGINS unset allows loopback and its own origin only [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream));
    const token = await issuer.sign();

    for (const path of ["/mcp", "/some/other/path"]) {
      await t.step(`OPTIONS ${path} preflight gets 204 without a token`, async () => {
        upstream.reset();
        assertPreflightAllows(await preflight(`${gw.url}${path}`, INSPECTOR), INSPECTOR);
        assertUpstreamSawNothing(upstream, "preflight");
      });
    }

    await t.step("a 401 carries CORS headers so the browser can read WWW-Authenticate", async () => {
      const res = await send(`${gw.url}/mcp`, { headers: { origin: INSPECTOR } });
      assertEquals(res.status, 401);
      assertEquals(res.headers.get("access-control-allow-origin"), INSPECTOR);
      assertExposes(res);
      assertVaryOrigin(res);
    });

    await t.step("a 403 insufficient_scope carries CORS headers too", async () => {
      await using gw2 = await startGateway(target, gatewayEnv(issuer, upstream, { REQUIRED_SCOPES: "mcp:admin" }));
      const res = await send(`${gw2.url}/mcp`, { token, headers: { origin: INSPECTOR } });
      assertEquals(res.status, 403);
      assertEquals(res.headers.get("access-control-allow-origin"), INSPECTOR);
      assertExposes(res);
      await gw2.stopAndCheck(issuer.issued);
    });

    await t.step("a proxied 200 carries CORS headers and exposes Mcp-Session-Id", async () => {
      const res = await send(`${gw.url}/mcp`, {
        method: "POST",
        token,
        headers: { ...JSON_RPC_HEADERS, origin: INSPECTOR },
        body: rpc(1),
      });
      assertEquals(res.status, 200);
      assertEquals(res.headers.get("access-control-allow-origin"), INSPECTOR);
      assertEquals(res.headers.get("mcp-session-id"), SESSION_ID);
      assertExposes(res);
      assertVaryOrigin(res);
    });

    const allowed = [
      null,
      "http://localhost",
      "http://localhost:6274",
      "http://127.0.0.1:9999",
      "http://[::1]:8080",
      "https://mcp.example.test",
    ];
    for (const origin of allowed) {
      await t.step(`Origin ${origin ?? "(none)"} with a valid token gets through`, async () => {
        upstream.reset();
        const res = await send(`${gw.url}/mcp`, {
          method: "POST",
          token,
          headers: { ...JSON_RPC_HEADERS, ...(origin ? { origin } : {}) },
          body: rpc(2),
        });
        assertEquals(res.status, 200, res.text);
        assertEquals(upstream.requests.length, 1);
      });
    }

    const refused = [
      "https://evil.example",
      "http://localhost.evil.example",
      "http://127.0.0.1.evil.example",
      "https://mcp.example.test.evil.example",
      "http://mcp.example.test",
      "null",
    ];
    for (const origin of refused) {
      await t.step(`Origin ${origin} gets 403 before authentication, with or without a token`, async () => {
        upstream.reset();
        for (const withToken of [true, false]) {
          const ua = uniqueUserAgent();
          const res = await send(`${gw.url}/mcp`, {
            method: "POST",
            ...(withToken ? { token } : {}),
            userAgent: ua,
            headers: { ...JSON_RPC_HEADERS, origin },
            body: rpc(3),
          });
          assertEquals(res.status, 403, `with token: ${withToken}`);
          assert(res.headers.get("access-control-allow-origin") !== origin, "refused origin not echoed");
          const log = await gw.accessLog(ua);
          assertEquals([log.status, log.reason], [403, "origin_not_allowed"]);
        }
        assertUpstreamSawNothing(upstream, origin);
      });
    }

    await t.step("a preflight from a refused origin grants nothing", async () => {
      upstream.reset();
      const res = await preflight(`${gw.url}/mcp`, "https://evil.example");
      // 204 without CORS grants or 403 both keep the browser out; the spec leaves which.
      assert(res.status === 204 || res.status === 403, `status ${res.status}`);
      assertEquals(res.headers.get("access-control-allow-origin"), null);
      assertUpstreamSawNothing(upstream, "refused preflight");
    });

    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway with ALLOWED_ORIGINS set allows only the listed origins [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const app = "https://app.example.test";
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { ALLOWED_ORIGINS: app }));
    const token = await issuer.sign();

    await t.step("the listed origin gets through with CORS headers", async () => {
      const res = await send(`${gw.url}/mcp`, {
        method: "POST",
        token,
        headers: { ...JSON_RPC_HEADERS, origin: app },
        body: rpc(1),
      });
      assertEquals(res.status, 200);
      assertEquals(res.headers.get("access-control-allow-origin"), app);
      assertExposes(res);
    });

    await t.step("its preflight is allowed", async () => {
      assertPreflightAllows(await preflight(`${gw.url}/mcp`, app), app);
    });

    for (const origin of [INSPECTOR, "https://mcp.example.test", "https://evil.example"]) {
      await t.step(`Origin ${origin} is refused with 403`, async () => {
        upstream.reset();
        const res = await send(`${gw.url}/mcp`, {
          method: "POST",
          token,
          headers: { ...JSON_RPC_HEADERS, origin },
          body: rpc(1),
        });
        assertEquals(res.status, 403);
        assertUpstreamSawNothing(upstream, origin);
      });
    }

    await t.step("no Origin (a server-side client) is unaffected", async () => {
      const res = await send(`${gw.url}/mcp`, { method: "POST", token, headers: JSON_RPC_HEADERS, body: rpc(1) });
      assertEquals(res.status, 200);
    });

    await gw.stopAndCheck(issuer.issued);
  });
}
