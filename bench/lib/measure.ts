/** The measurements: wrk throughput rows, the fixed-rate latency row, SSE. */
import { baseEnv, BenchDir, median, run, spread } from "./common.ts";
import type { Options } from "./options.ts";
import type { Target } from "./targets.ts";
// ---------------------------------------------------------------- measurements

export interface WrkResult {
  rps: number;
  requests: number;
  non2xx: number;
  socketErrors: string;
  wrapped: boolean;
  pool: number;
}

export async function wrk(port: number, tokens: string, seconds: number, connections: number): Promise<WrkResult> {
  const r = await run("wrk", [
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--timeout",
    "5s",
    "-s",
    `${BenchDir}/tokens.lua`,
    `http://127.0.0.1:${port}/mcp`,
  ], { env: { ...baseEnv(), BENCH_TOKENS: tokens } });
  if (r.code !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const out = r.stdout;
  const bench = /BENCH pool=(\d+) sent=(\d+) wrapped=(\d)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s*([\d.]+)/.exec(out)?.[1] ?? NaN),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    non2xx: Number(/Non-2xx or 3xx responses:\s*(\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: /Socket errors: (.*)/.exec(out)?.[1] ?? "",
    wrapped: bench?.[3] === "1",
    pool: Number(bench?.[1] ?? NaN),
  };
}

export interface RowResult {
  value: number;
  spread: number;
  runs: number[];
  note?: string;
}

export type Expect = "ok" | "reject";

export async function throughputRow(
  port: number,
  files: string[],
  o: Options,
  expect: Expect,
  t: Target | undefined,
): Promise<RowResult> {
  const runs: number[] = [];
  const notes = new Set<string>();
  for (let i = 0; i < o.repeats; i++) {
    const file = files[i % files.length]!;
    const res = await wrk(port, file, o.duration, o.connections);
    runs.push(res.rps);
    if (res.socketErrors) notes.add(`socket errors: ${res.socketErrors}`);
    if (expect === "ok" && res.non2xx > 0) notes.add(`${res.non2xx} non-2xx`);
    if (expect === "reject" && t?.auth && res.non2xx < res.requests) {
      notes.add(`${res.requests - res.non2xx} answered 2xx`);
    }
    if (res.wrapped && files.length > 1 && t?.caches) notes.add("pool wrapped");
  }
  return { value: median(runs), spread: spread(runs), runs, ...(notes.size ? { note: [...notes].join("; ") } : {}) };
}

export interface LatencyResult {
  p50: number;
  p99: number;
  p999: number;
  runs: { p50: number; p99: number; p999: number; non200: number; errors: number }[];
  note?: string;
}

export async function latencyRow(loadgen: string, port: number, tokens: string, o: Options) {
  const runs: LatencyResult["runs"] = [];
  for (let i = 0; i < o.repeats; i++) {
    const r = await run(loadgen, [
      "rate",
      "127.0.0.1",
      String(port),
      "/mcp",
      tokens,
      String(o.rate),
      String(o.latencySeconds),
      String(o.connections),
    ]);
    if (r.code !== 0) throw new Error(`loadgen rate failed: ${r.stderr}`);
    const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
    runs.push({ p50: j.p50_ms, p99: j.p99_ms, p999: j.p999_ms, non200: j.non200, errors: j.errors });
  }
  const bad = runs.reduce((s, r) => s + r.non200 + r.errors, 0);
  const res: LatencyResult = {
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    p999: median(runs.map((r) => r.p999)),
    runs,
  };
  if (bad > 0) res.note = `${bad} non-200 or failed`;
  return res;
}

export async function sseRow(loadgen: string, port: number, token: string, intervalUs: number, repeats: number) {
  const r = await run(loadgen, [
    "sse",
    "127.0.0.1",
    String(port),
    `/sse?events=1000&interval_us=${intervalUs}`,
    token,
    "1000",
    String(repeats),
  ]);
  const j = JSON.parse(r.stdout.trim().split("\n").pop() || "{}");
  return {
    first: j.first_ms_median as number,
    all: j.all_ms_median as number,
    allP90: j.all_ms_p90 as number,
    failures: (j.failures as number) ?? repeats,
  };
}
