/**
 * The shared token bucket as one Redis script, run atomically by the server: GCRA (the
 * generic cell rate algorithm), which is a token bucket stored as one number, the
 * "theoretical arrival time" (TAT) at which the bucket would be full again. Time comes from
 * the Redis server (TIME), never from the replicas, so replicas with skewed clocks agree.
 *
 * With T = 1/rate (µs per token) and capacity burst × T: a request is allowed when
 * max(TAT, now) + T − now ≤ burst × T, and then TAT becomes max(TAT, now) + T. This is
 * exactly the in-memory bucket (tokens = burst − (TAT − now)/T). A refused request writes
 * nothing: it spends nothing. The key expires when the bucket would be full again (TAT −
 * now, never more than the cap), so idle clients cost Redis no memory.
 *
 * KEYS[1] the bucket; ARGV[1] µs per token; ARGV[2] burst; ARGV[3] longest key life (ms).
 * Returns 0 when allowed, else the ms until a token is available (at least 1).
 */
export const BucketScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local nextTat = tat + interval
local over = nextTat - now - capacity
if over > 0 then return math.max(1, math.ceil(over / 1000)) end
local ttl = math.max(1, math.min(math.ceil((nextTat - now) / 1000), tonumber(ARGV[3])))
redis.call('SET', KEYS[1], string.format('%.0f', nextTat), 'PX', ttl)
return 0
`;

/** Keys hold hashes, never client addresses or subjects in clear. */
export const KeyPrefix = "mcpgate:rl:";

/** Longest life of a bucket key, whatever burst ÷ rate is. */
export const MaxKeyLifeMs = 60_000;

export type BucketScope = "ip" | "user";

/** mcpgate:rl:<scope>:<sha256 hex of the key>. */
export async function bucketKey(scope: BucketScope, key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
  let hex = "";
  for (const b of digest) hex += (b < 16 ? "0" : "") + b.toString(16);
  return `${KeyPrefix}${scope}:${hex}`;
}

/** The script's arguments for a bucket of `rps` tokens per second holding `burst`. */
export function bucketArgs(rps: number, burst: number): [interval: string, burst: string, maxLifeMs: string] {
  return [String(1_000_000 / rps), String(burst), String(MaxKeyLifeMs)];
}

/** The script's answer (ms until a token) as the take() result: 0, or whole seconds ≥ 1. */
export function retryAfterSeconds(waitMs: number): number {
  return waitMs <= 0 ? 0 : Math.max(1, Math.ceil(waitMs / 1000));
}
