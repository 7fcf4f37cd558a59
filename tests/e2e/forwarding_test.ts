// Spec §4 Forwarding: header hygiene both ways, verbatim statuses and bodies, gzip,
// body streaming and limits, identity headers, the legacy HTTP+SSE transport.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { GZIP_PAYLOAD, SESSION_ID, startUpstream, UPSTREAM_LEAKY_HEADERS } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { assertJsonError, JSON_RPC_HEADERS, onlyUpstreamRequest, rpc, send } from "../_helpers/expect.ts";
import { rawRequest, type RawResponse, SseReader, uniqueUserAgent } from "../_helpers/http.ts";

/** Headers that must reach the upstream exactly as the client sent them. */
const PASSED_THROUGH: Record<string, string> = {
  "mcp-session-id": "sess-client-1",
  "mcp-protocol-version": "2025-11-25",
  "mcp-method": "tools/call",
  "mcp-name": "get_weather",
  "mcp-param-foo": "bar",
  "last-event-id": "42",
  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "tracestate": "vendor=opaque",
  "accept": "application/json, text/event-stream",
  "content-type": "application/json",
  "x-custom-end-to-end": "kept",
};

function assertNoLeakyResponseHeaders(res: RawResponse) {
  assertEquals(res.headers.get("x-powered-by"), null, "X-Powered-By stripped");
  assert(res.headers.get("server") !== UPSTREAM_LEAKY_HEADERS.server, `Server stripped: ${res.headers.get("server")}`);
  assertEquals(res.headers.get("x-upstream-hop"), null, "header listed in the upstream's Connection stripped");
  assertEquals(res.headers.get("keep-alive"), null, "Keep-Alive stripped");
  assertEquals(res.headers.get("proxy-connection"), null, "Proxy-Connection stripped");
  assert(!/x-upstream-hop/i.test(res.headers.get("connection") ?? ""), "upstream's Connection not forwarded");
}

