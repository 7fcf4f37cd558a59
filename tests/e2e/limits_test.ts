// Spec §1 limits: per-IP token bucket (429 + Retry-After), per-IP and global in-flight
// caps, and TRUSTED_PROXIES deciding whose X-Forwarded-For counts as the client.
import { assert, assertEquals, assertExists, assertMatch } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { JSON_RPC_HEADERS, onlyUpstreamRequest, type Reply, rpc, send } from "../_helpers/expect.ts";
import { uniqueUserAgent, waitFor } from "../_helpers/http.ts";

for (const target of gatewayTargets()) {
  Deno.test(`gateway rate-limits per client IP with 429 and Retry-After [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, { RATE_LIMIT_RPS: "0.2", RATE_LIMIT_BURST: "3" }),
    );
    const token = await issuer.sign();
    const call = (headers: Record<string, string> = {}) =>
      send(`${gw.url}/mcp`, { method: "POST", token, headers: { ...JSON_RPC_HEADERS, ...headers }, body: rpc(1) });

    await t.step("at most the burst passes, then 429 with Retry-After", async () => {
      // The launcher's /readyz polls may already have taken tokens from the bucket.
      let passed = 0;
      let limited: Reply | undefined;
      let ua = "";
      for (let i = 0; i < 10 && !limited; i++) {
        upstream.reset();
        ua = uniqueUserAgent();
        const res = await call({ "user-agent": ua });
        if (res.status === 200) passed++;
        else limited = res;
      }
      assert(passed >= 1 && passed <= 3, `${passed} requests passed with RATE_LIMIT_BURST=3`);
      assertExists(limited, "a request was limited");
      assertEquals(limited.status, 429);
      assertMatch(limited.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
      assertEquals(upstream.requests.length, 0);
      assertEquals((await gw.accessLog(ua)).status, 429);
    });

    await t.step("a spoofed X-Forwarded-For does not buy a new bucket without TRUSTED_PROXIES", async () => {
      assertEquals((await call({ "x-forwarded-for": "203.0.113.9" })).status, 429);
    });

    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway believes X-Forwarded-For only from TRUSTED_PROXIES [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const token = await issuer.sign();
    for (
      const [trusted, expectedClient, expectedXff] of [
        ["", "127.0.0.1", "127.0.0.1"],
        ["127.0.0.0/8", "203.0.113.7", "203.0.113.7, 127.0.0.1"],
      ] as const
    ) {
      await t.step(`TRUSTED_PROXIES=${JSON.stringify(trusted)}`, async () => {
        await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { TRUSTED_PROXIES: trusted }));
        upstream.reset();
        const ua = uniqueUserAgent();
        const res = await send(`${gw.url}/mcp`, {
          method: "POST",
          token,
          userAgent: ua,
          headers: { ...JSON_RPC_HEADERS, "x-forwarded-for": "203.0.113.7" },
          body: rpc(1),
        });
        assertEquals(res.status, 200);
        assertEquals(onlyUpstreamRequest(upstream).headers["x-forwarded-for"], expectedXff);
        assertEquals((await gw.accessLog(ua)).client_ip, expectedClient);
        await gw.stopAndCheck(issuer.issued);
      });
    }
  });

  Deno.test(`gateway answers 431 when headers exceed MAX_HEADER_BYTES [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { MAX_HEADER_BYTES: "8192" }));
    const token = await issuer.sign();
    const withHeader = (bytes: number) =>
      send(`${gw.url}/mcp`, {
        method: "POST",
        token,
        headers: { ...JSON_RPC_HEADERS, "x-big": "v".repeat(bytes) },
        body: rpc(1),
      });
    assertEquals((await withHeader(5 * 1024)).status, 200, "5 KB of headers");
    upstream.reset();
    assertEquals((await withHeader(10 * 1024)).status, 431, "10 KB of headers");
    assertEquals(upstream.requests.length, 0);
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway caps in-flight requests per client and in total [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const token = await issuer.sign();
    for (
      const [name, env, expected] of [
        ["MAX_CONCURRENT_REQUESTS=2", { MAX_CONCURRENT_REQUESTS: "2" }, [429, 503]],
        ["MAX_TOTAL_CONNECTIONS=2", { MAX_TOTAL_CONNECTIONS: "2" }, [503]],
      ] as const
    ) {
      await t.step(`${name}: the third concurrent request is refused, and nothing is forwarded`, async () => {
        await using gw = await startGateway(target, gatewayEnv(issuer, upstream, env));
        upstream.reset();
        const slow = [1, 2].map(() => send(`${gw.url}/slow-headers?ms=1500`, { token }));
        await waitFor(() => upstream.received("/slow-headers").length === 2, 3_000);
        let third: Reply;
        try {
          third = await send(`${gw.url}/slow-headers?ms=10`, { token });
        } finally {
          for (const r of await Promise.all(slow)) assertEquals(r.status, 200);
        }
        assert((expected as readonly number[]).includes(third.status), `status ${third.status}, expected ${expected}`);
        assertEquals(upstream.received("/slow-headers").length, 2);
        assertEquals((await send(`${gw.url}/slow-headers?ms=10`, { token })).status, 200, "capacity frees up");
        await gw.stopAndCheck(issuer.issued);
      });
    }
  });
}
