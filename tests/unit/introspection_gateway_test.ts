// Opaque tokens through the whole in-process gateway (createGateway(...).fetch): which
// verifier a credential goes to, the exact 401/403/503 answers, identity headers upstream,
// readiness while the introspection endpoint is unknown.
import { assert, assertEquals } from "@std/assert";
import { createGateway, type Gateway } from "../../src/app.ts";
import { createLogger } from "../../src/logging.ts";
import { GatewayMetrics } from "../../src/metrics.ts";
import { claims, config, FakeNet, ISSUER, makeKey, RESOURCE, sign, T0 } from "./_fixtures.ts";

const rs = await makeKey("RS256", "rs1");
const INTROSPECT = `${ISSUER}/introspect`;
const PRM_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const T0S = T0 / 1000;

interface Rig {
  gw: Gateway;
  net: FakeNet;
  /** Introspection calls: the token sent each time. */
  introspected: string[];
  lines: string[];
  metrics: GatewayMetrics;
  answer: (token: string) => Response;
  send(token: string | undefined, path?: string): Promise<{ status: number; headers: Headers; text: string }>;
  logs(): Record<string, unknown>[];
}

async function rig(env: Record<string, string | undefined> = {}, opts: { start?: boolean } = {}): Promise<Rig> {
  const net = new FakeNet([rs.publicJwk]);
  const lines: string[] = [];
  const metrics = new GatewayMetrics();
  const r: Rig = {
    gw: undefined as unknown as Gateway,
    net,
    introspected: [],
    lines,
    metrics,
    answer: () => Response.json({ active: false }),
    async send(token, path = "/mcp") {
      const headers = new Headers({ "content-type": "application/json" });
      if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
      const res = await r.gw.fetch(
        new Request(`https://mcp.example.com${path}`, { method: "POST", headers, body: "{}" }),
        { remoteAddr: "203.0.113.9" },
      );
      return { status: res.status, headers: res.headers, text: await res.text() };
    },
    logs: () => lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "request"),
  };
  const fetchFn: typeof fetch = async (input, init) => {
    const req = new Request(input, init);
    if (req.url === INTROSPECT) {
      const form = new URLSearchParams(await req.text());
      r.introspected.push(form.get("token") ?? "");
      return r.answer(form.get("token") ?? "");
    }
    return net.fetch(req);
  };
  r.gw = createGateway(
    config({
      REQUIRED_SCOPES: "mcp:read",
      INTROSPECTION_CLIENT_ID: "mcp-gate",
      INTROSPECTION_CLIENT_SECRET: "pw",
      INTROSPECTION_ENDPOINT: INTROSPECT,
      CLAIM_HEADERS: "username=X-Auth-Username",
      RATE_LIMIT_RPS: "0",
      ...env,
    }),
    { fetch: fetchFn, now: () => T0, log: createLogger("debug", (l) => lines.push(l), () => T0), metrics },
  );
  if (opts.start !== false) await r.gw.start();
  return r;
}

const active = (over: Record<string, unknown> = {}) =>
  Response.json({
    active: true,
    iss: ISSUER,
    aud: RESOURCE,
    client_id: "svc-1",
    username: "alice",
    scope: "mcp:read mcp:write",
    exp: T0S + 600,
    ...over,
  });

Deno.test("createGateway() with introspection: a JWT is still verified locally, never introspected", async () => {
  const r = await rig();
  const res = await r.send(await sign(rs, claims(T0)));
  assertEquals(res.status, 200, res.text);
  assertEquals(r.introspected, []);
  assertEquals(r.net.upstreamRequests[0]!.headers.get("x-auth-subject"), "user-123");
  r.gw.close();
});

Deno.test("createGateway() introspects an opaque token and sends its identity upstream", async () => {
  const r = await rig();
  r.answer = () => active();
  const res = await r.send("opaque-abc");
  assertEquals(res.status, 200, res.text);
  assertEquals(r.introspected, ["opaque-abc"]);
  const h = r.net.upstreamRequests[0]!.headers;
  assertEquals(
    [h.get("x-auth-subject"), h.get("x-auth-client-id"), h.get("x-auth-scopes"), h.get("x-auth-username")],
    ["svc-1", "svc-1", "mcp:read mcp:write", "alice"],
  );
  assertEquals(h.get("authorization"), null);
  assertEquals((await r.send("opaque-abc")).status, 200);
  assertEquals(r.introspected.length, 1, "the second request was answered from the cache");
  const text = r.metrics.render();
  assert(text.includes('mcpgate_introspection_requests_total{outcome="active"} 1\n'), text);
  assert(text.includes('mcpgate_auth_validations_total{outcome="valid",reason="ok"} 2\n'), text);
  r.gw.close();
});

