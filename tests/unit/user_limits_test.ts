// The per-user bucket and the shared store's failure modes, in process through
// createGateway().fetch: 429 user_rate_limited per subject, IP refusals spending nothing
// from the user's bucket, and fail-closed 503 / fail-open fallback when Redis is away.
import { assertEquals, assertStringIncludes } from "@std/assert";
import { createGateway } from "../../src/app.ts";
import type { BucketBackend } from "../../src/limits/shared_bucket.ts";
import { createLogger } from "../../src/logging.ts";
import { GatewayMetrics } from "../../src/metrics.ts";
import { claims, config, FakeNet, makeKey, sign, T0 } from "./_fixtures.ts";

const rs = await makeKey("RS256", "rs1");

async function harness(env: Record<string, string>, backend?: BucketBackend) {
  const net = new FakeNet([rs.publicJwk]);
  const lines: string[] = [];
  const metrics = new GatewayMetrics();
  const now = () => T0;
  const gw = createGateway(config({ TRUSTED_PROXIES: "127.0.0.1/32", ...env }), {
    fetch: net.fetch,
    now,
    log: createLogger("debug", (l) => lines.push(l), now),
    metrics,
    rateLimitBackend: backend,
  });
  await gw.start();
  const call = async (sub: string, ip: string) => {
    const token = await sign(rs, claims(T0, { sub }));
    const res = await gw.fetch(
      new Request("https://mcp.example.com/mcp", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "x-forwarded-for": ip, "user-agent": `${sub}@${ip}` },
        body: "{}",
      }),
      { remoteAddr: "127.0.0.1" },
    );
    return { status: res.status, headers: res.headers, body: await res.text() };
  };
  const reasons = () =>
    lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "request").map((l) => [l.status, l.reason ?? null]);
  return { gw, call, reasons, metrics, lines };
}

Deno.test("userLimits(): one bucket per verified subject, 429 user_rate_limited with Retry-After", async () => {
  const h = await harness({ RATE_LIMIT_RPS: "0", USER_RATE_LIMIT_RPS: "0.001", USER_RATE_LIMIT_BURST: "2" });
  const alice = [await h.call("alice", "198.51.100.1"), await h.call("alice", "198.51.100.2")];
  assertEquals(alice.map((r) => r.status), [200, 200]);
  const refused = await h.call("alice", "198.51.100.3");
  assertEquals(refused.status, 429);
  assertEquals(refused.headers.get("retry-after"), "1000");
  assertEquals(refused.headers.get("content-type"), "application/json");
  assertEquals(JSON.parse(refused.body), {
    error: "rate_limited",
    error_description: "Too many requests for this user; retry after 1000 s",
  });
  assertEquals((await h.call("bob", "198.51.100.3")).status, 200, "bob, behind the same address, has his own");
  assertEquals(h.reasons(), [[200, null], [200, null], [429, "user_rate_limited"], [200, null]]);
  assertStringIncludes(h.metrics.render(), 'mcpgate_rate_limited_total{scope="user"} 1\n');
  h.gw.close();
});

Deno.test("a request the IP bucket refuses spends nothing from its user's bucket", async () => {
  const h = await harness({
    RATE_LIMIT_RPS: "0.001",
    RATE_LIMIT_BURST: "2",
    USER_RATE_LIMIT_RPS: "0.001",
    USER_RATE_LIMIT_BURST: "3",
  });
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await h.call("carol", "198.51.100.7")).status);
  assertEquals(statuses, [200, 200, 429, 429]);
  assertEquals((await h.call("carol", "198.51.100.8")).status, 200, "the user's third token is still there");
  assertEquals((await h.call("carol", "198.51.100.8")).status, 429);
  assertEquals(h.reasons().map((r) => r[1]), [null, null, "rate_limited", "rate_limited", null, "user_rate_limited"]);
  const text = h.metrics.render();
  assertStringIncludes(text, 'mcpgate_rate_limited_total{scope="ip"} 2\n');
  assertStringIncludes(text, 'mcpgate_rate_limited_total{scope="user"} 1\n');
  h.gw.close();
});

Deno.test("Redis unreachable: fail closed answers 503 temporarily_unavailable, fail open uses local buckets", async () => {
  const down: BucketBackend = {
    ready: false,
    runBucket: () => Promise.reject(new Error("not called while not ready")),
  };
  const limits = { REDIS_ADDR: "127.0.0.1:1", USER_RATE_LIMIT_RPS: "0.001", USER_RATE_LIMIT_BURST: "1" };

  const closed = await harness({ ...limits, RATE_LIMIT_FAIL_CLOSED: "true" }, down);
  const refused = await closed.call("dave", "198.51.100.9");
  assertEquals(refused.status, 503);
  assertEquals(refused.headers.get("retry-after"), "1");
  assertEquals(JSON.parse(refused.body).error, "temporarily_unavailable");
  assertEquals(closed.reasons(), [[503, "rate_limit_store_unavailable"]]);
  assertStringIncludes(closed.metrics.render(), "mcpgate_rate_limit_store_errors_total 1\n");
  const warn = closed.lines.map((l) => JSON.parse(l)).find((l) => l.msg === "rate limit store failed");
  assertEquals([warn?.redis, warn?.error, warn?.scope], ["redis://127.0.0.1:1/0", "not connected to Redis", "ip"]);
  closed.gw.close();

  const open = await harness(limits, down);
  assertEquals((await open.call("dave", "198.51.100.9")).status, 200);
  assertEquals((await open.call("dave", "198.51.100.9")).status, 429, "this replica's own user bucket: burst 1");
  assertEquals(open.reasons(), [[200, null], [429, "user_rate_limited"]]);
  assertStringIncludes(open.metrics.render(), "mcpgate_rate_limit_store_errors_total 4\n");
  open.gw.close();
});
