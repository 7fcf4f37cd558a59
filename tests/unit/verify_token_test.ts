import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
  assertStringIncludes,
} from "@std/assert";
import { CompactSign, exportSPKI, type JWTPayload } from "jose";
import { DefaultAlgorithms } from "../../src/config.ts";
import { AuthError } from "../../src/errors.ts";
import { createLogger } from "../../src/logging.ts";
import { KeySet } from "../../src/auth/key_set.ts";
import { TokenCache } from "../../src/auth/token_cache.ts";
import { TokenVerifier, type TokenVerifierOptions, type VerifiedToken } from "../../src/auth/verify_token.ts";
import {
  b64url,
  claims,
  FakeNet,
  ISSUER,
  JWKS_URL,
  makeKey,
  RESOURCE,
  sign,
  signRawRs256,
  T0,
  type TestKey,
  unsigned,
} from "./_fixtures.ts";
import * as nodeCrypto from "node:crypto";
import { nodeSignatureCheck } from "../../src/runtime.ts";
import { SignatureAlgorithms, type SignatureCheck } from "../../src/auth/signature.ts";

/**
 * Every test runs twice: with jose's WebCrypto signature check, and with node:crypto's for
 * every algorithm it takes (as the gateway runs on Bun; on Deno it takes RS and PS only).
 */
const SignatureChecks: [string, SignatureCheck | undefined][] = [
  ["jose", undefined],
  ["node:crypto", nodeSignatureCheck(nodeCrypto, Object.keys(SignatureAlgorithms))],
];
let signatureCheck: SignatureCheck | undefined;
function test(name: string, fn: (t: Deno.TestContext) => void | Promise<void>): void {
  for (const [label, check] of SignatureChecks) {
    Deno.test(`${name} [${label}]`, async (t) => {
      signatureCheck = check;
      await fn(t);
    });
  }
}

const rs = await makeKey("RS256", "rs1");
const ps = await makeKey("PS256", "ps1");
const es = await makeKey("ES256", "es1");
const ed = await makeKey("EdDSA", "ed1");
const attacker = await makeKey("RS256", "attacker");
const rsNext = await makeKey("RS256", "rs2");
const rsRotated = await makeKey("RS256", "rs1"); // a new key published under the old kid
const encoder = new TextEncoder();

const Cooldown = 30_000;
const Refresh = 3_600_000;

interface Setup {
  clock: { now: number };
  net: FakeNet;
  keySet: KeySet;
  verifier: TokenVerifier;
  lines: string[];
  verify(token: string): Promise<VerifiedToken>;
  /** The AuthError a token is rejected with. */
  reject(token: string): Promise<AuthError>;
}

async function setup(
  opts: {
    jwks?: unknown[];
    config?: Partial<TokenVerifierOptions["config"]>;
    cache?: boolean;
    load?: boolean;
  } = {},
): Promise<Setup> {
  const clock = { now: T0 };
  const now = () => clock.now;
  const net = new FakeNet(opts.jwks ?? [rs, ps, es, ed].map((k) => k.publicJwk));
  const lines: string[] = [];
  const log = createLogger("debug", (l) => lines.push(l), now);
  const keySet = new KeySet({
    issuer: ISSUER,
    jwksUri: JWKS_URL,
    fetch: net.fetch,
    now,
    log,
    refreshIntervalMs: Refresh,
    cooldownMs: Cooldown,
    timeoutMs: 1000,
  });
  if (opts.load !== false) await keySet.load();
  const config = {
    allowedAlgorithms: [...DefaultAlgorithms],
    expectedIssuers: [ISSUER],
    expectedAudiences: [RESOURCE],
    clockSkewSeconds: 30,
    ...opts.config,
  };
  const verifier = new TokenVerifier({
    config,
    keysFor: () => keySet,
    keyVersion: () => keySet.version,
    now,
    signatureCheck,
    cache: opts.cache
      ? new TokenCache({
        maxEntries: 100,
        maxBytes: 1_000_000,
        ttlCapMs: 600_000,
        negativeTtlMs: 60_000,
        negativeMaxEntries: 1024,
        skewMs: config.clockSkewSeconds * 1000,
        now,
      })
      : undefined,
  });
  return {
    clock,
    net,
    keySet,
    verifier,
    lines,
    verify: (token) => verifier.verify(token),
    reject: (token) => assertRejects(() => verifier.verify(token), AuthError),
  };
}

const nowSec = Math.floor(T0 / 1000);

