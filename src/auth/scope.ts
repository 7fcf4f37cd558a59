/**
 * Scopes of a verified token: `scope` (RFC 9068, space-separated string) or `scp`
 * (array or string, as Entra and Okta send it). Unknown shapes yield no scopes.
 *
 * Scope hierarchy (SCOPE_IMPLIES, MCP 2026-07-28: a broader scope implies narrower ones):
 * the transitive closure is computed once at start-up into a lookup from each scope to the
 * scopes that imply it, so a check costs a few set lookups per needed scope.
 */
import type { JWTPayload } from "jose";

export function tokenScopes(payload: JWTPayload): string[] {
  const raw = payload.scope ?? payload["scp"];
  if (typeof raw === "string") return raw.split(" ").filter((s) => s !== "");
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === "string" && s !== "");
  return [];
}

/** Scope → the other scopes that imply it, directly or through others. */
export type ImpliedBy = ReadonlyMap<string, readonly string[]>;

/**
 * The lookup for SCOPE_IMPLIES (`{"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]}`):
 * mcp:read is implied by mcp:write and mcp:admin. Cycles are harmless: scopes on a cycle
 * imply each other.
 */
export function impliedByLookup(implies: Readonly<Record<string, readonly string[]>>): ImpliedBy {
  const impliedBy = new Map<string, Set<string>>();
  for (const broad of Object.keys(implies)) {
    // Everything reachable from `broad` is implied by it.
    const seen = new Set<string>([broad]);
    const stack = [...(implies[broad] ?? [])];
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (seen.has(s)) continue;
      seen.add(s);
      let by = impliedBy.get(s);
      if (by === undefined) impliedBy.set(s, by = new Set());
      by.add(broad);
      if (Object.hasOwn(implies, s)) stack.push(...implies[s]!);
    }
  }
  return new Map([...impliedBy].map(([s, by]) => [s, [...by].filter((b) => b !== s)]));
}

/**
 * The needed scopes the token does not hold (empty when it holds them all), in `needed`
 * order. A scope is held when the token has it, or has a scope that implies it.
 */
export function missingScopes(have: readonly string[], needed: readonly string[], impliedBy?: ImpliedBy): string[] {
  if (needed.length === 0) return [];
  const set = new Set(have);
  return needed.filter((s) => {
    if (set.has(s)) return false;
    const by = impliedBy?.get(s);
    return by === undefined || !by.some((b) => set.has(b));
  });
}

/** `a` then the items of `b` not in `a`, each once. */
export function unionInOrder(a: readonly string[], b: readonly string[]): readonly string[] {
  if (b.length === 0) return a;
  const out = [...new Set(a)];
  const seen = new Set(out);
  for (const s of b) {
    if (!seen.has(s)) {
      seen.add(s);
      out.push(s);
    }
  }
  return out;
}
