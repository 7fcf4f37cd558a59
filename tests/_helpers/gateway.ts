// Launches the gateway as a real process for black-box tests and collects its JSON log.
//
// Targets are chosen with MCPGATE_TEST_TARGETS (comma list, default "deno,bun"). Each
// target is an argv run with cwd = the repository root. Built in: "deno" and "bun" (from
// source), "binary" (dist/mcp-gate), "bundle" (dist/mcp-gate.js, served from a loopback
// URL to deno) — those two built first with scripts/build.ts — and "image" (the Docker
// image mcp-gate:test, see scripts/run_image.sh). Any other name, or a different argv for a
// built-in, comes from MCPGATE_TEST_CMD_<NAME> as a JSON array, for example
//   MCPGATE_TEST_TARGETS=musl MCPGATE_TEST_CMD_MUSL='["./dist/mcp-gate-linux-x64-musl"]'
import { assert, assertEquals } from "@std/assert";
import type { Issuer } from "./issuer.ts";
import type { Upstream } from "./upstream.ts";
import { sleep } from "./http.ts";
import { DenoV8Flags } from "../../scripts/build.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;
export const RESOURCE_URI = "https://mcp.example.test/mcp";
export const RESOURCE_METADATA_URL = "https://mcp.example.test/.well-known/oauth-protected-resource/mcp";

export interface Target {
  name: string;
  cmd: string[];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function localBin(name: string): string {
  const p = `${REPO_ROOT}node_modules/.bin/${name}`;
  return exists(p) ? p : name;
}

/** The targets selected by MCPGATE_TEST_TARGETS. */
export function gatewayTargets(): Target[] {
  const builtIn: Record<string, string[]> = {
    // With the V8 flag the README gives for Deno (young generation capped; see Reliability).
    deno: [Deno.execPath(), "run", "-A", DenoV8Flags, "mod.ts"],
    bun: [localBin("bun"), "run", "mod.ts"],
    binary: [`${REPO_ROOT}dist/mcp-gate`],
    // Served from a loopback URL with an empty Deno cache, as users run it.
    bundle: ["bash", `${REPO_ROOT}scripts/run_bundle_url.sh`],
    image: ["bash", `${REPO_ROOT}scripts/run_image.sh`],
  };
  const names = (Deno.env.get("MCPGATE_TEST_TARGETS") ?? "deno,bun").split(",").map((s) => s.trim()).filter(Boolean);
  return names.map((name) => {
    const override = Deno.env.get(`MCPGATE_TEST_CMD_${name.toUpperCase()}`);
    const cmd = override ? JSON.parse(override) : builtIn[name];
    if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((s) => typeof s === "string")) {
      throw new Error(
        `Unknown gateway target ${
          JSON.stringify(name)
        }: set MCPGATE_TEST_CMD_${name.toUpperCase()} to a JSON argv array`,
      );
    }
    const dist = Deno.env.get("MCPGATE_DIST_DIR") ?? `${REPO_ROOT}dist`;
    const file = name === "binary" ? cmd[0] : name === "bundle" ? `${dist}/mcp-gate.js` : null;
    if (!override && file && !exists(file)) {
      throw new Error(`Gateway target ${name}: ${file} does not exist; build it with scripts/build.ts first`);
    }
    return { name, cmd };
  });
}

/** The usual configuration: local issuer and upstream, public URL elsewhere. */
export function gatewayEnv(
  issuer: Issuer,
  upstream: Upstream | string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    LISTEN_ADDR: "127.0.0.1:0",
    UPSTREAM_URL: typeof upstream === "string" ? upstream : upstream.url,
    RESOURCE_URI,
    AUTHORIZATION_SERVER: issuer.issuer,
    JWKS_URI: issuer.jwksUri,
    EXPECTED_ISSUER: issuer.issuer,
    SCOPES_SUPPORTED: "mcp:read,mcp:write",
    METRICS_ADDR: "",
    // Every test request comes from 127.0.0.1; limits get their own test.
    RATE_LIMIT_RPS: "0",
    SHUTDOWN_TIMEOUT: "5s",
    LOG_LEVEL: "info",
    ...extra,
  };
}

export type LogLine = Record<string, unknown>;

export interface StartOptions {
  /** "ready": wait for /readyz 200 (default); "listening": only for the listening log line. */
  waitFor?: "ready" | "listening";
  timeoutMs?: number;
}

export class Gateway {
  readonly target: string;
  /** Raw stdout lines. */
  readonly lines: string[] = [];
  /** Parsed stdout lines. */
  readonly logs: LogLine[] = [];
  /** Stdout lines that were not a JSON object. */
  readonly nonJson: string[] = [];
  url = "";
  port = 0;

  #child: Deno.ChildProcess;
  #stderr = "";
  #pumps: Promise<void>;
  #status: Promise<Deno.CommandStatus>;
  #exit: Deno.CommandStatus | null = null;
  #listening: PromiseWithResolvers<void> = Promise.withResolvers();

  private constructor(target: Target, env: Record<string, string>) {
    this.target = target.name;
    const [cmd, ...args] = target.cmd;
    this.#child = new Deno.Command(cmd!, {
      args,
      cwd: REPO_ROOT,
      env: { ...baseEnv(), ...env },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#status = this.#child.status.then((s) => (this.#exit = s));
    this.#pumps = Promise.all([this.#readStdout(), this.#readStderr()]).then(() => {});
    this.#status.then(() => this.#listening.reject(new Error("exited before listening")));
    this.#listening.promise.catch(() => {});
  }

