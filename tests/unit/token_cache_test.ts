import { assertEquals, assertNotEquals } from "@std/assert";
import { TokenCache } from "../../src/auth/token_cache.ts";
import { webCryptoDigest } from "../../src/auth/digest.ts";
import type { VerifiedToken } from "../../src/auth/verify_token.ts";
import { AuthError } from "../../src/errors.ts";

const T0 = 1_800_000_000_000;

function cache(clock: { now: number }, over: Partial<ConstructorParameters<typeof TokenCache>[0]> = {}) {
  return new TokenCache({
    maxEntries: 100,
    maxBytes: 1_000_000,
    ttlCapMs: 600_000,
    negativeTtlMs: 60_000,
    negativeMaxEntries: 10,
    skewMs: 30_000,
    now: () => clock.now,
    ...over,
  });
}

function verified(sub: string, expSeconds: number): VerifiedToken {
  const payload = { sub, exp: expSeconds };
  return { sub, subject: sub, scopes: [], clientId: undefined, exp: expSeconds, claims: payload, payload };
}

const badSignature = new AuthError("bad_signature", 401, "invalid_token", "The access token signature is invalid");

/** A key stamp as KeySet hands them out; tests kill it by hand. */
const stamp = () => ({ live: true });
const live = stamp();

Deno.test("webCryptoDigest() is a SHA-256 per token: equal tokens agree, a one-character change does not", async () => {
  const a = await webCryptoDigest("header.payload.signature");
  assertEquals(a, await webCryptoDigest("header.payload.signature"));
  assertEquals(a.length, 64);
  assertNotEquals(a, await webCryptoDigest("header.payload.signaturf"));
  assertEquals(a.includes("signature"), false);
});

Deno.test("TokenCache keeps an entry until exp + skew and never after", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  c.setVerified("d1", verified("alice", T0 / 1000 + 60), 800, live);
  clock.now = T0 + 60_000 + 29_999;
  assertEquals(c.get("d1"), { verified: verified("alice", T0 / 1000 + 60) });
  clock.now = T0 + 60_000 + 30_000;
  assertEquals(c.get("d1"), undefined);
  assertEquals(c.size, 0);
});

Deno.test("TokenCache caps an entry's life at the TTL cap whatever the token's exp", () => {
  const clock = { now: T0 };
  const c = cache(clock, { ttlCapMs: 1_000 });
  c.setVerified("d1", verified("alice", T0 / 1000 + 3600), 800, live);
  clock.now = T0 + 999;
  assertEquals(c.get("d1") !== undefined, true);
  clock.now = T0 + 1_000;
  assertEquals(c.get("d1"), undefined);
});

Deno.test("TokenCache never answers from an entry whose key is gone, and keeps the others", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  const [keyA, keyB] = [stamp(), stamp()];
  c.setVerified("a1", verified("alice", T0 / 1000 + 60), 800, keyA);
  c.setVerified("a2", verified("amy", T0 / 1000 + 60), 800, keyA);
  c.setVerified("b1", verified("bob", T0 / 1000 + 60), 800, keyB);
  c.setRejected("ra", badSignature, 60_000, keyA);
  c.setRejected("rb", badSignature, 60_000, keyB);
  keyA.live = false; // a key refresh removed or replaced key A
  assertEquals(["a1", "a2", "b1", "ra", "rb"].map((d) => c.get(d) !== undefined), [false, false, true, false, true]);
  assertEquals(c.size, 1, "a dead entry met on a lookup is deleted");
});

Deno.test("TokenCache.syncKeyVersion() sweeps out dead entries once per version, live ones stay", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  const [keyA, keyB] = [stamp(), stamp()];
  c.syncKeyVersion(1);
  for (let i = 0; i < 10; i++) c.setVerified(`a${i}`, verified("alice", T0 / 1000 + 60), 800, i < 7 ? keyA : keyB);
  c.setRejected("ra", badSignature, 60_000, keyA);
  keyA.live = false;
  c.syncKeyVersion(1);
  assertEquals(c.size, 10, "same version: no sweep");
  c.syncKeyVersion(2);
  assertEquals([c.size, c.bytes], [3, 3 * (256 + 1600)]);
  assertEquals(c.get("a9") !== undefined, true);
  assertEquals(c.get("ra"), undefined);
});

