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
 * (nginx, haproxy, wrk, gcc, redis-server) are installed with apt-get. Feature rows
 * (SCOPE_RULES, a cached opaque token, REDIS_ADDR) run in gateways of their own, after the
 * main rows of their form. See bench/README.md for what each row measures. The table is printed as Markdown and kept, with the raw figures as JSON,
 * under .tmp/bench/results/.
 */
import {
  firstOk,
  freePort,
  log,
  machineInfo,
  median,
  peakRssKiB,
  pinSelf,
  probe,
  type Proc,
  Results,
  Run,
  run,
  spread,
} from "./lib/common.ts";
import { buildBinary, buildLoadgen, ensureTools, makePools, type Pools, startOrigin } from "./lib/setup.ts";
import { makeTargets, startTarget, type Target } from "./lib/targets.ts";
import { latencyRow, type RowResult, sseRow, throughputRow, wrk } from "./lib/measure.ts";
import { checkTargets, renderTable, type TargetResult } from "./lib/report.ts";
import { type Options, parseOptions } from "./lib/options.ts";
import { type Feature, Features, startRedis } from "./lib/features.ts";

interface Ctx {
  o: Options;
  loadgen: string;
  pools: Pools;
  origin: { port: number; jwksPort: number };
  validToken: string;
  badToken: string;
  features: Feature[];
  redisPort: number | undefined;
  /** Started processes, stopped at the end (or on a signal). */
  cleanup: Proc[];
}

/** Starts a system under test and waits for its first 200 with `token`. */
async function startSystem(ctx: Ctx, t: Target, logFile: string, token: string, env: Record<string, string> = {}) {
  await Deno.remove(logFile).catch(() => {});
  const port = freePort();
  const t0 = performance.now();
  const proc = await startTarget(t, port, logFile, env);
  ctx.cleanup.push(proc);
  const ms = await firstOk(port, token, t0, proc);
  log(`serving after ${ms.toFixed(1)} ms`);
  return { port, proc };
}

/** The throughput rows, the fixed-rate row and SSE, against one running system. */
async function mainRows(ctx: Ctx, port: number, t: Target | undefined, res: TargetResult, proc: Proc | undefined) {
  const { o, pools } = ctx;
  // Correctness before speed: a valid token passes, a bad signature does not.
  const okStatus = await probe(port, ctx.validToken);
  const badStatus = await probe(port, ctx.badToken);
  if (okStatus !== 200 || (t?.auth && badStatus !== 401)) {
    throw new Error(`sanity check failed: valid token → ${okStatus}, bad signature → ${badStatus}`);
  }
  const on = (row: string) => o.rows.includes(row);
  await wrk(port, pools.validRs, o.warmup, o.connections);
  if (on("validRs")) {
    log("valid RS256");
    res.rows.validRs = await throughputRow(port, [pools.validRs], o, "ok", t, proc?.pid);
  }
  if (on("validEs")) {
    await wrk(port, pools.validEs, 1, o.connections);
    log("valid ES256");
    res.rows.validEs = await throughputRow(port, [pools.validEs], o, "ok", t, proc?.pid);
  }
  if (on("cold")) {
    log("cold RS256");
    res.rows.cold = await throughputRow(port, pools.cold, o, "ok", t, proc?.pid);
  }
  if (on("flood")) {
    log("bad-signature flood");
    res.rows.flood = await throughputRow(port, pools.flood, o, "reject", t, proc?.pid);
  }
  if (on("badReplay")) {
    await wrk(port, pools.badReplay, 1, o.connections);
    log("bad signature replayed");
    res.rows.badReplay = await throughputRow(port, [pools.badReplay], o, "reject", t, proc?.pid);
  }
  if (proc) res.rssAfterWrkMiB = (await peakRssKiB(proc.pid)) / 1024;
  if (on("rate")) {
    log(`fixed rate ${o.rate}/s`);
    res.latency = await latencyRow(ctx.loadgen, port, pools.validRs, o);
  }
  if (on("sse")) {
    log("SSE");
    res.ssePaced = await sseRow(ctx.loadgen, port, ctx.validToken, 1000, 5);
    res.sseBurst = await sseRow(ctx.loadgen, port, ctx.validToken, 0, 20);
  }
}

