/**
 * What a cached token costs on the hot path, JWT against opaque (RFC 7662 introspection),
 * through the whole in-process gateway (createGateway(...).fetch, upstream answered in
 * memory) and at the verifier alone. A cached opaque token should cost no more than a
 * cached JWT: one SHA-256 of the token and a map lookup, either way.
 *
 *   deno bench -A --import-map tests/offline_import_map.json bench/cached_token_bench.ts
 *
 * The HTTP-level comparison is the bench's "valid opaque, pool of 256, cached" row.
 */
import { CompactSign, exportJWK, generateKeyPair } from "jose";
import { createGateway } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { silentLogger } from "../src/logging.ts";

const Issuer = "https://auth.example.com";
const Resource = "https://mcp.example.com/mcp";
const Upstream = "http://upstream.test:3000";
const Introspect = `${Issuer}/introspect`;
const Pool = 256;

const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
const now = Math.floor(Date.now() / 1000);
const claims = (i: number) => ({
  iss: Issuer,
  aud: Resource,
  sub: `user-${i}`,
  client_id: "client-abc",
  scope: "mcp:read mcp:write",
  iat: now,
  exp: now + 3600,
});
const jwts = await Promise.all(
  Array.from({ length: Pool }, (_, i) =>
    new CompactSign(new TextEncoder().encode(JSON.stringify(claims(i))))
      .setProtectedHeader({ alg: "RS256", kid: "k1", typ: "at+jwt" })
      .sign(privateKey)),
);
const opaque = Array.from({ length: Pool }, () => {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
});
const answer = JSON.stringify({ active: true, token_type: "Bearer", ...claims(0) });
const upstreamBody = JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} });

const fetchFn: typeof fetch = (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  if (url === `${Issuer}/jwks`) return Promise.resolve(Response.json({ keys: [jwk] }));
  if (url === Introspect) {
    return Promise.resolve(new Response(answer, { headers: { "content-type": "application/json" } }));
  }
  if (url.startsWith(Upstream)) {
    void init;
    return Promise.resolve(new Response(upstreamBody, { headers: { "content-type": "application/json" } }));
  }
  return Promise.reject(new TypeError(`no such host: ${url}`));
};

const gw = createGateway(
  loadConfig({
    UPSTREAM_URL: Upstream,
    RESOURCE_URI: Resource,
    AUTHORIZATION_SERVER: Issuer,
    JWKS_URI: `${Issuer}/jwks`,
    INTROSPECTION_CLIENT_ID: "mcp-gate",
    INTROSPECTION_CLIENT_SECRET: "pw",
    INTROSPECTION_ENDPOINT: Introspect,
    // Limits off: this measures the token path, not the limiters.
    RATE_LIMIT_RPS: "0",
    MAX_CONCURRENT_REQUESTS: "0",
    MAX_TOTAL_CONNECTIONS: "0",
    METRICS_ADDR: "",
  }),
  { fetch: fetchFn, log: silentLogger },
);
await gw.start();

async function send(token: string): Promise<void> {
  const res = await gw.fetch(
    new Request(`https://mcp.example.com/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
    }),
    { remoteAddr: "127.0.0.1" },
  );
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`status ${res.status}: ${new TextDecoder().decode(body)}`);
}

// Warm both caches: every token verified (or introspected) once.
for (let i = 0; i < Pool; i++) {
  await send(jwts[i]!);
  await send(opaque[i]!);
}

let j = 0;
let o = 0;
Deno.bench({
  name: "cached JWT (RS256), whole gateway",
  group: "cached token",
  baseline: true,
  fn: async () => {
    await send(jwts[j++ % Pool]!);
  },
});
Deno.bench({
  name: "cached opaque (introspected), whole gateway",
  group: "cached token",
  fn: async () => {
    await send(opaque[o++ % Pool]!);
  },
});
