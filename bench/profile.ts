/**
 * CPU profiles of the gateway under the bench's load, as top-20 self-time tables.
 *
 *   deno task profile                                   (= deno run -A bench/profile.ts)
 *   deno run -A bench/profile.ts --src=/work/perf-before --name=before
 *   deno run -A bench/profile.ts --help
 *
 * The same set-up as bench/bench.ts (nginx origin and JWKS server, the gateway alone on the
 * last core, wrk -t1 -c64 with bench/tokens.lua on the others): for each runtime and row, a
 * fresh gateway started with its runtime's CPU profiler (`bun --cpu-prof`, `deno run
 * --cpu-prof`), a warm-up, then the measured wrk run; on SIGTERM the runtime writes the
 * .cpuprofile, and the samples of the measured run's last seconds become the table.
 * Bun runs the source with the flag scripts/build.ts bakes into the compiled binary
 * (--max-http-header-size); minify and bytecode change start-up, not the steady state.
 *
 * Writes bench/profiles/<name>-<runtime>.md (or --out=DIR) and keeps the raw profiles in
 * .tmp/bench/profiles/.
 */
import {
  BenchDir,
  Bun,
  denoGatewayArgv,
  firstOk,
  freePort,
  log,
  pinSelf,
  type Proc,
  Root,
  Run,
  run,
  spawn,
  Work,
} from "./lib/common.ts";
import { buildLoadgen, ensureTools, makePools, type Pools, startOrigin } from "./lib/setup.ts";
import { gatewayEnv, pin } from "./lib/targets.ts";
import { wrk } from "./lib/measure.ts";
import { type CpuProfile, renderSummary, summarize } from "./cpuprofile.ts";

const Help = `Usage: deno run -A bench/profile.ts [options]

  --runtimes=LIST   bun,deno (default both)
  --rows=LIST       valid (valid RS256, pool of 256), flood (bad-signature flood, every token new),
                    replay (bad signature, pool of 256 replayed); default valid,flood
  --seconds=S       measured wrk run per row (default 10)
  --warmup=S        wrk with valid tokens before it (default 3)
  --src=DIR         the checkout to profile (default this one)
  --name=NAME       output file prefix (default "profile"): bench/profiles/NAME-<runtime>.md
  --out=DIR         output directory (default bench/profiles)
  --extra-env=K=V,… more gateway environment (e.g. LOG_LEVEL=warn)
  --no-install      do not apt-get missing tools
`;

interface ProfileOptions {
  runtimes: string[];
  rows: string[];
  seconds: number;
  warmup: number;
  src: string;
  name: string;
  out: string;
  extraEnv: Record<string, string>;
  install: boolean;
}

function parse(args: string[]): ProfileOptions {
  const o: ProfileOptions = {
    runtimes: ["bun", "deno"],
    rows: ["valid", "flood"],
    seconds: 10,
    warmup: 3,
    src: Root.replace(/\/$/, ""),
    name: "profile",
    out: `${BenchDir}/profiles`,
    extraEnv: {},
    install: true,
  };
  for (const a of args) {
    const eq = a.indexOf("=");
    const k = eq === -1 ? a : a.slice(0, eq);
    const v = eq === -1 ? "" : a.slice(eq + 1);
    const list = () => v.split(",").filter(Boolean);
    if (k === "--help" || k === "-h") {
      console.log(Help);
      Deno.exit(0);
    } else if (k === "--runtimes") o.runtimes = list();
    else if (k === "--rows") o.rows = list();
    else if (k === "--seconds") o.seconds = Math.min(60, Number(v));
    else if (k === "--warmup") o.warmup = Math.min(30, Number(v));
    else if (k === "--src") o.src = (v.startsWith("/") ? v : `${Deno.cwd()}/${v}`).replace(/\/$/, "");
    else if (k === "--name") o.name = v;
    else if (k === "--out") o.out = v.startsWith("/") ? v : `${Deno.cwd()}/${v}`;
    else if (k === "--extra-env") {
      for (const kv of list()) o.extraEnv[kv.split("=")[0]!] = kv.slice(kv.indexOf("=") + 1);
    } else if (k === "--no-install") o.install = false;
    else throw new Error(`unknown option ${a}\n\n${Help}`);
  }
  for (const r of o.runtimes) if (r !== "bun" && r !== "deno") throw new Error(`unknown runtime ${r}`);
  for (const r of o.rows) if (!RowNames[r]) throw new Error(`unknown row ${r}`);
  if (!(o.seconds > 0) || !(o.warmup >= 0)) throw new Error("--seconds and --warmup need numbers");
  return o;
}

const RowNames: Record<string, string> = {
  valid: "valid RS256, pool of 256",
  flood: "bad-signature flood, every token new",
  replay: "bad signature, pool of 256 replayed",
};

/** The gateway's command line with the runtime's CPU profiler writing into `dir`. */
function profiledArgv(runtime: string, src: string, dir: string): string[] {
  const flags = ["--cpu-prof", `--cpu-prof-dir=${dir}`];
  return runtime === "bun"
    ? [Bun, "--max-http-header-size=262144", ...flags, "run", `${src}/mod.ts`]
    : denoGatewayArgv(src, flags);
}

async function newestProfile(dir: string): Promise<string | undefined> {
  let best: { path: string; mtime: number } | undefined;
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".cpuprofile")) continue;
    const st = await Deno.stat(`${dir}/${e.name}`);
    const mtime = st.mtime?.getTime() ?? 0;
    if (!best || mtime > best.mtime) best = { path: `${dir}/${e.name}`, mtime };
  }
  return best?.path;
}

