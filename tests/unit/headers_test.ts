import { assertEquals } from "@std/assert";
import {
  clientResponseHeaders as buildResponseHeaders,
  type ForwardedInfo,
  requestHeaderFilter,
  type UpstreamIdentity,
  upstreamRequestHeaders as buildRequestHeaders,
} from "../../src/proxy/headers.ts";
import { stripAccessToken, upstreamTarget } from "../../src/proxy/forward.ts";

/** The builders return plain records (the runtimes' fastest init); the tests read them as Headers. */
function upstreamRequestHeaders(...args: Parameters<typeof buildRequestHeaders>): Headers {
  return new Headers(buildRequestHeaders(...args));
}
function clientResponseHeaders(upstream: Headers): Headers {
  return new Headers(buildResponseHeaders(upstream));
}

/** Headers as a sorted list of [lower-case name, value]. */
function entries(h: Headers): [string, string][] {
  return [...h.entries()].sort(([a], [b]) => a.localeCompare(b));
}

const McpHeaders: Record<string, string> = {
  "accept": "application/json, text/event-stream",
  "content-type": "application/json",
  "last-event-id": "evt-41",
  "mcp-method": "tools/call",
  "mcp-name": "get_weather",
  "mcp-param-foo": "bar",
  "mcp-protocol-version": "2025-11-25",
  "mcp-session-id": "sess-123",
  "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  "tracestate": "vendor=abc",
  "user-agent": "claude-user/1.0",
};

const Fwd: ForwardedInfo = {
  peer: "203.0.113.9",
  proto: "https",
  host: "mcp.example.com",
  priorForwardedFor: null,
};
/** No claim headers, no STRIP_REQUEST_HEADERS. */
const Plain = requestHeaderFilter([], []);
const Identity: UpstreamIdentity = {
  sub: "user-123",
  scopes: ["mcp:read", "mcp:write"],
  clientId: "client-abc",
  extra: [],
};

Deno.test("upstreamRequestHeaders() strips credentials, hop-by-hop and spoofed headers", () => {
  const incoming = new Headers({
    ...McpHeaders,
    "authorization": "Bearer secret",
    "cookie": "session=abc",
    "proxy-authorization": "Basic xyz",
    "host": "mcp.example.com",
    "content-length": "42",
    "accept-encoding": "gzip, br",
    "connection": "keep-alive, X-Hop-Custom",
    "x-hop-custom": "1",
    "keep-alive": "timeout=5",
    "proxy-connection": "keep-alive",
    "te": "trailers",
    "trailer": "x-checksum",
    "transfer-encoding": "chunked",
    "upgrade": "websocket",
    "x-auth-subject": "admin",
    "x-auth-scopes": "everything",
    "x-auth-client-id": "evil",
    "x-forwarded-for": "1.1.1.1",
    "x-forwarded-proto": "http",
    "x-forwarded-host": "evil.example.com",
  });
  const h = upstreamRequestHeaders(incoming, Identity, Fwd, Plain, null);
  assertEquals(
    entries(h),
    entries(
      new Headers({
        ...McpHeaders,
        "x-auth-subject": "user-123",
        "x-auth-scopes": "mcp:read mcp:write",
        "x-auth-client-id": "client-abc",
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "mcp.example.com",
      }),
    ),
  );
});

Deno.test("upstreamRequestHeaders() leaves the MCP headers byte for byte", () => {
  const h = upstreamRequestHeaders(new Headers(McpHeaders), null, Fwd, Plain, null);
  for (const [name, value] of Object.entries(McpHeaders)) assertEquals(h.get(name), value, name);
});

