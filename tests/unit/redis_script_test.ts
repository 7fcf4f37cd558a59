// The shared bucket's Lua script against a real redis-server: GCRA semantics, server time,
// refused requests writing nothing, key expiry, NOSCRIPT after a script flush, key names.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { connectRedis, type RedisConnection } from "../../src/limits/redis_client.ts";
import { bucketArgs, bucketKey, MaxKeyLifeMs, retryAfterSeconds } from "../../src/limits/script.ts";
import { silentLogger } from "../../src/logging.ts";
import { eventually, sha256Hex, startRedis } from "../_helpers/redis_server.ts";
import { sleep } from "../_helpers/http.ts";
import type { RedisSettings } from "../../src/limits/config.ts";

function settings(port: number, password?: string): RedisSettings {
  return {
    host: "127.0.0.1",
    port,
    username: undefined,
    password,
    db: 0,
    tls: false,
    display: `redis://127.0.0.1:${port}/0`,
  };
}

async function connected(port: number): Promise<RedisConnection> {
  const conn = connectRedis(settings(port), silentLogger);
  await eventually(() => conn.ready, 5_000, "connected to Redis");
  return conn;
}

let n = 0;
const freshKey = () => `mcpgate:rl:test:${Date.now()}-${n++}`;

Deno.test("bucket script: the burst passes, then the ms until the next token", async (t) => {
  await using redis = await startRedis();
  const conn = await connected(redis.port);
  try {
    await t.step("burst 3 at 1 rps: three 0s, then about 1000 ms", async () => {
      const key = freshKey();
      for (let i = 0; i < 3; i++) assertEquals(await conn.runBucket(key, bucketArgs(1, 3)), 0);
      const wait = await conn.runBucket(key, bucketArgs(1, 3));
      assert(wait > 900 && wait <= 1000, `wait ${wait} ms`);
      assertEquals(retryAfterSeconds(wait), 1);
    });

    await t.step("a refused request writes nothing: the stored time stays", async () => {
      const key = freshKey();
      assertEquals(await conn.runBucket(key, bucketArgs(0.5, 1)), 0);
      const before = await redis.cli("GET", key);
      for (let i = 0; i < 5; i++) assert((await conn.runBucket(key, bucketArgs(0.5, 1))) > 1000);
      assertEquals(await redis.cli("GET", key), before);
      const wait = await conn.runBucket(key, bucketArgs(0.5, 1));
      assertEquals(retryAfterSeconds(wait), 2, "0.5 rps: a token every 2 s");
    });

    await t.step("tokens come back at rps, by the server's clock", async () => {
      const key = freshKey();
      const args = bucketArgs(20, 2); // one token per 50 ms
      assertEquals(await conn.runBucket(key, args), 0);
      assertEquals(await conn.runBucket(key, args), 0);
      assert((await conn.runBucket(key, args)) > 0);
      await sleep(130);
      assertEquals(await conn.runBucket(key, args), 0, "two tokens back after 130 ms");
      assertEquals(await conn.runBucket(key, args), 0);
      assert((await conn.runBucket(key, args)) > 0);
    });

    await t.step("the key lives until the bucket is full again, at most 60 s", async () => {
      const key = freshKey();
      assertEquals(await conn.runBucket(key, bucketArgs(1, 5)), 0);
      const one = Number(await redis.cli("PTTL", key));
      assert(one > 0 && one <= 1000, `PTTL ${one} after one token at 1 rps`);
      for (let i = 0; i < 4; i++) await conn.runBucket(key, bucketArgs(1, 5));
      const five = Number(await redis.cli("PTTL", key));
      assert(five > 3000 && five <= 5000, `PTTL ${five} after five tokens at 1 rps`);

      const slow = freshKey();
      assertEquals(await conn.runBucket(slow, bucketArgs(0.001, 5)), 0);
      const capped = Number(await redis.cli("PTTL", slow));
      assert(capped > MaxKeyLifeMs - 5_000 && capped <= MaxKeyLifeMs, `PTTL ${capped} at 0.001 rps`);
    });

    await t.step("idle keys expire", async () => {
      const key = freshKey();
      for (let i = 0; i < 3; i++) assertEquals(await conn.runBucket(key, bucketArgs(2, 5)), 0);
      assertEquals(await redis.cli("EXISTS", key), "1", "full again 1.5 s after three tokens at 2 rps");
      await eventually(async () => (await redis.cli("EXISTS", key)) === "0", 5_000, "the idle key expires");
      assertEquals(await conn.runBucket(key, bucketArgs(2, 5)), 0, "and the client starts from a full bucket");
    });

    await t.step("SCRIPT FLUSH: the next decision loads the script again (NOSCRIPT → EVAL)", async () => {
      const key = freshKey();
      assertEquals(await conn.runBucket(key, bucketArgs(1, 2)), 0);
      assertEquals(await redis.cli("SCRIPT", "FLUSH"), "OK");
      assertEquals(await conn.runBucket(key, bucketArgs(1, 2)), 0);
      assert((await conn.runBucket(key, bucketArgs(1, 2))) > 0, "and the bucket kept its state");
    });
  } finally {
    conn.close();
  }
});

Deno.test("bucketKey() names keys by scope and the sha256 of the client, never the client", async () => {
  const ip = await bucketKey("ip", "203.0.113.7");
  assertEquals(ip, `mcpgate:rl:ip:${await sha256Hex("203.0.113.7")}`);
  assertMatch(ip, /^mcpgate:rl:ip:[0-9a-f]{64}$/);
  const user = await bucketKey("user", "alice@example.com");
  assertEquals(user, `mcpgate:rl:user:${await sha256Hex("alice@example.com")}`);
  assert(!user.includes("alice"));
  assertEquals(await bucketKey("user", ""), `mcpgate:rl:user:${await sha256Hex("")}`);
});

Deno.test("retryAfterSeconds() rounds the wait up to whole seconds, at least 1", () => {
  for (
    const [ms, s] of [[0, 0], [1, 1], [999, 1], [1000, 1], [1001, 2], [3333, 4], [10_000, 10]] as const
  ) assertEquals(retryAfterSeconds(ms), s, `${ms} ms`);
});
