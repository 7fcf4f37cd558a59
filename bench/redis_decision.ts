/**
 * What one rate-limit decision costs: the shared store (SharedBucket → ioredis → the GCRA
 * script in a loopback redis-server) against the in-memory bucket, measured one decision
 * at a time (latency: p50/p99/max) and with 32 in flight (throughput).
 *
 *   deno run -A bench/redis_decision.ts [--count 20000] [--port 6379] [--time-limit 60]
 *   bun run bench/redis_decision.ts
 *
 * Without --port it starts its own redis-server (Debian's; `apt-get install redis-server`)
 * on a free loopback port, without persistence, and kills it by PID at the end. Keys rotate
 * over 1,000 client addresses with a 0.001 rps bucket, so most decisions are refusals: a
 * refusal runs the same script, reads the same key and returns early (no write), so the
 * figures hold for both. Bounded: --count decisions per phase and --time-limit seconds.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { RateLimiter } from "../src/limits/memory_bucket.ts";
import { connectRedis } from "../src/limits/redis_client.ts";
import { FailureReporter, SharedBucket } from "../src/limits/shared_bucket.ts";
import { silentLogger } from "../src/logging.ts";

const g = globalThis as unknown as { Deno?: { args: string[] }; process?: { argv: string[] } };
const args = g.Deno ? g.Deno.args : g.process!.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback;
};
const count = flag("count", 20_000);
const timeLimitMs = flag("time-limit", 60) * 1000;
let port = flag("port", 0);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function describe(name: string, ms: number[]): string {
  const s = ms.toSorted((a, b) => a - b);
  const us = (v: number) => `${(v * 1000).toFixed(1)} µs`;
  return `${name.padEnd(34)} n=${s.length}  p50 ${us(percentile(s, 0.5))}  p99 ${us(percentile(s, 0.99))}  ` +
    `max ${us(s[s.length - 1]!)}`;
}

const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

let redis: ChildProcess | undefined;
if (port === 0) {
  port = await freePort();
  redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  await sleep(300);
}
const conn = connectRedis(
  { host: "127.0.0.1", port, username: undefined, password: undefined, db: 0, tls: false, display: "" },
  silentLogger,
);
try {
  const deadline = Date.now() + 10_000;
  while (!conn.ready) {
    if (Date.now() > deadline) throw new Error(`No Redis on 127.0.0.1:${port}`);
    await sleep(20);
  }
  let failures = 0;
  const shared = new SharedBucket({
    scope: "ip",
    rps: 0.001,
    burst: 5,
    backend: conn,
    timeoutMs: 50,
    failClosed: false,
    fallback: new RateLimiter({ rps: 0.001, burst: 5 }),
    failures: new FailureReporter({ log: silentLogger, onFailure: () => failures++, redis: "", failClosed: false }),
  });
  const memory = new RateLimiter({ rps: 0.001, burst: 5 });
  const stop = Date.now() + timeLimitMs;

  // Warm-up: JIT, the script loaded (EVALSHA → NOSCRIPT → EVAL once), keys created.
  for (let i = 0; i < 2000; i++) await shared.take(ip(i % 1000));

  const sequential: number[] = [];
  for (let i = 0; i < count && Date.now() < stop; i++) {
    const t0 = performance.now();
    await shared.take(ip(i % 1000));
    sequential.push(performance.now() - t0);
  }
  const mem: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    memory.take(ip(i % 1000));
    mem.push(performance.now() - t0);
  }
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < count && Date.now() < stop) {
      next++;
      await shared.take(ip(next % 1000));
    }
  }));
  const concurrentS = (performance.now() - t0) / 1000;

  const runtime = g.Deno ? "deno" : "bun";
  console.log(`${runtime}, redis-server on 127.0.0.1:${port}, REDIS_TIMEOUT 50 ms`);
  console.log(describe("Redis decision, one at a time", sequential));
  console.log(describe("memory decision, one at a time", mem));
  console.log(
    `${"Redis decisions, 32 in flight".padEnd(34)} ${next} in ${concurrentS.toFixed(2)} s = ` +
      `${Math.round(next / concurrentS)}/s`,
  );
  console.log(`store failures (fallbacks): ${failures}`);
} finally {
  conn.close();
  redis?.kill("SIGKILL");
}
