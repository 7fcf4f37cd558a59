/**
 * SCOPE_RULES and SCOPE_IMPLIES: reading them from the environment (every problem reported
 * at start-up, naming the variable) and the first-match rule lookup.
 *
 *   SCOPE_RULES='[{"method":"tools/call","name":"delete_*","scopes":["mcp:admin"]},
 *                 {"method":"tools/*","scopes":["mcp:read"]}]'      (or @/path/to/rules.json)
 *   SCOPE_IMPLIES='{"mcp:admin":["mcp:write"],"mcp:write":["mcp:read"]}'
 */
import type { EnvReader } from "../env_reader.ts";
import { compilePattern, type Matcher } from "./pattern.ts";
import { NameParam } from "./jsonrpc.ts";

export interface ScopeRule {
  /** Pattern for the JSON-RPC method. */
  readonly method: string;
  /** Pattern for params.name / params.uri (NameParam); undefined: any message, named or not. */
  readonly name: string | undefined;
  readonly scopes: readonly string[];
}

export interface ScopePolicy {
  /** undefined: SCOPE_RULES is unset, and no body is ever read. */
  readonly rules: readonly ScopeRule[] | undefined;
  /** SCOPE_IMPLIES as configured: scope → the scopes it implies directly. */
  readonly implies: Readonly<Record<string, readonly string[]>>;
}

/** Never required nor advertised (MCP 2026-07-28: SHOULD NOT appear in a challenge or scopes_supported). */
export const OfflineAccess = "offline_access";
const ScopeToken = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const RuleKeys = new Set(["method", "name", "scopes"]);
const RulesExample = '[{"method": "tools/call", "name": "delete_*", "scopes": ["mcp:admin"]}]';

export function isScopeToken(s: unknown): s is string {
  return typeof s === "string" && ScopeToken.test(s);
}

function offlineAccessWarning(where: string): string {
  return `${where} names ${OfflineAccess}: dropped from the scopes required and advertised (MCP 2026-07-28: ` +
    "it SHOULD NOT appear in a challenge or in scopes_supported, and a 403 asking for it helps no client)";
}

/** `scopes` without offline_access, with a start-up warning naming `variable` when it was there. */
export function dropOfflineAccess(r: EnvReader, variable: string, scopes: readonly string[]): string[] {
  if (!scopes.includes(OfflineAccess)) return [...scopes];
  r.warn(offlineAccessWarning(variable));
  return scopes.filter((s) => s !== OfflineAccess);
}

/** The text of SCOPE_RULES: inline, or the file named by `@path`. undefined when unset or unreadable. */
function rulesText(r: EnvReader, readFile: ((path: string) => string) | undefined): [string, string] | undefined {
  const raw = r.get("SCOPE_RULES");
  if (raw === undefined || raw === "") return undefined;
  if (!raw.startsWith("@")) return [raw, ""];
  const path = raw.slice(1).trim();
  if (path === "") {
    r.problem("SCOPE_RULES", "expected inline JSON, or @ followed by the path of a JSON file");
    return undefined;
  }
  if (readFile === undefined) {
    r.problem("SCOPE_RULES", `expected inline JSON: files cannot be read here (${JSON.stringify(path)})`);
    return undefined;
  }
  try {
    return [readFile(path), ` in ${JSON.stringify(path)}`];
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    r.problem("SCOPE_RULES", `expected a readable JSON file at ${JSON.stringify(path)} (${why})`);
    return undefined;
  }
}

/** One rule, or what is wrong with it. */
function parseRule(v: unknown): ScopeRule | string {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "is not an object";
  const rule = v as Record<string, unknown>;
  const unknown = Object.keys(rule).filter((k) => !RuleKeys.has(k));
  if (unknown.length > 0) return `has unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(", ")}`;
  if (typeof rule.method !== "string" || rule.method === "") return 'needs "method", a non-empty string pattern';
  if (rule.name !== undefined && typeof rule.name !== "string") return '"name" must be a string pattern';
  const scopes = rule.scopes;
  if (!Array.isArray(scopes) || !scopes.every(isScopeToken)) {
    return 'needs "scopes", an array of scope tokens (no spaces, quotes or backslashes)';
  }
  return { method: rule.method, name: rule.name as string | undefined, scopes: [...new Set(scopes)] };
}

