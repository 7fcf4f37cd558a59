/**
 * The signature check behind one interface, so that each runtime can use its fastest.
 *
 * jose checks JWS signatures through WebCrypto, which on Bun and Deno is a promise and a
 * hop to another thread: about 50 µs for one RS256 check on Bun, where node:crypto's
 * synchronous `verify` takes 18 µs (bench/profiles/crypto.md). runtime.ts supplies such a
 * SignatureCheck; verify_token.ts still lets jose choose the key (by kid and alg from the
 * JWKS, as before) and still lets jose validate the claims, and falls back to jose's own
 * path for any algorithm or key the check does not take (it answers undefined).
 */
export type SignatureCheck = (
  alg: string,
  key: CryptoKey,
  signingInput: Uint8Array,
  signature: Uint8Array,
) => boolean | undefined;

/** What a check needs to know per JWS algorithm. */
export interface AlgorithmParams {
  /** WebCrypto algorithm name of a key imported for this alg (jose's importJWK). */
  keyAlgorithm: "RSASSA-PKCS1-v1_5" | "RSA-PSS" | "ECDSA";
  hash: "sha256" | "sha384" | "sha512";
  /** ECDSA: the key's curve. */
  curve?: "P-256" | "P-384" | "P-521";
  /** RSA-PSS: salt length in bytes (RFC 7518 §3.5: the hash's length). */
  saltLength?: number;
}

export const SignatureAlgorithms: Readonly<Record<string, AlgorithmParams>> = {
  RS256: { keyAlgorithm: "RSASSA-PKCS1-v1_5", hash: "sha256" },
  RS384: { keyAlgorithm: "RSASSA-PKCS1-v1_5", hash: "sha384" },
  RS512: { keyAlgorithm: "RSASSA-PKCS1-v1_5", hash: "sha512" },
  PS256: { keyAlgorithm: "RSA-PSS", hash: "sha256", saltLength: 32 },
  PS384: { keyAlgorithm: "RSA-PSS", hash: "sha384", saltLength: 48 },
  PS512: { keyAlgorithm: "RSA-PSS", hash: "sha512", saltLength: 64 },
  ES256: { keyAlgorithm: "ECDSA", hash: "sha256", curve: "P-256" },
  ES384: { keyAlgorithm: "ECDSA", hash: "sha384", curve: "P-384" },
  ES512: { keyAlgorithm: "ECDSA", hash: "sha512", curve: "P-521" },
};

/**
 * The key is a public key imported for exactly this alg, and an RSA key has at least 2048
 * bits (jose refuses smaller ones; such keys go to jose so that it does).
 */
export function keyFits(params: AlgorithmParams, key: CryptoKey): boolean {
  if (key.type !== "public" || key.algorithm.name !== params.keyAlgorithm) return false;
  if (params.curve !== undefined) return (key.algorithm as EcKeyAlgorithm).namedCurve === params.curve;
  const rsa = key.algorithm as RsaHashedKeyAlgorithm;
  return rsa.modulusLength >= 2048 && rsa.hash.name.replace("-", "").toLowerCase() === params.hash;
}
