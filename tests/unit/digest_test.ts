import { assertEquals, assertNotEquals } from "@std/assert";
import { webCryptoDigest } from "../../src/auth/digest.ts";
import { detectRuntime } from "../../src/runtime.ts";

function hexToBase64(hex: string): string {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return btoa(String.fromCharCode(...bytes));
}

Deno.test("the runtime's synchronous sha256() is SHA-256: the FIPS 180-2 vector, and WebCrypto's digest for a token", async () => {
  const rt = await detectRuntime();
  assertEquals(rt.sha256("abc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
  const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0." + "s".repeat(342);
  const sync = rt.sha256(token);
  assertEquals(typeof sync, "string");
  assertEquals(sync, hexToBase64(await webCryptoDigest(token)));
  assertNotEquals(sync, rt.sha256(token.slice(0, -1) + "t"));
  assertEquals(sync.includes("eyJ"), false);
});