Deno.test("upstreamRequestHeaders() sets identity headers only from the verified token", async (t) => {
  const spoofed = {
    "x-auth-subject": "admin",
    "x-auth-scopes": "all",
    "x-auth-client-id": "evil",
    "x-auth-email": "evil@example.com",
  };
  const cases: {
    description: string;
    input: { identity: UpstreamIdentity | null; extraStripped: string[] };
    expected: Record<string, string | null>;
  }[] = [
    {
      description: "identity headers off: client copies still dropped",
      input: { identity: null, extraStripped: ["x-auth-email"] },
      expected: { "x-auth-subject": null, "x-auth-scopes": null, "x-auth-client-id": null, "x-auth-email": null },
    },
    {
      description: "full identity",
      input: { identity: Identity, extraStripped: [] },
      expected: {
        "x-auth-subject": "user-123",
        "x-auth-scopes": "mcp:read mcp:write",
        "x-auth-client-id": "client-abc",
        "x-auth-email": "evil@example.com",
      },
    },
    {
      description: "no client id: header absent, not the client's copy",
      input: { identity: { ...Identity, clientId: undefined }, extraStripped: [] },
      expected: { "x-auth-subject": "user-123", "x-auth-client-id": null },
    },
    {
      description: "no scopes: empty header",
      input: { identity: { ...Identity, scopes: [] }, extraStripped: [] },
      expected: { "x-auth-scopes": "" },
    },
    {
      description: "configured claim headers replace the client's copy",
      input: {
        identity: { ...Identity, extra: [["X-Auth-Email", "user@example.com"], ["X-Auth-Groups", '["a","b"]']] },
        extraStripped: ["x-auth-email", "x-auth-groups"],
      },
      expected: { "x-auth-email": "user@example.com", "x-auth-groups": '["a","b"]' },
    },
    {
      description: "configured claim missing from the token: client copy still dropped",
      input: { identity: Identity, extraStripped: ["x-auth-email"] },
      expected: { "x-auth-email": null },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const h = upstreamRequestHeaders(
        new Headers(spoofed),
        input.identity,
        Fwd,
        requestHeaderFilter(input.extraStripped, []),
        null,
      );
      for (const [name, value] of Object.entries(expected)) assertEquals(h.get(name), value, name);
    });
  }
});

Deno.test("upstreamRequestHeaders() drops client-sent identity headers other proxies set", async (t) => {
  const spoofed: Record<string, string> = {
    "X-Forwarded-User": "admin",
    "X-Forwarded-Email": "admin@example.com",
    "X-Forwarded-Preferred-Username": "admin",
    "X-Forwarded-Groups": "admins",
    "X-Forwarded-Access-Token": "stolen",
    "X-Auth-Request-User": "admin",
    "X-Auth-Request-Email": "admin@example.com",
    "x-auth-request-groups": "admins",
    "Remote-User": "admin",
    "Remote-Email": "admin@example.com",
    "Remote-Groups": "admins",
    "Remote-Name": "Admin",
    "X-Remote-User": "admin",
    "X-User": "admin",
    "X-Email": "admin@example.com",
    "X-Pomerium-Jwt-Assertion": "eyJ.x.y",
    "X-Pomerium-Claim-Email": "admin@example.com",
  };
  const kept: Record<string, string> = {
    ...McpHeaders,
    "x-forwarded-username": "not on the list",
    "x-users": "not on the list",
    "remote-addr": "not on the list",
    "x-pomerium": "no dash: not the prefix",
    "x-auth-requests": "not the prefix",
    "x-tenant": "acme",
    "x-internal-role": "viewer",
  };
  const cases: {
    description: string;
    input: { strip: string[]; claims: string[] };
    expected: { dropped: string[]; kept: string[] };
  }[] = [
    {
      description: "the built-in list and prefixes",
      input: { strip: [], claims: [] },
      expected: { dropped: Object.keys(spoofed), kept: Object.keys(kept) },
    },
    {
      description: "STRIP_REQUEST_HEADERS names and Prefix-* patterns, any case",
      input: { strip: ["x-tenant", "X-Internal-*"], claims: [] },
      expected: {
        dropped: [...Object.keys(spoofed), "x-tenant", "x-internal-role"],
        kept: Object.keys(kept).filter((k) => k !== "x-tenant" && k !== "x-internal-role"),
      },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const reported: string[][] = [];
      const h = upstreamRequestHeaders(
        new Headers({ ...spoofed, ...kept }),
        Identity,
        Fwd,
        requestHeaderFilter(input.claims, input.strip),
        null,
        (names) => reported.push(names),
      );
      for (const name of expected.dropped) assertEquals(h.get(name), null, `${name} reached the upstream`);
      for (const name of expected.kept) assertEquals(h.get(name), kept[name] ?? null, `${name} kept`);
      assertEquals(reported.length, 1, "one report per request");
      assertEquals(reported[0]!.toSorted(), expected.dropped.map((n) => n.toLowerCase()).toSorted());
    });
  }
});