test("TokenVerifier.verify() accepts valid RS256, PS256, ES256 and EdDSA tokens", async (t) => {
  const s = await setup();
  for (const key of [rs, ps, es, ed]) {
    await t.step(key.alg, async () => {
      const got = await s.verify(await sign(key, claims(T0)));
      assertEquals(
        { sub: got.sub, scopes: got.scopes, clientId: got.clientId, exp: got.exp },
        { sub: "user-123", scopes: ["mcp:read", "mcp:write"], clientId: "client-abc", exp: nowSec + 300 },
      );
      assertEquals(got.payload.iss, ISSUER);
    });
  }
  assertEquals(s.net.calls, [JWKS_URL], "no fetch beyond the initial load");
});

Deno.test("TokenVerifier.verify() checks RS, PS and ES signatures through the runtime's check; EdDSA through jose", async () => {
  const node = SignatureChecks[1]![1]!;
  const answers: [string, boolean | undefined][] = [];
  signatureCheck = (alg, key, input, sig) => {
    const answer = node(alg, key, input, sig);
    answers.push([alg, answer]);
    return answer;
  };
  try {
    const s = await setup();
    for (const key of [rs, ps, es, ed]) await s.verify(await sign(key, claims(T0)));
    const good = await sign(rs, claims(T0));
    const reason = (await s.reject(good.slice(0, -4) + (good.endsWith("AAAA") ? "BBBB" : "AAAA"))).code;
    assertEquals(reason, "bad_signature");
    assertEquals(answers, [["RS256", true], ["PS256", true], ["ES256", true], ["EdDSA", undefined], ["RS256", false]]);
  } finally {
    signatureCheck = undefined;
  }
});

test("TokenVerifier.verify() accepts the typ values of RFC 9068 and plain JWTs", async (t) => {
  const s = await setup();
  const cases: { description: string; input: string | undefined }[] = [
    { description: "at+jwt", input: "at+jwt" },
    { description: "application/at+jwt", input: "application/at+jwt" },
    { description: "AT+JWT (media types are case-insensitive)", input: "AT+JWT" },
    { description: "JWT", input: "JWT" },
    { description: "absent", input: undefined },
  ];
  for (const { description, input } of cases) {
    await t.step(description, async () => {
      const got = await s.verify(await sign(rs, claims(T0), { typ: input }));
      assertEquals(got.sub, "user-123");
    });
  }
});

type Rejection = { code: AuthError["code"]; status?: AuthError["status"]; bearerError?: AuthError["bearerError"] };