function readRules(r: EnvReader, readFile: ((path: string) => string) | undefined): ScopeRule[] | undefined {
  const source = rulesText(r, readFile);
  if (source === undefined) return r.get("SCOPE_RULES") ? [] : undefined;
  const [text, where] = source;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    r.problem("SCOPE_RULES", `expected a JSON array of rules such as ${RulesExample}${where}: ${(e as Error).message}`);
    return [];
  }
  if (!Array.isArray(parsed)) {
    r.problem("SCOPE_RULES", `expected a JSON array of rules such as ${RulesExample}${where}`);
    return [];
  }
  const rules: ScopeRule[] = [];
  let offline = false;
  parsed.forEach((v, i) => {
    const rule = parseRule(v);
    if (typeof rule === "string") {
      r.problem("SCOPE_RULES", `rule ${i + 1}${where} ${rule}`);
      return;
    }
    if (rule.name !== undefined && !namesTarget(compilePattern(rule.method))) {
      r.warn(
        `SCOPE_RULES rule ${i + 1} has "name" but no method it matches names a target ` +
          `(${[...NameParam.keys()].join(", ")}): it never applies`,
      );
    }
    offline ||= rule.scopes.includes(OfflineAccess);
    rules.push({ ...rule, scopes: rule.scopes.filter((s) => s !== OfflineAccess) });
  });
  if (offline) r.warn(offlineAccessWarning("SCOPE_RULES"));
  return rules;
}

function namesTarget(method: Matcher): boolean {
  for (const m of NameParam.keys()) if (method(m)) return true;
  return false;
}

function readImplies(r: EnvReader): Record<string, readonly string[]> {
  const raw = r.get("SCOPE_IMPLIES");
  if (raw === undefined || raw === "") return {};
  const expected = 'expected a JSON object from a scope to the scopes it implies, such as {"mcp:admin": ["mcp:read"]}';
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    r.problem("SCOPE_IMPLIES", `${expected}: ${(e as Error).message}`);
    return {};
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    r.problem("SCOPE_IMPLIES", expected);
    return {};
  }
  const implies: Record<string, readonly string[]> = {};
  let offline = false;
  for (const [broad, narrow] of Object.entries(parsed)) {
    if (!isScopeToken(broad) || !Array.isArray(narrow) || !narrow.every(isScopeToken)) {
      r.problem("SCOPE_IMPLIES", `${expected} (${JSON.stringify(broad)} is not a scope with an array of scopes)`);
      continue;
    }
    offline ||= broad === OfflineAccess || narrow.includes(OfflineAccess);
    if (broad !== OfflineAccess) implies[broad] = [...new Set(narrow.filter((s) => s !== OfflineAccess))];
  }
  if (offline) r.warn(offlineAccessWarning("SCOPE_IMPLIES"));
  return implies;
}

/**
 * Reads SCOPE_RULES (inline JSON or `@path`, read with `readFile`) and SCOPE_IMPLIES. Problems
 * go to `r`; offline_access is dropped everywhere with a warning.
 */
export function readScopePolicy(r: EnvReader, readFile?: (path: string) => string): ScopePolicy {
  const rules = readRules(r, readFile);
  const implies = readImplies(r);
  return Object.freeze({
    rules: rules && Object.freeze(rules.map((rule) => Object.freeze({ ...rule, scopes: Object.freeze(rule.scopes) }))),
    implies: Object.freeze(implies),
  });
}

/** Every scope the policy names, in order of first mention (rules, then SCOPE_IMPLIES). */
export function policyScopes(policy: ScopePolicy): string[] {
  const out = new Set<string>();
  for (const rule of policy.rules ?? []) for (const s of rule.scopes) out.add(s);
  for (const [broad, narrow] of Object.entries(policy.implies)) {
    out.add(broad);
    for (const s of narrow) out.add(s);
  }
  return [...out];
}

interface CompiledRule {
  method: Matcher;
  name: Matcher | undefined;
  scopes: readonly string[];
}

/** The rules compiled once; `match` finds the first rule for a message. */
export class RuleTable {
  readonly #rules: readonly CompiledRule[];

  constructor(rules: readonly ScopeRule[]) {
    this.#rules = rules.map((r) => ({
      method: compilePattern(r.method),
      name: r.name === undefined ? undefined : compilePattern(r.name),
      scopes: r.scopes,
    }));
  }

  /**
   * Index of the first rule matching a message, or -1. A response (no method) matches none;
   * a rule with `name` matches only a message that has a name.
   */
  match(method: string | undefined, name: string | undefined): number {
    if (method === undefined) return -1;
    const rules = this.#rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (!rule.method(method)) continue;
      if (rule.name !== undefined && (name === undefined || !rule.name(name))) continue;
      return i;
    }
    return -1;
  }

  /** The scopes of the first matching rule; none when no rule matches. */
  scopesFor(method: string | undefined, name: string | undefined): readonly string[] {
    const i = this.match(method, name);
    return i < 0 ? [] : this.#rules[i]!.scopes;
  }

  /** The union over messages (a batch) of each one's rule scopes, in message order, each once. */
  scopesForAll(messages: readonly { method: string | undefined; name: string | undefined }[]): readonly string[] {
    if (messages.length === 1) return this.scopesFor(messages[0]!.method, messages[0]!.name);
    const out = new Set<string>();
    for (const m of messages) for (const s of this.scopesFor(m.method, m.name)) out.add(s);
    return [...out];
  }
}