interface RowProfile {
  row: string;
  rps: number;
  non2xx: number;
  requests: number;
  table: string;
  file: string;
}

async function profileRow(
  runtime: string,
  row: string,
  o: ProfileOptions,
  ctx: { pools: Pools; origin: { port: number; jwksPort: number }; sutCpu: number | undefined },
): Promise<RowProfile> {
  const dir = `${Work}/profiles/${o.name}-${runtime}-${row}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const port = freePort();
  const env: Record<string, string> = { ...gatewayEnv(port, ctx.origin, freePort()), ...o.extraEnv };
  // Bun's sampling profiler suspends threads with SIGPWR; one pending across the gateway's
  // execve (raising Bun's fetch cap) kills the new image. Set the cap it would raise to.
  if (runtime === "bun") env.BUN_CONFIG_MAX_HTTP_REQUESTS ??= "65535";
  const logFile = `${Run}/profile-${runtime}.log`;
  await Deno.remove(logFile).catch(() => {});
  const t0 = performance.now();
  const proc: Proc = spawn(`${runtime} (profiled)`, pin(profiledArgv(runtime, o.src, dir), ctx.sutCpu), {
    env,
    logFile,
  });
  try {
    const validToken = (await Deno.readTextFile(ctx.pools.validRs)).split("\n")[0]!;
    await firstOk(port, validToken, t0, proc);
    if (o.warmup > 0) await wrk(port, ctx.pools.validRs, o.warmup, 64);
    const pool = row === "valid" ? ctx.pools.validRs : row === "flood" ? ctx.pools.flood[0]! : ctx.pools.badReplay;
    if (row === "replay") await wrk(port, pool, 1, 64);
    log(`${runtime}: ${RowNames[row]} for ${o.seconds} s under the profiler`);
    const res = await wrk(port, pool, o.seconds, 64);
    await proc.stop();
    const file = await newestProfile(dir);
    if (!file) throw new Error(`no .cpuprofile in ${dir} (see ${logFile})`);
    const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
    const summary = summarize(profile, { lastMs: o.seconds * 1000, root: o.src, top: 20 });
    return {
      row,
      rps: res.rps,
      non2xx: res.non2xx,
      requests: res.requests,
      table: renderSummary(summary),
      file: file.slice(Root.length),
    };
  } finally {
    await proc.stop();
  }
}

async function describeSource(src: string): Promise<string> {
  const head = await run("git", ["-C", src, "log", "-1", "--format=%h %s"]);
  const dirty = await run("git", ["-C", src, "status", "--porcelain", "--", "src", "mod.ts"]);
  const changed = dirty.stdout.trim().split("\n").filter(Boolean).map((l) => l.slice(3));
  const subject = head.stdout.trim();
  return `${subject.length > 100 ? `${subject.slice(0, 100)}…` : subject}${
    changed.length ? ` plus uncommitted changes in ${changed.join(", ")}` : ""
  }`;
}

async function main() {
  const o = parse(Deno.args);
  const { sutCpu, loadCpus } = await pinSelf();
  await Deno.mkdir(Run, { recursive: true });
  await Deno.mkdir(o.out, { recursive: true });
  await ensureTools(o.install);
  await buildLoadgen();
  const pools = await makePools({ repeats: 1, floodPool: 300_000, coldPool: 0 });
  const origin = await startOrigin(loadCpus);
  const source = await describeSource(o.src);
  const versions = {
    bun: (await run(Bun, ["--version"])).stdout.trim(),
    deno: Deno.version.deno,
  };
  try {
    for (const runtime of o.runtimes) {
      const sections: string[] = [];
      for (const row of o.rows) {
        const p = await profileRow(runtime, row, o, { pools, origin, sutCpu });
        sections.push(
          `## ${RowNames[row]}`,
          "",
          `wrk under the profiler: ${
            p.rps.toFixed(0)
          } req/s (${p.requests} requests, ${p.non2xx} non-2xx); raw profile: \`${p.file}\``,
          "",
          p.table,
          "",
        );
      }
      const command = `deno run -A bench/profile.ts ${Deno.args.join(" ")}`.trim();
      const md = [
        `# CPU profile: mcp-gate on ${runtime === "bun" ? `Bun ${versions.bun}` : `Deno ${versions.deno}`}, ${o.name}`,
        "",
        `- source: \`${o.src}\` at ${source}`,
        `- command: \`${command}\``,
        `- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; load average before: ${
          (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ")
        }`,
        `- gateway: \`${profiledArgv(runtime, o.src, "<dir>").join(" ").replaceAll(Root, "")}\`, ${
          sutCpu !== undefined ? `alone on CPU ${sutCpu}` : "not pinned"
        }; bench configuration (RATE_LIMIT_RPS=0, METRICS_ADDR on loopback, access log on, to a file)${
          Object.keys(o.extraEnv).length ? `, plus ${JSON.stringify(o.extraEnv)}` : ""
        }`,
        `- load: wrk -t1 -c64 bench/tokens.lua (POST /mcp, JSON-RPC body) for ${o.seconds} s after ${o.warmup} s of warm-up; the table covers the last ${o.seconds} s of samples (1 ms interval)`,
        "",
        ...sections,
      ].join("\n");
      const outFile = `${o.out}/${o.name}-${runtime}.md`;
      await Deno.writeTextFile(outFile, md);
      log(`wrote ${outFile}`);
    }
  } finally {
    for (const p of origin.procs) await p.stop();
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`profile: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
