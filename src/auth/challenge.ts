/**
 * WWW-Authenticate (RFC 6750 §3, RFC 9728 §5.1) and the small JSON error body that goes
 * with every 401/403. A bare challenge (no token sent) carries no `error=`.
 */
import type { BearerErrorCode } from "../errors.ts";

/** Keeps only characters RFC 6750 allows in error_description; drops `"`, `\` and `=`. */
function sanitizeDescription(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x3C\x3E-\x5B\x5D-\x7E]/g, "").slice(0, 200);
}

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => "\\" + c)}"`;
}

export interface ChallengeInput {
  /** AUTH_REALM; empty or absent: no realm parameter. */
  realm?: string;
  resourceMetadataUrl: string;
  scopes: readonly string[];
  error: BearerErrorCode;
  description?: string;
}

/** Builds one Bearer challenge: realm, resource_metadata, scope, then error and error_description. */
export function buildChallenge(input: ChallengeInput): string {
  const params = input.realm ? [`realm=${quote(input.realm)}`] : [];
  params.push(`resource_metadata=${quote(input.resourceMetadataUrl)}`);
  if (input.scopes.length > 0) params.push(`scope=${quote(input.scopes.join(" "))}`);
  if (input.error !== "") {
    params.push(`error=${quote(input.error)}`);
    if (input.description) params.push(`error_description=${quote(sanitizeDescription(input.description))}`);
  }
  return `Bearer ${params.join(", ")}`;
}

/** The JSON body of a 400/401/403 answered by the gateway. */
export function errorBody(error: string, description: string): string {
  return JSON.stringify({ error, error_description: sanitizeDescription(description) });
}
