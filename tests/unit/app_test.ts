import { assert, assertEquals, assertMatch, assertNotEquals, assertStringIncludes } from "@std/assert";
import { createGateway, type Gateway } from "../../src/app.ts";
import { createLogger } from "../../src/logging.ts";
import { claims, config, FakeNet, ISSUER, JWKS_URL, makeKey, sign, T0, UPSTREAM } from "./_fixtures.ts";

const rs = await makeKey("RS256", "rs1");
const attacker = await makeKey("RS256", "attacker");

const ORIGIN = "https://mcp.example.com";
const PRM_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const BARE_CHALLENGE =
  `Bearer realm="mcp.example.com", resource_metadata="${PRM_URL}", scope="mcp:read mcp:write mcp:admin"`;
const METADATA = JSON.stringify({
  resource: "https://mcp.example.com/mcp",
  authorization_servers: [ISSUER],
  scopes_supported: ["mcp:read", "mcp:write", "mcp:admin"],
  bearer_methods_supported: ["header"],
  resource_name: "mcp-gate",
});
const PEER = "203.0.113.9";
const BROWSER = "http://localhost:6274";

interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

interface SendInit extends RequestInit {
  token?: string;
  peer?: string;
}

interface Harness {
  gw: Gateway;
  net: FakeNet;
  lines: string[];
  clock: { now: number };
  token(overrides?: Record<string, unknown>): Promise<string>;
  send(path: string, init?: SendInit): Promise<Reply>;
  /** JSON lines logged with msg "request". */
  requestLogs(): Record<string, unknown>[];
}

async function harness(
  env: Record<string, string | undefined> = {},
  opts: { start?: boolean; primeEventStreams?: boolean } = {},
): Promise<Harness> {
  const clock = { now: T0 };
  const now = () => clock.now;
  const net = new FakeNet([rs.publicJwk]);
  const lines: string[] = [];
  const cfg = config({
    REQUIRED_SCOPES: "mcp:read,mcp:write",
    SCOPES_SUPPORTED: "mcp:read,mcp:write,mcp:admin",
    ...env,
  });
  const gw = createGateway(cfg, {
    fetch: net.fetch,
    now,
    log: createLogger("debug", (l) => lines.push(l), now),
    primeEventStreams: opts.primeEventStreams ?? false,
  });
  if (opts.start !== false) await gw.start();
  return {
    gw,
    net,
    lines,
    clock,
    token: (overrides = {}) => sign(rs, claims(clock.now, overrides)),
    async send(path, init = {}) {
      const { token, peer, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
      const res = await gw.fetch(new Request(`${ORIGIN}${path}`, { ...rest, headers }), { remoteAddr: peer ?? PEER });
      return { status: res.status, headers: res.headers, text: await res.text() };
    },
    requestLogs: () => lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "request"),
  };
}

function assertSecurityHeaders(h: Headers, what: string): void {
  assertEquals(
    [h.get("x-content-type-options"), h.get("x-frame-options"), h.get("referrer-policy")],
    ["nosniff", "DENY", "no-referrer"],
    what,
  );
}

function assertJsonError(r: Reply, error: string): void {
  assertEquals(r.headers.get("content-type"), "application/json");
  const body = JSON.parse(r.text);
  assertEquals(Object.keys(body).sort(), ["error", "error_description"]);
  assertEquals(body.error, error);
}

Deno.test("createGateway() serves the metadata document at both well-known paths", async (t) => {
  const h = await harness();
  for (const path of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
    await t.step(`GET ${path}`, async () => {
      const r = await h.send(path);
      assertEquals(r.status, 200);
      assertEquals(r.text, METADATA);
      assertEquals(r.headers.get("content-type"), "application/json");
      assertEquals(r.headers.get("cache-control"), "public, max-age=3600");
      assertEquals(r.headers.get("access-control-allow-origin"), "*");
      assertEquals(r.headers.get("content-length"), String(new TextEncoder().encode(METADATA).byteLength));
      assertEquals(r.headers.get("www-authenticate"), null);
      assertSecurityHeaders(r.headers, path);
    });
    await t.step(`HEAD ${path}`, async () => {
      const r = await h.send(path, { method: "HEAD" });
      assertEquals(r.status, 200);
      assertEquals(r.text, "");
      assertEquals(r.headers.get("content-type"), "application/json");
      assertEquals(r.headers.get("cache-control"), "public, max-age=3600");
      assertEquals(r.headers.get("content-length"), String(METADATA.length));
    });
    await t.step(`GET ${path} from any Origin`, async () => {
      const r = await h.send(path, { headers: { origin: "https://evil.example.com" } });
      assertEquals([r.status, r.headers.get("access-control-allow-origin")], [200, "*"]);
    });
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      await t.step(`${method} ${path} is 405`, async () => {
        const r = await h.send(path, { method, body: method === "DELETE" ? null : "{}" });
        assertEquals(r.status, 405);
        assertEquals(r.headers.get("allow"), "GET, HEAD, OPTIONS");
        assertJsonError(r, "method_not_allowed");
      });
    }
  }
  await t.step("nothing reached the upstream or needed a token", () => assertEquals(h.net.upstreamRequests, []));
  h.gw.close();
});

