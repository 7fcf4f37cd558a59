/** Command-line options of bench/bench.ts. */
import { Root } from "./common.ts";
// ---------------------------------------------------------------- options

export const Help = `Usage: deno run -A bench/bench.ts [options]

  --targets=LIST      systems under test, in order (default: nginx,haproxy,deno,bun,binary);
                      also: naive-bun (the issue's ~40-line jose+fetch proxy), naive-deno, bare-bun (Bun.serve + fetch, no auth: the runtime's floor)
  --duration=S        seconds per measured wrk run (default 3)
  --repeats=N         measured runs per throughput row; the median is shown (default 3)
  --warmup=S          seconds of wrk before the first measured run of a target (default 2)
  --connections=N     wrk connections (default 64)
  --rate=R            requests/s of the fixed-rate latency row (default 2000: a rate that HAProxy
                      and every mcp-gate form sustain here, so p99 is latency, not a queue)
  --latency-seconds=S seconds per fixed-rate run (default 5; run --repeats times)
  --startups=N        starts measured for "start to first 200" (default 5)
  --cold-pool=N       RS256 tokens per cold run (default 40000; signed once, kept in .tmp/bench/data)
  --flood-pool=N      bad-signature tokens per flood run (default 100000)
  --binary=PATH       use this compiled mcp-gate instead of building .tmp/bench/bin/mcp-gate
  --src=DIR           run the mcp-gate targets from another checkout (mod.ts, deno.json, node_modules
                      there), e.g. to measure a proposed change against HAProxy in the same run
  --src2=DIR          a second checkout, as the targets deno2, bun2, binary2 ("(B)" in the table):
                      an A/B comparison within one run (--targets=haproxy,binary,binary2)
  --features=LIST     feature rows, each in a gateway of its own (default: scope,opaque,redis;
                      none: no feature rows): SCOPE_RULES with 10 rules, a cached opaque token
                      (INTROSPECTION_*), REDIS_ADDR rate limits
  --feature-targets=L the mcp-gate forms that get the feature rows (default: binary)
  --rows=LIST         only these main rows (default all): validRs, validEs, cold, flood, badReplay,
                      rate, sse, start (e.g. --rows=validRs,flood for a quick A/B)
  --keep-logs         keep the systems' access logs in .tmp/bench/run/
  --no-install        do not apt-get missing tools; fail instead
  --quick             --duration=2 --repeats=1 --warmup=1 --latency-seconds=3 --startups=3
`;

export function parseOptions(args: string[]) {
  const o = {
    targets: ["nginx", "haproxy", "deno", "bun", "binary"],
    duration: 3,
    repeats: 3,
    warmup: 2,
    connections: 64,
    rate: 2000,
    features: ["scope", "opaque", "redis"],
    featureTargets: ["binary"],
    latencySeconds: 5,
    startups: 5,
    coldPool: 40_000,
    floodPool: 100_000,
    binary: "",
    src: Root.replace(/\/$/, ""),
    src2: "",
    rows: ["validRs", "validEs", "cold", "flood", "badReplay", "rate", "sse", "start"],
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
      case "--features":
        o.features = v === "none" ? [] : v.split(",").filter(Boolean);
        break;
      case "--feature-targets":
        o.featureTargets = v.split(",").filter(Boolean);
        break;
      case "--rows":
        o.rows = v.split(",").filter(Boolean);
        break;
      case "--src2":
        o.src2 = v.startsWith("/") ? v.replace(/\/$/, "") : `${Deno.cwd()}/${v}`.replace(/\/$/, "");
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
  const known = new Set(["nginx", "haproxy", "deno", "bun", "binary", "naive-bun", "naive-deno", "bare-bun"]);
  if (o.src2) { for (const t of ["deno2", "bun2", "binary2"]) known.add(t); }
  for (const t of o.targets) if (!known.has(t)) throw new Error(`unknown target ${t}`);
  for (const f of o.features) {
    if (!["scope", "opaque", "redis"].includes(f)) throw new Error(`unknown feature ${f} (scope, opaque, redis)`);
  }
  for (const t of o.featureTargets) {
    if (!known.has(t) || !/^(deno|bun|binary)2?$/.test(t)) {
      throw new Error(`feature rows run on deno, bun or binary (or deno2, bun2, binary2 with --src2), not ${t}`);
    }
  }
  if (o.duration > 60 || o.latencySeconds > 60 || o.repeats > 20 || o.warmup > 60) {
    throw new Error("runs are capped: --duration, --latency-seconds and --warmup at 60 s, --repeats at 20");
  }
  return o;
}

export type Options = ReturnType<typeof parseOptions>;
