/**
 * The feature rows: the gateway with one of this round's features on, each in a gateway of
 * its own, so that the main rows measure the default configuration (features off: their
 * cost must be zero there) and each feature's cost is its own row, measured run by run
 * against a plain gateway of the same form started beside it (bench.ts featureRows).
 *
 * - scope:  SCOPE_RULES with 10 rules; the bench's body (tools/call "echo") matches the
 *           8th, which needs mcp:tools (the valid pool's tokens have it). Every request's
 *           body is read, parsed and classified, then forwarded as those bytes.
 * - opaque: INTROSPECTION_* pointing at a static nginx location that says every token is
 *           active; a pool of 256 opaque tokens, so after the warm-up each is a cache hit.
 * - redis:  REDIS_ADDR on a local redis-server, RATE_LIMIT_RPS high enough never to refuse:
 *           one Redis round trip (the GCRA script) per request.
 */
import { freePort, type Proc, spawn } from "./common.ts";
import type { Pools } from "./setup.ts";

export interface FeatureContext {
  jwksPort: number;
  redisPort: number | undefined;
}

export interface Feature {
  key: string;
  label: string;
  /** Environment on top of the bench's gateway environment. */
  env(ctx: FeatureContext): Record<string, string>;
  /** The token pool of the row. */
  pool(pools: Pools): string;
  needsRedis?: boolean;
}

/** Ten rules as a deployment might have them; the bench's tools/call "echo" matches the 8th. */
export const ScopeRules = [
  { method: "tools/call", name: "delete_*", scopes: ["mcp:admin"] },
  { method: "tools/call", name: "admin_*", scopes: ["mcp:admin"] },
  { method: "tools/call", name: "write_*", scopes: ["mcp:write"] },
  { method: "resources/read", name: "secret://*", scopes: ["mcp:admin"] },
  { method: "resources/*", scopes: ["mcp:resources"] },
  { method: "prompts/get", name: "internal_*", scopes: ["mcp:admin"] },
  { method: "prompts/*", scopes: ["mcp:prompts"] },
  { method: "tools/call", name: "echo", scopes: ["mcp:tools"] },
  { method: "tools/*", scopes: ["mcp:tools"] },
  { method: "logging/setLevel", scopes: ["mcp:admin"] },
];

export const Features: Record<string, Feature> = {
  scope: {
    key: "scopeRules",
    label: "valid RS256 with SCOPE_RULES (10 rules) (req/s)",
    env: () => ({ SCOPE_RULES: JSON.stringify(ScopeRules) }),
    pool: (p) => p.validRs,
  },
  opaque: {
    key: "opaque",
    label: "cached opaque token, pool of 256 (req/s)",
    env: (ctx) => ({
      INTROSPECTION_CLIENT_ID: "mcp-gate-bench",
      INTROSPECTION_CLIENT_SECRET: "bench",
      INTROSPECTION_ENDPOINT: `http://127.0.0.1:${ctx.jwksPort}/introspect`,
    }),
    pool: (p) => p.validOpaque,
  },
  redis: {
    key: "redis",
    label: "valid RS256 with REDIS_ADDR (req/s)",
    env: (ctx) => ({
      REDIS_ADDR: `127.0.0.1:${ctx.redisPort}`,
      // One client address sends everything: a limit it never reaches.
      RATE_LIMIT_RPS: "10000000",
    }),
    pool: (p) => p.validRs,
    needsRedis: true,
  },
};

/** A redis-server on a free loopback port, without persistence, on the load CPUs. */
export async function startRedis(
  cpu: string | undefined,
  logFile: string,
): Promise<{ port: number; proc: Proc }> {
  const port = freePort();
  const proc = spawn("redis-server", [
    "redis-server",
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ], { env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" }, logFile, cpu });
  const t0 = performance.now();
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("PING\r\n"));
      const buf = new Uint8Array(16);
      const n = await conn.read(buf);
      conn.close();
      if (n && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG")) return { port, proc };
    } catch { /* not yet */ }
    if (performance.now() - t0 > 10_000) {
      await proc.stop();
      throw new Error(`redis-server did not answer PING; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
