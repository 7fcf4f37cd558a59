import { assertEquals } from "@std/assert";
import { decodeHeaderValue } from "../../src/policy/header_value.ts";

function b64(text: string): string {
  let s = "";
  for (const b of new TextEncoder().encode(text)) s += String.fromCharCode(b);
  return btoa(s);
}

Deno.test("decodeHeaderValue() decodes =?base64?…?= as UTF-8 and leaves other values alone", async (t) => {
  const cases: { description: string; input: string; expected: string | undefined }[] = [
    { description: "plain value", input: "tools/call", expected: "tools/call" },
    { description: "empty value", input: "", expected: "" },
    { description: "non-ASCII text", input: `=?base64?${b64("Hello, 世界")}?=`, expected: "Hello, 世界" },
    { description: "spec example", input: "=?base64?SGVsbG8sIOS4lueVjA==?=", expected: "Hello, 世界" },
    { description: "leading and trailing spaces", input: "=?base64?IHBhZGRlZCA=?=", expected: " padded " },
    { description: "line break", input: `=?base64?${b64("line1\nline2")}?=`, expected: "line1\nline2" },
    { description: "one padding character", input: `=?base64?${b64("ab")}?=`, expected: "ab" },
    { description: "no padding needed", input: `=?base64?${b64("abc")}?=`, expected: "abc" },
    { description: "empty payload", input: "=?base64??=", expected: "" },
    {
      description: "a value that itself looks encoded",
      input: `=?base64?${b64("=?base64?x?=")}?=`,
      expected: "=?base64?x?=",
    },
    { description: "prefix only: taken as is", input: "=?base64?abc", expected: "=?base64?abc" },
    { description: "suffix only: taken as is", input: "abc?=", expected: "abc?=" },
    { description: "too short to hold both: taken as is", input: "=?base64?=", expected: "=?base64?=" },
    { description: "prefix is case-sensitive", input: `=?BASE64?${b64("x")}?=`, expected: `=?BASE64?${b64("x")}?=` },
    { description: "missing padding", input: "=?base64?YWI?=", expected: undefined },
    { description: "base64url alphabet", input: "=?base64?_-8?=", expected: undefined },
    { description: "not base64", input: "=?base64?%%%?=", expected: undefined },
    { description: "whitespace inside", input: "=?base64?YW Jj?=", expected: undefined },
    { description: "invalid UTF-8", input: `=?base64?${btoa("\xff\xfe")}?=`, expected: undefined },
    { description: "lone surrogate bytes", input: `=?base64?${btoa("\xed\xa0\x80")}?=`, expected: undefined },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(decodeHeaderValue(input), expected));
  }
});
