import { assertEquals, assertStringIncludes } from "@std/assert";
import { EnvReader } from "../../src/env_reader.ts";
import { policyScopes, readScopePolicy, RuleTable, type ScopeRule } from "../../src/policy/rules.ts";

function read(env: Record<string, string>, readFile?: (path: string) => string) {
  const r = new EnvReader(env);
  const policy = readScopePolicy(r, readFile);
  return { policy, problems: r.problems, warnings: r.warnings };
}

const rule = (method: string, scopes: string[], name?: string): ScopeRule => ({ method, name, scopes });

Deno.test("RuleTable.match() applies the first matching rule", async (t) => {
  const table = new RuleTable([
    rule("tools/call", ["mcp:admin"], "delete_*"),
    rule("tools/call", [], "safe_*"),
    rule("tools/*", ["mcp:read"]),
    rule("resources/read", ["files:secret"], "file:///secret/*"),
    rule("resources/*", ["files:read"]),
    rule("notifications/*", ["mcp:notify"]),
  ]);
  const cases: { description: string; input: [string | undefined, string | undefined]; expected: number }[] = [
    { description: "named rule before a broad one", input: ["tools/call", "delete_user"], expected: 0 },
    { description: "an empty-scope exception", input: ["tools/call", "safe_echo"], expected: 1 },
    { description: "falls through to the broad rule", input: ["tools/call", "echo"], expected: 2 },
    { description: "a call without a name skips named rules", input: ["tools/call", undefined], expected: 2 },
    { description: "tools/list", input: ["tools/list", undefined], expected: 2 },
    { description: "a URI rule", input: ["resources/read", "file:///secret/key"], expected: 3 },
    { description: "a URI outside it", input: ["resources/read", "file:///public/a"], expected: 4 },
    { description: "a notification", input: ["notifications/cancelled", undefined], expected: 5 },
    { description: "no rule", input: ["ping", undefined], expected: -1 },
    { description: "a response matches nothing", input: [undefined, undefined], expected: -1 },
  ];
  for (const { description, input: [method, name], expected } of cases) {
    await t.step(description, () => assertEquals(table.match(method, name), expected));
  }
  assertEquals(table.scopesFor("tools/call", "delete_user"), ["mcp:admin"]);
  assertEquals(table.scopesFor("tools/call", "safe_x"), []);
  assertEquals(table.scopesFor("ping", undefined), []);
});

Deno.test("RuleTable.scopesForAll() is the union over a batch, in message order", () => {
  const table = new RuleTable([
    rule("tools/call", ["mcp:admin", "mcp:read"], "delete_*"),
    rule("tools/*", ["mcp:read"]),
    rule("prompts/*", ["mcp:prompts"]),
  ]);
  const m = (method: string | undefined, name?: string) => ({ method, name });
  assertEquals(table.scopesForAll([m("tools/list")]), ["mcp:read"]);
  assertEquals(table.scopesForAll([m("prompts/list"), m("tools/list"), m("tools/call", "delete_x")]), [
    "mcp:prompts",
    "mcp:read",
    "mcp:admin",
  ]);
  assertEquals(table.scopesForAll([m("ping"), m(undefined)]), []);
  assertEquals(table.scopesForAll([]), []);
});

Deno.test("RuleTable.match(): a catch-all first shadows everything after it", () => {
  const table = new RuleTable([rule("*", ["a"]), rule("tools/call", ["b"], "x")]);
  assertEquals(table.match("tools/call", "x"), 0);
  assertEquals(new RuleTable([]).match("tools/call", "x"), -1);
});

Deno.test("readScopePolicy() reads inline rules and SCOPE_IMPLIES", () => {
  const { policy, problems, warnings } = read({
    SCOPE_RULES: ' [{"method":"tools/call","name":"delete_*","scopes":["mcp:admin","mcp:admin"]},' +
      '{"method":"tools/*","scopes":["mcp:read"]}] ',
    SCOPE_IMPLIES: '{"mcp:admin":["mcp:write"],"mcp:write":["mcp:read"]}',
  });
  assertEquals(problems, []);
  assertEquals(warnings, []);
  assertEquals(policy, {
    rules: [
      { method: "tools/call", name: "delete_*", scopes: ["mcp:admin"] },
      { method: "tools/*", name: undefined, scopes: ["mcp:read"] },
    ],
    implies: { "mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"] },
  });
  assertEquals(policyScopes(policy), ["mcp:admin", "mcp:read", "mcp:write"]);
});

