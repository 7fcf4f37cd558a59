// Opaque tokens: the INTROSPECTION_* reader, one introspection exchange against an
// in-process endpoint on loopback (request shape, size and time caps, bad answers), the
// acceptance rules, the cache (TTLs with an injected clock, LRU, refusals, failures never
// kept), single-flight, and the Service side (discovery, a missing endpoint, retries).
import { assert, assertEquals, assertInstanceOf, assertRejects, assertStringIncludes } from "@std/assert";
import { loadConfig } from "../../src/config.ts";
import { EnvReader } from "../../src/env_reader.ts";
import { AuthError, ConfigError } from "../../src/errors.ts";
import { createLogger } from "../../src/logging.ts";
import { acceptAnswer, type AcceptRules, acceptRules, IntrospectionVerifier } from "../../src/auth/introspection.ts";
import { IntrospectionCache } from "../../src/auth/introspection_cache.ts";
import { readIntrospection } from "../../src/auth/introspection_config.ts";
import {
  basicCredentials,
  introspect,
  IntrospectionError,
  MaxAnswerBytes,
} from "../../src/auth/introspection_request.ts";
import type { Identity } from "../../src/auth/identity.ts";
import { checkIntrospection } from "../../src/auth/introspection_check.ts";

const ISSUER = "https://auth.example.com";
const RESOURCE = "https://mcp.example.com/mcp";
const T0 = Date.UTC(2026, 0, 1);
const T0S = T0 / 1000;
const CLIENT_ID = "mcp-gate";
const CLIENT_SECRET = "s3cr3t/with+odd:chars é";

// ---------------------------------------------------------------------------------------
// An introspection endpoint on 127.0.0.1, answering with whatever the test sets.

interface Call {
  method: string;
  headers: Record<string, string>;
  form: Record<string, string>;
}

type Handler = (form: URLSearchParams) => Response | Promise<Response>;

class FakeEndpoint {
  readonly calls: Call[] = [];
  handler: Handler = () => Response.json({ active: false });
  /** Served at /.well-known/oauth-authorization-server; undefined: 404. */
  metadata: Record<string, unknown> | undefined;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;
  readonly origin: string;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/.well-known/oauth-authorization-server") {
        return this.metadata ? Response.json(this.metadata) : new Response("not found", { status: 404 });
      }
      if (path !== "/introspect") return new Response("not found", { status: 404 });
      const form = new URLSearchParams(await req.text());
      this.calls.push({ method: req.method, headers: Object.fromEntries(req.headers), form: Object.fromEntries(form) });
      return await this.handler(form);
    });
    this.origin = `http://127.0.0.1:${this.#server.addr.port}`;
    this.url = `${this.origin}/introspect`;
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}