Deno.test("createGateway() answers /healthz always and /readyz once keys are loaded", async () => {
  const h = await harness({}, { start: false });
  const health = await h.send("/healthz");
  assertEquals([health.status, health.text], [200, '{"status":"ok"}']);
  assertEquals(health.headers.get("cache-control"), "no-store");
  const before = await h.send("/readyz");
  assertEquals(before.status, 503);
  assertEquals(JSON.parse(before.text).status, "starting");
  assertEquals(h.gw.ready, false);

  const early = await h.send("/mcp", { method: "POST", token: await h.token() });
  assertEquals(early.status, 503, "a valid token before keys are loaded is 503, not 401");
  assertJsonError(early, "temporarily_unavailable");
  assertEquals(early.headers.get("retry-after"), "5");

  await h.gw.start();
  assertEquals(h.gw.ready, true);
  const after = await h.send("/readyz");
  assertEquals([after.status, after.text], [200, '{"status":"ready"}']);
  assertEquals(h.net.callsTo(`${ISSUER}/.well-known/oauth-authorization-server`), 1, "discovered via RFC 8414");
  assertEquals(h.net.callsTo(JWKS_URL), 1);
  assertEquals((await h.send("/healthz")).status, 200);
  h.gw.close();
});

Deno.test("createGateway() answers requests without a token with a bare 401 challenge", async (t) => {
  const h = await harness();
  const cases: { description: string; input: { path: string; init: RequestInit } }[] = [
    { description: "POST /mcp", input: { path: "/mcp", init: { method: "POST", body: "{}" } } },
    { description: "GET /mcp", input: { path: "/mcp", init: {} } },
    { description: "DELETE /mcp", input: { path: "/mcp", init: { method: "DELETE" } } },
    { description: "PUT /other", input: { path: "/other", init: { method: "PUT", body: "x" } } },
    { description: "GET /", input: { path: "/", init: {} } },
    {
      description: "Host and X-Forwarded-* do not change the metadata URL",
      input: {
        path: "/mcp",
        init: {
          headers: { host: "evil.example.com", "x-forwarded-host": "evil.example.com", "x-forwarded-proto": "http" },
        },
      },
    },
    { description: "Basic credentials", input: { path: "/mcp", init: { headers: { authorization: "Basic dTpw" } } } },
  ];
  for (const { description, input } of cases) {
    await t.step(description, async () => {
      const r = await h.send(input.path, input.init);
      assertEquals(r.status, 401);
      assertEquals(r.headers.get("www-authenticate"), BARE_CHALLENGE);
      assertEquals(r.text, '{"error":"unauthorized","error_description":"Authentication required"}');
      assertEquals(r.headers.get("content-type"), "application/json");
      assertSecurityHeaders(r.headers, description);
    });
  }
  await t.step("HEAD /mcp", async () => {
    const r = await h.send("/mcp", { method: "HEAD" });
    assertEquals([r.status, r.headers.get("www-authenticate")], [401, BARE_CHALLENGE]);
  });
  assertEquals(h.net.upstreamRequests, []);
  h.gw.close();
});

Deno.test("createGateway() keeps path tricks away from the upstream", async (t) => {
  const h = await harness();
  const token = await h.token();
  // 401: needs a token like any upstream path; 404: a metadata URL that is not ours,
  // answered by the gateway itself. Either way nothing reaches the upstream.
  const cases: { description: string; input: string; expected: 401 | 404 }[] = [
    { description: "dot segments", input: "/.well-known/../mcp", expected: 401 },
    {
      description: "dot segments out of the metadata path",
      input: "/.well-known/oauth-protected-resource/../../mcp",
      expected: 401,
    },
    {
      description: "encoded dot segments",
      input: "/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/mcp",
      expected: 401,
    },
    { description: "dot segments out of /healthz", input: "/healthz/../mcp", expected: 401 },
    { description: "double slash", input: "//mcp", expected: 401 },
    { description: "double slash before a public path", input: "//healthz", expected: 401 },
    { description: "encoded slash", input: "/.well-known/oauth-protected-resource%2Fmcp", expected: 401 },
    { description: "below the metadata path", input: "/.well-known/oauth-protected-resource/mcp/extra", expected: 404 },
    { description: "trailing slash on /healthz", input: "/healthz/", expected: 401 },
    { description: "case of /healthz", input: "/HEALTHZ", expected: 401 },
    { description: "NUL", input: "/mcp%00", expected: 401 },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${input}`, async () => {
      const r = await h.send(input, { method: "POST", body: "{}" });
      assertEquals(
        [r.status, r.headers.get("www-authenticate")],
        [expected, expected === 401 ? BARE_CHALLENGE : null],
      );
    });
  }
  assertEquals(h.net.upstreamRequests, []);
  await t.step("with a token the normalised path is what the upstream gets", async () => {
    await h.send("/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/mcp", { method: "POST", body: "{}", token });
    await h.send("//mcp", { method: "POST", body: "{}", token });
    assertEquals(h.net.upstreamRequests.map((r) => r.url), [`${UPSTREAM}/mcp`, `${UPSTREAM}//mcp`]);
  });
  h.gw.close();
});

