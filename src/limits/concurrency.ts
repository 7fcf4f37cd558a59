/**
 * In-flight caps per client and overall (MAX_CONCURRENT_REQUESTS / MAX_TOTAL_CONNECTIONS).
 * Always per replica: in-flight counts are local by nature. A counter is kept only for keys
 * with requests in flight.
 */
export type ConcurrencyRefusal = "per_client" | "total";

/**
 * In-flight caps: `perKey` requests per client and `total` overall; 0 means no cap (each
 * independently). `acquire` returns a release function, or which cap refused.
 */
export class ConcurrencyLimiter {
  readonly #perKey: number;
  readonly #total: number;
  readonly #counts = new Map<string, number>();
  #active = 0;

  constructor(perKey: number, total: number) {
    if (!(perKey >= 0) || !(total >= 0)) throw new Error("Concurrency caps must be 0 or more");
    this.#perKey = perKey;
    this.#total = total;
  }

  /** Requests in flight (counted even when no cap is set). */
  get active(): number {
    return this.#active;
  }
  /** Keys with requests in flight (0 when there is no per-client cap). */
  get keys(): number {
    return this.#counts.size;
  }

  /** The per-client cap is checked first: when a client is over its own cap, that is the answer (429). */
  acquire(key: string): (() => void) | ConcurrencyRefusal {
    const perKey = this.#perKey;
    let held = 0;
    if (perKey > 0) {
      held = this.#counts.get(key) ?? 0;
      if (held >= perKey) return "per_client";
    }
    if (this.#total > 0 && this.#active >= this.#total) return "total";
    this.#active++;
    if (perKey > 0) this.#counts.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      if (perKey > 0) {
        const n = (this.#counts.get(key) ?? 1) - 1;
        if (n <= 0) this.#counts.delete(key);
        else this.#counts.set(key, n);
      }
    };
  }
}
