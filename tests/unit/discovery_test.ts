import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { discover, discoveryUrls } from "../../src/auth/discovery.ts";
import { FetchJsonError } from "../../src/auth/fetch_json.ts";

Deno.test("discoveryUrls() lists RFC 8414 then OIDC URLs (path-inserted, then appended)", async (t) => {
  const cases: { description: string; input: string; expected: string[] }[] = [
    {
      description: "issuer without path",
      input: "https://auth.example.com",
      expected: [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
      ],
    },
    {
      description: "issuer without path, trailing slash",
      input: "https://auth.example.com/",
      expected: [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
      ],
    },
    {
      description: "issuer with path (Keycloak realm)",
      input: "https://auth.example.com/realms/mcp",
      expected: [
        "https://auth.example.com/.well-known/oauth-authorization-server/realms/mcp",
        "https://auth.example.com/.well-known/openid-configuration/realms/mcp",
        "https://auth.example.com/realms/mcp/.well-known/openid-configuration",
      ],
    },
    {
      description: "issuer with path and trailing slash (Auth0 style)",
      input: "https://tenant.auth0.com/api/",
      expected: [
        "https://tenant.auth0.com/.well-known/oauth-authorization-server/api",
        "https://tenant.auth0.com/.well-known/openid-configuration/api",
        "https://tenant.auth0.com/api/.well-known/openid-configuration",
      ],
    },
    {
      description: "issuer with port",
      input: "http://127.0.0.1:8081/tenant",
      expected: [
        "http://127.0.0.1:8081/.well-known/oauth-authorization-server/tenant",
        "http://127.0.0.1:8081/.well-known/openid-configuration/tenant",
        "http://127.0.0.1:8081/tenant/.well-known/openid-configuration",
      ],
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(discoveryUrls(input), expected));
  }
});

/** A fetch serving fixed documents by URL; anything else is 404. */
function serve(docs: Record<string, unknown>) {
  const calls: string[] = [];
  const fetchFn: typeof fetch = (input) => {
    const url = input instanceof Request ? input.url : String(input);
    calls.push(url);
    return Promise.resolve(url in docs ? Response.json(docs[url]) : new Response("nope", { status: 404 }));
  };
  return { calls, fetchFn };
}

Deno.test("discover() falls back in order and returns the first document", async () => {
  const issuer = "https://auth.example.com/realms/mcp";
  const { calls, fetchFn } = serve({
    "https://auth.example.com/realms/mcp/.well-known/openid-configuration": {
      issuer,
      jwks_uri: "https://auth.example.com/realms/mcp/certs",
    },
  });
  const meta = await discover(fetchFn, issuer, 1000);
  assertEquals(meta.jwks_uri, "https://auth.example.com/realms/mcp/certs");
  assertEquals(meta.url, "https://auth.example.com/realms/mcp/.well-known/openid-configuration");
  assertEquals(calls, discoveryUrls(issuer));
});

Deno.test("discover() stops at RFC 8414 metadata when present", async () => {
  const issuer = "https://auth.example.com";
  const { calls, fetchFn } = serve({
    "https://auth.example.com/.well-known/oauth-authorization-server": { issuer, jwks_uri: `${issuer}/jwks` },
    "https://auth.example.com/.well-known/openid-configuration": { issuer, jwks_uri: `${issuer}/other` },
  });
  const meta = await discover(fetchFn, issuer, 1000);
  assertEquals(meta.jwks_uri, `${issuer}/jwks`);
  assertEquals(calls, ["https://auth.example.com/.well-known/oauth-authorization-server"]);
});

Deno.test("discover() refuses a document whose issuer differs, naming a trailing-slash near miss", async () => {
  const { fetchFn } = serve({
    "https://auth.example.com/.well-known/oauth-authorization-server": {
      issuer: "https://auth.example.com/",
      jwks_uri: "https://auth.example.com/jwks",
    },
  });
  const e = await assertRejects(() => discover(fetchFn, "https://auth.example.com", 1000), FetchJsonError);
  assertStringIncludes(e.message, 'says issuer "https://auth.example.com/"');
  assertStringIncludes(e.message, "trailing slash");
});

Deno.test("discover() refuses a non-string jwks_uri and reports when nothing is found", async () => {
  const issuer = "https://auth.example.com";
  const bad = serve({ [`${issuer}/.well-known/oauth-authorization-server`]: { issuer, jwks_uri: 42 } });
  await assertRejects(() => discover(bad.fetchFn, issuer, 1000), FetchJsonError, "jwks_uri that is not a string");
  const none = serve({});
  const e = await assertRejects(() => discover(none.fetchFn, issuer, 1000), FetchJsonError);
  assertStringIncludes(e.message, `No authorization server metadata for ${issuer}`);
  assertStringIncludes(e.message, "HTTP 404");
});
