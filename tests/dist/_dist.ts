// Shared by the distribution tests: the built artifacts, a process runner, a local JWKS.
//
// Artifacts: with MCPGATE_DIST_DIR set (e.g. "dist" after `deno task compile` and
// `deno task bundle`), the tests use the files there; otherwise they build them once per
// run into .tmp/tests_dist/ with scripts/build.ts.
import { exportJWK, generateKeyPair } from "jose";
import { bundle, compile } from "../../scripts/build.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;
export const DENO = Deno.execPath();
export const BUN = await (async () => {
  const local = `${REPO_ROOT}node_modules/.bin/bun`;
  return await Deno.stat(local).then(() => local, () => "bun");
})();

let built: Promise<{ binary: string; bundle: string; dir: string }> | undefined;

/** The compiled binary and the bundle, built once per test run unless MCPGATE_DIST_DIR names them. */
export function artifacts(): Promise<{ binary: string; bundle: string; dir: string }> {
  built ??= (async () => {
    const given = Deno.env.get("MCPGATE_DIST_DIR");
    if (given) {
      const dir = given.startsWith("/") ? given : `${REPO_ROOT}${given}`;
      return { dir, binary: `${dir}/mcp-gate`, bundle: `${dir}/mcp-gate.js` };
    }
    const dir = `${REPO_ROOT}.tmp/tests_dist`;
    const quiet = () => {};
    const [binary, js] = [await compile(dir, quiet), await bundle(dir, quiet)];
    return { dir, binary, bundle: js };
  })();
  return built;
}

/** A fresh, empty temporary directory; removed by the returned disposer. */
export async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}) };
}

/** A working directory full of files a runtime might pick up by itself; none may have an effect. */
export async function hostileCwd(): Promise<{ path: string; marker: string } & AsyncDisposable> {
  const dir = await tempDir("mcp-gate-cwd-");
  const marker = `${dir.path}/preload-ran`;
  const files: Record<string, string> = {
    ".env": "LOG_LEVEL=bogus\nLISTEN_ADDR=bogus\n",
    ".env.local": "LOG_LEVEL=bogus\n",
    ".env.production": "LOG_LEVEL=bogus\n",
    "bunfig.toml": 'preload = ["./preload.js"]\n[serve]\nport = 1\n',
    "preload.js": `require("fs").writeFileSync(${JSON.stringify(marker)}, "x");\n`,
    "package.json": "{ this is not json",
    "tsconfig.json": "{ this is not json",
    "deno.json": "{ this is not json",
  };
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${dir.path}/${name}`, text);
  return { ...dir, marker };
}

export interface Proc extends AsyncDisposable {
  readonly pid: number;
  /** Stdout lines so far. */
  readonly lines: string[];
  readonly stderr: string;
  /** Resolves with the first stdout line that pred accepts (parsed JSON when it parses). */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves once stderr matches re. */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM (or signal), then the exit code; SIGKILL after timeoutMs. */
  stop(signal?: Deno.Signal, timeoutMs?: number): Promise<number>;
  /** Waits for the exit without signalling. */
  exited(timeoutMs?: number): Promise<number>;
  describe(): string;
}

/** Spawns argv with a clean environment (PATH and HOME kept) and collects its output. */
export function spawn(argv: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Proc {
  const base: Record<string, string> = {};
  for (const k of ["PATH", "HOME"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) base[k] = v;
  }
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...base, ...opts.env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let stderr = "";
  let exit: number | undefined;
  const status = child.status.then((s) => (exit = s.code));
  const pumps = Promise.all([
    (async () => {
      let buf = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      }
      if (buf) lines.push(buf);
    })(),
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
    })(),
  ]);

  const poll = async <T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = probe();
      if (hit !== undefined) return hit;
      if (exit !== undefined) throw new Error(`Exited (${exit}) before ${what}\n${proc.describe()}`);
      if (Date.now() > deadline) throw new Error(`No ${what} within ${timeoutMs} ms\n${proc.describe()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const exited = async (timeoutMs = 10_000): Promise<number> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((r) => (timer = setTimeout(r, timeoutMs, undefined)));
    const code = await Promise.race([status, timeout]);
    clearTimeout(timer);
    if (code === undefined) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await status;
      await pumps;
      throw new Error(`Did not exit within ${timeoutMs} ms\n${proc.describe()}`);
    }
    await pumps;
    return code;
  };

  const proc: Proc = {
    pid: child.pid,
    lines,
    get stderr() {
      return stderr;
    },
    waitForLog: (pred, timeoutMs = 15_000) =>
      poll("matching log line", timeoutMs, () => {
        for (const line of lines) {
          try {
            const obj = JSON.parse(line);
            if (obj && typeof obj === "object" && pred(obj)) return obj as Record<string, unknown>;
          } catch { /* not JSON */ }
        }
        return undefined;
      }),
    waitForStderr: (re, timeoutMs = 15_000) =>
      poll(`stderr matching ${re}`, timeoutMs, () => stderr.match(re) ?? undefined),
    async stop(signal = "SIGTERM", timeoutMs = 10_000) {
      if (exit === undefined) {
        try {
          child.kill(signal);
        } catch { /* gone */ }
      }
      return await exited(timeoutMs);
    },
    exited,
    describe: () => `--- argv: ${argv.join(" ")}\n--- stdout\n${lines.join("\n")}\n--- stderr\n${stderr}`,
    async [Symbol.asyncDispose]() {
      if (exit === undefined) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }
      await status;
      await pumps;
    },
  };
  return proc;
}

/** A JWKS server with one fresh public key, so that the gateway becomes ready. */
export async function startJwks(): Promise<{ issuer: string; jwksUri: string } & AsyncDisposable> {
  const { publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "dist-test", alg: "ES256", use: "sig" };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ keys: [jwk] }),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  return { issuer: base, jwksUri: `${base}/jwks`, [Symbol.asyncDispose]: () => server.shutdown() };
}

/** The environment of a gateway on 127.0.0.1:0 with the given JWKS (the upstream is never reached). */
export function gatewayEnv(jwks: { issuer: string; jwksUri: string }, extra: Record<string, string> = {}) {
  return {
    LISTEN_ADDR: "127.0.0.1:0",
    UPSTREAM_URL: "http://127.0.0.1:9",
    RESOURCE_URI: "https://mcp.example.test/mcp",
    AUTHORIZATION_SERVER: jwks.issuer,
    JWKS_URI: jwks.jwksUri,
    METRICS_ADDR: "",
    SHUTDOWN_TIMEOUT: "2s",
    ...extra,
  };
}

/** The base URL from the gateway's "listening" log line. */
export async function listeningUrl(proc: Proc, timeoutMs = 20_000): Promise<string> {
  const line = await proc.waitForLog((l) => l.msg === "listening", timeoutMs);
  return `http://127.0.0.1:${new URL(String(line.url)).port}`;
}

/** GET url; returns status and body text. */
export async function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) });
  return { status: res.status, text: await res.text() };
}

/** Polls url until it answers 200 (or throws after timeoutMs). */
export async function until200(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(url).catch(() => null);
    await res?.body?.cancel();
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} not 200 within ${timeoutMs} ms (last: ${res?.status})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
