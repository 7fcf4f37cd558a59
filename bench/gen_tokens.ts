/**
 * Keys and token pools for bench/bench.ts. Run with Bun (BoringSSL signs RSA about 3× faster
 * than Deno here):
 *
 *   bun bench/gen_tokens.ts <dir> <issuer> <audience> keys
 *   bun bench/gen_tokens.ts <dir> <issuer> <audience> tokens <name> <alg> <count> [valid|badsig] [part]
 *
 * `keys` writes rsa_private.pem, ec_private.pem (PKCS#8), rsa.pem, ec.pem (SPKI public keys,
 * for HAProxy) and jwks.json (for the gateway). `tokens` writes <name>[.<part>].txt, one
 * compact JWS per line, every one distinct (own jti). `badsig` tokens have well-formed
 * headers and claims and a random signature of the right length: free to make in bulk, and
 * each needs a full signature check.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

const [dir, issuer, audience, command, ...rest] = process.argv.slice(2);
if (!dir || !issuer || !audience || !command) {
  console.error("usage: gen_tokens.ts <dir> <issuer> <audience> keys|tokens ...");
  process.exit(2);
}
mkdirSync(dir, { recursive: true });

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

if (command === "keys") {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 0x10001 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  writeFileSync(`${dir}/rsa_private.pem`, rsa.privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(`${dir}/ec_private.pem`, ec.privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(`${dir}/rsa.pem`, rsa.publicKey.export({ type: "spki", format: "pem" }));
  writeFileSync(`${dir}/ec.pem`, ec.publicKey.export({ type: "spki", format: "pem" }));
  const jwks = {
    keys: [
      { ...rsa.publicKey.export({ format: "jwk" }), kid: "bench-rs", alg: "RS256", use: "sig" },
      { ...ec.publicKey.export({ format: "jwk" }), kid: "bench-es", alg: "ES256", use: "sig" },
    ],
  };
  writeFileSync(`${dir}/jwks.json`, JSON.stringify(jwks));
  process.exit(0);
}

if (command !== "tokens") {
  console.error(`unknown command ${command}`);
  process.exit(2);
}
const [name, alg, countText, kind = "valid", part] = rest;
const count = Number(countText);
if (!name || (alg !== "RS256" && alg !== "ES256") || !(count > 0)) {
  console.error(
    "usage: gen_tokens.ts <dir> <issuer> <audience> tokens <name> RS256|ES256 <count> [valid|badsig] [part]",
  );
  process.exit(2);
}
const rs = alg === "RS256";
const key = createPrivateKey(readFileSync(`${dir}/${rs ? "rsa" : "ec"}_private.pem`));
createPublicKey(key); // fails early on a broken key file
const header = b64url(JSON.stringify({ alg, typ: "at+jwt", kid: rs ? "bench-rs" : "bench-es" }));
const now = Math.floor(Date.now() / 1000);
// Valid for a week: the pools are cached under .tmp/bench between runs (bench.ts remakes
// them when less than a day is left).
const exp = now + 7 * 86400;
const prefix = `${name}-${part ?? "0"}-${randomBytes(4).toString("hex")}`;
const lines: string[] = [];
for (let i = 0; i < count; i++) {
  const payload = b64url(JSON.stringify({
    iss: issuer,
    sub: `user-${i % 1000}`,
    aud: audience,
    exp,
    iat: now,
    scope: "mcp:tools mcp:resources",
    client_id: "bench-client",
    jti: `${prefix}-${i}`,
  }));
  const input = `${header}.${payload}`;
  let sig: Buffer;
  if (kind === "badsig") sig = randomBytes(rs ? 256 : 64);
  else if (rs) sig = sign("sha256", Buffer.from(input), key);
  else sig = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  lines.push(`${input}.${b64url(sig)}`);
}
writeFileSync(`${dir}/${name}${part !== undefined ? `.${part}` : ""}.txt`, lines.join("\n") + "\n");