Deno.test("createGateway() answers bad tokens with 401 invalid_token", async (t) => {
  const h = await harness();
  const cases: {
    description: string;
    input: () => Promise<string>;
    expected: { description: string; reason: string };
  }[] = [
    {
      description: "expired",
      input: () => h.token({ exp: Math.floor(T0 / 1000) - 120 }),
      expected: { description: "The access token has expired", reason: "expired" },
    },
    {
      description: "wrong audience",
      input: () => h.token({ aud: "https://mcp.example.com/mcp/" }),
      expected: { description: "The access token is not meant for this resource", reason: "bad_audience" },
    },
    {
      description: "forged signature",
      input: () => sign({ ...attacker, kid: "rs1" }, claims(T0)),
      expected: { description: "The access token signature is invalid", reason: "bad_signature" },
    },
    {
      description: "malformed",
      input: () => Promise.resolve("not-a-jwt"),
      expected: { description: "The access token is not a well-formed JWT", reason: "malformed" },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const r = await h.send("/mcp", { method: "POST", body: "{}", token: await input() });
      assertEquals(r.status, 401);
      assertEquals(
        r.headers.get("www-authenticate"),
        `Bearer realm="mcp.example.com", resource_metadata="${PRM_URL}", scope="mcp:read mcp:write mcp:admin", error="invalid_token", ` +
          `error_description="${expected.description}"`,
      );
      assertEquals(r.text, JSON.stringify({ error: "invalid_token", error_description: expected.description }));
      assertEquals(h.requestLogs().at(-1)?.reason, expected.reason);
    });
  }
  assertEquals(h.net.upstreamRequests, []);
  h.gw.close();
});

Deno.test("createGateway() answers a token lacking REQUIRED_SCOPES with 403 insufficient_scope", async () => {
  const h = await harness();
  const r = await h.send("/mcp", { method: "POST", body: "{}", token: await h.token({ scope: "mcp:read" }) });
  assertEquals(r.status, 403);
  assertEquals(
    r.headers.get("www-authenticate"),
    `Bearer realm="mcp.example.com", resource_metadata="${PRM_URL}", scope="mcp:read mcp:write", error="insufficient_scope", ` +
      `error_description="The token lacks the required scope mcp:write"`,
  );
  assertEquals(
    r.text,
    '{"error":"insufficient_scope","error_description":"The token lacks the required scope mcp:write"}',
  );
  assertSecurityHeaders(r.headers, "403");
  const log = h.requestLogs().at(-1)!;
  assertEquals([log.status, log.reason, log.sub], [403, "insufficient_scope", "user-123"]);
  assertEquals(h.net.upstreamRequests, []);
  h.gw.close();
});

Deno.test("createGateway() refuses a token in the query string and double credentials with 400", async (t) => {
  const h = await harness();
  const token = await h.token();
  await t.step("access_token in the query", async () => {
    const r = await h.send(`/mcp?access_token=${token}`, { method: "GET" });
    assertEquals(r.status, 400);
    assertStringIncludes(
      r.headers.get("www-authenticate")!,
      `Bearer realm="mcp.example.com", resource_metadata="${PRM_URL}"`,
    );
    assertStringIncludes(r.headers.get("www-authenticate")!, 'error="invalid_request"');
    assertJsonError(r, "invalid_request");
    assertEquals(r.text.includes(token), false);
  });
  await t.step("access_token in the query and a valid header", async () => {
    const r = await h.send(`/mcp?access_token=${token}`, { method: "POST", body: "{}", token });
    assertEquals(r.status, 400);
  });
  await t.step("two Authorization headers", async () => {
    const headers = new Headers();
    headers.append("authorization", `Bearer ${token}`);
    headers.append("authorization", `Bearer ${token}`);
    const r = await h.send("/mcp", { method: "POST", body: "{}", headers });
    assertEquals(r.status, 400);
    assertStringIncludes(r.headers.get("www-authenticate")!, 'error="invalid_request"');
  });
  assertEquals(h.net.upstreamRequests, []);
  assertEquals(h.lines.some((l) => l.includes(token) || l.includes(token.split(".")[2]!)), false, "token not logged");
  h.gw.close();
});

Deno.test("createGateway() refuses a disallowed Origin with 403 before authentication", async (t) => {
  const h = await harness();
  const token = await h.token();
  for (const [description, origin] of [["other site", "https://evil.example.com"], ["opaque", "null"]] as const) {
    for (const withToken of [true, false]) {
      await t.step(`${description}, ${withToken ? "valid token" : "no token"}`, async () => {
        const r = await h.send("/mcp", {
          method: "POST",
          body: "{}",
          headers: { origin },
          ...(withToken ? { token } : {}),
        });
        assertEquals(r.status, 403);
        assertEquals(r.headers.get("www-authenticate"), null);
        assertEquals(r.headers.get("access-control-allow-origin"), null);
        assertEquals(r.headers.get("content-type"), "application/json");
        assertSecurityHeaders(r.headers, "403 origin");
        assertEquals(h.requestLogs().at(-1)?.reason, "origin_not_allowed");
      });
    }
  }
  await t.step("the upstream saw nothing", () => assertEquals(h.net.upstreamRequests, []));
  await t.step("allowed origins and no Origin pass", async () => {
    for (const headers of [{ origin: ORIGIN }, { origin: BROWSER }, {} as Record<string, string>]) {
      const r = await h.send("/mcp", { method: "POST", body: "{}", headers, token });
      assertEquals(r.status, 200, JSON.stringify(headers));
    }
    assertEquals(h.net.upstreamRequests.length, 3);
  });
  h.gw.close();
});

