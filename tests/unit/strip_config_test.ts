import { assertEquals } from "@std/assert";
import { EnvReader } from "../../src/env_reader.ts";
import { readStripRequestHeaders } from "../../src/proxy/strip_config.ts";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";

Deno.test("readStripRequestHeaders() reads names and Prefix-* patterns", async (t) => {
  const cases: { description: string; input: string | undefined; expected: string[] }[] = [
    { description: "unset", input: undefined, expected: [] },
    { description: "empty", input: "", expected: [] },
    {
      description: "names, lower-cased",
      input: "X-Tenant, X-Internal-Role",
      expected: ["x-tenant", "x-internal-role"],
    },
    { description: "a prefix pattern", input: "X-Corp-*", expected: ["x-corp-*"] },
    { description: "repeats once, empty items dropped", input: "x-a,,X-A, x-b*", expected: ["x-a", "x-b*"] },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const r = new EnvReader({ STRIP_REQUEST_HEADERS: input });
      assertEquals(readStripRequestHeaders(r), expected);
      assertEquals(r.problems, []);
    });
  }
});

Deno.test("readStripRequestHeaders() reports what is not a header name or pattern", async (t) => {
  const cases: { description: string; input: string; expected: { bad: string; kept: string[] } }[] = [
    { description: "a space inside", input: "X Tenant, x-ok", expected: { bad: '"X Tenant"', kept: ["x-ok"] } },
    { description: "a lone *", input: "*", expected: { bad: '"*"', kept: [] } },
    { description: "* not at the end", input: "x-*-id", expected: { bad: '"x-*-id"', kept: [] } },
    { description: "a colon", input: "x-a:b", expected: { bad: '"x-a:b"', kept: [] } },
    { description: "non-ASCII", input: "x-über", expected: { bad: '"x-über"', kept: [] } },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const r = new EnvReader({ STRIP_REQUEST_HEADERS: input });
      assertEquals(readStripRequestHeaders(r), expected.kept);
      assertEquals(r.problems.length, 1);
      assertEquals(r.problems[0]!.variable, "STRIP_REQUEST_HEADERS");
      assertEquals(r.problems[0]!.value, input);
      assertEquals(r.problems[0]!.expected.endsWith(`not one: ${expected.bad}`), true, r.problems[0]!.expected);
    });
  }
});

Deno.test("loadConfig() carries STRIP_REQUEST_HEADERS and names it when bad", () => {
  const base = {
    UPSTREAM_URL: "http://127.0.0.1:8000",
    RESOURCE_URI: "https://mcp.example.com/mcp",
    AUTHORIZATION_SERVER: "https://auth.example.com",
  };
  assertEquals(loadConfig(base).stripRequestHeaders, []);
  assertEquals(loadConfig({ ...base, STRIP_REQUEST_HEADERS: "X-Tenant,X-Corp-*" }).stripRequestHeaders, [
    "x-tenant",
    "x-corp-*",
  ]);
  try {
    loadConfig({ ...base, STRIP_REQUEST_HEADERS: "bad header" });
    throw new Error("no ConfigError");
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    assertEquals(e.problems.map((p) => [p.variable, p.value]), [["STRIP_REQUEST_HEADERS", "bad header"]]);
  }
});
