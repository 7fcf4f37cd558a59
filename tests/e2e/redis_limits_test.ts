// Issue 11 from the outside: gateway processes sharing one real redis-server enforce one
// RATE_LIMIT together and one USER_RATE_LIMIT per subject; Redis stalled, killed and
// restarted; a password-protected Redis; a gateway started while Redis is down or refuses
// its password; idle keys expire.
import { assert, assertEquals, assertLess, assertMatch } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { type Gateway, gatewayEnv, gatewayTargets, runGatewayCommand, startGateway } from "../_helpers/gateway.ts";
import { JSON_RPC_HEADERS, type Reply, rpc, send } from "../_helpers/expect.ts";
import { uniqueUserAgent } from "../_helpers/http.ts";
import { eventually, sha256Hex, startRedis } from "../_helpers/redis_server.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function metric(port: number, line: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const hit = text.split("\n").find((l) => l.startsWith(`${line} `));
  return hit === undefined ? 0 : Number(hit.slice(line.length + 1));
}

interface Sent {
  reply: Reply;
  ms: number;
  ua: string;
}

/** One MCP call from `ip` (X-Forwarded-For, believed from loopback) with `token`. */
async function call(gw: Gateway, ip: string, token: string): Promise<Sent> {
  const ua = uniqueUserAgent("redis");
  const start = performance.now();
  const reply = await send(`${gw.url}/mcp`, {
    method: "POST",
    token,
    userAgent: ua,
    headers: { ...JSON_RPC_HEADERS, "x-forwarded-for": ip },
    body: rpc(1),
  });
  return { reply, ms: performance.now() - start, ua };
}

function statuses(sent: Sent[]): number[] {
  return sent.map((s) => s.reply.status);
}

function count(list: number[], status: number): number {
  return list.filter((s) => s === status).length;
}