Deno.test("createGateway() answers CORS preflights without authentication", async (t) => {
  const h = await harness();
  await t.step("allowed origin on /mcp", async () => {
    const r = await h.send("/mcp", {
      method: "OPTIONS",
      headers: {
        origin: BROWSER,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, mcp-protocol-version, mcp-param-region",
      },
    });
    assertEquals(r.status, 204);
    assertEquals(r.text, "");
    assertEquals(r.headers.get("access-control-allow-origin"), BROWSER);
    assertEquals(r.headers.get("access-control-allow-methods"), "GET, POST, DELETE, OPTIONS");
    assertEquals(
      r.headers.get("access-control-allow-headers"),
      "Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, " +
        "Last-Event-ID, traceparent, tracestate, mcp-param-region",
    );
    assertEquals(
      r.headers.get("access-control-expose-headers"),
      "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version",
    );
    assertEquals(r.headers.get("access-control-max-age"), "86400");
    assertEquals(r.headers.get("vary"), "Origin");
    assertEquals(r.headers.get("www-authenticate"), null);
    assertSecurityHeaders(r.headers, "preflight");
  });
  await t.step("metadata path from any origin", async () => {
    const r = await h.send("/.well-known/oauth-protected-resource/mcp", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example.com", "access-control-request-method": "GET" },
    });
    assertEquals([r.status, r.headers.get("access-control-allow-origin")], [204, "*"]);
  });
  await t.step("without Origin", async () => {
    const r = await h.send("/mcp", { method: "OPTIONS" });
    assertEquals([r.status, r.headers.get("allow")], [204, "GET, POST, DELETE, OPTIONS"]);
    assertEquals(r.headers.get("access-control-allow-origin"), null);
  });
  await t.step("disallowed origin gets no CORS grant", async () => {
    const r = await h.send("/mcp", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example.com", "access-control-request-method": "POST" },
    });
    assertEquals(r.headers.get("access-control-allow-origin"), null);
    assertNotEquals(r.status, 401);
  });
  assertEquals(h.net.upstreamRequests, []);
  h.gw.close();
});

Deno.test("createGateway() adds CORS headers to 401 and 403 for allowed origins", async (t) => {
  const h = await harness();
  const cases: { description: string; input: () => Promise<SendInit>; expected: number }[] = [
    { description: "401 bare", input: () => Promise.resolve({}), expected: 401 },
    { description: "401 invalid_token", input: () => Promise.resolve({ token: "x.y.z" }), expected: 401 },
    {
      description: "403 insufficient_scope",
      input: async () => ({ token: await h.token({ scope: "" }) }),
      expected: 403,
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const init = await input();
      const r = await h.send("/mcp", { method: "POST", body: "{}", ...init, headers: { origin: BROWSER } });
      assertEquals(r.status, expected);
      assertEquals(r.headers.get("access-control-allow-origin"), BROWSER);
      assertEquals(
        r.headers.get("access-control-expose-headers"),
        "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version",
      );
      assertEquals(r.headers.get("vary"), "Origin");
      assert(r.headers.get("www-authenticate")?.startsWith("Bearer "));
    });
  }
  h.gw.close();
});

Deno.test("createGateway() adds CORS headers to every other response for allowed origins", async (t) => {
  const h = await harness({ MAX_REQUEST_BODY: "100" });
  const token = await h.token();
  const cases: { description: string; input: { path: string; init: SendInit }; expected: number }[] = [
    { description: "200 proxied", input: { path: "/mcp", init: { method: "POST", body: "{}", token } }, expected: 200 },
    {
      description: "400 token in query",
      input: { path: `/mcp?access_token=${token}`, init: {} },
      expected: 400,
    },
    {
      description: "413 declared body too large",
      input: {
        path: "/mcp",
        init: { method: "POST", body: "x".repeat(200), token, headers: { "content-length": "200" } },
      },
      expected: 413,
    },
    {
      description: "404 authorization server probe",
      input: { path: "/.well-known/oauth-authorization-server", init: {} },
      expected: 404,
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const r = await h.send(input.path, { ...input.init, headers: { ...input.init.headers, origin: BROWSER } });
      assertEquals(r.status, expected);
      assertEquals(r.headers.get("access-control-allow-origin"), BROWSER);
      assertEquals(
        r.headers.get("access-control-expose-headers"),
        "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version",
      );
    });
  }
  h.gw.close();
});

