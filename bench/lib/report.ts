/** The Markdown table and the targets check. */
import type { machineInfo } from "./common.ts";
import type { LatencyResult, RowResult, sseRow } from "./measure.ts";
import type { Options } from "./options.ts";
import { Root } from "./common.ts";
// ---------------------------------------------------------------- table

export interface TargetResult {
  key: string;
  label: string;
  auth: boolean;
  rows: Record<string, RowResult | undefined>;
  latency?: LatencyResult;
  ssePaced?: Awaited<ReturnType<typeof sseRow>>;
  sseBurst?: Awaited<ReturnType<typeof sseRow>>;
  rssMiB?: number;
  /** Peak RSS before the fixed-rate row (a runtime that falls behind queues requests there). */
  rssAfterWrkMiB?: number;
  startMs?: number;
  startRuns?: number[];
  logBytes?: number;
  error?: string;
}

export const fmtRate = (x: number) =>
  !Number.isFinite(x)
    ? "—"
    : x >= 10_000
    ? `${(x / 1000).toFixed(1)}k`
    : x >= 1000
    ? `${(x / 1000).toFixed(2)}k`
    : x.toFixed(0);
export const fmtMs = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? "—" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
export const fmtRatio = (x: number) => (!Number.isFinite(x) ? "—" : x >= 10 ? x.toFixed(0) : x.toFixed(2));

export function renderTable(
  results: TargetResult[],
  info: Awaited<ReturnType<typeof machineInfo>>,
  o: Options,
  pinned: string,
) {
  const direct = results.find((r) => r.key === "direct");
  const hap = results.find((r) => r.key === "haproxy");
  const cols = results;
  const lines: string[] = [];
  const header = ["", ...cols.map((c) => c.label)];
  lines.push(`| ${header.join(" | ")} |`);
  lines.push(`|${header.map((_, i) => (i === 0 ? ":--" : "--:")).join("|")}|`);
  const cell = (
    value: string,
    v: number,
    d: number | undefined,
    h: number | undefined,
    isDirect: boolean,
    isHap: boolean,
    note?: string,
  ) => {
    const parts: string[] = [];
    if (!isDirect && d !== undefined && Number.isFinite(d) && Number.isFinite(v)) parts.push(`${fmtRatio(v / d)} D`);
    if (!isHap && h !== undefined && Number.isFinite(h) && Number.isFinite(v)) parts.push(`${fmtRatio(v / h)} H`);
    return `${value}${parts.length ? ` (${parts.join(", ")})` : ""}${note ? ` ⚠ ${note}` : ""}`;
  };
  const rowDefs: [string, string][] = [
    ["validRs", "valid RS256, pool of 256 (req/s)"],
    ["validEs", "valid ES256, pool of 256 (req/s)"],
    ["cold", "cold RS256, every token new (req/s)"],
    ["flood", "bad-signature flood, every token new (req/s)"],
    ["badReplay", "bad signature, pool of 256 replayed (req/s)"],
  ];
  for (const [key, name] of rowDefs) {
    const d = direct?.rows[key]?.value;
    const h = hap?.rows[key]?.value;
    lines.push(`| ${name} | ${
      cols.map((c) => {
        const r = c.rows[key];
        if (!r) return c.error ? "error" : "—";
        const sp = Number.isFinite(r.spread) ? `±${Math.round(r.spread * 100)}%` : "";
        const noAuth = !c.auth && c !== direct && (key === "flood" || key === "badReplay") ? " (no auth: proxied)" : "";
        return cell(`${fmtRate(r.value)}${sp}${noAuth}`, r.value, d, h, c === direct, c === hap, r.note);
      }).join(" | ")
    } |`);
  }
  const latencyLine = (label: string, pick: (l: LatencyResult) => number) => {
    const d = direct?.latency ? pick(direct.latency) : undefined;
    const h = hap?.latency ? pick(hap.latency) : undefined;
    lines.push(`| ${label} | ${
      cols.map((c) => {
        if (!c.latency) return "—";
        const v = pick(c.latency);
        return cell(`${fmtMs(v)} ms`, v, d, h, c === direct, c === hap, c.latency.note);
      }).join(" | ")
    } |`);
  };
  latencyLine(`p50 at ${o.rate}/s fixed rate`, (l) => l.p50);
  latencyLine(`p99 at ${o.rate}/s fixed rate`, (l) => l.p99);
  const sseLine = (label: string, pick: (r: TargetResult) => number | undefined) => {
    const d = direct ? pick(direct) : undefined;
    const h = hap ? pick(hap) : undefined;
    lines.push(`| ${label} | ${
      cols.map((c) => {
        const v = pick(c);
        if (v === undefined || !Number.isFinite(v)) return "—";
        return cell(`${fmtMs(v)} ms`, v, d, h, c === direct, c === hap);
      }).join(" | ")
    } |`);
  };
  sseLine("SSE time to first event", (r) => r.ssePaced?.first);
  sseLine("SSE 1,000 events, 1 ms apart", (r) => r.ssePaced?.all);
  sseLine("SSE 1,000 events, burst", (r) => r.sseBurst?.all);
  lines.push(
    `| peak RSS | ${
      cols.map((c) =>
        c.rssMiB === undefined
          ? "—"
          : cell(`${c.rssMiB.toFixed(1)} MiB`, c.rssMiB, undefined, hap?.rssMiB, true, c === hap) +
            (c.rssAfterWrkMiB !== undefined && c.rssAfterWrkMiB < c.rssMiB * 0.9
              ? ` (${c.rssAfterWrkMiB.toFixed(1)} before the fixed-rate row)`
              : "")
      ).join(" | ")
    } |`,
  );
  lines.push(
    `| start to first 200 | ${
      cols.map((c) =>
        c.startMs === undefined
          ? "—"
          : cell(`${fmtMs(c.startMs)} ms`, c.startMs, undefined, hap?.startMs, true, c === hap)
      ).join(" | ")
    } |`,
  );

  const meta = [
    `${info.model}, ${info.cores} cores; ${pinned}`,
    ...(o.src !== Root.replace(/\/$/, "") ? [`mcp-gate targets run from ${o.src}`] : []),
    `Deno ${info.deno}, Bun ${info.bun}, nginx ${info.nginx}, HAProxy ${info.haproxy}, wrk ${info.wrk}, Linux ${info.kernel}`,
    `wrk -t1 -c${o.connections}, ${o.repeats}× ${o.duration} s per row after ${o.warmup} s of warm-up, median shown (±: half the range); ` +
    `fixed rate: ${o.repeats}× ${o.latencySeconds} s at ${o.rate}/s over ${o.connections} connections, open loop; ` +
    `SSE: median of 5 (1 ms apart) and of 20 (burst) streams; start: median of ${o.startups}`,
    `(x D, y H): ratio to DIRECT and to HAProxy in this run (req/s: higher is better; ms and MiB: lower is better)`,
  ];
  return { table: lines.join("\n"), meta };
}