/** Start-up: fresh processes, each started by loadgen, which polls every 0.5 ms with a valid token. */
async function startups(ctx: Ctx, t: Target): Promise<number[]> {
  const starts: number[] = [];
  const startLog = `${Run}/${t.key}.start.log`;
  for (let i = 0; i < ctx.o.startups; i++) {
    const p = freePort();
    const { argv, env } = await t.prepare(p, startLog);
    const r = await run(
      ctx.loadgen,
      ["start", "127.0.0.1", String(p), "/mcp", ctx.validToken, startLog, "30", "--", ...argv],
      { env, clearEnv: true },
    );
    const ms = JSON.parse(r.stdout.trim() || "{}").ms;
    if (typeof ms === "number") starts.push(ms);
    else log(`start ${i + 1}: no 200 (see ${startLog}) ${r.stderr}`);
  }
  await Deno.remove(startLog).catch(() => {});
  return starts;
}

/** Medians over rows of one run each. */
function mergeRuns(rows: RowResult[]): RowResult {
  const runs = rows.flatMap((r) => r.runs);
  const cpu = rows.map((r) => r.cpuUs).filter((v): v is number => v !== undefined);
  const notes = [...new Set(rows.map((r) => r.note).filter((n) => n !== undefined))];
  return {
    value: median(runs),
    spread: spread(runs),
    runs,
    ...(cpu.length ? { cpuUs: median(cpu) } : {}),
    ...(notes.length ? { note: notes.join("; ") } : {}),
  };
}

/**
 * Each feature row in a gateway of its own (same form, only that feature on), measured
 * interleaved with a plain gateway of the same form started beside it (plain, feature,
 * plain, feature…, like ab.ts): the row's P ratio compares runs seconds apart, not minutes,
 * so that this machine's drift does not pass for the feature's cost.
 */
async function featureRows(ctx: Ctx, t: Target, res: TargetResult) {
  const { o, pools } = ctx;
  const once = { ...o, repeats: 1 };
  for (const f of ctx.features) {
    const logFile = `${Run}/${t.key}-${f.key}.log`;
    const plainLog = `${Run}/${t.key}-${f.key}-plain.log`;
    const token = (await Deno.readTextFile(f.pool(pools))).split("\n")[0]!;
    let proc: Proc | undefined;
    let plainProc: Proc | undefined;
    try {
      log(`${t.label}: ${f.label}`);
      const env = f.env({ jwksPort: ctx.origin.jwksPort, redisPort: ctx.redisPort });
      const started = await startSystem(ctx, t, logFile, token, env);
      proc = started.proc;
      const plain = await startSystem(ctx, t, plainLog, ctx.validToken);
      plainProc = plain.proc;
      const status = await probe(started.port, token);
      if (status !== 200) throw new Error(`sanity check failed: the row's first token → ${status}`);
      await wrk(started.port, f.pool(pools), 1, o.connections);
      await wrk(plain.port, pools.validRs, 1, o.connections);
      const featureRuns: RowResult[] = [];
      const plainRuns: RowResult[] = [];
      for (let i = 0; i < o.repeats; i++) {
        plainRuns.push(await throughputRow(plain.port, [pools.validRs], once, "ok", t, plainProc?.pid));
        featureRuns.push(await throughputRow(started.port, [f.pool(pools)], once, "ok", t, proc?.pid));
      }
      res.rows[f.key] = mergeRuns(featureRuns);
      res.rows[`${f.key}Plain`] = mergeRuns(plainRuns);
    } catch (e) {
      (res.featureErrors ??= {})[f.key] = e instanceof Error ? e.message : String(e);
      log(`${t.label}, ${f.key}: ${res.featureErrors[f.key]}`);
    } finally {
      await proc?.stop();
      await plainProc?.stop();
      if (!o.keepLogs) {
        await Deno.remove(logFile).catch(() => {});
        await Deno.remove(plainLog).catch(() => {});
      }
    }
  }
}