Deno.test("createGateway() forwards a verified request with clean headers", async () => {
  const h = await harness();
  h.net.upstreamHandler = () =>
    new Response('{"jsonrpc":"2.0","id":1,"result":{}}', {
      status: 200,
      headers: {
        "content-type": "application/json",
        "mcp-session-id": "sess-new",
        "server": "uvicorn",
        "x-powered-by": "Express",
        "connection": "close",
        "keep-alive": "timeout=5",
      },
    });
  const token = await h.token({ email: "u@example.com" });
  const body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}';
  const r = await h.send("/mcp?x=1&y=%2F", {
    method: "POST",
    body,
    token,
    headers: {
      origin: BROWSER,
      "content-type": "application/json",
      "accept": "application/json, text/event-stream",
      "mcp-session-id": "sess-123",
      "mcp-protocol-version": "2025-11-25",
      "mcp-method": "tools/call",
      "mcp-name": "get_weather",
      "mcp-param-region": "eu",
      "last-event-id": "evt-9",
      "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "tracestate": "v=1",
      "cookie": "session=abc",
      "x-auth-subject": "admin",
      "x-auth-scopes": "everything",
      "x-forwarded-for": "1.1.1.1",
      "x-request-id": "req-42",
      "user-agent": "test-client/1.0",
    },
  });
  assertEquals(r.status, 200);
  assertEquals(r.text, '{"jsonrpc":"2.0","id":1,"result":{}}');
  assertEquals(r.headers.get("mcp-session-id"), "sess-new");
  assertEquals(r.headers.get("server"), null);
  assertEquals(r.headers.get("x-powered-by"), null);
  assertEquals(r.headers.get("connection"), null);
  assertEquals(r.headers.get("keep-alive"), null);
  assertEquals(r.headers.get("access-control-allow-origin"), BROWSER);
  assertEquals(r.headers.get("x-request-id"), "req-42");

  assertEquals(h.net.upstreamRequests.length, 1);
  const up = h.net.upstreamRequests[0]!;
  assertEquals(up.method, "POST");
  assertEquals(up.url, `${UPSTREAM}/mcp?x=1&y=%2F`);
  assertEquals(up.body, body);
  const expected: Record<string, string | null> = {
    "authorization": null,
    "cookie": null,
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-session-id": "sess-123",
    "mcp-protocol-version": "2025-11-25",
    "mcp-method": "tools/call",
    "mcp-name": "get_weather",
    "mcp-param-region": "eu",
    "last-event-id": "evt-9",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "v=1",
    "user-agent": "test-client/1.0",
    "x-auth-subject": "user-123",
    "x-auth-scopes": "mcp:read mcp:write",
    "x-auth-client-id": "client-abc",
    "x-forwarded-for": PEER,
    "x-forwarded-proto": "https",
    "x-forwarded-host": "mcp.example.com",
    "x-request-id": "req-42",
  };
  for (const [name, value] of Object.entries(expected)) assertEquals(up.headers.get(name), value, name);

  const log = h.requestLogs().at(-1)!;
  assertEquals(Object.keys(log).filter((k) => log[k] !== undefined).sort(), [
    "client_ip",
    "duration_ms",
    "level",
    "mcp_method",
    "mcp_name",
    "method",
    "msg",
    "path",
    "request_id",
    "status",
    "sub",
    "time",
    "user_agent",
  ]);
  assertEquals(
    [log.level, log.method, log.path, log.status, log.client_ip, log.user_agent, log.request_id, log.sub],
    ["info", "POST", "/mcp", 200, PEER, "test-client/1.0", "req-42", "user-123"],
  );
  // Without SCOPE_RULES the MCP fields come from the client's request-metadata headers.
  assertEquals([log.mcp_method, log.mcp_name], ["tools/call", "get_weather"]);
  assertEquals(typeof log.duration_ms, "number");
  assertEquals(h.lines.some((l) => l.includes(token.split(".")[2]!)), false, "token not logged");
  h.gw.close();
});

Deno.test("createGateway() maps identity options onto upstream headers", async (t) => {
  await t.step("IDENTITY_HEADERS=false sends none and drops the client's", async () => {
    const h = await harness({ IDENTITY_HEADERS: "false" });
    await h.send("/mcp", {
      method: "POST",
      body: "{}",
      token: await h.token(),
      headers: { "x-auth-subject": "admin" },
    });
    const up = h.net.upstreamRequests[0]!;
    assertEquals(
      [up.headers.get("x-auth-subject"), up.headers.get("x-auth-scopes"), up.headers.get("x-auth-client-id")],
      [null, null, null],
    );
    h.gw.close();
  });
  await t.step("CLAIM_HEADERS maps claims; the client's copy is dropped", async () => {
    const h = await harness({ CLAIM_HEADERS: "email=X-Auth-Email,groups=X-Auth-Groups,tenant=X-Auth-Tenant" });
    await h.send("/mcp", {
      method: "POST",
      body: "{}",
      token: await h.token({ email: "u@example.com", groups: ["a", "b"] }),
      headers: { "x-auth-email": "evil@example.com", "x-auth-tenant": "evil" },
    });
    const up = h.net.upstreamRequests[0]!;
    assertEquals(
      [up.headers.get("x-auth-email"), up.headers.get("x-auth-groups"), up.headers.get("x-auth-tenant")],
      ["u@example.com", '["a","b"]', null],
    );
    h.gw.close();
  });
  await t.step("FORWARD_ACCESS_TOKEN=true passes the token", async () => {
    const h = await harness({ FORWARD_ACCESS_TOKEN: "true" });
    const token = await h.token();
    await h.send("/mcp", { method: "POST", body: "{}", token });
    assertEquals(h.net.upstreamRequests[0]!.headers.get("authorization"), `Bearer ${token}`);
    h.gw.close();
  });
});

Deno.test("createGateway() sets X-Forwarded-For from the peer and trusted proxies only", async (t) => {
  await t.step("untrusted peer: spoofed chain replaced by the peer", async () => {
    const h = await harness({ TRUSTED_PROXIES: "10.0.0.0/8" });
    await h.send("/mcp", {
      method: "POST",
      body: "{}",
      token: await h.token(),
      headers: { "x-forwarded-for": "1.1.1.1", "x-forwarded-host": "evil.example.com", "x-forwarded-proto": "http" },
    });
    const up = h.net.upstreamRequests[0]!;
    assertEquals(
      [up.headers.get("x-forwarded-for"), up.headers.get("x-forwarded-host"), up.headers.get("x-forwarded-proto")],
      [PEER, "mcp.example.com", "https"],
    );
    assertEquals(h.requestLogs().at(-1)!.client_ip, PEER);
    h.gw.close();
  });
  await t.step("trusted proxy: its chain is extended with the proxy's own address", async () => {
    const h = await harness({ TRUSTED_PROXIES: "10.0.0.0/8" });
    await h.send("/mcp", {
      method: "POST",
      body: "{}",
      token: await h.token(),
      peer: "10.0.0.1",
      headers: {
        "x-forwarded-for": "198.51.100.7",
        "x-forwarded-host": "public.example.com",
        "x-forwarded-proto": "https",
      },
    });
    const up = h.net.upstreamRequests[0]!;
    assertEquals(h.requestLogs().at(-1)!.client_ip, "198.51.100.7");
    assertEquals(up.headers.get("x-forwarded-host"), "public.example.com");
    assertEquals(up.headers.get("x-forwarded-for"), "198.51.100.7, 10.0.0.1");
    h.gw.close();
  });
});