Deno.test("TokenCache stores nothing under a stamp that is already dead", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  const dead = { live: false };
  c.setVerified("d1", verified("alice", T0 / 1000 + 60), 800, dead);
  c.setRejected("d2", badSignature, 60_000, dead);
  assertEquals([c.get("d1"), c.get("d2"), c.size], [undefined, undefined, 0]);
});

Deno.test("TokenCache keeps a rejection no longer than the caller's TTL, capped at negativeTtlMs", async (t) => {
  const cases = [
    { description: "until the next refetch, 5 s away", ttlMs: 5_000, expected: 5_000 },
    { description: "capped at negativeTtlMs (60 s)", ttlMs: 120_000, expected: 60_000 },
    { description: "1 ms", ttlMs: 1, expected: 1 },
  ];
  for (const { description, ttlMs, expected } of cases) {
    await t.step(description, () => {
      const clock = { now: T0 };
      const c = cache(clock);
      c.setRejected("junk", badSignature, ttlMs, live);
      clock.now = T0 + expected - 1;
      assertEquals(c.get("junk"), { rejection: badSignature });
      clock.now = T0 + expected;
      assertEquals(c.get("junk"), undefined);
    });
  }
  await t.step("a refetch possible now (TTL 0): not stored at all", () => {
    const c = cache({ now: T0 });
    c.setRejected("junk", badSignature, 0, live);
    assertEquals(c.get("junk"), undefined);
  });
});

Deno.test("TokenCache is bounded in entries and in bytes, least recently used first", () => {
  const clock = { now: T0 };
  const byCount = cache(clock, { maxEntries: 3 });
  for (const d of ["a", "b", "c"]) byCount.setVerified(d, verified(d, T0 / 1000 + 60), 100, live);
  byCount.get("a"); // a is now the most recently used
  byCount.setVerified("d", verified("d", T0 / 1000 + 60), 100, live);
  assertEquals(["a", "b", "c", "d"].map((d) => byCount.get(d) !== undefined), [true, false, true, true]);
  assertEquals(byCount.size, 3);

  const byBytes = cache(clock, { maxBytes: 2 * (256 + 2 * 1000) });
  for (const d of ["a", "b", "c"]) byBytes.setVerified(d, verified(d, T0 / 1000 + 60), 1000, live);
  assertEquals(byBytes.size, 2);
  assertEquals(byBytes.bytes <= 2 * (256 + 2000), true);
  assertEquals(byBytes.get("a"), undefined);
});

Deno.test("TokenCache never answers one token with another's entry", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  c.setVerified("d-alice", verified("alice", T0 / 1000 + 60), 800, live);
  c.setRejected("d-junk", badSignature, 60_000, live);
  assertEquals(c.get("d-bob"), undefined);
  assertEquals(c.get("d-alice"), { verified: verified("alice", T0 / 1000 + 60) });
  assertEquals(c.get("d-junk"), { rejection: badSignature });
});

Deno.test("TokenCache keeps rejections briefly, in a small map that junk cannot grow past its bound", () => {
  const clock = { now: T0 };
  const c = cache(clock, { maxEntries: 5, negativeMaxEntries: 10 });
  for (let i = 0; i < 5; i++) c.setVerified(`v${i}`, verified(`u${i}`, T0 / 1000 + 60), 800, live);
  for (let i = 0; i < 1000; i++) c.setRejected(`junk${i}`, badSignature, 120_000, live);
  assertEquals([0, 1, 2, 3, 4].every((i) => c.get(`v${i}`) !== undefined), true, "valid entries survive a junk flood");
  assertEquals(c.get("junk0"), undefined, "the oldest rejection was evicted");
  assertEquals(c.get("junk999"), { rejection: badSignature });
  clock.now = T0 + 60_000;
  assertEquals(c.get("junk999"), undefined, "rejections expire after negativeTtlMs at the latest");
});

Deno.test("TokenCache with maxEntries 0 stores nothing", () => {
  const clock = { now: T0 };
  const c = cache(clock, { maxEntries: 0 });
  c.setVerified("d1", verified("alice", T0 / 1000 + 60), 800, live);
  c.setRejected("d2", badSignature, 60_000, live);
  assertEquals([c.get("d1"), c.get("d2"), c.size], [undefined, undefined, 0]);
});
