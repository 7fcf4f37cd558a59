// Spec §2 Discovery and §6 health: metadata documents, the token-less 401 challenge.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, RESOURCE_METADATA_URL, RESOURCE_URI, startGateway } from "../_helpers/gateway.ts";
import { assertAuthError, assertSecurityHeaders, assertUpstreamSawNothing, send } from "../_helpers/expect.ts";
import { rawRequest, uniqueUserAgent } from "../_helpers/http.ts";

const PLAIN_CHALLENGE =
  `Bearer realm="mcp.example.test", resource_metadata="${RESOURCE_METADATA_URL}", scope="mcp:read mcp:write"`;
const METADATA_PATHS = ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"];

for (const target of gatewayTargets()) {
  Deno.test(`gateway serves RFC 9728 metadata and a followable 401 [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream));
    const expected = {
      resource: RESOURCE_URI,
      authorization_servers: [issuer.issuer],
      scopes_supported: ["mcp:read", "mcp:write"],
      bearer_methods_supported: ["header"],
      resource_name: "mcp-gate",
    };

    for (const path of METADATA_PATHS) {
      await t.step(`GET ${path} returns the exact document, cacheable, CORS-readable by any origin`, async () => {
        const res = await send(`${gw.url}${path}`, {
          headers: { origin: "https://claude.ai", "mcp-protocol-version": "2025-11-25" },
        });
        assertEquals(res.status, 200);
        assertMatch(res.headers.get("content-type") ?? "", /^application\/json\b/);
        assertEquals(res.headers.get("cache-control"), "public, max-age=3600");
        assertEquals(JSON.parse(res.text), expected);
        const acao = res.headers.get("access-control-allow-origin");
        assert(acao === "*" || acao === "https://claude.ai", `Access-Control-Allow-Origin: ${acao}`);
        assertSecurityHeaders(res.headers);
      });

      await t.step(`HEAD ${path} returns 200 with the headers and no body`, async () => {
        const res = await rawRequest(gw.port, { method: "HEAD", target: path });
        assertEquals(res.status, 200);
        assertMatch(res.headers.get("content-type") ?? "", /^application\/json\b/);
        assertEquals(res.headers.get("cache-control"), "public, max-age=3600");
        assertEquals(res.body.length, 0);
      });

      await t.step(`OPTIONS ${path} preflight from any origin allows MCP-Protocol-Version`, async () => {
        const res = await send(`${gw.url}${path}`, {
          method: "OPTIONS",
          headers: {
            origin: "https://claude.ai",
            "access-control-request-method": "GET",
            "access-control-request-headers": "mcp-protocol-version",
          },
        });
        assertEquals(res.status, 204);
        const acao = res.headers.get("access-control-allow-origin");
        assert(acao === "*" || acao === "https://claude.ai", `Access-Control-Allow-Origin: ${acao}`);
        const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
        assert(
          allowed === "*" || allowed.split(/\s*,\s*/).includes("mcp-protocol-version"),
          `allow-headers: ${allowed}`,
        );
      });
    }

    await t.step("both metadata URLs serve byte-identical documents", async () => {
      const [a, b] = await Promise.all(METADATA_PATHS.map((p) => send(`${gw.url}${p}`)));
      assertEquals(a!.text, b!.text);
    });

    await t.step("/healthz and /readyz answer 200 without a token", async () => {
      assertEquals((await send(`${gw.url}/healthz`)).status, 200);
      assertEquals((await send(`${gw.url}/readyz`)).status, 200);
    });

    for (const method of ["GET", "POST", "DELETE", "PUT", "PATCH"]) {
      await t.step(`${method} /mcp without a token gets 401 with the exact challenge`, async () => {
        const ua = uniqueUserAgent();
        const res = await send(`${gw.url}/mcp`, {
          method,
          userAgent: ua,
          ...(method === "GET" || method === "DELETE" ? {} : { body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' }),
        });
        assertAuthError(res, { status: 401 });
        assertEquals(res.headers.get("www-authenticate"), PLAIN_CHALLENGE);
        const log = await gw.accessLog(ua);
        assertEquals([log.method, log.path, log.status, log.reason], [method, "/mcp", 401, "missing_token"]);
      });
    }

    await t.step("HEAD /mcp without a token gets 401 with the exact challenge", async () => {
      const res = await rawRequest(gw.port, { method: "HEAD", target: "/mcp" });
      assertAuthError(res, { status: 401, body: false });
      assertEquals(res.headers.get("www-authenticate"), PLAIN_CHALLENGE);
    });

    await t.step("GET /some/other/path without a token gets the same 401", async () => {
      const res = await send(`${gw.url}/some/other/path?x=1`);
      assertEquals(res.status, 401);
      assertEquals(res.headers.get("www-authenticate"), PLAIN_CHALLENGE);
    });

    await t.step("the challenge URL comes from RESOURCE_URI, never from Host or X-Forwarded-*", async () => {
      const res = await rawRequest(gw.port, {
        target: "/mcp",
        headers: [
          ["Host", "evil.example"],
          ["X-Forwarded-Host", "evil.example"],
          ["X-Forwarded-Proto", "http"],
          ["Forwarded", "host=evil.example;proto=http"],
        ],
      });
      assertAuthError(res, { status: 401 });
      assertEquals(res.headers.get("www-authenticate"), PLAIN_CHALLENGE);
    });

    await t.step("the metadata document ignores Host and X-Forwarded-* too", async () => {
      const res = await rawRequest(gw.port, {
        target: "/.well-known/oauth-protected-resource/mcp",
        headers: [["Host", "evil.example"], ["X-Forwarded-Host", "evil.example"]],
      });
      assertEquals(res.status, 200);
      assertEquals(JSON.parse(res.text), expected);
    });

    await t.step("the upstream saw none of it", () => assertUpstreamSawNothing(upstream, "discovery"));
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway with an origin-only RESOURCE_URI points the challenge at the root metadata [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, { RESOURCE_URI: "https://mcp.example.test", SCOPES_SUPPORTED: "mcp:read" }),
    );
    const res = await send(`${gw.url}/mcp`);
    assertEquals(res.status, 401);
    assertEquals(
      res.headers.get("www-authenticate"),
      'Bearer realm="mcp.example.test", resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource", scope="mcp:read"',
    );
    const meta = await send(`${gw.url}/.well-known/oauth-protected-resource`);
    assertEquals(meta.status, 200);
    assertEquals(JSON.parse(meta.text).resource, "https://mcp.example.test");
    assertEquals(JSON.parse(meta.text).scopes_supported, ["mcp:read"]);
    assertUpstreamSawNothing(upstream, "origin-only resource");
    await gw.stopAndCheck(issuer.issued);
  });
}