Deno.test("createGateway() passes upstream statuses and bodies through", async (t) => {
  const h = await harness();
  const token = await h.token();
  const cases: { description: string; input: () => Response; expected: { status: number; text: string } }[] = [
    { description: "202 empty", input: () => new Response(null, { status: 202 }), expected: { status: 202, text: "" } },
    {
      description: "400 JSON-RPC error",
      input: () => Response.json({ jsonrpc: "2.0", error: { code: -32600 } }, { status: 400 }),
      expected: { status: 400, text: '{"jsonrpc":"2.0","error":{"code":-32600}}' },
    },
    {
      description: "404 unknown session",
      input: () => new Response("Session not found", { status: 404 }),
      expected: { status: 404, text: "Session not found" },
    },
    {
      description: "405 no SSE stream",
      input: () => new Response(null, { status: 405, headers: { allow: "POST" } }),
      expected: { status: 405, text: "" },
    },
    { description: "204", input: () => new Response(null, { status: 204 }), expected: { status: 204, text: "" } },
    {
      description: "500 from upstream",
      input: () => new Response("boom", { status: 500 }),
      expected: { status: 500, text: "boom" },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      h.net.upstreamHandler = input;
      const r = await h.send("/mcp", { method: "POST", body: "{}", token });
      assertEquals({ status: r.status, text: r.text }, expected);
    });
  }
  await t.step("405 keeps its Allow header", async () => {
    h.net.upstreamHandler = () => new Response(null, { status: 405, headers: { allow: "POST" } });
    const r = await h.send("/mcp", { token });
    assertEquals(r.headers.get("allow"), "POST");
  });
  h.gw.close();
});

Deno.test("createGateway() turns upstream failures into 502/504 JSON", async (t) => {
  const h = await harness({ UPSTREAM_TIMEOUT: "50ms" });
  const token = await h.token();
  const cases: {
    description: string;
    input: (req: Request, signal: AbortSignal) => Response | Promise<Response>;
    expected: { status: number; error: string };
  }[] = [
    {
      description: "upstream 401",
      input: () => new Response("no", { status: 401, headers: { "www-authenticate": 'Bearer realm="up"' } }),
      expected: { status: 502, error: "upstream_auth_rejected" },
    },
    {
      description: "upstream 403",
      input: () => new Response("no", { status: 403 }),
      expected: { status: 502, error: "upstream_auth_rejected" },
    },
    {
      description: "connection refused",
      input: () => {
        throw new TypeError("error sending request: connection refused");
      },
      expected: { status: 502, error: "upstream_unreachable" },
    },
    {
      description: "no headers within UPSTREAM_TIMEOUT",
      input: (_req, signal) =>
        new Promise<Response>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
      expected: { status: 504, error: "upstream_timeout" },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      h.net.upstreamHandler = input;
      const r = await h.send("/mcp", { method: "POST", body: "{}", token, headers: { origin: BROWSER } });
      assertEquals(r.status, expected.status);
      assertJsonError(r, expected.error);
      assertEquals(r.headers.get("www-authenticate"), null);
      assertEquals(r.headers.get("access-control-allow-origin"), BROWSER);
      assertSecurityHeaders(r.headers, description);
      assertEquals(h.requestLogs().at(-1)!.reason, expected.error);
    });
  }
  h.gw.close();
});

Deno.test("createGateway() enforces MAX_REQUEST_BODY and MAX_HEADER_BYTES", async (t) => {
  const h = await harness({ MAX_REQUEST_BODY: "1000", MAX_HEADER_BYTES: "4096" });
  const token = await h.token();
  await t.step("declared Content-Length over the limit: 413 before the upstream", async () => {
    const r = await h.send("/mcp", {
      method: "POST",
      body: "x".repeat(1001),
      token,
      headers: { "content-length": "1001" },
    });
    assertEquals(r.status, 413);
    assertJsonError(r, "body_too_large");
    assertSecurityHeaders(r.headers, "413");
    assertEquals(h.net.upstreamRequests, []);
  });
  await t.step("body at the limit passes", async () => {
    const r = await h.send("/mcp", { method: "POST", body: "x".repeat(1000), token });
    assertEquals(r.status, 200);
    assertEquals(h.net.upstreamRequests.at(-1)!.body.length, 1000);
  });
  await t.step("streamed body without Content-Length over the limit: 413", async () => {
    const chunk = new TextEncoder().encode("y".repeat(400));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ < 5) c.enqueue(chunk);
        else c.close();
      },
    });
    const res = await h.gw.fetch(
      new Request(`${ORIGIN}/mcp`, {
        method: "POST",
        body,
        headers: { authorization: `Bearer ${token}` },
        // @ts-ignore: duplex is needed for a stream body
        duplex: "half",
      }),
      { remoteAddr: PEER },
    );
    await res.body?.cancel();
    assertEquals(res.status, 413);
  });
  await t.step("headers over MAX_HEADER_BYTES: 431", async () => {
    const r = await h.send("/mcp", { method: "POST", body: "{}", token, headers: { "x-big": "z".repeat(5000) } });
    assertEquals(r.status, 431);
    assertJsonError(r, "request_header_fields_too_large");
    assertSecurityHeaders(r.headers, "431");
  });
  await t.step("431 even on public paths", async () => {
    const r = await h.send("/healthz", { headers: { "x-big": "z".repeat(5000) } });
    assertEquals(r.status, 431);
  });
  h.gw.close();
});

