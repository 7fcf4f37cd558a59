// Interop: the official MCP TypeScript SDK client and server (real Node processes) talking
// through the gateway, which runs from source under Deno and under Bun.
//
//  (a) Streamable HTTP, stateful session: initialize, tools/list, tools/call, a tool that
//      sends progress notifications (they must arrive while the tool is still running),
//      session DELETE; the upstream never sees the client's credentials.
//  (e) a quiet stream: one progress notification, then 12 s of silence before the result
//      (longer than Bun's default 10 s idle timeout), then another call on the same session.
//  (b) the legacy HTTP+SSE transport (GET /sse + POST /messages?sessionId=) through the
//      gateway: the `endpoint` event's URL stays usable, progress streams incrementally.
//
// Tokens are minted by the local issuer in tests/_helpers/issuer.ts (keys made at run time).
import { assert, assertEquals, assertGreater, assertLess, assertMatch } from "@std/assert";
import { Issuer } from "../_helpers/issuer.ts";
import { parseChallenges } from "../_helpers/http.ts";
import {
  type Gateway,
  type McpUpstream,
  runNodeFixture,
  show,
  startGateway,
  startMcpServer,
  stopAll,
  type Target,
  TARGETS,
} from "./_lib.ts";

const SCOPE = "mcp:tools";
const N = 5;
const INTERVAL = 300;

interface Env {
  issuer: Issuer;
  upstream: McpUpstream;
  gw: Gateway;
}

async function withStack(target: Target, fn: (env: Env) => Promise<void>) {
  let issuer: Issuer | undefined;
  let upstream: McpUpstream | undefined;
  let gw: Gateway | undefined;
  try {
    issuer = await Issuer.start();
    upstream = await startMcpServer();
    gw = await startGateway(target, {
      UPSTREAM_URL: upstream.url,
      AUTHORIZATION_SERVER: issuer.issuer,
      REQUIRED_SCOPES: SCOPE,
    });
    await fn({ issuer, upstream, gw });
    // The gateway shuts down cleanly on SIGTERM (exit 0) and never logged a token.
    const status = await gw.proc.stop(10_000);
    assertEquals(status.code, 0, `gateway exit status after SIGTERM\n${gw.output()}`);
    for (const t of issuer.issued) {
      assert(!gw.output().includes(t), "the gateway logged an access token");
    }
  } finally {
    await stopAll(gw?.proc, upstream?.proc);
    await issuer?.close();
  }
}

function mint(issuer: Issuer, gw: Gateway) {
  return issuer.sign({ aud: gw.resource, scope: SCOPE, sub: "interop-sub" });
}

/** Upstream headers a tools/call arrived with: no credentials, forwarding headers set. */
function assertUpstreamHeaders(h: Record<string, string>, gw: Gateway, summary: unknown) {
  const msg = `headers the upstream saw: ${show(h)}\nsummary: ${show(summary)}`;
  assertEquals(h.authorization, undefined, `Authorization must not reach the upstream; ${msg}`);
  assertEquals(h.cookie, undefined, msg);
  assertEquals(h["x-forwarded-proto"], "http", msg);
  assertEquals(h["x-forwarded-host"], `127.0.0.1:${gw.port}`, msg);
  assertEquals(h["x-forwarded-for"], "127.0.0.1", msg);
  assertEquals(h["mcp-protocol-version"], "2025-11-25", msg);
}

/** Every request the upstream received came without Authorization/Cookie. */
function assertNoCredentialsUpstream(upstream: McpUpstream) {
  const reqs = upstream.requests();
  assert(reqs.length > 0, "the upstream saw no requests");
  for (const r of reqs) {
    assertEquals(r.headers.authorization, undefined, `upstream request ${r.method} ${r.path} carried Authorization`);
    assertEquals(r.headers.cookie, undefined, `upstream request ${r.method} ${r.path} carried Cookie`);
  }
}