Deno.test("upstreamRequestHeaders() reports dropped identity headers by name only, and nothing routine", () => {
  const reported: string[][] = [];
  const filter = requestHeaderFilter(["X-Auth-Email"], ["x-secret-*"]);
  upstreamRequestHeaders(
    new Headers({
      authorization: "Bearer abc",
      cookie: "a=b",
      connection: "keep-alive",
      "x-forwarded-for": "1.1.1.1",
      "x-request-id": "r1",
    }),
    Identity,
    Fwd,
    filter,
    null,
    (names) => reported.push(names),
  );
  assertEquals(reported, [], "credentials, hop-by-hop and X-Forwarded-For are routine: no report");
  upstreamRequestHeaders(
    new Headers({ "x-auth-email": "evil@example.com", "x-secret-key": "value-not-logged", "x-user": "admin" }),
    Identity,
    Fwd,
    filter,
    null,
    (names) => reported.push(names),
  );
  assertEquals(reported, [["x-auth-email", "x-secret-key", "x-user"]]);
});

Deno.test("upstreamRequestHeaders() keeps repeated and odd-case MCP headers' values as sent", () => {
  const incoming = new Headers([
    ["MCP-Method", "tools/call"],
    ["mcp-NAME", "=?base64?Z2V0X3dlYXRoZXI=?="],
    ["Mcp-Param-City", "=?base64?U8OjbyBQYXVsbw==?="],
    ["mcp-param-units", "metric"],
    ["Mcp-Param-Units", "si"],
  ]);
  const h = upstreamRequestHeaders(incoming, null, Fwd, Plain, null);
  assertEquals(h.get("mcp-method"), "tools/call");
  assertEquals(h.get("mcp-name"), "=?base64?Z2V0X3dlYXRoZXI=?=");
  assertEquals(h.get("mcp-param-city"), "=?base64?U8OjbyBQYXVsbw==?=");
  assertEquals(h.get("mcp-param-units"), "metric, si");
});

Deno.test("upstreamRequestHeaders() sets X-Forwarded-*", async (t) => {
  const cases: {
    description: string;
    input: { incoming: Record<string, string>; fwd: ForwardedInfo };
    expected: { for: string; proto: string; host: string | null; realIp: string | null };
  }[] = [
    {
      description: "direct client; spoofed values replaced",
      input: {
        incoming: { "x-forwarded-for": "1.1.1.1", "x-forwarded-proto": "http", "x-real-ip": "1.1.1.1" },
        fwd: Fwd,
      },
      expected: { for: "203.0.113.9", proto: "https", host: "mcp.example.com", realIp: null },
    },
    {
      description: "trusted prior chain is extended",
      input: {
        incoming: { "x-forwarded-for": "198.51.100.7, 10.0.0.2" },
        fwd: {
          peer: "10.0.0.1",
          proto: "https",
          host: "mcp.example.com",
          priorForwardedFor: "198.51.100.7, 10.0.0.2",
        },
      },
      expected: { for: "198.51.100.7, 10.0.0.2, 10.0.0.1", proto: "https", host: "mcp.example.com", realIp: null },
    },
    {
      description: "plain http, IPv6 client",
      input: {
        incoming: {},
        fwd: { peer: "2001:db8::7", proto: "http", host: "localhost:8080", priorForwardedFor: null },
      },
      expected: { for: "2001:db8::7", proto: "http", host: "localhost:8080", realIp: null },
    },
    {
      description: "no host known: X-Forwarded-Host absent",
      input: {
        incoming: { "x-forwarded-host": "evil.example.com" },
        fwd: { ...Fwd, host: "" },
      },
      expected: { for: "203.0.113.9", proto: "https", host: null, realIp: null },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const h = upstreamRequestHeaders(new Headers(input.incoming), null, input.fwd, Plain, null);
      assertEquals(
        {
          for: h.get("x-forwarded-for"),
          proto: h.get("x-forwarded-proto"),
          host: h.get("x-forwarded-host"),
          realIp: h.get("x-real-ip"),
        },
        expected,
      );
    });
  }
});

