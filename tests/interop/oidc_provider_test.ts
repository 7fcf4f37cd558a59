// Interop: a real authorization server (node-oidc-provider 9, resource indicators, JWT
// access tokens, open dynamic client registration, PKCE) and the SDK client's own OAuth
// implementation (auth() + OAuthClientProvider), against the gateway under Deno and Bun.
//
//  (c) full flow: 401 challenge -> protected resource metadata -> AS metadata -> DCR ->
//      authorization code + PKCE + resource indicator (headless login/consent) -> token ->
//      reconnect -> tools/call. The discovered resource is RESOURCE_URI and the access
//      token's aud is exactly that resource.
//  (d) a token the same AS issued for a different resource is refused: 401 invalid_token,
//      and nothing reaches the upstream.
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { parseChallenges } from "../_helpers/http.ts";
import {
  decodeJwt,
  type Gateway,
  type McpUpstream,
  type OidcServer,
  runNodeFixture,
  show,
  startGateway,
  startMcpServer,
  startOidcServer,
  stopAll,
  type Target,
  TARGETS,
} from "./_lib.ts";

const SCOPE = "mcp:tools";

interface Env {
  oidc: OidcServer;
  upstream: McpUpstream;
  gw: Gateway;
}

async function withStack(target: Target, fn: (env: Env) => Promise<void>, resourcePath = "/mcp") {
  let oidc: OidcServer | undefined;
  let upstream: McpUpstream | undefined;
  let gw: Gateway | undefined;
  try {
    [oidc, upstream] = await Promise.all([startOidcServer(SCOPE), startMcpServer()]);
    gw = await startGateway(target, {
      UPSTREAM_URL: upstream.url,
      AUTHORIZATION_SERVER: oidc.issuer,
      REQUIRED_SCOPES: SCOPE,
    }, resourcePath);
    await fn({ oidc, upstream, gw });
    const status = await gw.proc.stop(10_000);
    assertEquals(status.code, 0, `gateway exit status after SIGTERM\n${gw.output()}`);
  } finally {
    await stopAll(gw?.proc, upstream?.proc, oidc?.proc);
  }
}

// deno-lint-ignore no-explicit-any
type Step = Record<string, any>;

/**
 * (c) The full flow. The client always talks to ORIGIN/mcp; RESOURCE_URI is either that
 * endpoint (resourcePath "/mcp") or the bare origin (resourcePath ""), which the SDK must
 * send verbatim as the resource indicator (no trailing slash added) for aud to match.
 */
