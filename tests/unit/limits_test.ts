import { assert, assertEquals, assertLessOrEqual, assertThrows } from "@std/assert";
import { ConcurrencyLimiter } from "../../src/limits/concurrency.ts";
import { RateLimiter } from "../../src/limits/memory_bucket.ts";
import { createLimiterStores } from "../../src/limits/stores.ts";
import { SharedBucket } from "../../src/limits/shared_bucket.ts";
import type { RateLimitSettings } from "../../src/limits/config.ts";
import { silentLogger } from "../../src/logging.ts";

function clock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

Deno.test("RateLimiter.take() allows a burst, then refuses with Retry-After", () => {
  const c = clock();
  const rl = new RateLimiter({ rps: 10, burst: 20, now: c.now });
  for (let i = 0; i < 20; i++) assertEquals(rl.take("1.2.3.4"), 0, `request ${i + 1} of the burst`);
  // Empty bucket, 10 tokens/s: one token in 0.1 s, Retry-After is at least one whole second.
  assertEquals(rl.take("1.2.3.4"), 1);
  // Another client has its own bucket.
  assertEquals(rl.take("5.6.7.8"), 0);
});

Deno.test("RateLimiter refills at rps, capped at burst", () => {
  const c = clock();
  const rl = new RateLimiter({ rps: 2, burst: 4, now: c.now });
  for (let i = 0; i < 4; i++) assertEquals(rl.take("k"), 0);
  assertEquals(rl.take("k"), 1);
  c.advance(499); // 0.998 tokens
  assertEquals(rl.take("k"), 1);
  c.advance(1); // 1 token
  assertEquals(rl.take("k"), 0);
  assertEquals(rl.take("k"), 1);
  c.advance(1500); // 3 tokens
  for (let i = 0; i < 3; i++) assertEquals(rl.take("k"), 0);
  assertEquals(rl.take("k"), 1);
  c.advance(60_000); // long idle: full again, but never more than burst
  for (let i = 0; i < 4; i++) assertEquals(rl.take("k"), 0);
  assertEquals(rl.take("k"), 1);
});

Deno.test("RateLimiter Retry-After is the whole seconds until the next token", async (t) => {
  const cases = [
    { description: "0.5 rps: 2 s per token", rps: 0.5, expected: 2 },
    { description: "0.1 rps: 10 s per token", rps: 0.1, expected: 10 },
    { description: "0.3 rps: 3.33 s rounds up to 4", rps: 0.3, expected: 4 },
    { description: "100 rps: 10 ms rounds up to 1", rps: 100, expected: 1 },
  ];
  for (const { description, rps, expected } of cases) {
    await t.step(description, () => {
      const c = clock();
      const rl = new RateLimiter({ rps, burst: 1, now: c.now });
      assertEquals(rl.take("k"), 0);
      assertEquals(rl.take("k"), expected);
    });
  }
  await t.step("partly refilled: only the remainder", () => {
    const c = clock();
    const rl = new RateLimiter({ rps: 0.1, burst: 1, now: c.now });
    assertEquals(rl.take("k"), 0);
    c.advance(7_500);
    assertEquals(rl.take("k"), 3);
  });
});

Deno.test("RateLimiter with rps 0 or burst 0 is disabled", () => {
  for (const [rps, burst] of [[0, 20], [10, 0], [0, 0]] as const) {
    const rl = new RateLimiter({ rps, burst });
    assertEquals(rl.enabled, false);
    for (let i = 0; i < 1000; i++) assertEquals(rl.take("k"), 0);
    assertEquals(rl.size, 0);
  }
  assertThrows(() => new RateLimiter({ rps: -1, burst: 1 }), Error, "0 or more");
});

Deno.test("RateLimiter tolerates a clock going backwards", () => {
  const c = clock();
  const rl = new RateLimiter({ rps: 1, burst: 1, now: c.now });
  assertEquals(rl.take("k"), 0);
  c.advance(-5_000);
  assertEquals(rl.take("k"), 1);
});

