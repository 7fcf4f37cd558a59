// A real redis-server on a free loopback port, no persistence, for the tests of the
// shared rate limits. Stopped by PID in the test's cleanup (`await using`). `.ci/run`
// installs redis-server from the distribution when it is missing.
import { sleep } from "./http.ts";

export interface RedisServerOptions {
  /** --requirepass */
  password?: string;
  /** A port to reuse (restart); default: a free one. */
  port?: number;
  /** TLS only (no plain port), with this certificate: { cert, key, ca } PEM file paths. */
  tls?: { cert: string; key: string; ca: string };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export class RedisServer {
  readonly port: number;
  readonly password: string | undefined;
  readonly tls: RedisServerOptions["tls"];
  #child: Deno.ChildProcess | undefined;
  #log = "";

  private constructor(port: number, password: string | undefined, tls: RedisServerOptions["tls"]) {
    this.port = port;
    this.password = password;
    this.tls = tls;
  }

  /** Starts redis-server and waits until it answers PING. */
  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(opts.port ?? freePort(), opts.password, opts.tls);
    await server.restart();
    return server;
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** (Re)starts the server on the same port; empty, as after a crash without persistence. */
  async restart(): Promise<void> {
    if (this.#child) throw new Error("redis-server is already running");
    const port = this.tls
      ? ["--port", "0", "--tls-port", String(this.port), "--tls-auth-clients", "no"]
      : ["--port", String(this.port)];
    const args = [...port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    if (this.tls) {
      args.push("--tls-cert-file", this.tls.cert, "--tls-key-file", this.tls.key, "--tls-ca-cert-file", this.tls.ca);
    }
    if (this.password !== undefined) args.push("--requirepass", this.password);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("redis-server", { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
    } catch (e) {
      throw new Error(
        `Cannot start redis-server (${(e as Error).message}): install it (apt-get install redis-server; .ci/run does)`,
      );
    }
    this.#child = child;
    void this.#collect(child);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if ((await this.cli("PING").catch(() => "")) === "PONG") return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`redis-server on port ${this.port} did not answer PING within 10 s\n${this.#log}`);
      }
      await sleep(50);
    }
  }

  async #collect(child: Deno.ChildProcess): Promise<void> {
    const dec = new TextDecoder();
    await Promise.all([
      (async () => {
        for await (const c of child.stdout) this.#log += dec.decode(c);
      })(),
      (async () => {
        for await (const c of child.stderr) this.#log += dec.decode(c);
      })(),
    ]).catch(() => {});
  }

  /** SIGKILL, by PID, and wait for the exit: Redis gone as in a crash. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  }

  /** One redis-cli command (with the password when there is one); its output, trimmed. */
  async cli(...args: string[]): Promise<string> {
    const auth = this.password !== undefined ? ["--no-auth-warning", "-a", this.password] : [];
    if (this.tls) auth.push("--tls", "--cacert", this.tls.ca);
    const out = await new Deno.Command("redis-cli", {
      args: ["-h", "127.0.0.1", "-p", String(this.port), ...auth, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) throw new Error(`redis-cli ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    return text;
  }

  /** The keys matching `pattern`, sorted. */
  async keys(pattern = "*"): Promise<string[]> {
    const out = await this.cli("--scan", "--pattern", pattern);
    return out === "" ? [] : out.split("\n").toSorted();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

export const startRedis = RedisServer.start;

/** sha256 hex, as the gateway names its bucket keys. */
export async function sha256Hex(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Polls `cond` every 25 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Not within ${timeoutMs} ms: ${what}`);
    await sleep(25);
  }
}

/**
 * A throwaway CA and a certificate it signed for localhost and 127.0.0.1, made with the
 * openssl command line in `dir`: PEM file paths.
 */
export async function makeCertificates(dir: string): Promise<{ cert: string; key: string; ca: string }> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "piped", stderr: "piped" }).output();
    if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
  };
  await Deno.writeTextFile(`${dir}/ext.cnf`, "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  const days = ["-days", "1"];
  await run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    ...days,
    "-subj",
    "/CN=mcp-gate test CA",
  ]);
  await run([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  ]);
  await run([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    ...days,
    "-extfile",
    "ext.cnf",
  ]);
  return { cert: `${dir}/server.pem`, key: `${dir}/server.key`, ca: `${dir}/ca.pem` };
}
