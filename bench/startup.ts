/**
 * Start-up time to the first 200 on /healthz, for every form mcp-gate ships in, and the
 * sizes of the built artifacts.
 *
 *   deno task compile && deno task bundle
 *   deno run -A bench/startup.ts [--runs=5] [--dist=dist]
 *
 * Each run spawns the gateway on a free loopback port and polls /healthz every 5 ms from
 * the moment of the spawn; the figure is the median over the runs. The bundle is served
 * from a loopback HTTP server and run from its URL, with a warm Deno cache (one unmeasured
 * run first) and with an empty one (a fresh DENO_DIR per run, so the time includes the
 * download and compilation).
 */
import { exportJWK, generateKeyPair } from "jose";
import { serveDir } from "../scripts/serve_dist.ts";

const Root = new URL("../", import.meta.url).pathname;
const PollMs = 5;
const TimeoutMs = 30_000;

function option(name: string, fallback: string): string {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}
const runs = Number(option("runs", "5"));
const distArg = option("dist", "dist");
const dist = distArg.startsWith("/") ? distArg : `${Root}${distArg}`;
const deno = Deno.execPath();
const bun = await Deno.stat(`${Root}node_modules/.bin/bun`).then(() => `${Root}node_modules/.bin/bun`, () => "bun");

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Milliseconds from spawn to the first 200 on /healthz. */
async function measure(argv: string[], env: Record<string, string>): Promise<number> {
  const port = freePort();
  const start = performance.now();
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd: Root,
    env: { ...env, LISTEN_ADDR: `127.0.0.1:${port}` },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  child.status.then(() => (exited = true));
  try {
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) })
        .catch(() => null);
      await res?.body?.cancel();
      if (res?.status === 200) return performance.now() - start;
      if (exited) throw new Error(`${argv.join(" ")} exited before serving`);
      if (performance.now() - start > TimeoutMs) throw new Error(`${argv.join(" ")}: no 200 in ${TimeoutMs} ms`);
      await sleep(PollMs);
    }
  } finally {
    if (!exited) child.kill("SIGTERM");
    const t = setTimeout(() => !exited && child.kill("SIGKILL"), 5000);
    await child.status;
    clearTimeout(t);
  }
}

async function gzipSize(path: string): Promise<number> {
  const out = await new Deno.Command("gzip", { args: ["-9", "-c", path], stdout: "piped" }).output();
  return out.stdout.byteLength;
}

const median = (xs: number[]) => {
  const s = xs.toSorted((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// A JWKS, so that the gateway's key loading succeeds as it would in production.
const { publicKey } = await generateKeyPair("ES256", { extractable: true });
const jwk = { ...(await exportJWK(publicKey)), kid: "bench", alg: "ES256", use: "sig" };
const jwks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => Response.json({ keys: [jwk] }));
const issuer = `http://127.0.0.1:${jwks.addr.port}`;
const files = serveDir(dist);
const warmDenoDir = await Deno.makeTempDir({ prefix: "mcp-gate-bench-warm-" });

const baseEnv: Record<string, string> = {
  PATH: Deno.env.get("PATH") ?? "",
  HOME: Deno.env.get("HOME") ?? "",
  UPSTREAM_URL: "http://127.0.0.1:9",
  RESOURCE_URI: "https://mcp.example.test/mcp",
  AUTHORIZATION_SERVER: issuer,
  JWKS_URI: `${issuer}/jwks`,
  METRICS_ADDR: "",
  LOG_LEVEL: "warn",
  DENO_NO_UPDATE_CHECK: "1",
};
const bundleUrl = `${files.url}mcp-gate.js`;
const urlRun = [deno, "run", "--unstable-no-legacy-abort", "--allow-net", "--allow-env", bundleUrl];

interface Form {
  name: string;
  command: string;
  argv: string[];
  env: () => Promise<Record<string, string>>;
  warmup?: boolean;
}

const forms: Form[] = [
  {
    name: "deno run mod.ts",
    command: "deno run --allow-net --allow-env mod.ts",
    argv: [deno, "run", "--allow-net", "--allow-env", "mod.ts"],
    env: () => Promise.resolve(baseEnv),
    warmup: true,
  },
  {
    name: "bun run mod.ts",
    command: "bun run mod.ts",
    argv: [bun, "run", "mod.ts"],
    env: () => Promise.resolve(baseEnv),
    warmup: true,
  },
  {
    name: "compiled binary",
    command: `${distArg}/mcp-gate`,
    argv: [`${dist}/mcp-gate`],
    env: () => Promise.resolve(baseEnv),
    warmup: true,
  },
  {
    name: "bundle from URL, warm cache",
    command: "deno run --unstable-no-legacy-abort --allow-net --allow-env http://127.0.0.1:PORT/mcp-gate.js",
    argv: urlRun,
    env: () => Promise.resolve({ ...baseEnv, DENO_DIR: warmDenoDir }),
    warmup: true,
  },
  {
    name: "bundle from URL, empty cache",
    command:
      "DENO_DIR=$(mktemp -d) deno run --unstable-no-legacy-abort --allow-net --allow-env http://127.0.0.1:PORT/mcp-gate.js",
    argv: urlRun,
    env: async () => ({ ...baseEnv, DENO_DIR: await Deno.makeTempDir({ prefix: "mcp-gate-bench-cold-" }) }),
  },
];

const rows: string[] = [];
try {
  for (const form of forms) {
    if (form.warmup) await measure(form.argv, await form.env());
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const env = await form.env();
      times.push(await measure(form.argv, env));
      if (env.DENO_DIR && env.DENO_DIR !== warmDenoDir) await Deno.remove(env.DENO_DIR, { recursive: true });
    }
    const fmt = (n: number) => n.toFixed(0);
    rows.push(
      `| ${form.name} | ${fmt(median(times))} | ${fmt(Math.min(...times))}–${
        fmt(Math.max(...times))
      } | \`${form.command}\` |`,
    );
    console.error(`${form.name}: ${times.map((t) => t.toFixed(1)).join(", ")} ms`);
  }
} finally {
  await files.close();
  await jwks.shutdown();
  await Deno.remove(warmDenoDir, { recursive: true });
}

const size = async (name: string) => {
  const path = `${dist}/${name}`;
  const bytes = (await Deno.stat(path)).size;
  return `| ${distArg}/${name} | ${bytes.toLocaleString("en")} | ${(await gzipSize(path)).toLocaleString("en")} |`;
};

console.log(
  `Start-up to the first 200 on /healthz (${runs} runs each, median; poll every ${PollMs} ms; ` +
    `${Deno.build.target}, ${navigator.hardwareConcurrency} cores)\n`,
);
console.log("| form | median ms | range ms | command |\n|---|---|---|---|");
console.log(rows.join("\n"));
console.log("\n| artifact | bytes | gzip -9 bytes |\n|---|---|---|");
console.log(await size("mcp-gate"));
console.log(await size("mcp-gate.js"));