Deno.test("readScopePolicy(): unset means no rules at all; [] means rules that add nothing", () => {
  assertEquals(read({}).policy, { rules: undefined, implies: {} });
  assertEquals(read({ SCOPE_RULES: "", SCOPE_IMPLIES: "" }).policy, { rules: undefined, implies: {} });
  assertEquals(read({ SCOPE_RULES: "[]" }).policy, { rules: [], implies: {} });
});

Deno.test("readScopePolicy() reads SCOPE_RULES=@path with the given reader", () => {
  const seen: string[] = [];
  const { policy, problems } = read({ SCOPE_RULES: "@ /etc/mcp-gate/rules.json" }, (path) => {
    seen.push(path);
    return '[{"method":"tools/call","scopes":["mcp:tools"]}]';
  });
  assertEquals(seen, ["/etc/mcp-gate/rules.json"]);
  assertEquals(problems, []);
  assertEquals(policy.rules, [{ method: "tools/call", name: undefined, scopes: ["mcp:tools"] }]);
});

Deno.test("readScopePolicy() names SCOPE_RULES, the value and the path in every problem", async (t) => {
  const missing = (path: string): string => {
    throw new Error(`No such file or directory (os error 2): readfile '${path}'`);
  };
  const cases: {
    description: string;
    env: Record<string, string>;
    readFile?: (path: string) => string;
    expected: string[];
  }[] = [
    {
      description: "not JSON",
      env: { SCOPE_RULES: "[{method: tools/call}]" },
      expected: ["expected a JSON array of rules such as"],
    },
    {
      description: "not an array",
      env: { SCOPE_RULES: '{"method":"tools/call","scopes":[]}' },
      expected: ["expected a JSON array of rules such as"],
    },
    {
      description: "a rule not an object",
      env: { SCOPE_RULES: '["tools/call"]' },
      expected: ["rule 1 is not an object"],
    },
    {
      description: "missing method",
      env: { SCOPE_RULES: '[{"scopes":["a"]}]' },
      expected: ['rule 1 needs "method", a non-empty string pattern'],
    },
    {
      description: "empty method",
      env: { SCOPE_RULES: '[{"method":"","scopes":["a"]}]' },
      expected: ['rule 1 needs "method", a non-empty string pattern'],
    },
    {
      description: "name not a string",
      env: { SCOPE_RULES: '[{"method":"tools/call","name":3,"scopes":["a"]}]' },
      expected: ['rule 1 "name" must be a string pattern'],
    },
    {
      description: "scopes missing",
      env: { SCOPE_RULES: '[{"method":"tools/call"}]' },
      expected: ['rule 1 needs "scopes", an array of scope tokens'],
    },
    {
      description: "scopes a string",
      env: { SCOPE_RULES: '[{"method":"tools/call","scopes":"mcp:admin"}]' },
      expected: ['rule 1 needs "scopes", an array of scope tokens'],
    },
    {
      description: "a scope with a space",
      env: { SCOPE_RULES: '[{"method":"tools/call","scopes":["mcp:read mcp:write"]}]' },
      expected: ['rule 1 needs "scopes", an array of scope tokens'],
    },
    {
      description: "a misspelt key",
      env: { SCOPE_RULES: '[{"method":"tools/call","scope":["a"]}]' },
      expected: ['rule 1 has unknown key(s) "scope"'],
    },
    {
      description: "every bad rule reported",
      env: { SCOPE_RULES: '[{"method":"a","scopes":[]},1,{"method":"b"}]' },
      expected: ["rule 2 is not an object", 'rule 3 needs "scopes"'],
    },
    {
      description: "@ without a path",
      env: { SCOPE_RULES: "@" },
      expected: ["expected inline JSON, or @ followed by the path of a JSON file"],
    },
    {
      description: "an unreadable file",
      env: { SCOPE_RULES: "@/nope/rules.json" },
      readFile: missing,
      expected: ['expected a readable JSON file at "/nope/rules.json" (No such file or directory'],
    },
    {
      description: "bad JSON in the file",
      env: { SCOPE_RULES: "@rules.json" },
      readFile: () => "[{,}]",
      expected: [
        'expected a JSON array of rules such as [{"method": "tools/call", "name": "delete_*", "scopes": ["mcp:admin"]}] in "rules.json": ',
      ],
    },
    {
      description: "a bad rule in the file",
      env: { SCOPE_RULES: "@rules.json" },
      readFile: () => '[{"method":"x"}]',
      expected: ['rule 1 in "rules.json" needs "scopes"'],
    },
    {
      description: "no file reader",
      env: { SCOPE_RULES: "@rules.json" },
      expected: ['expected inline JSON: files cannot be read here ("rules.json")'],
    },
  ];
  for (const { description, env, readFile, expected } of cases) {
    await t.step(description, () => {
      const { problems } = read(env, readFile);
      assertEquals(problems.length, expected.length, JSON.stringify(problems));
      problems.forEach((p, i) => {
        assertEquals(p.variable, "SCOPE_RULES");
        assertEquals(p.value, env.SCOPE_RULES);
        assertStringIncludes(p.expected, expected[i]!);
      });
    });
  }
});

