import { assertEquals } from "@std/assert";
import { allowHeadersFor, AllowMethods, applyCors, createOriginPolicy, ExposeHeaders } from "../../src/cors.ts";

const BaseAllowHeaders =
  "Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Last-Event-ID, " +
  "traceparent, tracestate";

Deno.test("createOriginPolicy() by default allows RESOURCE_URI's origin and loopback", async (t) => {
  const allowed = createOriginPolicy({ allowedOrigins: null, resourceUri: "https://mcp.example.com/mcp" });
  const cases: { description: string; input: string; expected: boolean }[] = [
    { description: "own origin", input: "https://mcp.example.com", expected: true },
    { description: "localhost", input: "http://localhost", expected: true },
    { description: "localhost with port", input: "http://localhost:6274", expected: true },
    { description: "https localhost", input: "https://localhost:3000", expected: true },
    { description: "127.0.0.1 with port", input: "http://127.0.0.1:8080", expected: true },
    { description: "127.0.0.1", input: "http://127.0.0.1", expected: true },
    { description: "[::1] with port", input: "http://[::1]:5173", expected: true },
    { description: "own host, other port", input: "https://mcp.example.com:8443", expected: false },
    { description: "own host over http", input: "http://mcp.example.com", expected: false },
    { description: "own origin with a trailing slash", input: "https://mcp.example.com/", expected: false },
    { description: "subdomain", input: "https://evil.mcp.example.com", expected: false },
    { description: "other site", input: "https://evil.example.com", expected: false },
    { description: "localhost as a prefix", input: "http://localhost.evil.com", expected: false },
    { description: "localhost as a subdomain", input: "http://evil.localhost.com:80", expected: false },
    { description: "127.0.0.1 as a prefix", input: "http://127.0.0.1.nip.io", expected: false },
    { description: "loopback with a path", input: "http://localhost:6274/x", expected: false },
    { description: "loopback with userinfo", input: "http://user@localhost", expected: false },
    { description: "other scheme", input: "ws://localhost:6274", expected: false },
    { description: "opaque origin", input: "null", expected: false },
    { description: "empty", input: "", expected: false },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${JSON.stringify(input)}`, () => assertEquals(allowed(input), expected));
  }
  await t.step("origin RESOURCE_URI with a port", () => {
    const p = createOriginPolicy({ allowedOrigins: null, resourceUri: "https://mcp.example.com:8443" });
    assertEquals([p("https://mcp.example.com:8443"), p("https://mcp.example.com")], [true, false]);
  });
});

Deno.test("createOriginPolicy() with an explicit list allows exactly those origins", async (t) => {
  const allowed = createOriginPolicy({
    allowedOrigins: ["https://app.example.com", "http://localhost:6274"],
    resourceUri: "https://mcp.example.com/mcp",
  });
  const cases: { description: string; input: string; expected: boolean }[] = [
    { description: "listed", input: "https://app.example.com", expected: true },
    { description: "listed loopback", input: "http://localhost:6274", expected: true },
    { description: "loopback on another port", input: "http://localhost:3000", expected: false },
    { description: "RESOURCE_URI's origin is not implied", input: "https://mcp.example.com", expected: false },
    { description: "other port", input: "https://app.example.com:444", expected: false },
    { description: "other scheme", input: "http://app.example.com", expected: false },
    { description: "opaque origin", input: "null", expected: false },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${JSON.stringify(input)}`, () => assertEquals(allowed(input), expected));
  }
});

Deno.test("createOriginPolicy() with * allows any origin", () => {
  const allowed = createOriginPolicy({ allowedOrigins: ["*"], resourceUri: "https://mcp.example.com/mcp" });
  for (const o of ["https://evil.example.com", "http://localhost:1", "https://mcp.example.com"]) {
    assertEquals(allowed(o), true, o);
  }
});

Deno.test("allowHeadersFor() lists the MCP headers plus requested Mcp-Param-* headers", async (t) => {
  const cases: { description: string; input: string | null; expected: string }[] = [
    { description: "no request", input: null, expected: BaseAllowHeaders },
    { description: "empty request", input: "", expected: BaseAllowHeaders },
    {
      description: "only known headers",
      input: "authorization, content-type, mcp-session-id",
      expected: BaseAllowHeaders,
    },
    {
      description: "one Mcp-Param header",
      input: "authorization, mcp-param-region",
      expected: `${BaseAllowHeaders}, mcp-param-region`,
    },
    {
      description: "several, spelling kept, no spaces",
      input: "Mcp-Param-Region,Mcp-Param-Units,content-type",
      expected: `${BaseAllowHeaders}, Mcp-Param-Region, Mcp-Param-Units`,
    },
    { description: "other custom headers are not allowed", input: "x-evil, cookie", expected: BaseAllowHeaders },
    {
      description: "invalid characters are dropped",
      input: 'mcp-param-a b, mcp-param-c"d',
      expected: BaseAllowHeaders,
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(allowHeadersFor(input), expected));
  }
});

Deno.test("applyCors() sets origin, exposed headers and Vary", async (t) => {
  await t.step("fresh headers", () => {
    const h = new Headers();
    applyCors(h, "http://localhost:6274");
    assertEquals([...h.entries()], [
      ["access-control-allow-origin", "http://localhost:6274"],
      ["access-control-expose-headers", "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version"],
      ["vary", "Origin"],
    ]);
  });
  await t.step("an existing Vary is extended, not replaced", () => {
    const h = new Headers({ vary: "Accept-Encoding" });
    applyCors(h, "https://app.example.com");
    assertEquals(h.get("vary"), "Accept-Encoding, Origin");
  });
  await t.step("constants", () => {
    assertEquals(AllowMethods, "GET, POST, DELETE, OPTIONS");
    assertEquals(ExposeHeaders, "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version");
  });
});
