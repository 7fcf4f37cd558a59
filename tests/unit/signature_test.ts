import { assertEquals } from "@std/assert";
import * as nodeCrypto from "node:crypto";
import { base64url, generateKeyPair, SignJWT } from "jose";
import { nodeSignatureCheck } from "../../src/runtime.ts";
import { SignatureAlgorithms } from "../../src/auth/signature.ts";

const check = nodeSignatureCheck(nodeCrypto, Object.keys(SignatureAlgorithms));
const encoder = new TextEncoder();

async function signed(alg: string, opts: { modulusLength?: number } = {}) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...opts });
  const token = await new SignJWT({ sub: "u" }).setProtectedHeader({ alg }).sign(privateKey);
  const last = token.lastIndexOf(".");
  return { publicKey, input: encoder.encode(token.slice(0, last)), signature: base64url.decode(token.slice(last + 1)) };
}

Deno.test("nodeSignatureCheck(): true for a good signature, false for a changed one, per algorithm", async (t) => {
  for (const alg of ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]) {
    await t.step(alg, async () => {
      const { publicKey, input, signature } = await signed(alg);
      assertEquals(check(alg, publicKey, input, signature), true);
      const changed = new Uint8Array(input);
      changed[changed.length - 1] = changed[changed.length - 1]! ^ 1;
      assertEquals(check(alg, publicKey, changed, signature), false);
      const badSig = new Uint8Array(signature);
      badSig[0] = badSig[0]! ^ 1;
      assertEquals(check(alg, publicKey, input, badSig), false);
      assertEquals(check(alg, publicKey, input, signature.subarray(1)), false);
    });
  }
});

Deno.test("nodeSignatureCheck(): undefined (jose decides) for what it does not take", async (t) => {
  await t.step("EdDSA", async () => {
    const { publicKey, input, signature } = await signed("EdDSA");
    assertEquals(check("EdDSA", publicKey, input, signature), undefined);
  });
  await t.step("a key imported for another alg (RS256 key, PS256 token; P-256 key, ES384 token)", async () => {
    const rs = await signed("RS256");
    assertEquals(check("PS256", rs.publicKey, rs.input, rs.signature), undefined);
    assertEquals(check("RS384", rs.publicKey, rs.input, rs.signature), undefined);
    const es = await signed("ES256");
    assertEquals(check("ES384", es.publicKey, es.input, es.signature), undefined);
  });
  await t.step("an RSA key under 2048 bits (jose refuses it)", async () => {
    const { publicKey, privateKey } = await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    );
    const input = encoder.encode("a.b");
    const signature = new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", privateKey, input));
    assertEquals(check("RS256", publicKey, input, signature), undefined);
  });
  await t.step("an algorithm outside the list it was made for (Deno: RS and PS only)", async () => {
    const denoLike = nodeSignatureCheck(nodeCrypto, ["RS256"]);
    const es = await signed("ES256");
    assertEquals(denoLike("ES256", es.publicKey, es.input, es.signature), undefined);
    const rs = await signed("RS256");
    assertEquals(denoLike("RS256", rs.publicKey, rs.input, rs.signature), true);
  });
});
