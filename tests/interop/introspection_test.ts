// Interop: opaque access tokens checked by RFC 7662 introspection at a real authorization
// server (node-oidc-provider with opaque access tokens, introspection and revocation; the
// gateway registered as a confidential client with client_secret_basic), through the
// gateway as a real process on each target (deno, bun, the binary).
//
// Per target: one oidc-provider, one MCP server (SDK), one switchable loopback proxy in
// front of the introspection endpoint (it counts calls and can be taken down), and two
// gateways started together: the main one (INTROSPECTION_ENDPOINT = the proxy,
// INTROSPECTION_CACHE_TTL 2s, CLOCK_SKEW 1s) and one whose secret is wrong (endpoint
// discovered from the metadata). The steps share them:
//   SDK OAuth flow ends in tools/call · identity headers · another resource → 401 ·
//   revoked → 401 within the TTL · expired → 401 · wrong gateway credentials → 503 ·
//   endpoint down → 503, then recovery · 100 concurrent requests → 1 introspection call ·
//   metrics · nothing secret in the gateway's output.
import { assert, assertEquals, assertLessOrEqual, assertMatch, assertStringIncludes } from "@std/assert";
import { parseChallenges } from "../_helpers/http.ts";
import {
  Gateway as StartedGateway,
  gatewayEnv as helperGatewayEnv,
  RESOURCE_URI,
  runGatewayCommand,
} from "../_helpers/gateway.ts";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import {
  FIXTURES,
  freePort,
  type Gateway,
  type JsonLine,
  type McpUpstream,
  Proc,
  runNodeFixture,
  show,
  startGateway,
  startMcpServer,
  stopAll,
  type Target,
  TARGETS,
} from "./_lib.ts";

const SCOPE = "mcp:tools";
const CACHE_TTL_MS = 2_000;

interface Client {
  client_id: string;
  client_secret: string;
}

interface OpaqueAs {
  proc: Proc;
  issuer: string;
  tokenEndpoint: string;
  introspectionEndpoint: string;
  revocationEndpoint: string;
  gateway: Client;
  machine: Client;
  short: Client & { ttl_seconds: number };
}

async function startOpaqueAs(port = 0, gatewaySecret = ""): Promise<OpaqueAs> {
  const args = [`${FIXTURES}/oidc_opaque_server.mjs`, "--port", String(port)];
  if (gatewaySecret) args.push("--gateway-secret", gatewaySecret);
  const proc = new Proc("oidc_opaque_server", "node", args);
  try {
    const l = await proc.waitForLine((l) => l.event === "listening", 15_000, "listening line");
    return {
      proc,
      issuer: l.issuer,
      tokenEndpoint: l.token_endpoint,
      introspectionEndpoint: l.introspection_endpoint,
      revocationEndpoint: l.revocation_endpoint,
      gateway: l.gateway,
      machine: l.machine,
      short: l.short,
    };
  } catch (e) {
    await proc.stop();
    throw e;
  }
}

const basic = (c: Client) => `Basic ${btoa(`${c.client_id}:${c.client_secret}`)}`;

/** A client-credentials access token (opaque) for `resource`. */
async function clientToken(as: OpaqueAs, client: Client, resource: string): Promise<string> {
  const res = await fetch(as.tokenEndpoint, {
    method: "POST",
    headers: { authorization: basic(client), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", resource, scope: SCOPE }),
  });
  const body = await res.json();
  assertEquals(res.status, 200, show(body));
  assertEquals(body.token_type, "Bearer", show(body));
  assertEquals(body.access_token.split(".").length, 1, "oidc-provider issued a JWT, not an opaque token");
  return body.access_token;
}

/** RFC 7009 revocation by the client that owns the token. */
async function revoke(as: OpaqueAs, client: Client, token: string): Promise<void> {
  const res = await fetch(as.revocationEndpoint, {
    method: "POST",
    headers: { authorization: basic(client), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token, token_type_hint: "access_token" }),
  });
  await res.body?.cancel();
  assertEquals(res.status, 200);
}

/**
 * A loopback HTTP proxy in front of the introspection endpoint: counts the calls, and can
 * be taken down (its port then refuses connections) and brought back on the same port.
 */
class SwitchableProxy {
  calls = 0;
  readonly port = freePort();
  readonly url = `http://127.0.0.1:${this.port}/introspect`;
  #server: Deno.HttpServer | undefined;

