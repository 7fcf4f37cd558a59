// Fuzz: the JWT itself — header and payload from arbitrary JSON, deep nesting, huge
// numbers, duplicate keys (raw JSON text), bytes that are not UTF-8 — signed with the
// issuer's real key (so that the claim checks are reached), with an attacker's key, or
// not at all. A reference model of the acceptance rules (requirements §3) decides which
// tokens MUST be refused; the gateway may refuse more (e.g. jose's own checks), never less.
//
// Invariants: below 500; the upstream is reached only with a token the model accepts and
// that is signed by the issuer's key with a matching alg; no URL outside the JWKS and the
// upstream is fetched (jku, x5u, jwk never used); no credential material logged. And the
// converse on well-formed tokens with arbitrary extra claims and header members: they pass.
import fc from "fast-check";
import { assert, assertEquals, assertLess } from "@std/assert";
import { generateKeyPair } from "jose";
import { b64url, claims, ISSUER, RESOURCE, T0 } from "../unit/_fixtures.ts";
import { assertNoSecretsLogged, FUZZ_RUNS, FUZZ_SEED, fuzzGateway, ORIGIN, params } from "./_harness.ts";

const encoder = new TextEncoder();
const SKEW = 30;
const NOW = T0 / 1000;
const ALLOWED_ALGS = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
]);
const ACCEPTED_TYP = new Set(["at+jwt", "application/at+jwt", "jwt", "application/jwt"]);
const RESERVED_HEADER = new Set(["alg", "kid", "typ", "crit", "b64", "zip", "cty"]);

