/**
 * The rate-limit stores the middleware use: per client IP (RATE_LIMIT_*) and per verified
 * subject (USER_RATE_LIMIT_*). In memory by default; in Redis, shared by every replica,
 * when a backend (REDIS_ADDR / REDIS_URL) is given, each with this replica's own bucket as
 * its fallback.
 */
import type { Logger } from "../logging.ts";
import type { RateLimitSettings } from "./config.ts";
import { RateLimiter } from "./memory_bucket.ts";
import type { BucketScope } from "./script.ts";
import { type BucketBackend, FailureReporter, SharedBucket } from "./shared_bucket.ts";
import type { LimiterStore } from "./store.ts";

export interface LimiterStores {
  ip: LimiterStore;
  /** undefined: no per-user limit (USER_RATE_LIMIT_RPS 0). */
  user: LimiterStore | undefined;
}

export interface LimiterStoresDeps {
  /** The Redis connection; undefined: buckets in memory. */
  backend?: BucketBackend | undefined;
  log: Logger;
  /** Called once per decision the shared store failed (mcpgate_rate_limit_store_errors_total). */
  onStoreError?: (() => void) | undefined;
  now?: () => number;
}

export function createLimiterStores(
  limits: { rps: number; burst: number; settings: RateLimitSettings },
  deps: LimiterStoresDeps,
): LimiterStores {
  const { settings: s, rps, burst } = limits;
  const memory = (rps: number, burst: number) =>
    new RateLimiter({ rps, burst, ...(deps.now ? { now: deps.now } : {}) });
  const backend = deps.backend;
  const failures = backend && new FailureReporter({
    log: deps.log,
    onFailure: deps.onStoreError,
    redis: s.redis?.display ?? "redis",
    failClosed: s.failClosed,
    secret: s.redis?.password,
  });
  const store = (scope: BucketScope, rps: number, burst: number): LimiterStore =>
    backend && failures && rps > 0 && burst > 0
      ? new SharedBucket({
        scope,
        rps,
        burst,
        backend,
        timeoutMs: s.redisTimeoutMs,
        failClosed: s.failClosed,
        fallback: memory(rps, burst),
        failures,
      })
      : memory(rps, burst);
  return {
    ip: store("ip", rps, burst),
    user: s.userRps > 0 && s.userBurst > 0 ? store("user", s.userRps, s.userBurst) : undefined,
  };
}
