/**
 * mcp-gate against HAProxy's jwt_verify, side by side, on this machine, in one run.
 *
 *   deno task bench                  (= deno run -A bench/bench.ts)
 *   deno run -A bench/bench.ts --help
 *
 * On loopback only, it starts: an origin (nginx from Debian: a fixed ~200-byte JSON-RPC
 * answer on every path, and /sse proxied unbuffered to an SSE server that sends 1,000
 * events), a JWKS server (the same nginx, another port), and one system under test at a
 * time — nginx as a plain proxy (no auth), HAProxy 2.6 with jwt_verify, and mcp-gate on
 * Deno, on Bun and as the `bun build --compile` binary — pinned with taskset to the last
 * core, while wrk, the loaders and the origin share the others. Missing Debian tools
 * (nginx, haproxy, wrk, gcc) are installed with apt-get. See bench/README.md for what each
 * row measures. The table is printed as Markdown and kept, with the raw figures as JSON,
 * under .tmp/bench/results/.
 */

const Root = decodeURIComponent(new URL("../", import.meta.url).pathname);
const Work = `${Root}.tmp/bench`;
const Data = `${Work}/data`;
const Run = `${Work}/run`;
const Results = `${Work}/results`;
const BenchDir = `${Root}bench`;
const Bun = `${Root}node_modules/.bin/bun`;

const ResourceUri = "https://mcp.example.test/mcp";
/** Never contacted (JWKS_URI is given); loopback so that nothing could leave the machine. */
const Issuer = "http://127.0.0.1/bench-issuer";

// ---------------------------------------------------------------- options

const Help = `Usage: deno run -A bench/bench.ts [options]

  --targets=LIST      systems under test, in order (default: nginx,haproxy,deno,bun,binary);
                      also: naive-bun (the issue's ~40-line jose+fetch proxy), naive-deno
  --duration=S        seconds per measured wrk run (default 3)
  --repeats=N         measured runs per throughput row; the median is shown (default 3)
  --warmup=S          seconds of wrk before the first measured run of a target (default 2)
  --connections=N     wrk connections (default 64)
  --rate=R            requests/s of the fixed-rate latency row (default 5000)
  --latency-seconds=S seconds per fixed-rate run (default 5; run --repeats times)
  --startups=N        starts measured for "start to first 200" (default 5)
  --cold-pool=N       RS256 tokens per cold run (default 40000; signed once, kept in .tmp/bench/data)
  --flood-pool=N      bad-signature tokens per flood run (default 100000)
  --binary=PATH       use this compiled mcp-gate instead of building .tmp/bench/bin/mcp-gate
  --src=DIR           run the mcp-gate targets from another checkout (mod.ts, deno.json, node_modules
                      there), e.g. to measure a proposed change against HAProxy in the same run
  --keep-logs         keep the systems' access logs in .tmp/bench/run/
  --no-install        do not apt-get missing tools; fail instead
  --quick             --duration=2 --repeats=1 --warmup=1 --latency-seconds=3 --startups=3
`;

function parseOptions(args: string[]) {
  const o = {
    targets: ["nginx", "haproxy", "deno", "bun", "binary"],
    duration: 3,
    repeats: 3,
    warmup: 2,
    connections: 64,
    rate: 5000,
    latencySeconds: 5,
    startups: 5,
    coldPool: 40_000,
    floodPool: 100_000,
    binary: "",
    src: Root.replace(/\/$/, ""),
    keepLogs: false,
    install: true,
  };
  for (const a of args) {
    const [k, v = ""] = a.split("=", 2) as [string, string?];
    const num = () => {
      const n = Number(v);
      if (!(n > 0)) throw new Error(`${k} needs a positive number`);
      return n;
    };
    switch (k) {
      case "--help":
      case "-h":
        console.log(Help);
        Deno.exit(0);
        break;
      case "--targets":
        o.targets = v.split(",").filter(Boolean);
        break;
      case "--duration":
        o.duration = num();
        break;
      case "--repeats":
        o.repeats = Math.round(num());
        break;
      case "--warmup":
        o.warmup = num();
        break;
      case "--connections":
        o.connections = Math.round(num());
        break;
      case "--rate":
        o.rate = num();
        break;
      case "--latency-seconds":
        o.latencySeconds = num();
        break;
      case "--startups":
        o.startups = Math.round(num());
        break;
      case "--cold-pool":
        o.coldPool = Math.round(num());
        break;
      case "--flood-pool":
        o.floodPool = Math.round(num());
        break;
      case "--binary":
        o.binary = v;
        break;
      case "--src":
        o.src = v.startsWith("/") ? v.replace(/\/$/, "") : `${Deno.cwd()}/${v}`.replace(/\/$/, "");
        break;
      case "--keep-logs":
        o.keepLogs = true;
        break;
      case "--no-install":
        o.install = false;
        break;
      case "--quick":
        Object.assign(o, { duration: 2, repeats: 1, warmup: 1, latencySeconds: 3, startups: 3 });
        break;
      default:
        throw new Error(`unknown option ${a}\n\n${Help}`);
    }
  }
  const known = new Set(["nginx", "haproxy", "deno", "bun", "binary", "naive-bun", "naive-deno"]);
  for (const t of o.targets) if (!known.has(t)) throw new Error(`unknown target ${t}`);
  if (o.duration > 60 || o.latencySeconds > 60 || o.repeats > 20 || o.warmup > 60) {
    throw new Error("runs are capped: --duration, --latency-seconds and --warmup at 60 s, --repeats at 20");
  }
  return o;
}

