/**
 * A sustained mixed run through the gateway: valid, invalid and unauthenticated requests
 * at a fixed rate, plus long-lived and short SSE streams, for 60 s after a warm-up.
 * Passes with 0 errors and memory flat between the first and the last 10 s (the RSS floor,
 * i.e. the lowest sample of each window, may rise by at most max(8 MiB, 10%)).
 *
 *   deno run -A --import-map tests/offline_import_map.json bench/load_mixed.ts [options]
 *
 * Traffic (open loop, every 20 ms):
 *   - valid:   POST /mcp with one of 256 valid tokens      → must be 200 with the result
 *   - invalid: a token with a random signature, or expired  → must be 401 invalid_token
 *   - unauthenticated: no Authorization                     → must be 401 with a challenge
 *   - long streams: --streams GET /sse for the whole run    → every event, in order
 *   - short streams: --short-streams per second, 10 events each, same check
 * An error is any other status, a network error, a missing or out-of-order event, or a
 * request the loader could not send because --max-inflight were already out.
 */
import { figure, options, percentile, readEvents, round, sampler, saveResult, setup } from "./load_lib.ts";

const Help = `Usage: deno run -A --import-map tests/offline_import_map.json bench/load_mixed.ts [options]

  --target=NAME         gateway target: deno, bun, binary, bundle (default deno)
  --seconds=S           measured duration (default 60)
  --warmup=S            same traffic before the measured part, not counted (default 20): the runtime's
                        heap grows to its working size first (Deno: ~20 s at the default rate)
  --rate=R              short requests per second: 50% valid, 25% invalid, 25% unauthenticated (default 300)
  --streams=N           long-lived SSE streams across warm-up and run (default 50)
  --short-streams=N     short SSE streams opened per second (default 5)
  --window=S            memory compared between the first and last S seconds (default 10)
  --max-inflight=N      loader cap on short requests in flight (default 400)
  --flat-mib=M          allowed rise of the RSS floor between the windows, MiB (default 8) ...
  --flat-pct=P          ... or P% of the first window's floor, whichever is larger (default 10)
  --check-flat=false    report the memory figures but do not fail on them (short CI runs, where
                        Deno's heap is still growing to its working size)
  --bun-max-http=N      set BUN_CONFIG_MAX_HTTP_REQUESTS=N for the gateway (default: unset; the gateway then
                        raises Bun's fetch cap to its maximum, 65535, itself)`;

const o = options({
  target: "deno",
  seconds: 60,
  warmup: 20,
  rate: 300,
  streams: 50,
  "short-streams": 5,
  window: 10,
  "max-inflight": 400,
  "flat-mib": 8,
  "flat-pct": 10,
  "check-flat": true,
  "bun-max-http": 0,
}, Help);
if (o.seconds > 300 || o.rate > 5000 || o.streams > 2000) {
  throw new Error("Bounded: at most 300 s, 5000/s, 2000 streams");
}

const s = await setup(o.target, {
  MAX_CONCURRENT_REQUESTS: "5000",
  MAX_TOTAL_CONNECTIONS: "5000",
  ...(o["bun-max-http"] > 0 ? { BUN_CONFIG_MAX_HTTP_REQUESTS: String(o["bun-max-http"]) } : {}),
});
const exp = Math.floor(Date.now() / 1000) + 3600;
const valid = await Promise.all(Array.from({ length: 256 }, () => s.issuer.sign({ exp })));
const expired = await Promise.all(Array.from({ length: 16 }, () => s.issuer.bad.expired()));
const randomSig = () => {
  const t = valid[Math.floor(Math.random() * valid.length)]!.split(".");
  const sig = crypto.getRandomValues(new Uint8Array(256));
  return `${t[0]}.${t[1]}.${
    btoa(String.fromCharCode(...sig)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
  }`;
};
const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} });

