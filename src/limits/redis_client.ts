/**
 * The connection to Redis, through ioredis: loaded with import() only when REDIS_ADDR or
 * REDIS_URL is set, so that the core never loads node:net. It connects in the
 * background and reconnects by itself with backoff; a decision never waits for it
 * (commands are not queued while disconnected: they fail at once and the caller falls
 * back). The password is never logged: messages name Redis by its masked address.
 */
import { Redis, type RedisOptions } from "ioredis";
import * as tls from "node:tls";
import type { Logger } from "../logging.ts";
import type { RedisSettings } from "./config.ts";
import { BucketScript } from "./script.ts";
import { type BucketBackend, scrub } from "./shared_bucket.ts";

export interface RedisConnection extends BucketBackend {
  close(): void;
}

/** Reconnect delays: 100 ms doubling to 2 s, with ±20 % jitter. */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(100 * 2 ** Math.max(0, Math.min(attempt - 1, 5)), 2000);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

type Options = Omit<RedisOptions, "replyMapping">;

/**
 * The CAs a rediss:// server is verified against: the runtime's own (its bundled roots and
 * NODE_EXTRA_CA_CERTS) and the system store (/etc/ssl/certs, SSL_CERT_FILE; the image's
 * Debian bundle). Passing `ca` replaces the default set, so both are given.
 */
export function trustedCAs(): string[] | undefined {
  const get = (tls as { getCACertificates?: (type: string) => string[] }).getCACertificates;
  if (typeof get !== "function") return undefined;
  return [...new Set([...get("default"), ...get("system")])];
}

function caOption(): { ca?: string[] } {
  const ca = trustedCAs();
  return ca ? { ca } : {};
}

function options(s: RedisSettings, extra: Options): Options {
  return {
    host: s.host,
    port: s.port,
    db: s.db,
    ...(s.username !== undefined ? { username: s.username } : {}),
    ...(s.password !== undefined ? { password: s.password } : {}),
    ...(s.tls ? { tls: { servername: s.host, ...caOption() } } : {}),
    connectionName: "mcp-gate",
    // Fail fast instead of queueing: a decision must never wait for a connection.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    connectTimeout: 2_000,
    ...extra,
  };
}

type WithBucket = Redis & { mcpgateBucket(key: string, ...args: string[]): Promise<number> };

/**
 * Starts connecting to Redis; the returned connection is usable at once (ready: false until
 * connected). `failClosed` only changes what the start-up error says happens meanwhile.
 */
export function connectRedis(s: RedisSettings, log: Logger, failClosed = false): RedisConnection {
  const client = new Redis(options(s, { retryStrategy: reconnectDelay })) as WithBucket;
  client.defineCommand("mcpgateBucket", { numberOfKeys: 1, lua: BucketScript });
  let connectedOnce = false;
  let down = true;
  let lastWarn = -Infinity;
  let closing = false;
  const meanwhile = failClosed
    ? "rate-limited requests get 503 (RATE_LIMIT_FAIL_CLOSED) until it answers"
    : "rate limits are decided per replica until it answers";
  client.on("ready", () => {
    log.info(connectedOnce ? "redis reconnected" : "redis connected", { redis: s.display });
    connectedOnce = true;
    down = false;
  });
  client.on("error", (e: Error) => {
    const error = scrub(e.message, s.password);
    if (!connectedOnce && lastWarn === -Infinity) {
      // The first failure at start-up is an error; the gateway keeps serving meanwhile.
      log.error(`redis unavailable: ${meanwhile}`, { redis: s.display, error });
      lastWarn = Date.now();
    } else if (Date.now() - lastWarn >= 10_000) {
      log.warn("redis connection failed; reconnecting", { redis: s.display, error });
      lastWarn = Date.now();
    }
  });
  client.on("close", () => {
    if (!down && !closing) log.warn("redis connection lost; reconnecting", { redis: s.display });
    down = true;
  });
  return {
    get ready() {
      return client.status === "ready";
    },
    runBucket: (key, args) => client.mcpgateBucket(key, ...args),
    close: () => {
      closing = true;
      client.disconnect();
    },
  };
}

/**
 * Connects with the configured address and credentials and sends one PING
 * (`mcp-gate check`), no retries. Resolves to the time connecting took and the PING's round
 * trip (what a decision costs), in ms; rejects with the reason, never holding the password.
 */
export async function pingRedis(s: RedisSettings, timeoutMs: number): Promise<{ connectMs: number; pingMs: number }> {
  const client = new Redis(options(s, { lazyConnect: true, retryStrategy: () => null, connectTimeout: timeoutMs }));
  // ioredis rejects connect() with "Connection is closed."; the reason came as an error event.
  let reason: string | undefined;
  client.on("error", (e: Error) => {
    reason ??= e.message;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const start = performance.now();
    await Promise.race([client.connect(), timeout]);
    const connected = performance.now();
    await Promise.race([client.ping(), timeout]);
    return { connectMs: connected - start, pingMs: performance.now() - connected };
  } catch (e) {
    throw new Error(scrub(reason ?? (e instanceof Error ? e.message : String(e)), s.password));
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
