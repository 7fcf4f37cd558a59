import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { exportJWK, generateKeyPair } from "jose";
import { runCheck } from "../../src/check.ts";

const AS = "https://auth.example.com";
const RESOURCE = "https://mcp.example.com/mcp";
const UPSTREAM = "http://upstream.test:3000";

const { publicKey } = await generateKeyPair("ES256", { extractable: true });
const JWK = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };

interface World {
  /** The issuer the metadata publishes (default AS). */
  issuer?: string;
  s256?: boolean;
  registration?: boolean;
  jwks?: "ok" | "500" | "empty";
  upstream?: "json" | "sse" | "401" | "404" | "down" | "html" | "not-mcp";
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

function initializeResult(id: unknown) {
  return {
    jsonrpc: "2.0",
    id,
    result: { protocolVersion: "2025-11-25", capabilities: {}, serverInfo: { name: "demo", version: "1.2.3" } },
  };
}

/** An authorization server and an upstream behind one fetch, with switchable faults. */
function stubFetch(w: World = {}): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  const route = (input: string | URL | Request, init?: RequestInit): Response => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? "GET";
    calls.push(`${method} ${url}`);
    if (url === `${AS}/.well-known/oauth-authorization-server`) {
      return json({
        issuer: w.issuer ?? AS,
        authorization_endpoint: `${AS}/authorize`,
        token_endpoint: `${AS}/token`,
        jwks_uri: `${AS}/jwks`,
        ...(w.registration === false ? {} : { registration_endpoint: `${AS}/register` }),
        code_challenge_methods_supported: w.s256 === false ? ["plain"] : ["S256"],
        scopes_supported: ["mcp"],
      });
    }
    if (url === `${AS}/jwks`) {
      if (w.jwks === "500") return new Response("oops", { status: 500 });
      return json({ keys: w.jwks === "empty" ? [] : [JWK] });
    }
    if (url === `${UPSTREAM}/mcp`) {
      if (method === "DELETE") return new Response(null, { status: 204 });
      const body = JSON.parse(String(init?.body ?? "{}"));
      const headers = new Headers(init?.headers);
      assertEquals(body.method, "initialize");
      assertEquals(headers.get("accept"), "application/json, text/event-stream");
      assertEquals(headers.get("mcp-protocol-version"), "2025-11-25");
      switch (w.upstream ?? "json") {
        case "json":
          return json(initializeResult(body.id), 200, { "mcp-session-id": "s-1" });
        case "sse":
          return new Response(
            `event: message\ndata: ${JSON.stringify(initializeResult(body.id))}\n\n`,
            { headers: { "content-type": "text/event-stream" } },
          );
        case "401":
          return json({ error: "unauthorized" }, 401, { "www-authenticate": "Bearer" });
        case "404":
          return new Response("not found", { status: 404 });
        case "not-mcp":
          return json({ jsonrpc: "2.0", id: body.id, result: {} });
        case "html":
          return new Response("<html></html>", { headers: { "content-type": "text/html" } });
        case "down":
          throw new TypeError("error sending request: Connection refused (os error 111)");
      }
    }
    return new Response("not found", { status: 404 });
  };
  const fetchStub = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    try {
      return Promise.resolve(route(input, init));
    } catch (e) {
      return Promise.reject(e);
    }
  };
  return { fetch: fetchStub as typeof fetch, calls };
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { UPSTREAM_URL: UPSTREAM, RESOURCE_URI: RESOURCE, AUTHORIZATION_SERVER: AS, REQUIRED_SCOPES: "mcp", ...extra };
}

async function check(e: Record<string, string>, w: World = {}) {
  const lines: string[] = [];
  const { fetch, calls } = stubFetch(w);
  const code = await runCheck(e, { fetch, print: (l) => lines.push(l) });
  const output = lines.join("\n");
  const problems = lines.filter((l) => l.startsWith("  ✗ "));
  for (const p of problems) {
    // One sentence: what is wrong, a colon, the fix, a full stop.
    assertMatch(p, /^ {2}✗ [A-Z0-9].*: .+\.$/, "a problem line");
  }
  return { code, output, problems, calls };
}

