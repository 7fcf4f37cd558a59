/**
 * The scope policy as the gateway understood it, for `mcp-gate check`: each rule in
 * order with the scopes a matching call needs and the 403 challenge it would produce,
 * then the scope hierarchy with its transitive closure.
 */
import { impliedByLookup, unionInOrder } from "../auth/scope.ts";
import type { ScopePolicy } from "./rules.ts";

export interface DescribeInput {
  requiredScopes: readonly string[];
  scopeRules: ScopePolicy["rules"];
  scopeImplies: ScopePolicy["implies"];
}

const q = (s: string) => JSON.stringify(s);

/** Lines of text; `challengeFor(needed)` is the WWW-Authenticate value of the 403 for that needed set. */
export function describeScopePolicy(
  input: DescribeInput,
  challengeFor: (needed: readonly string[]) => string,
): string[] {
  const lines: string[] = [];
  const required = [...new Set(input.requiredScopes)];
  const rules = input.scopeRules;
  if (rules === undefined) {
    lines.push("SCOPE_RULES is unset: no body is read; every request needs REQUIRED_SCOPES only.");
  } else {
    lines.push(
      `${rules.length} rule${rules.length === 1 ? "" : "s"}, first match wins; every request also needs ` +
        `REQUIRED_SCOPES (${required.join(" ") || "none"}).`,
    );
    rules.forEach((rule, i) => {
      const target = rule.name === undefined ? "" : ` with name/uri ${q(rule.name)}`;
      const needed = unionInOrder(required, rule.scopes);
      lines.push(
        `${i + 1}. method ${q(rule.method)}${target} → needs ${needed.join(" ") || "nothing more"}` +
          (rule.scopes.length === 0 ? " (no extra scope: later rules are skipped)" : ""),
      );
      if (needed.length > 0) lines.push(`   403 without it: WWW-Authenticate: ${challengeFor(needed)}`);
    });
    lines.push(`Any other message → needs ${required.join(" ") || "nothing more"}.`);
  }
  const broad = Object.keys(input.scopeImplies);
  if (broad.length > 0) {
    lines.push(
      "Scope hierarchy (SCOPE_IMPLIES, transitive): a token holding the scope on the left holds those after it.",
    );
    const implied = new Map<string, string[]>();
    for (const [narrow, by] of impliedByLookup(input.scopeImplies)) {
      for (const b of by) implied.set(b, [...(implied.get(b) ?? []), narrow]);
    }
    for (const b of broad) lines.push(`${b} → ${(implied.get(b) ?? []).sort().join(" ") || "(nothing)"}`);
  }
  return lines;
}