  constructor(readonly target: string) {
    this.up();
  }

  up(): void {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: this.port, onListen: () => {} }, async (req) => {
      this.calls++;
      const headers = new Headers();
      for (const h of ["authorization", "content-type", "accept"]) {
        const v = req.headers.get(h);
        if (v !== null) headers.set(h, v);
      }
      const res = await fetch(this.target, { method: req.method, headers, body: await req.arrayBuffer() });
      return new Response(await res.arrayBuffer(), {
        status: res.status,
        headers: { "content-type": res.headers.get("content-type") ?? "application/json" },
      });
    });
  }

  async down(): Promise<void> {
    await this.#server?.shutdown();
    this.#server = undefined;
  }
}

interface Stack {
  as: OpaqueAs;
  upstream: McpUpstream;
  proxy: SwitchableProxy;
  gw: Gateway;
  wrong: Gateway;
  metricsUrl: string;
  /** Every token the tests used: none may appear in the gateways' output. */
  tokens: string[];
}

function gatewayEnv(as: OpaqueAs, upstream: McpUpstream, extra: Record<string, string>): Record<string, string> {
  return {
    UPSTREAM_URL: upstream.url,
    AUTHORIZATION_SERVER: as.issuer,
    REQUIRED_SCOPES: SCOPE,
    INTROSPECTION_CLIENT_ID: as.gateway.client_id,
    INTROSPECTION_CLIENT_SECRET: as.gateway.client_secret,
    INTROSPECTION_CACHE_TTL: `${CACHE_TTL_MS / 1000}s`,
    CLOCK_SKEW: "1s",
    CLAIM_HEADERS: "username=X-Auth-Username",
    RATE_LIMIT_RPS: "0",
    MAX_CONCURRENT_REQUESTS: "0",
    SHUTDOWN_TIMEOUT: "5s",
    ...extra,
  };
}

async function withStack(target: Target, fn: (s: Stack) => Promise<void>): Promise<void> {
  let as: OpaqueAs | undefined;
  let upstream: McpUpstream | undefined;
  let proxy: SwitchableProxy | undefined;
  let gw: Gateway | undefined;
  let wrong: Gateway | undefined;
  try {
    [as, upstream] = await Promise.all([startOpaqueAs(), startMcpServer()]);
    proxy = new SwitchableProxy(as.introspectionEndpoint);
    const metricsPort = freePort();
    const started = await Promise.allSettled([
      startGateway(
        target,
        gatewayEnv(as, upstream, {
          INTROSPECTION_ENDPOINT: proxy.url,
          METRICS_ADDR: `127.0.0.1:${metricsPort}`,
        }),
      ),
      startGateway(target, gatewayEnv(as, upstream, { INTROSPECTION_CLIENT_SECRET: "not-the-secret" })),
    ]);
    if (started[0].status === "fulfilled") gw = started[0].value;
    if (started[1].status === "fulfilled") wrong = started[1].value;
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const stack: Stack = {
      as,
      upstream,
      proxy,
      gw: gw!,
      wrong: wrong!,
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      tokens: [],
    };
    await fn(stack);
    for (const g of [gw!, wrong!]) {
      const status = await g.proc.stop(10_000);
      assertEquals(status.code, 0, `gateway exit status after SIGTERM\n${g.output()}`);
      const output = g.output();
      for (const t of stack.tokens) assert(!output.includes(t), `a token appears in the gateway's output`);
      assert(!output.includes(as.gateway.client_secret), "the introspection client secret appears in the output");
      assert(!output.includes("not-the-secret"), "the (wrong) client secret appears in the output");
    }
  } finally {
    await proxy?.down();
    await stopAll(gw?.proc, wrong?.proc, upstream?.proc, as?.proc);
  }
}

const ListTools = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });

