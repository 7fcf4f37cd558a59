// Interop: per-tool authorization (SCOPE_RULES) with the official SDK client and server and
// a real authorization server (node-oidc-provider), on every target:
//   - a read-only token lists tools and calls a read tool, and gets the 403
//     insufficient_scope challenge on the admin tool;
//   - the SDK re-authorizes with the scope named in that challenge, and the same call on the
//     same session then succeeds;
//   - a mismatched Mcp-Name is refused (400 -32020), a batch with one forbidden call is
//     refused whole (raw fetch: the SDK sends no batches), and neither reaches the upstream.
import { assert, assertEquals } from "@std/assert";
import { parseChallenges } from "../_helpers/http.ts";
import {
  type Gateway,
  type McpUpstream,
  type OidcServer,
  runNodeFixture,
  show,
  startGateway,
  startMcpServer,
  startOidcServer,
  stopAll,
  TARGETS,
} from "./_lib.ts";

const RULES = JSON.stringify([{ method: "tools/call", name: "request_headers", scopes: ["mcp:admin"] }]);

// deno-lint-ignore no-explicit-any
type Step = Record<string, any>;

for (const target of TARGETS) {
  Deno.test(`[${target.name}] SCOPE_RULES: the SDK client steps up on a 403 challenge; headers and batches are checked`, async (t) => {
    let oidc: OidcServer | undefined;
    let upstream: McpUpstream | undefined;
    let gw: Gateway | undefined;
    try {
      [oidc, upstream] = await Promise.all([startOidcServer("mcp:read mcp:admin"), startMcpServer()]);
      gw = await startGateway(target, {
        UPSTREAM_URL: upstream.url,
        AUTHORIZATION_SERVER: oidc.issuer,
        REQUIRED_SCOPES: "mcp:read",
        SCOPE_RULES: RULES,
        SCOPE_IMPLIES: '{"mcp:admin":["mcp:read"]}',
        RATE_LIMIT_RPS: "0",
      });
      const endpoint = `${gw.origin}/mcp`;
      const metadataUrl = `${gw.origin}/.well-known/oauth-protected-resource/mcp`;
      const r = await runNodeFixture(
        "sdk_step_up_client.mjs",
        ["--url", endpoint, "--admin-tool", "request_headers", "--timeout-ms", "60000"],
        65_000,
      );
      const s = r.json;
      const ctx = `summary: ${show(s)}\nstderr: ${r.stderr}\ngateway:\n${gw.output()}`;

      await t.step("the SDK flow ran to the end", () => {
        assertEquals(r.code, 0, ctx);
        assertEquals([s.ok, s.phase], [true, "done"], ctx);
      });

      await t.step("the client registered for every scope the metadata advertises", () => {
        assertEquals(s.registeredScope, "mcp:read mcp:admin", ctx);
      });

      await t.step("the read-only token lists tools and calls a read tool", () => {
        assertEquals(s.authorizations[0].scope, "mcp:read", ctx);
        assertEquals(s.tokens[0].scope, "mcp:read", ctx);
        assertEquals(s.tools, ["echo", "request_headers", "slow_count"], ctx);
        assertEquals(s.echo, "read-only is enough", ctx);
      });

      await t.step("the admin tool gets one 403 naming the scopes it needs", () => {
        const denied = s.steps.filter((x: Step) => x.status === 403);
        assertEquals(denied.length, 1, ctx);
        assertEquals([denied[0].phase, denied[0].method, denied[0].url], ["admin", "POST", endpoint], ctx);
        assertEquals(parseChallenges(denied[0].wwwAuthenticate), [{
          scheme: "Bearer",
          params: {
            realm: new URL(endpoint).host,
            resource_metadata: metadataUrl,
            scope: "mcp:read mcp:admin",
            error: "insufficient_scope",
            error_description: "The token lacks the required scope mcp:admin",
          },
        }], ctx);
      });

      await t.step("the SDK re-authorized with exactly that scope and the same call succeeded", () => {
        assertEquals(s.stepUpError, "UnauthorizedError", ctx);
        assertEquals(s.authorizations.length, 2, ctx);
        assertEquals(s.authorizations[1], { scope: "mcp:read mcp:admin", resource: gw!.resource }, ctx);
        assertEquals(s.tokens.length, 2, ctx);
        assertEquals(s.tokens[1].scope, "mcp:read mcp:admin", ctx);
        // request_headers answers with what the upstream received: the gateway's identity headers.
        const seen = JSON.parse(s.adminResult);
        assertEquals(seen["x-auth-scopes"], "mcp:read mcp:admin", ctx);
        assertEquals(seen.authorization, undefined, ctx);
        const afterStepUp = s.steps.filter((x: Step) => x.phase === "admin-again" && x.url === endpoint);
        assertEquals(afterStepUp.map((x: Step) => x.status), [200], ctx);
      });

      const read = s.tokens[0].accessToken as string;
      const admin = s.tokens[1].accessToken as string;
      const post = (token: string, body: string, headers: Record<string, string> = {}) =>
        fetch(endpoint, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            ...headers,
          },
          body,
        });
      const call = (id: number, name: string) =>
        JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: { text: "x" } } });

      await t.step("a mismatched Mcp-Name is refused before the upstream", async () => {
        const before = upstream!.requests().length;
        const res = await post(admin, call(41, "echo"), { "Mcp-Method": "tools/call", "Mcp-Name": "request_headers" });
        assertEquals(res.status, 400);
        assertEquals(
          await res.text(),
          '{"jsonrpc":"2.0","id":41,"error":{"code":-32020,"message":"Header mismatch: the Mcp-Name header does not match the body"}}',
        );
        assertEquals(upstream!.requests().length, before);
      });

      await t.step("a batch with one forbidden call is refused whole; with the scope it is forwarded", async () => {
        const batch = `[${call(42, "echo")},${call(43, "request_headers")}]`;
        const before = upstream!.requests().length;
        const res = await post(read, batch);
        assertEquals(res.status, 403);
        await res.body?.cancel();
        const ch = parseChallenges(res.headers.get("www-authenticate")!);
        assertEquals([ch[0]!.params.error, ch[0]!.params.scope], ["insufficient_scope", "mcp:read mcp:admin"]);
        assertEquals(upstream!.requests().length, before, "nothing of the batch reached the upstream");
        // With the admin token the batch goes through; the upstream answers it (without a session
        // id, the SDK server's own 400 -32000).
        const allowed = await post(admin, batch);
        const answer = await allowed.json();
        assertEquals(answer.error?.code, -32000, show(answer));
        assertEquals(upstream!.requests().length, before + 1, "the whole batch was forwarded once");
      });

      await t.step("no token appears in the gateway's output", () => {
        for (const tok of [read, admin]) assert(!gw!.output().includes(tok.split(".")[2]!), "a token was logged");
      });
      const status = await gw.proc.stop(10_000);
      assertEquals(status.code, 0, `gateway exit status after SIGTERM\n${gw.output()}`);
    } finally {
      await stopAll(gw?.proc, upstream?.proc, oidc?.proc);
    }
  });
}
