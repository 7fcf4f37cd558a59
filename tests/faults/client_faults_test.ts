// Client-side faults: a client that disconnects mid-request body, one that disconnects
// mid-response, and 10,000 disconnects in a row of four kinds (before the response
// headers, mid-response, mid-request body, right after the request head). Through the
// real gateway process (each target), with METRICS_ADDR on, against a raw TCP upstream
// that answers with Connection: close. Afterwards nothing may be left: no active
// request or connection in /metrics, no upstream connection (fault server count and
// /proc/net/tcp), every upstream stream ended, and RSS back near its baseline.
//
// Timers cannot be counted from outside a process, so the same storm also runs
// in-process through createGateway(), where Deno's test sanitizers fail the test if any
// timer or async op outlives it.
import { assert, assertEquals, assertLess, assertLessOrEqual } from "@std/assert";
import { createGateway, loadConfig } from "../../mod.ts";
import { silentLogger } from "../../src/logging.ts";
import { GatewayMetrics } from "../../src/metrics.ts";
import { startIssuer } from "../_helpers/issuer.ts";
import { gatewayEnv, gatewayTargets, RESOURCE_URI, startGateway } from "../_helpers/gateway.ts";
import { send } from "../_helpers/expect.ts";
import { sleep, waitFor } from "../_helpers/http.ts";
import { chunk, FaultServer, head, readBody, respond, writeAll } from "./_fault_server.ts";
import {
  cpuSecondsOf,
  establishedTo,
  figure,
  memoryOf,
  metricSum,
  metricsUrl,
  round,
  sampleRss,
  scrape,
} from "./_lib.ts";

const STORM = 10_000;
const CONCURRENCY = 50;
const encoder = new TextEncoder();

/** The fault upstream: an endless SSE stream, a body sink, and slow headers. */
export function stormUpstream() {
  const stats = {
    sseOpen: 0,
    sseEnded: 0,
    /** When the last SSE stream noticed its client was gone. */
    lastSseEndAt: 0,
    uploadsCut: 0,
    uploadsComplete: 0,
    lastUploadCutAt: 0,
    slowAbandoned: 0,
  };
  const server = new FaultServer(async (req) => {
    switch (req.path) {
      case "/sse": {
        stats.sseOpen++;
        try {
          await writeAll(req.conn, head(200, { "content-type": "text/event-stream", "transfer-encoding": "chunked" }));
          // An event every 50 ms for at most 10 s; a failed write means the client left.
          for (let i = 1; i <= 200; i++) {
            await writeAll(req.conn, chunk(`id: ${i}\ndata: {"i":${i}}\n\n`));
            await sleep(50, req.signal);
          }
        } catch {
          /* gone */
        } finally {
          stats.sseOpen--;
          stats.sseEnded++;
          stats.lastSseEndAt = performance.now();
        }
        return;
      }
      case "/upload": {
        const out = await readBody(req);
        if (out.complete) {
          stats.uploadsComplete++;
          return respond(req.conn, 200, `${out.bytes}`, { "content-type": "text/plain" });
        }
        stats.uploadsCut++;
        stats.lastUploadCutAt = out.cutAt ?? performance.now();
        return;
      }
      case "/slow": {
        const closed = req.conn.read(new Uint8Array(1)).then(() => true, () => true);
        const gone = await Promise.race([sleep(300, req.signal).then(() => false, () => true), closed]);
        if (gone) {
          stats.slowAbandoned++;
          return;
        }
        return respond(req.conn, 200, "slow", { "content-type": "text/plain" });
      }
      default:
        return respond(req.conn, 404, "no such path", { "content-type": "text/plain" });
    }
  });
  return { server, stats };
}

export type Kind = "before-headers" | "mid-response" | "mid-request-body" | "after-head";
export const KINDS: Kind[] = ["before-headers", "mid-response", "mid-request-body", "after-head"];

/** One raw TCP client that leaves at the chosen moment. Resolves when it has closed. */
export async function disconnect(port: number, token: string, kind: Kind): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // Whatever happens, this client is gone after 5 s (a blocked read ends with the close).
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  const guard = setTimeout(close, 5_000);
  try {
    const h = (method: string, path: string, extra = "") =>
      `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n${extra}\r\n`;
    switch (kind) {
      case "before-headers":
        await writeAll(conn, h("GET", "/slow"));
        await sleep(20);
        break;
      case "mid-response": {
        await writeAll(conn, h("GET", "/sse", "Accept: text/event-stream\r\n"));
        // Until the first event's bytes arrive (headers and at least one chunk).
        const buf = new Uint8Array(4096);
        let seen = "";
        while (!seen.includes('"i":1')) {
          const n = await conn.read(buf);
          if (n === null) break;
          seen += new TextDecoder().decode(buf.subarray(0, n));
        }
        break;
      }
      case "mid-request-body":
        await writeAll(
          conn,
          h("POST", "/upload", "Content-Type: application/octet-stream\r\nContent-Length: 65536\r\n"),
        );
        await writeAll(conn, new Uint8Array(8192).fill(97));
        await sleep(20);
        break;
      case "after-head":
        await writeAll(conn, h("GET", "/sse", "Accept: text/event-stream\r\n"));
        break;
    }
  } catch {
    /* the gateway may close first; that is fine */
  } finally {
    clearTimeout(guard);
    close();
  }
}

