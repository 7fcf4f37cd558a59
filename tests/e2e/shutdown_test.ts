// Spec §6 graceful shutdown: on SIGTERM, in-flight requests finish (up to
// SHUTDOWN_TIMEOUT) and the process exits 0.
import { assert, assertEquals, assertLess } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { send } from "../_helpers/expect.ts";
import { SseReader, waitFor } from "../_helpers/http.ts";

for (const target of gatewayTargets()) {
  Deno.test(`gateway drains an in-flight request on SIGTERM and exits 0 [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { SHUTDOWN_TIMEOUT: "5s" }));
    const inFlight = send(`${gw.url}/slow-headers?ms=1500`, { token: await issuer.sign() });
    await waitFor(() => upstream.received("/slow-headers").length === 1, 3_000);
    assertEquals(upstream.received("/slow-headers").length, 1, "request reached the upstream");
    const stopping = gw.stop("SIGTERM");
    const res = await inFlight;
    assertEquals(res.status, 200);
    assertEquals(res.text, "slow done");
    assertEquals(await stopping, 0);
    assert(gw.logs.some((l) => l.msg === "request" && l.path === "/slow-headers" && l.status === 200));
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway exits 0 after SHUTDOWN_TIMEOUT when a stream never ends [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream, { SHUTDOWN_TIMEOUT: "1s" }));
    const res = await fetch(`${gw.url}/sse/slow?n=1000&interval_ms=100`, {
      headers: { authorization: `Bearer ${await issuer.sign()}`, accept: "text/event-stream" },
    });
    const sse = new SseReader(res.body!);
    try {
      assertEquals((await sse.next())?.id, "1");
      const started = Date.now();
      const code = await gw.stop("SIGTERM", 8_000);
      const took = Date.now() - started;
      assertEquals(code, 0);
      assertLess(took, 4_000, `exit took ${took} ms with SHUTDOWN_TIMEOUT=1s`);
    } finally {
      await sse.cancel();
    }
    await gw.stopAndCheck(issuer.issued);
  });
}
