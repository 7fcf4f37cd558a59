// The test doubles themselves: if these were wrong, the gateway tests could pass for the
// wrong reason (a fault switch that does not fault, a "bad" token that is valid).
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { startIssuer } from "../_helpers/issuer.ts";
import { GZIP_PAYLOAD, startUpstream, UPSTREAM_LEAKY_HEADERS } from "../_helpers/upstream.ts";
import { parseChallenges, rawRequest, SseReader } from "../_helpers/http.ts";

Deno.test("startIssuer() serves discovery documents, a JWKS and fault switches", async (t) => {
  await using issuer = await startIssuer({ path: "/realms/test", s256: false });

  await t.step("RFC 8414 metadata is path-inserted, OIDC metadata appended", async () => {
    const oauth = await fetch(`${issuer.origin}/.well-known/oauth-authorization-server/realms/test`);
    const meta = await oauth.json();
    assertEquals(meta.issuer, `${issuer.origin}/realms/test`);
    assertEquals(meta.jwks_uri, issuer.jwksUri);
    assertEquals(meta.code_challenge_methods_supported, ["plain"]);
    const oidc = await fetch(`${issuer.issuer}/.well-known/openid-configuration`);
    assertEquals((await oidc.json()).issuer, issuer.issuer);
    assertEquals(issuer.counts.oauthMetadata, 1);
    assertEquals(issuer.counts.openidConfiguration, 1);
  });

  await t.step("the JWKS lists an RSA and an EC key and counts fetches", async () => {
    const jwks = await (await fetch(issuer.jwksUri)).json();
    assertEquals(jwks.keys.map((k: { kty: string }) => k.kty).sort(), ["EC", "RSA"]);
    assertEquals(issuer.counts.jwks, 1);
  });

  for (const [fault, check] of [["500", "status"], ["close", "reject"], ["hang", "reject"]] as const) {
    await t.step(`jwksFault "${fault}" fails the fetch`, async () => {
      issuer.jwksFault = fault;
      try {
        if (check === "status") {
          const res = await fetch(issuer.jwksUri);
          await res.body?.cancel();
          assertEquals(res.status, 500);
        } else {
          await assertRejects(() => fetch(issuer.jwksUri, { signal: AbortSignal.timeout(500) }));
        }
      } finally {
        issuer.jwksFault = "none";
      }
    });
  }
});

Deno.test("Issuer.sign() makes valid tokens and Issuer.bad makes invalid ones", async (t) => {
  await using issuer = await startIssuer();
  const verify = async (token: string) => {
    const keys = createLocalJWKSet(issuer.jwks());
    return await jwtVerify(token, keys, {
      issuer: issuer.issuer,
      audience: issuer.audience,
      algorithms: ["RS256", "ES256"],
      requiredClaims: ["exp", "sub"],
      typ: "at+jwt",
    });
  };

  await t.step("default RS256 and ES256 tokens verify", async () => {
    for (const alg of ["RS256", "ES256"] as const) {
      const { payload, protectedHeader } = await verify(await issuer.sign({}, { alg }));
      assertEquals(protectedHeader.alg, alg);
      assertEquals(payload.sub, "user-123");
      assertEquals(payload.scope, "mcp:read mcp:write");
      assertEquals(payload.client_id, "client-abc");
    }
  });

  await t.step("every Issuer.bad token fails verification", async () => {
    for (const [name, make] of Object.entries(issuer.bad)) {
      const token = await (make as (f: "pem") => Promise<string> | string)("pem");
      await assertRejects(() => verify(token), Error, undefined, `bad.${name} verified`);
    }
    assertEquals(issuer.attackerHits, 0);
  });

  await t.step("rotate() publishes only a new kid; replaceKey() keeps the kid", async () => {
    const before = issuer.kid();
    const oldToken = await issuer.sign();
    await issuer.replaceKey();
    assertEquals(issuer.kid(), before);
    await assertRejects(() => verify(oldToken));
    await verify(await issuer.sign());
    const kid = await issuer.rotate();
    assert(kid !== before);
    assertEquals(issuer.jwks().keys.map((k) => k.kid), [kid]);
    assertEquals(decodeProtectedHeader(await issuer.sign()).kid, kid);
  });
});

Deno.test("startUpstream() records requests and decorates responses", async (t) => {
  await using upstream = await startUpstream();

  await t.step("POST /mcp answers JSON-RPC with a session id and leaky headers", async () => {
    const res = await rawRequest(upstream.port, {
      method: "POST",
      target: "/mcp?x=1",
      headers: [["Content-Type", "application/json"]],
      body: '{"jsonrpc":"2.0","id":7,"method":"ping"}',
    });
    assertEquals(res.status, 200);
    assertEquals(JSON.parse(res.text), { jsonrpc: "2.0", id: 7, result: {} });
    for (const [k, v] of Object.entries(UPSTREAM_LEAKY_HEADERS)) assert(res.headers.get(k)?.includes(v), k);
    assertEquals(upstream.requests[0]?.path, "/mcp?x=1");
  });

  await t.step("/gzip is gzip on the wire", async () => {
    const res = await rawRequest(upstream.port, { target: "/gzip" });
    assertEquals(res.headers.get("content-encoding"), "gzip");
    const text = await new Response(
      new Blob([res.body as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip")),
    )
      .text();
    assertEquals(JSON.parse(text), GZIP_PAYLOAD);
  });

  await t.step("/sse/slow streams events and notices a cancel", async () => {
    const ac = new AbortController();
    const res = await fetch(`${upstream.url}/sse/slow?n=50&interval_ms=50`, { signal: ac.signal });
    const sse = new SseReader(res.body!);
    assertEquals((await sse.next())?.data, '{"i":1}');
    ac.abort();
    await sse.cancel();
    const rec = upstream.streams.at(-1)!;
    for (let i = 0; i < 50 && !rec.cancelled; i++) await new Promise((r) => setTimeout(r, 20));
    assert(rec.cancelled, "stream cancel seen");
  });
});

Deno.test("parseChallenges() reads RFC 9110 challenges", async (t) => {
  const cases: { input: string; expected: ReturnType<typeof parseChallenges> }[] = [
    {
      input: 'Bearer resource_metadata="https://x/.well-known/oauth-protected-resource", scope="a b"',
      expected: [{
        scheme: "Bearer",
        params: { resource_metadata: "https://x/.well-known/oauth-protected-resource", scope: "a b" },
      }],
    },
    {
      input: 'Bearer error="invalid_token", error_description="a \\"q\\""',
      expected: [{ scheme: "Bearer", params: { error: "invalid_token", error_description: 'a "q"' } }],
    },
    {
      input: 'Basic realm="x", Bearer',
      expected: [{ scheme: "Basic", params: { realm: "x" } }, { scheme: "Bearer", params: {} }],
    },
  ];
  for (const { input, expected } of cases) {
    await t.step(input, () => assertEquals(parseChallenges(input), expected));
  }
  await t.step("throws on an unterminated quote", () => {
    assertThrows(() => parseChallenges('Bearer error="x'));
  });
});
