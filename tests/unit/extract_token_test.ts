import { assertEquals, assertThrows } from "@std/assert";
import { extractToken, hasAccessTokenParam } from "../../src/auth/extract_token.ts";
import { AuthError } from "../../src/errors.ts";

type Expected =
  | { token: string }
  | { code: AuthError["code"]; status: AuthError["status"]; bearerError: AuthError["bearerError"] };

const missing = { code: "missing_token", status: 401, bearerError: "" } as const;
const malformed = { code: "malformed", status: 401, bearerError: "invalid_token" } as const;
const multiple = { code: "multiple_credentials", status: 400, bearerError: "invalid_request" } as const;
const inQuery = { code: "token_in_query", status: 400, bearerError: "invalid_request" } as const;

Deno.test("extractToken() follows RFC 6750 §2.1 and refuses the query method", async (t) => {
  const cases: { description: string; input: { authorization: string | null; search: string }; expected: Expected }[] =
    [
      { description: "no header", input: { authorization: null, search: "" }, expected: missing },
      { description: "empty header", input: { authorization: "", search: "" }, expected: missing },
      { description: "blank header", input: { authorization: "   ", search: "" }, expected: missing },
      { description: "Basic scheme", input: { authorization: "Basic dXNlcjpwYXNz", search: "" }, expected: missing },
      { description: "Digest scheme", input: { authorization: 'Digest username="a"', search: "" }, expected: missing },
      {
        description: "Bearer",
        input: { authorization: "Bearer abc.def.ghi", search: "" },
        expected: { token: "abc.def.ghi" },
      },
      {
        description: "bearer lower case",
        input: { authorization: "bearer abc", search: "" },
        expected: { token: "abc" },
      },
      {
        description: "BEARER upper case",
        input: { authorization: "BEARER abc", search: "" },
        expected: { token: "abc" },
      },
      {
        description: "bEaReR mixed case",
        input: { authorization: "bEaReR abc", search: "" },
        expected: { token: "abc" },
      },
      {
        description: "several spaces",
        input: { authorization: "Bearer    abc", search: "" },
        expected: { token: "abc" },
      },
      {
        description: "trailing space",
        input: { authorization: "Bearer abc  ", search: "" },
        expected: { token: "abc" },
      },
      {
        description: "token68 with = padding",
        input: { authorization: "Bearer dGVzdA==", search: "" },
        expected: { token: "dGVzdA==" },
      },
      {
        description: "every token68 character",
        input: { authorization: "Bearer aZ09-._~+/=", search: "" },
        expected: { token: "aZ09-._~+/=" },
      },
      { description: "Bearer without token", input: { authorization: "Bearer", search: "" }, expected: malformed },
      { description: "Bearer and spaces only", input: { authorization: "Bearer   ", search: "" }, expected: malformed },
      { description: "= inside the token", input: { authorization: "Bearer ab=cd", search: "" }, expected: malformed },
      { description: "quote in the token", input: { authorization: 'Bearer "abc"', search: "" }, expected: malformed },
      { description: "$ in the token", input: { authorization: "Bearer abc$", search: "" }, expected: malformed },
      {
        description: "space inside the token",
        input: { authorization: "Bearer abc def", search: "" },
        expected: malformed,
      },
      { description: "tab as separator", input: { authorization: "Bearer\tabc", search: "" }, expected: malformed },
      { description: "non-ASCII token", input: { authorization: "Bearer tökén", search: "" }, expected: malformed },
      {
        description: "two Bearer credentials joined by a comma",
        input: { authorization: "Bearer abc, Bearer def", search: "" },
        expected: multiple,
      },
      {
        description: "Bearer and Basic joined by a comma",
        input: { authorization: "Bearer abc, Basic dXNlcjpwYXNz", search: "" },
        expected: multiple,
      },
      {
        description: "Basic then Bearer joined by a comma",
        input: { authorization: "Basic dXNlcjpwYXNz, Bearer abc", search: "" },
        expected: multiple,
      },
      {
        description: "access_token in query",
        input: { authorization: null, search: "?access_token=abc" },
        expected: inQuery,
      },
      {
        description: "access_token in query even with a valid header",
        input: { authorization: "Bearer abc", search: "?access_token=abc" },
        expected: inQuery,
      },
      {
        description: "empty access_token in query",
        input: { authorization: "Bearer abc", search: "?a=1&access_token=" },
        expected: inQuery,
      },
      {
        description: "access_token without a value",
        input: { authorization: "Bearer abc", search: "?access_token" },
        expected: inQuery,
      },
      {
        description: "percent-encoded access_token name",
        input: { authorization: "Bearer abc", search: "?access%5Ftoken=abc" },
        expected: inQuery,
      },
      {
        description: "similar parameter names are fine",
        input: { authorization: "Bearer abc", search: "?access_tokens=1&my_access_token=2" },
        expected: { token: "abc" },
      },
      {
        description: "access_token as a value is fine",
        input: { authorization: "Bearer abc", search: "?q=access_token" },
        expected: { token: "abc" },
      },
    ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      if ("token" in expected) {
        assertEquals(extractToken(input.authorization, input.search), expected.token);
        return;
      }
      const e = assertThrows(() => extractToken(input.authorization, input.search), AuthError);
      assertEquals({ code: e.code, status: e.status, bearerError: e.bearerError }, expected);
    });
  }
});

Deno.test("extractToken() never puts the token in the error", () => {
  const token = "secret-token-value";
  for (const [authorization, search] of [[`Bearer ${token}$`, ""], [`Bearer ${token}`, `?access_token=${token}`]]) {
    const e = assertThrows(() => extractToken(authorization!, search!), AuthError);
    assertEquals(e.message.includes(token) || e.description.includes(token) || (e.hint ?? "").includes(token), false);
  }
});

Deno.test("hasAccessTokenParam() looks for the parameter name only", async (t) => {
  const cases: { description: string; input: string; expected: boolean }[] = [
    { description: "empty", input: "", expected: false },
    { description: "first", input: "?access_token=x", expected: true },
    { description: "later", input: "?a=1&access_token=x", expected: true },
    { description: "no question mark", input: "access_token=x", expected: true },
    { description: "in a value", input: "?q=access_token", expected: false },
    { description: "longer name", input: "?access_token2=x", expected: false },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(hasAccessTokenParam(input), expected));
  }
});