Deno.test("readScopePolicy() checks SCOPE_IMPLIES", async (t) => {
  const cases: { description: string; value: string; expected: string }[] = [
    { description: "not JSON", value: "mcp:admin=mcp:read", expected: "expected a JSON object from a scope" },
    { description: "an array", value: '[["mcp:admin","mcp:read"]]', expected: "expected a JSON object from a scope" },
    { description: "a string value", value: '{"mcp:admin":"mcp:read"}', expected: '("mcp:admin" is not a scope' },
    { description: "a bad scope", value: '{"mcp:admin":["a b"]}', expected: '("mcp:admin" is not a scope' },
    { description: "a bad key", value: '{"a\\"b":["x"]}', expected: "is not a scope with an array of scopes" },
  ];
  for (const { description, value, expected } of cases) {
    await t.step(description, () => {
      const { problems } = read({ SCOPE_IMPLIES: value });
      assertEquals(problems.length, 1);
      assertEquals(problems[0]!.variable, "SCOPE_IMPLIES");
      assertEquals(problems[0]!.value, value);
      assertStringIncludes(problems[0]!.expected, expected);
    });
  }
});

Deno.test("readScopePolicy() drops offline_access from rules and SCOPE_IMPLIES, with a warning", () => {
  const { policy, problems, warnings } = read({
    SCOPE_RULES: '[{"method":"tools/call","scopes":["offline_access","mcp:tools"]},' +
      '{"method":"ping","scopes":["offline_access"]}]',
    SCOPE_IMPLIES: '{"offline_access":["mcp:read"],"mcp:admin":["offline_access","mcp:read"]}',
  });
  assertEquals(problems, []);
  assertEquals(policy.rules, [
    { method: "tools/call", name: undefined, scopes: ["mcp:tools"] },
    { method: "ping", name: undefined, scopes: [] },
  ]);
  assertEquals(policy.implies, { "mcp:admin": ["mcp:read"] });
  assertEquals(warnings.length, 2);
  assertStringIncludes(warnings[0]!, "SCOPE_RULES names offline_access: dropped");
  assertStringIncludes(warnings[1]!, "SCOPE_IMPLIES names offline_access: dropped");
  assertEquals(policyScopes(policy).includes("offline_access"), false);
});

Deno.test("readScopePolicy() warns about a named rule whose method never has a name", () => {
  const { problems, warnings } = read({
    SCOPE_RULES: '[{"method":"tools/list","name":"x","scopes":["a"]},{"method":"tools/*","name":"y","scopes":["a"]}]',
  });
  assertEquals(problems, []);
  assertEquals(warnings, [
    'SCOPE_RULES rule 1 has "name" but no method it matches names a target ' +
    "(tools/call, prompts/get, resources/read, resources/subscribe, resources/unsubscribe): it never applies",
  ]);
});