Deno.test("upstreamRequestHeaders() forwards the token only when asked", async (t) => {
  await t.step("off: the client's Authorization is dropped", () => {
    const h = upstreamRequestHeaders(new Headers({ authorization: "Bearer abc" }), Identity, Fwd, Plain, null);
    assertEquals(h.get("authorization"), null);
  });
  await t.step("on: re-set as Bearer, whatever the client's scheme spelling", () => {
    const h = upstreamRequestHeaders(new Headers({ authorization: "bearer   abc" }), Identity, Fwd, Plain, "abc");
    assertEquals(h.get("authorization"), "Bearer abc");
  });
});

Deno.test("upstreamRequestHeaders() does not modify the incoming headers", () => {
  const incoming = new Headers({ authorization: "Bearer abc", cookie: "a=b", "x-auth-subject": "x" });
  upstreamRequestHeaders(incoming, Identity, Fwd, Plain, null);
  assertEquals(entries(incoming), [["authorization", "Bearer abc"], ["cookie", "a=b"], ["x-auth-subject", "x"]]);
});

Deno.test("clientResponseHeaders() strips hop-by-hop and server identification", async (t) => {
  const cases: { description: string; input: Record<string, string>; expected: Record<string, string> }[] = [
    {
      description: "hop-by-hop, Connection-listed, Server, X-Powered-By",
      input: {
        "connection": "close, X-Upstream-Hop",
        "x-upstream-hop": "1",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        "trailer": "x-sum",
        "upgrade": "h2c",
        "proxy-authenticate": "Basic",
        "server": "uvicorn",
        "x-powered-by": "Express",
        "content-type": "application/json",
        "content-length": "17",
        "mcp-session-id": "sess-123",
        "mcp-protocol-version": "2025-11-25",
        "www-authenticate": 'Bearer realm="upstream"',
        "x-custom": "kept",
      },
      expected: {
        "content-type": "application/json",
        "content-length": "17",
        "mcp-session-id": "sess-123",
        "mcp-protocol-version": "2025-11-25",
        "www-authenticate": 'Bearer realm="upstream"',
        "x-custom": "kept",
      },
    },
    {
      description: "Content-Encoding and Content-Length dropped together",
      input: { "content-encoding": "gzip", "content-length": "120", "content-type": "application/json" },
      expected: { "content-type": "application/json" },
    },
    {
      description: "Content-Length alone is kept",
      input: { "content-length": "120", "content-type": "application/json" },
      expected: { "content-length": "120", "content-type": "application/json" },
    },
    {
      description: "SSE gets X-Accel-Buffering and Cache-Control: no-cache",
      input: { "content-type": "text/event-stream", "mcp-session-id": "s" },
      expected: {
        "content-type": "text/event-stream",
        "mcp-session-id": "s",
        "x-accel-buffering": "no",
        "cache-control": "no-cache",
      },
    },
    {
      description: "SSE with parameters and odd case; upstream Cache-Control replaced",
      input: { "content-type": "Text/Event-Stream; charset=utf-8", "cache-control": "max-age=60" },
      expected: {
        "content-type": "Text/Event-Stream; charset=utf-8",
        "x-accel-buffering": "no",
        "cache-control": "no-cache",
      },
    },
    {
      description: "JSON keeps the upstream Cache-Control",
      input: { "content-type": "application/json", "cache-control": "max-age=60" },
      expected: { "content-type": "application/json", "cache-control": "max-age=60" },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      assertEquals(entries(clientResponseHeaders(new Headers(input))), entries(new Headers(expected)));
    });
  }
});

