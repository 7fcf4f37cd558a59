import { assertEquals } from "@std/assert";
import { missingScopes, tokenScopes } from "../../src/auth/scope.ts";

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
