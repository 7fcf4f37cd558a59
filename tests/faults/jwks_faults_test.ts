// Fault injection on the authorization server's side, through the real gateway process
// (each target): the JWKS slow past JWKS_FETCH_TIMEOUT, answering 500, closing the
// connection, serving invalid JSON, a 5 MB document, keys of the wrong type (oct,
// unknown kty), duplicate kids; and the discovery document changing its jwks_uri.
//
// A fault AS (raw TCP, _fault_server.ts) serves discovery and two JWKS paths; the keys
// and the signing come from the shared test issuer. JWKS_REFETCH_COOLDOWN=0s, so every
// token with an unknown kid makes the gateway refetch: each fault is met on that path,
// one after the other on one gateway, and each prints a figure. Invariants after every
// fault: tokens under the last good keys still pass (200), a token needing the broken
// refetch gets 401 invalid_token (never a 5xx, never a hang), and once the fault clears
// the new key is accepted.
import { assert, assertEquals, assertLess, assertStringIncludes } from "@std/assert";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { assertAuthError, send } from "../_helpers/expect.ts";
import { sleep, uniqueUserAgent } from "../_helpers/http.ts";
import { chunk, FaultServer, head, json, respond, writeAll } from "./_fault_server.ts";
import { figure, memoryOf, round } from "./_lib.ts";

type Mode =
  | "ok"
  | "slow"
  | "500"
  | "close"
  | "invalid-json"
  | "5mb"
  | "5mb-chunked"
  | "wrong-types-only"
  | "wrong-types-mixed"
  | "duplicate-kids";

const FETCH_TIMEOUT_MS = 1_000;
const FIVE_MB = 5 * 1024 * 1024;