test("TokenVerifier.verify() rejects bad tokens with a stable reason", async (t) => {
  const s = await setup();
  const hsSecret = encoder.encode(await exportSPKI(rs.publicKey));
  const cases: { description: string; input: () => Promise<string> | string; expected: Rejection }[] = [
    { description: "one segment", input: () => "abc", expected: { code: "malformed" } },
    { description: "two segments", input: () => "abc.def", expected: { code: "malformed" } },
    { description: "three junk segments", input: () => "a.b.c", expected: { code: "malformed" } },
    { description: "five segments (JWE shape)", input: () => "a.b.c.d.e", expected: { code: "malformed" } },
    {
      description: "header not JSON",
      input: () => `${b64url("not json")}.${b64url("{}")}.sig`,
      expected: { code: "malformed" },
    },
    {
      description: "payload not JSON",
      input: () => `${b64url('{"alg":"RS256"}')}.${b64url("nope")}.sig`,
      expected: { code: "malformed" },
    },
    {
      description: "payload a JSON array",
      input: () => `${b64url('{"alg":"RS256"}')}.${b64url("[1]")}.sig`,
      expected: { code: "malformed" },
    },
    { description: "too large", input: () => `${"a".repeat(16_385)}.b.c`, expected: { code: "malformed" } },
    { description: "alg none", input: () => unsigned(claims(T0)), expected: { code: "alg_not_allowed" } },
    {
      description: "alg None (case variant)",
      input: () => unsigned(claims(T0), { alg: "None" }),
      expected: { code: "alg_not_allowed" },
    },
    {
      description: "no alg",
      input: () => unsigned(claims(T0), { typ: "at+jwt" }),
      expected: { code: "alg_not_allowed" },
    },
    {
      description: "HS256 with the public key as the secret",
      input: () =>
        new CompactSign(encoder.encode(JSON.stringify(claims(T0))))
          .setProtectedHeader({ alg: "HS256", kid: "rs1", typ: "at+jwt" })
          .sign(hsSecret),
      expected: { code: "alg_not_allowed" },
    },
    {
      description: "crit with an unknown extension",
      input: () => signRawRs256(rs, { alg: "RS256", kid: "rs1", crit: ["urn:x:ext"], "urn:x:ext": 1 }, claims(T0)),
      expected: { code: "crit_not_supported" },
    },
    {
      description: "crit with b64 (which jose understands)",
      input: () => sign(rs, claims(T0), { crit: ["b64"], b64: true }),
      expected: { code: "crit_not_supported" },
    },
    { description: "typ JOSE", input: () => sign(rs, claims(T0), { typ: "JOSE" }), expected: { code: "bad_typ" } },
    {
      description: "typ of an ID token profile",
      input: () => sign(rs, claims(T0), { typ: "id_token+jwt" }),
      expected: { code: "bad_typ" },
    },
    {
      description: "typ dpop+jwt",
      input: () => sign(rs, claims(T0), { typ: "dpop+jwt" }),
      expected: { code: "bad_typ" },
    },
    {
      description: "typ secevent+jwt",
      input: () => sign(rs, claims(T0), { typ: "secevent+jwt" }),
      expected: { code: "bad_typ" },
    },
    {
      description: "typ not a string",
      input: () => signRawRs256(rs, { alg: "RS256", kid: "rs1", typ: 1 }, claims(T0)),
      expected: { code: "bad_typ" },
    },
    {
      description: "other issuer",
      input: () => sign(rs, claims(T0, { iss: "https://evil.example.com" })),
      expected: { code: "bad_issuer" },
    },
    {
      description: "issuer with a trailing slash",
      input: () => sign(rs, claims(T0, { iss: `${ISSUER}/` })),
      expected: { code: "bad_issuer" },
    },
    {
      description: "no issuer",
      input: () => sign(rs, claims(T0, { iss: undefined })),
      expected: { code: "bad_issuer" },
    },
    {
      description: "other audience",
      input: () => sign(rs, claims(T0, { aud: "https://other.example.com" })),
      expected: { code: "bad_audience" },
    },
    {
      description: "audience with a trailing slash",
      input: () => sign(rs, claims(T0, { aud: `${RESOURCE}/` })),
      expected: { code: "bad_audience" },
    },
    {
      description: "audience array without a match",
      input: () => sign(rs, claims(T0, { aud: ["a", "b"] })),
      expected: { code: "bad_audience" },
    },
    {
      description: "no audience",
      input: () => sign(rs, claims(T0, { aud: undefined })),
      expected: { code: "bad_audience" },
    },
    {
      description: "expired beyond the skew",
      input: () => sign(rs, claims(T0, { exp: nowSec - 31 })),
      expected: { code: "expired" },
    },
    {
      description: "not valid yet beyond the skew",
      input: () => sign(rs, claims(T0, { nbf: nowSec + 31 })),
      expected: { code: "not_yet_valid" },
    },
    { description: "no exp", input: () => sign(rs, claims(T0, { exp: undefined })), expected: { code: "missing_exp" } },
    { description: "no sub", input: () => sign(rs, claims(T0, { sub: undefined })), expected: { code: "missing_sub" } },
    { description: "empty sub", input: () => sign(rs, claims(T0, { sub: "" })), expected: { code: "missing_sub" } },
    { description: "numeric sub", input: () => sign(rs, claims(T0, { sub: 42 })), expected: { code: "missing_sub" } },
    {
      description: "signed by another key under a known kid",
      input: () => sign({ ...attacker, kid: "rs1" }, claims(T0)),
      expected: { code: "bad_signature" },
    },
    {
      description: "payload changed after signing",
      input: async () => {
        const [h, , sig] = (await sign(rs, claims(T0))).split(".");
        return `${h}.${b64url(JSON.stringify(claims(T0, { sub: "admin" })))}.${sig}`;
      },
      expected: { code: "bad_signature" },
    },
    {
      description: "signature stripped",
      input: async () => (await sign(rs, claims(T0))).replace(/\.[^.]+$/, "."),
      expected: { code: "bad_signature" },
    },
    {
      description: "ES256 header on an RS256 key's kid",
      input: () => sign({ ...es, kid: "rs1" }, claims(T0)),
      expected: { code: "unknown_kid" },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const token = await input();
      const e = await s.reject(token);
      assertEquals(
        { code: e.code, status: e.status, bearerError: e.bearerError },
        { status: 401, bearerError: "invalid_token", ...expected },
      );
      assertEquals(/["=]/.test(e.description), false, "description has no quote or =");
      for (const text of [e.message, e.description, e.hint ?? ""]) {
        assertEquals(token.length > 20 && text.includes(token), false, "token not echoed");
      }
    });
  }
});

test("TokenVerifier.verify() enforces ALLOWED_ALGORITHMS", async (t) => {
  const s = await setup({ config: { allowedAlgorithms: ["RS256"] } });
  await t.step("RS256 allowed", async () => assertEquals((await s.verify(await sign(rs, claims(T0)))).sub, "user-123"));
  for (const key of [ps, es, ed]) {
    await t.step(`${key.alg} refused`, async () => {
      const e = await s.reject(await sign(key, claims(T0)));
      assertEquals(e.code, "alg_not_allowed");
      assertEquals(e.hint, `alg was "${key.alg}", expected one of RS256`);
    });
  }
});

test("TokenVerifier.verify() applies CLOCK_SKEW to exp and nbf", async (t) => {
  const cases: { description: string; input: { skew: number; claims: Record<string, unknown> }; expected: string }[] = [
    { description: "expired 29 s ago, skew 30 s", input: { skew: 30, claims: { exp: nowSec - 29 } }, expected: "ok" },
    {
      description: "expired 31 s ago, skew 30 s",
      input: { skew: 30, claims: { exp: nowSec - 31 } },
      expected: "expired",
    },
    { description: "expired 1 s ago, skew 0", input: { skew: 0, claims: { exp: nowSec - 1 } }, expected: "expired" },
    { description: "expires in 1 s, skew 0", input: { skew: 0, claims: { exp: nowSec + 1 } }, expected: "ok" },
    { description: "nbf in 29 s, skew 30 s", input: { skew: 30, claims: { nbf: nowSec + 29 } }, expected: "ok" },
    {
      description: "nbf in 31 s, skew 30 s",
      input: { skew: 30, claims: { nbf: nowSec + 31 } },
      expected: "not_yet_valid",
    },
    { description: "nbf in 1 s, skew 0", input: { skew: 0, claims: { nbf: nowSec + 1 } }, expected: "not_yet_valid" },
    { description: "nbf now, skew 0", input: { skew: 0, claims: { nbf: nowSec } }, expected: "ok" },
    {
      description: "exp 5 min ago, skew 10 min",
      input: { skew: 600, claims: { exp: nowSec - 300 } },
      expected: "ok",
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const s = await setup({ config: { clockSkewSeconds: input.skew } });
      const token = await sign(rs, claims(T0, input.claims));
      if (expected === "ok") assertEquals((await s.verify(token)).sub, "user-123");
      else assertEquals((await s.reject(token)).code, expected);
    });
  }
});