Deno.test("createGateway() answers an inactive opaque token with 401 invalid_token and its challenge", async () => {
  const r = await rig();
  const res = await r.send("revoked-token");
  assertEquals(res.status, 401);
  assertEquals(
    res.headers.get("www-authenticate"),
    `Bearer realm="mcp.example.com", resource_metadata="${PRM_URL}", scope="mcp:read", error="invalid_token", ` +
      `error_description="The access token is not active"`,
  );
  assertEquals(JSON.parse(res.text), { error: "invalid_token", error_description: "The access token is not active" });
  assertEquals(r.net.upstreamRequests.length, 0);
  assertEquals(r.logs()[0]!.reason, "inactive");
  r.gw.close();
});

Deno.test("createGateway() answers 403 insufficient_scope for an opaque token without REQUIRED_SCOPES", async () => {
  const r = await rig();
  r.answer = () => active({ scope: "other" });
  const res = await r.send("opaque-no-scope");
  assertEquals(res.status, 403, res.text);
  assertEquals(JSON.parse(res.text).error, "insufficient_scope");
  assertEquals(r.net.upstreamRequests.length, 0);
  r.gw.close();
});

Deno.test("createGateway() answers 503 temporarily_unavailable when the endpoint fails, never 401", async () => {
  const r = await rig();
  r.answer = () => new Response("bad gateway", { status: 502 });
  const res = await r.send("opaque-while-down");
  assertEquals(res.status, 503);
  assertEquals(res.headers.get("retry-after"), "5");
  assertEquals(res.headers.get("www-authenticate"), null);
  assertEquals(JSON.parse(res.text), {
    error: "temporarily_unavailable",
    error_description: "The authorization server could not check the access token; retry later",
  });
  const log = r.logs()[0]!;
  assertEquals([log.status, log.reason, log.hint], [
    503,
    "introspection_unavailable",
    `POST ${INTROSPECT} answered HTTP 502`,
  ]);
  assert(!r.lines.join("\n").includes("opaque-while-down"), "the token was logged");
  const text = r.metrics.render();
  assert(text.includes('mcpgate_introspection_requests_total{outcome="status"} 1\n'), text);
  assert(text.includes('mcpgate_auth_validations_total{outcome="error",reason="introspection_unavailable"} 1\n'), text);
  r.gw.close();
});

Deno.test("createGateway() without introspection refuses an opaque token as before (401, malformed)", async () => {
  const r = await rig({
    INTROSPECTION_CLIENT_ID: undefined,
    INTROSPECTION_CLIENT_SECRET: undefined,
    INTROSPECTION_ENDPOINT: undefined,
  });
  const res = await r.send("opaque-abc");
  assertEquals(res.status, 401);
  assertEquals(JSON.parse(res.text).error, "invalid_token");
  assertEquals(r.introspected, []);
  assertEquals(r.logs()[0]!.reason, "malformed");
  r.gw.close();
});

Deno.test("createGateway() is not ready until the introspection endpoint is discovered", async () => {
  const r = await rig({ INTROSPECTION_ENDPOINT: undefined }, { start: false });
  r.net.metadata = { ...r.net.metadata, introspection_endpoint: INTROSPECT };
  const before = await r.gw.fetch(new Request("https://mcp.example.com/readyz"));
  await before.body?.cancel();
  assertEquals(before.status, 503);
  assertEquals((await r.send("opaque-early")).status, 503);
  await r.gw.start();
  const after = await r.gw.fetch(new Request("https://mcp.example.com/readyz"));
  await after.body?.cancel();
  assertEquals(after.status, 200);
  r.answer = () => active();
  assertEquals((await r.send("opaque-later")).status, 200);
  r.gw.close();
});