for (const target of gatewayTargets()) {
  Deno.test(`JWKS and discovery faults: last good keys keep serving, no 5xx, no hang [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();

    // State of the fault AS.
    let mode: Mode = "ok";
    const queue: Mode[] = [];
    let jwksPath = "/jwks-a";
    const docs: Record<string, () => { keys: JWK[] }> = {
      "/jwks-a": () => issuer.jwks(),
      "/jwks-b": () => issuer.jwks(),
    };
    let extraKeys: JWK[] = [];
    let bigWritten = 0;
    const octSecret = crypto.getRandomValues(new Uint8Array(32));
    const octJwk: JWK = { kty: "oct", kid: "oct-kid", alg: "HS256", k: b64url(octSecret) };

    await using authz = new FaultServer(async (req): Promise<void> => {
      const origin = `http://127.0.0.1:${
        req.conn.localAddr.transport === "tcp" ? (req.conn.localAddr as Deno.NetAddr).port : 0
      }`;
      if (req.path === "/.well-known/oauth-authorization-server") {
        return json(req.conn, {
          issuer: origin,
          jwks_uri: `${origin}${jwksPath}`,
          authorization_endpoint: `${origin}/authorize`,
          token_endpoint: `${origin}/token`,
          response_types_supported: ["code"],
          code_challenge_methods_supported: ["S256"],
        });
      }
      const doc = docs[req.path];
      if (!doc) return json(req.conn, { error: "not_found" }, 404);
      const m = queue.shift() ?? mode;
      const keys = () => [...doc().keys, ...extraKeys];
      switch (m) {
        case "ok":
          return json(req.conn, { keys: keys() });
        case "slow":
          // Longer than the gateway's fetch timeout, then a valid answer nobody waits for.
          await sleep(FETCH_TIMEOUT_MS * 3, req.signal).catch(() => {});
          return json(req.conn, { keys: keys() }).catch(() => {});
        case "500":
          return respond(req.conn, 500, '{"error":"server_error"}', { "content-type": "application/json" });
        case "close":
          return;
        case "invalid-json":
          return respond(req.conn, 200, `{"keys": [${JSON.stringify(keys()[0])},`, {
            "content-type": "application/json",
          });
        case "5mb":
        case "5mb-chunked": {
          // A valid JSON document of 5 MB: real keys, then padding; with Content-Length
          // (refused from the header) or chunked (refused while reading). Counts what got out.
          const chunked = m === "5mb-chunked";
          const prefix = `{"keys":${JSON.stringify(keys())},"padding":"`;
          const suffix = `"}`;
          const padLen = FIVE_MB - prefix.length - suffix.length;
          const enc = new TextEncoder();
          const frame = (text: string | Uint8Array) =>
            chunked ? chunk(text) : typeof text === "string" ? enc.encode(text) : text;
          bigWritten = 0;
          const pad = enc.encode("x".repeat(64 * 1024));
          try {
            await writeAll(
              req.conn,
              head(200, {
                "content-type": "application/json",
                ...(chunked ? { "transfer-encoding": "chunked" } : { "content-length": FIVE_MB }),
              }),
            );
            await writeAll(req.conn, frame(prefix));
            bigWritten += prefix.length;
            for (let sent = 0; sent < padLen; sent += pad.length) {
              const part = pad.subarray(0, Math.min(pad.length, padLen - sent));
              await writeAll(req.conn, frame(part));
              bigWritten += part.length;
            }
            await writeAll(req.conn, frame(suffix));
            bigWritten += suffix.length;
            if (chunked) await writeAll(req.conn, "0\r\n\r\n");
          } catch { /* the gateway hung up */ }
          return;
        }
        case "wrong-types-only":
          return json(req.conn, { keys: [octJwk, { kty: "XYZ", kid: "weird-kid", x: "AAAA" }] });
        case "wrong-types-mixed":
          return json(req.conn, { keys: [...keys(), octJwk, { kty: "XYZ", kid: "weird-kid", x: "AAAA" }] });
        case "duplicate-kids":
          return json(req.conn, { keys: keys() });
      }
    });
    const iss = authz.origin;
    const valid = () => issuer.sign({ iss });
    const call = async (token: string) => {
      const ua = uniqueUserAgent("jwks-fault");
      const started = performance.now();
      const res = await send(`${gw.url}/mcp`, {
        method: "POST",
        token,
        userAgent: ua,
        headers: { "content-type": "application/json" },
        body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
        signal: AbortSignal.timeout(15_000),
      });
      return { ...res, ms: performance.now() - started, ua };
    };

    // Start-up through three faults in a row: slow, 500, invalid JSON; then the keys.
    queue.push("slow", "500", "invalid-json");
    const startedAt = performance.now();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, {
        AUTHORIZATION_SERVER: iss,
        JWKS_URI: "",
        EXPECTED_ISSUER: iss,
        JWKS_FETCH_TIMEOUT: `${FETCH_TIMEOUT_MS}ms`,
        JWKS_REFETCH_COOLDOWN: "0s",
      }),
      { waitFor: "listening" },
    );

    await t.step("start-up: not ready and 503 (not 401) while the JWKS fails; ready once it answers", async () => {
      const during = await call(await valid());
      assertEquals(during.status, 503, `while no keys were ever loaded: ${during.text}`);
      assertLess(during.ms, 2_000, "the 503 does not wait for the key fetch");
      assertEquals((await send(`${gw.url}/readyz`)).status, 503);
      const deadline = Date.now() + 20_000;
      while ((await send(`${gw.url}/readyz`)).status !== 200 && Date.now() < deadline) await sleep(100);
      const readyMs = performance.now() - startedAt;
      assertEquals((await send(`${gw.url}/readyz`)).status, 200, "ready within 20 s");
      assertEquals(queue.length, 0, "every start-up fault was met");
      assertEquals((await call(await valid())).status, 200);
      figure(
        `jwks_startup_faults_${target.name}`,
        `ready ${round(readyMs / 1000, 2)} s after start through slow+500+invalid-JSON; meanwhile 503 in ${
          Math.round(during.ms)
        } ms`,
      );
    });

    /**
     * One fault met on the refetch path: a token under a key the gateway has not seen
     * gets 401 invalid_token (unknown_kid) while the JWKS is broken, tokens under the last
     * good keys keep getting 200, and the new key works once the JWKS is healthy again.
     */
    const refetchFault = async (name: string, m: Mode) => {
      const kid = await issuer.addKey();
      const newToken = () => issuer.sign({ iss }, { kid });
      mode = m;
      const before = memoryOf(gw.pid).rssMiB;
      const res = await call(await newToken());
      assertAuthError(res, { status: 401, error: "invalid_token" });
      assertEquals((await gw.accessLog(res.ua)).reason, "unknown_kid", `${name}: reason`);
      const old = await call(await valid());
      assertEquals(old.status, 200, `${name}: a token under the last good keys: ${old.text}`);
      assertEquals((await send(`${gw.url}/readyz`)).status, 200, `${name}: still ready`);
      const after = memoryOf(gw.pid).rssMiB;
      mode = "ok";
      const healed = await call(await newToken());
      assertEquals(healed.status, 200, `${name}: the new key once the JWKS is healthy again: ${healed.text}`);
      return { res, rssDelta: after - before };
    };

    await t.step("slow JWKS (3x JWKS_FETCH_TIMEOUT): the refetch gives up at the timeout", async () => {
      const { res } = await refetchFault("slow", "slow");
      assert(res.ms >= FETCH_TIMEOUT_MS * 0.8, `answered after ${res.ms} ms, before the fetch timeout`);
      assertLess(res.ms, FETCH_TIMEOUT_MS + 1_500, "answered soon after the fetch timeout");
      figure(
        `jwks_slow_${target.name}`,
        `401 unknown_kid after ${Math.round(res.ms)} ms (JWKS_FETCH_TIMEOUT ${FETCH_TIMEOUT_MS} ms); old keys 200`,
      );
    });

    for (
      const [m, label] of [["500", "500"], ["close", "closed connection"], ["invalid-json", "invalid JSON"]] as const
    ) {
      await t.step(`JWKS ${label}: 401 for the new kid, 200 under the last good keys`, async () => {
        const { res } = await refetchFault(label, m);
        assertLess(res.ms, 2_000);
        figure(
          `jwks_${m.replace(/-/g, "_")}_${target.name}`,
          `401 unknown_kid in ${Math.round(res.ms)} ms; old keys 200; healed 200`,
        );
      });
    }

    for (const m of ["5mb", "5mb-chunked"] as const) {
      await t.step(`5 MB JWKS (${m === "5mb" ? "Content-Length" : "chunked"}): refused at the 1 MiB cap`, async () => {
        const { res, rssDelta } = await refetchFault(m, m);
        assertLess(res.ms, 2_000);
        // How much the AS got into the socket is informational: loopback socket buffers hold
        // several MiB, and Bun's fetch reads ahead natively; the gateway's own cap is what
        // counts, and it is checked through the log and the answer.
        const capped = gw.find((l) => /larger than 1048576 bytes/.test(String(l.error ?? "")));
        assert(capped.length > 0, "the size cap was logged");
        figure(
          `jwks_${m.replace("-", "_")}_${target.name}`,
          `401 unknown_kid in ${Math.round(res.ms)} ms, refused at the 1 MiB cap; the AS got ${
            round(bigWritten / 1048576, 2)
          } of 5 MiB into the socket; gateway RSS delta ${round(rssDelta)} MiB; old keys 200`,
        );
      });
    }

    await t.step("keys of the wrong type: oct and unknown kty are ignored, never used", async () => {
      // Only unusable keys: the document is refused and the last good keys stay.
      await refetchFault("wrong types only", "wrong-types-only");
      // Mixed: usable keys plus an oct key and an unknown kty. An HS256 token keyed with
      // the oct secret (the key-confusion attack) is refused.
      mode = "wrong-types-mixed";
      const hs = await new SignJWT(issuer.claims({ iss }))
        .setProtectedHeader({ alg: "HS256", kid: "oct-kid", typ: "at+jwt" })
        .sign(octSecret);
      issuer.issued.push(hs);
      const res = await call(hs);
      assertAuthError(res, { status: 401, error: "invalid_token" });
      assertEquals((await gw.accessLog(res.ua)).reason, "alg_not_allowed");
      const weird = await call(
        await issuer.sign({ iss }, { kid: "weird-kid", key: (await generateKeyPair("RS256")).privateKey }),
      );
      assertAuthError(weird, { status: 401, error: "invalid_token" });
      assertEquals((await call(await valid())).status, 200, "usable keys of the mixed document work");
      const ignored = gw.find((l) => l.msg === "jwks key ignored").map((l) => String(l.reason));
      assert(ignored.some((r) => r.includes("oct")), `oct key logged as ignored: ${JSON.stringify(ignored)}`);
      assert(ignored.some((r) => r.includes("XYZ")), `unknown kty logged as ignored: ${JSON.stringify(ignored)}`);
      mode = "ok";
      figure(
        `jwks_wrong_key_types_${target.name}`,
        `oct-only/unknown-kty document refused (old keys 200); HS256-with-oct-secret 401 alg_not_allowed; unknown kty 401`,
      );
    });

    await t.step("duplicate kids: two keys under one kid, tokens from either verify", async () => {
      const a = await generateKeyPair("RS256", { extractable: true });
      const b = await generateKeyPair("RS256", { extractable: true });
      extraKeys = [
        { ...(await exportJWK(a.publicKey)), kid: "dup-kid", alg: "RS256", use: "sig" },
        { ...(await exportJWK(b.publicKey)), kid: "dup-kid", alg: "RS256", use: "sig" },
      ];
      mode = "duplicate-kids";
      const started = performance.now();
      const ra = await call(await issuer.sign({ iss }, { kid: "dup-kid", key: a.privateKey }));
      const rb = await call(await issuer.sign({ iss }, { kid: "dup-kid", key: b.privateKey }));
      const forged = await call(
        await issuer.sign({ iss }, { kid: "dup-kid", key: (await generateKeyPair("RS256")).privateKey }),
      );
      assertEquals([ra.status, rb.status], [200, 200], `tokens under either duplicate: ${ra.text} ${rb.text}`);
      assertAuthError(forged, { status: 401, error: "invalid_token" });
      assert(gw.find((l) => l.msg === "jwks has duplicate kid").length > 0, "the duplicate kid was logged");
      figure(
        `jwks_duplicate_kids_${target.name}`,
        `both keys under one kid verify (200, 200), a third key 401; ${Math.round(performance.now() - started)} ms`,
      );
      extraKeys = [];
      mode = "ok";
    });

    await t.step("discovery changes jwks_uri: the next refetch follows it", async () => {
      const frozen = issuer.jwks();
      docs["/jwks-a"] = () => frozen;
      const kid = await issuer.addKey();
      jwksPath = "/jwks-b";
      const aBefore = authz.hitsOf("/jwks-a");
      const res = await call(await issuer.sign({ iss }, { kid }));
      assertEquals(res.status, 200, `a key published only at the new jwks_uri: ${res.text}`);
      assert(authz.hitsOf("/jwks-b") >= 1, "the new jwks_uri was fetched");
      assertEquals(authz.hitsOf("/jwks-a"), aBefore, "the old jwks_uri was not fetched again");
      figure(
        `jwks_uri_change_${target.name}`,
        `key served only at the new jwks_uri accepted on the first request, in ${Math.round(res.ms)} ms`,
      );
    });

    const statuses = gw.find((l) => l.msg === "request").map((l) => Number(l.status));
    assertEquals(statuses.filter((s) => s >= 500 && s !== 503), [], "no 5xx other than the start-up 503");
    const logs = gw.lines.join("\n");
    assertStringIncludes(logs, "jwks refresh failed");
    await gw.stopAndCheck(issuer.issued);
  });
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
