import { assertEquals } from "@std/assert";
import { impliedByLookup, missingScopes, tokenScopes, unionInOrder } from "../../src/auth/scope.ts";

Deno.test("tokenScopes() reads scope (string) or scp (array or string)", async (t) => {
  const cases: { description: string; input: Record<string, unknown>; expected: string[] }[] = [
    { description: "no claim", input: {}, expected: [] },
    { description: "scope string", input: { scope: "mcp:read mcp:write" }, expected: ["mcp:read", "mcp:write"] },
    { description: "scope with extra spaces", input: { scope: "  a   b " }, expected: ["a", "b"] },
    { description: "empty scope", input: { scope: "" }, expected: [] },
    { description: "scp array (Okta)", input: { scp: ["mcp:read", "mcp:write"] }, expected: ["mcp:read", "mcp:write"] },
    {
      description: "scp string (Entra)",
      input: { scp: "Files.Read User.Read" },
      expected: ["Files.Read", "User.Read"],
    },
    { description: "scp array with junk", input: { scp: ["a", 1, null, "", "b"] }, expected: ["a", "b"] },
    { description: "scope wins over scp", input: { scope: "a", scp: ["b"] }, expected: ["a"] },
    { description: "scope of the wrong type", input: { scope: 42 }, expected: [] },
    { description: "scope as an object", input: { scope: { a: true } }, expected: [] },
    { description: "scopes (plural) is not read", input: { scopes: "a b" }, expected: [] },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(tokenScopes(input), expected));
  }
});

Deno.test("missingScopes() lists the required scopes a token lacks", async (t) => {
  const cases: { description: string; input: [string[], string[]]; expected: string[] }[] = [
    { description: "nothing required", input: [[], []], expected: [] },
    { description: "nothing required, some held", input: [["a"], []], expected: [] },
    { description: "all held", input: [["a", "b", "c"], ["a", "b"]], expected: [] },
    { description: "one missing", input: [["a"], ["a", "b"]], expected: ["b"] },
    { description: "all missing, in required order", input: [[], ["b", "a"]], expected: ["b", "a"] },
    { description: "case-sensitive", input: [["MCP:READ"], ["mcp:read"]], expected: ["mcp:read"] },
    { description: "no prefix matching", input: [["mcp"], ["mcp:read"]], expected: ["mcp:read"] },
  ];
  for (const { description, input: [have, required], expected } of cases) {
    await t.step(description, () => assertEquals(missingScopes(have, required), expected));
  }
});

Deno.test("impliedByLookup() is the transitive closure of SCOPE_IMPLIES, inverted", async (t) => {
  const sorted = (m: ReadonlyMap<string, readonly string[]>) =>
    Object.fromEntries([...m].map(([k, v]) => [k, [...v].sort()]).sort(([a], [b]) => (a! < b! ? -1 : 1)));
  const cases: { description: string; input: Record<string, string[]>; expected: Record<string, string[]> }[] = [
    { description: "nothing", input: {}, expected: {} },
    { description: "one step", input: { admin: ["read"] }, expected: { read: ["admin"] } },
    {
      description: "a chain",
      input: { admin: ["write"], write: ["read"] },
      expected: { read: ["admin", "write"], write: ["admin"] },
    },
    {
      description: "a diamond",
      input: { root: ["a", "b"], a: ["leaf"], b: ["leaf"] },
      expected: { a: ["root"], b: ["root"], leaf: ["a", "b", "root"] },
    },
    {
      description: "a cycle: each implies the others",
      input: { a: ["b"], b: ["c"], c: ["a"] },
      expected: { a: ["b", "c"], b: ["a", "c"], c: ["a", "b"] },
    },
    { description: "a scope implying itself", input: { a: ["a"] }, expected: {} },
    { description: "an empty list", input: { a: [] }, expected: {} },
    {
      description: "a long chain",
      input: { s0: ["s1"], s1: ["s2"], s2: ["s3"], s3: ["s4"] },
      expected: { s1: ["s0"], s2: ["s0", "s1"], s3: ["s0", "s1", "s2"], s4: ["s0", "s1", "s2", "s3"] },
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(sorted(impliedByLookup(input)), expected));
  }
});

Deno.test("missingScopes() counts a scope as held when a held scope implies it", async (t) => {
  const implies = impliedByLookup({
    "mcp:admin": ["mcp:write"],
    "mcp:write": ["mcp:read"],
    "x:a": ["x:b"],
    "x:b": ["x:a"],
  });
  const cases: { description: string; input: [string[], string[]]; expected: string[] }[] = [
    { description: "admin holds read through write", input: [["mcp:admin"], ["mcp:read"]], expected: [] },
    { description: "write holds read", input: [["mcp:write"], ["mcp:read", "mcp:write"]], expected: [] },
    {
      description: "read does not hold write",
      input: [["mcp:read"], ["mcp:read", "mcp:write"]],
      expected: ["mcp:write"],
    },
    { description: "nothing implies admin", input: [["mcp:write"], ["mcp:admin"]], expected: ["mcp:admin"] },
    { description: "a cycle holds both ways", input: [["x:b"], ["x:a", "x:b"]], expected: [] },
    { description: "unrelated scopes", input: [["other"], ["mcp:read"]], expected: ["mcp:read"] },
    { description: "no implication is not prefix matching", input: [["mcp"], ["mcp:read"]], expected: ["mcp:read"] },
  ];
  for (const { description, input: [have, needed], expected } of cases) {
    await t.step(description, () => assertEquals(missingScopes(have, needed, implies), expected));
  }
});

Deno.test("unionInOrder() keeps the first list's order, then new scopes from the second", async (t) => {
  const cases: { description: string; input: [string[], string[]]; expected: string[] }[] = [
    { description: "nothing to add", input: [["a"], []], expected: ["a"] },
    { description: "required first", input: [["a", "b"], ["c", "a"]], expected: ["a", "b", "c"] },
    { description: "batch union, no duplicates", input: [[], ["x", "y", "x", "z", "y"]], expected: ["x", "y", "z"] },
    { description: "duplicates in the first list", input: [["a", "a"], ["b"]], expected: ["a", "b"] },
  ];
  for (const { description, input: [a, b], expected } of cases) {
    await t.step(description, () => assertEquals(unionInOrder(a, b), expected));
  }
});