Deno.test("createGateway() streams SSE responses without buffering", async () => {
  const h = await harness();
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const enc = new TextEncoder();
  h.net.upstreamHandler = () =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(c) {
          c.enqueue(enc.encode("event: message\ndata: first\n\n"));
          await released;
          c.enqueue(enc.encode("event: message\ndata: second\n\n"));
          c.close();
        },
      }),
      { headers: { "content-type": "text/event-stream", "cache-control": "max-age=60" } },
    );
  const res = await h.gw.fetch(
    new Request(`${ORIGIN}/mcp`, {
      headers: { authorization: `Bearer ${await h.token()}`, accept: "text/event-stream" },
    }),
    { remoteAddr: PEER },
  );
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "text/event-stream");
  assertEquals(res.headers.get("x-accel-buffering"), "no");
  assertEquals(res.headers.get("cache-control"), "no-cache");
  const reader = res.body!.getReader();
  const first = await reader.read();
  assertEquals(new TextDecoder().decode(first.value), "event: message\ndata: first\n\n");
  release();
  let rest = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  assertEquals(rest, "event: message\ndata: second\n\n");
  h.gw.close();
});

Deno.test("createGateway() primes event streams with an SSE comment where the runtime needs it", async (t) => {
  // Bun sends the end of the response head only with the first body chunk: a quiet
  // stream would leave the client waiting for headers, so it starts with a comment line.
  for (const prime of [true, false]) {
    await t.step(`primeEventStreams: ${prime}`, async () => {
      const h = await harness({}, { primeEventStreams: prime });
      const enc = new TextEncoder();
      h.net.upstreamHandler = (req) =>
        new URL(req.url).pathname === "/json"
          ? Response.json({ ok: true })
          : new Response(enc.encode("data: one\n\n"), { headers: { "content-type": "text/event-stream" } });
      const sse = await h.send("/mcp", { token: await h.token(), headers: { accept: "text/event-stream" } });
      assertEquals(sse.text, prime ? ":\n\ndata: one\n\n" : "data: one\n\n");
      const json = await h.send("/json", { token: await h.token() });
      assertEquals(json.text, '{"ok":true}');
      h.gw.close();
    });
  }
});

Deno.test("createGateway() puts security headers on its own responses and a request id on all", async (t) => {
  const h = await harness();
  const token = await h.token();
  const cases: { description: string; input: { path: string; init: SendInit } }[] = [
    { description: "metadata", input: { path: "/.well-known/oauth-protected-resource", init: {} } },
    { description: "healthz", input: { path: "/healthz", init: {} } },
    { description: "readyz", input: { path: "/readyz", init: {} } },
    { description: "401", input: { path: "/mcp", init: {} } },
    { description: "404 probe", input: { path: "/.well-known/openid-configuration", init: {} } },
    { description: "preflight", input: { path: "/mcp", init: { method: "OPTIONS", headers: { origin: BROWSER } } } },
    {
      description: "405",
      input: { path: "/.well-known/oauth-protected-resource", init: { method: "POST", body: "" } },
    },
  ];
  for (const { description, input } of cases) {
    await t.step(description, async () => {
      const r = await h.send(input.path, input.init);
      assertSecurityHeaders(r.headers, description);
      assertMatch(
        r.headers.get("x-request-id") ?? "",
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    });
  }
  await t.step("a well-formed X-Request-Id is echoed", async () => {
    const r = await h.send("/healthz", { headers: { "x-request-id": "abc-123.x:y_z" } });
    assertEquals(r.headers.get("x-request-id"), "abc-123.x:y_z");
  });
  await t.step("a malformed X-Request-Id is replaced", async () => {
    for (const bad of ["has space", "a".repeat(129), "<script>", "x\ty"]) {
      const r = await h.send("/healthz", { headers: { "x-request-id": bad } });
      assertNotEquals(r.headers.get("x-request-id"), bad);
      assertMatch(r.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
    }
  });
  await t.step("proxied responses carry the request id; the upstream got the same id", async () => {
    const r = await h.send("/mcp", { method: "POST", body: "{}", token });
    const id = r.headers.get("x-request-id");
    assertMatch(id ?? "", /^[0-9a-f-]{36}$/);
    assertEquals(h.net.upstreamRequests.at(-1)!.headers.get("x-request-id"), id);
  });
  h.gw.close();
});

Deno.test("createGateway() answers authorization-server probes with 404 and no challenge", async (t) => {
  const h = await harness();
  for (
    const path of [
      "/.well-known/oauth-authorization-server",
      "/.well-known/oauth-authorization-server/mcp",
      "/.well-known/openid-configuration",
    ]
  ) {
    await t.step(path, async () => {
      const r = await h.send(path);
      assertEquals(r.status, 404);
      assertEquals(r.headers.get("www-authenticate"), null);
      assertJsonError(r, "not_found");
    });
  }
  assertEquals(h.net.upstreamRequests, []);
  h.gw.close();
});

Deno.test("createGateway() logs one line per request with the reason and never the token", async (t) => {
  const h = await harness();
  const cases: {
    description: string;
    input: () => Promise<{ path: string; token?: string }>;
    expected: { status: number; reason: string | undefined; level: string; hint?: string };
  }[] = [
    {
      description: "missing token",
      input: () => Promise.resolve({ path: "/mcp" }),
      expected: { status: 401, reason: "missing_token", level: "warn" },
    },
    {
      description: "expired",
      input: async () => ({ path: "/mcp", token: await h.token({ exp: Math.floor(T0 / 1000) - 3600 }) }),
      expected: { status: 401, reason: "expired", level: "warn" },
    },
    {
      description: "audience near miss",
      input: async () => ({ path: "/mcp", token: await h.token({ aud: "https://mcp.example.com/mcp/" }) }),
      expected: { status: 401, reason: "bad_audience", level: "warn", hint: "only by a trailing slash" },
    },
    {
      description: "unknown kid",
      input: async () => ({ path: "/mcp", token: await sign({ ...rs, kid: "other" }, claims(T0)) }),
      expected: { status: 401, reason: "unknown_kid", level: "warn" },
    },
    {
      description: "token in query",
      input: async () => ({ path: `/mcp?access_token=${await h.token()}` }),
      expected: { status: 400, reason: "token_in_query", level: "warn" },
    },
    {
      description: "success",
      input: async () => ({ path: "/mcp", token: await h.token() }),
      expected: { status: 200, reason: undefined, level: "info" },
    },
  ];
  const tokens: string[] = [];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const { path, token } = await input();
      if (token) tokens.push(token);
      const q = /access_token=([^&]+)/.exec(path)?.[1];
      if (q) tokens.push(q);
      const before = h.requestLogs().length;
      await h.send(path, { method: "POST", body: "{}", ...(token ? { token } : {}) });
      const logs = h.requestLogs();
      assertEquals(logs.length, before + 1, "one line per request");
      const log = logs.at(-1)!;
      assertEquals([log.status, log.reason, log.level], [expected.status, expected.reason, expected.level]);
      if (expected.hint) assertStringIncludes(String(log.hint), expected.hint);
      for (const k of ["time", "msg", "method", "path", "duration_ms", "client_ip", "user_agent", "request_id"]) {
        assert(k in log, `log has ${k}`);
      }
    });
  }
  await t.step("no token or signature appears in any log line", () => {
    for (const tk of tokens) {
      const sig = tk.split(".")[2]!;
      assertEquals(h.lines.filter((l) => l.includes(tk) || l.includes(sig)), []);
    }
  });
  h.gw.close();
});

