/**
 * Shared by bench/load_sse.ts and bench/load_mixed.ts: options, the upstream process
 * (bench/load_upstream.ts), the local issuer and the gateway under test (the black-box
 * suite's launcher, so the same targets: deno, bun, binary, bundle), process sampling,
 * and the result file. Everything listens on 127.0.0.1, port 0.
 */
import { startIssuer } from "../tests/_helpers/issuer.ts";
import { Gateway, gatewayEnv, gatewayTargets, REPO_ROOT } from "../tests/_helpers/gateway.ts";
import { cpuSecondsOf, memoryOf } from "../tests/faults/_lib.ts";

export { cpuSecondsOf, memoryOf };
export { figure, percentile, round } from "../tests/faults/_lib.ts";

/** `--name=value` and `--flag` options, with defaults and numeric parsing. */
export function options<T extends Record<string, string | number | boolean>>(defaults: T, help: string): T {
  const out: Record<string, string | number | boolean> = { ...defaults };
  for (const arg of Deno.args) {
    if (arg === "--help" || arg === "-h") {
      console.log(help);
      Deno.exit(0);
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1]! in defaults)) {
      console.error(`Unknown option ${arg}\n\n${help}`);
      Deno.exit(2);
    }
    const d = defaults[m[1]!];
    const v = m[2];
    out[m[1]!] = typeof d === "number" ? Number(v) : typeof d === "boolean" ? v !== "false" : v ?? "";
    if (typeof d === "number" && !Number.isFinite(out[m[1]!] as number)) {
      console.error(`--${m[1]} expects a number, got ${JSON.stringify(v)}`);
      Deno.exit(2);
    }
  }
  return out as T;
}

export interface UpstreamProc {
  url: string;
  pid: number;
  /** SIGTERM; resolves with the upstream's counters. */
  stop(): Promise<Record<string, number>>;
}

export async function startUpstreamProc(): Promise<UpstreamProc> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `${REPO_ROOT}bench/load_upstream.ts`],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 15_000);
  while (!buf.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error("load_upstream.ts exited before listening");
    buf += value;
  }
  clearTimeout(deadline);
  const port = JSON.parse(buf.split("\n")[0]!).port as number;
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      let rest = buf.slice(buf.indexOf("\n") + 1);
      for (;;) {
        const { value, done } = await lines.read();
        if (done) break;
        rest += value;
      }
      clearTimeout(killer);
      await child.status;
      const last = rest.trim().split("\n").filter(Boolean).at(-1);
      return last ? JSON.parse(last) : {};
    },
  };
}

export interface Setup {
  gw: Gateway;
  upstream: UpstreamProc;
  issuer: Awaited<ReturnType<typeof startIssuer>>;
  close(): Promise<void>;
}

/** Issuer, upstream process and the gateway (target by name) with the given extra env. */
export async function setup(targetName: string, env: Record<string, string>): Promise<Setup> {
  const target = gatewayTargets().find((t) => t.name === targetName);
  if (!target) {
    throw new Error(
      `Unknown target ${JSON.stringify(targetName)}: include it in MCPGATE_TEST_TARGETS (default "deno,bun")`,
    );
  }
  const issuer = await startIssuer();
  const upstream = await startUpstreamProc();
  let gw: Gateway;
  try {
    gw = await Gateway.start(target, gatewayEnv(issuer, upstream.url, env));
  } catch (e) {
    await upstream.stop();
    await issuer.close();
    throw e;
  }
  return {
    gw,
    upstream,
    issuer,
    async close() {
      await gw.stop();
      await upstream.stop();
      await issuer.close();
    },
  };
}

/** Samples RSS (MiB) and cumulative CPU seconds of a process every `everyMs`. */
export function sampler(pid: number, everyMs = 500) {
  const t0 = performance.now();
  const cpu0 = cpuSecondsOf(pid);
  const samples: { t: number; rss: number; cpu: number }[] = [];
  const take = () => {
    try {
      samples.push({ t: (performance.now() - t0) / 1000, rss: memoryOf(pid).rssMiB, cpu: cpuSecondsOf(pid) - cpu0 });
    } catch { /* process gone */ }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
      take();
      const last = samples.at(-1)!;
      return {
        samples,
        peakRss: Math.max(...samples.map((s) => s.rss)),
        cpuSeconds: last.cpu,
        /** Average CPU use over the run, in % of one core. */
        cpuPercent: (last.cpu / Math.max(0.001, last.t)) * 100,
        /** Highest CPU use over any one-second window, in % of one core. */
        peakCpuPercent: Math.max(
          0,
          ...samples.map((s, i) => {
            const j = samples.findIndex((x) => x.t >= s.t - 1);
            const a = samples[j]!;
            return i === j ? 0 : ((s.cpu - a.cpu) / (s.t - a.t)) * 100;
          }),
        ),
      };
    },
  };
}

/** Writes the run's figures to .tmp/load/<name>-<time>.json; returns the path. */
export async function saveResult(name: string, result: unknown): Promise<string> {
  const dir = `${REPO_ROOT}.tmp/load`;
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
  await Deno.writeTextFile(path, JSON.stringify(result, null, 2));
  return path;
}

/** Reads SSE events from a body, calling onEvent(id, event, data) per event. */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (id: string | undefined, event: string | undefined, data: string) => void,
): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let sep: number;
    while ((sep = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, sep);
      buf = buf.slice(sep + 2);
      let id: string | undefined;
      let event: string | undefined;
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) id = line.slice(4);
        else if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (id !== undefined || event !== undefined || data !== "") onEvent(id, event, data);
    }
  }
}
