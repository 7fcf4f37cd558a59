/** Tools from Debian, the loader, the compiled binary, keys and token pools, the origin (nginx + SSE server). */
import {
  Answer,
  baseEnv,
  BenchDir,
  Bun,
  Data,
  exists,
  freePort,
  Issuer,
  log,
  probe,
  ResourceUri,
  Root,
  Run,
  run,
  sleep,
  spawn,
  which,
  Work,
} from "./common.ts";
import type { Options } from "./options.ts";
// ---------------------------------------------------------------- tools

export async function ensureTools(install: boolean) {
  const needed: Record<string, string[]> = {
    nginx: ["nginx"],
    haproxy: ["haproxy"],
    wrk: ["wrk"],
    gcc: ["gcc", "libc6-dev"],
    taskset: ["util-linux"],
    "redis-server": ["redis-server"],
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

export async function buildLoadgen(): Promise<string> {
  const out = `${Work}/loadgen`;
  const src = `${BenchDir}/loadgen.c`;
  const [s, o] = await Promise.all([Deno.stat(src), Deno.stat(out).catch(() => undefined)]);
  if (!o || (o.mtime?.getTime() ?? 0) < (s.mtime?.getTime() ?? 0)) {
    const r = await run("gcc", ["-O2", "-o", out, src, "-lpthread", "-lm"]);
    if (r.code !== 0) throw new Error(`gcc bench/loadgen.c failed:\n${r.stderr}`);
  }
  return out;
}

/**
 * The compiled binary: this checkout's `scripts/build.ts compile`, or, for another checkout
 * (--src, --src2), `bun build` of its mod.ts with the same flags (CompileFlags).
 */
export async function buildBinary(src: string, dir = "bin"): Promise<string> {
  const outdir = `${Work}/${dir}`;
  const own = src === Root.replace(/\/$/, "");
  log(`building the compiled binary into .tmp/bench/${dir}${own ? "" : ` from ${src}`}`);
  const { compile, CompileFlags } = await import("../../scripts/build.ts");
  if (own) return await compile(outdir, () => {});
  await Deno.mkdir(outdir, { recursive: true });
  const out = `${outdir}/mcp-gate`;
  const r = await run(Bun, ["build", `${src}/mod.ts`, ...CompileFlags, "--outfile", out]);
  if (r.code !== 0) throw new Error(`bun build --compile failed:\n${r.stderr}`);
  return out;
}

// ---------------------------------------------------------------- keys and token pools

export interface Pools {
  validRs: string;
  validEs: string;
  /** Random opaque strings, which the JWKS server's /introspect says are active. */
  validOpaque: string;
  badReplay: string;
  flood: string[];
  cold: string[];
}

export async function lineCount(path: string): Promise<number> {
  const r = await run("sh", ["-c", `wc -l < "${path}"`]);
  return Number(r.stdout.trim()) || 0;
}

export async function makePools(o: Pick<Options, "repeats" | "floodPool" | "coldPool">): Promise<Pools> {
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
    validOpaque: `${Data}/valid_opaque.txt`,
    badReplay: `${Data}/badsig_replay.txt`,
    flood: [],
    cold: [],
  };
  if (!(await exists(pools.validOpaque))) {
    const opaque = Array.from({ length: 256 }, () => {
      const b = crypto.getRandomValues(new Uint8Array(32));
      return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    });
    await Deno.writeTextFile(pools.validOpaque, opaque.join("\n") + "\n");
  }
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
    if (o.coldPool === 0) continue;
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

// ---------------------------------------------------------------- origin, JWKS, systems under test

/** What the bench's introspection endpoint says about every token: active for a day. */
function introspectionAnswer(): string {
  return JSON.stringify({
    active: true,
    iss: Issuer,
    aud: ResourceUri,
    sub: "bench-user",
    client_id: "bench-client",
    scope: "mcp:read mcp:write",
    token_type: "Bearer",
    exp: Math.floor(Date.now() / 1000) + 86_400,
  });
}

export function nginxTemps(dir: string) {
  return ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `${t}_temp_path ${dir}/tmp_${t};`).join(" ");
}

export async function startOrigin(loadCpus: string) {
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
    location = /introspect { default_type application/json; return 200 '${introspectionAnswer()}'; }
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