Deno.test("createGateway() logs start-up key loading", async () => {
  const h = await harness();
  const logs = h.lines.map((l) => JSON.parse(l));
  const loaded = logs.find((l) => l.msg === "jwks loaded");
  assert(loaded, "jwks loaded line");
  assertEquals([loaded.level, loaded.issuer, loaded.keys, loaded.jwks_uri], ["info", ISSUER, 1, JWKS_URL]);
  assertEquals(logs.some((l) => l.msg.includes("S256")), false, "no PKCE warning when S256 is listed");
  h.gw.close();
});

Deno.test("createGateway() warns at start-up when the authorization server lacks S256", async () => {
  const clock = { now: T0 };
  const net = new FakeNet([rs.publicJwk]);
  net.metadata = { ...net.metadata, code_challenge_methods_supported: ["plain"] };
  const lines: string[] = [];
  const gw = createGateway(config(), {
    fetch: net.fetch,
    now: () => clock.now,
    log: createLogger("debug", (l) => lines.push(l)),
  });
  await gw.start();
  const warn = lines.map((l) => JSON.parse(l)).find((l) => l.level === "warn" && String(l.msg).includes("S256"));
  assert(warn, "S256 warning");
  gw.close();
});

Deno.test("createGateway() puts AUTH_REALM in every challenge and RESOURCE_DOCUMENTATION in the metadata", async (t) => {
  await t.step("AUTH_REALM set: realm first in the 401 and the 403", async () => {
    const h = await harness({ AUTH_REALM: "corp tools" });
    const bare = await h.send("/mcp", { method: "POST", body: "{}" });
    assertEquals(
      bare.headers.get("www-authenticate"),
      `Bearer realm="corp tools", resource_metadata="${PRM_URL}", scope="mcp:read mcp:write mcp:admin"`,
    );
    const r = await h.send("/mcp", { method: "POST", body: "{}", token: await h.token({ scope: "mcp:read" }) });
    assertEquals(r.status, 403);
    assertStringIncludes(r.headers.get("www-authenticate")!, 'Bearer realm="corp tools", resource_metadata=');
    h.gw.close();
  });
  await t.step("AUTH_REALM empty: no realm parameter", async () => {
    const h = await harness({ AUTH_REALM: "" });
    const bare = await h.send("/mcp", { method: "POST", body: "{}" });
    assertEquals(
      bare.headers.get("www-authenticate"),
      `Bearer resource_metadata="${PRM_URL}", scope="mcp:read mcp:write mcp:admin"`,
    );
    h.gw.close();
  });
  await t.step("RESOURCE_DOCUMENTATION appears in the metadata document only when set", async () => {
    const withDoc = await harness({ RESOURCE_DOCUMENTATION: "https://docs.example.com/mcp" });
    const doc = JSON.parse((await withDoc.send("/.well-known/oauth-protected-resource/mcp", {})).text);
    assertEquals(doc.resource_documentation, "https://docs.example.com/mcp");
    withDoc.gw.close();
    const without = await harness();
    const plain = JSON.parse((await without.send("/.well-known/oauth-protected-resource/mcp", {})).text);
    assertEquals("resource_documentation" in plain, false);
    without.gw.close();
  });
});