// ---------------------------------------------------------------- small helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function run(
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

async function which(cmd: string): Promise<string | undefined> {
  const r = await run("sh", ["-c", `command -v ${cmd}`]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).toSorted((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** Half the range, as a share of the median: the noise shown next to a figure. */
const spread = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x));
  if (s.length < 2) return NaN;
  return (Math.max(...s) - Math.min(...s)) / 2 / median(s);
};

// ---------------------------------------------------------------- machine and pinning

async function cpuList(): Promise<number[]> {
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
async function pinSelf(): Promise<{ sutCpu: number | undefined; loadCpus: string }> {
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
    args: ["-c", load, Deno.execPath(), "run", "-A", `${BenchDir}/bench.ts`, ...Deno.args],
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

async function machineInfo() {
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
  };
}

// ---------------------------------------------------------------- tools

async function ensureTools(install: boolean) {
  const needed: Record<string, string[]> = {
    nginx: ["nginx"],
    haproxy: ["haproxy"],
    wrk: ["wrk"],
    gcc: ["gcc", "libc6-dev"],
    taskset: ["util-linux"],
  };
  const missing: string[] = [];
  for (const [cmd, pkgs] of Object.entries(needed)) {
    if (!(await which(cmd))) missing.push(...pkgs);
  }
  if (missing.length === 0) return;
  if (!install) throw new Error(`missing tools (Debian packages ${missing.join(" ")}); run without --no-install`);
  log(`installing from Debian: ${missing.join(" ")}`);
  // Packaged services must not start (and listen on 0.0.0.0:80) while installing: the
  // Debian policy-rc.d hook refuses that, if the machine does not have one already.
  const policy = "/usr/sbin/policy-rc.d";
  const hadPolicy = await exists(policy);
  if (!hadPolicy) await Deno.writeTextFile(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    const env = { ...Deno.env.toObject(), DEBIAN_FRONTEND: "noninteractive" };
    const upd = await run("apt-get", ["update", "-qq"], { env });
    if (upd.code !== 0) throw new Error(`apt-get update failed:\n${upd.stderr}`);
    const inst = await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
    if (inst.code !== 0) throw new Error(`apt-get install ${missing.join(" ")} failed:\n${inst.stderr}`);
  } finally {
    if (!hadPolicy) await Deno.remove(policy).catch(() => {});
  }
}

async function buildLoadgen(): Promise<string> {
  const out = `${Work}/loadgen`;
  const src = `${BenchDir}/loadgen.c`;
  const [s, o] = await Promise.all([Deno.stat(src), Deno.stat(out).catch(() => undefined)]);
  if (!o || (o.mtime?.getTime() ?? 0) < (s.mtime?.getTime() ?? 0)) {
    const r = await run("gcc", ["-O2", "-o", out, src, "-lpthread", "-lm"]);
    if (r.code !== 0) throw new Error(`gcc bench/loadgen.c failed:\n${r.stderr}`);
  }
  return out;
}

async function buildBinary(src: string): Promise<string> {
  const outdir = `${Work}/bin`;
  log(`building the compiled binary into .tmp/bench/bin${src !== Root.replace(/\/$/, "") ? ` from ${src}` : ""}`);
  try {
    if (src !== Root.replace(/\/$/, "")) throw new Error("--src given");
    const { compile } = await import("../scripts/build.ts");
    return await compile(outdir, () => {});
  } catch (e) {
    // Fall back to the flags documented for the release binary.
    log(`scripts/build.ts compile unavailable (${e instanceof Error ? e.message : e}); running bun build directly`);
    await Deno.mkdir(outdir, { recursive: true });
    const out = `${outdir}/mcp-gate`;
    const r = await run(Bun, [
      "build",
      `${src}/mod.ts`,
      "--compile",
      "--minify",
      "--bytecode",
      "--format=esm",
      "--no-compile-autoload-dotenv",
      "--no-compile-autoload-bunfig",
      "--compile-exec-argv=--max-http-header-size=262144",
      "--outfile",
      out,
    ]);
    if (r.code !== 0) throw new Error(`bun build --compile failed:\n${r.stderr}`);
    return out;
  }
}

// ---------------------------------------------------------------- keys and token pools

interface Pools {
  validRs: string;
  validEs: string;
  badReplay: string;
  flood: string[];
  cold: string[];
}

async function lineCount(path: string): Promise<number> {
  const r = await run("sh", ["-c", `wc -l < "${path}"`]);
  return Number(r.stdout.trim()) || 0;
}

async function makePools(o: ReturnType<typeof parseOptions>): Promise<Pools> {
  await Deno.mkdir(Data, { recursive: true });
  const manifestPath = `${Data}/manifest.json`;
  const manifest = await Deno.readTextFile(manifestPath).then(JSON.parse).catch(() => ({}));
  const now = Date.now() / 1000;
  const fresh = manifest.issuer === Issuer && manifest.audience === ResourceUri &&
    typeof manifest.created === "number" && manifest.created + 6 * 86400 > now &&
    await exists(`${Data}/jwks.json`) && await exists(`${Data}/rsa.pem`);
  const gen = (args: string[]) => run(Bun, [`${BenchDir}/gen_tokens.ts`, Data, Issuer, ResourceUri, ...args]);
  const check = (r: { code: number; stderr: string }, what: string) => {
    if (r.code !== 0) throw new Error(`gen_tokens ${what} failed:\n${r.stderr}`);
  };
  if (!fresh) {
    log("generating keys and token pools in .tmp/bench/data");
    for await (const e of Deno.readDir(Data)) await Deno.remove(`${Data}/${e.name}`, { recursive: true });
    check(await gen(["keys"]), "keys");
    check(await gen(["tokens", "valid_rs256", "RS256", "256"]), "valid_rs256");
    check(await gen(["tokens", "valid_es256", "ES256", "256"]), "valid_es256");
    check(await gen(["tokens", "badsig_replay", "RS256", "256", "badsig"]), "badsig_replay");
    await Deno.writeTextFile(manifestPath, JSON.stringify({ issuer: Issuer, audience: ResourceUri, created: now }));
  }
  const pools: Pools = {
    validRs: `${Data}/valid_rs256.txt`,
    validEs: `${Data}/valid_es256.txt`,
    badReplay: `${Data}/badsig_replay.txt`,
    flood: [],
    cold: [],
  };
  // One file per measured run, each token used once in the whole bench; made when missing
  // or too small. Cold tokens need a real RSA signature each (~1,700/s per core with Bun):
  // two generators in parallel, on the load cores.
  for (let i = 0; i < o.repeats; i++) {
    const flood = `${Data}/flood.${i}.txt`;
    if (!(await exists(flood)) || (await lineCount(flood)) < o.floodPool) {
      log(`bad-signature pool ${i + 1}/${o.repeats}: ${o.floodPool} tokens`);
      check(await gen(["tokens", "flood", "RS256", String(o.floodPool), "badsig", String(i)]), "flood");
    }
    pools.flood.push(flood);
    const cold = `${Data}/cold.${i}.txt`;
    if (!(await exists(cold)) || (await lineCount(cold)) < o.coldPool) {
      log(`cold RS256 pool ${i + 1}/${o.repeats}: signing ${o.coldPool} tokens (once; kept for 6 days)`);
      const half = Math.ceil(o.coldPool / 2);
      const parts = await Promise.all([
        gen(["tokens", `coldpart${i}`, "RS256", String(half), "valid", "a"]),
        gen(["tokens", `coldpart${i}`, "RS256", String(o.coldPool - half), "valid", "b"]),
      ]);
      parts.forEach((p) => check(p, "cold"));
      const r = await run("sh", [
        "-c",
        `cat "${Data}/coldpart${i}.a.txt" "${Data}/coldpart${i}.b.txt" > "${cold}" && rm "${Data}/coldpart${i}".*.txt`,
      ]);
      if (r.code !== 0) throw new Error(r.stderr);
    }
    pools.cold.push(cold);
  }
  return pools;
}

// ---------------------------------------------------------------- processes

interface Proc {
  name: string;
  pid: number;
  child: Deno.ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/** Starts `argv` with stdout and stderr appended to `logFile`, optionally pinned with taskset. */
function spawn(
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

async function peakRssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  return Number(/VmHWM:\s*(\d+)/.exec(status)?.[1] ?? NaN);
}

const baseEnv = () => {
  const e: Record<string, string> = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
  for (const k of ["HOME", "DENO_DIR", "TMPDIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) e[k] = v;
  }
  return e;
};

const Body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}';
/** The origin's fixed answer: a JSON-RPC result of about 200 bytes. */
const Answer = JSON.stringify({
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

async function probe(port: number, token: string | null, path = "/mcp"): Promise<number> {
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
async function firstOk(port: number, token: string, t0: number, proc: Proc | undefined, limitMs = 20_000) {
  let exited = false;
  proc?.child.status.then(() => (exited = true));
  for (;;) {
    if ((await probe(port, token)) === 200) return performance.now() - t0;
    if (exited) throw new Error(`${proc?.name} exited before serving; see ${proc?.logFile}`);
    if (performance.now() - t0 > limitMs) throw new Error(`${proc?.name ?? port}: no 200 within ${limitMs} ms`);
    await sleep(1);
  }
}

// ---------------------------------------------------------------- origin, JWKS, systems under test

function nginxTemps(dir: string) {
  return ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `${t}_temp_path ${dir}/tmp_${t};`).join(" ");
}

async function startOrigin(loadCpus: string) {
  const port = freePort();
  const jwksPort = freePort();
  const ssePort = freePort();
  const dir = `${Run}/origin`;
  await Deno.mkdir(`${dir}/tmp_client_body`, { recursive: true });
  const conf = `${dir}/nginx.conf`;
  await Deno.writeTextFile(
    conf,
    `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
  access_log off;
  ${nginxTemps(dir)}
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type application/json;
      return 200 '${Answer}';
    }
    location /sse {
      proxy_pass http://127.0.0.1:${ssePort};
      proxy_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:${jwksPort};
    location = /jwks.json { default_type application/json; alias ${Data}/jwks.json; }
  }
}
`,
  );
  const cpu = loadCpus || undefined;
  const env = baseEnv();
  const nginx = spawn("origin nginx", ["nginx", "-e", `${dir}/error.log`, "-p", dir, "-c", conf], {
    env,
    logFile: `${dir}/out.log`,
    cpu,
  });
  // The SSE server lives for at most two hours (the whole bench takes far less).
  const sse = spawn("sse server", [`${Work}/loadgen`, "sse-server", "127.0.0.1", String(ssePort), "7200"], {
    env,
    logFile: `${dir}/sse.log`,
    cpu,
  });
  const t0 = performance.now();
  while ((await probe(port, null)) !== 200) {
    if (performance.now() - t0 > 10_000) throw new Error(`origin nginx did not start; see ${dir}/error.log`);
    await sleep(20);
  }
  return { port, jwksPort, ssePort, procs: [nginx, sse] };
}

interface Target {
  key: string;
  label: string;
  /** Checks tokens (false: nginx, the plain proxy). */
  auth: boolean;
  /** Caches verified tokens (a cold pool that wraps is no longer cold). */
  caches: boolean;
  /** The command (already pinned) and environment that serve on `port`, logging to `logFile`. */
  prepare(port: number, logFile: string): Promise<{ argv: string[]; env: Record<string, string> }>;
}

const pin = (
  argv: string[],
  cpu: number | undefined,
) => (cpu !== undefined ? ["taskset", "-c", String(cpu), ...argv] : argv);

async function startTarget(t: Target, port: number, logFile: string): Promise<Proc> {
  const { argv, env } = await t.prepare(port, logFile);
  return spawn(t.label, argv, { env, logFile });
}

function gatewayEnv(port: number, origin: { port: number; jwksPort: number }, metricsPort: number) {
  return {
    ...baseEnv(),
    LISTEN_ADDR: `127.0.0.1:${port}`,
    UPSTREAM_URL: `http://127.0.0.1:${origin.port}`,
    RESOURCE_URI: ResourceUri,
    AUTHORIZATION_SERVER: Issuer,
    JWKS_URI: `http://127.0.0.1:${origin.jwksPort}/jwks.json`,
    RATE_LIMIT_RPS: "0",
    // Metrics stay on, as by default, but on loopback (the default :9090 is every interface).
    METRICS_ADDR: `127.0.0.1:${metricsPort}`,
  };
}

function makeTargets(
  origin: { port: number; jwksPort: number },
  sutCpu: number | undefined,
  binary: string,
  src: string,
): Record<string, Target> {
  const gateway = (key: string, label: string, argv: string[], caches = true): Target => ({
    key,
    label,
    auth: true,
    caches,
    prepare: (port) => Promise.resolve({ argv: pin(argv, sutCpu), env: gatewayEnv(port, origin, freePort()) }),
  });
  return {
    nginx: {
      key: "nginx",
      label: "nginx proxy, no auth",
      auth: false,
      caches: false,
      async prepare(port, logFile) {
        const dir = `${Run}/nginx-proxy`;
        await Deno.mkdir(`${dir}/tmp_client_body`, { recursive: true });
        const conf = `${dir}/nginx.conf`;
        await Deno.writeTextFile(
          conf,
          `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
  ${nginxTemps(dir)}
  log_format main '$remote_addr - [$time_local] "$request" $status $body_bytes_sent "$http_user_agent" $request_time';
  access_log ${logFile} main;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream origin { server 127.0.0.1:${origin.port}; keepalive 128; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_buffering off;
    }
  }
}
`,
        );
        return { argv: pin(["nginx", "-e", `${dir}/error.log`, "-p", dir, "-c", conf], sutCpu), env: baseEnv() };
      },
    },
    haproxy: {
      key: "haproxy",
      label: "HAProxy jwt_verify",
      auth: true,
      caches: false,
      async prepare(port) {
        const conf = `${Run}/haproxy.cfg`;
        // Same checks as the gateway: alg allowlist, signature (static PEM key: HAProxy has
        // no JWKS), iss, aud, sub present, exp against date(). The token is not forwarded,
        // the subject is (as the gateway's X-Auth-Subject). One thread, as on one core.
        await Deno.writeTextFile(
          conf,
          `global
  nbthread 1
  maxconn 8000
  log stdout format raw local0 info
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:${port}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny status 401 unless { var(txn.alg) -m str RS256 ES256 }
  http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.iss') -m str ${Issuer} }
  http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.aud') -m str ${ResourceUri} }
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('$.sub')
  http-request deny status 401 unless { var(txn.sub) -m found }
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request deny status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny status 401 if { var(txn.alg) -m str RS256 } !{ var(txn.bearer),jwt_verify(txn.alg,"${Data}/rsa.pem") -m int 1 }
  http-request deny status 401 if { var(txn.alg) -m str ES256 } !{ var(txn.bearer),jwt_verify(txn.alg,"${Data}/ec.pem") -m int 1 }
  http-request del-header authorization
  http-request set-header x-auth-subject %[var(txn.sub)]
  option forwardfor
  use_backend origin_stream if { path_beg /sse }
  default_backend origin
backend origin
  http-reuse always
  server origin 127.0.0.1:${origin.port}
# SSE as one would deploy it: without http-no-delay HAProxy holds a lone small event
# back (MSG_MORE) and the first one arrives ~200 ms late.
backend origin_stream
  option http-no-delay
  server origin 127.0.0.1:${origin.port}
`,
        );
        return { argv: pin(["haproxy", "-db", "-f", conf], sutCpu), env: baseEnv() };
      },
    },
    // As `deno task start` and `bun run mod.ts` from the checkout (deno.json's unstable flags apply).
    deno: gateway("deno", "mcp-gate on Deno", [
      Deno.execPath(),
      "run",
      "--allow-net",
      "--allow-env",
      "--config",
      `${src}/deno.json`,
      `${src}/mod.ts`,
    ]),
    bun: gateway("bun", "mcp-gate on Bun", [Bun, "run", `${src}/mod.ts`]),
    binary: gateway("binary", "mcp-gate binary", [binary]),
    "naive-bun": gateway("naive-bun", "naive Bun + jose", [Bun, `${BenchDir}/naive_proxy.ts`], false),
    "naive-deno": gateway("naive-deno", "naive Deno + jose", [
      Deno.execPath(),
      "run",
      "-A",
      `${BenchDir}/naive_proxy.ts`,
    ], false),
  };
}

// ---------------------------------------------------------------- measurements

interface WrkResult {
  rps: number;
  requests: number;
  non2xx: number;
  socketErrors: string;
  wrapped: boolean;
  pool: number;
}

async function wrk(port: number, tokens: string, seconds: number, connections: number): Promise<WrkResult> {
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

interface RowResult {
  value: number;
  spread: number;
  runs: number[];
  note?: string;
}

type Expect = "ok" | "reject";

async function throughputRow(
  port: number,
  files: string[],
  o: ReturnType<typeof parseOptions>,
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

interface LatencyResult {
  p50: number;
  p99: number;
  p999: number;
  runs: { p50: number; p99: number; p999: number; non200: number; errors: number }[];
  note?: string;
}

async function latencyRow(loadgen: string, port: number, tokens: string, o: ReturnType<typeof parseOptions>) {
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

async function sseRow(loadgen: string, port: number, token: string, intervalUs: number, repeats: number) {
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

// ---------------------------------------------------------------- table

interface TargetResult {
  key: string;
  label: string;
  auth: boolean;
  rows: Record<string, RowResult | undefined>;
  latency?: LatencyResult;
  ssePaced?: Awaited<ReturnType<typeof sseRow>>;
  sseBurst?: Awaited<ReturnType<typeof sseRow>>;
  rssMiB?: number;
  /** Peak RSS before the fixed-rate row (a runtime that falls behind queues requests there). */
  rssAfterWrkMiB?: number;
  startMs?: number;
  startRuns?: number[];
  logBytes?: number;
  error?: string;
}

const fmtRate = (x: number) =>
  !Number.isFinite(x)
    ? "—"
    : x >= 10_000
    ? `${(x / 1000).toFixed(1)}k`
    : x >= 1000
    ? `${(x / 1000).toFixed(2)}k`
    : x.toFixed(0);
const fmtMs = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? "—" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
const fmtRatio = (x: number) => (!Number.isFinite(x) ? "—" : x >= 10 ? x.toFixed(0) : x.toFixed(2));

function renderTable(
  results: TargetResult[],
  info: Awaited<ReturnType<typeof machineInfo>>,
  o: ReturnType<typeof parseOptions>,
  pinned: string,
) {
  const direct = results.find((r) => r.key === "direct");
  const hap = results.find((r) => r.key === "haproxy");
  const cols = results;
  const lines: string[] = [];
  const header = ["", ...cols.map((c) => c.label)];
  lines.push(`| ${header.join(" | ")} |`);
  lines.push(`|${header.map((_, i) => (i === 0 ? ":--" : "--:")).join("|")}|`);
  const cell = (
    value: string,
    v: number,
    d: number | undefined,
    h: number | undefined,
    isDirect: boolean,
    isHap: boolean,
    note?: string,
  ) => {
    const parts: string[] = [];
    if (!isDirect && d !== undefined && Number.isFinite(d) && Number.isFinite(v)) parts.push(`${fmtRatio(v / d)} D`);
    if (!isHap && h !== undefined && Number.isFinite(h) && Number.isFinite(v)) parts.push(`${fmtRatio(v / h)} H`);
    return `${value}${parts.length ? ` (${parts.join(", ")})` : ""}${note ? ` ⚠ ${note}` : ""}`;
  };
  const rowDefs: [string, string][] = [
    ["validRs", "valid RS256, pool of 256 (req/s)"],
    ["validEs", "valid ES256, pool of 256 (req/s)"],
    ["cold", "cold RS256, every token new (req/s)"],
    ["flood", "bad-signature flood, every token new (req/s)"],
    ["badReplay", "bad signature, pool of 256 replayed (req/s)"],
  ];
  for (const [key, name] of rowDefs) {
    const d = direct?.rows[key]?.value;
    const h = hap?.rows[key]?.value;
    lines.push(`| ${name} | ${
      cols.map((c) => {
        const r = c.rows[key];
        if (!r) return c.error ? "error" : "—";
        const sp = Number.isFinite(r.spread) ? `±${Math.round(r.spread * 100)}%` : "";
        const noAuth = !c.auth && c !== direct && (key === "flood" || key === "badReplay") ? " (no auth: proxied)" : "";
        return cell(`${fmtRate(r.value)}${sp}${noAuth}`, r.value, d, h, c === direct, c === hap, r.note);
      }).join(" | ")
    } |`);
  }
  const latencyLine = (label: string, pick: (l: LatencyResult) => number) => {
    const d = direct?.latency ? pick(direct.latency) : undefined;
    const h = hap?.latency ? pick(hap.latency) : undefined;
    lines.push(`| ${label} | ${
      cols.map((c) => {
        if (!c.latency) return "—";
        const v = pick(c.latency);
        return cell(`${fmtMs(v)} ms`, v, d, h, c === direct, c === hap, c.latency.note);
      }).join(" | ")
    } |`);
  };
  latencyLine(`p50 at ${o.rate}/s fixed rate`, (l) => l.p50);
  latencyLine(`p99 at ${o.rate}/s fixed rate`, (l) => l.p99);
  const sseLine = (label: string, pick: (r: TargetResult) => number | undefined) => {
    const d = direct ? pick(direct) : undefined;
    const h = hap ? pick(hap) : undefined;
    lines.push(`| ${label} | ${
      cols.map((c) => {
        const v = pick(c);
        if (v === undefined || !Number.isFinite(v)) return "—";
        return cell(`${fmtMs(v)} ms`, v, d, h, c === direct, c === hap);
      }).join(" | ")
    } |`);
  };
  sseLine("SSE time to first event", (r) => r.ssePaced?.first);
  sseLine("SSE 1,000 events, 1 ms apart", (r) => r.ssePaced?.all);
  sseLine("SSE 1,000 events, burst", (r) => r.sseBurst?.all);
  lines.push(
    `| peak RSS | ${
      cols.map((c) =>
        c.rssMiB === undefined
          ? "—"
          : cell(`${c.rssMiB.toFixed(1)} MiB`, c.rssMiB, undefined, hap?.rssMiB, true, c === hap) +
            (c.rssAfterWrkMiB !== undefined && c.rssAfterWrkMiB < c.rssMiB * 0.9
              ? ` (${c.rssAfterWrkMiB.toFixed(1)} before the fixed-rate row)`
              : "")
      ).join(" | ")
    } |`,
  );
  lines.push(
    `| start to first 200 | ${
      cols.map((c) =>
        c.startMs === undefined
          ? "—"
          : cell(`${fmtMs(c.startMs)} ms`, c.startMs, undefined, hap?.startMs, true, c === hap)
      ).join(" | ")
    } |`,
  );

  const meta = [
    `${info.model}, ${info.cores} cores; ${pinned}`,
    ...(o.src !== Root.replace(/\/$/, "") ? [`mcp-gate targets run from ${o.src}`] : []),
    `Deno ${info.deno}, Bun ${info.bun}, nginx ${info.nginx}, HAProxy ${info.haproxy}, wrk ${info.wrk}, Linux ${info.kernel}`,
    `wrk -t1 -c${o.connections}, ${o.repeats}× ${o.duration} s per row after ${o.warmup} s of warm-up, median shown (±: half the range); ` +
    `fixed rate: ${o.repeats}× ${o.latencySeconds} s at ${o.rate}/s over ${o.connections} connections, open loop; ` +
    `SSE: median of 5 (1 ms apart) and of 20 (burst) streams; start: median of ${o.startups}`,
    `(x D, y H): ratio to DIRECT and to HAProxy in this run (req/s: higher is better; ms and MiB: lower is better)`,
  ];
  return { table: lines.join("\n"), meta };
}

interface TargetCheck {
  text: string;
  met: boolean | undefined;
}

function checkTargets(results: TargetResult[]): TargetCheck[] {
  const get = (k: string) => results.find((r) => r.key === k);
  const d = get("direct"), h = get("haproxy"), bin = get("binary"), deno = get("deno");
  const out: TargetCheck[] = [];
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN;
  const add = (text: string, value: number, goal: number, higherBetter: boolean, unit = "×") => {
    const met = Number.isFinite(value) ? (higherBetter ? value >= goal : value <= goal) : undefined;
    out.push({
      text: `${text}: ${Number.isFinite(value) ? value.toFixed(2) : "—"}${unit} (goal ${
        higherBetter ? "≥" : "≤"
      } ${goal}${unit})`,
      met,
    });
  };
  add("binary req/s on valid RS256 ÷ HAProxy", ratio(bin?.rows.validRs?.value, h?.rows.validRs?.value), 1.5, true);
  add(
    "binary req/s on the bad-signature flood ÷ HAProxy",
    ratio(bin?.rows.flood?.value, h?.rows.flood?.value),
    1.0,
    true,
  );
  add("binary p99 at the fixed rate ÷ HAProxy's", ratio(bin?.latency?.p99, h?.latency?.p99), 1.0, false);
  add("binary SSE 1,000 events (1 ms apart) ÷ DIRECT", ratio(bin?.ssePaced?.all, d?.ssePaced?.all), 1.05, false);
  add("binary SSE 1,000 events (burst) ÷ DIRECT", ratio(bin?.sseBurst?.all, d?.sseBurst?.all), 1.05, false);
  for (const k of ["binary", "bun", "deno"]) {
    const r = get(k);
    if (r?.rssMiB !== undefined) add(`${r.label} peak RSS`, r.rssMiB, 64, false, " MiB");
  }
  add("binary start to first 200", bin?.startMs ?? NaN, 50, false, " ms");
  add("Deno req/s on valid RS256 ÷ HAProxy", ratio(deno?.rows.validRs?.value, h?.rows.validRs?.value), 0.75, true);
  return out;
}

// ---------------------------------------------------------------- main

async function main() {
  const o = parseOptions(Deno.args);
  const { sutCpu, loadCpus } = await pinSelf();
  const pinned = sutCpu !== undefined
    ? `system under test alone on CPU ${sutCpu}; wrk, loaders, origin and this script on CPU ${loadCpus}`
    : "no pinning (fewer than 2 cores or no taskset)";
  log(pinned);
  await Deno.mkdir(Run, { recursive: true });
  await Deno.mkdir(Results, { recursive: true });
  await ensureTools(o.install);
  const info = await machineInfo();
  const loadgen = await buildLoadgen();
  const pools = await makePools(o);
  const binary = o.targets.includes("binary") ? (o.binary || await buildBinary(o.src)) : "";
  const validToken = (await Deno.readTextFile(pools.validRs)).split("\n")[0]!;
  const origin = await startOrigin(loadCpus);
  const cleanup: Proc[] = [...origin.procs];
  const stopAll = async () => {
    for (const p of cleanup.reverse()) await p.stop();
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, async () => {
      await stopAll();
      Deno.exit(130);
    });
  }

  const targets = makeTargets(origin, sutCpu, binary, o.src);
  const results: TargetResult[] = [];
  try {
    const order: (Target | undefined)[] = [undefined, ...o.targets.map((k) => targets[k]!)];
    for (const t of order) {
      const key = t?.key ?? "direct";
      const label = t?.label ?? "DIRECT (origin)";
      const res: TargetResult = { key, label, auth: t?.auth ?? false, rows: {} };
      results.push(res);
      log(`— ${label}`);
      let proc: Proc | undefined;
      let port = origin.port;
      const logFile = `${Run}/${key}.log`;
      try {
        if (t) {
          await Deno.remove(logFile).catch(() => {});
          port = freePort();
          const t0 = performance.now();
          proc = await startTarget(t, port, logFile);
          cleanup.push(proc);
          const ms = await firstOk(port, validToken, t0, proc);
          log(`serving after ${ms.toFixed(1)} ms`);
        }
        // Correctness before speed: a valid token passes, a bad signature does not.
        const okStatus = await probe(port, validToken);
        const badToken = (await Deno.readTextFile(pools.badReplay)).split("\n")[0]!;
        const badStatus = await probe(port, badToken);
        if (okStatus !== 200 || (t?.auth && badStatus !== 401)) {
          throw new Error(`sanity check failed: valid token → ${okStatus}, bad signature → ${badStatus}`);
        }
        await wrk(port, pools.validRs, o.warmup, o.connections);
        log("valid RS256");
        res.rows.validRs = await throughputRow(port, [pools.validRs], o, "ok", t);
        await wrk(port, pools.validEs, 1, o.connections);
        log("valid ES256");
        res.rows.validEs = await throughputRow(port, [pools.validEs], o, "ok", t);
        log("cold RS256");
        res.rows.cold = await throughputRow(port, pools.cold, o, "ok", t);
        log("bad-signature flood");
        res.rows.flood = await throughputRow(port, pools.flood, o, "reject", t);
        await wrk(port, pools.badReplay, 1, o.connections);
        log("bad signature replayed");
        res.rows.badReplay = await throughputRow(port, [pools.badReplay], o, "reject", t);
        if (proc) res.rssAfterWrkMiB = (await peakRssKiB(proc.pid)) / 1024;
        log(`fixed rate ${o.rate}/s`);
        res.latency = await latencyRow(loadgen, port, pools.validRs, o);
        log("SSE");
        res.ssePaced = await sseRow(loadgen, port, validToken, 1000, 5);
        res.sseBurst = await sseRow(loadgen, port, validToken, 0, 20);
        if (proc) {
          res.rssMiB = (await peakRssKiB(proc.pid)) / 1024;
          res.logBytes = (await Deno.stat(logFile).catch(() => ({ size: 0 }))).size;
        }
      } catch (e) {
        res.error = e instanceof Error ? e.message : String(e);
        log(`${label}: ${res.error}`);
      } finally {
        await proc?.stop();
        if (proc && !o.keepLogs) await Deno.remove(logFile).catch(() => {});
      }
      if (t && !res.error) {
        // Start-up: fresh processes, each started by loadgen, which polls every 0.5 ms with a valid token.
        const starts: number[] = [];
        for (let i = 0; i < o.startups; i++) {
          const p = freePort();
          const startLog = `${Run}/${key}.start.log`;
          const { argv, env } = await t.prepare(p, startLog);
          const r = await run(
            loadgen,
            ["start", "127.0.0.1", String(p), "/mcp", validToken, startLog, "30", "--", ...argv],
            { env, clearEnv: true },
          );
          const ms = JSON.parse(r.stdout.trim() || "{}").ms;
          if (typeof ms === "number") starts.push(ms);
          else log(`start ${i + 1}: no 200 (see ${startLog}) ${r.stderr}`);
        }
        await Deno.remove(`${Run}/${key}.start.log`).catch(() => {});
        res.startRuns = starts;
        res.startMs = median(starts);
      }
    }
  } finally {
    await stopAll();
  }

  const { table, meta } = renderTable(results, info, o, pinned);
  const checks = checkTargets(results);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const md = [
    `### mcp-gate bench, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    ...meta.map((m) => `- ${m}`),
    "",
    table,
    "",
    "Targets:",
    "",
    ...checks.map((c) => `- ${c.met === undefined ? "?" : c.met ? "MET" : "MISSED"}: ${c.text}`),
    ...results.filter((r) => r.error).map((r) => `- ERROR ${r.label}: ${r.error}`),
    "",
  ].join("\n");
  await Deno.writeTextFile(`${Results}/bench-${stamp}.md`, md);
  await Deno.writeTextFile(
    `${Results}/bench-${stamp}.json`,
    JSON.stringify({ options: o, info, pinned, results, checks }, null, 2),
  );
  console.log(md);
  log(`saved .tmp/bench/results/bench-${stamp}.md and .json`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