/** POST /mcp with a bearer token: the upstream answers 400 (no session) when the gateway lets it through. */
async function call(
  gw: Gateway,
  token: string,
  userAgent: string,
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(gw.resource, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "user-agent": userAgent,
    },
    body: ListTools,
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The upstream's own answer to a tools/list without a session: proof the request was forwarded. */
function assertForwarded(r: { status: number; text: string }, what: string): void {
  assertEquals(r.status, 400, `${what}: ${r.text}`);
  assertEquals(JSON.parse(r.text).error?.message, "Bad Request: No valid session ID provided", `${what}: ${r.text}`);
}

function assertRefused(r: { status: number; headers: Headers; text: string }, gw: Gateway, what: string): void {
  assertEquals(r.status, 401, `${what}: ${r.text}`);
  const ch = parseChallenges(r.headers.get("www-authenticate") ?? "");
  assertEquals(ch.length, 1, what);
  assertEquals(ch[0]!.params.error, "invalid_token", what);
  assertEquals(ch[0]!.params.resource_metadata, `${gw.origin}/.well-known/oauth-protected-resource/mcp`, what);
  assertEquals(JSON.parse(r.text).error, "invalid_token", what);
}

function assertUnavailable(r: { status: number; headers: Headers; text: string }, what: string): void {
  assertEquals(r.status, 503, `${what}: ${r.text}`);
  assertMatch(r.headers.get("retry-after") ?? "", /^\d+$/, what);
  assertEquals(r.headers.get("www-authenticate"), null, what);
  assertEquals(JSON.parse(r.text).error, "temporarily_unavailable", `${what}: ${r.text}`);
}

/** The access-log line of the request sent with this User-Agent. */
async function accessLog(gw: Gateway, userAgent: string): Promise<JsonLine> {
  return await gw.proc.waitForLine(
    (l) => l.msg === "request" && l.user_agent === userAgent,
    5_000,
    `log of ${userAgent}`,
  );
}

function upstreamSaw(s: Stack, userAgent: string): JsonLine[] {
  return s.upstream.requests().filter((r) => r.headers["user-agent"] === userAgent);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sdkFlow(s: Stack): Promise<void> {
  const r = await runNodeFixture("sdk_oauth_client.mjs", ["--url", s.gw.resource, "--timeout-ms", "40000"], 45_000);
  const sum = r.json;
  const ctx = `summary: ${show(sum)}\nstderr: ${r.stderr}\ngateway:\n${s.gw.output()}`;
  assertEquals(r.code, 0, ctx);
  assertEquals(sum.ok, true, ctx);
  assertEquals(sum.phase, "done", ctx);
  assertEquals(sum.firstConnectError, "UnauthorizedError", ctx);
  assertEquals(sum.authorizationRequest.resource, s.gw.resource, ctx);
  assertEquals(sum.tokenResponse.token_type, "Bearer", ctx);
  assertEquals(sum.accessToken.split(".").length, 1, `not an opaque token: ${ctx}`);
  s.tokens.push(sum.accessToken);
  assertEquals(sum.secondConnect.ok, true, ctx);
  assertEquals(sum.tools, ["echo", "request_headers", "slow_count"], ctx);
  assertEquals(sum.echo, "authorized via oidc-provider", ctx);
  // The identity the upstream saw with the tools/call, from the introspection answer.
  const h = sum.upstreamHeaders;
  assertEquals(h["x-auth-subject"], "interop-user", ctx);
  assertEquals(h["x-auth-client-id"], sum.registration.client_id, ctx);
  assertEquals(h["x-auth-scopes"], SCOPE, ctx);
  assertEquals(h["x-auth-username"], "interop-user@example.test", ctx);
  assertEquals(h["authorization"], undefined, ctx);
}

async function identityHeaders(s: Stack): Promise<void> {
  const token = await clientToken(s.as, s.as.machine, s.gw.resource);
  s.tokens.push(token);
  const ua = "introspection-identity";
  assertForwarded(await call(s.gw, token, ua), "client-credentials token");
  const seen = upstreamSaw(s, ua);
  assertEquals(seen.length, 1, show(seen));
  const h = seen[0]!.headers;
  // No sub in a client-credentials token: the subject is the client.
  assertEquals(
    [h["x-auth-subject"], h["x-auth-client-id"], h["x-auth-scopes"], h["x-auth-username"], h["authorization"]],
    ["machine", "machine", SCOPE, undefined, undefined],
    show(h),
  );
  const log = await accessLog(s.gw, ua);
  assertEquals([log.status, log.sub, log.reason], [400, "machine", undefined], show(log));
}

async function otherResource(s: Stack): Promise<void> {
  const token = await clientToken(s.as, s.as.machine, `${s.gw.origin}/other`);
  s.tokens.push(token);
  const ua = "introspection-other-resource";
  assertRefused(await call(s.gw, token, ua), s.gw, "token for another resource");
  assertEquals(upstreamSaw(s, ua), []);
  const log = await accessLog(s.gw, ua);
  assertEquals([log.status, log.reason], [401, "bad_audience"], show(log));
  assertStringIncludes(String(log.hint), `${s.gw.origin}/other`);
}

async function revoked(s: Stack): Promise<void> {
  const token = await clientToken(s.as, s.as.machine, s.gw.resource);
  s.tokens.push(token);
  assertForwarded(await call(s.gw, token, "introspection-before-revocation"), "before revocation");
  const accepted = performance.now();
  await revoke(s.as, s.as.machine, token);
  // Refused at the latest when the cached answer runs out, INTROSPECTION_CACHE_TTL after it was fetched.
  let n = 0;
  for (;;) {
    const ua = `introspection-after-revocation-${n++}`;
    const r = await call(s.gw, token, ua);
    if (r.status === 401) {
      assertRefused(r, s.gw, "revoked token");
      assertEquals((await accessLog(s.gw, ua)).reason, "inactive");
      break;
    }
    assertForwarded(r, "revoked, still within INTROSPECTION_CACHE_TTL");
    assertLessOrEqual(performance.now() - accepted, CACHE_TTL_MS + 3_000, "still accepted long after the TTL");
    await sleep(200);
  }
  assertLessOrEqual(performance.now() - accepted, CACHE_TTL_MS + 3_000);
}

async function expired(s: Stack): Promise<void> {
  const used = await clientToken(s.as, s.as.short, s.gw.resource);
  const unused = await clientToken(s.as, s.as.short, s.gw.resource);
  s.tokens.push(used, unused);
  assertForwarded(await call(s.gw, used, "introspection-short-fresh"), "short-lived token while valid");
  // Past exp + CLOCK_SKEW (1 s), with room to spare.
  await sleep(s.as.short.ttl_seconds * 1000 + 1_000 + 700);
  for (const [token, ua] of [[used, "introspection-expired-used"], [unused, "introspection-expired-new"]] as const) {
    assertRefused(await call(s.gw, token, ua), s.gw, ua);
    assertEquals((await accessLog(s.gw, ua)).reason, "inactive");
    assertEquals(upstreamSaw(s, ua), []);
  }
}

async function wrongCredentials(s: Stack): Promise<void> {
  const token = await clientToken(s.as, s.as.machine, s.wrong.resource);
  s.tokens.push(token);
  const ua = "introspection-wrong-credentials";
  assertUnavailable(await call(s.wrong, token, ua), "wrong gateway credentials");
  assertEquals(upstreamSaw(s, ua), []);
  assertEquals((await accessLog(s.wrong, ua)).reason, "introspection_unavailable");
  const err = s.wrong.proc.lines.find((l) =>
    l.level === "error" && l.msg === "introspection refused the gateway's credentials"
  );
  assert(err, `no error log about the credentials:\n${s.wrong.output()}`);
  assertStringIncludes(String(err.error), "INTROSPECTION_CLIENT_ID");
  assertStringIncludes(String(err.error), "HTTP 401");
  // The endpoint was discovered from the metadata (no INTROSPECTION_ENDPOINT here).
  const found = s.wrong.proc.lines.find((l) => l.msg === "introspection endpoint");
  assertEquals(found?.endpoint, s.as.introspectionEndpoint, s.wrong.output());
}

async function endpointDown(s: Stack): Promise<void> {
  const token = await clientToken(s.as, s.as.machine, s.gw.resource);
  s.tokens.push(token);
  await s.proxy.down();
  const ua = "introspection-endpoint-down";
  assertUnavailable(await call(s.gw, token, ua), "introspection endpoint down");
  assertEquals(upstreamSaw(s, ua), []);
  const log = await accessLog(s.gw, ua);
  assertEquals([log.status, log.reason], [503, "introspection_unavailable"], show(log));
  s.proxy.up();
  assertForwarded(await call(s.gw, token, "introspection-endpoint-back"), "after recovery");
}

async function singleFlight(s: Stack): Promise<void> {
  const token = await clientToken(s.as, s.as.machine, s.gw.resource);
  s.tokens.push(token);
  const before = s.proxy.calls;
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => call(s.gw, token, `introspection-burst-${i}`)),
  );
  for (const [i, r] of results.entries()) assertForwarded(r, `burst request ${i}`);
  assertEquals(s.proxy.calls - before, 1, "introspection calls for 100 concurrent requests with one new token");
}