for (const target of gatewayTargets()) {
  Deno.test(`gateway forwards requests and responses cleanly [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, {
        MAX_REQUEST_BODY: "1048576",
        STRIP_REQUEST_HEADERS: "X-Tenant,X-Corp-*",
        // The debug line naming stripped identity headers is checked below.
        LOG_LEVEL: "debug",
      }),
    );
    const token = await issuer.sign();

    await t.step("POST /mcp: credentials, cookies, hop-by-hop and spoofed identity headers stay behind", async () => {
      upstream.reset();
      const ua = uniqueUserAgent();
      const body = rpc(7, "tools/call");
      const res = await rawRequest(gw.port, {
        method: "POST",
        target: "/mcp?foo=bar&baz=1",
        headers: [
          ["Authorization", `Bearer ${token}`],
          ["Cookie", "session=secret-cookie"],
          ["Proxy-Authorization", "Basic Zm9vOmJhcg=="],
          ["Connection", "close, X-Client-Hop"],
          ["X-Client-Hop", "must-not-pass"],
          ["Keep-Alive", "timeout=5"],
          ["TE", "trailers"],
          ["Proxy-Connection", "keep-alive"],
          ["X-Auth-Subject", "attacker"],
          ["X-Auth-Scopes", "admin"],
          ["x-auth-client-id", "evil-client"],
          ["User-Agent", ua],
          ...Object.entries(PASSED_THROUGH),
        ],
        body,
      });
      assertEquals(res.status, 200, res.text);
      assertEquals(JSON.parse(res.text), { jsonrpc: "2.0", id: 7, result: {} });

      const seen = onlyUpstreamRequest(upstream);
      assertEquals(seen.method, "POST");
      assertEquals(seen.path, "/mcp?foo=bar&baz=1");
      assertEquals(seen.body, body);
      for (const [k, v] of Object.entries(PASSED_THROUGH)) assertEquals(seen.headers[k], v, `${k} passed through`);
      assertEquals(seen.headers["user-agent"], ua);
      for (
        const k of [
          "authorization",
          "cookie",
          "proxy-authorization",
          "x-client-hop",
          "keep-alive",
          "te",
          "proxy-connection",
        ]
      ) {
        assertEquals(seen.headers[k], undefined, `${k} must not reach the upstream`);
      }
      assert(!/x-client-hop/i.test(seen.headers["connection"] ?? ""), "client's Connection not forwarded");
      assertEquals(seen.headers["x-auth-subject"], "user-123");
      assertEquals(seen.headers["x-auth-scopes"], "mcp:read mcp:write");
      assertEquals(seen.headers["x-auth-client-id"], "client-abc");
      assertEquals(seen.headers["x-forwarded-for"], "127.0.0.1");
      assertEquals(seen.headers["x-forwarded-proto"], "http");
      assertEquals(seen.headers["x-forwarded-host"], `127.0.0.1:${gw.port}`);
      assert(!JSON.stringify(seen).includes(token.split(".")[2]!), "the token reached the upstream");

      assertNoLeakyResponseHeaders(res);
      assertEquals(res.headers.get("mcp-session-id"), SESSION_ID);
      assertEquals(res.headers.get("mcp-protocol-version"), "2025-11-25");
      assertEquals(res.headers.get("x-upstream"), "ok");
      assertMatch(res.headers.get("content-type") ?? "", /^application\/json/);
      const log = await gw.accessLog(ua);
      assertEquals([log.method, log.path, log.status, log.sub], ["POST", "/mcp", 200, "user-123"]);
      for (const k of ["duration_ms", "client_ip", "request_id", "time", "level"]) {
        assert(k in log, `access log has ${k}`);
      }
    });

    await t.step(
      "identity headers other proxies set, and STRIP_REQUEST_HEADERS, never reach the upstream",
      async () => {
        upstream.reset();
        const spoofed: [string, string][] = [
          ["X-Forwarded-User", "admin"],
          ["X-Forwarded-Email", "admin@example.com"],
          ["X-Forwarded-Preferred-Username", "admin"],
          ["X-Forwarded-Groups", "admins"],
          ["X-Forwarded-Access-Token", "stolen-token"],
          ["X-Auth-Request-User", "admin"],
          ["X-Auth-Request-Email", "admin@example.com"],
          ["Remote-User", "admin"],
          ["Remote-Email", "admin@example.com"],
          ["Remote-Groups", "admins"],
          ["Remote-Name", "Admin"],
          ["X-Remote-User", "admin"],
          ["X-User", "admin"],
          ["X-Email", "admin@example.com"],
          ["X-Pomerium-Jwt-Assertion", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."],
          ["X-Pomerium-Claim-Groups", "admins"],
          ["X-Tenant", "other-tenant"],
          ["X-Corp-Role", "owner"],
        ];
        const requestId = "strip-check-1";
        const res = await rawRequest(gw.port, {
          method: "POST",
          target: "/mcp",
          headers: [
            ["Authorization", `Bearer ${token}`],
            ["Content-Type", "application/json"],
            ["X-Request-Id", requestId],
            ["X-Corporate", "kept: no dash after the prefix"],
            ...spoofed,
          ],
          body: rpc(8),
        });
        assertEquals(res.status, 200, res.text);
        const seen = onlyUpstreamRequest(upstream);
        for (const [name] of spoofed) {
          assertEquals(seen.headers[name.toLowerCase()], undefined, `${name} must not reach the upstream`);
        }
        assertEquals(seen.headers["x-corporate"], "kept: no dash after the prefix");
        assertEquals(seen.headers["x-auth-subject"], "user-123");
        const debug = gw.find((l) => l.msg === "client identity headers stripped" && l.request_id === requestId);
        assertEquals(debug.length, 1, "one debug line for the request");
        assertEquals(debug[0]!.level, "debug");
        assertEquals((debug[0]!.headers as string[]).toSorted(), spoofed.map(([n]) => n.toLowerCase()).toSorted());
        const line = JSON.stringify(debug[0]);
        for (const value of ["admin@example.com", "stolen-token", "other-tenant", "owner"]) {
          assert(!line.includes(value), `the debug line carries a header value: ${line}`);
        }
      },
    );

    await t.step("Mcp-Method, Mcp-Name and Mcp-Param-* pass through unchanged, whatever their case", async () => {
      upstream.reset();
      const mcpHeaders: [string, string][] = [
        ["MCP-METHOD", "tools/call"],
        ["mcp-name", "=?base64?Z2V0X3dlYXRoZXI=?="],
        ["Mcp-Param-City", "=?base64?U8OjbyBQYXVsbw==?="],
        ["mCp-PaRaM-Units", "metric"],
        ["Mcp-Param-X-Unknown-To-Anyone", "  spaced  value ; with=odd,chars "],
        ["MCP-Protocol-Version", "2026-07-28"],
      ];
      const body = JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: { name: "get_weather", arguments: { city: "São Paulo", units: "metric" } },
      });
      const res = await rawRequest(gw.port, {
        method: "POST",
        target: "/mcp",
        headers: [["Authorization", `Bearer ${token}`], ["Content-Type", "application/json"], ...mcpHeaders],
        body,
      });
      assertEquals(res.status, 200, res.text);
      const seen = onlyUpstreamRequest(upstream);
      for (const [name, value] of mcpHeaders) {
        // HTTP trims a field value's surrounding whitespace on the way in; the rest stays byte for byte.
        assertEquals(seen.headers[name.toLowerCase()], value.trim(), `${name} passed through`);
      }
      assertEquals(seen.body, body);
    });

    await t.step("a spoofed X-Auth-Client-Id does not survive for a token without client_id", async () => {
      upstream.reset();
      const res = await send(`${gw.url}/mcp`, {
        method: "POST",
        headers: { ...JSON_RPC_HEADERS, "x-auth-client-id": "evil-client", "x-auth-subject": "attacker" },
        token: await issuer.sign({ client_id: undefined }),
        body: rpc(1),
      });
      assertEquals(res.status, 200);
      const seen = onlyUpstreamRequest(upstream);
      assert(seen.headers["x-auth-client-id"] !== "evil-client", "client-sent X-Auth-Client-Id stripped");
      assertEquals(seen.headers["x-auth-subject"], "user-123");
    });

    await t.step("GET /mcp with Last-Event-ID opens the upstream's SSE stream", async () => {
      upstream.reset();
      const res = await fetch(`${gw.url}/mcp`, {
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", "last-event-id": "5" },
      });
      assertEquals(res.status, 200);
      const sse = new SseReader(res.body!);
      try {
        assertEquals(await sse.next(), {
          id: "1",
          event: "message",
          data: '{"jsonrpc":"2.0","method":"notifications/ping"}',
        });
        assertEquals(await sse.next(), null);
      } finally {
        await sse.cancel();
      }
      assertEquals(onlyUpstreamRequest(upstream).headers["last-event-id"], "5");
    });

    await t.step("DELETE /mcp with a session id reaches the upstream; its 204 comes back", async () => {
      upstream.reset();
      const res = await send(`${gw.url}/mcp`, { method: "DELETE", token, headers: { "mcp-session-id": SESSION_ID } });
      assertEquals(res.status, 204);
      assertEquals(res.text, "");
      const seen = onlyUpstreamRequest(upstream);
      assertEquals([seen.method, seen.headers["mcp-session-id"]], ["DELETE", SESSION_ID]);
    });

    await t.step("an empty 202 passes through empty", async () => {
      const res = await rawRequest(gw.port, {
        method: "POST",
        target: "/202",
        headers: [["Authorization", `Bearer ${token}`], ["Content-Type", "application/json"]],
        body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      });
      assertEquals(res.status, 202);
      assertEquals(res.body.length, 0);
      assertNoLeakyResponseHeaders(res);
    });

    for (const code of [400, 404, 405, 500]) {
      await t.step(`an upstream ${code} passes through verbatim`, async () => {
        const res = await rawRequest(gw.port, {
          target: `/status/${code}`,
          headers: [["Authorization", `Bearer ${token}`]],
        });
        assertEquals(res.status, code);
        assertEquals(res.text, JSON.stringify({ upstream_status: code }));
        assertMatch(res.headers.get("content-type") ?? "", /^application\/json/);
        if (code === 405) assertEquals(res.headers.get("allow"), "GET, POST");
        assertEquals(res.headers.get("x-upstream"), "ok");
        assertNoLeakyResponseHeaders(res);
      });
    }

    for (const code of [401, 403]) {
      await t.step(`an upstream ${code} becomes a 502 JSON error without a challenge`, async () => {
        const ua = uniqueUserAgent();
        const res = await send(`${gw.url}/status/${code}`, { token, userAgent: ua });
        assertJsonError(res, 502);
        assertEquals(res.headers.get("www-authenticate"), null);
        assertEquals((await gw.accessLog(ua)).status, 502);
      });
    }

    await t.step("a gzip upstream body reaches the client decodable, with consistent headers", async () => {
      const res = await rawRequest(gw.port, {
        target: "/gzip",
        headers: [["Authorization", `Bearer ${token}`], ["Accept-Encoding", "gzip"]],
      });
      assertEquals(res.status, 200);
      const cl = res.headers.get("content-length");
      if (cl !== null) assertEquals(Number(cl), res.body.length, "Content-Length matches the bytes sent");
      let text: string;
      if (res.headers.get("content-encoding") === "gzip") {
        const stream = new Blob([res.body as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
        text = await new Response(stream).text();
      } else {
        assertEquals(res.headers.get("content-encoding"), null, "no Content-Encoding on a decoded body");
        text = res.text;
      }
      assertEquals(JSON.parse(text), GZIP_PAYLOAD);
    });

    await t.step("a gzip upstream body reaches fetch() intact", async () => {
      const res = await send(`${gw.url}/gzip`, { token });
      assertEquals(res.status, 200);
      assertEquals(JSON.parse(res.text), GZIP_PAYLOAD);
    });

    await t.step("a 256 KB request body is streamed to the upstream and back byte for byte", async () => {
      const payload = new Uint8Array(256 * 1024);
      for (let i = 0; i < payload.length; i += 65536) crypto.getRandomValues(payload.subarray(i, i + 65536));
      const res = await fetch(`${gw.url}/echo`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
        body: payload,
      });
      assertEquals(res.status, 200);
      assertEquals(new Uint8Array(await res.arrayBuffer()), payload);
    });

    await t.step("a body over MAX_REQUEST_BODY gets 413 and never reaches the upstream", async () => {
      upstream.reset();
      const res = await send(`${gw.url}/echo`, {
        method: "POST",
        token,
        headers: { "content-type": "application/octet-stream" },
        body: new Uint8Array(2 * 1024 * 1024),
      });
      assertEquals(res.status, 413);
      assertEquals(upstream.received("/echo").length, 0);
    });

    await t.step("a 40 KB header (under MAX_HEADER_BYTES) is forwarded", async () => {
      upstream.reset();
      const big = "v".repeat(40 * 1024);
      const res = await send(`${gw.url}/mcp`, {
        method: "POST",
        token,
        headers: { ...JSON_RPC_HEADERS, "x-big": big },
        body: rpc(1),
      });
      assertEquals(res.status, 200, res.text);
      assertEquals(onlyUpstreamRequest(upstream).headers["x-big"], big);
    });

    await t.step("headers over MAX_HEADER_BYTES (64 KiB) never reach the upstream", async () => {
      upstream.reset();
      const res = await rawRequest(gw.port, {
        target: "/mcp",
        headers: [["Authorization", `Bearer ${token}`], ["X-Big", "v".repeat(70 * 1024)]],
      });
      // Bun-based targets raise Bun's own limit, so the gateway answers 431 itself. Deno's
      // HTTP parser answers a request head over ~64 KiB with its own 400 before any handler
      // runs (documented in the README); the gateway's 431 on Deno is in limits_test.ts.
      const denoBased = target.name === "deno" || target.name === "bundle";
      assertEquals(res.status, denoBased ? 400 : 431);
      assertEquals(upstream.requests.length, 0);
    });

    await t.step("legacy HTTP+SSE: the endpoint event's URL works through the gateway", async () => {
      upstream.reset();
      const res = await fetch(`${gw.url}/sse`, {
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      });
      assertEquals(res.status, 200);
      const sse = new SseReader(res.body!);
      try {
        const endpoint = await sse.next();
        assertEquals(endpoint?.event, "endpoint");
        const postUrl = new URL(endpoint!.data, `${gw.url}/sse`);
        assertEquals(postUrl.origin, gw.url, "endpoint resolves to the gateway");
        const post = await send(postUrl.href, {
          method: "POST",
          token,
          headers: { "content-type": "application/json" },
          body: rpc(99, "tools/list"),
        });
        assertEquals(post.status, 202);
        const answer = await sse.next();
        assertEquals(answer?.event, "message");
        assertEquals(JSON.parse(answer!.data), { jsonrpc: "2.0", id: 99, result: { echoed: "tools/list" } });
      } finally {
        await sse.cancel();
      }
    });

    await gw.stopAndCheck(issuer.issued);
  });
}
