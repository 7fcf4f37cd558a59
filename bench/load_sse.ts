/**
 * 1,000 concurrent SSE streams through the gateway for 30 s: every event delivered, in
 * order; the gateway's peak RSS and CPU.
 *
 *   deno run -A --import-map tests/offline_import_map.json bench/load_sse.ts [options]
 *
 * Each stream is a GET /sse through the gateway with a valid token; the upstream
 * (bench/load_upstream.ts, its own process) sends one event every --interval-ms for
 * --seconds, numbered from 1, then `event: end` with the count it sent. A stream passes
 * when it saw every number from 1 to that count, in order, then the end event. Prints the
 * figures (FIGURE lines), keeps them in .tmp/load/, and exits 1 if any stream failed.
 */
import { figure, options, percentile, readEvents, round, sampler, saveResult, setup } from "./load_lib.ts";

const Help = `Usage: deno run -A --import-map tests/offline_import_map.json bench/load_sse.ts [options]

  --target=NAME       gateway target: deno, bun, binary, bundle (default deno)
  --streams=N         concurrent streams (default 1000)
  --seconds=S         how long each stream runs (default 30)
  --interval-ms=MS    time between events on a stream (default 250)
  --ramp-ms=MS        spread the stream openings over this long (default 2000)
  --bun-max-http=N    set BUN_CONFIG_MAX_HTTP_REQUESTS=N for the gateway (default: unset; the gateway then
                      raises Bun's fetch cap to its maximum, 65535, itself)`;

const o = options(
  { target: "deno", streams: 1000, seconds: 30, "interval-ms": 250, "ramp-ms": 2000, "bun-max-http": 0 },
  Help,
);
if (o.streams > 5000 || o.seconds > 120) throw new Error("Bounded: at most 5000 streams and 120 s");
const events = Math.max(1, Math.round((o.seconds * 1000) / o["interval-ms"]));

const s = await setup(o.target, {
  // Every stream comes from 127.0.0.1: lift the per-client and total caps above the test.
  MAX_CONCURRENT_REQUESTS: String(o.streams + 100),
  MAX_TOTAL_CONNECTIONS: String(o.streams + 100),
  LOG_LEVEL: "info",
  ...(o["bun-max-http"] > 0 ? { BUN_CONFIG_MAX_HTTP_REQUESTS: String(o["bun-max-http"]) } : {}),
});
const token = await s.issuer.sign({ exp: Math.floor(Date.now() / 1000) + 3600 });

interface StreamResult {
  ok: boolean;
  received: number;
  expected: number;
  outOfOrder: number;
  firstEventMs: number;
  error?: string;
}

const lags: number[] = [];
const started = performance.now();
const sample = sampler(s.gw.pid, 500);
console.log(
  `[${o.target}] ${o.streams} streams x ${events} events (every ${
    o["interval-ms"]
  } ms, ${o.seconds} s), gateway pid ${s.gw.pid}`,
);

async function oneStream(k: number): Promise<StreamResult> {
  await new Promise((r) => setTimeout(r, (k * o["ramp-ms"]) / o.streams));
  const t0 = performance.now();
  const r: StreamResult = { ok: false, received: 0, expected: events, outOfOrder: 0, firstEventMs: NaN };
  const abort = AbortSignal.timeout((o.seconds + 30) * 1000 + o["ramp-ms"]);
  try {
    const res = await fetch(`${s.gw.url}/sse?events=${events}&interval_ms=${o["interval-ms"]}&stream=${k}`, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      signal: abort,
    });
    if (res.status !== 200 || !res.body) {
      r.error = `status ${res.status}`;
      await res.body?.cancel();
      return r;
    }
    let next = 1;
    let ended = false;
    await readEvents(res.body, (id, event, data) => {
      if (event === "end") {
        ended = true;
        r.expected = JSON.parse(data).sent;
        return;
      }
      const msg = JSON.parse(data);
      if (r.received === 0) r.firstEventMs = performance.now() - t0;
      r.received++;
      if (Number(id) !== next || msg.i !== next || msg.k !== String(k)) r.outOfOrder++;
      next = msg.i + 1;
      if (r.received % 8 === 1) lags.push(Date.now() - msg.t);
    });
    r.ok = ended && r.outOfOrder === 0 && r.received === r.expected;
    if (!ended) r.error = "no end event";
  } catch (e) {
    r.error = e instanceof Error ? e.message : String(e);
  }
  return r;
}

const results = await Promise.all(Array.from({ length: o.streams }, (_, k) => oneStream(k)));
const wall = (performance.now() - started) / 1000;
const proc = sample.stop();
const upstreamStats = await s.upstream.stop().catch(() => ({}));
await s.gw.stop();
await s.issuer.close();

const failed = results.filter((r) => !r.ok);
const received = results.reduce((n, r) => n + r.received, 0);
const summary = {
  target: o.target,
  streams: o.streams,
  seconds: o.seconds,
  interval_ms: o["interval-ms"],
  events_expected: results.reduce((n, r) => n + r.expected, 0),
  events_received: received,
  streams_failed: failed.length,
  out_of_order: results.reduce((n, r) => n + r.outOfOrder, 0),
  first_failures: failed.slice(0, 5).map((r) => ({ ...r })),
  wall_seconds: round(wall, 1),
  events_per_second: Math.round(received / wall),
  first_event_ms: {
    p50: round(percentile(results.map((r) => r.firstEventMs).filter(Number.isFinite), 50)),
    p99: round(percentile(results.map((r) => r.firstEventMs).filter(Number.isFinite), 99)),
  },
  delivery_lag_ms: { p50: percentile(lags, 50), p99: percentile(lags, 99), max: Math.max(...lags) },
  gateway: {
    peak_rss_mib: round(proc.peakRss),
    start_rss_mib: round(proc.samples[0]!.rss),
    cpu_seconds: round(proc.cpuSeconds, 1),
    cpu_percent_avg: round(proc.cpuPercent),
    cpu_percent_peak_1s: round(proc.peakCpuPercent),
  },
  upstream: upstreamStats,
};
const file = await saveResult(`load_sse-${o.target}`, summary);
console.log(JSON.stringify(summary, null, 2));
figure(
  `load_sse_${o.target}_${o.streams}x${o.seconds}s`,
  `${summary.events_received}/${summary.events_expected} events in order on ${
    o.streams - failed.length
  }/${o.streams} streams ` +
    `(${summary.events_per_second} events/s, lag p50 ${summary.delivery_lag_ms.p50} ms p99 ${summary.delivery_lag_ms.p99} ms); ` +
    `gateway peak RSS ${summary.gateway.peak_rss_mib} MiB (start ${summary.gateway.start_rss_mib}), ` +
    `CPU ${summary.gateway.cpu_percent_avg}% of a core on average, ${summary.gateway.cpu_percent_peak_1s}% peak (1 s)`,
);
console.log(`saved ${file}`);
Deno.exit(failed.length === 0 && summary.events_received === summary.events_expected ? 0 : 1);