/** `mcp-gate check` with the gateway's environment, and with a wrong secret. */
function checkCommand(target: Target) {
  return async (s: Stack): Promise<void> => {
    const env = { ...gatewayEnv(s.as, s.upstream, {}), RESOURCE_URI: s.gw.resource, METRICS_ADDR: "" };
    const good = await runGatewayCommand(target, ["check"], env, 30_000);
    const ctx = `${good.stdout}\n${good.stderr}`;
    assertEquals(good.code, 0, ctx);
    assertStringIncludes(good.stdout, "Token introspection (opaque access tokens)", ctx);
    assertStringIncludes(
      good.stdout,
      `  ✓ The introspection endpoint ${s.as.introspectionEndpoint} is published in ${s.as.issuer}/.well-known/`,
      ctx,
    );
    assertStringIncludes(
      good.stdout,
      `  ✓ INTROSPECTION_CLIENT_ID "mcp-gate" may introspect, and a random string is {"active": false}.\n`,
      ctx,
    );
    const bad = await runGatewayCommand(
      target,
      ["check"],
      { ...env, INTROSPECTION_CLIENT_SECRET: "not-the-secret" },
      30_000,
    );
    assertEquals(bad.code, 1, `${bad.stdout}\n${bad.stderr}`);
    assertStringIncludes(
      bad.stdout,
      "  ✗ The introspection endpoint refused the gateway's credentials (HTTP 401), so every opaque token would get " +
        "503: register the gateway at the authorization server as a confidential client allowed to introspect, with " +
        "client_secret_basic, and set INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET to its id and secret.\n",
      bad.stdout,
    );
    for (const out of [good.stdout + good.stderr, bad.stdout + bad.stderr]) {
      assert(!out.includes(s.as.gateway.client_secret), "check printed the client secret");
      assert(!out.includes("not-the-secret"), "check printed the client secret");
    }
  };
}

