// Spec §6 from the outside: /metrics counters move with traffic, spans reach an OTLP
// receiver continuing the client's traceparent, and `mcp-gate check` judges a set-up.
import { assert, assertEquals, assertMatch, assertNotEquals, assertStringIncludes } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, runGatewayCommand, startGateway } from "../_helpers/gateway.ts";
import { JSON_RPC_HEADERS, onlyUpstreamRequest, rpc, send } from "../_helpers/expect.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The value of one sample of a metric family in Prometheus text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (want.every((l) => line.includes(l))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

for (const target of gatewayTargets()) {
  Deno.test(`gateway exposes Prometheus metrics that move with traffic [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const port = freePort();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { METRICS_ADDR: `127.0.0.1:${port}` }));
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assertEquals(res.status, 200);
      assertEquals(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      return await res.text();
    };
    const before = await scrape();
    const token = await issuer.sign();
    const post = (t?: string) =>
      send(`${gw.url}/mcp`, { method: "POST", ...(t ? { token: t } : {}), headers: JSON_RPC_HEADERS, body: rpc(1) });
    for (let i = 0; i < 3; i++) assertEquals((await post(token)).status, 200);
    for (let i = 0; i < 2; i++) assertEquals((await post()).status, 401);
    assertEquals((await post(`${token.slice(0, -4)}AAAA`)).status, 401);
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string>) =>
      sample(after, name, labels) - sample(before, name, labels);
    assertEquals(delta("mcpgate_http_requests_total", { method: "POST", status: "200" }), 3);
    assertEquals(delta("mcpgate_http_requests_total", { method: "POST", status: "401" }), 3);
    assertEquals(delta("mcpgate_auth_validations_total", { outcome: "valid", reason: "ok" }), 3);
    assertEquals(delta("mcpgate_auth_validations_total", { outcome: "missing", reason: "missing_token" }), 2);
    assertEquals(delta("mcpgate_auth_validations_total", { outcome: "invalid", reason: "bad_signature" }), 1);
    assertEquals(delta("mcpgate_proxy_requests_total", { status: "200" }), 3);
    assertEquals(delta("mcpgate_proxy_request_duration_seconds_count", { status: "200" }), 3);
    assertEquals(sample(after, "mcpgate_info", { version: "0.1.0" }), 1);
    assert(sample(after, "mcpgate_jwks_keys_loaded") >= 1, "keys loaded is reported");
    assert(sample(after, "mcpgate_jwks_last_key_change_timestamp_seconds") > 1_700_000_000);
    assertEquals(sample(after, "mcpgate_active_requests"), 0);
    assert(!after.includes(token.split(".")[2]!), "no token in the metrics");
    await gw.stopAndCheck([token]);
  });

  Deno.test(`gateway sends OTLP spans that continue the client's traceparent [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const batches: unknown[] = [];
    const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      if (new URL(req.url).pathname === "/v1/traces") batches.push(await req.json());
      return Response.json({});
    });
    try {
      const gw = await startGateway(
        target,
        gatewayEnv(issuer, upstream, {
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
          OTEL_SERVICE_NAME: "gw-under-test",
        }),
      );
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      const parent = "00f067aa0ba902b7";
      const token = await issuer.sign();
      upstream.reset();
      const res = await send(`${gw.url}/mcp`, {
        method: "POST",
        token,
        headers: { ...JSON_RPC_HEADERS, traceparent: `00-${traceId}-${parent}-01` },
        body: rpc(1),
      });
      assertEquals(res.status, 200);
      const sent = onlyUpstreamRequest(upstream).headers["traceparent"] ?? "";
      assertMatch(sent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      await gw.stopAndCheck([token]); // flushes the spans on SIGTERM

      type Span = { name: string; traceId: string; spanId: string; parentSpanId?: string; attributes?: unknown[] };
      // deno-lint-ignore no-explicit-any
      const all = batches.flatMap((b: any) => b.resourceSpans ?? []);
      assertStringIncludes(JSON.stringify(all.map((r) => r.resource)), '"gw-under-test"');
      const spans: Span[] = all.flatMap((r) => r.scopeSpans.flatMap((s: { spans: Span[] }) => s.spans));
      const server = spans.find((s) => s.parentSpanId === parent);
      assert(server, `a span with the client's span as parent: ${JSON.stringify(spans.map((s) => s.name))}`);
      assertEquals(server.traceId, traceId);
      const auth = spans.find((s) => s.name === "auth.verify");
      const up = spans.find((s) => s.name === "upstream");
      assertEquals([auth?.parentSpanId, up?.parentSpanId], [server.spanId, server.spanId]);
      assertEquals(sent.split("-")[2], up?.spanId, "the upstream received the upstream span's id");
      assertNotEquals(up?.spanId, parent);
      assertStringIncludes(JSON.stringify(auth?.attributes), '"enduser.id"');
      assert(!JSON.stringify(batches).includes(token.split(".")[2]!), "no token in any span");
    } finally {
      await receiver.shutdown();
    }
  });

  Deno.test(`mcp-gate check passes a correct set-up and names a bad one [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    // A minimal MCP server: check probes it with initialize and closes the session.
    const mcp = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) =>
        req.method === "POST"
          ? Response.json(
            {
              jsonrpc: "2.0",
              id: 1,
              result: { protocolVersion: "2025-11-25", capabilities: {}, serverInfo: { name: "t", version: "1" } },
            },
            { headers: { "mcp-session-id": "s1" } },
          )
          : new Response(null, { status: 204 }),
    );
    await using _ = { [Symbol.asyncDispose]: () => mcp.shutdown() };
    const env = gatewayEnv(issuer, `http://127.0.0.1:${mcp.addr.port}`);
    delete env["JWKS_URI"]; // discovered, as most users run it
    const good = await runGatewayCommand(target, ["check"], env, 30_000);
    assertEquals(good.code, 0, good.stdout + good.stderr);
    assertStringIncludes(good.stdout, 'WWW-Authenticate: Bearer realm="mcp.example.test", resource_metadata=');

    const slash = await runGatewayCommand(target, ["check"], { ...env, EXPECTED_ISSUER: `${issuer.issuer}/` }, 30_000);
    assertEquals(slash.code, 1, slash.stdout + slash.stderr);
    assertStringIncludes(slash.stdout, "trailing slash");
  });
}