/** Runs n disconnects, `concurrency` at a time, cycling through the four kinds. */
export async function storm(
  port: number,
  token: string,
  n: number,
  concurrency = CONCURRENCY,
  kinds: readonly Kind[] = KINDS,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  const deadline = Date.now() + 180_000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      if (Date.now() > deadline) throw new Error(`storm: only ${next} of ${n} disconnects within 180 s`);
      const i = next++;
      await disconnect(port, token, kinds[i % kinds.length]!);
    }
  }));
  return performance.now() - started;
}

for (const target of gatewayTargets()) {
  Deno.test(`client disconnects: the upstream side is released at once, nothing leaks [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    const { server: up, stats } = stormUpstream();
    await using _up = up;
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, up.origin, {
        METRICS_ADDR: "127.0.0.1:0",
        // The storm's in-flight count must not hit the per-client cap (all from 127.0.0.1).
        MAX_CONCURRENT_REQUESTS: "1000",
        MAX_TOTAL_CONNECTIONS: "2000",
      }),
    );
    const token = await issuer.sign({ exp: Math.floor(Date.now() / 1000) + 3600 });
    const metrics = metricsUrl(gw.logs);
    const nothingLeft = async () => {
      const m = await scrape(metrics);
      return {
        activeRequests: metricSum(m, "mcpgate_active_requests"),
        activeConnections: metricSum(m, "mcpgate_active_connections"),
        upstreamOpen: up.open,
        upstreamEstablished: establishedTo(up.port),
        sseOpen: stats.sseOpen,
      };
    };
    const zero = { activeRequests: 0, activeConnections: 0, upstreamOpen: 0, upstreamEstablished: 0, sseOpen: 0 };
    const settle = async (timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      let last = await nothingLeft();
      while (JSON.stringify(last) !== JSON.stringify(zero) && Date.now() < deadline) {
        await sleep(100);
        last = await nothingLeft();
      }
      return last;
    };

    await t.step("disconnect mid-request body: the upstream sees the body cut within a second", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: gw.port });
      const cutBefore = stats.uploadsCut;
      await writeAll(
        conn,
        `POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\n` +
          `Content-Length: ${1024 * 1024}\r\n\r\n`,
      );
      await writeAll(conn, new Uint8Array(256 * 1024).fill(98));
      await sleep(200);
      const closedAt = performance.now();
      conn.close();
      assert(await waitFor(() => stats.uploadsCut > cutBefore, 3_000), "the upstream saw the body end early");
      const lag = stats.lastUploadCutAt - closedAt;
      assertLess(lag, 1_000, "ms from the client's close to the upstream seeing the cut body");
      assertEquals(await settle(), zero);
      figure(
        `client_disconnect_mid_body_${target.name}`,
        `upstream saw the body cut ${Math.round(lag)} ms after the client left`,
      );
    });

    await t.step("disconnect mid-response: the upstream stream ends within a second", async () => {
      const endedBefore = stats.sseEnded;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: gw.port });
      await writeAll(
        conn,
        `GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`,
      );
      let seen = "";
      const buf = new Uint8Array(4096);
      const guard = setTimeout(() => conn.close(), 5_000);
      while (!seen.includes('"i":2')) {
        const n = await conn.read(buf);
        if (n === null) break;
        seen += new TextDecoder().decode(buf.subarray(0, n));
      }
      clearTimeout(guard);
      const closedAt = performance.now();
      conn.close();
      assert(await waitFor(() => stats.sseEnded > endedBefore, 3_000), "the upstream stream ended");
      const lag = stats.lastSseEndAt - closedAt;
      assertLess(lag, 1_000, "ms from the client's close to the upstream stream ending");
      assertEquals(await settle(), zero);
      figure(
        `client_disconnect_mid_response_${target.name}`,
        `upstream stream ended ${Math.round(lag)} ms after the client left`,
      );
    });

    await t.step(
      `${STORM.toLocaleString("en")} disconnects in a row: no leaked request, connection or memory`,
      async () => {
        // Warm-up: a runtime keeps much of the heap it grew the first time (Deno: 100+ MiB
        // after a few thousand aborted requests, flat from then on), so the baseline is
        // taken after a first, smaller storm of the same mix.
        const startRss = memoryOf(gw.pid).rssMiB;
        await storm(gw.port, token, STORM / 4);
        assertEquals(await settle(), zero, "after the warm-up");
        await sleep(1_000);
        const baseline = memoryOf(gw.pid).rssMiB;
        const cpu0 = cpuSecondsOf(gw.pid);
        const sampler = sampleRss(gw.pid, 200);
        const ms = await storm(gw.port, token, STORM);
        const { peakMiB } = sampler.stop();
        const cpu = cpuSecondsOf(gw.pid) - cpu0;
        const left = await settle();
        assertEquals(left, zero, "active requests/connections (metrics), upstream connections, upstream streams");
        // Let the runtime return what it can (GC runs on idle).
        let after = memoryOf(gw.pid).rssMiB;
        for (let i = 0; i < 20 && after > baseline + 8; i++) {
          await sleep(250);
          after = memoryOf(gw.pid).rssMiB;
        }
        const res = await send(`${gw.url}/slow`, { token });
        assertEquals([res.status, res.text], [200, "slow"], "the gateway still serves");
        const bound = baseline + Math.max(32, baseline * 0.25);
        assertLessOrEqual(after, bound, `RSS after the storm (MiB), vs baseline ${round(baseline)} + max(32, 25%)`);
        figure(
          `client_disconnects_10000_${target.name}`,
          `${STORM} disconnects in ${round(ms / 1000, 1)} s (${
            Math.round(STORM / (ms / 1000))
          }/s, ${CONCURRENCY} at a time), ` +
            `gateway CPU ${round(cpu, 1)} s; RSS at start ${round(startRss)} MiB, after a ${
              STORM / 4
            } warm-up (baseline) ${round(baseline)} MiB, peak ${round(peakMiB)}, after ${
              round(after)
            }; left: 0 active requests, 0 active connections, 0 upstream connections`,
        );
      },
    );

    await gw.stopAndCheck(issuer.issued);
  });
}

Deno.test("in-process: 2,000 aborted requests leave no timer, op or in-flight count behind", async () => {
  await using issuer = await startIssuer();
  const { server: up, stats } = stormUpstream();
  await using _up = up;
  const metrics = new GatewayMetrics();
  const config = loadConfig({
    ...gatewayEnv(issuer, up.origin),
    MAX_CONCURRENT_REQUESTS: "1000",
    READ_TIMEOUT: "30s",
    UPSTREAM_TIMEOUT: "120s",
  });
  const gateway = createGateway(config, { log: silentLogger, metrics });
  try {
    await gateway.start();
    const token = await issuer.sign();
    const url = new URL("/", RESOURCE_URI).origin;
    const one = async (i: number) => {
      const ac = new AbortController();
      const kind = KINDS[i % KINDS.length]!;
      const headers = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
      let req: Request;
      if (kind === "mid-request-body") {
        let pushed = false;
        const body = new ReadableStream<Uint8Array>({
          pull(c) {
            if (!pushed) c.enqueue(encoder.encode("x".repeat(8192)));
            pushed = true;
            return new Promise<void>(() => {}); // never ends by itself
          },
        });
        // @ts-ignore: duplex is required for a streamed body
        req = new Request(`${url}/upload`, { method: "POST", headers, body, signal: ac.signal, duplex: "half" });
      } else {
        req = new Request(`${url}${kind === "before-headers" ? "/slow" : "/sse"}`, { headers, signal: ac.signal });
      }
      if (kind === "after-head") ac.abort();
      const pending = Promise.resolve(gateway.fetch(req, { remoteAddr: "127.0.0.1" }));
      if (kind === "before-headers" || kind === "mid-request-body") setTimeout(() => ac.abort(), 20);
      const res = await pending;
      if (kind === "mid-response" && res.body) {
        const reader = res.body.getReader();
        await reader.read();
        ac.abort();
        await reader.cancel().catch(() => {});
      } else {
        await res.body?.cancel().catch(() => {});
      }
    };
    let next = 0;
    await Promise.all(Array.from({ length: 25 }, async () => {
      while (next < 2_000) await one(next++);
    }));
    const ok = await waitFor(() => up.open === 0 && stats.sseOpen === 0, 5_000);
    assert(ok, `upstream connections ${up.open}, streams ${stats.sseOpen}`);
    const m = metrics.render();
    assert(/^mcpgate_active_requests 0$/m.test(m), `active requests:\n${m.match(/^mcpgate_active.*$/gm)}`);
    assert(/^mcpgate_active_connections 0$/m.test(m), `active connections:\n${m.match(/^mcpgate_active.*$/gm)}`);
    figure(
      "client_disconnects_in_process",
      `2000 aborted requests; upstream streams ended ${stats.sseEnded}, bodies cut ${stats.uploadsCut}, ` +
        `slow requests abandoned ${stats.slowAbandoned}; 0 in flight; no timer left (sanitizers)`,
    );
  } finally {
    gateway.close();
  }
});