Deno.test("runCheck() passes a correct set-up and prints what a client sees", async () => {
  const { code, output, problems, calls } = await check(env());
  assertEquals(problems, []);
  assertEquals(code, 0);
  for (
    const expected of [
      "✓ The environment is a valid configuration.",
      "✓ RESOURCE_URI uses https.",
      "✓ EXPECTED_AUDIENCE accepts tokens issued for RESOURCE_URI",
      `✓ Metadata found at ${AS}/.well-known/oauth-authorization-server.`,
      `✓ Tokens with iss "${AS}" are accepted.`,
      "✓ PKCE with S256 is supported.",
      `✓ Dynamic client registration is offered at ${AS}/register.`,
      `✓ ${AS}/jwks has 1 signing key, usable with ES256.`,
      '✓ The MCP initialize succeeded with protocol 2025-11-25 (server "demo" 1.2.3).',
      "GET https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
      `"resource": "${RESOURCE}"`,
      "HTTP/1.1 401 Unauthorized",
      'WWW-Authenticate: Bearer realm="mcp.example.com", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp"',
      "All checks passed.",
    ]
  ) {
    assertStringIncludes(output, expected);
  }
  // The probe's session is closed again.
  assert(calls.includes(`DELETE ${UPSTREAM}/mcp`), calls.join("\n"));
});

Deno.test("runCheck() accepts an upstream answering initialize with an event stream", async () => {
  const { code, output } = await check(env(), { upstream: "sse" });
  assertEquals(code, 0);
  assertStringIncludes(output, "✓ The MCP initialize succeeded with protocol 2025-11-25");
});

Deno.test("runCheck() finds each misconfiguration and names its fix", async (t) => {
  const cases: { description: string; env: Record<string, string>; world?: World; expected: string[] }[] = [
    {
      description: "EXPECTED_ISSUER differs from the published issuer by a trailing slash",
      env: env({ EXPECTED_ISSUER: `${AS}/` }),
      expected: [
        `EXPECTED_ISSUER has "${AS}/" but the authorization server's issuer is "${AS}"; they differ only by a trailing slash`,
        `set EXPECTED_ISSUER=${AS}.`,
      ],
    },
    {
      description: "AUTHORIZATION_SERVER differs from the published issuer by a trailing slash",
      env: env({ AUTHORIZATION_SERVER: `${AS}/` }),
      expected: [
        `AUTHORIZATION_SERVER has "${AS}/" but the authorization server's issuer is "${AS}"; ` +
        "they differ only by a trailing slash",
        `set AUTHORIZATION_SERVER=${AS}.`,
      ],
    },
    {
      description: "EXPECTED_ISSUER names another issuer",
      env: env({ EXPECTED_ISSUER: "https://other.example.com" }),
      expected: [`does not include the authorization server's issuer "${AS}"`, `add ${AS} to EXPECTED_ISSUER.`],
    },
    {
      description: "no PKCE S256",
      env: env(),
      world: { s256: false },
      expected: [
        'does not list S256 in code_challenge_methods_supported (it lists "plain")',
        "enable PKCE with S256 on the authorization server.",
      ],
    },
    {
      description: "EXPECTED_AUDIENCE without RESOURCE_URI",
      env: env({ EXPECTED_AUDIENCE: "api://mcp" }),
      expected: [
        `EXPECTED_AUDIENCE ("api://mcp") does not include RESOURCE_URI "${RESOURCE}"`,
        `Claude.ai ask for tokens with resource=${RESOURCE}`,
        `add ${RESOURCE} to EXPECTED_AUDIENCE`,
      ],
    },
    {
      description: "EXPECTED_AUDIENCE with a trailing slash",
      env: env({ EXPECTED_AUDIENCE: `${RESOURCE}/` }),
      expected: ["only by a trailing slash", `add ${RESOURCE} to EXPECTED_AUDIENCE.`],
    },
    {
      description: "upstream down",
      env: env(),
      world: { upstream: "down" },
      expected: [`The upstream could not be reached at ${UPSTREAM}/mcp`, "start the MCP server, or fix UPSTREAM_URL."],
    },
    {
      description: "upstream answering 401",
      env: env(),
      world: { upstream: "401" },
      expected: [
        "The upstream answered 401 to an MCP initialize without a token, so it demands authentication itself",
        "turn off the upstream's own authentication",
      ],
    },
    {
      description: "upstream path wrong",
      env: env(),
      world: { upstream: "404" },
      expected: [`The upstream answered 404 to POST ${UPSTREAM}/mcp`, "UPSTREAM_URL plus the path of RESOURCE_URI"],
    },
    {
      description: "upstream is not an MCP server",
      env: env(),
      world: { upstream: "html" },
      expected: ['with "text/html" instead of application/json or text/event-stream'],
    },
    {
      description: "upstream answers without a protocolVersion",
      env: env(),
      world: { upstream: "not-mcp" },
      expected: ["The upstream answered the MCP initialize without a protocolVersion"],
    },
    {
      description: "JWKS unavailable",
      env: env(),
      world: { jwks: "500" },
      expected: [`The gateway cannot load signing keys from ${AS}/jwks (GET ${AS}/jwks answered HTTP 500)`],
    },
    {
      description: "JWKS without usable keys",
      env: env(),
      world: { jwks: "empty" },
      expected: ["has no usable public signing keys"],
    },
    {
      description: "keys for an algorithm not allowed",
      env: env({ ALLOWED_ALGORITHMS: "RS256,PS256" }),
      expected: [
        `The 1 signing key at ${AS}/jwks are for ES256, none of which ALLOWED_ALGORITHMS (RS256, PS256) permits`,
        "add the keys' algorithm to ALLOWED_ALGORITHMS.",
      ],
    },
    {
      description: "metadata not found",
      env: env({ AUTHORIZATION_SERVER: "https://nowhere.example.com" }),
      expected: ["Clients cannot read this authorization server's metadata (No authorization server metadata for"],
    },
  ];
  for (const c of cases) {
    await t.step(c.description, async () => {
      const { code, output, problems } = await check(c.env, c.world);
      assertEquals(code, 1, output);
      assert(problems.length >= 1, output);
      for (const e of c.expected) assertStringIncludes(problems.join("\n"), e);
      assertMatch(output, /\d+ problems? found/);
    });
  }
});

