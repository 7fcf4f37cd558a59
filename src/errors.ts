/**
 * Error classes with stable codes. Every failure the gateway answers itself is one of
 * these; `app.ts` has the single place that turns them into responses.
 */

/** Base class: a stable `code`, `name` from the constructor, `cause` kept. */
export class GatewayError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One configuration problem: which variable, the value seen, what was expected. */
export interface ConfigProblem {
  variable: string;
  value: string | undefined;
  expected: string;
}

/** All configuration problems found at start-up, reported together. */
export class ConfigError extends GatewayError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(
      "invalid_config",
      `Invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${formatProblem(p)}`).join("\n"),
    );
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  const seen = p.value === undefined ? "is not set" : `is ${JSON.stringify(p.value)}`;
  return `${p.variable} ${seen}: ${p.expected}`;
}

/** Stable reason codes for every authentication outcome that is not a success. */
export type AuthReason =
  | "missing_token"
  | "token_in_query"
  | "multiple_credentials"
  | "malformed"
  | "alg_not_allowed"
  | "bad_typ"
  | "crit_not_supported"
  | "bad_issuer"
  | "bad_audience"
  | "expired"
  | "not_yet_valid"
  | "missing_exp"
  | "missing_sub"
  | "bad_claim"
  | "unknown_kid"
  | "bad_signature"
  | "insufficient_scope"
  | "origin_not_allowed"
  | "no_keys"
  // Opaque tokens (RFC 7662 introspection)
  | "inactive"
  | "wrong_token_type"
  | "introspection_unavailable";

/** OAuth error codes of RFC 6750 §3.1 (empty: a bare challenge, no `error=`). */
export type BearerErrorCode = "" | "invalid_request" | "invalid_token" | "insufficient_scope";

/** An authentication or authorization failure; `hint` is for the log, never the client. */
export class AuthError extends GatewayError {
  override readonly code: AuthReason;
  readonly status: 400 | 401 | 403 | 503;
  readonly bearerError: BearerErrorCode;
  readonly description: string;
  readonly hint: string | undefined;
  /** insufficient_scope: every scope the request needs, for the challenge's `scope`. */
  readonly scopes: readonly string[] | undefined;
  constructor(
    code: AuthReason,
    status: 400 | 401 | 403 | 503,
    bearerError: BearerErrorCode,
    description: string,
    options?: { hint?: string | undefined; cause?: unknown; scopes?: readonly string[] | undefined },
  ) {
    super(code, description, options);
    this.code = code;
    this.status = status;
    this.bearerError = bearerError;
    this.description = description;
    this.hint = options?.hint;
    this.scopes = options?.scopes;
  }
}

/** The upstream could not be reached (502), was too slow (504) or misbehaved (502). */
export class UpstreamError extends GatewayError {
  readonly status: 502 | 504;
  constructor(
    code: "upstream_unreachable" | "upstream_timeout" | "upstream_auth_rejected",
    status: 502 | 504,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.status = status;
  }
}

/**
 * The client's side of the exchange failed: body too large (413), too slow to send (408),
 * or the client went away before the upstream answered (499, logged, never seen).
 */
export class RequestError extends GatewayError {
  readonly status: 408 | 413 | 499;
  constructor(code: "body_too_large" | "read_timeout" | "client_closed", status: 408 | 413 | 499, message: string) {
    super(code, message);
    this.status = status;
  }
}
