// Fault injection on the upstream's side, through the real gateway process (each
// target): refused connections, a connection reset mid-stream, slow headers, a slow body,
// a 100 MB response streamed through, and responses whose Content-Length lies or is not
// a number. The upstream is a raw TCP fault server (_fault_server.ts) that answers with
// Connection: close, so after every exchange the gateway must hold no upstream
// connection. Each fault prints a figure.
import { assert, assertEquals, assertGreater, assertLess, assertMatch } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { closedPort } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, startGateway } from "../_helpers/gateway.ts";
import { assertJsonError, send } from "../_helpers/expect.ts";
import { sleep, waitFor } from "../_helpers/http.ts";
import { chunk, FaultServer, head, readBody, respond, writeAll } from "./_fault_server.ts";
import { establishedTo, figure, memoryOf, percentile, round, sampleRss } from "./_lib.ts";

const MiB = 1024 * 1024;
const BIG = 100 * MiB;

/** Byte i of the 100 MB body; the client checks every byte it receives. */
const patternByte = (i: number) => (i * 31 + 7) % 251;
function patternChunk(offset: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = patternByte(offset + i);
  return out;
}

/** Reads a body to its end or its error; never throws. */
async function drain(
  res: Response,
  onChunk?: (c: Uint8Array, offset: number) => void,
  started = performance.now(),
) {
  let bytes = 0;
  let error: string | undefined;
  let firstByteMs: number | undefined;
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      firstByteMs ??= performance.now() - started;
      onChunk?.(value, bytes);
      bytes += value.length;
    }
  } catch (e) {
    error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
  return { bytes, error, ms: performance.now() - started, firstByteMs };
}

