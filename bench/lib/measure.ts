/** The measurements: wrk throughput rows, the fixed-rate latency row, SSE. */
import { baseEnv, BenchDir, median, run, sleep, spread } from "./common.ts";
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
  /**
   * CPU time of the system under test (user + system, all threads) per request, µs: the
   * median over the runs. Unlike req/s it hardly moves when other work takes the CPU away.
   */
  cpuUs?: number;
  note?: string;
}

/** User + system CPU seconds of a process, all threads (/proc/<pid>/stat, clock ticks of 10 ms). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export type Expect = "ok" | "reject";

export async function throughputRow(
  port: number,
  files: string[],
  o: Options,
  expect: Expect,
  t: Target | undefined,
  pid?: number,
): Promise<RowResult> {
  const runs: number[] = [];
  const cpu: number[] = [];
  const notes = new Set<string>();
  for (let i = 0; i < o.repeats; i++) {
    const file = files[i % files.length]!;
    // The previous run's last requests (cut off by wrk: 499) may still hold their slots.
    await sleep(250);
    const cpu0 = pid === undefined ? NaN : await cpuSeconds(pid);
    const res = await wrk(port, file, o.duration, o.connections);
    if (pid !== undefined) cpu.push(((await cpuSeconds(pid)) - cpu0) * 1e6 / res.requests);
    runs.push(res.rps);
    if (res.socketErrors) notes.add(`socket errors: ${res.socketErrors}`);
    if (expect === "ok" && res.non2xx > 0) notes.add(`${res.non2xx} non-2xx`);
    if (expect === "reject" && t?.auth && res.non2xx < res.requests) {
      notes.add(`${res.requests - res.non2xx} answered 2xx`);
    }
    if (res.wrapped && files.length > 1 && t?.caches) notes.add("pool wrapped");
  }
  return {
    value: median(runs),
    spread: spread(runs),
    runs,
    ...(cpu.length ? { cpuUs: median(cpu) } : {}),
    ...(notes.size ? { note: [...notes].join("; ") } : {}),
  };
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
