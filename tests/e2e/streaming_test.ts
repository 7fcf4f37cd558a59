// Spec §4 Streaming: SSE headers, no buffering, no idle cut-off, disconnect propagation.
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { type Gateway, gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { sleep, SseReader, waitFor } from "../_helpers/http.ts";

for (const target of gatewayTargets()) {
  Deno.test(`gateway streams SSE unbuffered and propagates disconnects [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream));
    const auth = { authorization: `Bearer ${await issuer.sign()}`, accept: "text/event-stream" };

    await t.step("text/event-stream gets X-Accel-Buffering: no and Cache-Control: no-cache", async () => {
      const res = await fetch(`${gw.url}/sse/slow?n=2&interval_ms=10`, { headers: auth });
      await res.body?.cancel();
      assertEquals(res.status, 200);
      assertEquals(res.headers.get("content-type"), "text/event-stream");
      assertEquals(res.headers.get("x-accel-buffering"), "no");
      assertEquals(res.headers.get("cache-control"), "no-cache");
      assertEquals(res.headers.get("content-length"), null);
    });

    await t.step("the first event arrives before the upstream has finished", async () => {
      upstream.reset();
      const res = await fetch(`${gw.url}/sse/slow?n=5&interval_ms=400`, { headers: auth });
      const sse = new SseReader(res.body!);
      try {
        const first = await sse.next(1_500);
        const rec = upstream.streams[0]!;
        assertEquals(first, { id: "1", data: '{"i":1}' });
        assertEquals(rec.finished, false, "upstream still streaming when the first event arrived");
        assert(rec.sent < 5, `upstream had sent ${rec.sent} of 5 events`);
        for (let i = 2; i <= 5; i++) assertEquals((await sse.next(1_500))?.id, String(i));
        assertEquals(await sse.next(1_500), null);
      } finally {
        await sse.cancel();
      }
    });

    await t.step("a client disconnect cancels the upstream stream within a second", async () => {
      upstream.reset();
      const ac = new AbortController();
      const res = await fetch(`${gw.url}/sse/slow?n=200&interval_ms=100`, { headers: auth, signal: ac.signal });
      const sse = new SseReader(res.body!);
      assertEquals((await sse.next())?.id, "1");
      const leftAt = Date.now();
      ac.abort();
      await sse.cancel();
      const rec = upstream.streams[0]!;
      await waitFor(() => rec.cancelled, 3_000);
      assert(rec.cancelled, `upstream stream still running ${Date.now() - leftAt} ms after the client left`);
      assertLessOrEqual(rec.cancelledAt! - leftAt, 1_000, "ms from client disconnect to upstream cancel");
      assert(rec.sent < 200);
    });

    await t.step("a client disconnect while waiting for headers aborts the upstream request", async () => {
      upstream.reset();
      const ac = new AbortController();
      const pending = fetch(`${gw.url}/slow-headers?ms=5000`, { headers: auth, signal: ac.signal }).catch((e) => e);
      await waitFor(() => upstream.received("/slow-headers").length === 1, 3_000);
      const leftAt = Date.now();
      ac.abort();
      assert((await pending) instanceof Error, "client fetch aborted");
      const rec = upstream.received("/slow-headers")[0]!;
      await waitFor(() => rec.abortedAt, 3_000);
      assert(rec.abortedAt, "upstream request still waiting after the client left");
      assertLessOrEqual(rec.abortedAt - leftAt, 1_000, "ms from client disconnect to upstream abort");
    });

    await gw.stopAndCheck(issuer.issued);
  });
}

// One test for all targets, run side by side: 15 s of silence outlasts Bun's default
// 10 s idle timeout, which the gateway must lift for streams.
Deno.test(
  `gateway keeps a silent SSE stream open for 15 s [${gatewayTargets().map((t) => t.name).join(",")}]`,
  async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const token = await issuer.sign();
    const gateways: Gateway[] = [];
    try {
      for (const target of gatewayTargets()) gateways.push(await startGateway(target, gatewayEnv(issuer, upstream)));
      const results = await Promise.all(gateways.map(async (gw) => {
        const started = Date.now();
        const res = await fetch(`${gw.url}/sse/silent?ms=15000`, {
          headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
        });
        const sse = new SseReader(res.body!);
        try {
          const ev = await sse.next(20_000).catch((e) => e as Error);
          const end = ev instanceof Error ? null : await sse.next(2_000).catch((e) => e as Error);
          const sseHeaders = [res.headers.get("x-accel-buffering"), res.headers.get("cache-control")];
          return { target: gw.target, status: res.status, sseHeaders, ev, end, ms: Date.now() - started };
        } finally {
          await sse.cancel();
        }
      }));
      for (const r of results) {
        assertEquals(r.status, 200, r.target);
        // On Bun the gateway primes a quiet stream so that its headers leave at once: these included.
        assertEquals(r.sseHeaders, ["no", "no-cache"], `[${r.target}] X-Accel-Buffering, Cache-Control`);
        assertEquals(r.ev, { id: "1", data: '{"after_ms":15000}' }, `[${r.target}] event after 15 s of silence`);
        assertEquals(r.end, null, `[${r.target}] stream then ends cleanly`);
        assert(r.ms >= 15_000, `[${r.target}] took ${r.ms} ms`);
      }
      for (const gw of gateways) await gw.stopAndCheck(issuer.issued);
    } finally {
      for (const gw of gateways) await gw.kill();
      await sleep(0);
    }
  },
);

// MCP 2026-07-28: `subscriptions/listen` is a long-lived POST response stream. It gets the
// GET stream's treatment: a quiet stream outlives IDLE_TIMEOUT (on Bun, the server's idle
// timeout) and UPSTREAM_TIMEOUT (which covers the time to the response headers only).
Deno.test(
  `gateway keeps a quiet POST response stream open past IDLE_TIMEOUT and UPSTREAM_TIMEOUT [${
    gatewayTargets().map((t) => t.name).join(",")
  }]`,
  async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const token = await issuer.sign();
    const env = gatewayEnv(issuer, upstream, { IDLE_TIMEOUT: "2s", UPSTREAM_TIMEOUT: "2s" });
    const gateways: Gateway[] = [];
    try {
      for (const target of gatewayTargets()) gateways.push(await startGateway(target, env));
      const results = await Promise.all(gateways.map(async (gw) => {
        const started = Date.now();
        const res = await fetch(`${gw.url}/sse/silent?ms=4000`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            "mcp-method": "subscriptions/listen",
            "mcp-protocol-version": "2026-07-28",
          },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: {} }),
        });
        const sse = new SseReader(res.body!);
        try {
          const ev = await sse.next(10_000).catch((e) => String(e));
          const end = typeof ev === "string" ? null : await sse.next(2_000).catch((e) => String(e));
          return {
            target: gw.target,
            status: res.status,
            headers: [res.headers.get("content-type"), res.headers.get("x-accel-buffering")],
            ev,
            end,
            ms: Date.now() - started,
          };
        } finally {
          await sse.cancel();
        }
      }));
      for (const r of results) {
        assertEquals(r.status, 200, r.target);
        assertEquals(r.headers, ["text/event-stream", "no"], `[${r.target}] Content-Type, X-Accel-Buffering`);
        assertEquals(r.ev, { id: "1", data: '{"after_ms":4000}' }, `[${r.target}] event after 4 s of silence`);
        assertEquals(r.end, null, `[${r.target}] stream then ends cleanly`);
        assert(r.ms >= 4_000, `[${r.target}] took ${r.ms} ms`);
      }
      for (const gw of gateways) await gw.stopAndCheck(issuer.issued);
    } finally {
      for (const gw of gateways) await gw.kill();
      await sleep(0);
    }
  },
);
