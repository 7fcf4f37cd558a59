import { assertEquals } from "@std/assert";
import { compilePattern } from "../../src/policy/pattern.ts";

Deno.test("compilePattern() matches exact strings and * as any run of characters", async (t) => {
  const cases: { description: string; pattern: string; input: string; expected: boolean }[] = [
    { description: "exact", pattern: "tools/list", input: "tools/list", expected: true },
    { description: "exact, other text", pattern: "tools/list", input: "tools/call", expected: false },
    { description: "exact is not a prefix match", pattern: "tools", input: "tools/list", expected: false },
    { description: "exact is case-sensitive", pattern: "tools/list", input: "Tools/List", expected: false },
    { description: "empty pattern matches the empty string", pattern: "", input: "", expected: true },
    { description: "empty pattern matches nothing else", pattern: "", input: "a", expected: false },
    { description: "lone star matches anything", pattern: "*", input: "resources/templates/list", expected: true },
    { description: "lone star matches the empty string", pattern: "*", input: "", expected: true },
    { description: "trailing star crosses /", pattern: "tools/*", input: "tools/call", expected: true },
    { description: "trailing star, empty run", pattern: "tools/*", input: "tools/", expected: true },
    { description: "trailing star, prefix missing", pattern: "tools/*", input: "tools", expected: false },
    { description: "star spans several /", pattern: "resources/*", input: "resources/templates/list", expected: true },
    { description: "leading star", pattern: "*_admin", input: "delete_admin", expected: true },
    { description: "leading star, suffix missing", pattern: "*_admin", input: "admin", expected: false },
    { description: "inner star", pattern: "delete_*_now", input: "delete_all_now", expected: true },
    { description: "inner star, empty run", pattern: "delete_*_now", input: "delete__now", expected: true },
    { description: "prefix and suffix may not overlap", pattern: "ab*ba", input: "aba", expected: false },
    { description: "prefix and suffix back to back", pattern: "ab*ba", input: "abba", expected: true },
    { description: "two stars", pattern: "*delete*", input: "bulk_delete_users", expected: true },
    { description: "two stars, missing middle", pattern: "*delete*", input: "bulk_remove", expected: false },
    { description: "middle parts in order", pattern: "a*b*c", input: "axbyc", expected: true },
    { description: "middle parts out of order", pattern: "a*c*b", input: "axbyc", expected: false },
    { description: "middle part must not eat the suffix", pattern: "a*b*b", input: "ab", expected: false },
    { description: "middle part before suffix", pattern: "a*b*b", input: "abb", expected: true },
    { description: "repeated middle part, leftmost wins", pattern: "*x*x*", input: "x_x", expected: true },
    { description: "consecutive stars", pattern: "a**b", input: "ab", expected: true },
    { description: "star matches line breaks", pattern: "file:///*", input: "file:///a\nb", expected: true },
    { description: "URI with query", pattern: "db://prod/*", input: "db://prod/users?limit=5", expected: true },
    { description: "URI of another host", pattern: "db://prod/*", input: "db://staging/users", expected: false },
    { description: "regex characters are literal", pattern: "a.b(c)+?", input: "a.b(c)+?", expected: true },
    { description: "regex characters are not special", pattern: "a.b", input: "axb", expected: false },
    { description: "non-ASCII", pattern: "héllo_*", input: "héllo_wörld", expected: true },
    { description: "a literal star is matched by *", pattern: "a*", input: "a*", expected: true },
  ];
  for (const { description, pattern, input, expected } of cases) {
    await t.step(`${description}: ${JSON.stringify(pattern)} ~ ${JSON.stringify(input)}`, () => {
      assertEquals(compilePattern(pattern)(input), expected);
    });
  }
});

Deno.test("compilePattern() agrees with an anchored regular expression on generated inputs", () => {
  const alphabet = ["a", "b", "/", "*"];
  const words = (n: number): string[] => n === 0 ? [""] : words(n - 1).flatMap((w) => alphabet.map((c) => w + c));
  const inputs = [0, 1, 2, 3, 4].flatMap(words).filter((w) => !w.includes("*"));
  for (const pattern of [0, 1, 2, 3, 4].flatMap(words)) {
    const re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[/]/g, "\\/")).join(".*")}$`, "s");
    const m = compilePattern(pattern);
    for (const input of inputs) assertEquals(m(input), re.test(input), `${pattern} ~ ${input}`);
  }
});
