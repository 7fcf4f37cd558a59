// SharedBucket over a real redis-server: two "replicas" share one limit; a Redis that is
// down, stalled or refusing the password costs a decision at most REDIS_TIMEOUT and falls
// back to the replica's own bucket (or StoreUnavailable when fail-closed); failures are
// counted and warned about at most every 10 s; sharing resumes after a restart.
import { assert, assertEquals, assertLess } from "@std/assert";
import type { RedisSettings } from "../../src/limits/config.ts";
import { RateLimiter } from "../../src/limits/memory_bucket.ts";
import { connectRedis, type RedisConnection } from "../../src/limits/redis_client.ts";
import { type BucketBackend, FailureReporter, SharedBucket } from "../../src/limits/shared_bucket.ts";
import { StoreUnavailable } from "../../src/limits/store.ts";
import { createLogger, type Logger } from "../../src/logging.ts";
import { eventually, startRedis } from "../_helpers/redis_server.ts";

function settings(port: number, password?: string): RedisSettings {
  return {
    host: "127.0.0.1",
    port,
    username: undefined,
    password,
    db: 0,
    tls: false,
    display: `redis://${password ? ":***@" : ""}127.0.0.1:${port}/0`,
  };
}

function recordingLog(): { log: Logger; lines: Record<string, unknown>[]; text: () => string } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const log = createLogger("debug", (line) => {
    raw.push(line);
    lines.push(JSON.parse(line));
  });
  return { log, lines, text: () => raw.join("\n") };
}

interface Replica {
  bucket: SharedBucket;
  errors: () => number;
  conn: BucketBackend;
}

function replica(
  conn: BucketBackend,
  opts: { rps?: number; burst?: number; failClosed?: boolean; timeoutMs?: number; log?: Logger; maxPending?: number },
): Replica {
  let errors = 0;
  const rps = opts.rps ?? 0.001;
  const burst = opts.burst ?? 5;
  const bucket = new SharedBucket({
    scope: "ip",
    rps,
    burst,
    backend: conn,
    timeoutMs: opts.timeoutMs ?? 50,
    failClosed: opts.failClosed ?? false,
    fallback: new RateLimiter({ rps, burst }),
    failures: new FailureReporter({
      log: opts.log ?? recordingLog().log,
      onFailure: () => errors++,
      redis: "redis://test",
      failClosed: opts.failClosed ?? false,
    }),
    ...(opts.maxPending !== undefined ? { maxPending: opts.maxPending } : {}),
  });
  return { bucket, errors: () => errors, conn };
}

async function take(r: Replica, key: string): Promise<{ result: number; ms: number }> {
  const start = performance.now();
  const result = await r.bucket.take(key);
  return { result, ms: performance.now() - start };
}

async function ready(port: number, log = recordingLog().log, password?: string): Promise<RedisConnection> {
  const conn = connectRedis(settings(port, password), log);
  await eventually(() => conn.ready, 5_000, "connected to Redis");
  return conn;
}

Deno.test("SharedBucket: two replicas share one bucket; Redis down, stalled and back", async (t) => {
  await using redis = await startRedis();
  const log = recordingLog();
  const c1 = await ready(redis.port, log.log);
  const c2 = await ready(redis.port);
  try {
    const a = replica(c1, { log: log.log });
    const b = replica(c2, {});
    const failClosed = replica(c2, { failClosed: true });

    await t.step("20 decisions alternating over two replicas: exactly the burst of 5 passes", async () => {
      const results: number[] = [];
      for (let i = 0; i < 20; i++) results.push((await take(i % 2 ? b : a, "198.51.100.1")).result);
      assertEquals(results.filter((r) => r === 0).length, 5);
      assertEquals(results.slice(0, 5), [0, 0, 0, 0, 0]);
      assert(results.slice(5).every((r) => r >= 900), `Retry-After of a 0.001 rps bucket: ${results.slice(5)}`);
      assertEquals(a.errors() + b.errors(), 0);
    });

    await t.step(
      "stalled Redis (CLIENT PAUSE): each decision ends within REDIS_TIMEOUT, on the local bucket",
      async () => {
        // Longer than the step takes: Redis is killed in the next one, paused or not.
        await redis.cli("CLIENT", "PAUSE", "6000", "ALL");
        const results = [];
        for (let i = 0; i < 7; i++) results.push(await take(a, "198.51.100.2"));
        assertEquals(results.map((r) => r.result), [0, 0, 0, 0, 0, 1000, 1000], "the local bucket: burst 5");
        for (const r of results) assertLess(r.ms, 1_000, "bounded by REDIS_TIMEOUT (50 ms) plus scheduling");
        assertEquals(a.errors(), 7);
        const fc = await take(failClosed, "198.51.100.2");
        assertEquals(fc.result, StoreUnavailable, "fail-closed answers StoreUnavailable");
        assertEquals(failClosed.errors(), 1);
        const warns = log.lines.filter((l) => l.msg === "rate limit store failed");
        assertEquals(warns.length, 1, "one warning for seven failures within 10 s");
        assertEquals(warns[0]!.error, "no answer from Redis within REDIS_TIMEOUT (50 ms)");
        assertEquals(warns[0]!.fallback, "this replica's own buckets");
      },
    );

    await t.step("Redis killed: decisions fail at once (no connection to wait for)", async () => {
      await redis.stop();
      await eventually(() => !c1.ready && !c2.ready, 5_000, "both connections notice Redis is gone");
      const before = a.errors();
      const sync = a.bucket.take("198.51.100.3");
      assertEquals(typeof sync, "number", "no Promise while disconnected");
      assertEquals(sync, 0);
      assertEquals(failClosed.bucket.take("198.51.100.3"), StoreUnavailable);
      assertEquals(a.errors(), before + 1);
      assert(log.lines.some((l) => l.msg === "redis connection lost; reconnecting"));
      await eventually(() => a.bucket.pending === 0, 5_000, "the paused decisions settle when the connection drops");
    });

    await t.step("Redis restarted: both replicas reconnect and share again within a few seconds", async () => {
      await redis.restart();
      const start = Date.now();
      await eventually(() => c1.ready && c2.ready, 8_000, "both connections are back");
      assertLess(Date.now() - start, 8_000);
      const results: number[] = [];
      for (let i = 0; i < 10; i++) results.push((await take(i % 2 ? b : a, "198.51.100.4")).result);
      assertEquals(results.filter((r) => r === 0).length, 5, "the script is loaded again (NOSCRIPT) and shared");
      assert(log.lines.some((l) => l.msg === "redis reconnected"));
    });
  } finally {
    c1.close();
    c2.close();
  }
});

