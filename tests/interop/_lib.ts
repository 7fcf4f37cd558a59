// Process plumbing for the interop tests: the Node fixtures (SDK server and clients,
// oidc-provider) and the gateway under Deno or Bun run as child processes that talk
// JSON lines on stdout. Every wait is bounded; every process started here is stopped by
// its own PID (SIGTERM, then SIGKILL after a grace period).

export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const FIXTURES = `${ROOT}/tests/interop/fixtures`;

// Gateway targets follow the black-box suite's convention (tests/_helpers/gateway.ts):
// MCPGATE_TEST_TARGETS (default "deno,bun"), MCPGATE_TEST_CMD_<NAME> = JSON argv.
export type { Target } from "../_helpers/gateway.ts";
import { gatewayTargets, type Target } from "../_helpers/gateway.ts";
export const TARGETS: Target[] = gatewayTargets();

// deno-lint-ignore no-explicit-any
export type JsonLine = Record<string, any>;

/** A long-running child whose stdout JSON lines and stderr are collected as they arrive. */
export class Proc {
  readonly lines: JsonLine[] = [];
  readonly rawStdout: string[] = [];
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];
  #status: Deno.CommandStatus | undefined;
  readonly #statusPromise: Promise<Deno.CommandStatus>;
  readonly #waiters = new Set<() => void>();

  constructor(readonly name: string, cmd: string, args: string[], env: Record<string, string> = {}) {
    this.#child = new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#statusPromise = this.#child.status.then((s) => {
      this.#status = s;
      this.#notify();
      return s;
    });
    this.#pumps = [
      this.#pump(this.#child.stdout, (line) => {
        this.rawStdout.push(line);
        try {
          const v = JSON.parse(line);
          if (v && typeof v === "object") this.lines.push(v);
        } catch { /* not JSON: kept in rawStdout only */ }
      }),
      this.#pump(this.#child.stderr, (line) => {
        this.stderr += line + "\n";
      }),
    ];
  }

  get pid(): number {
    return this.#child.pid;
  }

  get exited(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void) {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
        this.#notify();
      }
      if (buf) onLine(buf);
    } catch {
      /* stream torn down */
    } finally {
      reader.releaseLock();
      this.#notify();
    }
  }

  #notify() {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves with the first stdout JSON line matching `pred`; rejects on timeout or exit. */
  waitForLine(pred: (l: JsonLine) => boolean, timeoutMs: number, what = "line"): Promise<JsonLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.lines.find(pred);
        if (hit) {
          done();
          resolve(hit);
        } else if (this.#status) {
          done();
          reject(
            new Error(
              `${this.name} exited (${this.#status.code}) before ${what}\nstdout:\n${
                this.rawStdout.join("\n")
              }\nstderr:\n${this.stderr}`,
            ),
          );
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${this.name}: no ${what} within ${timeoutMs} ms\nstdout:\n${
              this.rawStdout.join("\n")
            }\nstderr:\n${this.stderr}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL. Returns the exit status. */
  async stop(graceMs = 5000): Promise<Deno.CommandStatus> {
    if (!this.#status) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* already gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            this.#child.kill("SIGKILL");
          } catch { /* already gone */ }
          resolve();
        }, graceMs);
      });
      await Promise.race([this.#statusPromise, killed]);
      clearTimeout(timer);
    }
    const status = await this.#statusPromise;
    await Promise.all(this.#pumps);
    return status;
  }
}

/** Runs a command to completion (killed after timeoutMs); returns exit code and output. */
export async function runToEnd(
  cmd: string,
  args: string[],
  timeoutMs: number,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string; json: JsonLine; ms: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, cwd: ROOT, env, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  // The last JSON line on stdout, or {} when there is none (assertions then show stdout).
  let json: JsonLine = {};
  for (const line of stdout.split("\n").reverse()) {
    try {
      json = JSON.parse(line);
      break;
    } catch { /* keep looking */ }
  }
  return { code: out.code, stdout, stderr, json, ms: performance.now() - t0 };
}

