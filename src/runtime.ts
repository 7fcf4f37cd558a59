/**
 * The only file that touches Deno.* or Bun.*: environment, arguments, the HTTP server,
 * signals, exit. Everything else is Web-standard.
 */
import type { ConnInfo, GatewayDeps } from "./app.ts";
import { keyFits, SignatureAlgorithms, type SignatureCheck } from "./auth/signature.ts";

type Handler = (req: Request, conn: ConnInfo) => Response | Promise<Response>;

export interface ServeOptions {
  hostname: string;
  port: number;
  /** Keep-alive idle timeout between requests (Bun: also per request unless lifted). */
  idleTimeoutMs: number;
  /** MAX_HEADER_BYTES: the runtime's own parser must let at least this much through. */
  maxHeaderBytes: number;
}

export interface RunningServer {
  /** The bound port (useful with port 0). */
  port: number;
  /** Lifts the runtime's idle timeout for a long-lived (streamed) request. */
  disableTimeouts(req: Request): void;
  /** Stops accepting; waits for in-flight requests up to `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
}

export interface Runtime {
  name: "deno" | "bun";
  version: string;
  /** Header bytes the runtime's own HTTP parser accepts at most (undefined: raised as needed). */
  maxHeaderBytes: number | undefined;
  /** The server sends the end of the response head only with the first body chunk. */
  holdsHeadersUntilFirstChunk: boolean;
  /** Upstream requests `fetch` runs at once, when the runtime caps them (Bun). */
  maxConcurrentFetches: number | undefined;
  /**
   * Raises the runtime's cap on concurrent `fetch` requests to its maximum, if it has one
   * and it can be raised; on Bun that means replacing the process with itself (see
   * raiseBunFetchCap). Returns when nothing (more) can be done; call it before any output.
   */
  raiseFetchCap(): void;
  args: string[];
  env(): Record<string, string>;
  /**
   * SHA-256 of a token, synchronous (the token caches' key): node:crypto on Deno,
   * Bun.CryptoHasher on Bun, 1–6 µs where WebCrypto's asynchronous digest takes about 40.
   */
  sha256(text: string): string;
  /**
   * Resolves in the event loop's next check phase (setImmediate), after the I/O of this turn:
   * awaited before each upstream fetch, so that the fetches of the requests that arrived
   * together start together. Measured on the bench (valid tokens): Bun +27% req/s and 129 →
   * 100 µs CPU per request, Deno +9%.
   */
  nextTurn(): Promise<void>;
  /**
   * node:crypto's synchronous signature check for the algorithms where it beats WebCrypto
   * here (bench/profiles/crypto.md): RS/PS/ES on Bun, RS/PS on Deno (its ECDSA is slower).
   */
  signatureCheck: SignatureCheck;
  /** Reads a UTF-8 file (SCOPE_RULES=@path); throws with the runtime's reason. */
  readTextFile(path: string): string;
  serve(handler: Handler, opts: ServeOptions): RunningServer;
  onSignal(handler: (signal: string) => void): void;
  exit(code: number): never;
}

// Minimal shapes of the Bun APIs used here (no bun-types dependency).
interface BunServer {
  port: number;
  requestIP(req: Request): { address: string } | null;
  timeout(req: Request, seconds: number): void;
  stop(closeActiveConnections?: boolean): Promise<void>;
}
interface BunGlobal {
  version: string;
  CryptoHasher: { hash(algorithm: "sha256", data: string, encoding: "base64"): string };
  argv: string[];
  env: Record<string, string | undefined>;
  serve(options: {
    hostname: string;
    port: number;
    idleTimeout: number;
    fetch(req: Request, server: BunServer): Response | Promise<Response>;
    error?(e: Error): Response;
  }): BunServer;
}
interface NodeProcess {
  argv: string[];
  argv0: string;
  execArgv: string[];
  execPath: string;
  platform: string;
  env: Record<string, string | undefined>;
  execve?(file: string, args: string[], env: Record<string, string>): never;
  on(signal: string, fn: () => void): void;
  exit(code: number): never;
}

const g = globalThis as unknown as { Bun?: BunGlobal; Deno?: typeof Deno; process?: NodeProcess };

