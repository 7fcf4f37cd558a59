/**
 * Limits before any work: the client's token bucket (429; in memory, or shared through
 * Redis: 503 when that fails and RATE_LIMIT_FAIL_CLOSED), its in-flight cap (429) and the
 * gateway's total in-flight cap (503). The in-flight caps are per replica. A proxied
 * exchange holds its slot until its response body ends (a stream, for its whole life: the
 * proxy calls state.endOfExchange); the gateway's own answers are complete when returned,
 * so they free it here.
 */
import type { GatewayMetrics } from "../metrics.ts";
import type { ConcurrencyLimiter } from "../limits/concurrency.ts";
import type { LimiterStore } from "../limits/store.ts";
import { errorBody } from "../auth/challenge.ts";
import { jsonResponse, type Middleware } from "../context.ts";
import { isProbe } from "./request_context.ts";
import { limitRefusal } from "./limit_response.ts";

export function ipLimits(
  rateLimiter: LimiterStore,
  concurrency: ConcurrencyLimiter,
  metrics: GatewayMetrics | undefined,
): Middleware {
  return async function ipLimitsMiddleware(c, next) {
    const state = c.get("state");
    if (isProbe(state.path)) return await next();
    const clientIp = state.clientIp;
    // A number from the memory bucket (no Promise on the default path), a Promise from Redis.
    let retryAfter = rateLimiter.take(clientIp);
    if (typeof retryAfter !== "number") retryAfter = await retryAfter;
    if (retryAfter !== 0) {
      c.res = limitRefusal(state, "ip", retryAfter, metrics);
      return;
    }
    const slot = concurrency.acquire(clientIp);
    if (slot === "per_client") {
      metrics?.concurrentLimited("per_client");
      state.reason = "too_many_concurrent_requests";
      c.res = jsonResponse(429, errorBody("rate_limited", "Too many requests in flight from this client"), {
        "retry-after": "1",
      });
      return;
    }
    if (slot === "total") {
      metrics?.concurrentLimited("total");
      state.reason = "too_many_connections";
      c.res = jsonResponse(503, errorBody("temporarily_unavailable", "The gateway is at its connection limit"), {
        "retry-after": "1",
      });
      return;
    }
    let freed = false;
    state.endOfExchange = () => {
      if (freed) return;
      freed = true;
      slot();
      metrics?.connectionClosed();
    };
    metrics?.connectionOpened();
    try {
      await next();
    } finally {
      if (!state.proxied) state.endOfExchange();
    }
  };
}
