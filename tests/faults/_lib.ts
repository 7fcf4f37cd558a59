// Measurement helpers for the fault and load runs: process memory and CPU from /proc,
// the gateway's Prometheus metrics, and loopback TCP connections to a port.

/** Prints one figure line for collection: `FIGURE <name>: <value>`. */
export function figure(name: string, value: string): void {
  console.log(`FIGURE ${name}: ${value}`);
}

export interface ProcMemory {
  /** Resident set size now, in MiB. */
  rssMiB: number;
  /** Peak resident set size since start, in MiB. */
  hwmMiB: number;
}

/** VmRSS and VmHWM of a process (Linux /proc). */
export function memoryOf(pid: number): ProcMemory {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

/** CPU time (user + system) a process has used so far, in seconds. */
export function cpuSecondsOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak. */
export function sampleRss(pid: number, everyMs = 100): { stop(): { peakMiB: number; samples: number[] } } {
  const samples: number[] = [];
  const take = () => {
    try {
      samples.push(memoryOf(pid).rssMiB);
    } catch { /* process gone */ }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peakMiB: Math.max(...samples), samples };
    },
  };
}

/** Fetches a Prometheus text page and returns `name{labels}` → value (labels as printed). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 200)}`);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of every series of a metric (any labels). */
export function metricSum(m: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) sum += v;
  return sum;
}

/**
 * ESTABLISHED TCP connections whose remote end is 127.0.0.1:`port` (the client side of
 * connections to that port), from /proc/net/tcp and /proc/net/tcp6.
 */
export function establishedTo(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const remote = cols[2]!;
      if (cols[3] === "01" && remote.endsWith(`:${hexPort}`)) n++;
    }
  }
  return n;
}

/** The URL the gateway printed for its metrics listener ({"msg":"metrics listening"}). */
export function metricsUrl(logs: Record<string, unknown>[]): string {
  const line = logs.find((l) => l.msg === "metrics listening");
  if (!line || typeof line.url !== "string") throw new Error('no "metrics listening" log line');
  return line.url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://localhost:", "://127.0.0.1:");
}

/** Percentile of numbers (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
