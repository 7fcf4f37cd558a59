/**
 * Who is asking: extracts the bearer credential (RFC 6750 §2.1; 400 for a token in the
 * query or two credentials, bare 401 for none), hands it to the verifier for its kind — a
 * compact JWS to the JWT verifier, anything else to the opaque-token verifier when one is
 * configured — and puts the Identity on the request state. Nothing after this runs for a
 * request without a valid token.
 */
import { extractToken } from "../auth/extract_token.ts";
import { type Identity, isCompactJws, type Verifier } from "../auth/identity.ts";
import { AuthError } from "../errors.ts";
import { authOutcomeFor } from "../metrics.ts";
import type { Tracer } from "../otel.ts";
import type { Middleware } from "../context.ts";

export interface Verifiers {
  jwt: Verifier;
  /** Opaque (non-JWT) tokens: RFC 7662 introspection; undefined: refused as malformed. */
  opaque: Verifier | undefined;
}

export function authenticate(verifiers: Verifiers, tracer: Tracer | undefined): Middleware {
  const { jwt, opaque } = verifiers;
  // Without introspection every credential goes to the JWT verifier, which names what is wrong with it.
  const verify = (token: string): Promise<Identity> =>
    opaque !== undefined && !isCompactJws(token) ? opaque.verify(token) : jwt.verify(token);

  return async function authenticateMiddleware(c, next) {
    const state = c.get("state");
    const authSpan = state.span && tracer!.startSpan("auth.verify", { parent: state.span });
    try {
      const token = extractToken(c.req.raw.headers.get("authorization"), state.search);
      state.token = token;
      const identity = await verify(token);
      state.identity = identity;
      authSpan?.setAttribute("enduser.id", identity.subject);
    } catch (e) {
      if (authSpan && e instanceof AuthError) {
        authSpan.setAttributes({ "auth.outcome": authOutcomeFor(e.code, e.status), "auth.reason": e.code });
        authSpan.setStatus("error", e.code);
      }
      throw e;
    } finally {
      authSpan?.end();
    }
    await next();
  };
}
