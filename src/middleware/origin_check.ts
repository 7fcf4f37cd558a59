/**
 * DNS-rebinding protection: a request whose Origin is present and not allowed gets 403
 * before anything else looks at it. Requests without Origin (server-side clients) pass.
 */
import { AuthError } from "../errors.ts";
import type { Middleware } from "../context.ts";

export function originCheck(isAllowedOrigin: (origin: string) => boolean): Middleware {
  return async function originCheckMiddleware(c, next) {
    const origin = c.req.raw.headers.get("origin");
    if (origin !== null && !isAllowedOrigin(origin)) {
      throw new AuthError("origin_not_allowed", 403, "", `Origin ${origin} is not allowed`);
    }
    await next();
  };
}