// CLOCK_SKEW is the "leeway for exp/nbf/iat" (requirements §1): a token whose iat lies
// in the future beyond the skew was not issued by a clock the gateway can trust.
test("TokenVerifier.verify() applies CLOCK_SKEW to iat", async (t) => {
  const s = await setup();
  await t.step("iat 29 s ahead is accepted", async () => {
    assertEquals((await s.verify(await sign(rs, claims(T0, { iat: nowSec + 29 })))).sub, "user-123");
  });
  await t.step("iat an hour ahead is rejected", async () => {
    const e = await s.reject(await sign(rs, claims(T0, { iat: nowSec + 3600, exp: nowSec + 7200 })));
    assertEquals([e.status, e.bearerError], [401, "invalid_token"]);
    assert(["not_yet_valid", "bad_claim"].includes(e.code), `reason ${e.code}`);
  });
  await t.step("iat not a number is rejected", async () => {
    const e = await s.reject(await sign(rs, claims(T0, { iat: "yesterday" })));
    assertEquals([e.code, e.status, e.bearerError], ["bad_claim", 401, "invalid_token"]);
  });
});

test("TokenVerifier.verify() explains issuer and audience near misses in the hint", async (t) => {
  const s = await setup();
  await t.step("aud with a trailing slash", async () => {
    const e = await s.reject(await sign(rs, claims(T0, { aud: `${RESOURCE}/` })));
    assertEquals(e.code, "bad_audience");
    assertEquals(e.description, "The access token is not meant for this resource");
    assertEquals(
      e.hint,
      `aud was "${RESOURCE}/", expected one of ["${RESOURCE}"] ` +
        `("${RESOURCE}/" differs from "${RESOURCE}" only by a trailing slash)`,
    );
  });
  await t.step("aud differing only by case", async () => {
    const e = await s.reject(await sign(rs, claims(T0, { aud: RESOURCE.toUpperCase() })));
    assertStringIncludes(e.hint ?? "", "only by letter case");
  });
  await t.step("aud differing only by scheme", async () => {
    const e = await s.reject(await sign(rs, claims(T0, { aud: RESOURCE.replace("https:", "http:") })));
    assertStringIncludes(e.hint ?? "", "only by scheme");
  });
  await t.step("aud missing", async () => {
    const e = await s.reject(await sign(rs, claims(T0, { aud: undefined })));
    assertEquals(e.hint, `aud is missing, expected one of ["${RESOURCE}"]`);
  });
  await t.step("iss with a trailing slash", async () => {
    const e = await s.reject(await sign(rs, claims(T0, { iss: `${ISSUER}/` })));
    assertEquals(e.code, "bad_issuer");
    assertStringIncludes(e.hint ?? "", "only by a trailing slash");
  });
  await t.step("aud array with one match is accepted", async () => {
    const got = await s.verify(await sign(rs, claims(T0, { aud: ["https://other.example.com", RESOURCE] })));
    assertEquals(got.sub, "user-123");
  });
});