const setImmediate = (globalThis as unknown as { setImmediate: (fn: () => void) => void }).setImmediate;
const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/** Strips the IPv4-mapped prefix so logs show 127.0.0.1, not ::ffff:127.0.0.1. */
function plainAddress(addr: string): string {
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.finally(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Bun's fetch runs at most this many requests at once by default; the rest wait for a slot. */
const BunDefaultFetchCap = 256;
/** The largest BUN_CONFIG_MAX_HTTP_REQUESTS Bun accepts (a u16; larger: an error, and the default). */
export const BunMaxFetchCap = 65_535;
const BunFetchCapVar = "BUN_CONFIG_MAX_HTTP_REQUESTS";

/** The cap Bun applies for a BUN_CONFIG_MAX_HTTP_REQUESTS value (it ignores anything but 1–65535). */
export function bunFetchCap(value: string | undefined): number {
  if (value === undefined || !/^\d{1,5}$/.test(value)) return BunDefaultFetchCap;
  const n = Number(value);
  return n >= 1 && n <= BunMaxFetchCap ? n : BunDefaultFetchCap;
}

/**
 * Bun reads BUN_CONFIG_MAX_HTTP_REQUESTS once, before any JavaScript runs (setting it in
 * process.env later changes nothing), and its fetch queues requests past the cap silently,
 * so stream 257 would wait for UPSTREAM_TIMEOUT. When the variable is unset, the process
 * replaces itself (execve: same pid, stdio, signal handling and exit code) with the same
 * arguments and the variable set to Bun's maximum; the new image sees it set, so this
 * happens at most once. detectRuntime() does it first thing for the serving commands: the
 * replaced image has then only loaded mod.ts (`bun run`: about 40 ms, the binary: about 10
 * ms, plus about 20 ms for Bun's own start). Where execve is missing (Windows) or fails,
 * nothing happens: the caller clamps its own cap.
 */
function raiseBunFetchCap(proc: NodeProcess): void {
  const current = proc.env[BunFetchCapVar];
  if ((current !== undefined && current !== "") || typeof proc.execve !== "function" || proc.platform === "win32") {
    return;
  }
  // A standalone executable's entry lives in its embedded file system and its build-time
  // exec-argv is applied again by itself; `bun run` needs its flags and the script path.
  const compiled = (proc.argv[1] ?? "").startsWith("/$bunfs/");
  const args = compiled
    ? [proc.argv0, ...proc.argv.slice(2)]
    : [proc.execPath, ...proc.execArgv, ...proc.argv.slice(1)];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(proc.env)) if (v !== undefined) env[k] = v;
  env[BunFetchCapVar] = String(BunMaxFetchCap);
  try {
    proc.execve(proc.execPath, args, env);
  } catch {
    // Not replaced (e.g. the executable was removed since start): run on with Bun's cap.
  }
}

/** Deno's HTTP parser answers 400 itself once the request head passes about 64 KiB. */
const DenoMaxHeaderBytes = 65_536;

function bunRuntime(
  bun: BunGlobal,
  proc: NodeProcess,
  http: { maxHeaderSize: number },
  fs: { readFileSync(path: string, encoding: "utf8"): string },
  nodeCrypto: NodeCrypto,
): Runtime {
  return {
    name: "bun",
    version: bun.version,
    maxHeaderBytes: undefined,
    holdsHeadersUntilFirstChunk: true,
    // Read by Bun once, at start-up; more requests wait for a free slot.
    maxConcurrentFetches: bunFetchCap(bun.env[BunFetchCapVar]),
    raiseFetchCap: () => raiseBunFetchCap(proc),
    args: bun.argv.slice(2),
    env: () => Object.fromEntries(Object.entries(bun.env).filter((e): e is [string, string] => e[1] !== undefined)),
    readTextFile: (path) => fs.readFileSync(path, "utf8"),
    sha256: (text) => bun.CryptoHasher.hash("sha256", text, "base64"),
    nextTurn,
    signatureCheck: nodeSignatureCheck(nodeCrypto, Object.keys(SignatureAlgorithms)),
    serve(handler, opts) {
      // Bun answers a request head over its limit (16 KiB unless --max-http-header-size)
      // with its own 431 before any handler runs; leave room so that the gateway itself
      // enforces MAX_HEADER_BYTES, with its JSON 431 and a log line.
      http.maxHeaderSize = Math.max(http.maxHeaderSize, opts.maxHeaderBytes + 16_384);
      const server = bun.serve({
        hostname: opts.hostname,
        port: opts.port,
        // Bun caps idleTimeout at 255 s; 0 would disable it for idle keep-alive too.
        idleTimeout: Math.max(1, Math.min(255, Math.round(opts.idleTimeoutMs / 1000))),
        fetch: (req, srv) => handler(req, { remoteAddr: plainAddress(srv.requestIP(req)?.address ?? "") }),
      });
      return {
        port: server.port,
        disableTimeouts: (req) => server.timeout(req, 0),
        shutdown: (graceMs) => withTimeout(server.stop(false), graceMs),
      };
    },
    onSignal(handler) {
      for (const s of ["SIGTERM", "SIGINT"]) proc.on(s, () => handler(s));
    },
    exit: (code) => proc.exit(code),
  };
}

type NodeCrypto = typeof import("node:crypto");

/** node:crypto's synchronous `verify` for the given algorithms, keys converted once. */
export function nodeSignatureCheck(nodeCrypto: NodeCrypto, algorithms: readonly string[]): SignatureCheck {
  const taken = new Set(algorithms);
  const keyObjects = new WeakMap<CryptoKey, import("node:crypto").KeyObject>();
  return (alg, key, signingInput, signature) => {
    const params = SignatureAlgorithms[alg];
    if (params === undefined || !taken.has(alg) || !keyFits(params, key)) return undefined;
    let keyObject = keyObjects.get(key);
    if (keyObject === undefined) {
      keyObject = nodeCrypto.KeyObject.from(key);
      keyObjects.set(key, keyObject);
    }
    try {
      return nodeCrypto.verify(
        params.hash,
        signingInput,
        params.saltLength !== undefined
          ? { key: keyObject, padding: nodeCrypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: params.saltLength }
          : params.curve !== undefined
          ? { key: keyObject, dsaEncoding: "ieee-p1363" }
          : keyObject,
        signature,
      );
    } catch {
      return false; // e.g. an ECDSA signature of the wrong length
    }
  };
}

function denoRuntime(deno: typeof Deno, nodeCrypto: NodeCrypto): Runtime {
  return {
    name: "deno",
    version: deno.version.deno,
    maxHeaderBytes: DenoMaxHeaderBytes,
    holdsHeadersUntilFirstChunk: false,
    maxConcurrentFetches: undefined,
    raiseFetchCap: () => {},
    args: deno.args,
    env: () => deno.env.toObject(),
    readTextFile: (path) => deno.readTextFileSync(path),
    sha256: (text) => nodeCrypto.createHash("sha256").update(text).digest("base64"),
    nextTurn,
    // Deno's node:crypto ECDSA is 1.7× slower than its WebCrypto: ES* stay with jose.
    signatureCheck: nodeSignatureCheck(nodeCrypto, Object.keys(SignatureAlgorithms).filter((a) => !a.startsWith("ES"))),
    serve(handler, opts) {
      const server = deno.serve({
        hostname: opts.hostname,
        port: opts.port,
        // Replaces Deno's plain-text "Listening on" line: the log stream stays JSON.
        onListen: () => {},
      }, (req, info) => {
        const addr = info.remoteAddr as Deno.NetAddr;
        return handler(req, { remoteAddr: plainAddress(addr.hostname ?? "") });
      });
      return {
        port: (server.addr as Deno.NetAddr).port,
        disableTimeouts: () => {},
        shutdown: (graceMs) => withTimeout(server.shutdown(), graceMs),
      };
    },
    onSignal(handler) {
      const signals: Deno.Signal[] = deno.build.os === "windows" ? ["SIGINT"] : ["SIGTERM", "SIGINT"];
      for (const s of signals) deno.addSignalListener(s, () => handler(s));
    },
    exit: (code) => deno.exit(code),
  };
}

/** What createGateway() takes from the runtime: its faster primitives and its streaming quirk. */
export function runtimeGatewayDeps(
  rt: Runtime,
): Pick<GatewayDeps, "digest" | "beforeFetch" | "signatureCheck" | "primeEventStreams"> {
  return {
    digest: rt.sha256,
    beforeFetch: rt.nextTurn,
    signatureCheck: rt.signatureCheck,
    primeEventStreams: rt.holdsHeadersUntilFirstChunk,
  };
}

/** Detects the runtime this process runs on. */
export async function detectRuntime(): Promise<Runtime> {
  if (g.Bun && g.process) {
    // Serving needs Bun's fetch cap raised, which replaces the process: before anything more
    // loads (node:http alone takes 20–60 ms), so the first image costs a bare start of Bun.
    const command = g.process.argv[2];
    if (command === undefined || command === "serve" || command === "demo") raiseBunFetchCap(g.process);
    // node:http holds Bun's HTTP header limit (settable, unlike a Bun.serve option).
    const [http, fs, nodeCrypto] = await Promise.all([import("node:http"), import("node:fs"), import("node:crypto")]);
    return bunRuntime(g.Bun, g.process, http.default, fs, nodeCrypto);
  }
  if (g.Deno) return denoRuntime(g.Deno, await import("node:crypto"));
  throw new Error("mcp-gate runs on Deno or Bun; for other runtimes embed createGateway() from mod.ts");
}
