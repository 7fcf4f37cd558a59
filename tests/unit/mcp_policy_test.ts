// SCOPE_RULES end to end in-process: createGateway with an in-memory issuer and a recording
// upstream (FakeNet), exact statuses, headers and bodies.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { createGateway } from "../../src/app.ts";
import { createLogger } from "../../src/logging.ts";
import { GatewayMetrics } from "../../src/metrics.ts";
import { claims, config, FakeNet, makeKey, sign, T0, UPSTREAM } from "./_fixtures.ts";

const rs = await makeKey("RS256", "rs1");
const ORIGIN = "https://mcp.example.com";
const PRM = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const PEER = "203.0.113.9";

const RULES = JSON.stringify([
  { method: "tools/call", name: "delete_*", scopes: ["mcp:admin"] },
  { method: "tools/call", name: "safe_*", scopes: [] },
  { method: "tools/call", scopes: ["mcp:tools"] },
  { method: "resources/read", name: "file:///secret/*", scopes: ["files:secret"] },
]);
const IMPLIES = JSON.stringify({ "mcp:admin": ["mcp:tools"], "mcp:tools": ["mcp:read"] });

interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

async function harness(env: Record<string, string | undefined> = {}) {
  const net = new FakeNet([rs.publicJwk]);
  const lines: string[] = [];
  const metrics = new GatewayMetrics();
  const now = () => T0;
  const cfg = config({ REQUIRED_SCOPES: "mcp:read", SCOPE_RULES: RULES, SCOPE_IMPLIES: IMPLIES, ...env });
  const gw = createGateway(cfg, {
    fetch: net.fetch,
    now,
    log: createLogger("debug", (l) => lines.push(l), now),
    metrics,
  });
  await gw.start();
  const tokens = new Map<string, string>();
  const token = async (scope: string) => {
    if (!tokens.has(scope)) tokens.set(scope, await sign(rs, claims(T0, { scope })));
    return tokens.get(scope)!;
  };
  return {
    gw,
    net,
    lines,
    metrics,
    token,
    async fetch(req: Request): Promise<Reply> {
      const res = await gw.fetch(req, { remoteAddr: PEER });
      return { status: res.status, headers: res.headers, text: await res.text() };
    },
    async post(body: BodyInit | null, scope: string | null, headers: Record<string, string> = {}): Promise<Reply> {
      const h = new Headers({ "content-type": "application/json", ...headers });
      if (scope !== null) h.set("authorization", `Bearer ${await token(scope)}`);
      const res = await gw.fetch(new Request(`${ORIGIN}/mcp`, { method: "POST", body, headers: h }), {
        remoteAddr: PEER,
      });
      return { status: res.status, headers: res.headers, text: await res.text() };
    },
    lastLog: () => JSON.parse(lines.filter((l) => JSON.parse(l).msg === "request").at(-1)!),
  };
}

const call = (id: number, name: string) =>
  JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: {} } });
const rpcError = (id: string, code: number, message: string) =>
  `{"jsonrpc":"2.0","id":${id},"error":{"code":${code},"message":"${message}"}}`;
const challenge = (scope: string, missing: string) =>
  `Bearer realm="mcp.example.com", resource_metadata="${PRM}", scope="${scope}", error="insufficient_scope", ` +
  `error_description="The token lacks the required scope ${missing}"`;
const forbidden = (missing: string) =>
  JSON.stringify({ error: "insufficient_scope", error_description: `The token lacks the required scope ${missing}` });

Deno.test("mcpPolicy(): a read-only token lists tools and is forwarded the exact bytes", async () => {
  const h = await harness();
  const body = ' {"jsonrpc":"2.0",  "id":1,"method":"tools/list","params":{"cursor":"\\u00e9"}}\n';
  const r = await h.post(body, "mcp:read");
  assertEquals(r.status, 200);
  assertEquals(h.net.upstreamRequests.length, 1);
  assertEquals(h.net.upstreamRequests[0]!.body, body);
  assertEquals(h.lastLog().mcp_method, "tools/list");
  assertEquals(h.lastLog().mcp_name, undefined);
  h.gw.close();
});

