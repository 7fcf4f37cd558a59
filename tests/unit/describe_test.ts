import { assertEquals, assertStringIncludes } from "@std/assert";
import { runCheck } from "../../src/check.ts";
import { describeScopePolicy } from "../../src/policy/describe.ts";

const PRM = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

Deno.test("describeScopePolicy() lists the rules in order with the scopes each needs and its challenge", () => {
  const lines = describeScopePolicy({
    requiredScopes: ["mcp:read"],
    scopeRules: [
      { method: "tools/call", name: "delete_*", scopes: ["mcp:admin"] },
      { method: "tools/call", name: "safe_*", scopes: [] },
      { method: "tools/*", name: undefined, scopes: ["mcp:read", "mcp:tools"] },
    ],
    scopeImplies: { "mcp:admin": ["mcp:tools"], "mcp:tools": ["mcp:read"] },
  }, (needed) => `<challenge ${needed.join(",")}>`);
  assertEquals(lines, [
    "3 rules, first match wins; every request also needs REQUIRED_SCOPES (mcp:read).",
    '1. method "tools/call" with name/uri "delete_*" → needs mcp:read mcp:admin',
    "   403 without it: WWW-Authenticate: <challenge mcp:read,mcp:admin>",
    '2. method "tools/call" with name/uri "safe_*" → needs mcp:read (no extra scope: later rules are skipped)',
    "   403 without it: WWW-Authenticate: <challenge mcp:read>",
    '3. method "tools/*" → needs mcp:read mcp:tools',
    "   403 without it: WWW-Authenticate: <challenge mcp:read,mcp:tools>",
    "Any other message → needs mcp:read.",
    "Scope hierarchy (SCOPE_IMPLIES, transitive): a token holding the scope on the left holds those after it.",
    "mcp:admin → mcp:read mcp:tools",
    "mcp:tools → mcp:read",
  ]);
});

Deno.test("describeScopePolicy() without rules or REQUIRED_SCOPES", () => {
  assertEquals(
    describeScopePolicy({ requiredScopes: [], scopeRules: undefined, scopeImplies: { a: ["b"] } }, () => ""),
    [
      "SCOPE_RULES is unset: no body is read; every request needs REQUIRED_SCOPES only.",
      "Scope hierarchy (SCOPE_IMPLIES, transitive): a token holding the scope on the left holds those after it.",
      "a → b",
    ],
  );
  assertEquals(
    describeScopePolicy({
      requiredScopes: [],
      scopeRules: [{ method: "ping", name: undefined, scopes: [] }],
      scopeImplies: {},
    }, () => "x"),
    [
      "1 rule, first match wins; every request also needs REQUIRED_SCOPES (none).",
      '1. method "ping" → needs nothing more (no extra scope: later rules are skipped)',
      "Any other message → needs nothing more.",
    ],
  );
});

Deno.test("runCheck() prints the rule table with the exact 403 challenge of each rule", async () => {
  const lines: string[] = [];
  const env = {
    UPSTREAM_URL: "http://upstream.test:3000",
    RESOURCE_URI: "https://mcp.example.com/mcp",
    AUTHORIZATION_SERVER: "https://auth.example.com",
    REQUIRED_SCOPES: "mcp:read",
    SCOPE_RULES: "@rules.json",
  };
  const unreachable = () => Promise.reject(new TypeError("error sending request: connection refused"));
  await runCheck(env, {
    fetch: unreachable as typeof fetch,
    print: (l) => lines.push(l),
    readTextFile: (path) => {
      assertEquals(path, "rules.json");
      return '[{"method":"tools/call","name":"delete_*","scopes":["mcp:admin"]}]';
    },
  });
  const output = lines.join("\n");
  assertStringIncludes(output, "Per-tool authorization (SCOPE_RULES, SCOPE_IMPLIES) as understood");
  assertStringIncludes(output, '    1. method "tools/call" with name/uri "delete_*" → needs mcp:read mcp:admin');
  assertStringIncludes(
    output,
    `    403 without it: WWW-Authenticate: Bearer realm="mcp.example.com", resource_metadata="${PRM}", ` +
      'scope="mcp:read mcp:admin", error="insufficient_scope", ' +
      'error_description="The token lacks the required scope mcp:read mcp:admin"',
  );
});