// deno-lint-ignore no-explicit-any
function assertProgressStreamed(s: any) {
  const msg = `summary: ${show(s)}`;
  assertEquals(s.result, `counted to ${N}`, msg);
  assertEquals(s.progress.map((p: { progress: number }) => p.progress), [1, 2, 3, 4, 5], msg);
  assertEquals(s.progress.map((p: { total: number }) => p.total), [5, 5, 5, 5, 5], msg);
  // The tool runs N intervals after the first notification (~1500 ms). With buffering
  // anywhere on the path, every notification would arrive together with the result.
  assertGreater(s.resultAt, (N - 1) * INTERVAL, `the tool call returned too early; ${msg}`);
  const first = s.progress[0].t;
  const last = s.progress[N - 1].t;
  assertLess(
    first,
    s.resultAt - 3 * INTERVAL,
    `first progress notification did not arrive >= 900 ms before the result; ${msg}`,
  );
  assertGreater(last - first, 3 * INTERVAL, `progress notifications arrived bunched together; ${msg}`);
  for (let i = 1; i < N; i++) {
    assertGreater(
      s.progress[i].t - s.progress[i - 1].t,
      INTERVAL / 3,
      `progress ${i + 1} arrived too soon after ${i}; ${msg}`,
    );
  }
}

for (const target of TARGETS) {
  Deno.test({
    name:
      `[${target.name}] SDK Streamable HTTP client + server through the gateway: tools, progress streaming, session`,
    sanitizeResources: true,
    sanitizeOps: true,
    fn: () =>
      withStack(target, async ({ issuer, upstream, gw }) => {
        // Negative control: the same SDK client without a token is turned away with 401.
        const anon = await runNodeFixture("mcp_client.mjs", ["--url", gw.resource, "--timeout-ms", "15000"], 20_000);
        assertEquals(anon.code, 1, `client without token should fail: ${anon.stdout}${anon.stderr}`);
        assertEquals(anon.json?.ok, false, anon.stdout);
        assertEquals(anon.json?.stage, "connect", anon.stdout);
        assertEquals(anon.json?.code, 401, anon.stdout);
        assertEquals(upstream.requests().length, 0, "an unauthenticated request reached the upstream");

        const token = await mint(issuer, gw);
        const r = await runNodeFixture(
          "mcp_client.mjs",
          [
            "--url",
            gw.resource,
            "--token",
            token,
            "--n",
            String(N),
            "--interval",
            String(INTERVAL),
            "--timeout-ms",
            "25000",
          ],
          30_000,
        );
        const s = r.json;
        assertEquals(r.code, 0, `client failed: ${r.stdout}\n${r.stderr}\ngateway:\n${gw.output()}`);
        assertEquals(s?.ok, true, show(s));
        assertEquals(s.transport, "streamable");
        assertEquals(s.serverInfo, { name: "interop-upstream", version: "1.0.0" }, show(s));
        assertEquals(s.protocolVersion, "2025-11-25", show(s));
        assertMatch(
          String(s.sessionId),
          /^[0-9a-f-]{36}$/,
          `Mcp-Session-Id did not come back through the gateway: ${show(s)}`,
        );
        assertEquals(s.tools, ["echo", "request_headers", "slow_count"], show(s));
        assertEquals(s.echo, "héllo through the gate", show(s));
        assertUpstreamHeaders(s.upstreamHeaders, gw, s);
        assertEquals(s.upstreamHeaders["mcp-session-id"], s.sessionId, show(s));
        assertProgressStreamed(s);
        assertEquals(s.terminated, true, `session DELETE failed: ${show(s)}`);
        assertEquals(s.transportErrors, [], show(s));

        // What the upstream saw: initialize, initialized, the standalone GET stream,
        // the tool calls and the DELETE; none with credentials.
        const seen = upstream.requests().map((q) => `${q.method} ${q.path}`);
        for (const m of ["POST /mcp", "GET /mcp", "DELETE /mcp"]) {
          assert(seen.includes(m), `upstream never saw ${m}: ${show(seen)}`);
        }
        assertNoCredentialsUpstream(upstream);
      }),
  });

  Deno.test({
    name: `[${target.name}] SDK legacy HTTP+SSE client + server through the gateway`,
    sanitizeResources: true,
    sanitizeOps: true,
    fn: () =>
      withStack(target, async ({ issuer, upstream, gw }) => {
        // Without a token the SSE stream is refused with the 401 challenge.
        const anon = await fetch(`${gw.origin}/sse`, { headers: { accept: "text/event-stream" } });
        const anonBody = await anon.text();
        assertEquals(anon.status, 401, anonBody);
        const ch = parseChallenges(anon.headers.get("www-authenticate") ?? "");
        assertEquals(ch.length, 1, show(ch));
        assertEquals(ch[0]!.scheme, "Bearer");
        assertEquals(ch[0]!.params.resource_metadata, `${gw.origin}/.well-known/oauth-protected-resource/mcp`);
        assertEquals(upstream.requests().length, 0, "an unauthenticated request reached the upstream");

        const token = await mint(issuer, gw);
        const r = await runNodeFixture(
          "mcp_client.mjs",
          [
            "--url",
            `${gw.origin}/sse`,
            "--transport",
            "sse",
            "--token",
            token,
            "--n",
            String(N),
            "--interval",
            String(INTERVAL),
            "--timeout-ms",
            "25000",
          ],
          30_000,
        );
        const s = r.json;
        assertEquals(r.code, 0, `client failed: ${r.stdout}\n${r.stderr}\ngateway:\n${gw.output()}`);
        assertEquals(s?.ok, true, show(s));
        assertEquals(s.transport, "sse");
        assertEquals(s.serverInfo, { name: "interop-upstream", version: "1.0.0" }, show(s));
        assertEquals(s.tools, ["echo", "request_headers", "slow_count"], show(s));
        assertEquals(s.echo, "héllo through the gate", show(s));
        assertUpstreamHeaders(s.upstreamHeaders, gw, s);
        assertProgressStreamed(s);
        assertEquals(s.transportErrors, [], show(s));

        const seen = upstream.requests();
        assert(seen.some((q) => q.method === "GET" && q.path === "/sse"), show(seen));
        const posts = seen.filter((q) => q.method === "POST");
        assert(posts.length >= 4, show(seen));
        for (const p of posts) assertMatch(p.path, /^\/messages\?sessionId=[0-9a-f-]{36}$/, show(seen));
        assertNoCredentialsUpstream(upstream);
      }),
  });

  Deno.test({
    name: `[${target.name}] SDK Streamable HTTP: a stream quiet for 12 s survives (no idle cut-off)`,
    fn: () =>
      withStack(target, async ({ issuer, upstream, gw }) => {
        const QUIET = 12_000;
        const token = await mint(issuer, gw);
        const r = await runNodeFixture(
          "mcp_client.mjs",
          [
            "--url",
            gw.resource,
            "--token",
            token,
            "--scenario",
            "quiet",
            "--quiet-ms",
            String(QUIET),
            "--timeout-ms",
            "30000",
          ],
          35_000,
        );
        const s = r.json;
        const ctx = `summary: ${show(s)}\nstderr: ${r.stderr}\ngateway:\n${gw.output()}`;
        assertEquals(r.code, 0, ctx);
        assertEquals(s.ok, true, ctx);
        assertEquals(s.result, "counted to 1", ctx);
        assertEquals(s.progress.length, 1, ctx);
        assertLess(s.progress[0].t, 2_000, ctx);
        assertGreater(s.resultAt, QUIET, ctx);
        assertLess(s.resultAt, QUIET + 3_000, ctx);
        assertEquals(s.echo, "still here", ctx);
        assertEquals(s.terminated, true, ctx);
        // The standalone GET stream was idle as long: had it been cut, the SDK would have
        // reported the failed stream / reconnect here.
        assertEquals(s.transportErrors, [], ctx);
        const gets = upstream.requests().filter((q) => q.method === "GET" && q.path === "/mcp");
        assertEquals(gets.length, 1, `the standalone GET stream was reopened: ${show(upstream.requests())}`);
        assertNoCredentialsUpstream(upstream);
      }),
  });
}
