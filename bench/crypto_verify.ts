/**
 * What one signature check and one token digest cost on this runtime, each way the gateway
 * could do them:
 *
 *   deno run -A bench/crypto_verify.ts [--ms=1500] [--json]
 *   bun bench/crypto_verify.ts [--ms=1500] [--json]
 *   taskset -c 1 …                          (one core, as in the bench)
 *
 * Signature (RS256 with RSA-2048, ES256 with P-256; a valid and a bad signature):
 * - jose jwtVerify with a CryptoKey imported once (the gateway today: claims included);
 * - jose compactVerify, the same without the claim checks;
 * - crypto.subtle.verify with the key imported once (WebCrypto, nothing else);
 * - node:crypto verify with createPublicKey once (crypto.verify per token, synchronous);
 * - jose importJWK per token + compactVerify (what a key import per verification would cost).
 * Digest (SHA-256 of a ~700-byte token, hex): crypto.subtle.digest (async), node:crypto
 * createHash (sync), and Bun.CryptoHasher where it exists.
 *
 * Keys are made at run time. Each case runs for --ms after a warm-up (half one at a time,
 * each awaited; half 64 at once, Promise.all, as with 64 connections); µs/op is the best
 * of 5 slices, wall time per operation.
 */
import { compactVerify, importJWK, type JWK, jwtVerify } from "jose";
import * as nodeCrypto from "node:crypto";