function fullFlow(target: Target, resourcePath: "/mcp" | "") {
  return withStack(target, async ({ oidc, upstream, gw }) => {
    const endpoint = `${gw.origin}/mcp`;
    const r = await runNodeFixture("sdk_oauth_client.mjs", ["--url", endpoint, "--timeout-ms", "40000"], 45_000);
    const s = r.json;
    const ctx = `summary: ${show(s)}\nstderr: ${r.stderr}\ngateway:\n${gw.output()}`;
    assertEquals(r.code, 0, ctx);
    assertEquals(s?.ok, true, ctx);
    assertEquals(s.phase, "done", ctx);

    // The 401 challenge (RFC 9728 §5.1, RFC 6750 §3.1: no error= without a token).
    const metadataUrl = `${gw.origin}/.well-known/oauth-protected-resource${resourcePath}`;
    assertEquals(s.firstConnectError, "UnauthorizedError", ctx);
    assertEquals(s.challenge.method, "POST", ctx);
    assertEquals(s.challenge.url, endpoint, ctx);
    const ch = parseChallenges(s.challenge.wwwAuthenticate);
    // realm: AUTH_REALM's default, the host of RESOURCE_URI (the gateway's own origin here).
    assertEquals(
      ch,
      [{ scheme: "Bearer", params: { realm: new URL(gw.origin).host, resource_metadata: metadataUrl, scope: SCOPE } }],
      ctx,
    );

    // Hint-less discovery (what the SDK does without a 401 first): path-inserted first.
    const steps: Step[] = s.steps;
    const brief = steps.map((x) => `${x.phase} ${x.method} ${x.url} ${x.status}`);
    const probes = brief.filter((b) => b.startsWith("probe "));
    if (resourcePath) {
      assertEquals(probes, [`probe GET ${metadataUrl} 200`], show(brief));
    } else {
      // ORIGIN/.well-known/oauth-protected-resource/mcp is not this resource's metadata;
      // the SDK falls back to the root document on any 4xx.
      assertEquals(probes.length, 2, show(brief));
      assertMatch(
        probes[0]!,
        new RegExp(`^probe GET ${gw.origin}/\\.well-known/oauth-protected-resource/mcp 4\\d\\d$`),
        show(brief),
      );
      assertEquals(probes[1], `probe GET ${metadataUrl} 200`, show(brief));
    }
    assertEquals(s.probe, { resource: gw.resource, authorization_servers: [oidc.issuer] }, ctx);

    // What the SDK fetched, in order, from the first connect up to the token request.
    const flow = steps.filter((x) => x.phase !== "probe");
    assertEquals(flow.slice(0, 5).map((x) => `${x.phase} ${x.method} ${x.url} ${x.status}`), [
      `first-connect POST ${endpoint} 401`,
      `first-connect GET ${metadataUrl} 200`,
      `first-connect GET ${oidc.issuer}/.well-known/oauth-authorization-server 200`,
      `first-connect POST ${oidc.issuer}/reg 201`,
      `finish-auth POST ${oidc.issuer}/token 200`,
    ], `SDK request sequence: ${show(brief)}`);
    // The SDK sends MCP-Protocol-Version on the metadata request; the gateway answered it.
    assertEquals(flow[1]!.headers["mcp-protocol-version"], "2025-11-25", show(flow[1]));
    assertEquals(flow[4]!.form, {
      grant_type: "authorization_code",
      resource: gw.resource,
      has_code_verifier: true,
      redirect_uri: "http://127.0.0.1:53682/oauth/callback",
    }, show(flow[4]));

    // Discovery: the resource the client learned is exactly RESOURCE_URI.
    assertEquals(s.discovery.resourceMetadata, {
      resource: gw.resource,
      authorization_servers: [oidc.issuer],
      scopes_supported: [SCOPE],
      bearer_methods_supported: ["header"],
      resource_name: "mcp-gate",
    }, ctx);
    assertEquals(s.discovery.authorizationServerUrl, oidc.issuer, ctx);
    assertEquals(s.discovery.asIssuer, oidc.issuer, ctx);

    // Registration and the authorization request (PKCE S256 + resource indicator).
    assertEquals(s.registration.token_endpoint_auth_method, "none", ctx);
    assertEquals(s.registration.scope, SCOPE, ctx);
    assertEquals(s.authorizationRequest.resource, gw.resource, ctx);
    assertEquals(s.authorizationRequest.code_challenge_method, "S256", ctx);
    assertEquals(s.authorizationRequest.has_code_challenge, true, ctx);
    assertEquals(s.authorizationRequest.scope, SCOPE, ctx);
    assertEquals(s.callback, { iss: oidc.issuer, has_code: true }, ctx);

    // The access token: a JWT for exactly this resource.
    const tok = decodeJwt(s.accessToken);
    assertEquals(tok.header.typ, "at+jwt", ctx);
    assertEquals(tok.header.alg, "RS256", ctx);
    assertEquals(tok.payload.aud, gw.resource, ctx);
    assertEquals(tok.payload.iss, oidc.issuer, ctx);
    assertEquals(tok.payload.scope, SCOPE, ctx);
    assertEquals(tok.payload.sub, "interop-user", ctx);

    // Reconnected with the token and used the server.
    assertEquals(s.secondConnect.ok, true, ctx);
    assertEquals(s.tools, ["echo", "request_headers", "slow_count"], ctx);
    assertEquals(s.echo, "authorized via oidc-provider", ctx);
    assertEquals(s.upstreamHeaders.authorization, undefined, ctx);
    const authed = flow.filter((x) => x.phase !== "first-connect" && x.phase !== "finish-auth");
    assert(authed.length >= 5, show(brief));
    for (const x of authed) assertEquals(x.authorization, "Bearer", show(x));
    for (const x of authed) assert(x.status >= 200 && x.status < 300, `not 2xx with a valid token: ${show(x)}`);
    for (const q of upstream.requests()) assertEquals(q.headers.authorization, undefined, show(q));

    // The token reaches the gateway but never its logs.
    assert(!gw.output().includes(s.accessToken), "the gateway logged the access token");
  }, resourcePath);
}

