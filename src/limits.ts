/** Compatibility re-exports: the limiters live in src/limits/. */
export { DefaultMaxBuckets, RateLimiter, type RateLimiterOptions } from "./limits/memory_bucket.ts";
export { ConcurrencyLimiter, type ConcurrencyRefusal } from "./limits/concurrency.ts";
export { type LimiterStore, StoreUnavailable } from "./limits/store.ts";