const args = typeof Deno !== "undefined"
  ? Deno.args
  : (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const Ms = Number(args.find((a) => a.startsWith("--ms="))?.slice(5) ?? 1500);
const Json = args.includes("--json");
const g = globalThis as unknown as {
  Bun?: { version: string; CryptoHasher: new (alg: string) => { update(s: string): void; digest(enc: "hex"): string } };
  Deno?: { version: { deno: string } };
};
const runtime = g.Bun ? `Bun ${g.Bun.version}` : g.Deno ? `Deno ${g.Deno.version.deno}` : "unknown";

const b64url = (b: Uint8Array | string) =>
  (typeof b === "string" ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString("base64url");

function makeToken(alg: "RS256" | "ES256") {
  const { privateKey, publicKey } = alg === "RS256"
    ? nodeCrypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    : nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const header = b64url(JSON.stringify({ alg, typ: "at+jwt", kid: "k1" }));
  const payload = b64url(JSON.stringify({
    iss: "http://127.0.0.1/bench-issuer",
    sub: "user-1",
    aud: "https://mcp.example.test/mcp",
    exp: Math.floor(Date.now() / 1000) + 3600,
    iat: Math.floor(Date.now() / 1000),
    scope: "mcp:tools mcp:resources",
    client_id: "bench-client",
    jti: nodeCrypto.randomBytes(16).toString("hex"),
  }));
  const input = `${header}.${payload}`;
  const sig = alg === "RS256"
    ? nodeCrypto.sign("sha256", Buffer.from(input), privateKey)
    : nodeCrypto.sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" });
  const bad = nodeCrypto.randomBytes(sig.length);
  return {
    alg,
    jwk: { ...publicKey.export({ format: "jwk" }), alg, kid: "k1" } as JWK,
    publicKey,
    input,
    sig: new Uint8Array(sig),
    good: `${input}.${b64url(sig)}`,
    bad: `${input}.${b64url(bad)}`,
    badSig: new Uint8Array(bad),
  };
}

type Op = () => unknown;

/**
 * µs per operation, one at a time (awaited) and 64 at once: the best of 5 slices of --ms/5
 * each, since other work on the machine only ever adds time.
 */
async function measure(op: Op): Promise<{ serial: number; parallel: number }> {
  const until = (ms: number) => performance.now() + ms;
  for (const end = until(200); performance.now() < end;) await op();
  let serial = Infinity, parallel = Infinity;
  for (let slice = 0; slice < 5; slice++) {
    let n = 0;
    let t0 = performance.now();
    for (const end = until(Ms / 10); performance.now() < end; n++) await op();
    serial = Math.min(serial, ((performance.now() - t0) * 1000) / n);
    n = 0;
    t0 = performance.now();
    for (const end = until(Ms / 10); performance.now() < end; n += 64) {
      await Promise.all(Array.from({ length: 64 }, () => op()));
    }
    parallel = Math.min(parallel, ((performance.now() - t0) * 1000) / n);
  }
  return { serial, parallel };
}

const expect = async (what: string, p: unknown, ok: boolean) => {
  let got: boolean;
  try {
    const r = await p;
    got = r !== false;
  } catch {
    got = false;
  }
  if (got !== ok) throw new Error(`${what}: expected ${ok ? "valid" : "invalid"}`);
};

async function signatureCases(alg: "RS256" | "ES256") {
  const t = makeToken(alg);
  const webAlg = alg === "RS256"
    ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }
    : { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const cryptoKey = await crypto.subtle.importKey("jwk", t.jwk as JsonWebKey, webAlg, false, ["verify"]);
  const joseKey = await importJWK(t.jwk, alg);
  const nodeKey = nodeCrypto.createPublicKey({ key: t.jwk as nodeCrypto.JsonWebKey, format: "jwk" });
  const data = new TextEncoder().encode(t.input);
  const nodeData = Buffer.from(t.input);
  const claims = { issuer: "http://127.0.0.1/bench-issuer", audience: "https://mcp.example.test/mcp" };
  const nodeOpts = alg === "ES256" ? { key: nodeKey, dsaEncoding: "ieee-p1363" as const } : nodeKey;
  const cases: [string, (good: boolean) => Op][] = [
    ["jose jwtVerify, CryptoKey imported once", (ok) => () => jwtVerify(ok ? t.good : t.bad, joseKey, claims)],
    ["jose compactVerify, CryptoKey imported once", (ok) => () => compactVerify(ok ? t.good : t.bad, joseKey)],
    [
      "crypto.subtle.verify, key imported once",
      (ok) => () => crypto.subtle.verify(webAlg, cryptoKey, ok ? t.sig : t.badSig, data),
    ],
    [
      "node:crypto verify, createPublicKey once",
      (ok) => () => nodeCrypto.verify("sha256", nodeData, nodeOpts, ok ? t.sig : t.badSig),
    ],
    [
      "jose importJWK per token + compactVerify",
      (ok) => async () => compactVerify(ok ? t.good : t.bad, await importJWK(t.jwk, alg)),
    ],
  ];
  const out: { case: string; valid: Awaited<ReturnType<typeof measure>>; bad: Awaited<ReturnType<typeof measure>> }[] =
    [];
  for (const [name, make] of cases) {
    await expect(`${alg} ${name}`, make(true)(), true);
    await expect(`${alg} ${name} (bad)`, make(false)(), false);
    const swallow = (op: Op): Op => async () => {
      try {
        await op();
      } catch { /* a bad signature throws in jose */ }
    };
    out.push({ case: `${alg}: ${name}`, valid: await measure(make(true)), bad: await measure(swallow(make(false))) });
  }
  return out;
}

async function digestCases() {
  const t = makeToken("RS256");
  const token = t.good + "x".repeat(Math.max(0, 700 - t.good.length));
  const enc = new TextEncoder();
  const hex = (b: ArrayBuffer) => {
    let s = "";
    for (const x of new Uint8Array(b)) s += (x < 16 ? "0" : "") + x.toString(16);
    return s;
  };
  const cases: [string, Op][] = [
    [
      "crypto.subtle.digest SHA-256 (async) + hex",
      async () => hex(await crypto.subtle.digest("SHA-256", enc.encode(token))),
    ],
    ["node:crypto createHash sha256 (sync), hex", () => nodeCrypto.createHash("sha256").update(token).digest("hex")],
    [
      "node:crypto createHash sha256 (sync), base64",
      () => nodeCrypto.createHash("sha256").update(token).digest("base64"),
    ],
  ];
  if (g.Bun) {
    const Hasher = g.Bun.CryptoHasher;
    cases.push(["Bun.CryptoHasher sha256 (sync), hex", () => {
      const h = new Hasher("sha256");
      h.update(token);
      return h.digest("hex");
    }]);
  }
  const out: { case: string; valid: Awaited<ReturnType<typeof measure>> }[] = [];
  for (const [name, op] of cases) out.push({ case: `digest: ${name}`, valid: await measure(op) });
  return out;
}

const sig = [...(await signatureCases("RS256")), ...(await signatureCases("ES256"))];
const dig = await digestCases();
if (Json) {
  console.log(JSON.stringify({ runtime, sig, digest: dig }));
} else {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  console.log(`${runtime}, ${Ms} ms per case; µs/op one at a time (64 at once)\n`);
  console.log("| case | valid | bad signature |\n| :-- | --: | --: |");
  for (const r of sig) {
    console.log(
      `| ${r.case} | ${f(r.valid.serial)} (${f(r.valid.parallel)}) | ${f(r.bad.serial)} (${f(r.bad.parallel)}) |`,
    );
  }
  for (const r of dig) console.log(`| ${r.case} | ${f(r.valid.serial)} (${f(r.valid.parallel)}) | |`);
}
