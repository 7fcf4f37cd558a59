// Keys kept fresh without traffic, and a key rotated under its old kid, through the real
// gateway process (each target) and the local issuer:
//
// 1. Background refresh (JWKS_REFRESH_INTERVAL=1s, cooldown 60 s so that every fetch
//    seen is a scheduled one): the JWKS is fetched on schedule while no request comes;
//    during an outage every failed attempt is logged and counted in
//    mcpgate_jwks_refresh_errors_total while the last good keys keep serving; when a
//    refresh removes a key, a token verified (and cached) under it is refused at once.
// 2. Same-kid rotation (JWKS_REFETCH_COOLDOWN=2s): a token under new key material behind
//    a known kid, refused inside the cooldown, is accepted once the cooldown ends, with
//    no client retry needed to trigger the fetch; a bad-signature flood still costs at
//    most one JWKS fetch per cooldown.
import { assert, assertEquals, assertGreaterOrEqual, assertLessOrEqual } from "@std/assert";
import { generateKeyPair } from "jose";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import { type Gateway, gatewayEnv, gatewayTargets, type LogLine, startGateway } from "../_helpers/gateway.ts";
import { assertAuthError, JSON_RPC_HEADERS, rpc, send } from "../_helpers/expect.ts";
import { sleep, uniqueUserAgent, waitFor } from "../_helpers/http.ts";
import { figure, scrape } from "./_lib.ts";

const REFRESH_FAILED = "jwks refresh failed; keeping the last good keys";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** POST /mcp with a token; the reply with the User-Agent it was sent with (for its access-log line). */
async function call(gw: Gateway, token: string) {
  const ua = uniqueUserAgent("jwks-refresh");
  const res = await send(`${gw.url}/mcp`, {
    method: "POST",
    token,
    userAgent: ua,
    headers: JSON_RPC_HEADERS,
    body: rpc(1),
    signal: AbortSignal.timeout(10_000),
  });
  return { ...res, ua };
}

/** The reason code the gateway logged for a reply. */
async function reason(gw: Gateway, reply: { ua: string }): Promise<unknown> {
  return (await gw.accessLog(reply.ua)).reason;
}

function jwksLoaded(gw: Gateway): LogLine[] {
  return gw.find((l) => l.msg === "jwks loaded");
}

