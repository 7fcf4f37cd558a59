/**
 * `mcp-gate check` for the shared rate limits: one PING to Redis with the configured
 * address and credentials, reported in one sentence (never the password). The client
 * library is loaded with import() only here and only when Redis is configured.
 */
import type { RateLimitSettings, RedisSettings } from "./config.ts";

export interface RedisFinding {
  kind: "ok" | "warn" | "problem";
  text: string;
}

/** How long the check waits for Redis: longer than a decision may take, as a doctor should. */
export const CheckTimeoutMs = 5_000;

export async function checkRedis(redis: RedisSettings, settings: RateLimitSettings): Promise<RedisFinding[]> {
  const { pingRedis } = await import("./redis_client.ts");
  const where = `Redis at ${redis.display}`;
  const fallback = settings.failClosed
    ? "until it does, rate-limited requests get 503 (RATE_LIMIT_FAIL_CLOSED)"
    : "until it does, each replica limits on its own";
  let ms: { connectMs: number; pingMs: number };
  try {
    ms = await pingRedis(redis, CheckTimeoutMs);
  } catch (e) {
    return [{
      kind: "problem",
      text: `${where} did not answer PING (${e instanceof Error ? e.message : String(e)}): check ` +
        `${redis.password !== undefined ? "the address and the password" : "the address"} ` +
        `(REDIS_ADDR/REDIS_PASSWORD or REDIS_URL); ${fallback}.`,
    }];
  }
  const took = `${ms.pingMs.toFixed(1)} ms`;
  const out: RedisFinding[] = [{
    kind: "ok",
    text: `${where} accepted the configured credentials and answered PING in ${took} ` +
      `(connecting took ${ms.connectMs.toFixed(0)} ms): rate limits are shared by every replica.`,
  }];
  if (ms.pingMs > settings.redisTimeoutMs) {
    out.push({
      kind: "warn",
      text: `One PING took ${took}, more than REDIS_TIMEOUT (${settings.redisTimeoutMs} ms): most decisions ` +
        "would fall back to per-replica buckets; raise REDIS_TIMEOUT or move Redis closer.",
    });
  }
  return out;
}
