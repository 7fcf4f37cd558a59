// Fuzz: the WWW-Authenticate builder's quoting and escaping. Whatever goes in (resource
// metadata URL, scopes with quotes and backslashes, any error description), what comes
// out is one sendable header value that a strict RFC 9110 parser (tests/_helpers/http.ts)
// reads back as exactly one Bearer challenge with the same values; error_description
// keeps only characters RFC 6750 allows (no `"`, `\` or `=`), at most 200 of them.
// And through the whole gateway: every challenge it sends parses.
import fc from "fast-check";
import { assert, assertEquals } from "@std/assert";
import { buildChallenge } from "../../src/auth/challenge.ts";
import { parseChallenges } from "../_helpers/http.ts";
import { FUZZ_RUNS, FUZZ_SEED, fuzzGateway, ORIGIN, params } from "./_harness.ts";

const RFC6750_DESCRIPTION = /^[\x20\x21\x23-\x3C\x3E-\x5B\x5D-\x7E]*$/;

Deno.test(`fuzz: buildChallenge() escapes and quotes (seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs)`, () => {
  const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });
  fc.assert(
    fc.property(
      fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), printable),
      fc.array(printable.filter((s) => s !== ""), { maxLength: 4 }),
      fc.constantFrom("", "invalid_token", "insufficient_scope", "invalid_request"),
      fc.oneof(fc.string({ unit: "grapheme", maxLength: 300 }), fc.string({ unit: "binary", maxLength: 300 })),
      (url, scopes, error, description) => {
        const value = buildChallenge({
          resourceMetadataUrl: url,
          scopes,
          error: error as "" | "invalid_token",
          description,
        });
        new Headers([["www-authenticate", value]]); // throws if not sendable
        const parsed = parseChallenges(value);
        assertEquals(parsed.length, 1, value);
        const { scheme, params: p } = parsed[0]!;
        assertEquals(scheme, "Bearer");
        assertEquals(p.resource_metadata, url);
        if (scopes.length > 0) assertEquals(p.scope, scopes.join(" "));
        else assertEquals(p.scope, undefined);
        if (error === "") {
          assertEquals([p.error, p.error_description], [undefined, undefined], "no error= without a token");
        } else {
          assertEquals(p.error, error);
          if (p.error_description !== undefined) {
            assert(RFC6750_DESCRIPTION.test(p.error_description), `error_description ${p.error_description}`);
            assert(p.error_description.length <= 200);
          }
        }
      },
    ),
    params(),
  );
});

Deno.test(`fuzz: every challenge the gateway sends parses (seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs)`, async () => {
  const h = await fuzzGateway({
    REQUIRED_SCOPES: "mcp:read,mcp:admin",
    SCOPES_SUPPORTED: "mcp:read,mcp:admin,mcp:write",
  });
  const valid = await h.validToken(); // lacks mcp:admin: 403 insufficient_scope
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.constant(undefined),
        fc.constant(`Bearer ${valid}`),
        fc.string({ maxLength: 60 }),
        fc.stringMatching(/^Bearer [A-Za-z0-9._~+/-]{1,60}$/),
      ),
      fc.constantFrom("", "?access_token=x"),
      async (auth, q) => {
        const headers: [string, string][] = auth === undefined ? [] : [["authorization", auth]];
        let r;
        try {
          r = await h.send({ url: `${ORIGIN}/mcp${q}`, headers });
        } catch {
          fc.pre(false);
          return;
        }
        const wa = r.headers.get("www-authenticate");
        if (r.status === 401 || r.status === 403 || (r.status === 400 && wa !== null)) {
          assert(wa !== null, `${r.status} without a challenge`);
          const parsed = parseChallenges(wa);
          assertEquals(parsed.length, 1);
          assertEquals(
            parsed[0]!.params.resource_metadata,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
          );
          const body = JSON.parse(r.text);
          if (parsed[0]!.params.error) assertEquals(body.error, parsed[0]!.params.error);
        }
      },
    ),
    params(),
  );
  h.gw.close();
});
