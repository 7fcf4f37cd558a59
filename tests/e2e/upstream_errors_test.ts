// Spec §4: upstream unreachable → 502, no response headers within UPSTREAM_TIMEOUT → 504;
// the timeout covers headers only, never a stream.
import { assert, assertEquals, assertLess } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { closedPort, startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { assertJsonError, assertSecurityHeaders, send } from "../_helpers/expect.ts";
import { SseReader, uniqueUserAgent } from "../_helpers/http.ts";

for (const target of gatewayTargets()) {
  Deno.test(`gateway answers 502 when the upstream is unreachable [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using gw = await startGateway(target, gatewayEnv(issuer, `http://127.0.0.1:${closedPort()}`));
    const ua = uniqueUserAgent();
    const res = await send(`${gw.url}/mcp`, {
      method: "POST",
      token: await issuer.sign(),
      userAgent: ua,
      headers: { "content-type": "application/json" },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    assertJsonError(res, 502);
    assertSecurityHeaders(res.headers);
    assertEquals((await gw.accessLog(ua)).status, 502);
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway answers 504 after UPSTREAM_TIMEOUT without headers, but lets streams run [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { UPSTREAM_TIMEOUT: "1s" }));
    const token = await issuer.sign();

    await t.step("headers after 2.5 s → 504 JSON after about 1 s", async () => {
      const ua = uniqueUserAgent();
      const started = Date.now();
      const res = await send(`${gw.url}/slow-headers?ms=2500`, { token, userAgent: ua });
      const took = Date.now() - started;
      assertJsonError(res, 504);
      assert(took >= 900, `answered after ${took} ms, before the 1 s timeout`);
      assertLess(took, 2_400, "answered before the upstream would have");
      assertEquals((await gw.accessLog(ua)).status, 504);
    });

    await t.step("headers after 300 ms → 200", async () => {
      const res = await send(`${gw.url}/slow-headers?ms=300`, { token });
      assertEquals(res.status, 200);
      assertEquals(res.text, "slow done");
    });

    await t.step("an SSE stream silent for 2 s (past the timeout) keeps going", async () => {
      const res = await fetch(`${gw.url}/sse/silent?ms=2000`, {
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      });
      const sse = new SseReader(res.body!);
      try {
        assertEquals(res.status, 200);
        assertEquals(await sse.next(4_000), { id: "1", data: '{"after_ms":2000}' });
        assertEquals(await sse.next(1_000), null);
      } finally {
        await sse.cancel();
      }
    });

    await gw.stopAndCheck(issuer.issued);
  });
}