for (const target of gatewayTargets()) {
  Deno.test(`gateways sharing one Redis enforce one limit per IP and per user [${target.name}]`, async (t) => {
    await using redis = await startRedis();
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const metricsPort = freePort();
    const shared = {
      REDIS_ADDR: redis.addr,
      // Generous for a loaded machine: a healthy loopback Redis always answers within it.
      REDIS_TIMEOUT: "500ms",
      TRUSTED_PROXIES: "127.0.0.1/32",
      // A token every 1,000 s: no refill during the test, so the counts are exact.
      RATE_LIMIT_RPS: "0.001",
      RATE_LIMIT_BURST: "5",
      USER_RATE_LIMIT_RPS: "0.001",
      USER_RATE_LIMIT_BURST: "3",
    };
    const [open, closed] = await Promise.all([
      startGateway(target, gatewayEnv(issuer, upstream, { ...shared, METRICS_ADDR: `127.0.0.1:${metricsPort}` })),
      startGateway(target, gatewayEnv(issuer, upstream, { ...shared, RATE_LIMIT_FAIL_CLOSED: "true" })),
    ]);
    await using _open = open;
    await using _closed = closed;
    await eventually(
      () => open.find((l) => l.msg === "redis connected").length === 1,
      10_000,
      "the fail-open gateway connects to Redis",
    );
    await eventually(
      () => closed.find((l) => l.msg === "redis connected").length === 1,
      10_000,
      "the fail-closed gateway connects to Redis",
    );
    const gateways = [open, closed];

    await t.step("20 requests from one IP over both gateways: exactly the burst of 5 passes", async () => {
      const ip = "203.0.113.10";
      const sent: Sent[] = [];
      // One subject per request: only the IP bucket can refuse.
      for (let i = 0; i < 20; i++) sent.push(await call(gateways[i % 2]!, ip, await issuer.sign({ sub: `ip-${i}` })));
      assertEquals(statuses(sent), [200, 200, 200, 200, 200, ...Array(15).fill(429)]);
      const refused = sent[5]!.reply;
      assertMatch(refused.headers.get("retry-after") ?? "", /^\d{3,4}$/);
      assertEquals(JSON.parse(refused.text).error, "rate_limited");
      assertEquals((await gateways[1]!.accessLog(sent[5]!.ua)).reason, "rate_limited");
      const key = `mcpgate:rl:ip:${await sha256Hex(ip)}`;
      assertEquals(await redis.keys("mcpgate:rl:ip:*"), [key]);
      const ttl = Number(await redis.cli("PTTL", key));
      assert(ttl > 0 && ttl <= 60_000, `the key expires (PTTL ${ttl}), at most 60 s after the last request`);
      assertEquals(await metric(metricsPort, 'mcpgate_rate_limited_total{scope="ip"}'), 7);
    });

    await t.step("two users behind one IP: each has its own bucket", async () => {
      const ip = "203.0.113.20";
      const alice = await issuer.sign({ sub: "alice" });
      const bob = await issuer.sign({ sub: "bob" });
      const a: Sent[] = [];
      for (let i = 0; i < 4; i++) a.push(await call(gateways[i % 2]!, ip, alice));
      assertEquals(statuses(a), [200, 200, 200, 429]);
      const refused = a[3]!.reply;
      assertEquals(JSON.parse(refused.text).error, "rate_limited");
      assertMatch(refused.headers.get("retry-after") ?? "", /^\d{3,4}$/);
      assertEquals((await gateways[1]!.accessLog(a[3]!.ua)).reason, "user_rate_limited");
      assertEquals((await call(open, ip, bob)).reply.status, 200, "bob still has his bucket");

      const users = await redis.keys("mcpgate:rl:user:*");
      assert(users.includes(`mcpgate:rl:user:${await sha256Hex("alice")}`));
      assert(users.includes(`mcpgate:rl:user:${await sha256Hex("bob")}`));
      for (const k of await redis.keys()) assertMatch(k, /^mcpgate:rl:(ip|user):[0-9a-f]{64}$/);
    });

    await t.step("a request the IP bucket refuses spends nothing from its user's bucket", async () => {
      const carol = await issuer.sign({ sub: "carol" });
      // 203.0.113.20 spent its 5 tokens above (4 for alice, 1 for bob).
      const blocked = [await call(open, "203.0.113.20", carol), await call(closed, "203.0.113.20", carol)];
      assertEquals(statuses(blocked), [429, 429]);
      assertEquals((await open.accessLog(blocked[0]!.ua)).reason, "rate_limited");
      const elsewhere: Sent[] = [];
      for (let i = 0; i < 4; i++) elsewhere.push(await call(gateways[i % 2]!, "203.0.113.21", carol));
      assertEquals(statuses(elsewhere), [200, 200, 200, 429], "carol's 3 tokens are all there");
    });

    await t.step("Redis stalled: each decision ends within REDIS_TIMEOUT; fail-closed answers 503", async () => {
      // Longer than the step takes; Redis is killed in the next one, paused or not.
      await redis.cli("CLIENT", "PAUSE", "8000", "ALL");
      const token = await issuer.sign({ sub: "stall" });
      const refused = await call(closed, "203.0.113.30", token);
      assertEquals(refused.reply.status, 503);
      assertLess(refused.ms, 2_000, "500 ms REDIS_TIMEOUT, plus load");
      const sent: Sent[] = [];
      for (let i = 0; i < 3; i++) sent.push(await call(open, "203.0.113.30", token));
      assertEquals(statuses(sent), [200, 200, 200]);
      for (const s of sent) assertLess(s.ms, 2_500, "500 ms REDIS_TIMEOUT for each of two buckets, plus load");
    });

    await t.step(
      "Redis killed: requests keep flowing on local buckets; fail-closed 503; the counter moves",
      async () => {
        const errorsBefore = await metric(metricsPort, "mcpgate_rate_limit_store_errors_total");
        assert(errorsBefore >= 6, `the stalled decisions were counted (${errorsBefore})`);
        await redis.stop();
        await eventually(
          () => open.find((l) => l.msg === "redis connection lost; reconnecting").length > 0,
          5_000,
          "the gateway notices Redis is gone",
        );
        const token = await issuer.sign({ sub: "down" });
        const sent: Sent[] = [];
        for (let i = 0; i < 4; i++) sent.push(await call(open, "203.0.113.40", token));
        // This replica's own buckets: the user's burst of 3 decides.
        assertEquals(statuses(sent), [200, 200, 200, 429]);
        for (const s of sent) assertLess(s.ms, 1_500);
        assertEquals((await open.accessLog(sent[3]!.ua)).reason, "user_rate_limited");

        const refused = await call(closed, "203.0.113.40", token);
        assertEquals(refused.reply.status, 503);
        assertEquals(refused.reply.headers.get("retry-after"), "1");
        assertEquals(refused.reply.headers.get("content-type"), "application/json");
        assertEquals(JSON.parse(refused.reply.text).error, "temporarily_unavailable");
        assertEquals((await closed.accessLog(refused.ua)).reason, "rate_limit_store_unavailable");
        assertEquals((await call(closed, "203.0.113.41", token)).reply.status, 503);
        assertEquals(await metric(metricsPort, "mcpgate_rate_limit_store_errors_total"), errorsBefore + 8);
        assertEquals(await metric(metricsPort, 'mcpgate_rate_limited_total{scope="user"}'), 1);
        // Warnings at most every 10 s, each with the failures since the last one.
        const warns = open.find((l) => l.msg === "rate limit store failed");
        assert(warns.length >= 1);
        const times = warns.map((w) => Date.parse(String(w.time)));
        for (let i = 1; i < times.length; i++) assert(times[i]! - times[i - 1]! >= 10_000, "10 s between warnings");
        assert(warns.reduce((sum, w) => sum + Number(w.failures), 0) <= errorsBefore + 8);
        assertEquals((await fetch(`${closed.url}/readyz`)).status, 200, "/readyz does not depend on Redis");
      },
    );

    await t.step("Redis restarted: sharing resumes within a few seconds, without a restart", async () => {
      await redis.restart();
      const start = Date.now();
      await eventually(
        () => gateways.every((g) => g.find((l) => l.msg === "redis reconnected").length === 1),
        10_000,
        "both gateways reconnect to the restarted Redis",
      );
      assertLess(Date.now() - start, 10_000);
      const sent: Sent[] = [];
      for (let i = 0; i < 10; i++) {
        sent.push(await call(gateways[i % 2]!, "203.0.113.50", await issuer.sign({ sub: `back-${i}` })));
      }
      assertEquals(statuses(sent), [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
      assertEquals(await redis.keys("mcpgate:rl:ip:*"), [`mcpgate:rl:ip:${await sha256Hex("203.0.113.50")}`]);
    });

    await open.stopAndCheck(issuer.issued);
    await closed.stopAndCheck(issuer.issued);
  });

  Deno.test(`gateway with a password-protected Redis; started while Redis is down or refuses it [${target.name}]`, async (t) => {
    const password = `pw-${crypto.randomUUID()}`;
    const wrong = `wrong-${crypto.randomUUID()}`;
    await using redis = await startRedis({ password });
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const token = await issuer.sign();
    // A bucket full again 500 ms per token after use: idle keys expire quickly.
    const fast = { RATE_LIMIT_RPS: "2", RATE_LIMIT_BURST: "10" };
    // No refill during the test: the local buckets' counts are exact.
    const slow = { RATE_LIMIT_RPS: "0.001", RATE_LIMIT_BURST: "10" };
    const [good, refused, down] = await Promise.all([
      startGateway(
        target,
        gatewayEnv(issuer, upstream, { ...fast, REDIS_ADDR: redis.addr, REDIS_PASSWORD: password }),
      ),
      startGateway(
        target,
        gatewayEnv(issuer, upstream, { ...slow, REDIS_URL: `redis://:${wrong}@${redis.addr}/0` }),
      ),
      startGateway(target, gatewayEnv(issuer, upstream, { ...slow, REDIS_ADDR: `127.0.0.1:${freePort()}` })),
    ]);
    await using _good = good;
    await using _refused = refused;
    await using _down = down;

    await t.step("REDIS_PASSWORD: decisions go through Redis, and idle keys expire", async () => {
      await eventually(
        () => good.find((l) => l.msg === "redis connected").length === 1,
        10_000,
        "the gateway connects with REDIS_PASSWORD",
      );
      for (let i = 0; i < 3; i++) assertEquals((await call(good, "198.51.100.7", token)).reply.status, 200);
      const key = `mcpgate:rl:ip:${await sha256Hex("127.0.0.1")}`;
      assertEquals(await redis.keys(), [key], "the client is the socket peer: no TRUSTED_PROXIES");
      const ttl = Number(await redis.cli("PTTL", key));
      assert(ttl > 0 && ttl <= 1500, `PTTL ${ttl}: three tokens at 2 rps come back in 1.5 s`);
      await eventually(async () => (await redis.cli("EXISTS", key)) === "0", 5_000, "the idle key expires");
    });

    await t.step("wrong password, or no Redis at all: an error naming Redis, and the gateway serves", async () => {
      for (const [gw, addr] of [[refused, `redis://:***@${redis.addr}/0`], [down, undefined]] as const) {
        await eventually(() => gw.find((l) => l.level === "error").length > 0, 10_000, "an error log line about Redis");
        const error = gw.find((l) => l.level === "error")[0]!;
        assertEquals(error.msg, "redis unavailable: rate limits are decided per replica until it answers");
        if (addr) assertEquals(error.redis, addr);
        assertMatch(String(error.error), addr ? /WRONGPASS/ : /ECONNREFUSED/);
        const sent: Sent[] = [];
        for (let i = 0; i < 11; i++) sent.push(await call(gw, "198.51.100.8", token));
        assertEquals(count(statuses(sent), 200), 10, "this replica's own bucket: RATE_LIMIT_BURST=10");
        assertEquals(sent[10]!.reply.status, 429);
        assertEquals((await fetch(`${gw.url}/readyz`)).status, 200);
      }
      const started = refused.find((l) => l.msg === "rate limits shared through redis")[0]!;
      assertEquals(started.redis, `redis://:***@${redis.addr}/0`);
    });

    await t.step(
      "mcp-gate check pings Redis with the configured credentials: one sentence, exit 1 when it fails",
      async () => {
        const env = gatewayEnv(issuer, upstream);
        const ok = await runGatewayCommand(target, ["check"], {
          ...env,
          REDIS_ADDR: redis.addr,
          REDIS_PASSWORD: password,
        });
        assertMatch(
          ok.stdout,
          new RegExp(
            `\\n  ✓ Redis at redis://:\\*\\*\\*@${redis.addr}/0 accepted the configured credentials and answered PING in `,
          ),
        );
        const bad = await runGatewayCommand(target, ["check"], {
          ...env,
          REDIS_URL: `redis://:${wrong}@${redis.addr}`,
        });
        assertEquals(bad.code, 1);
        assertMatch(
          bad.stdout,
          /\n {2}✗ Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0 did not answer PING \(WRONGPASS /,
        );
        for (const out of [ok, bad]) {
          assert(!(out.stdout + out.stderr).includes(password) && !(out.stdout + out.stderr).includes(wrong));
        }
      },
    );

    for (const gw of [good, refused, down]) await gw.stopAndCheck([...issuer.issued, password, wrong]);
  });
}
