/**
 * What the token may do: the scopes this request needs — REQUIRED_SCOPES, then whatever
 * the MCP policy found the body's calls need (state.ruleScopes) — must all be held by the
 * token, or the answer is 403 insufficient_scope.
 */
import { missingScopes } from "../auth/scope.ts";
import { AuthError } from "../errors.ts";
import type { GatewayMetrics } from "../metrics.ts";
import type { Middleware } from "../context.ts";

export function authorize(requiredScopes: readonly string[], metrics: GatewayMetrics | undefined): Middleware {
  return async function authorizeMiddleware(c, next) {
    const state = c.get("state");
    const identity = state.identity!;
    const missing = missingScopes(identity.scopes, requiredScopes);
    if (missing.length > 0) {
      throw new AuthError(
        "insufficient_scope",
        403,
        "insufficient_scope",
        `The token lacks the required scope ${missing.join(" ")}`,
        { hint: `token scopes: ${identity.scopes.join(" ") || "(none)"}` },
      );
    }
    metrics?.authOutcome("valid", "ok");
    await next();
  };
}