Deno.test("runCheck() warns, without failing, about a missing registration endpoint", async () => {
  const { code, output } = await check(env(), { registration: false });
  assertEquals(code, 0);
  assertStringIncludes(
    output,
    "! The metadata has no registration_endpoint, so clients such as Claude.ai cannot register themselves",
  );
  assertStringIncludes(output, "All checks passed (1 warning).");
});

Deno.test("runCheck() warns about an http RESOURCE_URI", async () => {
  const { output } = await check(env({ RESOURCE_URI: "http://mcp.example.com/mcp" }));
  assertStringIncludes(output, "! RESOURCE_URI uses http, and clients such as Claude.ai require https");
  const local = await check(env({ RESOURCE_URI: "http://127.0.0.1:8080/mcp" }));
  assertStringIncludes(local.output, "! RESOURCE_URI uses http on a loopback address");
});

Deno.test("runCheck() reports every configuration problem and stops", async () => {
  const { code, output, problems, calls } = await check({ RESOURCE_URI: "not a url", LOG_LEVEL: "loud" });
  assertEquals(code, 1);
  assertEquals(calls, []);
  assertStringIncludes(output, "✗ UPSTREAM_URL is not set: it is required.");
  assertStringIncludes(output, "✗ AUTHORIZATION_SERVER is not set: it is required.");
  assertStringIncludes(output, '✗ LOG_LEVEL is "loud": expected debug, info, warn or error.');
  assertEquals(problems.length, 4);
  assertStringIncludes(output, "Stopped: fix the configuration first (4 problems).");
});

Deno.test("runCheck() passes against real loopback servers", async () => {
  let base = "";
  const as = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/.well-known/oauth-authorization-server") {
      return json({
        issuer: base,
        authorization_endpoint: `${base}/authorize`,
        token_endpoint: `${base}/token`,
        registration_endpoint: `${base}/register`,
        jwks_uri: `${base}/jwks`,
        code_challenge_methods_supported: ["S256"],
      });
    }
    if (path === "/jwks") return json({ keys: [JWK] });
    return new Response("not found", { status: 404 });
  });
  base = `http://127.0.0.1:${as.addr.port}`;
  let deleted = false;
  const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (new URL(req.url).pathname !== "/mcp") return new Response("not found", { status: 404 });
    if (req.method === "DELETE") {
      deleted = req.headers.get("mcp-session-id") === "real-session";
      return new Response(null, { status: 204 });
    }
    const msg = await req.json();
    // A stream that stays open after the answer, as some servers do: the probe must not wait for its end.
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(`data: ${JSON.stringify(initializeResult(msg.id))}\n\n`));
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream", "mcp-session-id": "real-session" } });
  });
  try {
    const lines: string[] = [];
    const code = await runCheck(
      {
        UPSTREAM_URL: `http://127.0.0.1:${upstream.addr.port}`,
        RESOURCE_URI: RESOURCE,
        AUTHORIZATION_SERVER: base,
        LISTEN_ADDR: "127.0.0.1:0",
      },
      { fetch, print: (l) => lines.push(l) },
    );
    const output = lines.join("\n");
    assertEquals(code, 0, output);
    assertStringIncludes(output, '✓ The MCP initialize succeeded with protocol 2025-11-25 (server "demo" 1.2.3).');
    assertStringIncludes(output, `✓ ${base}/jwks has 1 signing key, usable with ES256.`);
    assert(deleted, "the probe's session was closed");
  } finally {
    await Promise.all([as.shutdown(), upstream.shutdown()]);
  }
});