test("TokenVerifier.verify() reads scopes from scope or scp and the client from client_id or azp", async (t) => {
  const s = await setup();
  const cases: {
    description: string;
    input: Record<string, unknown>;
    expected: { scopes: string[]; clientId: string | undefined };
  }[] = [
    { description: "scope string", input: {}, expected: { scopes: ["mcp:read", "mcp:write"], clientId: "client-abc" } },
    {
      description: "scp array",
      input: { scope: undefined, scp: ["a", "b"] },
      expected: { scopes: ["a", "b"], clientId: "client-abc" },
    },
    {
      description: "scp string",
      input: { scope: undefined, scp: "a b" },
      expected: { scopes: ["a", "b"], clientId: "client-abc" },
    },
    { description: "no scopes", input: { scope: undefined }, expected: { scopes: [], clientId: "client-abc" } },
    {
      description: "azp when no client_id",
      input: { client_id: undefined, azp: "azp-client" },
      expected: { scopes: ["mcp:read", "mcp:write"], clientId: "azp-client" },
    },
    {
      description: "client_id wins over azp",
      input: { azp: "azp-client" },
      expected: { scopes: ["mcp:read", "mcp:write"], clientId: "client-abc" },
    },
    {
      description: "no client",
      input: { client_id: undefined },
      expected: { scopes: ["mcp:read", "mcp:write"], clientId: undefined },
    },
    {
      description: "non-string client_id",
      input: { client_id: 7 },
      expected: { scopes: ["mcp:read", "mcp:write"], clientId: undefined },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const got = await s.verify(await sign(rs, claims(T0, input)));
      assertEquals({ scopes: got.scopes, clientId: got.clientId }, expected);
    });
  }
});

test("TokenVerifier.verify() refetches the JWKS once per cooldown for unknown kids", async (t) => {
  const s = await setup();
  const stranger = { ...rs, kid: "nope" };
  await t.step("within the cooldown of the initial load: no refetch", async () => {
    s.clock.now = T0 + 1_000;
    assertEquals((await s.reject(await sign(stranger, claims(s.clock.now)))).code, "unknown_kid");
    assertEquals(s.net.callsTo(JWKS_URL), 1);
  });
  await t.step("after the cooldown: exactly one refetch, then unknown_kid", async () => {
    s.clock.now = T0 + Cooldown + 1_000;
    const e = await s.reject(await sign(stranger, claims(s.clock.now)));
    assertEquals([e.code, e.status, e.bearerError], ["unknown_kid", 401, "invalid_token"]);
    assertEquals(e.hint, 'kid "nope" is not in the JWKS');
    assertEquals(s.net.callsTo(JWKS_URL), 2);
  });
  await t.step("another unknown kid inside the cooldown: no further fetch", async () => {
    s.clock.now = T0 + Cooldown + 5_000;
    assertEquals((await s.reject(await sign({ ...rs, kid: "nope2" }, claims(s.clock.now)))).code, "unknown_kid");
    assertEquals(s.net.callsTo(JWKS_URL), 2);
  });
  await t.step("known kids keep working meanwhile without fetching", async () => {
    assertEquals((await s.verify(await sign(rs, claims(s.clock.now)))).sub, "user-123");
    assertEquals(s.net.callsTo(JWKS_URL), 2);
  });
  await t.step("next cooldown window: one more fetch", async () => {
    s.clock.now = T0 + 2 * Cooldown + 2_000;
    assertEquals((await s.reject(await sign(stranger, claims(s.clock.now)))).code, "unknown_kid");
    assertEquals(s.net.callsTo(JWKS_URL), 3);
  });
  assertEquals(s.net.calls.every((c) => c === JWKS_URL), true);
});