Deno.test("RateLimiter stays under its cap with 200,000 distinct keys at one instant", () => {
  const c = clock();
  const rl = new RateLimiter({ rps: 10, burst: 20, now: c.now, maxEntries: 100_000 });
  let max = 0;
  for (let i = 0; i < 200_000; i++) {
    assertEquals(rl.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`), 0);
    if (rl.size > max) max = rl.size;
  }
  assertLessOrEqual(max, 100_000);
  assertLessOrEqual(rl.size, 100_000);
});

Deno.test("RateLimiter forgets idle buckets, and only those that are full again", () => {
  const c = clock();
  const rl = new RateLimiter({ rps: 10, burst: 20, now: c.now }); // any bucket is full after 2 s idle
  for (let i = 0; i < 1000; i++) rl.take(`idle-${i}`);
  c.advance(1_500);
  for (let i = 0; i < 20; i++) assertEquals(rl.take("busy"), 0);
  c.advance(600);
  rl.take("other"); // a rotation: the idle ones and "busy" are now the previous generation
  assertEquals(rl.size, 1002);
  // 1.5 s after it was emptied "busy" has 15 tokens, not a fresh 20: its state was kept.
  c.advance(900);
  for (let i = 0; i < 15; i++) assertEquals(rl.take("busy"), 0, `request ${i + 1}`);
  assertEquals(rl.take("busy"), 1);
  // Two seconds on, the buckets untouched since before the last rotation are dropped.
  c.advance(2_000);
  rl.take("other");
  assertEquals(rl.size, 2);
  // Long silence: everything held is full, so everything goes.
  c.advance(10_000);
  rl.take("new");
  assertEquals(rl.size, 1);
});

Deno.test("RateLimiter keeps an active client's state across rotations", () => {
  const c = clock();
  const rl = new RateLimiter({ rps: 1, burst: 2, now: c.now }); // full after 2 s idle
  // A steady 1 req/s client stays at its limit and is never handed a fresh bucket.
  assertEquals(rl.take("k"), 0);
  assertEquals(rl.take("k"), 0);
  for (let s = 0; s < 10; s++) {
    c.advance(1_000);
    assertEquals(rl.take("k"), 0, `second ${s}`);
    assertEquals(rl.take("k"), 1, `second ${s}: the extra request is refused`);
  }
});

Deno.test("ConcurrencyLimiter caps per client (429) and in total (503)", () => {
  const cl = new ConcurrencyLimiter(2, 3);
  const a1 = cl.acquire("a");
  const a2 = cl.acquire("a");
  assert(typeof a1 === "function" && typeof a2 === "function");
  assertEquals(cl.acquire("a"), "per_client");
  const b1 = cl.acquire("b");
  assert(typeof b1 === "function");
  assertEquals(cl.acquire("c"), "total");
  // A client over its own cap hears about that, even when the total is also reached.
  assertEquals(cl.acquire("a"), "per_client");
  assertEquals(cl.active, 3);
  a1();
  const c1 = cl.acquire("c");
  assert(typeof c1 === "function");
  a2();
  b1();
  c1();
  assertEquals(cl.active, 0);
  assertEquals(cl.keys, 0);
});

Deno.test("ConcurrencyLimiter release is idempotent and counters are deleted at zero", () => {
  const cl = new ConcurrencyLimiter(1, 0);
  const r1 = cl.acquire("x");
  assert(typeof r1 === "function");
  assertEquals(cl.keys, 1);
  r1();
  r1();
  r1();
  assertEquals(cl.active, 0);
  assertEquals(cl.keys, 0);
  const r2 = cl.acquire("x");
  assert(typeof r2 === "function");
  const r3 = cl.acquire("y");
  assert(typeof r3 === "function");
  r1(); // a stale release must not free x's new slot
  assertEquals(cl.acquire("x"), "per_client");
  r2();
  r3();
  assertEquals(cl.keys, 0);
});

Deno.test("ConcurrencyLimiter caps of 0 mean no cap", () => {
  const none = new ConcurrencyLimiter(0, 0);
  const releases = Array.from({ length: 5000 }, () => none.acquire("same"));
  assert(releases.every((r) => typeof r === "function"));
  assertEquals(none.active, 5000);
  assertEquals(none.keys, 0);
  for (const r of releases) (r as () => void)();
  assertEquals(none.active, 0);
  const totalOnly = new ConcurrencyLimiter(0, 2);
  assert(typeof totalOnly.acquire("a") === "function");
  assert(typeof totalOnly.acquire("a") === "function");
  assertEquals(totalOnly.acquire("b"), "total");
  assertThrows(() => new ConcurrencyLimiter(-1, 0), Error, "0 or more");
});

Deno.test("createLimiterStores(): memory buckets (synchronous) by default, Redis-backed with a backend", async (t) => {
  const settings = (userRps: number, userBurst: number): RateLimitSettings => ({
    redis: undefined,
    redisTimeoutMs: 50,
    failClosed: false,
    userRps,
    userBurst,
  });
  await t.step("no backend: RateLimiter for IPs, none for users when USER_RATE_LIMIT_RPS is 0", () => {
    const stores = createLimiterStores({ rps: 10, burst: 20, settings: settings(0, 0) }, { log: silentLogger });
    assert(stores.ip instanceof RateLimiter);
    assertEquals(stores.user, undefined);
    assertEquals(stores.ip.take("k"), 0, "a number, not a Promise: the default path allocates nothing");
  });
  await t.step("no backend, per-user limit: its own RateLimiter", () => {
    const stores = createLimiterStores({ rps: 10, burst: 20, settings: settings(1, 2) }, { log: silentLogger });
    assert(stores.user instanceof RateLimiter);
    assertEquals([stores.user.take("alice"), stores.user.take("alice"), stores.user.take("alice")], [0, 0, 1]);
    assertEquals(stores.user.take("bob"), 0);
  });
  await t.step("with a backend: SharedBuckets, except for a limit that is off", () => {
    const backend = { ready: false, runBucket: () => Promise.resolve(0) };
    const stores = createLimiterStores({ rps: 10, burst: 20, settings: settings(1, 2) }, {
      log: silentLogger,
      backend,
    });
    assert(stores.ip instanceof SharedBucket);
    assert(stores.user instanceof SharedBucket);
    const off = createLimiterStores({ rps: 0, burst: 20, settings: settings(0, 0) }, { log: silentLogger, backend });
    assert(off.ip instanceof RateLimiter);
    assertEquals(off.ip.enabled, false);
  });
});
