// Fuzz: the Authorization header (and the access_token query parameter next to it).
// Invariants for every input: the gateway answers below 500; the upstream is reached only
// when the header is exactly "Bearer <the valid token>" (any case, spaces around); no
// credential material appears in a log line; nothing outside the JWKS and the upstream
// is fetched.
import fc from "fast-check";
import { assert, assertEquals, assertLess } from "@std/assert";
import {
  assertNoSecretsLogged,
  FUZZ_RUNS,
  FUZZ_SEED,
  fuzzGateway,
  ORIGIN,
  params,
  secretsOf,
  sendableHeader,
} from "./_harness.ts";

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

Deno.test(`fuzz: Authorization header (seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs per property)`, async (t) => {
  const h = await fuzzGateway();
  const valid = await h.validToken();
  const exactlyValid = new RegExp(`^bearer +${escape(valid)} *$`, "i");
  const token68 = fc.stringMatching(/^[A-Za-z0-9\-._~+/]{1,80}=*$/);
  const tamper = fc.tuple(fc.nat(valid.length - 1), fc.constantFrom("A", "-", "_", ".", "=", "")).map(([i, c]) =>
    valid.slice(0, i) + c + valid.slice(i + 1)
  );
  const credential = fc.oneof(
    fc.constant(valid),
    tamper,
    token68,
    fc.constant(`${valid}.${valid.split(".")[2]}`),
    fc.constant(valid.split(".").slice(0, 2).join(".")),
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ unit: "binary-ascii", maxLength: 40 }),
    fc.constant(""),
  );
  const scheme = fc.oneof(
    fc.constantFrom("Bearer", "bearer", "BEARER", "BeArEr", "Basic", "DPoP", "Bearerx", "Bear", "Bearer,", "", "MAC"),
    fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/),
  );
  const sep = fc.constantFrom(" ", "  ", "\t", "", ",", " , ", "   ");
  const trailer = fc.oneof(
    fc.constantFrom("", " ", "\t", ",", " ,", "=", "=="),
    credential.map((c) => `, Bearer ${c}`),
  );
  const structured = fc.tuple(fc.constantFrom("", " ", "\t"), scheme, sep, credential, trailer).map((p) => p.join(""));
  const anyValue = fc.oneof(
    structured,
    structured,
    fc.string({ unit: "binary", maxLength: 200 }),
    fc.string({ maxLength: 2_000 }),
    fc.constant(`Bearer ${"A".repeat(20_000)}`),
  );

  await t.step("one Authorization header", async () => {
    await fc.assert(
      fc.asyncProperty(anyValue, fc.constantFrom("GET", "POST", "DELETE", "PUT"), async (value, method) => {
        fc.pre(sendableHeader("authorization", value));
        const r = await h.send({ method, url: `${ORIGIN}/mcp`, headers: [["authorization", value]] });
        assertLess(r.status, 500, `status for ${JSON.stringify(value.slice(0, 80))}: ${r.text}`);
        const sent = new Headers([["authorization", value]]).get("authorization")!;
        if (r.upstream.length > 0) {
          assert(exactlyValid.test(sent), `reached the upstream with ${JSON.stringify(sent.slice(0, 120))}`);
          assertEquals(r.upstream[0]!.headers.get("authorization"), null, "the token is not passed on");
        } else if (exactlyValid.test(sent)) {
          assertEquals(r.status, 200, `the valid token was refused: ${r.text}`);
        }
        if (r.status === 401 || r.status === 400 || r.status === 403) {
          assert(r.headers.get("www-authenticate")?.startsWith("Bearer "), "a challenge comes with the refusal");
        }
        assertNoSecretsLogged(r.logs, secretsOf(sent), "authorization");
        assertEquals(r.foreign, [], "URLs fetched");
      }),
      params(),
    );
  });

  await t.step("two Authorization headers, and access_token in the query", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyValue,
        fc.option(anyValue, { nil: undefined }),
        fc.option(
          fc.tuple(fc.constantFrom("access_token", "access%5Ftoken", "%61ccess_token", "ACCESS_TOKEN"), credential),
          {
            nil: undefined,
          },
        ),
        async (first, second, query) => {
          fc.pre(
            sendableHeader("authorization", first) && (second === undefined || sendableHeader("authorization", second)),
          );
          const headers: [string, string][] = [["authorization", first]];
          if (second !== undefined) headers.push(["authorization", second]);
          const qs = query ? `?${query[0]}=${encodeURIComponent(query[1])}` : "";
          const r = await h.send({ method: "POST", url: `${ORIGIN}/mcp${qs}`, headers });
          assertLess(r.status, 500);
          const hasQueryToken = query !== undefined && new URLSearchParams(qs).has("access_token");
          if (hasQueryToken) assertEquals(r.status, 400, `access_token in the query: ${r.text}`);
          if (r.upstream.length > 0) {
            const joined = new Headers(headers).get("authorization")!;
            assert(exactlyValid.test(joined), `reached the upstream with ${JSON.stringify(joined.slice(0, 120))}`);
            assert(
              !/access_token/i.test(decodeURIComponent(new URL(r.upstream[0]!.url).search)),
              "query token stripped",
            );
          }
          const all = [first, second ?? "", query?.[1] ?? ""].join(" ");
          assertNoSecretsLogged(r.logs, secretsOf(all), "two credentials");
        },
      ),
      params(),
    );
  });

  assertNoSecretsLogged(h.lines, [valid.split(".")[2]!], "whole run");
  h.gw.close();
});
