/** CORS preflights on every path: answered here, never authenticated, never forwarded. */
import type { Handler } from "hono";
import type { GatewayEnv } from "../context.ts";
import { allowHeadersFor, AllowMethods, applyCors } from "../cors.ts";
import { AuthError } from "../errors.ts";

export function preflight(
  metadataPaths: ReadonlySet<string>,
  isAllowedOrigin: (origin: string) => boolean,
): Handler<GatewayEnv> {
  return function preflightHandler(c) {
    const origin = c.req.header("origin");
    const headers = new Headers({ allow: AllowMethods });
    if (origin !== undefined) {
      const publicPath = metadataPaths.has(c.req.path);
      if (!publicPath && !isAllowedOrigin(origin)) {
        throw new AuthError("origin_not_allowed", 403, "", `Origin ${origin} is not allowed`);
      }
      applyCors(headers, publicPath ? "*" : origin);
      headers.set("access-control-allow-methods", AllowMethods);
      headers.set(
        "access-control-allow-headers",
        allowHeadersFor(c.req.header("access-control-request-headers") ?? null),
      );
      headers.set("access-control-max-age", "86400");
    }
    return new Response(null, { status: 204, headers });
  };
}
