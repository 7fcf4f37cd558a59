// Fuzz: the Origin header and CORS preflights (Access-Control-Request-Method/-Headers),
// under the three ALLOWED_ORIGINS policies: unset (RESOURCE_URI's origin and loopback),
// an explicit list, and "*".
//
// Invariants: below 500; a request from an origin the policy does not allow never reaches
// the upstream and gets 403 on every non-public path (preflight or not); CORS response
// headers only ever name the request's own (allowed) origin, or "*" on the public
// metadata; a preflight only allows the MCP headers and requested Mcp-Param-* names, all
// of them valid header names; an allowed origin with a valid token reaches the upstream.
import fc from "fast-check";
import { assert, assertEquals, assertLess } from "@std/assert";
import { assertNoSecretsLogged, FUZZ_RUNS, FUZZ_SEED, fuzzGateway, ORIGIN, params, RESOURCE } from "./_harness.ts";

const BASE_ALLOWED = [
  "authorization",
  "content-type",
  "accept",
  "mcp-protocol-version",
  "mcp-session-id",
  "mcp-method",
  "mcp-name",
  "last-event-id",
  "traceparent",
  "tracestate",
];
const METADATA = new Set(["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]);
const TOKEN_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The default policy, restated from requirements §5 (not from the code). */
function defaultAllows(origin: string): boolean {
  if (origin === new URL(RESOURCE).origin) return true;
  const m = /^(http|https):\/\/(.+)$/.exec(origin);
  if (!m) return false;
  let host = m[2]!;
  const port = /:(\d+)$/.exec(host);
  if (port) {
    if (port[1]!.length > 5) return false;
    host = host.slice(0, -port[0].length);
  }
  return host === "localhost" || host === "127.0.0.1" || host === "[::1]";
}

const policies = {
  default: { env: {}, allows: defaultAllows },
  list: {
    env: { ALLOWED_ORIGINS: "https://app.example.com,http://localhost:6274" },
    allows: (o: string) => o === "https://app.example.com" || o === "http://localhost:6274",
  },
  any: { env: { ALLOWED_ORIGINS: "*" }, allows: (_o: string) => true },
} as const;

const origin = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "http://localhost",
      "http://localhost:6274",
      "http://127.0.0.1:3000",
      "http://[::1]:8080",
      "https://localhost",
      "https://mcp.example.com",
      "https://app.example.com",
    ),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "null",
      "http://localhost.evil.test",
      "http://127.0.0.1.nip.io",
      "http://localhost:123456",
      "HTTP://LOCALHOST",
      "http://localhost/",
      "http://localhost:6274/",
      "https://mcp.example.com.evil.test",
      "https://mcp.example.com:443",
      "http://evil.test#@localhost",
      "http://user@localhost",
      "file://",
      "http://[::2]",
      "http://0.0.0.0",
      "https://app.example.com.",
      "https://APP.example.com",
      "",
      " http://localhost",
      "http://localhost, https://evil.test",
      "*",
    ),
  },
  { weight: 2, arbitrary: fc.webUrl().map((u) => new URL(u).origin) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);
const requestHeaders = fc.array(
  fc.oneof(
    fc.constantFrom(
      ...BASE_ALLOWED,
      "Mcp-Param-Region",
      "mcp-param-x",
      "X-Evil",
      "Cookie",
      "Mcp-Param-",
      "mcp-param-a_b",
    ),
    fc.stringMatching(/^[A-Za-z0-9_-]{1,16}$/),
    fc.string({ maxLength: 12 }),
  ),
  { maxLength: 5 },
).map((names) => names.join(", "));
const path = fc.constantFrom(
  "/mcp",
  "/",
  "/sse",
  "/messages?sessionId=1",
  "/.well-known/oauth-protected-resource",
  "/.well-known/oauth-protected-resource/mcp",
  "/healthz",
);

for (const [name, policy] of Object.entries(policies)) {
  Deno.test(`fuzz: Origin and CORS, ALLOWED_ORIGINS ${name} (seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs)`, async () => {
    const h = await fuzzGateway(policy.env);
    const valid = await h.validToken();
    await fc.assert(
      fc.asyncProperty(
        origin,
        path,
        fc.constantFrom("OPTIONS", "OPTIONS", "GET", "POST", "DELETE"),
        requestHeaders,
        fc.boolean(),
        async (o, p, method, acrh, withToken) => {
          const headers: [string, string][] = [["origin", o]];
          if (method === "OPTIONS") {
            headers.push(["access-control-request-method", "POST"], ["access-control-request-headers", acrh]);
          }
          if (withToken) headers.push(["authorization", `Bearer ${valid}`]);
          let r;
          try {
            r = await h.send({ method, url: `${ORIGIN}${p}`, headers });
          } catch {
            fc.pre(false); // not a sendable header value
            return;
          }
          const sentOrigin = new Headers(headers).get("origin")!;
          const allowed = policy.allows(sentOrigin);
          const pathname = new URL(`${ORIGIN}${p}`).pathname;
          const isPublic = METADATA.has(pathname) || pathname === "/healthz";
          assertLess(r.status, 500, `${method} ${p} Origin ${JSON.stringify(o)}: ${r.text}`);
          if (!allowed) {
            assertEquals(r.upstream.length, 0, `reached the upstream from Origin ${JSON.stringify(sentOrigin)}`);
            if (!isPublic) assertEquals(r.status, 403, `Origin ${JSON.stringify(sentOrigin)} on ${p}`);
          }
          const acao = r.headers.get("access-control-allow-origin");
          if (acao !== null) {
            const ok = (acao === sentOrigin && allowed) || (acao === "*" && METADATA.has(pathname));
            assert(ok, `Access-Control-Allow-Origin ${JSON.stringify(acao)} for Origin ${JSON.stringify(sentOrigin)}`);
            if (acao !== "*") assert(/\bOrigin\b/i.test(r.headers.get("vary") ?? ""), "Vary: Origin");
          }
          if (method === "OPTIONS" && r.status === 204) {
            const allow = (r.headers.get("access-control-allow-headers") ?? "").split(",").map((s) => s.trim()).filter(
              Boolean,
            );
            const requested = acrh.split(",").map((s) => s.trim().toLowerCase());
            for (const a of allow) {
              assert(TOKEN_NAME.test(a), `not a header name: ${JSON.stringify(a)}`);
              const l = a.toLowerCase();
              assert(
                BASE_ALLOWED.includes(l) || (l.startsWith("mcp-param-") && requested.includes(l)),
                `allowed a header nobody should: ${a}`,
              );
            }
            assertEquals(r.upstream.length, 0, "a preflight is never forwarded");
          }
          if (allowed && withToken && method !== "OPTIONS" && !isPublic && pathname !== "/healthz") {
            assertEquals(r.status, 200, `allowed origin with a valid token: ${r.text}`);
            assertEquals(r.upstream.length, 1);
          }
          assertNoSecretsLogged(r.logs, [valid.split(".")[2]!], "origin");
        },
      ),
      params(),
    );
    h.gw.close();
  });
}
