/**
 * An interleaved A/B of two checkouts of the gateway: both run at once on the bench's core
 * (idle while the other is loaded), and wrk alternates between them, A B A B …, so that
 * the machine's other work falls on both alike. Prints req/s and CPU µs per request (the
 * gateway's user + system time ÷ requests) for each round, then the medians.
 *
 *   deno run -A bench/ab.ts --a=/work/perf-base --b=/work/main [--runtime=bun|deno|binary]
 *                          [--row=valid|flood|replay] [--rounds=6] [--seconds=3] [--env=K=V,…]
 *                          [--env-a=K=V,…] [--env-b=K=V,…]   (one side's own environment)
 *
 * The same origin, keys, token pools and gateway settings as bench/bench.ts. For
 * --runtime=binary both checkouts are compiled (.tmp/bench/ab-a, ab-b).
 */
import { Bun, denoGatewayArgv, firstOk, freePort, log, median, pinSelf, type Proc, Run, spawn } from "./lib/common.ts";
import { buildBinary, buildLoadgen, makePools, startOrigin } from "./lib/setup.ts";
import { gatewayEnv, pin } from "./lib/targets.ts";
import { cpuSeconds, wrk } from "./lib/measure.ts";

function option(name: string, fallback: string): string {
  const a = Deno.args.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : a.slice(name.length + 3);
}

const a = option("a", "");
const b = option("b", "");
const runtime = option("runtime", "bun");
const row = option("row", "valid");
const rounds = Math.min(20, Number(option("rounds", "6")));
const seconds = Math.min(30, Number(option("seconds", "3")));
const envOption = (name: string) =>
  Object.fromEntries(
    option(name, "").split(",").filter(Boolean).map((kv) => [kv.split("=")[0]!, kv.slice(kv.indexOf("=") + 1)]),
  );
const extraEnv = envOption("env");
const sideEnv: Record<string, Record<string, string>> = { A: envOption("env-a"), B: envOption("env-b") };
if (!a || !b || !["bun", "deno", "binary"].includes(runtime) || !["valid", "flood", "replay"].includes(row)) {
  console.error(
    "usage: deno run -A bench/ab.ts --a=DIR --b=DIR [--runtime=bun|deno|binary] [--row=valid|flood|replay]",
  );
  Deno.exit(2);
}

async function argv(src: string, side: string): Promise<string[]> {
  if (runtime === "bun") return [Bun, "run", `${src}/mod.ts`];
  if (runtime === "deno") {
    return denoGatewayArgv(src);
  }
  return [await buildBinary(src, `ab-${side}`)];
}

const { sutCpu, loadCpus } = await pinSelf();
await Deno.mkdir(Run, { recursive: true });
await buildLoadgen();
const pools = await makePools({ repeats: 1, floodPool: 300_000, coldPool: 0 });
const origin = await startOrigin(loadCpus);
const procs: Proc[] = [];
try {
  const sides: { name: string; port: number; proc: Proc; rps: number[]; cpu: number[] }[] = [];
  const token = (await Deno.readTextFile(pools.validRs)).split("\n")[0]!;
  for (const [name, src] of [["A", a], ["B", b]] as const) {
    const port = freePort();
    const env = { ...gatewayEnv(port, origin, freePort()), ...extraEnv, ...sideEnv[name] };
    const proc = spawn(name, pin(await argv(src, name.toLowerCase()), sutCpu), {
      env,
      logFile: `${Run}/ab-${name}.log`,
    });
    procs.push(proc);
    await firstOk(port, token, performance.now(), proc);
    sides.push({ name, port, proc, rps: [], cpu: [] });
  }
  const pool = row === "valid" ? pools.validRs : row === "flood" ? pools.flood[0]! : pools.badReplay;
  for (const s of sides) await wrk(s.port, pools.validRs, 2, 64);
  log(`${runtime}, ${row}: A ${a}, B ${b}; ${rounds} rounds of ${seconds} s each`);
  for (let i = 0; i < rounds; i++) {
    const line: string[] = [];
    for (const s of i % 2 === 0 ? sides : [...sides].reverse()) {
      await new Promise((r) => setTimeout(r, 250));
      const cpu0 = await cpuSeconds(s.proc.pid);
      const r = await wrk(s.port, pool, seconds, 64);
      const cpu = ((await cpuSeconds(s.proc.pid)) - cpu0) * 1e6 / r.requests;
      s.rps.push(r.rps);
      s.cpu.push(cpu);
      line.push(`${s.name} ${r.rps.toFixed(0)} req/s ${cpu.toFixed(0)} µs`);
    }
    log(`round ${i + 1}: ${line.join(" | ")}`);
  }
  const [sa, sb] = sides as [typeof sides[0], typeof sides[0]];
  const ratios = sa.rps.map((x, i) => sb.rps[i]! / x);
  console.log(
    `${runtime} ${row}: A median ${median(sa.rps).toFixed(0)} req/s, ${median(sa.cpu).toFixed(0)} µs CPU/request; ` +
      `B median ${median(sb.rps).toFixed(0)} req/s, ${median(sb.cpu).toFixed(0)} µs CPU/request; ` +
      `B/A req/s per round: median ${median(ratios).toFixed(2)} (${ratios.map((r) => r.toFixed(2)).join(" ")})`,
  );
} finally {
  for (const p of procs) await p.stop();
  for (const p of origin.procs) await p.stop();
}