for (const target of gatewayTargets()) {
  Deno.test(
    `JWKS refresh runs on schedule without traffic, counts failures, drops cached tokens of a removed key [${target.name}]`,
    async (t) => {
      await using issuer = await startIssuer();
      await using upstream = await startUpstream();
      const metricsPort = freePort();
      await using gw = await startGateway(
        target,
        gatewayEnv(issuer, upstream, {
          JWKS_REFRESH_INTERVAL: "1s",
          JWKS_REFETCH_COOLDOWN: "60s",
          JWKS_FETCH_TIMEOUT: "1s",
          METRICS_ADDR: `127.0.0.1:${metricsPort}`,
        }),
      );
      const metrics = async () => {
        const m = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
        return {
          ok: m.get('mcpgate_jwks_fetches_total{outcome="ok"}') ?? 0,
          errors: m.get("mcpgate_jwks_refresh_errors_total") ?? 0,
        };
      };
      /** Waits until the gateway has recorded every fetch the issuer answered (none in flight). */
      const settled = async () => {
        let m = await metrics();
        const deadline = Date.now() + 3_000;
        while (m.ok + m.errors !== issuer.counts.jwks && Date.now() < deadline) {
          await sleep(50);
          m = await metrics();
        }
        assertEquals(m.ok + m.errors, issuer.counts.jwks, "every JWKS fetch the issuer saw is in the metrics");
        return m;
      };
      const oldToken = await issuer.sign();
      const oldKid = issuer.kid();

      await t.step("warm-up: a token verified once is then answered from the cache", async () => {
        assertEquals((await call(gw, oldToken)).status, 200);
        assertEquals((await call(gw, oldToken)).status, 200);
      });

      await t.step("no traffic for 2.6 s: the JWKS is still fetched every second or so", async () => {
        const before = issuer.counts.jwks;
        await sleep(2_600);
        const fetched = issuer.counts.jwks - before;
        assertGreaterOrEqual(fetched, 2, "scheduled refreshes while idle");
        assertLessOrEqual(fetched, 3, "no more than the interval allows");
        const m = await settled();
        assertEquals(m.errors, 0);
        figure(`jwks_idle_refresh_${target.name}`, `${fetched} JWKS fetches in 2.6 s without a request (interval 1 s)`);
      });

      await t.step("JWKS answering 500: every failed attempt logged and counted, last good keys serve", async () => {
        const { errors: errorsBefore } = await settled();
        const warnsBefore = gw.find((l) => l.msg === REFRESH_FAILED).length;
        const hitsBefore = issuer.counts.jwks;
        issuer.jwksFault = "500";
        await sleep(2_600);
        assertEquals((await call(gw, oldToken)).status, 200, "the cached token");
        const fresh = await call(gw, await issuer.sign({}, { alg: "ES256" }));
        assertEquals(fresh.status, 200, `a token verified against the last good keys: ${fresh.text}`);
        assertEquals((await send(`${gw.url}/readyz`)).status, 200, "still ready");
        issuer.jwksFault = "none";
        const failed = issuer.counts.jwks - hitsBefore; // every one of them answered 500
        assertGreaterOrEqual(failed, 2, "the refresh kept trying during the outage");
        const { errors } = await settled();
        assertEquals(errors - errorsBefore, failed, "mcpgate_jwks_refresh_errors_total counts each failed attempt");
        const warns = gw.find((l) => l.msg === REFRESH_FAILED).slice(warnsBefore);
        assertEquals(warns.length, failed, "one warning per failed attempt");
        assertEquals(warns.map((w) => [w.level, w.trigger]), Array(failed).fill(["warn", "refresh"]));
        assertEquals(warns[0]!.retry_in_ms, 1_000, "first retry after 1 s");
        assert(
          warns.every((w) => typeof w.error === "string" && w.error.includes("HTTP 500")),
          JSON.stringify(warns),
        );
        const okBefore = (await metrics()).ok;
        assert(await waitFor(() => issuer.counts.jwks > hitsBefore + failed, 3_000), "a refresh after the outage");
        const { ok } = await settled();
        assertGreaterOrEqual(ok - okBefore, 1, "the refresh after the outage succeeded");
        figure(
          `jwks_outage_errors_${target.name}`,
          `${failed} failed refreshes in a 2.6 s outage without traffic; mcpgate_jwks_refresh_errors_total +${
            errors - errorsBefore
          }; cached and fresh tokens 200`,
        );
      });

      await t.step("a refresh that removes a key: its cached token is refused at once", async () => {
        const loadedBefore = jwksLoaded(gw).length;
        const newKid = await issuer.rotate(); // the only published key now; oldKid is gone
        const published = performance.now();
        const removal = await waitFor(
          () => jwksLoaded(gw).slice(loadedBefore).find((l) => JSON.stringify(l.removed)?.includes(oldKid)),
          3_000,
        );
        assert(removal, `a refresh removed ${oldKid}\n${gw.describe()}`);
        const seenMs = performance.now() - published;
        assertEquals([removal.trigger, removal.added], ["refresh", [newKid]]);
        const refused = await call(gw, oldToken);
        assertAuthError(refused, { status: 401, error: "invalid_token" });
        assertEquals(await reason(gw, refused), "unknown_kid");
        assertEquals((await call(gw, await issuer.sign())).status, 200, "a token under the new key");
        figure(
          `jwks_key_removed_${target.name}`,
          `key removed at the issuer; the gateway's refresh saw it after ${
            Math.round(seenMs)
          } ms and the cached token under it got 401 on its next request`,
        );
      });

      const statuses = gw.find((l) => l.msg === "request").map((l) => Number(l.status));
      assertEquals(statuses.filter((s) => s >= 500), [], "no 5xx");
      const stopping = performance.now();
      await gw.stopAndCheck(issuer.issued);
      assertLessOrEqual(performance.now() - stopping, 5_000, "the refresh timer does not hold the shutdown");
    },
  );

  Deno.test(
    `JWKS key rotated under its old kid is accepted within one cooldown; a bad-signature flood stays bounded [${target.name}]`,
    async (t) => {
      const COOLDOWN_MS = 2_000;
      await using issuer = await startIssuer();
      await using upstream = await startUpstream();
      await using gw = await startGateway(
        target,
        gatewayEnv(issuer, upstream, { JWKS_REFETCH_COOLDOWN: `${COOLDOWN_MS}ms`, JWKS_FETCH_TIMEOUT: "1s" }),
      );
      const readyAt = performance.now();
      const esKid = issuer.kid("ES256");
      assertEquals((await call(gw, await issuer.sign({}, { alg: "ES256" }))).status, 200, "warm-up");
      const stranger = (await generateKeyPair("ES256")).privateKey;

      await t.step("a token under new key material behind a known kid: refused, then accepted", async () => {
        await sleep(Math.max(0, COOLDOWN_MS + 100 - (performance.now() - readyAt))); // past the start-up cooldown
        const before = issuer.counts.jwks;
        // An unknown kid makes the gateway fetch now; a new cooldown starts.
        const unknown = await call(
          gw,
          await issuer.sign({}, { alg: "ES256", kid: `new-${crypto.randomUUID()}`, key: stranger }),
        );
        assertEquals([unknown.status, await reason(gw, unknown)], [401, "unknown_kid"]);
        assertEquals(issuer.counts.jwks, before + 1, "the unknown kid was refetched");
        const fetchedAt = performance.now();

        await issuer.replaceKey(esKid);
        const rotated = await issuer.sign({}, { kid: esKid });
        const first = await call(gw, rotated);
        assertAuthError(first, { status: 401, error: "invalid_token" });
        assertEquals(await reason(gw, first), "bad_signature");
        const again = await call(gw, rotated);
        assertEquals([again.status, await reason(gw, again)], [401, "bad_signature"]);
        assertEquals(issuer.counts.jwks, before + 1, "no fetch inside the cooldown");
        assertLessOrEqual(performance.now() - fetchedAt, COOLDOWN_MS, "the refusals came inside the cooldown");

        // No request now: the gateway fetches by itself when the cooldown ends.
        assert(await waitFor(() => issuer.counts.jwks > before + 1, COOLDOWN_MS + 2_000), "a fetch without traffic");
        const trailingMs = performance.now() - fetchedAt;
        assertEquals(issuer.counts.jwks, before + 2, "exactly one trailing fetch");
        const trailing = await waitFor(() => jwksLoaded(gw).find((l) => l.trigger === "trailing refetch"), 2_000);
        assert(trailing, `the trailing fetch loaded the new key\n${gw.describe()}`);
        assertEquals(trailing.replaced, [esKid]);
        const accepted = await call(gw, rotated);
        assertEquals(accepted.status, 200, `the rotated key's token once the cooldown is over: ${accepted.text}`);
        assertEquals(issuer.counts.jwks, before + 2, "accepted without another fetch");
        assertLessOrEqual(trailingMs, COOLDOWN_MS + 1_500, "within one cooldown of the last fetch");
        figure(
          `jwks_same_kid_rotation_${target.name}`,
          `rotated key refused inside the cooldown (no fetch), fetched ${
            Math.round(trailingMs)
          } ms after the last fetch with no request waiting (cooldown ${COOLDOWN_MS} ms), then 200`,
        );
      });

      await t.step("a bad-signature flood for 2 cooldowns: at most one fetch per cooldown", async () => {
        const tokens = await Promise.all(Array.from({ length: 60 }, () => issuer.bad.forgedSignature()));
        const before = issuer.counts.jwks;
        const started = performance.now();
        const replies: { status: number; ua: string }[] = [];
        for (let i = 0; performance.now() - started < 2 * COOLDOWN_MS + 200; i++) {
          const batch = Array.from({ length: 10 }, (_, j) => tokens[(i * 10 + j) % tokens.length]!);
          replies.push(...await Promise.all(batch.map((tok) => call(gw, tok))));
          await sleep(50);
        }
        const windowMs = performance.now() - started;
        const fetched = issuer.counts.jwks - before;
        assertEquals(replies.filter((r) => r.status !== 401), [], "every forged token gets 401");
        const reasons = new Set(await Promise.all(replies.map((r) => reason(gw, r))));
        assertEquals([...reasons], ["bad_signature"]);
        // Fetches at least a cooldown apart: at most floor(window / cooldown) + 1 of them.
        assertLessOrEqual(fetched, Math.floor(windowMs / COOLDOWN_MS) + 1, "JWKS fetches during the flood");
        assertEquals((await call(gw, await issuer.sign())).status, 200, "real tokens still work");
        figure(
          `jwks_bad_signature_flood_${target.name}`,
          `${replies.length} forged-signature requests (60 distinct) over ${
            Math.round(windowMs)
          } ms: ${fetched} JWKS fetches (cooldown ${COOLDOWN_MS} ms), all 401 bad_signature`,
        );
      });

      await gw.stopAndCheck(issuer.issued);
    },
  );
}
