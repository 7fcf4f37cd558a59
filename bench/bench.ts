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
} from "./lib/common.ts";
import { buildBinary, buildLoadgen, ensureTools, makePools, startOrigin } from "./lib/setup.ts";
import { makeTargets, startTarget, type Target } from "./lib/targets.ts";
import { latencyRow, sseRow, throughputRow, wrk } from "./lib/measure.ts";
import { checkTargets, renderTable, type TargetResult } from "./lib/report.ts";
import { parseOptions } from "./lib/options.ts";

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