for (const target of gatewayTargets()) {
  Deno.test(`upstream refusing connections: every request gets 502 JSON at once [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using gw = await startGateway(target, gatewayEnv(issuer, `http://127.0.0.1:${closedPort()}`));
    const token = await issuer.sign();
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const started = performance.now();
      const res = await send(`${gw.url}/mcp`, { method: "POST", token, body: "{}" });
      times.push(performance.now() - started);
      assertJsonError(res, 502);
    }
    assertEquals((await send(`${gw.url}/healthz`)).status, 200);
    figure(
      `upstream_refused_${target.name}`,
      `50/50 answered 502 JSON; p50 ${round(percentile(times, 50))} ms, max ${round(Math.max(...times))} ms`,
    );
    await gw.stopAndCheck(issuer.issued);
  });

  Deno.test(`upstream faults mid-exchange: no hang, no leaked upstream connection [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    const seen = { resetBodyRead: 0, slowHeadersClosedAt: 0 };
    await using up = new FaultServer(async (req) => {
      const q = new URL(req.target, "http://x").searchParams;
      switch (req.path) {
        case "/reset-mid-stream": {
          // Three events, then close with the request body unread: the kernel answers
          // with a TCP reset rather than an orderly close.
          seen.resetBodyRead = req.rest.length;
          await writeAll(req.conn, head(200, { "content-type": "text/event-stream", "transfer-encoding": "chunked" }));
          for (let i = 1; i <= 3; i++) await writeAll(req.conn, chunk(`id: ${i}\ndata: {"i":${i}}\n\n`));
          await sleep(100);
          return; // FaultServer closes the connection
        }
        case "/fin-mid-stream": {
          await writeAll(req.conn, head(200, { "content-type": "text/event-stream", "transfer-encoding": "chunked" }));
          for (let i = 1; i <= 3; i++) await writeAll(req.conn, chunk(`id: ${i}\ndata: {"i":${i}}\n\n`));
          await sleep(100);
          return;
        }
        case "/slow-headers": {
          const ms = Number(q.get("ms") ?? "3000");
          // Wait, noticing when the gateway hangs up on us.
          const closed = req.conn.read(new Uint8Array(1)).then(() => performance.now(), () => performance.now());
          const winner = await Promise.race([sleep(ms, req.signal).then(() => 0, () => 0), closed]);
          if (winner !== 0) {
            seen.slowHeadersClosedAt = winner;
            return;
          }
          return respond(req.conn, 200, "late", { "content-type": "text/plain" });
        }
        case "/slow-body": {
          const n = Number(q.get("bytes") ?? "20");
          const every = Number(q.get("every_ms") ?? "100");
          await writeAll(req.conn, head(200, { "content-type": "text/plain", "content-length": n }));
          for (let i = 0; i < n; i++) {
            await writeAll(req.conn, String.fromCharCode(97 + (i % 26)));
            await sleep(every, req.signal);
          }
          return;
        }
        case "/big": {
          await writeAll(req.conn, head(200, { "content-type": "application/octet-stream", "content-length": BIG }));
          const size = 256 * 1024;
          const block = patternChunk(0, 251 + size); // the pattern repeats every 251 bytes
          for (let off = 0; off < BIG; off += size) {
            const start = off % 251;
            const len = Math.min(size, BIG - off);
            // A window into the repeating block starting at the right phase.
            const view = start + len <= block.length ? block.subarray(start, start + len) : patternChunk(off, len);
            await writeAll(req.conn, view);
          }
          return;
        }
        case "/length-short":
          await writeAll(req.conn, head(200, { "content-type": "text/plain", "content-length": 1000 }) + "0123456789");
          await sleep(50);
          return;
        case "/length-long":
          await writeAll(
            req.conn,
            head(200, { "content-type": "text/plain", "content-length": 5 }) + "0123456789".repeat(10),
          );
          await sleep(50);
          return;
        case "/length-invalid":
          await writeAll(req.conn, head(200, { "content-type": "text/plain", "content-length": "abc" }) + "0123456789");
          await sleep(50);
          return;
        case "/echo-body":
          await readBody(req);
          return respond(req.conn, 200, "ok", { "content-type": "text/plain" });
        default:
          return respond(req.conn, 404, "no such fault", { "content-type": "text/plain" });
      }
    });
    await using gw = await startGateway(target, gatewayEnv(issuer, up.origin, { UPSTREAM_TIMEOUT: "1s" }));
    const token = await issuer.sign();
    const auth = { authorization: `Bearer ${token}` };
    const settled = async (what: string) => {
      const ok = await waitFor(() => up.open === 0 && establishedTo(up.port) === 0, 3_000);
      assert(
        ok,
        `${what}: upstream connections still open: ${up.open} (fault server), ${establishedTo(up.port)} (/proc)`,
      );
    };

    await t.step("connection reset mid-stream: the events so far arrive, then the stream ends", async () => {
      const res = await fetch(`${gw.url}/reset-mid-stream`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/octet-stream" },
        body: new Uint8Array(256 * 1024).fill(120),
      });
      assertEquals(res.status, 200);
      const started = performance.now();
      let text = "";
      const out = await drain(res, (c) => (text += new TextDecoder().decode(c)));
      assertMatch(text, /data: \{"i":3\}/, "the three events sent before the reset");
      assertLess(out.ms, 3_000, "the client learns of the reset quickly");
      assertLess(seen.resetBodyRead, 256 * 1024, "the upstream left request bytes unread (so it reset)");
      await settled("reset");
      figure(
        `upstream_reset_mid_stream_${target.name}`,
        `3 events delivered, then the client stream ${out.error ? `errored (${out.error})` : "ended"} ` +
          `${Math.round(performance.now() - started)} ms after headers`,
      );
    });

    await t.step("orderly close mid-stream (no last chunk): the client stream errors, not a clean end", async () => {
      const res = await fetch(`${gw.url}/fin-mid-stream`, { headers: auth });
      assertEquals(res.status, 200);
      const out = await drain(res);
      assertLess(out.ms, 3_000);
      await settled("fin");
      figure(
        `upstream_fin_mid_stream_${target.name}`,
        `client stream ${out.error ? `errored (${out.error})` : "ended cleanly"} after ${Math.round(out.ms)} ms`,
      );
    });

    await t.step("slow headers (3 s, UPSTREAM_TIMEOUT 1 s): 504, and the upstream connection is dropped", async () => {
      const started = performance.now();
      const res = await send(`${gw.url}/slow-headers?ms=3000`, { headers: auth });
      const ms = performance.now() - started;
      assertJsonError(res, 504);
      assert(ms >= 900 && ms < 2_500, `504 after ${ms} ms`);
      await settled("slow headers");
      assertGreater(seen.slowHeadersClosedAt, 0, "the gateway closed the upstream connection");
      figure(
        `upstream_slow_headers_${target.name}`,
        `504 after ${Math.round(ms)} ms (UPSTREAM_TIMEOUT 1 s); upstream connection closed ${
          Math.round(seen.slowHeadersClosedAt - started)
        } ms after the request`,
      );
    });

    await t.step("slow body (1 byte / 100 ms for 2 s, past UPSTREAM_TIMEOUT): streamed, complete", async () => {
      const started = performance.now();
      const res = await fetch(`${gw.url}/slow-body?bytes=20&every_ms=100`, { headers: auth });
      assertEquals(res.status, 200);
      const out = await drain(res, undefined, started);
      assertEquals([out.bytes, out.error], [20, undefined]);
      assertLess(out.firstByteMs!, 1_000, "the first byte is passed on at once, not after the body");
      await settled("slow body");
      figure(
        `upstream_slow_body_${target.name}`,
        `20/20 bytes over ${Math.round(out.ms)} ms; first byte ${Math.round(out.firstByteMs!)} ms after the request`,
      );
    });

    await t.step("100 MB response: streamed through byte for byte without buffering", async () => {
      const before = memoryOf(gw.pid).rssMiB;
      const sampler = sampleRss(gw.pid, 50);
      const started = performance.now();
      const res = await fetch(`${gw.url}/big`, { headers: auth });
      assertEquals(res.status, 200);
      let mismatch = -1;
      const out = await drain(res, (c, offset) => {
        if (mismatch >= 0) return;
        for (let i = 0; i < c.length; i += 4099) {
          if (c[i] !== patternByte(offset + i)) {
            mismatch = offset + i;
            break;
          }
        }
        if (c.length > 0 && c[c.length - 1] !== patternByte(offset + c.length - 1)) mismatch = offset + c.length - 1;
      });
      const secs = (performance.now() - started) / 1000;
      const { peakMiB } = sampler.stop();
      assertEquals([out.bytes, out.error, mismatch], [BIG, undefined, -1], "bytes, error, first mismatching offset");
      assertLess(peakMiB - before, 64, "gateway RSS growth while streaming 100 MB (MiB)");
      await settled("100 MB");
      figure(
        `upstream_100mb_${target.name}`,
        `100 MiB in ${round(secs, 2)} s (${round(100 / secs)} MiB/s); gateway RSS ${round(before)} -> peak ${
          round(peakMiB)
        } MiB (+${round(peakMiB - before)})`,
      );
    });

    await t.step("Content-Length 1000 but 10 bytes, then close: the client can tell", async () => {
      const res = await fetch(`${gw.url}/length-short`, { headers: auth }).catch((e) => e as Error);
      let outcome: string;
      if (res instanceof Error) outcome = `fetch failed (${res.message})`;
      else {
        const out = await drain(res);
        assert(
          out.error !== undefined || res.status >= 500,
          `a truncated body must not look complete: status ${res.status}, ${out.bytes} bytes, no error`,
        );
        outcome = res.status >= 500
          ? `status ${res.status}`
          : `status ${res.status}, ${out.bytes} bytes, then ${out.error}`;
      }
      await settled("length-short");
      figure(`upstream_content_length_short_${target.name}`, outcome);
    });

    await t.step("Content-Length 5 but 100 bytes: exactly 5 bytes reach the client", async () => {
      const res = await fetch(`${gw.url}/length-long`, { headers: auth });
      const out = await drain(res);
      assertEquals([res.status, out.bytes], [200, 5]);
      await settled("length-long");
      figure(`upstream_content_length_long_${target.name}`, `200 with ${out.bytes} bytes (the extra 95 dropped)`);
    });

    await t.step("Content-Length not a number: 502 JSON", async () => {
      const res = await send(`${gw.url}/length-invalid`, { headers: auth });
      assertJsonError(res, 502);
      await settled("length-invalid");
      figure(`upstream_content_length_invalid_${target.name}`, `502 JSON`);
    });

    await t.step("the gateway is fine afterwards", async () => {
      const res = await send(`${gw.url}/echo-body`, { method: "POST", headers: auth, body: "x".repeat(1000) });
      assertEquals([res.status, res.text], [200, "ok"]);
      await settled("after");
    });

    const fivexx = gw.find((l) => l.msg === "request" && Number(l.status) >= 500).map((l) => `${l.path} ${l.status}`);
    for (const line of fivexx) assertMatch(line, /^\/(slow-headers 504|length-invalid 502|length-short 502)$/);
    await gw.stopAndCheck(issuer.issued);
  });
}
