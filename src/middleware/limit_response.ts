/**
 * The answers of a rate-limit refusal, shared by the IP and the per-user buckets: 429 with
 * Retry-After, or 503 when the shared store failed and RATE_LIMIT_FAIL_CLOSED is on.
 */
import { errorBody } from "../auth/challenge.ts";
import { jsonResponse, type RequestState } from "../context.ts";
import type { GatewayMetrics, RateLimitScope } from "../metrics.ts";
import { StoreUnavailable } from "../limits/store.ts";

const Reasons: Record<RateLimitScope, string> = { ip: "rate_limited", user: "user_rate_limited" };
const Whose: Record<RateLimitScope, string> = { ip: "", user: " for this user" };

/** The response for a take() result other than 0, with the state's reason set. */
export function limitRefusal(
  state: RequestState,
  scope: RateLimitScope,
  retryAfter: number,
  metrics: GatewayMetrics | undefined,
): Response {
  if (retryAfter === StoreUnavailable) {
    state.reason = "rate_limit_store_unavailable";
    return jsonResponse(
      503,
      errorBody("temporarily_unavailable", "The rate-limit store is unavailable; try again shortly"),
      { "retry-after": "1" },
    );
  }
  metrics?.rateLimited(scope);
  state.reason = Reasons[scope];
  return jsonResponse(
    429,
    errorBody("rate_limited", `Too many requests${Whose[scope]}; retry after ${retryAfter} s`),
    { "retry-after": String(retryAfter) },
  );
}
