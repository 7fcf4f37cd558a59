import { assertEquals, assertNotEquals } from "@std/assert";
import { TokenCache, tokenDigest } from "../../src/auth/token_cache.ts";
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

Deno.test("tokenDigest() is a SHA-256 per token: equal tokens agree, a one-character change does not", async () => {
  const a = await tokenDigest("header.payload.signature");
  assertEquals(a, await tokenDigest("header.payload.signature"));
  assertEquals(a.length, 64);
  assertNotEquals(a, await tokenDigest("header.payload.signaturf"));
  assertEquals(a.includes("signature"), false);
});

Deno.test("TokenCache keeps an entry until exp + skew and never after", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  c.setVerified("d1", verified("alice", T0 / 1000 + 60), 800);
  clock.now = T0 + 60_000 + 29_999;
  assertEquals(c.get("d1"), { verified: verified("alice", T0 / 1000 + 60) });
  clock.now = T0 + 60_000 + 30_000;
  assertEquals(c.get("d1"), undefined);
  assertEquals(c.size, 0);
});

Deno.test("TokenCache caps an entry's life at the TTL cap whatever the token's exp", () => {
  const clock = { now: T0 };
  const c = cache(clock, { ttlCapMs: 1_000 });
  c.setVerified("d1", verified("alice", T0 / 1000 + 3600), 800);
  clock.now = T0 + 999;
  assertEquals(c.get("d1") !== undefined, true);
  clock.now = T0 + 1_000;
  assertEquals(c.get("d1"), undefined);
});

Deno.test("TokenCache drops everything, rejections included, when the key set changes", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  c.syncKeyVersion(1);
  c.setVerified("d1", verified("alice", T0 / 1000 + 60), 800);
  c.setRejected("d2", badSignature);
  c.syncKeyVersion(1);
  assertEquals(c.get("d1") !== undefined && c.get("d2") !== undefined, true);
  c.syncKeyVersion(2);
  assertEquals([c.get("d1"), c.get("d2"), c.size, c.bytes], [undefined, undefined, 0, 0]);
});

Deno.test("TokenCache is bounded in entries and in bytes, least recently used first", () => {
  const clock = { now: T0 };
  const byCount = cache(clock, { maxEntries: 3 });
  for (const d of ["a", "b", "c"]) byCount.setVerified(d, verified(d, T0 / 1000 + 60), 100);
  byCount.get("a"); // a is now the most recently used
  byCount.setVerified("d", verified("d", T0 / 1000 + 60), 100);
  assertEquals(["a", "b", "c", "d"].map((d) => byCount.get(d) !== undefined), [true, false, true, true]);
  assertEquals(byCount.size, 3);

  const byBytes = cache(clock, { maxBytes: 2 * (256 + 2 * 1000) });
  for (const d of ["a", "b", "c"]) byBytes.setVerified(d, verified(d, T0 / 1000 + 60), 1000);
  assertEquals(byBytes.size, 2);
  assertEquals(byBytes.bytes <= 2 * (256 + 2000), true);
  assertEquals(byBytes.get("a"), undefined);
});

Deno.test("TokenCache never answers one token with another's entry", () => {
  const clock = { now: T0 };
  const c = cache(clock);
  c.setVerified("d-alice", verified("alice", T0 / 1000 + 60), 800);
  c.setRejected("d-junk", badSignature);
  assertEquals(c.get("d-bob"), undefined);
  assertEquals(c.get("d-alice"), { verified: verified("alice", T0 / 1000 + 60) });
  assertEquals(c.get("d-junk"), { rejection: badSignature });
});

Deno.test("TokenCache keeps rejections briefly, in a small map that junk cannot grow past its bound", () => {
  const clock = { now: T0 };
  const c = cache(clock, { maxEntries: 5, negativeMaxEntries: 10 });
  for (let i = 0; i < 5; i++) c.setVerified(`v${i}`, verified(`u${i}`, T0 / 1000 + 60), 800);
  for (let i = 0; i < 1000; i++) c.setRejected(`junk${i}`, badSignature);
  assertEquals([0, 1, 2, 3, 4].every((i) => c.get(`v${i}`) !== undefined), true, "valid entries survive a junk flood");
  assertEquals(c.get("junk0"), undefined, "the oldest rejection was evicted");
  assertEquals(c.get("junk999"), { rejection: badSignature });
  clock.now = T0 + 60_000;
  assertEquals(c.get("junk999"), undefined, "rejections expire after negativeTtlMs");
});

Deno.test("TokenCache with maxEntries 0 stores nothing", () => {
  const clock = { now: T0 };
  const c = cache(clock, { maxEntries: 0 });
  c.setVerified("d1", verified("alice", T0 / 1000 + 60), 800);
  c.setRejected("d2", badSignature);
  assertEquals([c.get("d1"), c.get("d2"), c.size], [undefined, undefined, 0]);
});