async function withEndpoint(fn: (ep: FakeEndpoint) => Promise<void>): Promise<void> {
  const ep = new FakeEndpoint();
  try {
    await fn(ep);
  } finally {
    await ep.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function activeAnswer(over: Record<string, unknown> = {}): Record<string, unknown> {
  const a: Record<string, unknown> = {
    active: true,
    iss: ISSUER,
    aud: RESOURCE,
    sub: "user-1",
    client_id: "client-abc",
    username: "alice",
    scope: "mcp:read mcp:write",
    token_type: "Bearer",
    exp: T0S + 300,
    iat: T0S,
    ...over,
  };
  for (const [k, v] of Object.entries(a)) if (v === undefined) delete a[k];
  return a;
}

const client = (ep: FakeEndpoint, timeoutMs = 2000) => ({
  endpoint: ep.url,
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  timeoutMs,
});

// ---------------------------------------------------------------------------------------
// Configuration

Deno.test("readIntrospection() is off (undefined) without INTROSPECTION_CLIENT_ID", () => {
  const r = new EnvReader({});
  assertEquals(readIntrospection(r), undefined);
  assertEquals(r.problems, []);
  const empty = new EnvReader({ INTROSPECTION_CLIENT_ID: "  " });
  assertEquals(readIntrospection(empty), undefined);
  assertEquals(empty.problems, []);
});

Deno.test("readIntrospection() reads the settings with their defaults", () => {
  const r = new EnvReader({ INTROSPECTION_CLIENT_ID: "gw", INTROSPECTION_CLIENT_SECRET: "pw" });
  assertEquals(readIntrospection(r), {
    clientId: "gw",
    clientSecret: "pw",
    endpoint: undefined,
    cacheTtlMs: 60_000,
    timeoutMs: 5_000,
  });
  assertEquals(r.problems, []);
  const r2 = new EnvReader({
    INTROSPECTION_CLIENT_ID: "gw",
    INTROSPECTION_CLIENT_SECRET: "pw",
    INTROSPECTION_ENDPOINT: "https://as.example.com/oauth2/introspect",
    INTROSPECTION_CACHE_TTL: "2s",
    INTROSPECTION_TIMEOUT: "750ms",
  });
  assertEquals(readIntrospection(r2), {
    clientId: "gw",
    clientSecret: "pw",
    endpoint: "https://as.example.com/oauth2/introspect",
    cacheTtlMs: 2_000,
    timeoutMs: 750,
  });
  assertEquals(r2.problems, []);
  assertEquals(r2.warnings, []);
});

Deno.test("readIntrospection() reports every bad value, naming the variable, never echoing a secret", async (t) => {
  const cases: { description: string; env: Record<string, string>; expected: [string, string | undefined][] }[] = [
    {
      description: "no secret",
      env: { INTROSPECTION_CLIENT_ID: "gw" },
      expected: [["INTROSPECTION_CLIENT_SECRET", undefined]],
    },
    {
      description: "secret and endpoint without an id",
      env: { INTROSPECTION_CLIENT_SECRET: "pw", INTROSPECTION_ENDPOINT: "https://as/introspect" },
      expected: [["INTROSPECTION_CLIENT_ID", undefined]],
    },
    {
      description: "endpoint not a URL, durations wrong",
      env: {
        INTROSPECTION_CLIENT_ID: "gw",
        INTROSPECTION_CLIENT_SECRET: "pw",
        INTROSPECTION_ENDPOINT: "as.example.com/introspect",
        INTROSPECTION_CACHE_TTL: "soon",
        INTROSPECTION_TIMEOUT: "0",
      },
      expected: [
        ["INTROSPECTION_ENDPOINT", "as.example.com/introspect"],
        ["INTROSPECTION_CACHE_TTL", "soon"],
        ["INTROSPECTION_TIMEOUT", "0"],
      ],
    },
  ];
  for (const c of cases) {
    await t.step(c.description, () => {
      const r = new EnvReader(c.env);
      readIntrospection(r);
      assertEquals(r.problems.map((p) => [p.variable, p.value]), c.expected);
      for (const p of r.problems) assert(!p.expected.includes("pw"), p.expected);
    });
  }
});

Deno.test("readIntrospection() warns about an http endpoint off loopback", () => {
  const r = new EnvReader({
    INTROSPECTION_CLIENT_ID: "gw",
    INTROSPECTION_CLIENT_SECRET: "pw",
    INTROSPECTION_ENDPOINT: "http://as.example.com/introspect",
  });
  readIntrospection(r);
  assertEquals(r.problems, []);
  assertEquals(r.warnings.length, 1);
  assertStringIncludes(r.warnings[0]!, "INTROSPECTION_ENDPOINT");
  const local = new EnvReader({
    INTROSPECTION_CLIENT_ID: "gw",
    INTROSPECTION_CLIENT_SECRET: "pw",
    INTROSPECTION_ENDPOINT: "http://127.0.0.1:9000/introspect",
  });
  readIntrospection(local);
  assertEquals(local.warnings, []);
});

Deno.test("loadConfig() carries the introspection settings; ConfigError lists their problems", () => {
  const base = {
    UPSTREAM_URL: "http://127.0.0.1:3000",
    RESOURCE_URI: RESOURCE,
    AUTHORIZATION_SERVER: ISSUER,
  };
  assertEquals(loadConfig(base).introspection, undefined);
  const on = loadConfig({ ...base, INTROSPECTION_CLIENT_ID: "gw", INTROSPECTION_CLIENT_SECRET: "pw" });
  assertEquals(on.introspection?.clientId, "gw");
  assertEquals(on.introspection?.cacheTtlMs, 60_000);
  try {
    loadConfig({ ...base, INTROSPECTION_CLIENT_ID: "gw" });
    throw new Error("no ConfigError");
  } catch (e) {
    assertInstanceOf(e, ConfigError);
    assertEquals(e.problems.map((p) => p.variable), ["INTROSPECTION_CLIENT_SECRET"]);
  }
});

// ---------------------------------------------------------------------------------------
// One exchange

Deno.test("basicCredentials() form-urlencodes id and secret before Basic (RFC 6749 §2.3.1)", () => {
  const header = basicCredentials("my client:1", "a+b/c d&é");
  assert(header.startsWith("Basic "));
  const decoded = new TextDecoder().decode(Uint8Array.from(atob(header.slice(6)), (c) => c.charCodeAt(0)));
  assertEquals(decoded, "my+client%3A1:a%2Bb%2Fc+d%26%C3%A9");
  assertEquals(basicCredentials("gw", "pw"), `Basic ${btoa("gw:pw")}`);
});

Deno.test("introspect() POSTs the form with Basic credentials and Accept: application/json", async () => {
  await withEndpoint(async (ep) => {
    ep.handler = () => Response.json(activeAnswer());
    const { answer, bytes } = await introspect(fetch, client(ep), "opaque-token-value");
    assertEquals(answer, activeAnswer());
    assertEquals(bytes, JSON.stringify(activeAnswer()).length);
    assertEquals(ep.calls.length, 1);
    const call = ep.calls[0]!;
    assertEquals(call.method, "POST");
    assertEquals(call.form, { token: "opaque-token-value", token_type_hint: "access_token" });
    assertEquals(call.headers["accept"], "application/json");
    assertEquals(call.headers["content-type"], "application/x-www-form-urlencoded");
    assertEquals(call.headers["authorization"], basicCredentials(CLIENT_ID, CLIENT_SECRET));
  });
});

Deno.test("introspect() fails with a named failure for every bad exchange", async (t) => {
  await withEndpoint(async (ep) => {
    const big = JSON.stringify({ active: true, pad: "x".repeat(MaxAnswerBytes) });
    const cases: { description: string; handler: Handler; failure: string; message: string; timeoutMs?: number }[] = [
      {
        description: "401: the gateway's credentials",
        handler: () => Response.json({ error: "invalid_client" }, { status: 401 }),
        failure: "credentials",
        message: "INTROSPECTION_CLIENT_ID",
      },
      {
        description: "403 as well",
        handler: () => new Response("no", { status: 403 }),
        failure: "credentials",
        message: "HTTP 403",
      },
      {
        description: "500",
        handler: () => new Response("oops", { status: 500 }),
        failure: "status",
        message: "HTTP 500",
      },
      {
        description: "a redirect is not followed",
        handler: () => new Response(null, { status: 302, headers: { location: "https://elsewhere.example/" } }),
        failure: "status",
        message: "HTTP 302",
      },
      {
        description: "not JSON",
        handler: () => new Response("<html>login</html>", { headers: { "content-type": "text/html" } }),
        failure: "bad_answer",
        message: "not JSON",
      },
      {
        description: "a JSON array",
        handler: () => Response.json([{ active: true }]),
        failure: "bad_answer",
        message: "not a JSON object",
      },
      {
        description: "no boolean active",
        handler: () => Response.json({ active: "true", sub: "x" }),
        failure: "bad_answer",
        message: '"active"',
      },
      {
        description: "over 64 KiB, declared",
        handler: () => new Response(big, { headers: { "content-type": "application/json" } }),
        failure: "bad_answer",
        message: `larger than ${MaxAnswerBytes} bytes`,
      },
      {
        description: "over 64 KiB, streamed without a length",
        handler: () => {
          const chunk = new TextEncoder().encode("x".repeat(16_384));
          let sent = 0;
          const body = new ReadableStream<Uint8Array>({
            pull(c) {
              if (sent++ < 8) c.enqueue(chunk);
              else c.close();
            },
          });
          return new Response(body, { headers: { "content-type": "application/json" } });
        },
        failure: "bad_answer",
        message: `larger than ${MaxAnswerBytes} bytes`,
      },
      {
        description: "no headers within the timeout",
        handler: async () => {
          await sleep(800);
          return Response.json({ active: false });
        },
        failure: "timeout",
        message: "no answer within 200 ms",
        timeoutMs: 200,
      },
      {
        description: "a body that trickles past the timeout",
        handler: () => {
          let step = 0;
          const body = new ReadableStream<Uint8Array>({
            async pull(c) {
              if (step++ === 0) return c.enqueue(new TextEncoder().encode('{"active":'));
              await sleep(800);
              c.enqueue(new TextEncoder().encode("false}"));
              c.close();
            },
          });
          return new Response(body, { headers: { "content-type": "application/json" } });
        },
        failure: "timeout",
        message: "did not arrive within 200 ms",
        timeoutMs: 200,
      },
    ];
    for (const c of cases) {
      await t.step(c.description, async () => {
        ep.handler = c.handler;
        const e = await assertRejects(() => introspect(fetch, client(ep, c.timeoutMs), "tok-abc"), IntrospectionError);
        assertEquals(e.failure, c.failure, e.message);
        assertStringIncludes(e.message, c.message);
        assert(!e.message.includes("tok-abc"), e.message);
        assert(!e.message.includes(CLIENT_SECRET), e.message);
      });
    }
  });
});

Deno.test("introspect() reports an unreachable endpoint", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const e = await assertRejects(
    () =>
      introspect(fetch, {
        endpoint: `http://127.0.0.1:${port}/introspect`,
        clientId: "gw",
        clientSecret: "pw",
        timeoutMs: 2000,
      }, "tok"),
    IntrospectionError,
  );
  assertEquals(e.failure, "unreachable");
  assertStringIncludes(e.message, `http://127.0.0.1:${port}/introspect`);
});

// ---------------------------------------------------------------------------------------
// Acceptance rules

const rules: AcceptRules = acceptRules(
  { expectedIssuers: [ISSUER], expectedAudiences: [RESOURCE, "https://other.example.com"], clockSkewSeconds: 30 },
  60_000,
);

Deno.test("acceptAnswer() accepts an active token for this resource and builds its Identity", () => {
  const answer = activeAnswer();
  const { identity, exp } = acceptAnswer(answer, rules, T0);
  assertEquals(identity, {
    sub: "user-1",
    subject: "user-1",
    scopes: ["mcp:read", "mcp:write"],
    clientId: "client-abc",
    exp: T0S + 300,
    claims: answer,
  });
  assertEquals(exp, T0S + 300);
});

Deno.test("acceptAnswer() without sub: the client_id is the subject (client credentials)", () => {
  const answer = activeAnswer({ sub: undefined, username: undefined, exp: undefined });
  const { identity, exp } = acceptAnswer(answer, rules, T0);
  assertEquals(identity.sub, undefined);
  assertEquals(identity.subject, "client-abc");
  assertEquals(identity.clientId, "client-abc");
  assertEquals(exp, undefined);
  assertEquals(identity.exp, T0S + 60);
});

Deno.test("acceptAnswer() refuses with a reason and a hint", async (t) => {
  const cases: { description: string; answer: Record<string, unknown>; reason: string; hint?: string }[] = [
    { description: "inactive", answer: { active: false }, reason: "inactive" },
    { description: "active but not true", answer: activeAnswer({ active: 1 }), reason: "inactive" },
    { description: "expired beyond the skew", answer: activeAnswer({ exp: T0S - 31 }), reason: "expired" },
    { description: "exp exactly at now - skew", answer: activeAnswer({ exp: T0S - 30 }), reason: "expired" },
    { description: "exp not a number", answer: activeAnswer({ exp: "soon" }), reason: "bad_claim", hint: "exp" },
    { description: "nbf beyond the skew", answer: activeAnswer({ nbf: T0S + 31 }), reason: "not_yet_valid" },
    {
      description: "another issuer",
      answer: activeAnswer({ iss: "https://evil.example.com" }),
      reason: "bad_issuer",
      hint: '"https://evil.example.com"',
    },
    {
      description: "issuer with a trailing slash",
      answer: activeAnswer({ iss: `${ISSUER}/` }),
      reason: "bad_issuer",
      hint: "trailing slash",
    },
    {
      description: "another resource",
      answer: activeAnswer({ aud: "https://mcp.example.com/other" }),
      reason: "bad_audience",
    },
    { description: "no aud at all", answer: activeAnswer({ aud: undefined }), reason: "bad_audience", hint: "missing" },
    { description: "aud of the wrong type", answer: activeAnswer({ aud: { x: RESOURCE } }), reason: "bad_audience" },
    {
      description: "a refresh token",
      answer: activeAnswer({ token_type: "refresh_token" }),
      reason: "wrong_token_type",
    },
    {
      description: "a refresh token by its URN",
      answer: activeAnswer({ token_type: "urn:ietf:params:oauth:token-type:refresh_token" }),
      reason: "wrong_token_type",
    },
    {
      description: "neither sub nor client_id",
      answer: activeAnswer({ sub: undefined, client_id: undefined }),
      reason: "missing_sub",
    },
  ];
  for (const c of cases) {
    await t.step(c.description, () => {
      let err: unknown;
      try {
        acceptAnswer(c.answer, rules, T0);
      } catch (e) {
        err = e;
      }
      assertInstanceOf(err, AuthError);
      assertEquals(err.code, c.reason);
      assertEquals(err.status, 401);
      assertEquals(err.bearerError, "invalid_token");
      if (c.hint) assertStringIncludes(err.hint ?? "", c.hint);
    });
  }
});

Deno.test("acceptAnswer() accepts what the rules allow at their edges", async (t) => {
  const cases: { description: string; answer: Record<string, unknown> }[] = [
    { description: "exp within the skew", answer: activeAnswer({ exp: T0S - 29 }) },
    { description: "nbf within the skew", answer: activeAnswer({ nbf: T0S + 30 }) },
    { description: "no iss", answer: activeAnswer({ iss: undefined }) },
    { description: "aud as an array with one of ours", answer: activeAnswer({ aud: ["https://x", RESOURCE] }) },
    { description: "the second expected audience", answer: activeAnswer({ aud: "https://other.example.com" }) },
    { description: "no token_type", answer: activeAnswer({ token_type: undefined }) },
    {
      description: "token_type access_token (not a refresh token)",
      answer: activeAnswer({ token_type: "access_token" }),
    },
    { description: "no scope", answer: activeAnswer({ scope: undefined }) },
  ];
  for (const c of cases) {
    await t.step(c.description, () => {
      const { identity } = acceptAnswer(c.answer, rules, T0);
      assertEquals(identity.subject, "user-1");
    });
  }
});

// ---------------------------------------------------------------------------------------
// The cache

function identity(sub: string): Identity {
  return { sub, subject: sub, scopes: [], clientId: undefined, exp: T0S + 3600, claims: { sub } };
}

function newCache(clock: { now: number }, over: Partial<ConstructorParameters<typeof IntrospectionCache>[0]> = {}) {
  return new IntrospectionCache({
    maxEntries: 100,
    maxBytes: 1_000_000,
    ttlMs: 60_000,
    skewMs: 30_000,
    refusalMaxEntries: 10,
    now: () => clock.now,
    ...over,
  });
}

const inactive = new AuthError("inactive", 401, "invalid_token", "The access token is not active");

Deno.test("IntrospectionCache keeps an active result for the TTL, and never past exp + skew", () => {
  const clock = { now: T0 };
  const c = newCache(clock);
  c.setAccepted("long", identity("a"), T0S + 3600, 100);
  c.setAccepted("short", identity("b"), T0S + 10, 100);
  c.setAccepted("noexp", identity("c"), undefined, 100);
  clock.now = T0 + 39_999;
  assertEquals(c.get("short")?.identity?.sub, "b");
  clock.now = T0 + 40_000;
  assertEquals(c.get("short"), undefined);
  clock.now = T0 + 59_999;
  assertEquals(c.get("long")?.identity?.sub, "a");
  assertEquals(c.get("noexp")?.identity?.sub, "c");
  clock.now = T0 + 60_000;
  assertEquals(c.get("long"), undefined);
  assertEquals(c.get("noexp"), undefined);
  assertEquals(c.size, 0);
  assertEquals(c.bytes, 0);
});

Deno.test("IntrospectionCache keeps a refusal at most 10 s, in its own bounded map", () => {
  const clock = { now: T0 };
  const c = newCache(clock, { refusalMaxEntries: 2 });
  c.setAccepted("good", identity("a"), undefined, 100);
  c.setRefused("r1", inactive);
  assertEquals(c.get("r1")?.refusal, inactive);
  clock.now = T0 + 9_999;
  assertEquals(c.get("r1")?.refusal, inactive);
  clock.now = T0 + 10_000;
  assertEquals(c.get("r1"), undefined);
  for (let i = 0; i < 50; i++) c.setRefused(`junk${i}`, inactive);
  assertEquals(c.refusals, 2);
  assertEquals(c.get("good")?.identity?.sub, "a", "junk does not evict a good entry");
  assertEquals(c.get("junk49")?.refusal, inactive);
  assertEquals(c.get("junk0"), undefined);
});

Deno.test("IntrospectionCache is bounded in entries and bytes, least recently used first", () => {
  const clock = { now: T0 };
  const c = newCache(clock, { maxEntries: 2, maxBytes: 10_000 });
  c.setAccepted("a", identity("a"), undefined, 100);
  c.setAccepted("b", identity("b"), undefined, 100);
  assertEquals(c.get("a")?.identity?.sub, "a");
  c.setAccepted("c", identity("c"), undefined, 100);
  assertEquals(c.size, 2);
  assertEquals(c.get("b"), undefined, "b was least recently used");
  assertEquals(c.get("a")?.identity?.sub, "a");
  c.setAccepted("big", identity("big"), undefined, 9_500);
  assertEquals(c.size, 1);
  assertEquals(c.bytes, 9_756);
  c.setAccepted("huge", identity("huge"), undefined, 20_000);
  assertEquals(c.get("huge"), undefined, "larger than the whole budget: not kept");
  const off = newCache(clock, { maxEntries: 0 });
  off.setAccepted("a", identity("a"), undefined, 100);
  off.setRefused("b", inactive);
  assertEquals([off.get("a"), off.get("b")], [undefined, undefined]);
});

// ---------------------------------------------------------------------------------------
// The verifier

interface Rig {
  ep: FakeEndpoint;
  clock: { now: number };
  verifier: IntrospectionVerifier;
  logs: Record<string, unknown>[];
  outcomes: string[];
}

async function withVerifier(
  fn: (rig: Rig) => Promise<void>,
  over: { ttl?: number; cacheSize?: number; timeoutMs?: number; discover?: boolean; skew?: number } = {},
): Promise<void> {
  await withEndpoint(async (ep) => {
    const clock = { now: T0 };
    const logs: Record<string, unknown>[] = [];
    const outcomes: string[] = [];
    const verifier = new IntrospectionVerifier({
      settings: {
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        endpoint: over.discover ? undefined : ep.url,
        cacheTtlMs: over.ttl ?? 60_000,
        timeoutMs: over.timeoutMs ?? 2000,
      },
      config: {
        authorizationServers: [ep.origin],
        expectedIssuers: [ISSUER],
        expectedAudiences: [RESOURCE],
        clockSkewSeconds: over.skew ?? 30,
        tokenCacheSize: over.cacheSize ?? 100,
        jwksFetchTimeoutMs: 1000,
      },
      fetch,
      now: () => clock.now,
      log: createLogger("debug", (line) => logs.push(JSON.parse(line)), () => clock.now),
      onIntrospect: (outcome) => outcomes.push(outcome),
    });
    try {
      await fn({ ep, clock, verifier, logs, outcomes });
    } finally {
      verifier.close();
    }
  });
}

async function refusal(p: Promise<unknown>): Promise<AuthError> {
  const e = await assertRejects(() => p, AuthError);
  return e;
}

Deno.test("IntrospectionVerifier reuses an active answer for INTROSPECTION_CACHE_TTL, then asks again", async () => {
  await withVerifier(async ({ ep, clock, verifier, outcomes }) => {
    ep.handler = () => Response.json(activeAnswer({ exp: T0S + 3600 }));
    assertEquals(verifier.ready, true);
    const id = await verifier.verify("tok-1");
    assertEquals(id.subject, "user-1");
    assertEquals(id.claims.username, "alice");
    clock.now = T0 + 1_999;
    assertEquals(await verifier.verify("tok-1"), id);
    assertEquals(ep.calls.length, 1);
    clock.now = T0 + 2_000;
    ep.handler = () => Response.json({ active: false });
    const e = await refusal(verifier.verify("tok-1"));
    assertEquals([e.code, e.status], ["inactive", 401]);
    assertEquals(ep.calls.length, 2);
    assertEquals(outcomes, ["active", "inactive"]);
  }, { ttl: 2_000 });
});

Deno.test("IntrospectionVerifier never keeps an active answer past exp + CLOCK_SKEW", async () => {
  await withVerifier(async ({ ep, clock, verifier }) => {
    ep.handler = () => Response.json(activeAnswer({ exp: T0S + 5 }));
    await verifier.verify("tok-2");
    clock.now = T0 + 5_000 + 2_999;
    await verifier.verify("tok-2");
    assertEquals(ep.calls.length, 1);
    clock.now = T0 + 8_000;
    // The authorization server now says what it says about an expired token.
    ep.handler = () => Response.json({ active: false });
    assertEquals((await refusal(verifier.verify("tok-2"))).code, "inactive");
    assertEquals(ep.calls.length, 2);
  }, { skew: 3 });
});

Deno.test("IntrospectionVerifier keeps an inactive answer 10 s at most", async () => {
  await withVerifier(async ({ ep, clock, verifier }) => {
    ep.handler = () => Response.json({ active: false });
    const e1 = await refusal(verifier.verify("tok-3"));
    clock.now = T0 + 9_999;
    const e2 = await refusal(verifier.verify("tok-3"));
    assertEquals([e1.code, e2.code], ["inactive", "inactive"]);
    assertEquals(ep.calls.length, 1);
    clock.now = T0 + 10_000;
    ep.handler = () => Response.json(activeAnswer());
    assertEquals((await verifier.verify("tok-3")).subject, "user-1");
    assertEquals(ep.calls.length, 2);
  }, { ttl: 60_000 });
});

Deno.test("IntrospectionVerifier never caches a failure: 503 now, the real answer next time", async () => {
  await withVerifier(async ({ ep, verifier, outcomes }) => {
    ep.handler = () => new Response("down", { status: 502 });
    const e = await refusal(verifier.verify("tok-4"));
    assertEquals([e.code, e.status, e.bearerError], ["introspection_unavailable", 503, ""]);
    assertStringIncludes(e.hint ?? "", "HTTP 502");
    ep.handler = () => new Response("{not json", { headers: { "content-type": "application/json" } });
    assertEquals((await refusal(verifier.verify("tok-4"))).code, "introspection_unavailable");
    ep.handler = () => Response.json(activeAnswer());
    assertEquals((await verifier.verify("tok-4")).subject, "user-1");
    assertEquals(ep.calls.length, 3);
    assertEquals(outcomes, ["status", "bad_answer", "active"]);
  });
});

Deno.test("IntrospectionVerifier: a timeout is a 503, not a 401", async () => {
  await withVerifier(async ({ ep, verifier, outcomes }) => {
    ep.handler = async () => {
      await sleep(600);
      return Response.json(activeAnswer());
    };
    const e = await refusal(verifier.verify("tok-5"));
    assertEquals([e.code, e.status], ["introspection_unavailable", 503]);
    assertEquals(outcomes, ["timeout"]);
  }, { timeoutMs: 150 });
});

Deno.test("IntrospectionVerifier: 401 from the endpoint is a 503 and one error log naming INTROSPECTION_CLIENT_ID", async () => {
  await withVerifier(async ({ ep, verifier, logs, clock }) => {
    ep.handler = () => Response.json({ error: "invalid_client" }, { status: 401 });
    for (let i = 0; i < 3; i++) {
      const e = await refusal(verifier.verify(`tok-6-${i}`));
      assertEquals([e.code, e.status], ["introspection_unavailable", 503]);
    }
    const errors = logs.filter((l) => l.level === "error");
    assertEquals(errors.length, 1, JSON.stringify(logs));
    assertEquals(errors[0]!.msg, "introspection refused the gateway's credentials");
    assertStringIncludes(String(errors[0]!.error), "INTROSPECTION_CLIENT_ID");
    assertStringIncludes(String(errors[0]!.hint), "INTROSPECTION_CLIENT_SECRET");
    clock.now = T0 + 10_000;
    await refusal(verifier.verify("tok-6-x"));
    assertEquals(logs.filter((l) => l.level === "error").length, 2);
    const all = JSON.stringify(logs);
    assert(!all.includes("tok-6"), "a token was logged");
    assert(!all.includes(CLIENT_SECRET), "the secret was logged");
  });
});

Deno.test("IntrospectionVerifier: 100 concurrent requests with one new token make one call", async () => {
  await withVerifier(async ({ ep, verifier }) => {
    const gate = Promise.withResolvers<void>();
    ep.handler = async () => {
      await gate.promise;
      return Response.json(activeAnswer());
    };
    const all = Array.from({ length: 100 }, () => verifier.verify("tok-7"));
    await sleep(50);
    gate.resolve();
    const ids = await Promise.all(all);
    assertEquals(ids.every((i) => i.subject === "user-1"), true);
    assertEquals(ep.calls.length, 1);
    // A failure is shared by the callers waiting for it, and then forgotten.
    const fail = Promise.withResolvers<void>();
    ep.handler = async () => {
      await fail.promise;
      return new Response("no", { status: 500 });
    };
    const failing = Array.from({ length: 20 }, () => verifier.verify("tok-8").catch((e) => e));
    await sleep(50);
    fail.resolve();
    const errs = await Promise.all(failing);
    assertEquals(errs.every((e) => e instanceof AuthError && e.code === "introspection_unavailable"), true);
    assertEquals(ep.calls.length, 2);
    ep.handler = () => Response.json(activeAnswer());
    await verifier.verify("tok-8");
    assertEquals(ep.calls.length, 3);
  });
});

Deno.test("IntrospectionVerifier with TOKEN_CACHE_SIZE=0 asks every time", async () => {
  await withVerifier(async ({ ep, verifier }) => {
    ep.handler = () => Response.json(activeAnswer());
    await verifier.verify("tok-9");
    await verifier.verify("tok-9");
    assertEquals(ep.calls.length, 2);
  }, { cacheSize: 0 });
});

Deno.test("IntrospectionVerifier bounds its cache by TOKEN_CACHE_SIZE (LRU)", async () => {
  await withVerifier(async ({ ep, verifier }) => {
    ep.handler = () => Response.json(activeAnswer());
    await verifier.verify("a");
    await verifier.verify("b");
    await verifier.verify("a");
    await verifier.verify("c");
    assertEquals(ep.calls.length, 3);
    await verifier.verify("a");
    assertEquals(ep.calls.length, 3, "a was used recently: still cached");
    await verifier.verify("b");
    assertEquals(ep.calls.length, 4, "b was evicted");
  }, { cacheSize: 2 });
});

Deno.test("IntrospectionVerifier refuses a wrong audience without asking again for 10 s", async () => {
  await withVerifier(async ({ ep, verifier, clock }) => {
    ep.handler = () => Response.json(activeAnswer({ aud: "https://mcp.example.com/other" }));
    assertEquals((await refusal(verifier.verify("tok-10"))).code, "bad_audience");
    assertEquals((await refusal(verifier.verify("tok-10"))).code, "bad_audience");
    assertEquals(ep.calls.length, 1);
    clock.now = T0 + 10_000;
    await refusal(verifier.verify("tok-10"));
    assertEquals(ep.calls.length, 2);
  });
});

Deno.test("IntrospectionVerifier refuses an oversized token without calling the endpoint", async () => {
  await withVerifier(async ({ ep, verifier }) => {
    const e = await refusal(verifier.verify("x".repeat(20_000)));
    assertEquals([e.code, e.status], ["malformed", 401]);
    assertEquals(ep.calls.length, 0);
  });
});

Deno.test("IntrospectionVerifier.start() takes introspection_endpoint from the metadata", async () => {
  await withVerifier(async ({ ep, verifier, logs }) => {
    ep.metadata = { issuer: ep.origin, introspection_endpoint: ep.url };
    assertEquals(verifier.ready, false);
    ep.handler = () => Response.json(activeAnswer());
    const e = await refusal(verifier.verify("tok-11"));
    assertEquals([e.code, e.status], ["introspection_unavailable", 503]);
    assertEquals(ep.calls.length, 0);
    await verifier.start();
    assertEquals(verifier.ready, true);
    assertEquals(verifier.endpoint, ep.url);
    assertEquals((await verifier.verify("tok-11")).subject, "user-1");
    assertEquals(logs.find((l) => l.msg === "introspection endpoint")?.endpoint, ep.url);
  }, { discover: true });
});

Deno.test("IntrospectionVerifier.start() fails naming INTROSPECTION_ENDPOINT when the metadata has none", async () => {
  await withVerifier(async ({ ep, verifier }) => {
    ep.metadata = { issuer: ep.origin, token_endpoint: `${ep.origin}/token` };
    const e = await assertRejects(() => verifier.start(), ConfigError);
    assertEquals(e.problems.map((p) => p.variable), ["INTROSPECTION_ENDPOINT"]);
    assertStringIncludes(e.message, "has no introspection_endpoint");
    assertStringIncludes(e.message, `${ep.origin}/.well-known/oauth-authorization-server`);
    assertEquals(verifier.ready, false);
  }, { discover: true });
});

Deno.test("IntrospectionVerifier.start() retries while the metadata is unreachable, then becomes ready", async () => {
  await withVerifier(async ({ ep, verifier, logs }) => {
    const started = verifier.start();
    await sleep(300);
    assertEquals(verifier.ready, false);
    assert(logs.some((l) => l.msg === "introspection endpoint discovery failed; retrying"), JSON.stringify(logs));
    ep.metadata = { issuer: ep.origin, introspection_endpoint: ep.url };
    await started;
    assertEquals(verifier.ready, true);
  }, { discover: true });
});

Deno.test("IntrospectionVerifier.close() ends start()'s retries", async () => {
  await withVerifier(async ({ verifier }) => {
    const started = verifier.start();
    await sleep(50);
    verifier.close();
    await started;
    assertEquals(verifier.ready, false);
  }, { discover: true });
});

// ---------------------------------------------------------------------------------------
// mcp-gate check

function checkConfig(ep: FakeEndpoint, over: Record<string, string> = {}) {
  return loadConfig({
    UPSTREAM_URL: "http://127.0.0.1:3000",
    RESOURCE_URI: RESOURCE,
    AUTHORIZATION_SERVER: ep.origin,
    INTROSPECTION_CLIENT_ID: CLIENT_ID,
    INTROSPECTION_CLIENT_SECRET: CLIENT_SECRET,
    ...over,
  });
}

Deno.test("checkIntrospection() introspects a random string and expects active: false", async () => {
  await withEndpoint(async (ep) => {
    ep.metadata = { issuer: ep.origin, introspection_endpoint: ep.url };
    const found = await checkIntrospection(checkConfig(ep), fetch);
    assertEquals(found.map((f) => f.kind), ["ok", "ok"]);
    assertStringIncludes(found[0]!.text, `The introspection endpoint ${ep.url} is published in`);
    assertEquals(
      found[1]!.text,
      `INTROSPECTION_CLIENT_ID "${CLIENT_ID}" may introspect, and a random string is {"active": false}.`,
    );
    assertEquals(ep.calls.length, 1);
    assertEquals(ep.calls[0]!.form.token!.length, 43);
    assertEquals(ep.calls[0]!.headers.authorization, basicCredentials(CLIENT_ID, CLIENT_SECRET));
  });
});

Deno.test("checkIntrospection() names the fix for each problem, in one sentence", async (t) => {
  await withEndpoint(async (ep) => {
    const cases: { description: string; setup: () => void; env?: Record<string, string>; text: string }[] = [
      {
        description: "401: wrong credentials",
        setup: () => ep.handler = () => Response.json({ error: "invalid_client" }, { status: 401 }),
        text: "The introspection endpoint refused the gateway's credentials (HTTP 401), so every opaque token would " +
          "get 503: register the gateway at the authorization server as a confidential client allowed to " +
          "introspect, with client_secret_basic, and set INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET " +
          "to its id and secret.",
      },
      {
        description: "a random string is active",
        setup: () => ep.handler = () => Response.json({ active: true }),
        text: "The introspection endpoint says a random string is active, so it would let any token through: make " +
          "INTROSPECTION_ENDPOINT the authorization server's real RFC 7662 endpoint.",
      },
      {
        description: "no introspection_endpoint in the metadata",
        setup: () => ep.metadata = { issuer: ep.origin },
        text: `The metadata at ${ep.origin}/.well-known/oauth-authorization-server has no usable ` +
          "introspection_endpoint, so the gateway will not start with INTROSPECTION_CLIENT_ID set: set " +
          "INTROSPECTION_ENDPOINT to the authorization server's RFC 7662 endpoint.",
      },
      {
        description: "an endpoint that is not one",
        setup: () => ep.handler = () => new Response("<html></html>", { headers: { "content-type": "text/html" } }),
        env: { INTROSPECTION_ENDPOINT: `${ep.origin}/introspect` },
        text: `Introspecting a test token failed (POST ${ep.origin}/introspect: the answer is not JSON), so every ` +
          "opaque token would get 503: check INTROSPECTION_ENDPOINT and that the authorization server is " +
          "reachable from here.",
      },
    ];
    for (const c of cases) {
      await t.step(c.description, async () => {
        ep.metadata = { issuer: ep.origin, introspection_endpoint: ep.url };
        c.setup();
        const found = await checkIntrospection(checkConfig(ep, c.env), fetch);
        assertEquals(found.at(-1), { kind: "problem", text: c.text });
        assert(!JSON.stringify(found).includes(CLIENT_SECRET));
      });
    }
  });
});