Deno.test("SharedBucket: decisions waiting for a stalled Redis are capped; later ones fail at once", async () => {
  await using redis = await startRedis();
  const conn = await ready(redis.port);
  try {
    const r = replica(conn, { maxPending: 3, timeoutMs: 2_000, rps: 1000, burst: 1000 });
    await redis.cli("CLIENT", "PAUSE", "1000", "ALL");
    const waiting = [r.bucket.take("a"), r.bucket.take("b"), r.bucket.take("c")];
    assertEquals(r.bucket.pending, 3);
    const fourth = r.bucket.take("d");
    assertEquals(fourth, 0, "answered at once by the local bucket");
    assertEquals(r.errors(), 1);
    assertEquals(await Promise.all(waiting), [0, 0, 0], "answered by Redis once the pause ends");
    assertEquals(r.bucket.pending, 0);
  } finally {
    conn.close();
  }
});

Deno.test("connectRedis(): a wrong password is logged naming Redis, never the password; decisions fall back", async () => {
  const password = `pw-${crypto.randomUUID()}`;
  const wrong = `wrong-${crypto.randomUUID()}`;
  await using redis = await startRedis({ password });
  const log = recordingLog();
  const conn = connectRedis(settings(redis.port, wrong), log.log);
  try {
    await eventually(() => log.lines.some((l) => l.level === "error"), 5_000, "an error log line about Redis");
    const error = log.lines.find((l) => l.level === "error")!;
    assertEquals(error.msg, "redis unavailable: rate limits are decided per replica until it answers");
    assertEquals(error.redis, `redis://:***@127.0.0.1:${redis.port}/0`);
    assert(String(error.error).includes("WRONGPASS"), String(error.error));
    assertEquals(conn.ready, false);
    const r = replica(conn, { log: log.log });
    assertEquals(r.bucket.take("198.51.100.5"), 0);
    assertEquals(r.errors(), 1);
    assert(!log.text().includes(wrong) && !log.text().includes(password), "no password in the log");

    const good = await ready(redis.port, log.log, password);
    try {
      const shared = replica(good, {});
      assertEquals((await take(shared, "198.51.100.6")).result, 0);
      assertEquals(shared.errors(), 0);
      assertEquals((await redis.keys("mcpgate:rl:ip:*")).length, 1);
    } finally {
      good.close();
    }
  } finally {
    conn.close();
  }
});

Deno.test("FailureReporter warns at most every 10 s, with the failures since the last warning", () => {
  const { log, lines } = recordingLog();
  let t = 0;
  let counted = 0;
  const f = new FailureReporter({
    log,
    onFailure: () => counted++,
    redis: "redis://:***@r:6379/0",
    failClosed: true,
    secret: "s3cret-pw",
    now: () => t,
  });
  f.failed("ip", new Error("WRONGPASS for s3cret-pw"));
  for (let i = 0; i < 5; i++) {
    t += 1_000;
    f.failed("user", new Error("boom"));
  }
  t = 10_000;
  f.failed("user", new Error("later"));
  assertEquals(counted, 7);
  assertEquals(lines.map((l) => [l.scope, l.error, l.failures, l.fallback]), [
    ["ip", "WRONGPASS for ***", 1, "503 (RATE_LIMIT_FAIL_CLOSED)"],
    ["user", "later", 6, "503 (RATE_LIMIT_FAIL_CLOSED)"],
  ]);
});

Deno.test("SharedBucket with rps or burst 0 is disabled and never asks Redis", () => {
  const never: BucketBackend = {
    ready: true,
    runBucket: () => {
      throw new Error("asked");
    },
  };
  for (const [rps, burst] of [[0, 5], [5, 0]] as const) {
    const r = replica(never, { rps, burst });
    assertEquals(r.bucket.enabled, false);
    assertEquals(r.bucket.take("k"), 0);
  }
});
