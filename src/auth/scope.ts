/**
 * Scopes of a verified token: `scope` (RFC 9068, space-separated string) or `scp`
 * (array or string, as Entra and Okta send it). Unknown shapes yield no scopes.
 */
import type { JWTPayload } from "jose";

export function tokenScopes(payload: JWTPayload): string[] {
  const raw = payload.scope ?? payload["scp"];
  if (typeof raw === "string") return raw.split(" ").filter((s) => s !== "");
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === "string" && s !== "");
  return [];
}

/** The required scopes the token lacks (empty when it has them all). */
export function missingScopes(have: readonly string[], required: readonly string[]): string[] {
  if (required.length === 0) return [];
  const set = new Set(have);
  return required.filter((s) => !set.has(s));
}
