/**
 * The throwaway reference: a ~40-line jose + fetch proxy, for `bench.ts --naive`.
 * No cache, no limits, no logging, no header hygiene: only jwtVerify and a streamed fetch.
 * Runs on Bun (`bun bench/naive_proxy.ts`) or Deno (`deno run -A bench/naive_proxy.ts`).
 * NAIVE_NO_VERIFY=1 skips jwtVerify (what the proxy costs without the cryptography).
 */
import { createLocalJWKSet, jwtVerify } from "jose";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const env = (k: string): string => g.process?.env?.[k] ?? g.Deno?.env.get(k);
const [host, port] = env("LISTEN_ADDR").split(":");
const upstream = env("UPSTREAM_URL").replace(/\/$/, "");
const jwks = createLocalJWKSet(await (await fetch(env("JWKS_URI"))).json());
const options = { issuer: env("AUTHORIZATION_SERVER"), audience: env("RESOURCE_URI"), algorithms: ["RS256", "ES256"] };
const verify = env("NAIVE_NO_VERIFY") !== "1";

async function handle(req: Request): Promise<Response> {
  const auth = req.headers.get("authorization") ?? "";
  if (!auth.startsWith("Bearer ")) return new Response("unauthorized", { status: 401 });
  if (verify) {
    try {
      await jwtVerify(auth.slice(7), jwks, options);
    } catch {
      return new Response("invalid token", { status: 401 });
    }
  }
  const url = new URL(req.url);
  const headers = new Headers(req.headers);
  headers.delete("authorization");
  headers.delete("host");
  const res = await fetch(upstream + url.pathname + url.search, {
    method: req.method,
    headers,
    body: req.body,
    // @ts-ignore: streamed request bodies
    duplex: "half",
  });
  return new Response(res.body, { status: res.status, headers: res.headers });
}

if (g.Bun) g.Bun.serve({ hostname: host, port: Number(port), fetch: handle, idleTimeout: 0 });
else g.Deno.serve({ hostname: host, port: Number(port), onListen: () => {} }, handle);