Deno.test("clientResponseHeaders() keeps every Set-Cookie", () => {
  const upstream = new Headers([["set-cookie", "a=1; Path=/"], ["set-cookie", "b=2; HttpOnly"], ["x-kept", "1"]]);
  const h = clientResponseHeaders(upstream);
  assertEquals(h.getSetCookie(), ["a=1; Path=/", "b=2; HttpOnly"]);
  assertEquals(h.get("x-kept"), "1");
});

Deno.test("upstreamRequestHeaders() treats names such as __proto__ as plain names", () => {
  const out = buildRequestHeaders(
    new Headers([["__proto__", "x"], ["constructor", "y"], ["tostring", "z"]]),
    null,
    Fwd,
    Plain,
    null,
  );
  assertEquals(Object.getPrototypeOf(out), null);
  assertEquals([out["__proto__"], out["constructor"], out["tostring"]], ["x", "y", "z"]);
  assertEquals(new Headers(out).get("__proto__"), "x");
});

Deno.test("upstreamTarget() appends the request path and query to the base URL", async (t) => {
  const cases: { description: string; input: [string, string, string]; expected: string }[] = [
    { description: "origin base", input: ["http://up:3000", "/mcp", ""], expected: "http://up:3000/mcp" },
    {
      description: "origin base with /",
      input: ["http://up:3000/", "/mcp", "?a=1"],
      expected: "http://up:3000/mcp?a=1",
    },
    { description: "base path", input: ["http://up:3000/base", "/mcp", ""], expected: "http://up:3000/base/mcp" },
    {
      description: "base path with /",
      input: ["http://up:3000/base/", "/mcp", ""],
      expected: "http://up:3000/base/mcp",
    },
    { description: "root request", input: ["http://up:3000/base", "/", ""], expected: "http://up:3000/base/" },
    {
      description: "legacy SSE messages endpoint",
      input: ["https://up.internal", "/messages", "?sessionId=abc-123"],
      expected: "https://up.internal/messages?sessionId=abc-123",
    },
    {
      description: "encoded characters kept",
      input: ["http://up:3000", "/a%2Fb", "?q=a%20b"],
      expected: "http://up:3000/a%2Fb?q=a%20b",
    },
  ];
  for (const { description, input: [base, path, search], expected } of cases) {
    await t.step(description, () => assertEquals(upstreamTarget(new URL(base), path, search), expected));
  }
});

Deno.test("stripAccessToken() removes only access_token and leaves the rest as sent", async (t) => {
  const cases: { description: string; input: string; expected: string }[] = [
    { description: "empty", input: "", expected: "" },
    { description: "no token", input: "?a=1&b=2", expected: "?a=1&b=2" },
    { description: "only token", input: "?access_token=abc", expected: "" },
    { description: "token in the middle", input: "?a=1&access_token=abc&b=2", expected: "?a=1&b=2" },
    { description: "token twice", input: "?access_token=a&x=1&access_token=b", expected: "?x=1" },
    { description: "untouched encoding without a token", input: "?q=a%20b&r=c+d", expected: "?q=a%20b&r=c+d" },
    {
      description: "a value mentioning access_token is not a token",
      input: "?q=access_token%20docs&path=a%2Fb",
      expected: "?q=access_token%20docs&path=a%2Fb",
    },
    {
      description: "other parameters keep their encoding when a token is removed",
      input: "?q=a%20b&access_token=abc",
      expected: "?q=a%20b",
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(stripAccessToken(input), expected));
  }
});