export interface TargetCheck {
  text: string;
  met: boolean | undefined;
}

export function checkTargets(results: TargetResult[]): TargetCheck[] {
  const get = (k: string) => results.find((r) => r.key === k);
  const d = get("direct"), h = get("haproxy"), bin = get("binary"), deno = get("deno");
  const out: TargetCheck[] = [];
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN;
  const add = (text: string, value: number, goal: number, higherBetter: boolean, unit = "×") => {
    const met = Number.isFinite(value) ? (higherBetter ? value >= goal : value <= goal) : undefined;
    out.push({
      text: `${text}: ${Number.isFinite(value) ? value.toFixed(2) : "—"}${unit} (goal ${
        higherBetter ? "≥" : "≤"
      } ${goal}${unit})`,
      met,
    });
  };
  add("binary req/s on valid RS256 ÷ HAProxy", ratio(bin?.rows.validRs?.value, h?.rows.validRs?.value), 1.5, true);
  add(
    "binary req/s on the bad-signature flood ÷ HAProxy",
    ratio(bin?.rows.flood?.value, h?.rows.flood?.value),
    1.0,
    true,
  );
  add("binary p99 at the fixed rate ÷ HAProxy's", ratio(bin?.latency?.p99, h?.latency?.p99), 1.0, false);
  add("binary SSE 1,000 events (1 ms apart) ÷ DIRECT", ratio(bin?.ssePaced?.all, d?.ssePaced?.all), 1.05, false);
  add("binary SSE 1,000 events (burst) ÷ DIRECT", ratio(bin?.sseBurst?.all, d?.sseBurst?.all), 1.05, false);
  for (const k of ["binary", "bun", "deno"]) {
    const r = get(k);
    if (r?.rssMiB !== undefined) add(`${r.label} peak RSS`, r.rssMiB, 64, false, " MiB");
  }
  add("binary start to first 200", bin?.startMs ?? NaN, 50, false, " ms");
  add("Deno req/s on valid RS256 ÷ HAProxy", ratio(deno?.rows.validRs?.value, h?.rows.validRs?.value), 0.75, true);
  return out;
}
