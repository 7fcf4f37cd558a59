// Spec §3 JWKS handling: discovery, rotation (new kid and same kid), outages after
// warm-up, no keys at start-up, and a bounded refetch under a random-kid flood.
import { assert, assertEquals, assertLessOrEqual, assertStringIncludes } from "@std/assert";
import { generateKeyPair } from "jose";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { assertAuthError, assertJsonError, JSON_RPC_HEADERS, rpc, send } from "../_helpers/expect.ts";
import { sleep, uniqueUserAgent, waitFor } from "../_helpers/http.ts";

const COOLDOWN_MS = 1_000;

/** POST /mcp with a token; returns the reply. */
function call(url: string, token: string, userAgent?: string) {
  return send(`${url}/mcp`, {
    method: "POST",
    token,
    headers: JSON_RPC_HEADERS,
    body: rpc(1),
    ...(userAgent ? { userAgent } : {}),
  });
}

for (const target of gatewayTargets()) {
  Deno.test(`gateway discovers the JWKS via RFC 8414 for an issuer with a path [${target.name}]`, async () => {
    await using issuer = await startIssuer({ path: "/realms/test" });
    await using upstream = await startUpstream();
    const env = gatewayEnv(issuer, upstream);
    delete env.JWKS_URI;
    delete env.EXPECTED_ISSUER;
    await using gw = await startGateway(target, env);
    assert(issuer.counts.oauthMetadata >= 1, "fetched /.well-known/oauth-authorization-server/realms/test");
    assertEquals(issuer.counts.other, 0, "no fetches of unknown paths");
    const res = await call(gw.url, await issuer.sign());
    assertEquals(res.status, 200, res.text);
    assertAuthError(await call(gw.url, await issuer.bad.wrongIssuer()), { status: 401, error: "invalid_token" });
    assertEquals(gw.find((l) => l.level === "warn" && /S256/.test(String(l.msg) + JSON.stringify(l))).length, 0);
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway falls back to OIDC discovery and warns without S256 [${target.name}]`, async () => {
    await using issuer = await startIssuer({ path: "/realms/test", oauthMetadata: false, s256: false });
    await using upstream = await startUpstream();
    const env = gatewayEnv(issuer, upstream);
    delete env.JWKS_URI;
    delete env.EXPECTED_ISSUER;
    await using gw = await startGateway(target, env);
    assert(issuer.counts.openidConfiguration >= 1, "fetched the OpenID configuration");
    assertEquals(issuer.counts.other, 0, "no fetches of unknown paths");
    assertEquals((await call(gw.url, await issuer.sign())).status, 200);
    const warnings = gw.find((l) => l.level === "warn");
    assert(
      warnings.some((l) => JSON.stringify(l).includes("S256")),
      `a warning mentions S256: ${JSON.stringify(warnings)}`,
    );
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway follows key rotation with one refetch [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, { JWKS_REFETCH_COOLDOWN: `${COOLDOWN_MS}ms` }),
    );
    const oldToken = await issuer.sign();
    assertEquals((await call(gw.url, oldToken)).status, 200);

    await t.step("a token under a new kid succeeds after exactly one refetch", async () => {
      await sleep(COOLDOWN_MS + 200);
      const before = issuer.counts.jwks;
      await issuer.rotate();
      const res = await call(gw.url, await issuer.sign());
      assertEquals(res.status, 200, res.text);
      assertEquals(issuer.counts.jwks, before + 1);
      assertEquals((await call(gw.url, await issuer.sign())).status, 200);
      assertEquals(issuer.counts.jwks, before + 1, "no further fetch once the key is known");
    });

    await t.step("the retired kid is now refused", async () => {
      const ua = uniqueUserAgent();
      assertAuthError(await call(gw.url, oldToken, ua), { status: 401, error: "invalid_token" });
      assertEquals((await gw.accessLog(ua)).reason, "unknown_kid");
    });

    await t.step("a key rotated under the same kid succeeds after a refetch", async () => {
      await sleep(COOLDOWN_MS + 200);
      const before = issuer.counts.jwks;
      await issuer.replaceKey();
      const res = await call(gw.url, await issuer.sign());
      assertEquals(res.status, 200, res.text);
      assertEquals(issuer.counts.jwks, before + 1);
    });

    await gw.stopAndCheck(issuer.issued);
  });

  // One gateway per fault, side by side: after a failed refresh a gateway may back off,
  // which would make a second fault on the same gateway untested.
  Deno.test(`gateway keeps serving the last good keys through a JWKS outage [${target.name}]`, async () => {
    const outcomes = await Promise.allSettled((["500", "close", "hang"] as const).map(async (fault) => {
      await using issuer = await startIssuer();
      await using upstream = await startUpstream();
      await using gw = await startGateway(
        target,
        gatewayEnv(issuer, upstream, {
          JWKS_REFRESH_INTERVAL: "1s",
          JWKS_REFETCH_COOLDOWN: `${COOLDOWN_MS}ms`,
          JWKS_FETCH_TIMEOUT: "1s",
        }),
      );
      assertEquals((await call(gw.url, await issuer.sign())).status, 200, `[${fault}] warm-up`);
      issuer.jwksFault = fault;
      const before = issuer.counts.jwks;
      await sleep(1_500);
      // Fresh tokens, so that no verified-token cache can answer in place of the keys.
      for (const token of [await issuer.sign(), await issuer.sign({}, { alg: "ES256" })]) {
        const res = await call(gw.url, token);
        assertEquals(res.status, 200, `[${fault}] known key after the cache expired: ${res.text}`);
      }
      await waitFor(() => issuer.counts.jwks > before, 3_000);
      assert(issuer.counts.jwks > before, `[${fault}] the gateway tried to refresh the expired key set`);
      assertEquals((await send(`${gw.url}/readyz`)).status, 200, `[${fault}] still ready`);
      issuer.jwksFault = "none";
      await gw.stopAndCheck(issuer.issued);
    }));
    const failures = outcomes.flatMap((o) => (o.status === "rejected" ? [String(o.reason?.stack ?? o.reason)] : []));
    assertEquals(failures, [], "JWKS outage checks");
  });

  Deno.test(`gateway without keys at start-up is not ready and answers 503 [${target.name}]`, async (t) => {
    await using issuer = await startIssuer({ jwksFault: "close" });
    await using upstream = await startUpstream();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, { JWKS_REFETCH_COOLDOWN: `${COOLDOWN_MS}ms`, JWKS_FETCH_TIMEOUT: "1s" }),
      { waitFor: "listening" },
    );
    const token = await issuer.sign();

    await t.step("/healthz 200, /readyz 503", async () => {
      assertEquals((await send(`${gw.url}/healthz`)).status, 200);
      assertEquals((await send(`${gw.url}/readyz`)).status, 503);
    });

    await t.step("a valid token gets 503 JSON, not 401, and nothing is forwarded", async () => {
      upstream.reset();
      const ua = uniqueUserAgent();
      const res = await call(gw.url, token, ua);
      assertJsonError(res, 503);
      assertEquals(upstream.requests.length, 0);
      assertEquals((await gw.accessLog(ua)).reason, "no_keys");
    });

    await t.step("once the JWKS is reachable the gateway becomes ready and serves", async () => {
      issuer.jwksFault = "none";
      const deadline = Date.now() + 15_000;
      let ready = 0;
      while (Date.now() < deadline && ready !== 200) {
        ready = (await send(`${gw.url}/readyz`)).status;
        if (ready !== 200) await sleep(200);
      }
      assertEquals(ready, 200, "ready within 15 s of the JWKS coming back");
      assertEquals((await call(gw.url, token)).status, 200);
    });

    const errors = gw.find((l) => (l.level === "error" || l.level === "warn") && /jwks/i.test(JSON.stringify(l)));
    assert(errors.length > 0, "the failed JWKS fetch was logged");
    assertStringIncludes(JSON.stringify(errors[0]), issuer.jwksUri.split("/").pop()!);
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway refetches at most once per cooldown under a random-kid flood [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { JWKS_REFETCH_COOLDOWN: "30s" }));
    const { privateKey } = await generateKeyPair("RS256");
    const tokens = await Promise.all(
      Array.from({ length: 200 }, () => issuer.sign({}, { kid: `flood-${crypto.randomUUID()}`, key: privateKey })),
    );
    const statuses: number[] = [];
    for (let i = 0; i < tokens.length; i += 20) {
      const batch = await Promise.all(tokens.slice(i, i + 20).map((tok) => call(gw.url, tok)));
      statuses.push(...batch.map((r) => r.status));
    }
    assertEquals(statuses.filter((s) => s !== 401), [], "every flood request gets 401");
    assertLessOrEqual(issuer.counts.jwks, 2, "JWKS fetches in total (start-up included)");
    assertEquals(upstream.requests.length, 0);
    const reasons = new Set(gw.find((l) => l.msg === "request" && l.status === 401).map((l) => l.reason));
    assertEquals([...reasons], ["unknown_kid"]);
    assertEquals((await call(gw.url, await issuer.sign())).status, 200, "real tokens still work");
    await gw.stopAndCheck(issuer.issued);
  });
}
