import { assertEquals } from "@std/assert";
import { buildChallenge, type ChallengeInput, errorBody } from "../../src/auth/challenge.ts";

const PRM = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

Deno.test("buildChallenge() builds RFC 6750 / RFC 9728 Bearer challenges", async (t) => {
  const cases: { description: string; input: ChallengeInput; expected: string }[] = [
    {
      description: "bare, no scopes",
      input: { resourceMetadataUrl: PRM, scopes: [], error: "" },
      expected: `Bearer resource_metadata="${PRM}"`,
    },
    {
      description: "bare with scopes",
      input: { resourceMetadataUrl: PRM, scopes: ["mcp:read", "mcp:write"], error: "" },
      expected: `Bearer resource_metadata="${PRM}", scope="mcp:read mcp:write"`,
    },
    {
      description: "bare ignores a description",
      input: { resourceMetadataUrl: PRM, scopes: ["mcp"], error: "", description: "Authentication required" },
      expected: `Bearer resource_metadata="${PRM}", scope="mcp"`,
    },
    {
      description: "invalid_token with description",
      input: {
        resourceMetadataUrl: PRM,
        scopes: ["mcp"],
        error: "invalid_token",
        description: "The access token has expired",
      },
      expected:
        `Bearer resource_metadata="${PRM}", scope="mcp", error="invalid_token", error_description="The access token has expired"`,
    },
    {
      description: "invalid_token without scopes or description",
      input: { resourceMetadataUrl: PRM, scopes: [], error: "invalid_token" },
      expected: `Bearer resource_metadata="${PRM}", error="invalid_token"`,
    },
    {
      description: "empty description is left out",
      input: { resourceMetadataUrl: PRM, scopes: [], error: "invalid_token", description: "" },
      expected: `Bearer resource_metadata="${PRM}", error="invalid_token"`,
    },
    {
      description: "insufficient_scope",
      input: {
        resourceMetadataUrl: PRM,
        scopes: ["mcp:read", "mcp:admin"],
        error: "insufficient_scope",
        description: "The token lacks the required scope mcp:admin",
      },
      expected: `Bearer resource_metadata="${PRM}", scope="mcp:read mcp:admin", error="insufficient_scope", ` +
        `error_description="The token lacks the required scope mcp:admin"`,
    },
    {
      description: "invalid_request",
      input: { resourceMetadataUrl: PRM, scopes: [], error: "invalid_request", description: "Bad request" },
      expected: `Bearer resource_metadata="${PRM}", error="invalid_request", error_description="Bad request"`,
    },
    {
      description: "quotes and backslashes in values are escaped",
      input: { resourceMetadataUrl: 'https://x.example.com/a"b\\c', scopes: ['s"1', "s\\2"], error: "" },
      expected: 'Bearer resource_metadata="https://x.example.com/a\\"b\\\\c", scope="s\\"1 s\\\\2"',
    },
    {
      description: "description loses quotes, = and backslashes",
      input: {
        resourceMetadataUrl: PRM,
        scopes: [],
        error: "invalid_token",
        description: 'aud was "x", expected a=b\\c',
      },
      expected: `Bearer resource_metadata="${PRM}", error="invalid_token", error_description="aud was x, expected abc"`,
    },
    {
      description: "description loses control and non-ASCII characters",
      input: { resourceMetadataUrl: PRM, scopes: [], error: "invalid_token", description: "bad\r\ntöken\x00!" },
      expected: `Bearer resource_metadata="${PRM}", error="invalid_token", error_description="badtken!"`,
    },
    {
      description: "description is capped at 200 characters",
      input: { resourceMetadataUrl: PRM, scopes: [], error: "invalid_token", description: "x".repeat(500) },
      expected: `Bearer resource_metadata="${PRM}", error="invalid_token", error_description="${"x".repeat(200)}"`,
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      assertEquals(buildChallenge(input), expected);
    });
  }
});

Deno.test("buildChallenge() output never carries a raw quote or = inside error_description", () => {
  const nasty = 'x", error="injected", foo="=';
  const header = buildChallenge({ resourceMetadataUrl: PRM, scopes: [], error: "invalid_token", description: nasty });
  const desc = /error_description="([^"]*)"$/.exec(header)?.[1];
  assertEquals(desc, "x, errorinjected, foo", "the quoted value ends where it should");
  assertEquals(header.split("error=").length, 2, "exactly one error= parameter");
});

Deno.test("errorBody() returns the small JSON body of a 400/401/403", async (t) => {
  const cases: { description: string; input: [string, string]; expected: string }[] = [
    {
      description: "plain",
      input: ["invalid_token", "The access token has expired"],
      expected: '{"error":"invalid_token","error_description":"The access token has expired"}',
    },
    {
      description: "description sanitised like the header",
      input: ["invalid_token", 'aud was "x" = y\\z\n'],
      expected: '{"error":"invalid_token","error_description":"aud was x  yz"}',
    },
    {
      description: "empty description",
      input: ["unauthorized", ""],
      expected: '{"error":"unauthorized","error_description":""}',
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const body = errorBody(...input);
      assertEquals(body, expected);
      assertEquals(Object.keys(JSON.parse(body)), ["error", "error_description"]);
    });
  }
});