test("TokenVerifier.verify() shares one refetch among concurrent unknown-kid requests", async () => {
  const s = await setup();
  s.clock.now = T0 + Cooldown + 1;
  const tokens = await Promise.all(
    Array.from({ length: 8 }, (_, i) => sign({ ...rs, kid: `unknown-${i}` }, claims(s.clock.now))),
  );
  const results = await Promise.allSettled(tokens.map((tk) => s.verify(tk)));
  assertEquals(
    results.map((r) => r.status === "rejected" && r.reason instanceof AuthError ? r.reason.code : "fulfilled"),
    Array(8).fill("unknown_kid"),
  );
  assertEquals(s.net.callsTo(JWKS_URL), 2);
});

test("TokenVerifier.verify() picks up a rotated key", async (t) => {
  await t.step("new kid published: one refetch, then success", async () => {
    const s = await setup();
    s.net.jwks = { keys: [rs.publicJwk, rsNext.publicJwk] };
    s.clock.now = T0 + Cooldown + 1;
    assertEquals((await s.verify(await sign(rsNext, claims(s.clock.now)))).sub, "user-123");
    assertEquals(s.net.callsTo(JWKS_URL), 2);
  });
  await t.step("same kid, new key: signature failure triggers one refetch, then success", async () => {
    const s = await setup();
    s.net.jwks = { keys: [rsRotated.publicJwk] };
    s.clock.now = T0 + Cooldown + 1;
    assertEquals((await s.verify(await sign(rsRotated, claims(s.clock.now)))).sub, "user-123");
    assertEquals(s.net.callsTo(JWKS_URL), 2);
    assertEquals((await s.reject(await sign(rs, claims(s.clock.now)))).code, "bad_signature", "old key is gone");
    assertEquals(s.net.callsTo(JWKS_URL), 2, "no refetch inside the cooldown");
  });
  await t.step("same kid, new key, inside the cooldown: bad_signature without a fetch", async () => {
    const s = await setup();
    s.net.jwks = { keys: [rsRotated.publicJwk] };
    s.clock.now = T0 + 5_000;
    assertEquals((await s.reject(await sign(rsRotated, claims(s.clock.now)))).code, "bad_signature");
    assertEquals(s.net.callsTo(JWKS_URL), 1);
  });
});

test("TokenVerifier.verify() never fetches or uses jku, x5u or embedded jwk headers", async (t) => {
  const s = await setup();
  s.clock.now = T0 + Cooldown + 1;
  const evil = "https://evil.example.com";
  const cases: { description: string; input: { kid?: string; header: Record<string, unknown> }; expected: string }[] = [
    {
      description: "attacker kid, jwk and jku",
      input: { kid: "attacker", header: { jwk: attacker.publicJwk, jku: `${evil}/jwks.json` } },
      expected: "unknown_kid",
    },
    {
      description: "known kid, attacker jwk",
      input: { kid: "rs1", header: { jwk: attacker.publicJwk } },
      expected: "bad_signature",
    },
    {
      description: "no kid, attacker jwk and x5u",
      input: { header: { kid: undefined, jwk: attacker.publicJwk, x5u: `${evil}/cert.pem` } },
      expected: "bad_signature",
    },
    {
      description: "known kid, jku to the attacker",
      input: { kid: "rs1", header: { jku: `${evil}/jwks.json`, x5u: `${evil}/cert.pem` } },
      expected: "bad_signature",
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, async () => {
      const key: TestKey = { ...attacker, kid: input.kid ?? "" };
      const token = await sign(key, claims(s.clock.now), input.header);
      assertEquals((await s.reject(token)).code, expected);
    });
  }
  assertEquals(s.net.calls.filter((c) => c.startsWith(evil)), []);
  assertEquals(s.net.calls.every((c) => c === JWKS_URL), true);
});

