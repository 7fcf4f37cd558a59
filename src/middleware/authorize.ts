/**
 * What the token may do: the scopes this request needs — REQUIRED_SCOPES, then whatever
 * the MCP policy found the body's calls need (state.ruleScopes) — must all be held by the
 * token, directly or through SCOPE_IMPLIES, or the answer is 403 insufficient_scope with a
 * challenge naming exactly the needed set (MCP 2026-07-28, SEP-2350).
 */
import { type ImpliedBy, impliedByLookup, missingScopes, unionInOrder } from "../auth/scope.ts";
import type { Config } from "../config.ts";
import { AuthError } from "../errors.ts";
import type { GatewayMetrics } from "../metrics.ts";
import type { Middleware } from "../context.ts";

/** The 403 for a token lacking `missing`; the challenge names every scope in `needed`. */
export function insufficientScope(
  needed: readonly string[],
  missing: readonly string[],
  held: readonly string[],
): AuthError {
  return new AuthError(
    "insufficient_scope",
    403,
    "insufficient_scope",
    `The token lacks the required scope ${missing.join(" ")}`,
    { hint: `token scopes: ${held.join(" ") || "(none)"}`, scopes: needed },
  );
}

export function authorize(
  config: Pick<Config, "requiredScopes" | "scopeImplies">,
  metrics: GatewayMetrics | undefined,
): Middleware {
  const required = [...new Set(config.requiredScopes)];
  const impliedBy: ImpliedBy | undefined = Object.keys(config.scopeImplies).length > 0
    ? impliedByLookup(config.scopeImplies)
    : undefined;

  return async function authorizeMiddleware(c, next) {
    const state = c.get("state");
    const identity = state.identity!;
    const ruleScopes = state.ruleScopes;
    const needed = ruleScopes === undefined ? required : unionInOrder(required, ruleScopes);
    const missing = missingScopes(identity.scopes, needed, impliedBy);
    if (missing.length > 0) throw insufficientScope(needed, missing, identity.scopes);
    metrics?.authOutcome("valid", "ok");
    await next();
  };
}
