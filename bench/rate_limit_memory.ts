/**
 * Memory of the per-client limits under a flood of distinct client addresses.
 *
 * Every request claims a different client IP in a forged X-Forwarded-For, sent from
 * loopback, which TRUSTED_PROXIES=127.0.0.1/32 makes the gateway believe. Each address
 * would get its own token bucket; the limiter's cap must keep memory bounded anyway.
 *
 * In process (no network; the limiter and the same client-address code the gateway uses):
 *   deno run --v8-flags=--expose-gc bench/rate_limit_memory.ts [--count 100000] [--cap 100000]
 *   bun run bench/rate_limit_memory.ts [--count 100000]
 *
 * Against a running gateway (once the limiter is wired into app.ts):
 *   TRUSTED_PROXIES=127.0.0.1/32 RATE_LIMIT_RPS=10 RATE_LIMIT_BURST=20 LISTEN_ADDR=127.0.0.1:8080 \
 *     METRICS_ADDR=127.0.0.1:9090 UPSTREAM_URL=... RESOURCE_URI=... AUTHORIZATION_SERVER=... \
 *     deno run -A mod.ts &
 *   deno run -A bench/rate_limit_memory.ts --url http://127.0.0.1:8080/mcp --pid $! \
 *     [--metrics http://127.0.0.1:9090/metrics] [--count 100000] [--concurrency 32]
 * It prints the gateway's RSS (from /proc/PID/status, Linux) before and after, and the
 * status codes seen. No token is needed: the limiter runs before the token check.
 *
 * Bounded: --count requests at most, and --time-limit seconds (default 120) at most.
 */
import { ConcurrencyLimiter } from "../src/limits/concurrency.ts";
import { DefaultMaxBuckets, RateLimiter } from "../src/limits/memory_bucket.ts";
import { clientAddress, parseCidr } from "../src/net.ts";

interface Options {
  count: number;
  cap: number;
  url: string | undefined;
  pid: number | undefined;
  metrics: string | undefined;
  concurrency: number;
  timeLimitS: number;
}

const g = globalThis as unknown as {
  Deno?: { args: string[]; memoryUsage(): { heapUsed: number; rss: number }; readTextFile(p: string): Promise<string> };
  Bun?: { gc(force: boolean): void };
  process?: { argv: string[]; memoryUsage(): { heapUsed: number; rss: number } };
  gc?: () => void;
};

function parseArgs(): Options {
  const args = g.Deno ? g.Deno.args : g.process!.argv.slice(2);
  const opts: Options = {
    count: 100_000,
    cap: DefaultMaxBuckets,
    url: undefined,
    pid: undefined,
    metrics: undefined,
    concurrency: 32,
    timeLimitS: 120,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, value] = [args[i]!, args[i + 1]];
    const need = () => {
      if (value === undefined) throw new Error(`${flag} needs a value`);
      i++;
      return value;
    };
    if (flag === "--count") opts.count = Number(need());
    else if (flag === "--cap") opts.cap = Number(need());
    else if (flag === "--url") opts.url = need();
    else if (flag === "--pid") opts.pid = Number(need());
    else if (flag === "--metrics") opts.metrics = need();
    else if (flag === "--concurrency") opts.concurrency = Number(need());
    else if (flag === "--time-limit") opts.timeLimitS = Number(need());
    else throw new Error(`Unknown argument ${JSON.stringify(flag)}`);
  }
  return opts;
}

/** The i-th distinct client address: 10.0.0.0/8, then 172.16.0.0/12 and so on. */
function clientIp(i: number): string {
  return `${10 + Math.floor(i / 16_777_216)}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function memory(): { heapUsed: number; rss: number } {
  g.gc?.();
  g.Bun?.gc(true);
  return (g.Deno ?? g.process!).memoryUsage();
}

const mb = (n: number) => `${(n / 1_048_576).toFixed(1)} MiB`;

function inProcess(opts: Options): void {
  const trusted = [parseCidr("127.0.0.1/32")!];
  const limiter = new RateLimiter({ rps: 10, burst: 20, maxEntries: opts.cap });
  const concurrency = new ConcurrencyLimiter(100, 1000);
  const deadline = performance.now() + opts.timeLimitS * 1000;
  const before = memory();
  console.log(`in process: ${opts.count} distinct client IPs, bucket cap ${opts.cap}`);
  console.log(`  before: heap ${mb(before.heapUsed)}, rss ${mb(before.rss)}`);

  for (const pass of [1, 2]) {
    const start = performance.now();
    let refused = 0;
    let maxSize = 0;
    let done = 0;
    for (let i = 0; i < opts.count && performance.now() < deadline; i++, done++) {
      const headers = new Headers({ "x-forwarded-for": clientIp(i + (pass - 1) * opts.count) });
      const ip = clientAddress("127.0.0.1", headers, trusted);
      if (limiter.take(ip) !== 0) refused++;
      const release = concurrency.acquire(ip);
      if (typeof release === "function") release();
      if (limiter.size > maxSize) maxSize = limiter.size;
    }
    const ms = performance.now() - start;
    const after = memory();
    console.log(
      `  pass ${pass}: ${done} requests in ${ms.toFixed(0)} ms (${Math.round(done / (ms / 1000))}/s), ` +
        `${refused} refused; buckets held ${limiter.size} (max ${maxSize}), concurrency keys ${concurrency.keys}`,
    );
    console.log(`  after pass ${pass}: heap ${mb(after.heapUsed)}, rss ${mb(after.rss)}`);
    if (maxSize > opts.cap) throw new Error(`The limiter held ${maxSize} buckets, more than its cap ${opts.cap}`);
  }
}

async function rss(pid: number | undefined): Promise<string> {
  if (pid === undefined || !g.Deno) return "n/a";
  try {
    const status = await g.Deno.readTextFile(`/proc/${pid}/status`);
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? mb(Number(kb) * 1024) : "n/a";
  } catch {
    return "n/a";
  }
}

async function scrape(url: string | undefined): Promise<string> {
  if (!url) return "";
  try {
    const text = await (await fetch(url)).text();
    return text.split("\n").filter((l) =>
      /^mcpgate_(rate_limited_total|concurrent_limited_total|active_connections|active_requests)/.test(l)
    ).join("; ");
  } catch (e) {
    return `metrics unavailable: ${e instanceof Error ? e.message : e}`;
  }
}

async function againstGateway(opts: Options, url: string): Promise<void> {
  console.log(`gateway ${url}: ${opts.count} distinct client IPs, ${opts.concurrency} at a time`);
  console.log(`  before: gateway rss ${await rss(opts.pid)} ${await scrape(opts.metrics)}`);
  const deadline = performance.now() + opts.timeLimitS * 1000;
  const statuses = new Map<string, number>();
  let next = 0;
  const start = performance.now();
  const worker = async () => {
    while (next < opts.count && performance.now() < deadline) {
      const i = next++;
      let key: string;
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: {
            "x-forwarded-for": clientIp(i),
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
          },
          body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
        });
        await res.body?.cancel();
        key = String(res.status);
      } catch (e) {
        key = e instanceof Error ? e.name : "error";
      }
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (i > 0 && i % 50_000 === 0) console.log(`  ${i} sent, gateway rss ${await rss(opts.pid)}`);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const ms = performance.now() - start;
  console.log(
    `  ${next} requests in ${(ms / 1000).toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
  );
  console.log(`  after: gateway rss ${await rss(opts.pid)} ${await scrape(opts.metrics)}`);
}

const opts = parseArgs();
if (opts.url) await againstGateway(opts, opts.url);
else inProcess(opts);
