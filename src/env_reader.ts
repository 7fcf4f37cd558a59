/**
 * Typed reads of environment variables that collect problems instead of throwing, so that
 * loadConfig can report every problem at once. Each feature's settings may be read by a
 * function of its own (`readXxx(r: EnvReader)`) in its own module; config.ts calls them.
 */
import type { ConfigProblem } from "./errors.ts";

export class EnvReader {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: string[] = [];
  readonly #env: Readonly<Record<string, string | undefined>>;

  constructor(env: Readonly<Record<string, string | undefined>>) {
    this.#env = env;
  }

  /** The raw value, as set (untrimmed); undefined when unset. */
  raw(name: string): string | undefined {
    return this.#env[name];
  }

  /** The trimmed value; undefined when unset. */
  get(name: string): string | undefined {
    const v = this.#env[name];
    return v === undefined ? undefined : v.trim();
  }

  /** Records a problem with `name`'s current value. */
  problem(name: string, expected: string): void {
    this.problems.push({ variable: name, value: this.#env[name], expected });
  }

  warn(text: string): void {
    this.warnings.push(text);
  }

  /** A comma list, trimmed, empty items dropped. */
  list(name: string): string[] {
    return splitList(this.get(name));
  }

  required(name: string): string | undefined {
    const raw = this.get(name);
    if (raw === undefined || raw === "") {
      this.problems.push({ variable: name, value: undefined, expected: "it is required" });
      return undefined;
    }
    return raw;
  }

  duration(name: string, fallback: string): number {
    const raw = this.get(name) || fallback;
    const ms = parseDuration(raw);
    if (ms === undefined) {
      this.problem(name, 'expected a duration such as "500ms", "30s", "5m" or "1h"');
      return parseDuration(fallback)!;
    }
    return ms;
  }

  integer(name: string, fallback: number): number {
    const raw = this.get(name);
    if (raw === undefined || raw === "") return fallback;
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
      this.problem(name, "expected a non-negative whole number");
      return fallback;
    }
    return Number(raw);
  }

  number(name: string, fallback: number, min: number, max: number): number {
    const raw = this.get(name);
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!/^\d+(\.\d+)?$/.test(raw) || n < min || n > max) {
      this.problem(name, `expected a number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.get(name)?.toLowerCase();
    if (raw === undefined || raw === "") return fallback;
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    this.problem(name, "expected true, false, 1 or 0");
    return fallback;
  }

  /** An absolute http(s) URL without a fragment; `what` says what it should point at. */
  httpUrl(name: string, raw: string, what: string): URL | undefined {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      this.problem(name, `expected an absolute http(s) URL (${what})`);
      return undefined;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      this.problem(name, `expected an absolute http(s) URL (${what})`);
      return undefined;
    }
    if (url.hash !== "" || raw.includes("#")) {
      this.problem(name, "expected a URL without a #fragment");
      return undefined;
    }
    return url;
  }
}

export function splitList(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Parses a Go-style duration ("500ms", "30s", "5m", "1h", "1m30s") into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  if (text === "0") return 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    const n = Number(m[1]);
    total += n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[m[2] as "ms" | "s" | "m" | "h"];
    pos = re.lastIndex;
  }
  return pos === 0 ? undefined : Math.round(total);
}