for (const target of TARGETS) {
  Deno.test({
    name: `[${target.name}] SDK OAuth flow against oidc-provider through the gateway ends in tools/call`,
    fn: () => fullFlow(target, "/mcp"),
  });

  Deno.test({
    name: `[${target.name}] SDK OAuth flow with RESOURCE_URI = origin (pathless resource indicator, exact aud)`,
    fn: () => fullFlow(target, ""),
  });

  Deno.test({
    name: `[${target.name}] oidc-provider token for a different resource is refused with 401 invalid_token`,
    fn: () =>
      withStack(target, async ({ oidc, upstream, gw }) => {
        const other = `${gw.origin}/other`;
        const r = await runNodeFixture(
          "sdk_oauth_client.mjs",
          ["--url", gw.resource, "--resource-override", other, "--timeout-ms", "40000"],
          45_000,
        );
        const s = r.json;
        const ctx = `summary: ${show(s)}\nstderr: ${r.stderr}\ngateway:\n${gw.output()}`;
        assertEquals(r.code, 0, ctx);
        assertEquals(s?.ok, true, ctx);
        // The client asked for, and got, a token for the other resource from the same AS.
        assertEquals(s.authorizationRequest.resource, other, ctx);
        const tok = decodeJwt(s.accessToken);
        assertEquals(tok.payload.aud, other, ctx);
        assertEquals(tok.payload.iss, oidc.issuer, ctx);
        assertEquals(tok.header.typ, "at+jwt", ctx);
        assertEquals(tok.payload.scope, SCOPE, ctx);

        // The SDK's reconnect was refused and it asked to re-authorize.
        assertEquals(s.secondConnect.ok, false, ctx);
        assertEquals(s.secondConnect.name, "UnauthorizedError", ctx);
        assertEquals(s.reauthorizationRequested, 1, ctx);
        const refused: Step[] = s.steps.filter((x: Step) => x.phase === "second-connect" && x.url === gw.resource);
        assertEquals(refused.map((x) => x.status), [401], ctx);

        // The same token, sent directly: exact status, challenge and body.
        const before = upstream.requests().length;
        const res = await fetch(gw.resource, {
          method: "POST",
          headers: {
            authorization: `Bearer ${s.accessToken}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "direct", version: "1" } },
          }),
        });
        const text = await res.text();
        assertEquals(res.status, 401, text);
        const wa = res.headers.get("www-authenticate") ?? "";
        assertMatch(wa, /^Bearer /, wa);
        const ch = parseChallenges(wa);
        assertEquals(ch.length, 1, wa);
        assertEquals(ch[0]!.scheme, "Bearer", wa);
        assertEquals(ch[0]!.params.error, "invalid_token", wa);
        assertEquals(ch[0]!.params.resource_metadata, `${gw.origin}/.well-known/oauth-protected-resource/mcp`, wa);
        const desc = ch[0]!.params.error_description ?? "";
        assert(desc.length > 0, `no error_description: ${wa}`);
        assert(!/["=]/.test(desc), `error_description contains " or =: ${wa}`);
        assertStringIncludes(res.headers.get("content-type") ?? "", "application/json");
        const body = JSON.parse(text);
        assertEquals(body.error, "invalid_token", text);
        assertEquals(typeof body.error_description, "string", text);
        assert(!text.includes(s.accessToken), "the token was echoed in the error body");
        assertEquals(upstream.requests().length, before, "a refused request reached the upstream");
        assertEquals(upstream.requests().length, 0, `the upstream saw requests: ${show(upstream.requests())}`);

        // Logged with the stable reason code for a wrong audience; the token is never logged.
        const refusedLogs = gw.proc.lines.filter((l) =>
          l.msg === "request" && l.status === 401 && l.path === "/mcp" && l.method === "POST"
        );
        const badAud = refusedLogs.filter((l) => l.reason === "bad_audience");
        assertEquals(
          badAud.length,
          2,
          `expected two request log lines with reason bad_audience (SDK reconnect, direct): ${show(refusedLogs)}`,
        );
        assert(!gw.output().includes(s.accessToken), "the gateway logged the access token");
      }),
  });
}
