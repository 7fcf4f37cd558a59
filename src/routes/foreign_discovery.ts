/**
 * OAuth discovery probes that are not ours to answer: clients probe other resources'
 * metadata, or authorization-server metadata at the resource's origin (2025-03-26
 * clients). A 404 lets them fall back; a 401 would send them in circles.
 */
import type { Handler } from "hono";
import type { GatewayEnv } from "../context.ts";
import { jsonResponse } from "../context.ts";
import { errorBody } from "../auth/challenge.ts";

const ForeignDiscovery =
  /^\/\.well-known\/(oauth-protected-resource|oauth-authorization-server|openid-configuration)(\/|$)/;

export function foreignDiscovery(resourceMetadataUrl: string): Handler<GatewayEnv> {
  return async function foreignDiscoveryHandler(c, next) {
    if (!ForeignDiscovery.test(c.get("state").path)) return await next();
    c.get("state").reason = "no_such_metadata";
    return jsonResponse(404, errorBody("not_found", `No metadata here; see ${resourceMetadataUrl}`));
  };
}