async function measureTarget(ctx: Ctx, t: Target | undefined): Promise<TargetResult> {
  const key = t?.key ?? "direct";
  const label = t?.label ?? "DIRECT (origin)";
  const res: TargetResult = { key, label, auth: t?.auth ?? false, rows: {} };
  log(`— ${label}`);
  let proc: Proc | undefined;
  const logFile = `${Run}/${key}.log`;
  try {
    let port = ctx.origin.port;
    if (t) ({ port, proc } = await startSystem(ctx, t, logFile, ctx.validToken));
    await mainRows(ctx, port, t, res, proc);
    if (proc) {
      res.rssMiB = (await peakRssKiB(proc.pid)) / 1024;
      res.logBytes = (await Deno.stat(logFile).catch(() => ({ size: 0 }))).size;
    }
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    log(`${label}: ${res.error}`);
  } finally {
    await proc?.stop();
    if (proc && !ctx.o.keepLogs) await Deno.remove(logFile).catch(() => {});
  }
  if (t && !res.error && ctx.o.rows.includes("start")) {
    res.startRuns = await startups(ctx, t);
    res.startMs = median(res.startRuns);
  }
  if (t && ctx.o.featureTargets.includes(t.key)) await featureRows(ctx, t, res);
  return res;
}

async function report(
  results: TargetResult[],
  ctx: Ctx,
  info: Awaited<ReturnType<typeof machineInfo>>,
  pinned: string,
) {
  const { table, cpu, meta } = renderTable(results, info, ctx.o, pinned, ctx.features);
  const checks = checkTargets(results);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const md = [
    `### mcp-gate bench, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    ...meta.map((m) => `- ${m}`),
    "",
    table,
    "",
    cpu,
    "",
    "Targets:",
    "",
    ...checks.map((c) => `- ${c.met === undefined ? "?" : c.met ? "MET" : "MISSED"}: ${c.text}`),
    ...results.filter((r) => r.error).map((r) => `- ERROR ${r.label}: ${r.error}`),
    ...results.flatMap((r) => Object.entries(r.featureErrors ?? {}).map(([k, m]) => `- ERROR ${r.label}, ${k}: ${m}`)),
    "",
  ].join("\n");
  await Deno.writeTextFile(`${Results}/bench-${stamp}.md`, md);
  await Deno.writeTextFile(
    `${Results}/bench-${stamp}.json`,
    JSON.stringify({ options: ctx.o, info, pinned, results, checks }, null, 2),
  );
  console.log(md);
  log(`saved .tmp/bench/results/bench-${stamp}.md and .json`);
}

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
  const pools = await makePools({ ...o, coldPool: o.rows.includes("cold") ? o.coldPool : 0 });
  const binary = o.targets.includes("binary") ? (o.binary || await buildBinary(o.src)) : "";
  const binary2 = o.targets.includes("binary2") ? await buildBinary(o.src2, "bin2") : "";
  const origin = await startOrigin(loadCpus);
  const features = o.features.map((k) => Features[k]!);
  const ctx: Ctx = {
    o,
    loadgen,
    pools,
    origin,
    validToken: (await Deno.readTextFile(pools.validRs)).split("\n")[0]!,
    badToken: (await Deno.readTextFile(pools.badReplay)).split("\n")[0]!,
    features,
    redisPort: undefined,
    cleanup: [...origin.procs],
  };
  const stopAll = async () => {
    for (const p of ctx.cleanup.reverse()) await p.stop();
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, async () => {
      await stopAll();
      Deno.exit(130);
    });
  }
  const results: TargetResult[] = [];
  try {
    if (features.some((f) => f.needsRedis) && o.featureTargets.some((k) => o.targets.includes(k))) {
      const redis = await startRedis(loadCpus || undefined, `${Run}/redis.log`);
      ctx.cleanup.push(redis.proc);
      ctx.redisPort = redis.port;
    }
    const targets = makeTargets(origin, sutCpu, binary, o.src, o.src2 ? { binary: binary2, src: o.src2 } : undefined);
    for (const t of [undefined, ...o.targets.map((k) => targets[k]!)]) results.push(await measureTarget(ctx, t));
  } finally {
    await stopAll();
  }
  await report(results, ctx, info, pinned);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