test("TokenVerifier.verify() keeps serving the last good keys during a JWKS outage", async (t) => {
  const s = await setup();
  s.net.asFault = "throw";
  await t.step("after the refresh interval: verifies, and tries a background refresh", async () => {
    s.clock.now = T0 + Refresh + 60_000;
    assertEquals((await s.verify(await sign(rs, claims(s.clock.now)))).sub, "user-123");
    await new Promise((r) => setTimeout(r, 10));
    assertEquals(s.net.callsTo(JWKS_URL), 2);
    assert(s.lines.some((l) => l.includes("jwks refresh failed; keeping the last good keys")));
  });
  await t.step("still verifies while the server answers 500", async () => {
    s.net.asFault = "500";
    s.clock.now += Cooldown + 1;
    assertEquals((await s.verify(await sign(es, claims(s.clock.now)))).sub, "user-123");
    await new Promise((r) => setTimeout(r, 10));
    assertEquals(s.keySet.ready, true);
    assertEquals(s.keySet.keyCount, 4);
  });
  await t.step("an unknown kid during the outage is unknown_kid, not an error", async () => {
    s.clock.now += Cooldown + 1;
    const e = await s.reject(await sign({ ...rs, kid: "nope" }, claims(s.clock.now)));
    assertEquals([e.code, e.status], ["unknown_kid", 401]);
  });
});

test("TokenVerifier.verify() answers 503 no_keys when no key set was ever loaded", async () => {
  const s = await setup({ load: false });
  s.net.asFault = "500";
  await assertRejects(() => s.keySet.load());
  const e = await s.reject(await sign(rs, claims(T0)));
  assertEquals([e.code, e.status, e.bearerError], ["no_keys", 503, ""]);
});

test("KeySet ignores oct and private keys in the JWKS", async (t) => {
  const secret = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const oct = { kty: "oct", k: secret, kid: "hmac", alg: "HS256" };
  const priv = { ...rsNext.publicJwk, kid: "priv", d: "AQAB" };
  const s = await setup({ jwks: [oct, priv, rs.publicJwk] });
  await t.step("only the public key is loaded", () => {
    assertEquals(s.keySet.keyCount, 1);
    assertEquals([s.keySet.hasKid("rs1"), s.keySet.hasKid("hmac"), s.keySet.hasKid("priv")], [true, false, false]);
  });
  await t.step("HS256 token under the oct kid", async () => {
    const token = await new CompactSign(encoder.encode(JSON.stringify(claims(T0))))
      .setProtectedHeader({ alg: "HS256", kid: "hmac" })
      .sign(Uint8Array.from(atob(secret.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)));
    assertEquals((await s.reject(token)).code, "alg_not_allowed");
  });
  await t.step("RS256 token claiming the oct kid", async () => {
    assertEquals((await s.reject(await sign({ ...rs, kid: "hmac" }, claims(T0)))).code, "unknown_kid");
  });
  await t.step("the real key still verifies", async () => {
    assertEquals((await s.verify(await sign(rs, claims(T0)))).sub, "user-123");
  });
  await t.step("an encryption key (use enc) is not a signing key", async () => {
    const enc = await setup({ jwks: [{ ...rsNext.publicJwk, kid: "enc1", use: "enc" }, rs.publicJwk] });
    assertEquals([enc.keySet.keyCount, enc.keySet.hasKid("enc1")], [1, false]);
    assertEquals((await enc.reject(await sign({ ...rsNext, kid: "enc1" }, claims(T0)))).code, "unknown_kid");
  });
  await t.step("a JWKS with only an oct key does not load", async () => {
    const only = await setup({ jwks: [oct], load: false });
    await assertRejects(() => only.keySet.load(), Error, "no usable public signing keys");
    assertEquals(only.keySet.ready, false);
  });
});

test("TokenVerifier.verify() accepts tokens when two keys share a kid", async (t) => {
  const a = await makeKey("RS256", "dup");
  const b = await makeKey("RS256", "dup");
  const s = await setup({ jwks: [a.publicJwk, b.publicJwk] });
  for (const [name, key] of [["first key", a], ["second key", b]] as const) {
    await t.step(name, async () => assertEquals((await s.verify(await sign(key, claims(T0)))).sub, "user-123"));
  }
  await t.step("a third key under that kid still fails", async () => {
    assertEquals((await s.reject(await sign({ ...attacker, kid: "dup" }, claims(T0)))).code, "bad_signature");
  });
});

