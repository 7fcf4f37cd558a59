/**
 * The one place where failures become responses: AuthError → 400/401/403/503 with the
 * RFC 6750 challenge, RequestError → 408/413/499, UpstreamError → 502/504, anything else
 * → 500 (logged with its stack, never shown to the client).
 */
import type { ErrorHandler } from "hono";
import type { Config } from "../config.ts";
import type { Logger } from "../logging.ts";
import { authOutcomeFor, type GatewayMetrics } from "../metrics.ts";
import { AuthError, RequestError, UpstreamError } from "../errors.ts";
import { buildChallenge, errorBody } from "../auth/challenge.ts";
import { type GatewayEnv, jsonResponse } from "../context.ts";

/** The response for an authentication or authorization failure. */
export function authErrorResponse(config: Config, e: AuthError): Response {
  if (e.code === "origin_not_allowed") return jsonResponse(403, errorBody("forbidden", e.description));
  if (e.status === 503) {
    return jsonResponse(503, errorBody("temporarily_unavailable", e.description), { "retry-after": "5" });
  }
  // 403: exactly the scopes this request needs (SEP-2350); 401: the baseline.
  const scopes = e.code === "insufficient_scope" ? e.scopes ?? config.requiredScopes : config.scopesSupported;
  const challenge = buildChallenge({
    realm: config.authRealm,
    resourceMetadataUrl: config.resourceMetadataUrl,
    scopes,
    error: e.bearerError,
    description: e.description,
  });
  return jsonResponse(e.status, errorBody(e.bearerError || "unauthorized", e.description), {
    "www-authenticate": challenge,
  });
}

export function errorResponse(config: Config, log: Logger, metrics: GatewayMetrics | undefined): ErrorHandler<
  GatewayEnv
> {
  return function onGatewayError(err, c) {
    const state = c.get("state");
    if (err instanceof AuthError) {
      if (err.code !== "origin_not_allowed") metrics?.authOutcome(authOutcomeFor(err.code, err.status), err.code);
      state.reason = err.code;
      state.hint = err.hint;
      return authErrorResponse(config, err);
    }
    if (err instanceof RequestError) {
      state.reason = err.code;
      return jsonResponse(err.status, errorBody(err.code, err.message), { connection: "close" });
    }
    if (err instanceof UpstreamError) {
      state.reason = err.code;
      state.hint = err.cause instanceof Error ? err.cause.message : undefined;
      return jsonResponse(err.status, errorBody(err.code, err.message));
    }
    state.reason = "internal_error";
    log.error("unhandled error", { error: err instanceof Error ? err.stack ?? err.message : String(err) });
    return jsonResponse(500, errorBody("internal_error", "The gateway failed to handle the request"));
  };
}