/** Runs one of the Node fixtures (tests/interop/fixtures/NAME) to completion. */
export function runNodeFixture(name: string, args: string[], timeoutMs: number) {
  return runToEnd("node", [`${FIXTURES}/${name}`, ...args], timeoutMs);
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface McpUpstream {
  proc: Proc;
  url: string;
  port: number;
  /** Requests the upstream has seen so far ({method, path, headers}). */
  requests(): JsonLine[];
}

/** Starts tests/interop/fixtures/mcp_server.mjs on a free port. */
export async function startMcpServer(): Promise<McpUpstream> {
  const proc = new Proc("mcp_server", "node", [`${FIXTURES}/mcp_server.mjs`, "--port", "0"]);
  try {
    const l = await proc.waitForLine((l) => l.event === "listening", 15_000, "listening line");
    return { proc, url: l.url, port: l.port, requests: () => proc.lines.filter((x) => x.event === "request") };
  } catch (e) {
    await proc.stop();
    throw e;
  }
}

export interface OidcServer {
  proc: Proc;
  issuer: string;
}

/** Starts tests/interop/fixtures/oidc_server.mjs (oidc-provider) on a free port. */
export async function startOidcServer(scope = "mcp:tools"): Promise<OidcServer> {
  const proc = new Proc("oidc_server", "node", [`${FIXTURES}/oidc_server.mjs`, "--port", "0", "--scope", scope]);
  try {
    const l = await proc.waitForLine((l) => l.event === "listening", 15_000, "listening line");
    return { proc, issuer: l.issuer };
  } catch (e) {
    await proc.stop();
    throw e;
  }
}

export interface Gateway {
  proc: Proc;
  target: Target;
  port: number;
  origin: string;
  resource: string;
  /** Everything the gateway printed on stdout and stderr so far. */
  output(): string;
}

/**
 * Starts the gateway (target.cmd, e.g. `deno run -A mod.ts` / `bun run mod.ts`, cwd = repo root)
 * on a port chosen here, so that RESOURCE_URI can name it; waits for the "listening" log
 * line and for /readyz to answer 200.
 */
export async function startGateway(
  target: Target,
  env: Record<string, string>,
  resourcePath = "/mcp",
): Promise<Gateway> {
  const port = freePort();
  const origin = `http://127.0.0.1:${port}`;
  const resource = `${origin}${resourcePath}`;
  const fullEnv: Record<string, string> = {
    LISTEN_ADDR: `127.0.0.1:${port}`,
    METRICS_ADDR: "",
    RESOURCE_URI: resource,
    LOG_LEVEL: "info",
    ...env,
  };
  const [cmd, ...args] = target.cmd;
  const proc = new Proc(`gateway(${target.name})`, cmd!, args, fullEnv);
  const gw: Gateway = {
    proc,
    target,
    port,
    origin,
    resource,
    output: () => proc.rawStdout.join("\n") + "\n" + proc.stderr,
  };
  try {
    await proc.waitForLine((l) => l.msg === "listening", 30_000, '{"msg":"listening"} line');
    const deadline = Date.now() + 15_000;
    let last = "";
    for (;;) {
      try {
        const r = await fetch(`${origin}/readyz`, { signal: AbortSignal.timeout(2000) });
        last = `${r.status} ${await r.text()}`;
        if (r.status === 200) break;
      } catch (e) {
        last = String(e);
      }
      if (proc.exited) throw new Error(`gateway exited while waiting for /readyz\n${gw.output()}`);
      if (Date.now() > deadline) throw new Error(`gateway /readyz not 200 within 15 s (last: ${last})\n${gw.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return gw;
  } catch (e) {
    await proc.stop();
    throw e;
  }
}

/** Stops processes (in parallel), never throwing; returns the gateway's exit code if given. */
export async function stopAll(...procs: (Proc | undefined)[]): Promise<void> {
  await Promise.all(procs.filter((p): p is Proc => !!p).map((p) => p.stop().catch(() => undefined)));
}

/** Decodes a JWT's header and payload without verifying it. */
export function decodeJwt(jwt: string): { header: JsonLine; payload: JsonLine } {
  const dec = (s: string) => {
    const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(b, (c) => c.charCodeAt(0))));
  };
  const [h = "", p = ""] = jwt.split(".");
  return { header: dec(h), payload: dec(p) };
}

/** Compact, readable dump of a fixture's JSON summary for assertion messages. */
export function show(v: unknown): string {
  return JSON.stringify(
    v,
    (k, val) => (k === "accessToken" && typeof val === "string" ? `${val.slice(0, 12)}…` : val),
    1,
  );
}
