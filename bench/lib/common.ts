/** Shared by bench/bench.ts and bench/profile.ts: paths, process helpers, pinning, the probe request. */
export const Root = decodeURIComponent(new URL("../../", import.meta.url).pathname);
export const Work = `${Root}.tmp/bench`;
export const Data = `${Work}/data`;
export const Run = `${Work}/run`;
export const Results = `${Work}/results`;
export const BenchDir = `${Root}bench`;
export const Bun = `${Root}node_modules/.bin/bun`;

export const ResourceUri = "https://mcp.example.test/mcp";
/** Never contacted (JWKS_URI is given); loopback so that nothing could leave the machine. */
export const Issuer = "http://127.0.0.1/bench-issuer";

// ---------------------------------------------------------------- small helpers

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const log = (msg: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; clearEnv?: boolean } = {},
) {
  const out = await new Deno.Command(cmd, {
    args,
    ...(opts.env ? { env: opts.env } : {}),
    clearEnv: opts.clearEnv ?? false,
    cwd: opts.cwd ?? Root,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

export async function which(cmd: string): Promise<string | undefined> {
  const r = await run("sh", ["-c", `command -v ${cmd}`]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).toSorted((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** Half the range, as a share of the median: the noise shown next to a figure. */
export const spread = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x));
  if (s.length < 2) return NaN;
  return (Math.max(...s) - Math.min(...s)) / 2 / median(s);
};

// ---------------------------------------------------------------- machine and pinning

export async function cpuList(): Promise<number[]> {
  const r = await run("taskset", ["-pc", String(Deno.pid)]);
  const m = /list:\s*([\d,\-]+)/.exec(r.stdout);
  if (!m) return [0];
  const cpus: number[] = [];
  for (const part of m[1]!.split(",")) {
    const [a, b] = part.split("-").map(Number) as [number, number?];
    for (let c = a; c <= (b ?? a); c++) cpus.push(c);
  }
  return cpus;
}

/** Re-runs this script on every core but the last, so that only the system under test uses that one. */
export async function pinSelf(): Promise<{ sutCpu: number | undefined; loadCpus: string }> {
  if (Deno.env.get("BENCH_PINNED")) {
    const sut = Deno.env.get("BENCH_SUT_CPU");
    return { sutCpu: sut ? Number(sut) : undefined, loadCpus: Deno.env.get("BENCH_LOAD_CPUS") ?? "" };
  }
  if (!(await which("taskset"))) return { sutCpu: undefined, loadCpus: "" };
  const cpus = await cpuList();
  if (cpus.length < 2) return { sutCpu: undefined, loadCpus: "" };
  const sut = cpus[cpus.length - 1]!;
  const load = cpus.slice(0, -1).join(",");
  const child = new Deno.Command("taskset", {
    args: [
      "-c",
      load,
      Deno.execPath(),
      "run",
      "-A",
      decodeURIComponent(new URL(Deno.mainModule).pathname),
      ...Deno.args,
    ],
    env: { BENCH_PINNED: "1", BENCH_SUT_CPU: String(sut), BENCH_LOAD_CPUS: load },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => child.kill(sig));
  }
  Deno.exit((await child.status).code);
}

export async function machineInfo() {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const version = async (cmd: string, args: string[], re: RegExp) => {
    const r = await run(cmd, args).catch(() => ({ stdout: "", stderr: "" }));
    return re.exec(r.stdout + r.stderr)?.[1] ?? "?";
  };
  return {
    model,
    cores,
    deno: Deno.version.deno,
    bun: (await run(Bun, ["--version"]).catch(() => ({ stdout: "?" }))).stdout.trim(),
    nginx: await version("nginx", ["-v"], /nginx\/([\d.]+)/),
    haproxy: await version("haproxy", ["-v"], /version ([\d.]+)/),
    wrk: await version("wrk", ["-v"], /wrk \S*?([\d]+\.[\d.]+)/),
    kernel: (await run("uname", ["-r"])).stdout.trim(),
    load: (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" "),
  };
}

// ---------------------------------------------------------------- processes

export interface Proc {
  name: string;
  pid: number;
  child: Deno.ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/** Starts `argv` with stdout and stderr appended to `logFile`, optionally pinned with taskset. */
export function spawn(
  name: string,
  argv: string[],
  opts: { env: Record<string, string>; logFile: string; cpu?: number | string | undefined },
): Proc {
  const pinned = opts.cpu !== undefined ? ["taskset", "-c", String(opts.cpu), ...argv] : argv;
  // sh execs taskset, which execs the program: the pid is the program's (for VmHWM, kill).
  const child = new Deno.Command("sh", {
    args: ["-c", 'exec "$@" >>"$BENCH_LOG" 2>&1', "sh", ...pinned],
    env: { ...opts.env, BENCH_LOG: opts.logFile },
    clearEnv: true,
    cwd: Root,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  child.status.then(() => (exited = true));
  return {
    name,
    pid: child.pid,
    child,
    logFile: opts.logFile,
    async stop() {
      if (exited) return;
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const t = setTimeout(() => {
        if (!exited) {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }
      }, 5000);
      await child.status;
      clearTimeout(t);
    },
  };
}

export async function peakRssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  return Number(/VmHWM:\s*(\d+)/.exec(status)?.[1] ?? NaN);
}

export const baseEnv = () => {
  const e: Record<string, string> = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
  for (const k of ["HOME", "DENO_DIR", "TMPDIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) e[k] = v;
  }
  return e;
};

export const Body =
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}';
/** The origin's fixed answer: a JSON-RPC result of about 200 bytes. */
export const Answer = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  result: {
    content: [{
      type: "text",
      text: "hello from the bench origin: a fixed JSON-RPC answer of about two hundred bytes",
    }],
    structuredContent: { echoed: "hello" },
    isError: false,
  },
});

export async function probe(port: number, token: string | null, path = "/mcp"): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: Body,
      signal: AbortSignal.timeout(2000),
    });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

/** Milliseconds from `t0` to the first 200 for a valid token, polling every millisecond. */
export async function firstOk(port: number, token: string, t0: number, proc: Proc | undefined, limitMs = 20_000) {
  let exited = false;
  proc?.child.status.then(() => (exited = true));
  for (;;) {
    if ((await probe(port, token)) === 200) return performance.now() - t0;
    if (exited) throw new Error(`${proc?.name} exited before serving; see ${proc?.logFile}`);
    if (performance.now() - t0 > limitMs) throw new Error(`${proc?.name ?? port}: no 200 within ${limitMs} ms`);
    await sleep(1);
  }
}

/**
 * The gateway on Deno as `deno task start` runs it from checkout `src`: its flags (V8
 * flags, permissions) from deno.json's "start" task, with that deno.json as config.
 */
export function denoGatewayArgv(src: string, extra: string[] = []): string[] {
  let flags = ["--allow-net", "--allow-env"];
  try {
    const start: string = JSON.parse(Deno.readTextFileSync(`${src}/deno.json`)).tasks?.start ?? "";
    const words = start.split(/\s+/);
    const run = words.indexOf("run");
    const entry = words.indexOf("mod.ts");
    if (run !== -1 && entry > run) flags = words.slice(run + 1, entry);
  } catch { /* the default flags */ }
  return [Deno.execPath(), "run", ...flags, "--config", `${src}/deno.json`, ...extra, `${src}/mod.ts`];
}