async function metrics(s: Stack): Promise<void> {
  const res = await fetch(s.metricsUrl);
  const text = await res.text();
  assertEquals(res.status, 200);
  const value = (series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  assertEquals(value('mcpgate_introspection_requests_total{outcome="unreachable"}'), 1, text);
  assert((value('mcpgate_introspection_requests_total{outcome="active"}') ?? 0) >= 6, text);
  assert((value('mcpgate_introspection_requests_total{outcome="inactive"}') ?? 0) >= 3, text);
  assert((value("mcpgate_introspection_duration_seconds_count") ?? 0) >= 10, text);
  assertEquals(value('mcpgate_auth_validations_total{outcome="error",reason="introspection_unavailable"}'), 1, text);
  assertEquals(value('mcpgate_auth_validations_total{outcome="invalid",reason="bad_audience"}'), 1, text);
  assert(!text.includes(s.as.gateway.client_secret), "the secret in a metric");
}

for (const target of TARGETS) {
  Deno.test({
    name: `[${target.name}] opaque tokens introspected at oidc-provider through the gateway`,
    fn: (t) =>
      withStack(target, async (s) => {
        const steps: [string, (s: Stack) => Promise<void>][] = [
          ["the SDK client's full OAuth flow ends in tools/call with an opaque token", sdkFlow],
          ["an opaque token for this resource passes, with identity headers", identityHeaders],
          ["a token for another resource → 401 bad_audience", otherResource],
          ["a revoked token is refused within INTROSPECTION_CACHE_TTL", revoked],
          ["an expired token → 401", expired],
          ["wrong gateway credentials → 503 and an error log naming INTROSPECTION_CLIENT_ID", wrongCredentials],
          ["introspection endpoint down → 503, then recovery", endpointDown],
          ["100 concurrent requests with one new token → 1 introspection call", singleFlight],
          ["introspection metrics", metrics],
          ["mcp-gate check introspects a random string; a wrong secret is named with its fix", checkCommand(target)],
        ];
        let ok = true;
        for (const [name, step] of steps) ok = (await t.step(name, () => step(s))) && ok;
        assert(ok, "a step failed");
      }),
  });
}

/** A metadata document without introspection_endpoint: start-up stops, naming INTROSPECTION_ENDPOINT. */
async function missingEndpoint(target: Target): Promise<void> {
  const issuer = await startIssuer();
  const upstream = await startUpstream();
  try {
    const env = helperGatewayEnv(issuer, upstream, {
      INTROSPECTION_CLIENT_ID: "mcp-gate",
      INTROSPECTION_CLIENT_SECRET: "pw-not-shown",
    });
    const r = await runGatewayCommand(target, [], env, 30_000);
    const ctx = `${r.stdout}\n${r.stderr}`;
    assertEquals(r.code, 1, ctx);
    const line = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .find((l) => l.msg === "invalid configuration");
    assertEquals(line?.level, "error", ctx);
    assertEquals(line?.problems.length, 1, ctx);
    assertStringIncludes(line?.problems[0], "INTROSPECTION_ENDPOINT is not set: ", ctx);
    assertStringIncludes(
      line?.problems[0],
      `metadata ${issuer.issuer}/.well-known/oauth-authorization-server has no introspection_endpoint`,
      ctx,
    );
    assertStringIncludes(r.stderr, "INTROSPECTION_ENDPOINT", ctx);
    assert(!ctx.includes("pw-not-shown"), "the secret was printed");
  } finally {
    await Promise.all([issuer.close(), upstream.close()]);
  }
}

/** The authorization server is down at start-up: not ready, 503, until it comes up; then tokens work. */
async function serverLate(target: Target): Promise<void> {
  const port = freePort();
  const secret = crypto.randomUUID();
  const upstream = await startUpstream();
  let gw: StartedGateway | undefined;
  let as: OpaqueAs | undefined;
  try {
    gw = await StartedGateway.start(target, {
      LISTEN_ADDR: "127.0.0.1:0",
      UPSTREAM_URL: upstream.url,
      RESOURCE_URI,
      AUTHORIZATION_SERVER: `http://127.0.0.1:${port}`,
      INTROSPECTION_CLIENT_ID: "mcp-gate",
      INTROSPECTION_CLIENT_SECRET: secret,
      METRICS_ADDR: "",
      RATE_LIMIT_RPS: "0",
      SHUTDOWN_TIMEOUT: "5s",
    }, { waitFor: "listening" });
    const ready = await fetch(`${gw.url}/readyz`);
    await ready.body?.cancel();
    assertEquals(ready.status, 503);
    const early = await fetch(`${gw.url}/mcp`, {
      method: "POST",
      headers: {
        authorization: "Bearer some-opaque-token",
        "content-type": "application/json",
        "user-agent": "late-1",
      },
      body: ListTools,
    });
    assertUnavailable(
      { status: early.status, headers: early.headers, text: await early.text() },
      "before the AS is up",
    );
    assertEquals((await gw.accessLog("late-1")).reason, "introspection_unavailable");

    as = await startOpaqueAs(port, secret);
    const token = await clientToken(as, as.machine, RESOURCE_URI);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await fetch(`${gw.url}/readyz`);
      await r.body?.cancel();
      if (r.status === 200) break;
      assert(Date.now() < deadline, `not ready 20 s after the authorization server came up\n${gw.describe()}`);
      await sleep(200);
    }
    const later = await fetch(`${gw.url}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "user-agent": "late-2" },
      body: ListTools,
    });
    assertEquals(later.status, 200, await later.text());
    const seen = upstream.requests.filter((q) => q.headers["user-agent"] === "late-2");
    assertEquals(seen.map((q) => [q.headers["x-auth-subject"], q.headers["x-auth-client-id"]]), [[
      "machine",
      "machine",
    ]]);
    await gw.stopAndCheck([token, secret]);
  } finally {
    await gw?.kill();
    await stopAll(as?.proc);
    await upstream.close();
  }
}

for (const target of TARGETS) {
  Deno.test({
    name: `[${target.name}] introspection at start-up: no endpoint in the metadata, authorization server late`,
    fn: async (t) => {
      const a = await t.step(
        "metadata without introspection_endpoint → exit 1 naming INTROSPECTION_ENDPOINT",
        () => missingEndpoint(target),
      );
      const b = await t.step(
        "authorization server down at start-up → /readyz 503 and 503, then ready",
        () => serverLate(target),
      );
      assert(a && b, "a step failed");
    },
  });
}
