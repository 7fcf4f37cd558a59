/**
 * RFC 6750 §2 credential extraction. Only the Authorization header is a valid place for
 * the token; a token in the query string is refused outright, because it has already
 * leaked into URLs, logs and referrers. The form-body method is not supported (it would
 * mean buffering the body). This module does not look inside the token.
 */
import { AuthError } from "../errors.ts";

const KnownSchemes = new Set([
  "basic",
  "digest",
  "negotiate",
  "ntlm",
  "dpop",
  "hoba",
  "mutual",
  "token",
  "aws4-hmac-sha256",
]);

/** token68 (RFC 7235 §2.1) after "Bearer " and optional whitespace. */
const BearerCredentials = /^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *$/;

/**
 * Returns the bearer token of a request. Throws AuthError: `missing_token` (401, bare
 * challenge) when there is no Bearer credential, `token_in_query` or
 * `multiple_credentials` (400 invalid_request), `malformed` (401 invalid_token).
 */
export function extractToken(authorization: string | null, search: string): string {
  if (search !== "" && hasAccessTokenParam(search)) {
    throw new AuthError(
      "token_in_query",
      400,
      "invalid_request",
      "Access tokens in the query string are not accepted; send an Authorization header",
    );
  }
  if (authorization === null || authorization.trim() === "") {
    throw new AuthError("missing_token", 401, "", "Authentication required");
  }
  // Two Authorization headers arrive joined by ", "; a comma never occurs in a token68.
  if (authorization.includes(",")) {
    throw new AuthError(
      "multiple_credentials",
      400,
      "invalid_request",
      "More than one credential in the request",
    );
  }
  const scheme = /^\s*(\S+)/.exec(authorization)?.[1] ?? "";
  if (scheme.toLowerCase() !== "bearer") {
    throw new AuthError("missing_token", 401, "", "Authentication required", {
      // Name the scheme only when it is a known one: anything else may be a bare credential.
      hint: KnownSchemes.has(scheme.toLowerCase())
        ? `Authorization scheme ${scheme} is not Bearer`
        : `Authorization is not a Bearer credential (${authorization.length} characters)`,
    });
  }
  const m = BearerCredentials.exec(authorization);
  if (!m) {
    throw new AuthError("malformed", 401, "invalid_token", "The access token is malformed");
  }
  return m[1]!;
}

/** True when the query string has an `access_token` parameter, however its name is encoded. */
export function hasAccessTokenParam(search: string): boolean {
  if (!search.includes("access_token") && !search.includes("%")) return false;
  return new URLSearchParams(search).has("access_token");
}