Deno.test("mcpPolicy(): the 403 challenge names exactly the scopes the call needs", async (t) => {
  const h = await harness();
  const cases: { description: string; scope: string; body: string; challenge: string | null; missing?: string }[] = [
    {
      description: "read-only token, a tool call",
      scope: "mcp:read",
      body: call(2, "echo"),
      challenge: challenge("mcp:read mcp:tools", "mcp:tools"),
      missing: "mcp:tools",
    },
    {
      description: "tools token, an admin tool",
      scope: "mcp:tools",
      body: call(3, "delete_user"),
      challenge: challenge("mcp:read mcp:admin", "mcp:admin"),
      missing: "mcp:admin",
    },
    {
      description: "no scope at all: REQUIRED_SCOPES first, then the rule's",
      scope: "other",
      body: call(4, "delete_user"),
      challenge: challenge("mcp:read mcp:admin", "mcp:read mcp:admin"),
      missing: "mcp:read mcp:admin",
    },
    {
      description: "admin implies tools implies read",
      scope: "mcp:admin",
      body: call(5, "delete_user"),
      challenge: null,
    },
    { description: "tools implies read (REQUIRED_SCOPES)", scope: "mcp:tools", body: call(6, "echo"), challenge: null },
    { description: "an exception rule with no scopes", scope: "mcp:read", body: call(7, "safe_echo"), challenge: null },
    {
      description: "a resource URI rule",
      scope: "mcp:read",
      body: '{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"file:///secret/key"}}',
      challenge: challenge("mcp:read files:secret", "files:secret"),
      missing: "files:secret",
    },
    {
      description: "a notification without a rule",
      scope: "mcp:read",
      body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      challenge: null,
    },
    { description: "a response", scope: "mcp:read", body: '{"jsonrpc":"2.0","id":"s1","result":{}}', challenge: null },
  ];
  for (const c of cases) {
    await t.step(c.description, async () => {
      const before = h.net.upstreamRequests.length;
      const r = await h.post(c.body, c.scope);
      if (c.challenge === null) {
        assertEquals(r.status, 200);
        assertEquals(h.net.upstreamRequests.length, before + 1);
        assertEquals(h.net.upstreamRequests.at(-1)!.body, c.body);
      } else {
        assertEquals(r.status, 403);
        assertEquals(r.headers.get("www-authenticate"), c.challenge);
        assertEquals(r.text, forbidden(c.missing!));
        assertEquals(h.net.upstreamRequests.length, before);
      }
    });
  }
  h.gw.close();
});

