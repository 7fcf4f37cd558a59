/**
 * The per-user token bucket (USER_RATE_LIMIT_RPS / USER_RATE_LIMIT_BURST), keyed by the
 * verified subject (`sub`, else `client_id`), right after authentication. Many users behind
 * one NAT address each get their own bucket; one runaway agent with a valid token is held
 * to its own. A request refused here has passed the IP bucket already (it spent its IP
 * token there, as any request that reaches authentication does) and takes nothing more; a
 * request the IP bucket refused never gets here, so it spends nothing from its user's.
 */
import type { Middleware } from "../context.ts";
import type { LimiterStore } from "../limits/store.ts";
import type { GatewayMetrics } from "../metrics.ts";
import { limitRefusal } from "./limit_response.ts";

export function userLimits(store: LimiterStore, metrics: GatewayMetrics | undefined): Middleware {
  return async function userLimitsMiddleware(c, next) {
    const state = c.get("state");
    const subject = state.identity?.subject;
    if (subject === undefined) return await next();
    let retryAfter = store.take(subject);
    if (typeof retryAfter !== "number") retryAfter = await retryAfter;
    if (retryAfter !== 0) {
      c.res = limitRefusal(state, "user", retryAfter, metrics);
      return;
    }
    await next();
  };
}