  /** Spawns the gateway and waits until it is listening (and by default ready). */
  static async start(target: Target, env: Record<string, string>, opts: StartOptions = {}): Promise<Gateway> {
    const gw = new Gateway(target, env);
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    try {
      await withTimeout(gw.#listening.promise, timeoutMs, `no "listening" log line within ${timeoutMs} ms`);
      if (opts.waitFor !== "listening") {
        for (;;) {
          const res = await fetch(`${gw.url}/readyz`).catch(() => null);
          await res?.body?.cancel();
          if (res?.status === 200) break;
          if (gw.#exit) throw new Error("exited before ready");
          if (Date.now() > deadline) throw new Error(`/readyz not 200 within ${timeoutMs} ms`);
          await sleep(50);
        }
      }
      return gw;
    } catch (e) {
      await gw.kill();
      throw new Error(`Gateway [${target.name}] did not start: ${(e as Error).message}\n${gw.describe()}`);
    }
  }

  async #readStdout() {
    let buf = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        this.#line(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
    if (buf) this.#line(buf);
  }

  async #readStderr() {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) this.#stderr += chunk;
  }

  #line(line: string) {
    this.lines.push(line);
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      obj = undefined;
    }
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) {
      this.nonJson.push(line);
      return;
    }
    const log = obj as LogLine;
    this.logs.push(log);
    if (log.msg === "listening" && !this.url && typeof log.url === "string") {
      const u = new URL(log.url);
      this.port = Number(u.port);
      this.url = `http://127.0.0.1:${this.port}`;
      this.#listening.resolve();
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  get stderr(): string {
    return this.#stderr;
  }

  get exited(): boolean {
    return this.#exit !== null;
  }

  /** stdout and stderr, for failure messages. */
  describe(): string {
    return `--- stdout (${this.target}) ---\n${this.lines.join("\n")}\n--- stderr ---\n${this.#stderr}`;
  }

  /** Log lines matching pred. */
  find(pred: (l: LogLine) => boolean): LogLine[] {
    return this.logs.filter(pred);
  }

  /** The access-log line ("msg":"request") of the request sent with this User-Agent. */
  async accessLog(userAgent: string, timeoutMs = 3_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.find((l) => l.msg === "request" && l.user_agent === userAgent);
      if (hit) return hit;
      if (Date.now() > deadline) {
        throw new Error(`No access-log line with user_agent ${JSON.stringify(userAgent)}\n${this.describe()}`);
      }
      await sleep(20);
    }
  }

  /**
   * Sends signal, waits up to timeoutMs for the exit, then SIGKILLs; returns the exit
   * code. Idempotent.
   */
  async stop(signal: Deno.Signal = "SIGTERM", timeoutMs = 10_000): Promise<number> {
    if (!this.#exit) {
      try {
        this.#child.kill(signal);
      } catch { /* already gone */ }
      const gone = await withTimeout(this.#status, timeoutMs, "").then(() => true, () => false);
      if (!gone) await this.kill();
    }
    const status = await this.#status;
    await this.#pumps;
    return status.code;
  }

  /** SIGKILL, last resort. */
  async kill(): Promise<void> {
    if (!this.#exit) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    await this.#status;
    await this.#pumps;
  }

  /**
   * Stops with SIGTERM and checks the promises every run keeps: exit code 0, nothing but
   * JSON objects on stdout, none of `secrets` (e.g. issued tokens) in stdout or stderr.
   */
  async stopAndCheck(secrets: Iterable<string> = []): Promise<void> {
    const code = await this.stop();
    assertEquals(code, 0, `Exit code after SIGTERM\n${this.describe()}`);
    assertEquals(this.nonJson, [], "Every stdout line is a JSON object");
    const all = this.lines.join("\n") + this.#stderr;
    for (const s of secrets) {
      // The signature part alone is enough to identify a token.
      const sig = s.split(".")[2] || s;
      assert(!all.includes(sig), `A token appears in the gateway's output: ${s.slice(0, 40)}…`);
    }
  }

  async [Symbol.asyncDispose]() {
    await this.kill();
  }
}

export const startGateway = Gateway.start;

function baseEnv(): Record<string, string> {
  const base: Record<string, string> = {};
  // The launcher's own settings (where the image's Docker engine is, which build to run)
  // pass through; nothing else of the test process's environment reaches the gateway.
  for (const k of ["PATH", "HOME", "DOCKER_HOST", "MCPGATE_IMAGE", "MCPGATE_DIST_DIR"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) base[k] = v;
  }
  return base;
}

/**
 * Runs the target with extra arguments (a subcommand such as `healthcheck`, or a
 * configuration that must fail) to completion, SIGKILLed after timeoutMs.
 */
export async function runGatewayCommand(
  target: Target,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 15_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...targetArgs] = target.cmd;
  const ac = new AbortController();
  const child = new Deno.Command(cmd!, {
    args: [...targetArgs, ...args],
    cwd: REPO_ROOT,
    env: { ...baseEnv(), ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = sleep(timeoutMs, ac.signal).then(() => child.kill("SIGKILL"), () => {});
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    ac.abort();
    await killer;
  }
}

/** p, or a rejection with message after ms; the timer never outlives the call. */
async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  const ac = new AbortController();
  const timeout = sleep(ms, ac.signal).then(() => Promise.reject(new Error(message)), () => undefined as never);
  try {
    return await Promise.race([p, timeout]);
  } finally {
    ac.abort();
  }
}