type Kind = "valid" | "invalid" | "unauth" | "stream";
const stats = {
  sent: { valid: 0, invalid: 0, unauth: 0, stream: 0 } as Record<Kind, number>,
  errors: [] as string[],
  skipped: 0,
  latency: { valid: [] as number[], invalid: [] as number[], unauth: [] as number[] },
  events: 0,
};
let measuring = false;
const error = (what: string) => {
  if (stats.errors.length < 1000) stats.errors.push(what);
};
let inflight = 0;

async function short(kind: "valid" | "invalid" | "unauth") {
  if (inflight >= o["max-inflight"]) {
    stats.skipped++;
    error(`loader: ${inflight} requests in flight, could not send`);
    return;
  }
  inflight++;
  const t0 = performance.now();
  const counted = measuring;
  try {
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
    if (kind === "valid") headers.authorization = `Bearer ${valid[Math.floor(Math.random() * valid.length)]}`;
    if (kind === "invalid") {
      headers.authorization = `Bearer ${Math.random() < 0.8 ? randomSig() : expired[Math.floor(Math.random() * 16)]}`;
    }
    const res = await fetch(`${s.gw.url}/mcp`, { method: "POST", headers, body, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    const ms = performance.now() - t0;
    if (counted) {
      stats.sent[kind]++;
      stats.latency[kind].push(ms);
    }
    if (kind === "valid" && (res.status !== 200 || !text.includes('"tools"'))) {
      error(`valid: ${res.status} ${text.slice(0, 100)}`);
    }
    if (
      kind === "invalid" &&
      (res.status !== 401 || !/error="invalid_token"/.test(res.headers.get("www-authenticate") ?? ""))
    ) {
      error(`invalid: ${res.status} ${text.slice(0, 100)}`);
    }
    if (kind === "unauth" && (res.status !== 401 || !res.headers.get("www-authenticate")?.startsWith("Bearer "))) {
      error(`unauthenticated: ${res.status} ${text.slice(0, 100)}`);
    }
  } catch (e) {
    error(`${kind}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    inflight--;
  }
}

async function stream(k: string, events: number, intervalMs: number) {
  try {
    const res = await fetch(`${s.gw.url}/sse?events=${events}&interval_ms=${intervalMs}&stream=${k}`, {
      headers: { authorization: `Bearer ${valid[0]}`, accept: "text/event-stream" },
      signal: AbortSignal.timeout((events * intervalMs) + 30_000),
    });
    if (res.status !== 200 || !res.body) {
      error(`stream ${k}: status ${res.status}`);
      await res.body?.cancel();
      return;
    }
    stats.sent.stream++;
    let next = 1;
    let ended = false;
    await readEvents(res.body, (_id, event, data) => {
      const msg = JSON.parse(data);
      if (event === "end") {
        ended = true;
        if (msg.sent !== next - 1) error(`stream ${k}: ${next - 1} of ${msg.sent} events`);
        return;
      }
      if (msg.i !== next) error(`stream ${k}: event ${msg.i} after ${next - 1}`);
      next = msg.i + 1;
      stats.events++;
    });
    if (!ended) error(`stream ${k}: ended without the end event after ${next - 1}`);
  } catch (e) {
    error(`stream ${k}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

const total = o.warmup + o.seconds;
console.log(
  `[${o.target}] ${o.warmup} s warm-up + ${o.seconds} s: ${o.rate} req/s, ${o.streams} long streams, ` +
    `${o["short-streams"]} short streams/s; gateway pid ${s.gw.pid}`,
);
const tasks: Promise<void>[] = [];
for (let i = 0; i < o.streams; i++) tasks.push(stream(`long-${i}`, total * 4, 250));

const started = performance.now();
let sampleRun: ReturnType<typeof sampler> | undefined;
let carry = 0;
let shortCarry = 0;
let shortN = 0;
const tickMs = 20;
await new Promise<void>((done) => {
  const timer = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000;
    if (!measuring && elapsed >= o.warmup) {
      measuring = true;
      sampleRun = sampler(s.gw.pid, 500);
    }
    if (elapsed >= total) {
      clearInterval(timer);
      done();
      return;
    }
    carry += (o.rate * tickMs) / 1000;
    for (; carry >= 1; carry--) {
      const r = Math.random();
      tasks.push(short(r < 0.5 ? "valid" : r < 0.75 ? "invalid" : "unauth"));
    }
    shortCarry += (o["short-streams"] * tickMs) / 1000;
    for (; shortCarry >= 1; shortCarry--) tasks.push(stream(`short-${shortN++}`, 10, 100));
  }, tickMs);
});
await Promise.all(tasks);
const proc = sampleRun!.stop();
const upstreamStats = await s.upstream.stop().catch(() => ({}));
await s.gw.stop();
await s.issuer.close();

// RSS saw-tooths with garbage collection; a leak raises the floor. So each window is
// summarised by its mean and by its floor (lowest sample), and "flat" compares floors.
const win = (from: number, to: number) => {
  const xs = proc.samples.filter((x) => x.t >= from && x.t <= to).map((x) => x.rss);
  return { mean: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length), floor: Math.min(...xs) };
};
const first = win(0, o.window);
const last = win(o.seconds - o.window, o.seconds);
const tolerance = Math.max(o["flat-mib"], first.floor * o["flat-pct"] / 100);
const flat = last.floor - first.floor <= tolerance;
const lat = (xs: number[]) => ({ p50: round(percentile(xs, 50), 2), p99: round(percentile(xs, 99), 2) });
const summary = {
  target: o.target,
  seconds: o.seconds,
  warmup_seconds: o.warmup,
  rate: o.rate,
  requests: stats.sent,
  events: stats.events,
  errors: stats.errors.length,
  first_errors: stats.errors.slice(0, 10),
  loader_skipped: stats.skipped,
  latency_ms: {
    valid: lat(stats.latency.valid),
    invalid: lat(stats.latency.invalid),
    unauth: lat(stats.latency.unauth),
  },
  gateway: {
    rss_first_window_mib: { mean: round(first.mean), floor: round(first.floor) },
    rss_last_window_mib: { mean: round(last.mean), floor: round(last.floor) },
    rss_floor_delta_mib: round(last.floor - first.floor),
    flat_tolerance_mib: round(tolerance),
    peak_rss_mib: round(proc.peakRss),
    cpu_percent_avg: round(proc.cpuPercent),
    cpu_percent_peak_1s: round(proc.peakCpuPercent),
  },
  memory_flat: flat,
  /** Gateway RSS (MiB) each second of the measured part. */
  rss_series_mib: proc.samples.filter((_, i) => i % 2 === 0).map((x) => round(x.rss)),
  upstream: upstreamStats,
};
const file = await saveResult(`load_mixed-${o.target}`, summary);
console.log(JSON.stringify(summary, null, 2));
const n = stats.sent.valid + stats.sent.invalid + stats.sent.unauth;
figure(
  `load_mixed_${o.target}_${o.seconds}s`,
  `${stats.errors.length} errors in ${n} requests (${stats.sent.valid} valid, ${stats.sent.invalid} invalid, ` +
    `${stats.sent.unauth} unauthenticated) + ${stats.sent.stream} streams (${stats.events} events); p99 valid ` +
    `${summary.latency_ms.valid.p99} ms, invalid ${summary.latency_ms.invalid.p99} ms; gateway RSS first ${o.window} s ` +
    `${round(first.mean)} MiB (floor ${round(first.floor)}), last ${o.window} s ${round(last.mean)} MiB (floor ${
      round(last.floor)
    }): floor ${last.floor >= first.floor ? "+" : ""}${round(last.floor - first.floor)} MiB, ` +
    `${flat ? "flat" : "NOT flat"} (tolerance ${
      round(tolerance)
    }); CPU ${summary.gateway.cpu_percent_avg}% of a core avg`,
);
console.log(`saved ${file}`);
Deno.exit(stats.errors.length === 0 && (flat || !o["check-flat"]) ? 0 : 1);