test("TokenVerifier.verify() with a cache still honours exp and key changes", async (t) => {
  await t.step("a cached token expires at exp + skew", async () => {
    const s = await setup({ cache: true });
    const token = await sign(rs, claims(T0, { exp: nowSec + 60 }));
    assertEquals((await s.verify(token)).sub, "user-123");
    s.clock.now = T0 + 60_000 + 29_000;
    assertEquals((await s.verify(token)).sub, "user-123", "within skew");
    s.clock.now = T0 + 60_000 + 31_000;
    assertEquals((await s.reject(token)).code, "expired");
  });
  await t.step("a cached token dies with its key", async () => {
    const s = await setup({ cache: true });
    const token = await sign(rs, claims(T0));
    assertEquals((await s.verify(token)).sub, "user-123");
    s.net.jwks = { keys: [rsNext.publicJwk] };
    s.clock.now = T0 + Cooldown + 1;
    // An unknown kid forces the refetch that removes rs1.
    await s.reject(await sign({ ...rs, kid: "nope" }, claims(s.clock.now)));
    assertEquals(s.keySet.hasKid("rs1"), false);
    assertEquals((await s.reject(token)).code, "unknown_kid");
  });
  await t.step("a cached token under a key that stays survives a key change", async () => {
    const s = await setup({ cache: true });
    const token = await sign(rs, claims(T0));
    const first = await s.verify(token);
    s.net.jwks = { keys: [rs.publicJwk, rsNext.publicJwk] };
    s.clock.now = T0 + Cooldown + 1;
    assertEquals((await s.verify(await sign(rsNext, claims(s.clock.now)))).sub, "user-123", "rs2 added by a refetch");
    assertEquals(s.keySet.version, 2);
    assertStrictEquals(await s.verify(token), first, "still answered from the cache");
  });
  await t.step("a cached token without a kid goes with any key change", async () => {
    const s = await setup({ cache: true, jwks: [rs.publicJwk] });
    const token = await sign(rs, claims(T0), { kid: undefined });
    const first = await s.verify(token);
    assertStrictEquals(await s.verify(token), first);
    s.net.jwks = { keys: [rs.publicJwk, rsNext.publicJwk] };
    s.clock.now = T0 + Cooldown + 1;
    await s.verify(await sign(rsNext, claims(s.clock.now)));
    const again = await s.verify(token);
    assertEquals(again.sub, "user-123");
    assertEquals(again === first, false, "verified afresh after the key set changed");
  });
  await t.step(
    "a replayed bad signature refetches once per cooldown; its rejection ends with the cooldown",
    async () => {
      const s = await setup({ cache: true });
      s.clock.now = T0 + Cooldown + 1;
      const fetchedAt = s.clock.now;
      const forged = await sign({ ...attacker, kid: "rs1" }, claims(s.clock.now));
      assertEquals((await s.reject(forged)).code, "bad_signature");
      assertEquals(s.net.callsTo(JWKS_URL), 2, "the first failure refetches");
      s.clock.now = fetchedAt + Cooldown - 1; // inside the cooldown: the cached rejection answers
      assertEquals((await s.reject(forged)).code, "bad_signature");
      assertEquals(s.net.callsTo(JWKS_URL), 2);
      s.clock.now = fetchedAt + Cooldown; // the refetch is possible again, the rejection is gone
      assertEquals((await s.reject(forged)).code, "bad_signature");
      assertEquals(s.net.callsTo(JWKS_URL), 3);
    },
  );
  await t.step("same kid, new key, rejected inside the cooldown: accepted once the cooldown ends", async () => {
    const s = await setup({ cache: true });
    s.net.jwks = { keys: [rsRotated.publicJwk, es.publicJwk] };
    s.clock.now = T0 + 5_000; // inside the cooldown of the initial load
    const token = await sign(rsRotated, claims(s.clock.now));
    assertEquals((await s.reject(token)).code, "bad_signature");
    s.clock.now = T0 + Cooldown - 1;
    assertEquals((await s.reject(token)).code, "bad_signature", "the rejection is cached meanwhile");
    assertEquals(s.net.callsTo(JWKS_URL), 1);
    s.clock.now = T0 + Cooldown;
    assertEquals((await s.verify(token)).sub, "user-123");
    assertEquals(s.net.callsTo(JWKS_URL), 2);
  });
});

test("TokenVerifier.verify() returns the full payload for claim headers", async () => {
  const s = await setup();
  const got = await s.verify(await sign(rs, claims(T0, { email: "u@example.com", groups: ["a"] }) as JWTPayload));
  assertInstanceOf(got.payload, Object);
  assertEquals([got.payload["email"], got.payload["groups"]], ["u@example.com", ["a"]]);
});
