/**
 * The rate-limit settings beyond RATE_LIMIT_RPS/BURST: where the buckets live (REDIS_ADDR,
 * REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB, or REDIS_URL), how long a decision may take
 * (REDIS_TIMEOUT), what a Redis failure means (RATE_LIMIT_FAIL_CLOSED), and the per-user
 * bucket (USER_RATE_LIMIT_RPS/BURST). The password is never part of a message or a
 * reported value: it is shown as "***".
 */
import type { EnvReader } from "../env_reader.ts";

export interface RedisSettings {
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** rediss://: TLS, verified against the runtime's trusted CAs. */
  tls: boolean;
  /** For logs and messages: redis[s]://[user[:***]@]host:port/db (never the password). */
  display: string;
}

export interface RateLimitSettings {
  /** undefined: buckets in memory, per replica. */
  redis: RedisSettings | undefined;
  /** Longest a limit decision against Redis may take, connecting included. */
  redisTimeoutMs: number;
  /** A Redis failure answers 503 instead of falling back to the replica's own bucket. */
  failClosed: boolean;
  /** Per verified subject; 0 disables. */
  userRps: number;
  userBurst: number;
}

export const DefaultRedisPort = 6379;
const RedisParts = ["REDIS_ADDR", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_DB"] as const;

export function readRateLimits(r: EnvReader): RateLimitSettings {
  const redis = readRedis(r);
  const redisTimeoutMs = r.duration("REDIS_TIMEOUT", "50ms");
  if (redisTimeoutMs <= 0) r.problem("REDIS_TIMEOUT", "expected more than 0, such as 50ms");
  const failClosed = r.boolean("RATE_LIMIT_FAIL_CLOSED", false);
  if (failClosed && redis === undefined && !r.problems.some((p) => p.variable.startsWith("REDIS_"))) {
    r.warn("RATE_LIMIT_FAIL_CLOSED has no effect without REDIS_ADDR or REDIS_URL: the buckets are in memory");
  }
  const userRps = r.number("USER_RATE_LIMIT_RPS", 0, 0, 1e9);
  const userBurst = r.integer("USER_RATE_LIMIT_BURST", userRps > 0 ? Math.max(1, Math.ceil(2 * userRps)) : 0);
  return { redis, redisTimeoutMs, failClosed, userRps, userBurst };
}

function readRedis(r: EnvReader): RedisSettings | undefined {
  const url = r.get("REDIS_URL") || undefined;
  const setParts = RedisParts.filter((name) => (r.raw(name) ?? "") !== "");
  if (url !== undefined) {
    if (setParts.length > 0) {
      r.warn(`REDIS_URL and ${setParts.join(", ")} are all set: REDIS_URL is used and ${setParts.join(", ")} ignored`);
    }
    return parseRedisUrl(r, url);
  }
  const addr = r.get("REDIS_ADDR") || undefined;
  if (addr === undefined) {
    if (setParts.length > 0) {
      r.problems.push({
        variable: "REDIS_ADDR",
        value: undefined,
        expected: `it is required when ${setParts.join(", ")} ${setParts.length === 1 ? "is" : "are"} set ` +
          "(or set REDIS_URL instead)",
      });
    }
    return undefined;
  }
  const hostPort = parseHostPort(addr);
  if (!hostPort) {
    r.problem("REDIS_ADDR", 'expected host:port, such as "redis:6379", "10.0.0.5:6379" or "[fd00::5]:6379"');
  }
  const username = r.get("REDIS_USERNAME") || undefined;
  const password = r.raw("REDIS_PASSWORD") || undefined;
  if (password !== undefined && password !== password.trim()) {
    r.warn("REDIS_PASSWORD starts or ends with white space (a line break from a secret file?); it is sent as is");
  }
  const db = r.integer("REDIS_DB", 0);
  if (!hostPort) return undefined;
  return settings({ ...hostPort, username, password, db, tls: false });
}

function parseRedisUrl(r: EnvReader, raw: string): RedisSettings | undefined {
  const bad = (expected: string) => {
    // The reported value keeps everything but the password.
    r.problems.push({ variable: "REDIS_URL", value: maskUrlPassword(raw), expected });
    return undefined;
  };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return bad("expected a URL such as redis://:password@redis:6379/0 or rediss://user:password@host:6380");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") return bad("expected a redis:// or rediss:// URL");
  if (url.hostname === "") return bad("expected a host, as in redis://redis:6379");
  if (url.search !== "" || url.hash !== "" || raw.includes("#")) return bad("expected no ?query or #fragment");
  const dbMatch = /^\/?(\d*)$/.exec(url.pathname);
  if (!dbMatch || (dbMatch[1] !== "" && !Number.isSafeInteger(Number(dbMatch[1])))) {
    return bad("expected the database number as the only path segment, as in redis://redis:6379/2");
  }
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = decodeURIComponent(url.username) || undefined;
    password = decodeURIComponent(url.password) || undefined;
  } catch {
    return bad("expected a percent-encoded user name and password");
  }
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return settings({
    host,
    port: url.port === "" ? DefaultRedisPort : Number(url.port),
    username,
    password,
    db: dbMatch[1] ? Number(dbMatch[1]) : 0,
    tls: url.protocol === "rediss:",
  });
}

function settings(s: Omit<RedisSettings, "display">): RedisSettings {
  const user = s.username === undefined ? "" : encodeURIComponent(s.username);
  const auth = s.password !== undefined ? `${user}:***@` : user !== "" ? `${user}@` : "";
  const host = s.host.includes(":") ? `[${s.host}]` : s.host;
  return { ...s, display: `${s.tls ? "rediss" : "redis"}://${auth}${host}:${s.port}/${s.db}` };
}

/** "host:port" or "[v6]:port", with a host and a port from 1 to 65535. */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]\s/@]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}

/** The URL with the password part of its user info replaced by "***". */
export function maskUrlPassword(raw: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)@/.exec(raw);
  if (!m) return raw;
  const colon = m[2]!.indexOf(":");
  return colon < 0 ? raw : `${m[1]}${m[2]!.slice(0, colon)}:***@${raw.slice(m[0].length)}`;
}

/** The variables read here, for `--help` and the README. */
export const RateLimitVariables: readonly { name: string; default: string; meaning: string }[] = [
  { name: "USER_RATE_LIMIT_RPS", default: "0", meaning: "per verified subject (sub, else client_id) rate; 0: off" },
  { name: "USER_RATE_LIMIT_BURST", default: "max(1, ceil(2*RPS))", meaning: "per-subject bucket size" },
  { name: "REDIS_ADDR", default: "", meaning: "host:port of Redis: buckets shared by every replica" },
  { name: "REDIS_USERNAME", default: "", meaning: "Redis ACL user name" },
  { name: "REDIS_PASSWORD", default: "", meaning: "Redis password (never logged)" },
  { name: "REDIS_DB", default: "0", meaning: "Redis database number" },
  { name: "REDIS_URL", default: "", meaning: "redis:// or rediss:// URL instead of the four above (wins)" },
  { name: "REDIS_TIMEOUT", default: "50ms", meaning: "longest limit decision against Redis, then fallback" },
  { name: "RATE_LIMIT_FAIL_CLOSED", default: "false", meaning: "Redis failure -> 503 instead of per-replica buckets" },
];
