/**
 * A token bucket kept in Redis and shared by every replica: one script run per decision
 * (see script.ts). A decision that fails or takes longer than REDIS_TIMEOUT (connecting
 * included: while the connection is down, a decision fails at once) falls back to this
 * replica's own in-memory bucket, or answers StoreUnavailable when RATE_LIMIT_FAIL_CLOSED.
 */
import type { Logger } from "../logging.ts";
import type { RateLimiter } from "./memory_bucket.ts";
import { bucketArgs, bucketKey, type BucketScope, retryAfterSeconds } from "./script.ts";
import { type LimiterStore, StoreUnavailable } from "./store.ts";

/** A connection to Redis that runs the bucket script (redis_client.ts). */
export interface BucketBackend {
  /** Connected and authenticated: when false, a decision fails without waiting. */
  readonly ready: boolean;
  /** Runs BucketScript on `key` with `args`: ms until a token, 0 when allowed. */
  runBucket(key: string, args: readonly string[]): Promise<number>;
}

export class StoreTimeout extends Error {
  override name = "StoreTimeout";
}

/** Decisions in flight past which new ones fail at once (Redis stalled: memory stays bounded). */
export const DefaultMaxPending = 1024;

export interface SharedBucketOptions {
  scope: BucketScope;
  rps: number;
  burst: number;
  backend: BucketBackend;
  timeoutMs: number;
  failClosed: boolean;
  /** This replica's own bucket, with the same rps and burst. */
  fallback: RateLimiter;
  failures: FailureReporter;
  maxPending?: number;
}

export class SharedBucket implements LimiterStore {
  readonly enabled: boolean;
  readonly #o: SharedBucketOptions;
  readonly #args: readonly string[];
  readonly #maxPending: number;
  readonly #notReady: Error;
  readonly #backlog: Error;
  readonly #timeout: StoreTimeout;
  #pending = 0;

  constructor(opts: SharedBucketOptions) {
    this.#o = opts;
    this.enabled = opts.rps > 0 && opts.burst > 0;
    this.#args = this.enabled ? bucketArgs(opts.rps, opts.burst) : [];
    this.#maxPending = opts.maxPending ?? DefaultMaxPending;
    this.#notReady = new Error("not connected to Redis");
    this.#backlog = new Error(`${this.#maxPending} decisions already waiting for Redis`);
    this.#timeout = new StoreTimeout(`no answer from Redis within REDIS_TIMEOUT (${opts.timeoutMs} ms)`);
  }

  /** Decisions sent to Redis whose answer has not come back yet. */
  get pending(): number {
    return this.#pending;
  }

  take(key: string): number | Promise<number> {
    if (!this.enabled) return 0;
    if (!this.#o.backend.ready) return this.#failed(key, this.#notReady);
    if (this.#pending >= this.#maxPending) return this.#failed(key, this.#backlog);
    return this.#decide(key);
  }

  async #decide(key: string): Promise<number> {
    try {
      return retryAfterSeconds(await this.#withDeadline(this.#run(key)));
    } catch (e) {
      return this.#failed(key, e);
    }
  }

  async #run(key: string): Promise<number> {
    const redisKey = await bucketKey(this.#o.scope, key);
    return await this.#o.backend.runBucket(redisKey, this.#args);
  }

  /** The answer, or StoreTimeout after REDIS_TIMEOUT; the command is counted until it settles. */
  #withDeadline(p: Promise<number>): Promise<number> {
    this.#pending++;
    const settled = () => {
      this.#pending--;
    };
    p.then(settled, settled);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.#timeout), this.#o.timeoutMs);
      p.then((v) => {
        clearTimeout(timer);
        resolve(v);
      }, (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  #failed(key: string, error: unknown): number {
    this.#o.failures.failed(this.#o.scope, error);
    return this.#o.failClosed ? StoreUnavailable : this.#o.fallback.take(key);
  }
}

/**
 * Counts failed decisions (mcpgate_rate_limit_store_errors_total) and logs one warning at
 * most every `intervalMs`, with the number of failures since the last one.
 */
export class FailureReporter {
  readonly #log: Logger;
  readonly #count: (() => void) | undefined;
  readonly #fields: Record<string, unknown>;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #secret: string | undefined;
  #lastWarn = -Infinity;
  #since = 0;

  constructor(opts: {
    log: Logger;
    onFailure?: (() => void) | undefined;
    redis: string;
    failClosed: boolean;
    /** Removed from error messages, whatever a client library puts in them. */
    secret?: string | undefined;
    now?: () => number;
    intervalMs?: number;
  }) {
    this.#log = opts.log;
    this.#count = opts.onFailure;
    this.#fields = {
      redis: opts.redis,
      fallback: opts.failClosed ? "503 (RATE_LIMIT_FAIL_CLOSED)" : "this replica's own buckets",
    };
    this.#secret = opts.secret;
    this.#now = opts.now ?? Date.now;
    this.#intervalMs = opts.intervalMs ?? 10_000;
  }

  failed(scope: BucketScope, error: unknown): void {
    this.#count?.();
    this.#since++;
    const now = this.#now();
    if (now - this.#lastWarn < this.#intervalMs) return;
    this.#lastWarn = now;
    this.#log.warn("rate limit store failed", {
      ...this.#fields,
      scope,
      error: scrub(error instanceof Error ? error.message : String(error), this.#secret),
      failures: this.#since,
    });
    this.#since = 0;
  }
}

/** `text` without `secret` in it. */
export function scrub(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join("***") : text;
}