Deno.test("mcpPolicy(): a batch needs the union of its calls' scopes and is refused whole", async () => {
  const h = await harness();
  const batch = `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},${call(2, "echo")},` +
    `{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///secret/a"}},${call(4, "delete_x")}]`;
  const r = await h.post(batch, "mcp:tools");
  assertEquals(r.status, 403);
  assertEquals(
    r.headers.get("www-authenticate"),
    challenge("mcp:read mcp:tools files:secret mcp:admin", "files:secret mcp:admin"),
  );
  assertEquals(h.net.upstreamRequests.length, 0);
  assertEquals(h.lastLog().mcp_method, ["tools/list", "tools/call", "resources/read", "tools/call"]);
  assertEquals(h.lastLog().mcp_name, "echo");
  assertEquals(h.lastLog().reason, "insufficient_scope");

  const ok = await h.post(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},${call(2, "echo")}]`, "mcp:tools");
  assertEquals(ok.status, 200);
  assertEquals(h.net.upstreamRequests.length, 1);
  h.gw.close();
});

Deno.test("mcpPolicy(): a body it cannot classify is a 400 JSON-RPC error, never forwarded", async (t) => {
  const h = await harness();
  const cases: { description: string; body: string; expected: string; reason: string }[] = [
    {
      description: "not JSON",
      body: "{nope",
      expected: rpcError("null", -32700, "Parse error: the body is not valid JSON"),
      reason: "jsonrpc_parse_error",
    },
    {
      description: "empty",
      body: "",
      expected: rpcError("null", -32700, "Parse error: the body is not valid JSON"),
      reason: "jsonrpc_parse_error",
    },
    {
      description: "no jsonrpc 2.0",
      body: '{"id":9,"method":"tools/list"}',
      expected: rpcError("9", -32600, 'Invalid Request: \\"jsonrpc\\" must be \\"2.0\\"'),
      reason: "jsonrpc_invalid",
    },
    {
      description: "empty batch",
      body: "[]",
      expected: rpcError("null", -32600, "Invalid Request: the batch is empty"),
      reason: "jsonrpc_invalid",
    },
    {
      description: "a tool name given twice",
      body: '{"jsonrpc":"2.0","id":"d","method":"tools/call","params":{"name":"safe_x","name":"delete_all"}}',
      expected: rpcError('"d"', -32600, 'Invalid Request: \\"name\\" is given twice'),
      reason: "jsonrpc_invalid",
    },
  ];
  for (const c of cases) {
    await t.step(c.description, async () => {
      const r = await h.post(c.body, "mcp:admin");
      assertEquals(r.status, 400);
      assertEquals(r.headers.get("content-type"), "application/json");
      assertEquals(r.headers.get("www-authenticate"), null);
      assertEquals(r.text, c.expected);
      assertEquals(h.lastLog().reason, c.reason);
    });
  }
  assertEquals(h.net.upstreamRequests.length, 0);
  h.gw.close();
});

Deno.test("mcpPolicy(): Mcp-Method and Mcp-Name must agree with the body", async (t) => {
  const h = await harness();
  const b64 = (s: string) => `=?base64?${btoa(String.fromCharCode(...new TextEncoder().encode(s)))}?=`;
  const mismatch = (id: string, header: string) =>
    rpcError(id, -32020, `Header mismatch: the ${header} header does not match the body`);
  const cases: { description: string; body: string; headers: Record<string, string>; expected: string | null }[] = [
    {
      description: "both agree",
      body: call(1, "echo"),
      headers: { "mcp-method": "tools/call", "mcp-name": "echo" },
      expected: null,
    },
    { description: "base64 name agrees", body: call(2, "échø"), headers: { "mcp-name": b64("échø") }, expected: null },
    {
      description: "method differs",
      body: call(3, "echo"),
      headers: { "mcp-method": "tools/list" },
      expected: mismatch("3", "Mcp-Method"),
    },
    {
      description: "name differs",
      body: call(4, "delete_all"),
      headers: { "mcp-name": "echo" },
      expected: mismatch("4", "Mcp-Name"),
    },
    {
      description: "base64 name differs",
      body: call(5, "delete_all"),
      headers: { "mcp-name": b64("echo") },
      expected: mismatch("5", "Mcp-Name"),
    },
    {
      description: "malformed base64",
      body: call(6, "echo"),
      headers: { "mcp-name": "=?base64?ZWNo?=" },
      expected: mismatch("6", "Mcp-Name"),
    },
    {
      description: "a name header for a message without a name",
      body: '{"jsonrpc":"2.0","id":7,"method":"tools/list"}',
      headers: { "mcp-name": "echo" },
      expected: mismatch("7", "Mcp-Name"),
    },
    {
      description: "a batch: the header must describe every message",
      body: `[${call(8, "echo")},{"jsonrpc":"2.0","id":9,"method":"tools/list"}]`,
      headers: { "mcp-method": "tools/call" },
      expected: mismatch("9", "Mcp-Method"),
    },
  ];
  for (const c of cases) {
    await t.step(c.description, async () => {
      const before = h.net.upstreamRequests.length;
      const r = await h.post(c.body, "mcp:tools", c.headers);
      if (c.expected === null) {
        assertEquals(r.status, 200);
        assertEquals(h.net.upstreamRequests.length, before + 1);
        // Forwarded unchanged, headers included.
        for (const [k, v] of Object.entries(c.headers)) assertEquals(h.net.upstreamRequests.at(-1)!.headers.get(k), v);
      } else {
        assertEquals(r.status, 400);
        assertEquals(r.text, c.expected);
        assertEquals(h.net.upstreamRequests.length, before);
        assertEquals(h.lastLog().reason, "header_mismatch");
      }
    });
  }
  h.gw.close();
});

Deno.test("mcpPolicy(): order of checks is token, then body, then scopes; no token: body never read", async () => {
  const h = await harness();
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls++;
      controller.enqueue(new TextEncoder().encode("{not json"));
      controller.close();
    },
  }, { highWaterMark: 0 });
  const req = new Request(`${ORIGIN}/mcp`, {
    method: "POST",
    body: stream,
    headers: { "content-type": "application/json" },
  });
  const r = await h.fetch(req);
  assertEquals(r.status, 401);
  assertEquals(req.bodyUsed, false);
  assertEquals(pulls, 0);

  const bad = await h.post("{not json", "nothing-useful");
  assertEquals(bad.status, 400, "a bad body is refused before the scopes are looked at");
  assertEquals(h.net.upstreamRequests.length, 0);
  h.gw.close();
});

Deno.test("mcpPolicy(): MAX_REQUEST_BODY (413) and READ_TIMEOUT (408) bound the read, chunked or not", async (t) => {
  const h = await harness({ MAX_REQUEST_BODY: "100", READ_TIMEOUT: "200ms" });
  const tooLarge = JSON.stringify({ error: "body_too_large", error_description: "Request body exceeds 100 bytes" });
  const big = call(1, "x".repeat(200));
  await t.step("declared Content-Length", async () => {
    const r = await h.post(big, "mcp:admin");
    assertEquals([r.status, r.text, r.headers.get("connection")], [413, tooLarge, "close"]);
  });
  await t.step("chunked", async () => {
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 30) c.enqueue(bytes.slice(i, i + 30));
        c.close();
      },
    });
    const r = await h.post(stream, "mcp:admin");
    assertEquals([r.status, r.text], [413, tooLarge]);
  });
  await t.step("a body that stalls", async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"jsonrpc":"2.0",'));
      },
    });
    const t0 = performance.now();
    const r = await h.post(stream, "mcp:admin");
    assertEquals(r.status, 408);
    assertEquals(
      r.text,
      JSON.stringify({ error: "read_timeout", error_description: "The request body was not received within 200 ms" }),
    );
    assert(performance.now() - t0 < 10_000);
  });
  await t.step("exactly the limit passes", async () => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { pad: "" } });
    const padded = body.replace('"pad":""', `"pad":"${"p".repeat(100 - body.length)}"`);
    assertEquals(new TextEncoder().encode(padded).length, 100);
    const r = await h.post(padded, "mcp:read");
    assertEquals(r.status, 200);
    assertEquals(h.net.upstreamRequests.at(-1)!.body, padded);
  });
  assertEquals(h.net.upstreamRequests.length, 1);
  h.gw.close();
});

Deno.test("mcpPolicy(): GET and DELETE need REQUIRED_SCOPES only; a DELETE with a body is refused", async () => {
  const h = await harness();
  const auth = { authorization: `Bearer ${await h.token("mcp:read")}` };
  const get = await h.fetch(new Request(`${ORIGIN}/mcp`, { headers: { ...auth, accept: "text/event-stream" } }));
  assertEquals(get.status, 200);
  const del = await h.fetch(new Request(`${ORIGIN}/mcp`, { method: "DELETE", headers: auth }));
  assertEquals(del.status, 200);
  const noScope = await h.fetch(
    new Request(`${ORIGIN}/mcp`, { headers: { authorization: `Bearer ${await h.token("x")}` } }),
  );
  assertEquals(noScope.status, 403);
  assertEquals(noScope.headers.get("www-authenticate"), challenge("mcp:read", "mcp:read"));
  const withBody = await h.fetch(
    new Request(`${ORIGIN}/mcp`, {
      method: "DELETE",
      headers: { ...auth, "content-length": String(call(1, "delete_x").length) },
      body: call(1, "delete_x"),
    }),
  );
  assertEquals(withBody.status, 400);
  assertEquals(withBody.text, rpcError("null", -32600, "Invalid Request: a DELETE request carries no body"));
  assertEquals(h.net.upstreamRequests.map((r) => r.method), ["GET", "DELETE"]);
  h.gw.close();
});

Deno.test("mcpPolicy(): one count per message in mcpgate_mcp_requests_total", async () => {
  const h = await harness();
  await h.post(call(1, "echo"), "mcp:tools"); // allowed
  await h.post(`[${call(2, "delete_x")},{"jsonrpc":"2.0","id":3,"method":"tools/list"}]`, "mcp:tools"); // 2 denied
  await h.post('{"jsonrpc":"2.0","id":4,"method":"vendor/secret_tool_name"}', "mcp:read"); // other, allowed
  await h.post('{"jsonrpc":"2.0","id":5,"result":{}}', "mcp:read"); // a response: other, allowed
  await h.post("{bad", "mcp:read"); // other, invalid
  await h.post(call(6, "echo"), "mcp:tools", { "mcp-method": "ping" }); // invalid
  const lines = h.metrics.render().split("\n").filter((l) => l.startsWith("mcpgate_mcp_requests_total{"));
  const counts = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.lastIndexOf(" ")), Number(l.slice(l.lastIndexOf(" ") + 1))]),
  );
  assertEquals(counts, {
    'mcpgate_mcp_requests_total{method="tools/call",outcome="allowed"}': 1,
    'mcpgate_mcp_requests_total{method="tools/call",outcome="denied"}': 1,
    'mcpgate_mcp_requests_total{method="tools/call",outcome="invalid"}': 1,
    'mcpgate_mcp_requests_total{method="tools/list",outcome="allowed"}': 0,
    'mcpgate_mcp_requests_total{method="tools/list",outcome="denied"}': 1,
    'mcpgate_mcp_requests_total{method="tools/list",outcome="invalid"}': 0,
    'mcpgate_mcp_requests_total{method="other",outcome="allowed"}': 2,
    'mcpgate_mcp_requests_total{method="other",outcome="denied"}': 0,
    'mcpgate_mcp_requests_total{method="other",outcome="invalid"}': 1,
  });
  assert(!h.metrics.render().includes("secret_tool_name"));
  h.gw.close();
});

Deno.test("SCOPE_RULES unset: no body is read, SCOPE_IMPLIES still applies to REQUIRED_SCOPES", async () => {
  const h = await harness({ SCOPE_RULES: undefined });
  const r = await h.post("{not json at all", "mcp:admin");
  assertEquals(r.status, 200);
  assertEquals(h.net.upstreamRequests[0]!.body, "{not json at all");
  const denied = await h.post(call(1, "delete_x"), "other");
  assertEquals(denied.status, 403);
  assertEquals(denied.headers.get("www-authenticate"), challenge("mcp:read", "mcp:read"));
  assertEquals(h.metrics.render().includes("mcpgate_mcp_requests_total{"), false);
  // Without SCOPE_RULES the log's MCP fields come from the client's headers.
  await h.post(call(2, "x"), "mcp:read", { "mcp-method": "tools/call", "mcp-name": "x" });
  assertEquals([h.lastLog().mcp_method, h.lastLog().mcp_name], ["tools/call", "x"]);
  h.gw.close();
});

Deno.test("SCOPE_RULES: 401 keeps the baseline scope; metadata lists every scope named; offline_access never", async () => {
  const h = await harness({ REQUIRED_SCOPES: "mcp:read,offline_access" });
  const unauth = await h.post(call(1, "echo"), null);
  assertEquals(unauth.status, 401);
  assertEquals(
    unauth.headers.get("www-authenticate"),
    `Bearer realm="mcp.example.com", resource_metadata="${PRM}", scope="mcp:read"`,
  );
  const meta = await h.fetch(new Request(`${ORIGIN}/.well-known/oauth-protected-resource/mcp`));
  assertEquals(JSON.parse(meta.text).scopes_supported, ["mcp:read", "mcp:admin", "mcp:tools", "files:secret"]);
  const ok = await h.post(call(2, "echo"), "mcp:tools");
  assertEquals(ok.status, 200, "offline_access is not required");
  assert(h.gw.app !== undefined);
  const cfg = config({ REQUIRED_SCOPES: "mcp:read,offline_access", SCOPE_RULES: RULES });
  assertEquals(cfg.requiredScopes, ["mcp:read"]);
  assertStringIncludes(cfg.warnings.join("\n"), "REQUIRED_SCOPES names offline_access: dropped");
  h.gw.close();
});

Deno.test("SCOPE_RULES: SCOPES_SUPPORTED, when set, is what metadata and the 401 say", async () => {
  const h = await harness({ SCOPES_SUPPORTED: "mcp:read,mcp:tools,offline_access" });
  const meta = await h.fetch(new Request(`${ORIGIN}/.well-known/oauth-protected-resource`));
  assertEquals(JSON.parse(meta.text).scopes_supported, ["mcp:read", "mcp:tools"]);
  const unauth = await h.post(call(1, "echo"), null);
  assertEquals(
    unauth.headers.get("www-authenticate"),
    `Bearer realm="mcp.example.com", resource_metadata="${PRM}", scope="mcp:read mcp:tools"`,
  );
  h.gw.close();
});

Deno.test("mcpPolicy(): the upstream sees the body bytes even for a chunked request", async () => {
  const h = await harness();
  const text = call(1, "safe_ünïcode");
  const bytes = new TextEncoder().encode(text);
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 7) c.enqueue(bytes.slice(i, i + 7));
      c.close();
    },
  });
  const r = await h.post(stream, "mcp:read");
  assertEquals(r.status, 200);
  assertEquals(h.net.upstreamRequests[0]!.body, text);
  assertEquals(new URL(h.net.upstreamRequests[0]!.url).origin, UPSTREAM);
  h.gw.close();
});