/** JSON text of an object whose members are given as [name, JSON text] pairs (duplicates kept). */
function objectText(members: [string, string][]): string {
  return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`;
}

/** Bytes of a JSON text; `corrupt` inserts bytes that are not UTF-8 into string values. */
function bytesOf(text: string, corrupt: number[] | null): Uint8Array {
  const bytes = encoder.encode(text);
  if (!corrupt || corrupt.length === 0) return bytes;
  // Put the bad bytes right after the first quote of a string value (inside a string).
  const at = text.indexOf(':"');
  if (at < 0) return bytes;
  const pos = encoder.encode(text.slice(0, at + 2)).length;
  const out = new Uint8Array(bytes.length + corrupt.length);
  out.set(bytes.subarray(0, pos));
  out.set(corrupt, pos);
  out.set(bytes.subarray(pos), pos + corrupt.length);
  return out;
}

/** Parses a segment the way the gateway does (UTF-8 with replacement, then JSON). */
function parseSegment(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The reference model: why a token MUST be refused (undefined: it may be accepted).
 * `signedWith` says which key signed the bytes (and whether alg matches that key).
 */
function mustRefuse(
  headerBytes: Uint8Array,
  payloadBytes: Uint8Array,
  signed: "issuer-rs" | "other",
): string | undefined {
  const h = parseSegment(headerBytes);
  const p = parseSegment(payloadBytes);
  if (!isObject(h)) return "header is not a JSON object";
  if (!isObject(p)) return "payload is not a JSON object";
  if (signed !== "issuer-rs") return "not signed by the issuer";
  if (h.alg !== "RS256") return "alg does not match the signing key (RS256)";
  if (!ALLOWED_ALGS.has(h.alg)) return "alg not allowed";
  if ("crit" in h) return "crit present";
  if ("typ" in h && (typeof h.typ !== "string" || !ACCEPTED_TYP.has(h.typ.toLowerCase()))) return "typ not accepted";
  if ("kid" in h && h.kid !== "fuzz-rs") return "kid is not the signing key's";
  if (p.iss !== ISSUER) return "iss";
  if (typeof p.exp !== "number" || p.exp <= NOW - SKEW) return "exp missing, not a number or past";
  if ("nbf" in p && (typeof p.nbf !== "number" || p.nbf > NOW + SKEW)) return "nbf";
  if ("iat" in p && (typeof p.iat !== "number" || p.iat > NOW + SKEW)) return "iat";
  const aud = typeof p.aud === "string" ? [p.aud] : Array.isArray(p.aud) ? p.aud : [];
  if (!aud.includes(RESOURCE)) return "aud";
  if (typeof p.sub !== "string" || p.sub === "") return "sub";
  const raw = p.scope ?? p.scp;
  const scopes = typeof raw === "string" ? raw.split(" ") : Array.isArray(raw) ? raw : [];
  if (!scopes.includes("mcp:read")) return "scope";
  return undefined;
}

Deno.test(`fuzz: JWT header and payload (seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs per property)`, async (t) => {
  const h = await fuzzGateway();
  const attacker = await generateKeyPair("RS256");
  const rsaSign = async (key: CryptoKey, input: string) =>
    b64url(new Uint8Array(await crypto.subtle.sign({ name: "RSASSA-PKCS1-v1_5" }, key, encoder.encode(input))));

  // JSON text generators. Values: any JSON, huge or odd numbers as raw text, deep nesting.
  const numberText = fc.oneof(
    fc.constantFrom("1e400", "-1e400", "123456789012345678901234567890", "1.0e-400", "-0", "9007199254740993", "0.5"),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  );
  const deep = fc.tuple(fc.integer({ min: 100, max: 6_000 }), fc.constantFrom("[", '{"a":')).map(([depth, open]) =>
    open.repeat(depth) + "1" + (open === "[" ? "]" : "}").repeat(depth)
  );
  const valueText = fc.oneof(
    { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null") },
    { weight: 2, arbitrary: numberText },
    { weight: 1, arbitrary: deep },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 30 }).map((s) => JSON.stringify(s)) },
  );
  const now = Math.floor(NOW);
  const validClaims = claims(T0) as Record<string, unknown>;
  // A claim is kept valid, replaced by anything, dropped, or given twice (last one wins).
  const claimText = (name: string) =>
    fc.oneof(
      { weight: 24, arbitrary: fc.constant<[string, string][]>([[name, JSON.stringify(validClaims[name])]]) },
      { weight: 2, arbitrary: valueText.map((v): [string, string][] => [[name, v]]) },
      { weight: 1, arbitrary: fc.constant<[string, string][]>([]) },
      {
        weight: 1,
        arbitrary: valueText.map((v): [string, string][] => [[name, v], [name, JSON.stringify(validClaims[name])]]),
      },
      {
        weight: 1,
        arbitrary: valueText.map((v): [string, string][] => [[name, JSON.stringify(validClaims[name])], [name, v]]),
      },
    );
  const payloadText = fc.tuple(
    ...["iss", "aud", "sub", "exp", "iat", "scope"].map(claimText),
    fc.option(
      fc.constantFrom<[string, string][]>(
        [["nbf", String(now - 10)]],
        [["nbf", String(now + 3_600)]],
        [["scp", '["mcp:read"]']],
        [["scope", "null"], ["scp", '"mcp:read"']],
        [["aud", JSON.stringify(["x", RESOURCE])]],
        [["exp", "1e400"]],
      ),
      { nil: undefined },
    ),
    fc.array(fc.tuple(fc.string({ maxLength: 12 }), valueText), { maxLength: 4 }),
  ).map(([...parts]) => {
    const extra = parts.pop() as [string, string][];
    const optional = (parts.pop() as [string, string][] | undefined) ?? [];
    return objectText([...(parts as [string, string][][]).flat(), ...optional, ...extra]);
  });
  const headerText = fc.tuple(
    fc.oneof(
      { weight: 8, arbitrary: fc.constant('"RS256"') },
      { weight: 2, arbitrary: fc.constantFrom('"ES256"', '"none"', '"HS256"', '"PS256"', '"rs256"', "null", "256") },
    ),
    fc.oneof(
      { weight: 6, arbitrary: fc.constant('"fuzz-rs"') },
      { weight: 2, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom('"fuzz-ec"', '"nope"', "7", "null") },
    ),
    fc.oneof(
      { weight: 4, arbitrary: fc.constant('"at+jwt"') },
      { weight: 2, arbitrary: fc.constant(undefined) },
      {
        weight: 2,
        arbitrary: fc.constantFrom('"JWT"', '"application/at+jwt"', '"AT+JWT"', '"JOSE"', "1", '"at+jwt "', "[]"),
      },
    ),
    fc.oneof(
      { weight: 9, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom('["exp"]', "[]", '"x"', "null") },
    ),
    fc.array(
      fc.tuple(
        fc.oneof(fc.constantFrom("jku", "x5u", "jwk", "x5c", "x5t", "alg"), fc.string({ maxLength: 8 })),
        fc.oneof(
          fc.constantFrom('"https://attacker.test/jwks.json"', '{"kty":"oct","k":"AAAA"}', '["MIIB"]'),
          valueText,
        ),
      ),
      { maxLength: 2, size: "xsmall" },
    ),
  ).map(([alg, kid, typ, crit, extra]) => {
    const members: [string, string][] = [["alg", alg]];
    if (kid !== undefined) members.push(["kid", kid]);
    if (typ !== undefined) members.push(["typ", typ]);
    if (crit !== undefined) members.push(["crit", crit]);
    return objectText([...members, ...extra]);
  });
  // Bytes that are not UTF-8, inside a string value, now and then.
  const corruption = fc.oneof(
    { weight: 7, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.array(fc.constantFrom(0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0), { minLength: 1, maxLength: 3 }),
    },
  );
  const signer = fc.oneof(
    { weight: 6, arbitrary: fc.constant("issuer-rs" as const) },
    { weight: 1, arbitrary: fc.constantFrom("attacker" as const, "garbage" as const, "empty" as const) },
  );

  await t.step("arbitrary header and payload, signed or not", async () => {
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    await fc.assert(
      fc.asyncProperty(
        headerText,
        payloadText,
        corruption,
        corruption,
        signer,
        async (hText, pText, hBad, pBad, how) => {
          const hb = bytesOf(hText, hBad);
          const pb = bytesOf(pText, pBad);
          const input = `${b64url(hb)}.${b64url(pb)}`;
          let sig = "";
          if (how === "issuer-rs") sig = await rsaSign(h.rs.privateKey, input);
          else if (how === "attacker") sig = await rsaSign(attacker.privateKey, input);
          else if (how === "garbage") sig = b64url(crypto.getRandomValues(new Uint8Array(256)));
          const token = `${input}.${sig}`;
          const r = await h.send({
            method: "POST",
            url: `${ORIGIN}/mcp`,
            headers: [["authorization", `Bearer ${token}`]],
          });
          assertLess(r.status, 500, `status: ${r.text}`);
          const refuse = mustRefuse(hb, pb, how === "issuer-rs" ? "issuer-rs" : "other");
          count(r.upstream.length > 0 ? "accepted" : `refused: ${refuse ?? "by the gateway only"}`);
          if (r.upstream.length > 0) {
            assertEquals(refuse, undefined, `reached the upstream although the model refuses it`);
            assertEquals(r.status, 200);
          } else {
            assert([400, 401, 403, 431].includes(r.status), `refused with ${r.status}: ${r.text}`);
          }
          assertEquals(r.foreign, [], "URLs fetched besides the JWKS and the upstream");
          if (sig.length >= 16) assertNoSecretsLogged(r.logs, [sig], "jwt");
        },
      ),
      params(),
    );
    // Not vacuous: a fair share of the cases must get past every check.
    console.log([...outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `  ${v}\t${k}`).join("\n"));
    assert((outcomes.get("accepted") ?? 0) >= FUZZ_RUNS * 0.05, "at least 5% of the fuzzed tokens were accepted");
  });

  await t.step("well-formed tokens with arbitrary extra claims and header members are accepted", async () => {
    const extraName = fc.string({ maxLength: 12 }).filter((k) =>
      !["iss", "aud", "sub", "exp", "iat", "nbf", "scope", "scp", "client_id", "azp", "cid", "appid", "__proto__"]
        .includes(k)
    );
    const headerExtraName = fc.string({ maxLength: 8 }).filter((k) => !RESERVED_HEADER.has(k) && k !== "__proto__");
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(extraName, valueText), { maxLength: 5 }),
        fc.array(fc.tuple(headerExtraName, valueText), { maxLength: 3 }),
        async (extraClaims, extraHeader) => {
          const base = Object.entries(validClaims).map(([k, v]): [string, string] => [k, JSON.stringify(v)]);
          const pText = objectText([...base, ...extraClaims]);
          const hText = objectText([["alg", '"RS256"'], ["kid", '"fuzz-rs"'], ["typ", '"at+jwt"'], ...extraHeader]);
          const input = `${b64url(hText)}.${b64url(pText)}`;
          const token = `${input}.${await rsaSign(h.rs.privateKey, input)}`;
          fc.pre(token.length <= 16_384);
          fc.pre(mustRefuse(encoder.encode(hText), encoder.encode(pText), "issuer-rs") === undefined);
          const r = await h.send({
            method: "POST",
            url: `${ORIGIN}/mcp`,
            headers: [["authorization", `Bearer ${token}`]],
          });
          assertEquals(r.status, 200, `refused: ${r.text}`);
          assertEquals(r.upstream.length, 1);
          assertEquals(r.foreign, []);
          assertNoSecretsLogged(r.logs, [token.split(".")[2]!], "well-formed");
        },
      ),
      params(Math.max(50, Math.floor(FUZZ_RUNS / 2))),
    );
  });

  assert(h.lines.length > 0);
  h.gw.close();
});
